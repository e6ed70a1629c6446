package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/modules"
	"github.com/spindle-hq/spindle/target"
)

const copyUsage = `usage: spindle copy SRC -t PATTERN DEST [flags]

Copies the local file or directory SRC to DEST on each target, writing
only what differs: a file whose bytes DEST already holds is not written,
and, with --mode, --owner or --group, only given that mode and owner if
it has another (reported changed, as Ansible's copy does), so a second
run writes nothing and reports ok.
Each file is written to a temporary file beside it (.NAME.spindle-*) and
renamed over the old one: a reader sees the old file or the new one,
never a part, and a failed copy leaves no temporary file behind (one
stopped at its --timeout may: the battery is killed mid-write).

SRC is stored by content in this spindle's store and sent down the tree
as blobs: each crosses each edge of the tree once, however many targets
sit behind an intermediate (ssh://bastion/local:a, .../local:b), and
every hop keeps a copy. On each target the copy battery (a wasm module
shipped with spindle, bin/batteries/copy.wasm, pinned by its hash) sees
SRC read-only and, read-write, DEST when it is a directory there, else
DEST's parent directory; nothing else. It compares, writes and
renames. It cannot choose modes or owners (WASI has no call for them):
spindle grants that directory the --mode, --owner and --group, the
target's context gives them to what the battery makes there, and the
battery may give them to what it finds there (the path_regrant host
function), and no other mode or owner.

What goes where (rsync's and Ansible's rules; DEST is an absolute path,
NAME is SRC's base name):
  SRC a directory   copied to DEST/NAME, always; DEST is made if missing
  SRC/ (a trailing slash)  SRC's contents go into DEST (made if missing)
  SRC a file        DEST an existing directory, or ending in "/" (made if
                    missing): copied to DEST/NAME; else DEST is the file
Not cp -r's rule, which makes a missing DEST the copy of a directory and
copies into an existing one as DEST/NAME: run again, that would copy into
what the first run made. Here what a run made never changes where the
same copy goes next time; for DEST to be the copy, name SRC/.
DEST's parent must exist; directories below it are made (0755). Files
and directories already in DEST and not in SRC are left alone: copy
removes nothing, and a directory where a file goes (or a file where a
directory goes) fails that target. A symlink SRC is followed; symlinks
inside a tree are copied as symlinks (relative targets only: an absolute
one is refused before anything is sent); a symlink where a file or a
symlink goes is replaced, never written through, and a symlink where a
directory goes fails, but a DEST that is a symlink to a directory is
that directory (as for cp). Empty directories are copied; entries named
.git are not, and special files (sockets, devices) are skipped.
A file is at most 128 MiB.

flags:
  -t, --target T      where to copy, as for spindle run (a target chain or
                      a host pattern of the --inventory); repeatable, each
                      target copied to once (two spellings of one chain
                      copy once, said on stderr)
  -i, --inventory F   an inventory file of hosts and groups
  -l, --limit P       keep only the selected targets P also names; repeatable
  --mode M            the mode of every file of SRC at DEST, in octal
                      (0644): given to a file written, and to one whose
                      bytes match but whose mode differs. By default 0644,
                      or 0755 for a file executable in SRC, for a file
                      written; a file left alone keeps its mode
  --owner U           the user of SRC's files, directories and symlinks at
                      DEST (a name or a number, looked up on the target),
                      likewise, and of DEST when the copy makes it (not
                      of a DEST already there); needs root there
                      (--become)
  --group G           their group, likewise
  --become            copy as root through a sudo hop appended to each target
                      (sudo://root; -K asks for its password)
  --become-user U     as U instead of root (implies --become)
  --timeout D         the copy's time limit on each target (default 5m)
  --parallel N        at most N targets at once (default 20)
  --json              one JSON object per target per line: {"target",
                      "status", "dest", "changed": [paths written],
                      "fixed": [paths given the mode or owner], "unchanged",
                      "bytes", "error": {...}}
  --edges             after the recap, the bytes of blobs (the battery and
                      SRC) each context received from its parent, one line
                      per edge of the tree (a JSON object each with --json);
                      a context that found them in the on-disk store it
                      shares with its machine's other contexts of the same
                      user received nothing
  -v, --verbose       show the tree's log records
` + connUsage + `
output: per target, "NAME | CHANGED => DEST" and the paths written (and
those given the mode or owner only, marked so), or "NAME | OK => DEST
(N unchanged)" when nothing differed; FAILED with the
reason; UNREACHABLE when the target could not be started. Then a recap,
one line per target: ok, changed, unreachable, failed; and on stderr the
bytes of blobs this spindle sent.

exit status: 0 every target ok or changed; 1 a copy failed somewhere; 3 a
target could not be reached (and none failed); 2 bad usage (SRC missing,
DEST not absolute, a bad --mode); 130 interrupted.
`

