package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/target"
	"github.com/spindle-hq/spindle/tools/batteries/inspect"
	"github.com/vmihailenco/msgpack/v5"
)

const statUsage = `usage: spindle stat -t PATTERN [flags] PATH...

Looks at each PATH on each target, as Ansible's stat module does: whether
it exists, its type, size and mtime, its mode (permission bits, in octal)
and owner (uid and gid, numbers), a symlink's target (a symlink at PATH
is not followed), and the sha256 of a regular file. It runs the stat
battery (bin/batteries/stat.wasm, pinned by its hash) with a read-only
mount of each PATH's parent directory and nothing else; the mode and
owner, which WASI preview 1 does not carry, it reads through spindle's
path_attrs host function, which changes nothing. A PATH that is not
there (nor its parent) is "exists=false", not an error.

PATH must be absolute and clean; at most 256 of them.

flags:
  --hash-limit SIZE   hash regular files up to SIZE (default 64MiB, at
                      most 64GiB); a larger one shows "sha256 skipped".
                      Hashing is bounded by --timeout too
  --read N            print the first N bytes of each regular file (at
                      most 64KiB), escaped, below its row
` + inspectUsage + connUsage + `
output: a row per target and PATH, "TARGET | PATH | TYPE size=N
mtime=T mode=0644 uid=N gid=N sha256=HEX", or "TARGET | PATH | absent";
a PATH that could not be looked at (permission denied) is "TARGET | PATH
| ERROR: why" and fails its target. Then a recap, one line per target:
looking is never "changed". With --json, one object per target per line:
{"target", "status" (ok, failed or unreachable), "files": [{"path",
"exists", "type", "size", "mtime", "mode", "uid", "gid", "link_target",
"sha256", "hash_skipped", "head", "error"}], "error": {...}}; "head" is
text (bytes that are not UTF-8 become U+FFFD).

exit status: 0 every target ok; 1 a PATH could not be looked at, or the
battery failed, somewhere; 3 a target could not be reached (and none
failed); 2 bad usage; 130 interrupted.
`

// maxHashLimit bounds --hash-limit.
const maxHashLimit = 64 << 30

type statOpts struct {
	inspectOpts
	paths     []string
	hashLimit int64
	head      int
}

// statLine is one target's outcome in --json mode.
type statLine struct {
	Target string             `json:"target"`
	Status string             `json:"status"` // "ok", "failed" or "unreachable"
	Files  []inspect.FileStat `json:"files,omitempty"`
	Error  *runError          `json:"error,omitempty"`
}

func parseStatArgs(args []string) (*statOpts, error) {
	o := &statOpts{hashLimit: inspect.DefaultHashLimit}
	fs := flag.NewFlagSet("stat", flag.ContinueOnError)
	o.register(fs)
	fs.Func("hash-limit", "", func(v string) (err error) {
		o.hashLimit, err = parseSize("--hash-limit", v, maxHashLimit)
		return err
	})
	fs.Func("read", "", func(v string) error {
		n, err := parseSize("--read", v, inspect.MaxHead)
		o.head = int(n)
		return err
	})
	pos, err := parseFlags(fs, args)
	if err != nil {
		return nil, err
	}
	if err := o.check(); err != nil {
		return nil, err
	}
	switch {
	case len(pos) == 0:
		return nil, errors.New("no PATH given (spindle stat -t TARGET PATH...)")
	case len(pos) > inspect.MaxPaths:
		return nil, fmt.Errorf("%d paths: at most %d at once", len(pos), inspect.MaxPaths)
	}
	for _, p := range pos {
		if strings.ContainsRune(p, 0) || !path.IsAbs(p) || path.Clean(p) != p {
			return nil, fmt.Errorf("PATH %q: want a clean absolute path", p)
		}
	}
	o.paths = pos
	return o, nil
}

// statPlan is the mounts and request of one stat task: each distinct
// parent directory mounted read-only at /pNNNN (names of one length, so
// that none is a prefix of another: Go's wasip1 matches preopens by
// string prefix).
type statPlan struct {
	mounts []spindle.Mount
	req    inspect.StatRequest
	dirOf  []string // dirOf[i] is the parent of req.Paths[i]
}

func (o *statOpts) plan(paths []string) statPlan {
	pl := statPlan{req: inspect.StatRequest{HashLimit: o.hashLimit, Head: o.head}}
	mountOf := map[string]string{}
	for _, p := range paths {
		dir, base := path.Split(p)
		if p == "/" {
			dir, base = "/", ""
		}
		dir = path.Clean(dir)
		g, ok := mountOf[dir]
		if !ok {
			g = fmt.Sprintf("/p%04d", len(mountOf))
			mountOf[dir] = g
			pl.mounts = append(pl.mounts, spindle.Mount{Host: dir, Guest: g, ReadOnly: true})
		}
		pl.req.Paths = append(pl.req.Paths, inspect.StatPath{Guest: path.Join(g, base), Path: p})
		pl.dirOf = append(pl.dirOf, dir)
	}
	return pl
}