// The copy battery's guest paths (tools/batteries/copy).
const (
	copySrc   = "/src"
	copyDest  = "/dest"
	copyDestX = "/xdest"
)

// copyEntryBytes is what the target's file view charges each entry the
// battery makes against the call's disk budget (host/internal/rootfs's
// EntryBytes).
const copyEntryBytes = 4096

type copyOpts struct {
	targetFlags
	mode      fs.FileMode // 0: 0644, or 0755 for an executable
	owner     string
	group     string
	timeout   time.Duration
	parallel  int
	asJSON    bool
	edges     bool
	conn      connFlags
	src, dest string
}

func parseCopyArgs(args []string) (*copyOpts, error) {
	o := &copyOpts{}
	fset := flag.NewFlagSet("copy", flag.ContinueOnError)
	o.targetFlags.register(fset)
	fset.Func("mode", "", func(v string) error {
		m, err := strconv.ParseUint(v, 8, 32)
		if err != nil || m&^0o777 != 0 || m == 0 {
			return fmt.Errorf("--mode %q: want permission bits in octal, 1 to 0777 (such as 0644)", v)
		}
		o.mode = fs.FileMode(m)
		return nil
	})
	fset.Func("owner", "", func(v string) error { o.owner = v; return checkIDName("--owner", v) })
	fset.Func("group", "", func(v string) error { o.group = v; return checkIDName("--group", v) })
	fset.Func("timeout", "", func(v string) (err error) { o.timeout, err = parseTimeout(v); return err })
	fset.IntVar(&o.parallel, "parallel", 20, "")
	fset.BoolVar(&o.asJSON, "json", false, "")
	fset.BoolVar(&o.edges, "edges", false, "")
	o.conn.register(fset)
	pos, err := parseFlags(fset, args)
	if err != nil {
		return nil, err
	}
	switch {
	case len(pos) != 2:
		return nil, fmt.Errorf("want SRC and DEST, got %d arguments (spindle copy SRC -t TARGET DEST)", len(pos))
	case len(o.targets) == 0:
		return nil, errNoTargets
	case o.parallel < 1:
		return nil, fmt.Errorf("--parallel %d: must be at least 1", o.parallel)
	case !path.IsAbs(pos[1]) || strings.ContainsRune(pos[1], 0):
		return nil, fmt.Errorf("DEST %q: want an absolute path on the targets", pos[1])
	case pos[0] == "" || strings.ContainsRune(pos[0], 0):
		return nil, fmt.Errorf("SRC %q: want a local file or directory", pos[0])
	}
	o.src, o.dest = pos[0], pos[1]
	o.becomeDefaults()
	if o.timeout == 0 {
		o.timeout = 5 * time.Minute
	}
	return o, nil
}

// checkIDName checks a user or group name for --owner and --group.
func checkIDName(flag, v string) error {
	if v == "" || len(v) > 256 || strings.ContainsAny(v, ":/\x00\n") {
		return fmt.Errorf("%s %q: want a user or group name, or a number", flag, v)
	}
	return nil
}

// copyPlan is what the battery reads on stdin (tools/batteries/copy).
type copyPlan struct {
	// Kind is "file", "dir" (lands at DEST/Name) or "contents" (SRC/:
	// into DEST). Where it lands never depends on what an earlier run
	// of the same copy made: for "dir" the battery makes a missing DEST
	// and copies into it, as it does for "contents".
	Kind     string `json:"kind"`
	Name     string `json:"name"`
	DestBase string `json:"dest_base"` // DEST's base name under /dest, or "" when /dest is DEST
	DestDir  bool   `json:"dest_dir"`  // DEST ended in "/": a directory, made if missing
	KeepExec bool   `json:"keep_exec"`
	// Regrant is what of DEST's grant the battery gives what is there
	// already: copyRegrantMode (--mode), copyRegrantOwner (--owner,
	// --group); guest.Attr's bits.
	Regrant uint32      `json:"regrant,omitempty"`
	Entries []copyEntry `json:"entries"`
}

// The bits of copyPlan.Regrant (guest.AttrMode, guest.AttrOwner).
const (
	copyRegrantMode  = 1 << 0
	copyRegrantOwner = 1 << 1
)

type copyEntry struct {
	Path   string `json:"path"`
	Type   string `json:"type"` // "f", "d" or "l"
	Size   int64  `json:"size,omitempty"`
	Exec   bool   `json:"exec,omitempty"`
	Target string `json:"target,omitempty"`
}

// copySource is SRC stored in the master's store, and the plan for it.
type copySource struct {
	tree     string // the digest mounted at /src
	plan     copyPlan
	bytes    int64 // of the files
	destHost string
	hasExec  bool
}

// planCopy stores SRC in st and says where it goes under DEST.
func planCopy(st *modules.Store, src, dest string) (*copySource, error) {
	real, err := filepath.EvalSymlinks(src)
	if err != nil {
		return nil, fmt.Errorf("SRC %s: %w", src, unwrapPath(err))
	}
	fi, err := os.Stat(real)
	if err != nil {
		return nil, fmt.Errorf("SRC %s: %w", src, unwrapPath(err))
	}
	abs, err := filepath.Abs(src)
	if err != nil {
		return nil, fmt.Errorf("SRC %s: %w", src, err)
	}
	cs := &copySource{}
	p := &cs.plan
	p.Name = filepath.Base(abs)
	d := path.Clean(dest)
	cs.destHost = path.Dir(d)
	p.DestBase, p.DestDir = path.Base(d), strings.HasSuffix(dest, "/")
	if d == "/" {
		cs.destHost, p.DestBase, p.DestDir = "/", "", true
	}
	switch {
	case fi.Mode().IsRegular():
		if fi.Size() > modules.MaxFileBytes {
			return nil, fmt.Errorf("SRC %s: %d bytes, past spindle copy's bound of %d (one blob)", src, fi.Size(), modules.MaxFileBytes)
		}
		base := filepath.Base(real)
		if base == ".git" {
			return nil, fmt.Errorf("SRC %s: a file named .git is not copied", src)
		}
		p.Kind = "file"
		cs.tree, err = st.PutDir(filepath.Dir(real), func(rel string, _ bool) bool { return rel == base })
		if err != nil {
			return nil, fmt.Errorf("SRC %s: %w", src, err)
		}
		p.Entries = []copyEntry{{Path: base, Type: "f", Size: fi.Size(), Exec: fi.Mode()&0o111 != 0}}
		cs.bytes, cs.hasExec = fi.Size(), p.Entries[0].Exec
	case fi.IsDir():
		p.Kind = "dir"
		if strings.HasSuffix(src, "/") {
			p.Kind = "contents"
		}
		// Empty directories too: a copy makes them.
		if cs.tree, err = st.PutTree(real, modules.TreeOptions{KeepEmptyDirs: true}); err != nil {
			return nil, fmt.Errorf("SRC %s: %w", src, err)
		}
		if err := cs.walk(st, cs.tree, ""); err != nil {
			return nil, fmt.Errorf("SRC %s: %w", src, err)
		}
	default:
		return nil, fmt.Errorf("SRC %s: not a regular file or a directory (%v)", src, fi.Mode().Type())
	}
	return cs, nil
}