// unmountable is the directory a failed stat task could not mount, why,
// and whether it is not there (ENOENT, ENOTDIR) rather than unreadable,
// from the context's "open root" error.
func unmountable(e *runError) (dir, why string, absent, ok bool) {
	if e == nil || e.Kind != "invalid_call" {
		return "", "", false, false
	}
	_, rest, found := strings.Cut(e.Message, `rootfs: open root "`)
	if !found {
		return "", "", false, false
	}
	end := strings.Index(rest, `": `)
	if end < 0 {
		return "", "", false, false
	}
	dir, err := strconv.Unquote(`"` + rest[:end] + `"`)
	if err != nil {
		return "", "", false, false
	}
	why = rest[end+3:]
	if i := strings.LastIndex(why, ": "); i >= 0 {
		why = why[i+2:] // "open DIR: permission denied"
	}
	absent = why == "no such file or directory" || why == "not a directory"
	return dir, why, absent, true
}

// statTarget stats o.paths on one target. A parent directory that cannot
// be mounted (not there, or not readable) makes its paths absent (or
// their error) and the rest are asked again: at most once per parent.
func (o *statOpts) statTarget(ctx context.Context, fl *spindle.Fleet, hash string, nt target.Named) statLine {
	l := statLine{Target: nt.Name}
	files := make([]inspect.FileStat, len(o.paths))
	done := make([]bool, len(o.paths))
	for {
		var left []int
		var paths []string
		for i, p := range o.paths {
			if !done[i] {
				left = append(left, i)
				paths = append(paths, p)
			}
		}
		if len(left) == 0 {
			break
		}
		pl := o.plan(paths)
		t := spindle.Task{Module: hash, Task: "stat", Mounts: pl.mounts, Limits: spindle.Limits{Timeout: o.timeout, OutputBytes: 24 << 20}}
		var err error
		if t.Input, err = msgpack.Marshal(pl.req); err != nil {
			l.Status, l.Error = "failed", &runError{Kind: "input", Message: err.Error()}
			return l
		}
		var res inspect.StatResult
		status, e := runBattery(ctx, fl, nt, t, &res, o.conn.sshConfig)
		if dir, why, absent, ok := unmountable(e); ok && status == "failed" {
			hit := false
			for j, i := range left {
				if pl.dirOf[j] != dir {
					continue
				}
				hit, done[i] = true, true
				files[i] = inspect.FileStat{Path: o.paths[i]}
				if !absent {
					files[i].Error = fmt.Sprintf("its parent directory %s cannot be opened: %s", dir, why)
				}
			}
			if hit {
				continue
			}
		}
		if status != "ok" {
			l.Status, l.Error = status, e
			return l
		}
		if len(res.Files) != len(left) {
			l.Status, l.Error = "failed", &runError{Kind: "output", Message: fmt.Sprintf("the battery answered for %d paths, not %d", len(res.Files), len(left))}
			return l
		}
		for j, i := range left {
			files[i], done[i] = res.Files[j], true
			files[i].Path = o.paths[i] // the target's word for it is not needed
		}
	}
	l.Status, l.Files = "ok", files
	for _, f := range files {
		if f.Error != "" {
			l.Status = "failed"
		}
	}
	return l
}

func cmdStat(args []string, stdout, stderr io.Writer) int {
	o, err := parseStatArgs(args)
	if isHelp(err) {
		fmt.Fprint(stdout, statUsage)
		return 0
	}
	if err != nil {
		return usageError(stderr, "stat", err)
	}
	each := func(ctx context.Context, fl *spindle.Fleet, hash string, nt target.Named, mask func(string) string) func() string {
		l := o.statTarget(ctx, fl, hash, nt)
		if l.Error != nil {
			l.Error.Message = mask(l.Error.Message)
		}
		return func() string {
			if o.asJSON {
				b, _ := json.Marshal(l)
				fmt.Fprintf(stdout, "%s\n", jsonSafe(b))
				return l.Status
			}
			printStatLine(stdout, l)
			return l.Status
		}
	}
	return fanOut(&o.inspectOpts, "stat", "stat", stdout, stderr, nil, each)
}

// printStatLine writes a target's rows. Everything from the target is
// escaped.
func printStatLine(w io.Writer, l statLine) {
	if l.Files == nil {
		printFailure(w, l.Target, l.Status, l.Error)
		return
	}
	for _, f := range l.Files {
		lead := escapeLine(l.Target) + " | " + escapeLine(f.Path) + " | "
		switch {
		case f.Error != "":
			fmt.Fprintf(w, "%sERROR: %s\n", lead, escapeLine(f.Error))
			continue
		case !f.Exists:
			fmt.Fprintf(w, "%sabsent\n", lead)
			continue
		}
		row := fmt.Sprintf("%s%s size=%d mtime=%s", lead, escapeLine(f.Type), f.Size, escapeLine(f.MTime))
		if f.Mode != "" {
			row += " mode=" + escapeLine(f.Mode)
		}
		if f.UID != nil && f.GID != nil {
			row += fmt.Sprintf(" uid=%d gid=%d", *f.UID, *f.GID)
		}
		if f.LinkTarget != "" {
			row += " -> " + escapeLine(f.LinkTarget)
		}
		switch {
		case f.SHA256 != "":
			row += " sha256=" + escapeLine(f.SHA256)
		case f.HashSkipped != "":
			row += " sha256 skipped (" + escapeLine(f.HashSkipped) + ")"
		}
		fmt.Fprintln(w, row)
		if f.Head != "" {
			for _, line := range strings.Split(strings.TrimSuffix(f.Head, "\n"), "\n") {
				fmt.Fprintf(w, "    %s\n", escapeLine(line))
			}
		}
	}
}