// walk adds the entries of the tree digest (at rel) to the plan, each
// directory before what it holds.
func (cs *copySource) walk(st *modules.Store, digest, rel string) error {
	d, err := st.ReadDir(digest)
	if err != nil {
		return err
	}
	for _, e := range d.Entries {
		p := path.Join(rel, e.Name)
		switch e.Kind {
		case modules.EntryDir:
			cs.plan.Entries = append(cs.plan.Entries, copyEntry{Path: p, Type: "d"})
			if err := cs.walk(st, e.Digest, p); err != nil {
				return err
			}
		case modules.EntryFile:
			cs.plan.Entries = append(cs.plan.Entries, copyEntry{Path: p, Type: "f", Size: e.Size, Exec: e.Exec})
			cs.bytes += e.Size
			cs.hasExec = cs.hasExec || e.Exec
		case modules.EntrySymlink:
			if path.IsAbs(e.Target) {
				return fmt.Errorf("%s is a symlink to the absolute path %s: spindle copy makes relative symlinks only", p, e.Target)
			}
			cs.plan.Entries = append(cs.plan.Entries, copyEntry{Path: p, Type: "l", Target: e.Target})
		}
	}
	return nil
}

// unwrapPath drops a *PathError's operation: the message names the path.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// copyTry is one way to run the battery on a target: with DEST itself
// mounted (when it is a directory there), else with its parent.
type copyTry struct {
	task     spindle.Task
	plan     []byte // the battery's stdin: a Run reads a reader of its own
	destHost string // the directory mounted at /dest
}

// tries are the battery's calls on one target, in order: DEST itself
// mounted as the directory it may be, so that the battery sees no more
// than DEST when DEST is a directory; then DEST's parent, for a DEST that
// is not one (a file to make or replace, a directory to make). A context
// that cannot open the first's directory gets the second.
func (cs *copySource) tries(o *copyOpts, module string) ([]copyTry, error) {
	var out []copyTry
	if cs.plan.DestBase != "" {
		p := cs.plan
		dest := path.Join(cs.destHost, p.DestBase)
		p.DestBase, p.DestDir = "", true
		t, plan, err := cs.task(o, module, p, dest)
		if err != nil {
			return nil, err
		}
		out = append(out, copyTry{t, plan, dest})
	}
	t, plan, err := cs.task(o, module, cs.plan, cs.destHost)
	if err != nil {
		return nil, err
	}
	return append(out, copyTry{t, plan, cs.destHost}), nil
}

// task is the battery's call with the plan p (returned encoded, for its
// stdin) and destHost at /dest.
func (cs *copySource) task(o *copyOpts, module string, p copyPlan, destHost string) (spindle.Task, []byte, error) {
	mode := o.mode
	keepExec := mode == 0 && cs.hasExec
	if mode == 0 {
		mode = 0o644
	}
	dest := spindle.Mount{Host: destHost, Guest: copyDest, FileMode: mode, DirMode: 0o755, Owner: o.owner, Group: o.group}
	mounts := []spindle.Mount{{Tree: cs.tree, Guest: copySrc}, dest}
	if keepExec {
		x := dest
		x.Guest, x.FileMode = copyDestX, 0o755
		mounts = append(mounts, x)
		p.KeepExec = true
	}
	if o.mode != 0 {
		p.Regrant |= copyRegrantMode
	}
	if o.owner != "" || o.group != "" {
		p.Regrant |= copyRegrantOwner
	}
	plan, err := json.Marshal(&p)
	if err != nil {
		return spindle.Task{}, nil, err
	}
	entries := int64(len(p.Entries)) + 1
	return spindle.Task{Module: module, Args: []string{"--show", destHost}, Mounts: mounts,
		Limits: spindle.Limits{Timeout: o.timeout,
			// What the battery may write: each file once, and the
			// entries it makes (a temporary file and its rename, each
			// directory, each symlink), twice over for slack.
			DiskBytes: cs.bytes + 2*entries*copyEntryBytes + 1<<20}}, plan, nil
}

// copyLine is one target's outcome (a line of --json).
type copyLine struct {
	Target    string    `json:"target"`
	Status    string    `json:"status"` // "ok", "changed", "failed" or "unreachable"
	Dest      string    `json:"dest,omitempty"`
	Changed   []string  `json:"changed,omitempty"`
	Fixed     []string  `json:"fixed,omitempty"`
	Unchanged int       `json:"unchanged"`
	Bytes     int64     `json:"bytes"`
	Error     *runError `json:"error,omitempty"`
}

// copyReport is what the battery prints on success.
type copyReport struct {
	Dest      string   `json:"dest"`
	Changed   []string `json:"changed"`
	Fixed     []string `json:"fixed"`
	Unchanged int      `json:"unchanged"`
	Bytes     int64    `json:"bytes"`
}

// maxCopyReport bounds what is kept of the battery's stdout and stderr.
const maxCopyReport = 16 << 20

func cmdCopy(args []string, stdout, stderr io.Writer) int {
	o, err := parseCopyArgs(args)
	if isHelp(err) {
		fmt.Fprint(stdout, copyUsage)
		return 0
	}
	if err != nil {
		return usageError(stderr, "copy", err)
	}
	targets, code, done := o.resolve("copy", o.conn.sshConfig, stderr)
	if done {
		return code
	}
	wasm, pinned, err := loadBattery("copy")
	if err != nil {
		fmt.Fprintf(stderr, "spindle copy: %v\n", err)
		return exitUsage
	}
	level := o.conn.runLevel()
	var chains []target.Target
	for _, nt := range targets {
		chains = append(chains, nt.Target)
	}
	// SRC is looked at before anything connects: a missing one is bad
	// usage. planCopy reads it once a master is there to store it.
	if _, err := os.Stat(o.src); err != nil {
		return usageError(stderr, "copy", fmt.Errorf("SRC %s: %w", o.src, unwrapPath(err)))
	}
	cn, code := o.conn.connect(stderr, "spindle copy", chains)
	if cn == nil {
		return code
	}
	var tally copyRecap // guarded by bar's lock
	bar := newStatusLine(stderr, len(targets) > 1, "copy", func() string {
		return fmt.Sprintf("%d/%d done: %d ok, %d changed, %d failed, %d unreachable",
			tally.ok+tally.changed+tally.failed+tally.unreachable+tally.interrupted, len(targets), tally.ok, tally.changed, tally.failed, tally.unreachable)
	})
	defer bar.close()
	ctx, stop := interruptContext(bar.Writer(stderr), "spindle copy")
	defer stop()
	m, err := spindle.NewMaster(spindle.Config{Logger: cn.logger(bar.Writer(forTerminal(stderr)), level), LogLevel: level})
	if err != nil {
		fmt.Fprintf(stderr, "spindle copy: %v\n", err)
		return 1
	}
	defer m.Close()
	cs, err := planCopy(m.Store(), o.src, o.dest)
	if err != nil {
		return usageError(stderr, "copy", err)
	}
	if !pinned && o.conn.verbosity > 0 {
		fmt.Fprintln(bar.Writer(stderr), "spindle copy: the copy battery is not pinned by hash (this spindle was not built by make build)")
	}
	hash, err := m.AddModule(wasm)
	if err != nil {
		fmt.Fprintf(stderr, "spindle copy: %v\n", err)
		return exitUsage
	}
	tries, err := cs.tries(o, hash)
	if err != nil {
		fmt.Fprintf(stderr, "spindle copy: %v\n", err)
		return 1
	}
	fl := spindle.NewFleet(m)
	cn.apply(fl)
	began := time.Now()
	lines := make([]copyLine, len(targets))
	ctxs := make([]*spindle.Context, len(targets))
	sem := make(chan struct{}, o.parallel)
	var wg sync.WaitGroup
	for i, nt := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			bar.begin(nt.Name)
			l, c := copyOn(ctx, fl, nt, tries, o.conn.sshConfig)
			if l.Error != nil {
				l.Error.Message = cn.mask(l.Error.Message)
			}
			lines[i], ctxs[i] = l, c
			bar.finish(nt.Name, func() {
				tally.add(l)
				if o.asJSON {
					b, _ := json.Marshal(l)
					fmt.Fprintf(stdout, "%s\n", jsonSafe(b))
					return
				}
				printCopyLine(stdout, l)
			})
		}()
	}
	wg.Wait()
	bar.close()
	if !o.asJSON {
		printCopyRecap(stdout, lines)
	}
	if o.edges {
		printEdges(ctx, stdout, o.asJSON, fl, targets, ctxs)
	}
	r := tally
	interrupted := ""
	if r.interrupted > 0 {
		interrupted = fmt.Sprintf(", %d interrupted", r.interrupted)
	}
	fmt.Fprintf(stderr, "%d %s: %d ok, %d changed, %d failed, %d unreachable%s in %s; %d bytes of blobs sent from here\n",
		len(lines), plural(len(lines), "target", "targets"), r.ok, r.changed, r.failed, r.unreachable, interrupted, time.Since(began).Round(time.Millisecond),
		m.ModuleStats().ServedBytes)
	switch {
	case ctx.Err() != nil:
		return exitInterrupted
	case r.failed > 0:
		return exitCIFailed
	case r.unreachable > 0:
		return exitCIInfra
	}
	return 0
}

// copyOn runs the battery on nt and returns its outcome, and its context
// (nil if it did not start), still running for --edges. Its failures are
// worded as run's (startFailure, runFailure): an interrupted target is
// "failed" with kind interrupted, a start that failed or a context lost
// during the copy "unreachable". sshConfig is --ssh-config, for hints.
func copyOn(ctx context.Context, fl *spindle.Fleet, nt target.Named, tries []copyTry, sshConfig string) (copyLine, *spindle.Context) {
	l := copyLine{Target: nt.Name, Status: "failed"}
	c, err := fl.Start(ctx, nt.Target)
	if err != nil {
		l.Error = startFailure(ctx, nt, err, sshConfig)
		if l.Error.Kind == kindConnect {
			l.Status = "unreachable"
		}
		return l, nil
	}
	var (
		out, errs *capBuffer
		res       *spindle.TaskResult
		te        *spindle.TaskError
		try       copyTry
	)
	for i := range tries {
		try = tries[i]
		out, errs = newCapBuffer(maxCopyReport), newCapBuffer(64<<10)
		t := try.task
		t.Stdin, t.Stdout, t.Stderr = bytes.NewReader(try.plan), out, errs
		res, err = c.Run(ctx, t)
		if !errors.As(err, &te) || te.Kind != "invalid_call" || !strings.Contains(te.Message, fmt.Sprintf("open root %q", try.destHost)) {
			break
		}
	}
	switch {
	case errors.As(err, &te) && te.Kind == "invalid_call" && strings.Contains(te.Message, fmt.Sprintf("open root %q", try.destHost)):
		// The context could not open DEST's parent to mount it: say so
		// in the operator's terms.
		reason := te.Message[strings.LastIndex(te.Message, ": ")+2:]
		l.Error = &runError{Kind: "dest", Message: fmt.Sprintf("%s (DEST's parent directory): %s", try.destHost, reason)}
		return l, c
	case err != nil:
		l.Error = runFailure(ctx, err)
		if l.Error.Kind == kindLost {
			l.Status = "unreachable"
		}
		return l, c
	case !res.Command:
		l.Error = &runError{Kind: "battery", Message: "the copy battery is not a command"}
		return l, c
	case res.ExitCode != 0:
		msg := strings.TrimSpace(errs.String())
		if msg == "" {
			msg = fmt.Sprintf("exit status %d", res.ExitCode)
		}
		l.Error = &runError{Kind: "copy", Message: strings.TrimPrefix(msg, "copy: ")}
		return l, c
	}
	var rep copyReport
	if err := json.Unmarshal([]byte(out.String()), &rep); err != nil {
		l.Error = &runError{Kind: "battery", Message: fmt.Sprintf("the copy battery's report: %v", err)}
		return l, c
	}
	l.Status, l.Dest, l.Changed, l.Fixed, l.Unchanged, l.Bytes = "ok", rep.Dest, rep.Changed, rep.Fixed, rep.Unchanged, rep.Bytes
	if len(rep.Changed)+len(rep.Fixed) > 0 {
		l.Status = "changed"
	}
	return l, c
}

// copyRecap counts a copy's targets.
type copyRecap struct{ ok, changed, failed, unreachable, interrupted int }

func (r *copyRecap) add(l copyLine) {
	if l.Error != nil && l.Error.Kind == kindInterrupted {
		r.interrupted++
		return
	}
	switch l.Status {
	case "ok":
		r.ok++
	case "changed":
		r.changed++
	case "unreachable":
		r.unreachable++
	default:
		r.failed++
	}
}

// maxCopyPaths is how many written paths a row lists.
const maxCopyPaths = 20

// printCopyLine writes one target's result; everything from the target
// is escaped.
func printCopyLine(w io.Writer, l copyLine) {
	name := escapeLine(l.Target)
	switch l.Status {
	case "unreachable":
		fmt.Fprintf(w, "%s | UNREACHABLE! => %s\n", name, escapeLine(l.Error.Message))
		if l.Error.Hint != "" {
			fmt.Fprintf(w, "    hint: %s\n", escapeLine(l.Error.Hint))
		}
	case "failed":
		fmt.Fprintf(w, "%s | FAILED! => %s: %s\n", name, l.Error.Kind, escapeLine(l.Error.Message))
	case "ok":
		fmt.Fprintf(w, "%s | OK => %s (%d unchanged)\n", name, escapeLine(l.Dest), l.Unchanged)
	default:
		fixed := ""
		if len(l.Fixed) > 0 {
			fixed = fmt.Sprintf("; %d given the mode or owner", len(l.Fixed))
		}
		fmt.Fprintf(w, "%s | CHANGED => %s (%d written, %d bytes%s; %d unchanged)\n", name, escapeLine(l.Dest), len(l.Changed), l.Bytes, fixed, l.Unchanged)
		paths := append(append([]string(nil), l.Changed...), l.Fixed...)
		for i, p := range paths {
			if i == maxCopyPaths {
				fmt.Fprintf(w, "    ... and %d more\n", len(paths)-i)
				break
			}
			if i >= len(l.Changed) {
				fmt.Fprintf(w, "    %s (mode or owner)\n", escapeLine(p))
				continue
			}
			fmt.Fprintf(w, "    %s\n", escapeLine(p))
		}
	}
}

// printCopyRecap writes one line per target, by name: Ansible's recap.
func printCopyRecap(w io.Writer, lines []copyLine) {
	sorted := append([]copyLine(nil), lines...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Target < sorted[j].Target })
	width := 20
	for _, l := range sorted {
		width = max(width, len(escapeLine(l.Target)))
	}
	fmt.Fprintln(w, "\nRECAP")
	for _, l := range sorted {
		var r copyRecap
		r.add(l)
		fmt.Fprintf(w, "%-*s : ok=%d changed=%d unreachable=%d failed=%d\n", width, escapeLine(l.Target),
			r.ok+r.changed, r.changed, r.unreachable, r.failed)
	}
}

// copyEdge is one edge of the tree in --edges --json.
type copyEdge struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Bytes int64  `json:"bytes"`
	Blobs int64  `json:"blobs"`
}

// printEdges asks each context of the tree (every started target's, and
// every intermediate's) what it received from its parent.
func printEdges(ctx context.Context, w io.Writer, asJSON bool, fl *spindle.Fleet, targets []target.Named, ctxs []*spindle.Context) {
	type node struct {
		name, parent string
		c            *spindle.Context
	}
	var nodes []node
	seen := map[string]bool{}
	for i, nt := range targets {
		if ctxs[i] == nil {
			continue
		}
		for k := 1; k < len(nt.Target); k++ {
			name := nt.Target[:k].String()
			if seen[name] {
				continue
			}
			seen[name] = true
			c, err := fl.Get(ctx, nt.Target[:k])
			if err != nil {
				continue
			}
			parent := "master"
			if k > 1 {
				parent = nt.Target[:k-1].String()
			}
			nodes = append(nodes, node{name, parent, c})
		}
		parent := "master"
		if len(nt.Target) > 1 {
			parent = nt.Target[:len(nt.Target)-1].String()
		}
		nodes = append(nodes, node{nt.Target.String(), parent, ctxs[i]})
	}
	if !asJSON {
		fmt.Fprintln(w, "\nEDGES (blobs each context received from its parent)")
	}
	for _, n := range nodes {
		var st spindle.StatsResult
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := n.c.Call(cctx, "stats", nil, &st)
		cancel()
		if err != nil {
			fmt.Fprintf(w, "%s -> %s: %v\n", escapeLine(n.parent), escapeLine(n.name), err)
			continue
		}
		if asJSON {
			b, _ := json.Marshal(copyEdge{From: n.parent, To: n.name, Bytes: st.FetchedBytes, Blobs: st.ModuleFetches})
			fmt.Fprintf(w, "%s\n", jsonSafe(b))
			continue
		}
		fmt.Fprintf(w, "%s -> %s: %d bytes in %d blobs\n", escapeLine(n.parent), escapeLine(n.name), st.FetchedBytes, st.ModuleFetches)
	}
}
