package host_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/host"
	"github.com/spindle-hq/spindle/internal/testutil"
)

// files runs the gofiles guest with args and returns its report: for each
// operation, what follows "OP -> ", and for fill, the bytes written under
// "filled PATH".
func files(t *testing.T, h *host.Host, m *host.Module, call host.Call, args ...string) map[string]string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	call.Args, call.Stdout, call.Stderr = args, &stdout, &stderr
	res, err := h.Run(t.Context(), m, call)
	if err != nil {
		t.Fatalf("Run(%q): %v; stderr %q", args, err, stderr.String())
	}
	if res.ExitCode != 0 {
		t.Fatalf("Run(%q): exit code %d; stderr %q", args, res.ExitCode, stderr.String())
	}
	r := make(map[string]string)
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		if op, v, ok := strings.Cut(line, " -> "); ok {
			r[op] = v
		} else if rest, ok := strings.CutPrefix(line, "filled "); ok {
			p, n, _ := strings.Cut(rest, " ")
			r["filled "+p] = n
		}
	}
	for _, a := range args {
		if _, ok := r[a]; !ok {
			t.Fatalf("Run(%q): no report of %s in %q", args, a, stdout.String())
		}
	}
	return r
}

// want fails t unless each op's report is the one given.
func want(t *testing.T, r map[string]string, reports map[string]string) {
	t.Helper()
	for op, w := range reports {
		if r[op] != w {
			t.Errorf("%s -> %q, want %q", op, r[op], w)
		}
	}
}

// TestDiskBudget fills a call's writable mounts past Limits.DiskBytes: the
// write that passes gets ENOSPC and the guest goes on, the file holds at
// most the budget, the mounts spend one budget together, and the next call
// has a budget of its own.
func TestDiskBudget(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	m := compile(t, h, "gofiles")
	out, tmp := t.TempDir(), t.TempDir()
	const budget = 1 << 20
	call := host.Call{
		Limits: host.Limits{DiskBytes: budget},
		Grants: host.Grants{Mounts: []host.Mount{
			{HostDir: out, GuestDir: "/out"},
			{HostDir: tmp, GuestDir: "/tmp"},
		}},
	}
	for i := range 2 {
		name := fmt.Sprintf("f%d", i)
		fill := "fill:/out/" + name + ":65536"
		r := files(t, h, m, call, fill, "write:/tmp/x:1", "mkdir:/tmp/d", "truncate:/out/"+name+":2000000",
			"write:/dev/null:1", "stat:/out/"+name)
		// The guest got ENOSPC for each, and went on to stat the file.
		want(t, r, map[string]string{
			fill:                                 "err ENOSPC",
			"write:/tmp/x:1":                     "err ENOSPC",
			"mkdir:/tmp/d":                       "err ENOSPC",
			"truncate:/out/" + name + ":2000000": "err ENOSPC",
			"write:/dev/null:1":                  "err ENOENT notexist",
		})
		written, _ := strconv.ParseInt(r["filled /out/"+name], 10, 64)
		fi, err := os.Stat(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		// Making the file cost an entry; its bytes are the rest.
		if wantBytes := int64(budget - 4096); written != wantBytes || fi.Size() != wantBytes {
			t.Errorf("call %d: wrote %d, the file holds %d; want the budget less an entry, %d", i, written, fi.Size(), wantBytes)
		}
		if got := r["stat:/out/"+name]; got != fmt.Sprintf("ok ---------- %d", written) {
			t.Errorf("call %d: after ENOSPC, stat = %q; want the file", i, got)
		}
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Errorf("/tmp holds %v past the budget, want nothing", entries)
	}
}

// TestDevNull writes to and reads /dev/null as shells and Go programs do,
// and checks that /dev holds null alone, needs no mount and spends no disk
// budget.
func TestDevNull(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	m := compile(t, h, "gofiles")
	ops := []string{
		"write:/dev/null:1048576", "read:/dev/null", "stat:/dev/null", "stat:/dev", "ls:/dev",
		"open:/dev/zero", "write:/dev/zero:1", "mkdir:/dev/d", "stat:/etc/passwd",
	}
	reports := map[string]string{
		"write:/dev/null:1048576": "ok ",
		"read:/dev/null":          "ok 0",
		"stat:/dev/null":          "ok Dc--------- 0",
		"stat:/dev":               "ok d--------- 0",
		"ls:/dev":                 "ok null",
		"open:/dev/zero":          "err ENOENT notexist",
		"write:/dev/zero:1":       "err EROFS",
		"mkdir:/dev/d":            "err EROFS",
		"stat:/etc/passwd":        "err ENOENT notexist",
	}
	want(t, files(t, h, m, host.Call{Grants: host.Grants{DevNull: true}}, ops...), reports)

	// With a writable mount and a budget of two entries, a megabyte to
	// /dev/null spends nothing: two files can still be made.
	out := t.TempDir()
	call := host.Call{
		Limits: host.Limits{DiskBytes: 2 * 4096},
		Grants: host.Grants{DevNull: true, Mounts: []host.Mount{{HostDir: out, GuestDir: "/out"}}},
	}
	want(t, files(t, h, m, call, append(ops, "write:/out/a:0", "write:/out/b:0", "write:/out/c:0")...), map[string]string{
		"write:/dev/null:1048576": "ok ",
		"write:/out/a:0":          "ok ",
		"write:/out/b:0":          "ok ",
		"write:/out/c:0":          "err ENOSPC",
	})

	_, err := h.Run(t.Context(), m, host.Call{Grants: host.Grants{DevNull: true,
		Mounts: []host.Mount{{HostDir: out, GuestDir: "/dev"}}}})
	if !errors.Is(err, host.ErrInvalidCall) {
		t.Errorf("Run with DevNull and a mount at /dev = %v, want ErrInvalidCall", err)
	}
	rm := compile(t, h, "goreactor")
	if _, err := h.Run(t.Context(), rm, host.Call{Task: "sandbox", Pooled: true, Grants: host.Grants{DevNull: true}}); !errors.Is(err, host.ErrInvalidCall) {
		t.Errorf("pooled Run with DevNull = %v, want ErrInvalidCall", err)
	}
}

// TestOutsideMounts looks for paths outside every mount: they are not there
// (fs.ErrNotExist, not EBADF) and cannot be made, while the mounts work; a
// mount at "/" takes the place of the empty root.
func TestOutsideMounts(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	m := compile(t, h, "gofiles")
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, ".editorconfig"), []byte("root = true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ops := []string{
		"stat:/.editorconfig", "open:/nope/x", "read:/x", "mkdir:/newdir", "mkdirall:/a/b",
		"write:/x:1", "ls:/", "stat:/", "read:/src/.editorconfig",
	}
	notThere := map[string]string{
		"stat:/.editorconfig":     "err ENOENT notexist",
		"open:/nope/x":            "err ENOENT notexist",
		"read:/x":                 "err ENOENT notexist",
		"mkdir:/newdir":           "err EROFS",
		"mkdirall:/a/b":           "err EROFS",
		"write:/x:1":              "err EROFS",
		"ls:/":                    "ok ",
		"stat:/":                  "ok d--------- 0",
		"read:/src/.editorconfig": "ok 12",
	}
	call := host.Call{Grants: host.Grants{Mounts: []host.Mount{{HostDir: src, GuestDir: "/src", ReadOnly: true}}}}
	want(t, files(t, h, m, call, ops...), notThere)

	// Without any mount or DevNull a command still has the empty root:
	// ENOENT, not EBADF (shfmt and staticcheck stop at an EBADF).
	r := files(t, h, m, host.Call{}, "stat:/.editorconfig", "mkdir:/newdir")
	if got := r["stat:/.editorconfig"]; got != "err ENOENT notexist" {
		t.Errorf("without mounts, stat = %q, want ENOENT", got)
	}
	if got := r["mkdir:/newdir"]; got != "err EROFS" {
		t.Errorf("without mounts, mkdir = %q, want EROFS", got)
	}

	// A mount at "/": the guest sees the directory itself there.
	root := t.TempDir()
	call = host.Call{Grants: host.Grants{Mounts: []host.Mount{
		{HostDir: root, GuestDir: "/"},
		{HostDir: src, GuestDir: "/src", ReadOnly: true},
	}}}
	want(t, files(t, h, m, call, "stat:/.editorconfig", "mkdir:/newdir", "ls:/", "read:/src/.editorconfig"), map[string]string{
		"stat:/.editorconfig":     "err ENOENT notexist",
		"mkdir:/newdir":           "ok ",
		"ls:/":                    "ok newdir",
		"read:/src/.editorconfig": "ok 12",
	})
}

// TestStdinLarge streams 8 MiB to a guest's stdin from a file and from a
// pipe; it reads them whole.
func TestStdinLarge(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	m := compile(t, h, "gofiles")
	data := make([]byte, 8<<20)
	rng := rand.NewChaCha8([32]byte{1})
	rng.Read(data)
	sum := sha256.Sum256(data)
	wantReport := fmt.Sprintf("ok %d %s", len(data), hex.EncodeToString(sum[:]))
	p := filepath.Join(t.TempDir(), "in")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}

	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want(t, files(t, h, m, host.Call{Stdin: f}, "stdin"), map[string]string{"stdin": wantReport})

	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	wrote := make(chan error, 1)
	go func() {
		_, err := pw.Write(data)
		wrote <- errors.Join(err, pw.Close())
	}()
	want(t, files(t, h, m, host.Call{Stdin: pr}, "stdin"), map[string]string{"stdin": wantReport})
	if err := <-wrote; err != nil {
		t.Errorf("writing the pipe: %v", err)
	}
}

// TestStdinBlocked runs a guest blocked reading a stdin that never ends:
// when stdin has a read deadline (an *os.File pipe, a net.Conn), the call
// ends at its timeout, or when its ctx is cancelled, and stdin is left as
// it was. A reader without a read deadline holds the call until its Read
// returns, as Call.Stdin says.
func TestStdinBlocked(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	m := compile(t, h, "gofiles")
	for _, tt := range []struct {
		name    string
		timeout time.Duration
		// stdin returns the guest's stdin and its other end.
		stdin    func(t *testing.T) (io.ReadCloser, io.WriteCloser)
		cancel   bool // cancel Run's ctx once the guest has read all
		wantKind host.Kind
	}{
		{"pipe timeout", 3 * time.Second, func(t *testing.T) (io.ReadCloser, io.WriteCloser) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			return r, w
		}, false, host.KindTimeout},
		// net.Pipe is synchronous: once a Write returns, the guest has
		// read all of it, and waits for more.
		{"conn cancel", 30 * time.Second, func(*testing.T) (io.ReadCloser, io.WriteCloser) {
			r, w := net.Pipe()
			return r, w
		}, true, host.KindCancelled},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, w := tt.stdin(t)
			defer r.Close()
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			// More than a pipe holds: once written, the guest is reading.
			reading, wrote := make(chan struct{}), make(chan struct{})
			go func() {
				defer close(wrote)
				if _, err := w.Write(make([]byte, 1<<20)); err == nil {
					close(reading)
					if tt.cancel {
						// Time to hash the last bytes and read again.
						time.Sleep(200 * time.Millisecond)
						cancel()
					}
				}
			}()
			// Ends a Run that the read would hold for good.
			watchdog := time.AfterFunc(20*time.Second, func() { w.Close() })
			defer func() { w.Close(); <-wrote }()

			start := time.Now()
			_, err := h.Run(ctx, m, host.Call{Args: []string{"stdin"}, Stdin: r, Limits: host.Limits{Timeout: tt.timeout}})
			d := time.Since(start)
			select {
			case <-reading:
			default:
				t.Fatalf("Run = %v after %v, and the guest did not read its stdin", err, d)
			}
			if !watchdog.Stop() {
				t.Fatalf("Run = %v after %v: it returned only once stdin was closed", err, d)
			}
			if host.KindOf(err) != tt.wantKind {
				t.Errorf("Run = %v, want kind %s", err, tt.wantKind)
			}
			if d > tt.timeout+5*time.Second {
				t.Errorf("Run returned after %v, want about %v", d, tt.timeout)
			}
			// The deadline that ended the read is gone: what the guest
			// left, and more, can be read.
			go w.Write([]byte("more"))
			var got []byte
			buf := make([]byte, 64<<10)
			for !bytes.HasSuffix(got, []byte("more")) {
				n, err := r.Read(buf)
				if err != nil {
					t.Fatalf("reading stdin after Run, after %d bytes: %v", len(got), err)
				}
				got = append(got, buf[:n]...)
			}
		})
	}

	t.Run("reader without a deadline", func(t *testing.T) {
		pr, pw := io.Pipe()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		const hold = time.Second
		var cancelled time.Time
		done := make(chan struct{})
		go func() {
			defer close(done)
			if _, err := pw.Write([]byte("x")); err != nil {
				return // the guest did not read
			}
			time.Sleep(200 * time.Millisecond) // for the guest to read again
			cancelled = time.Now()
			cancel()
			time.Sleep(hold)
			pw.Close()
		}()
		watchdog := time.AfterFunc(20*time.Second, func() { pw.CloseWithError(errors.New("watchdog")) })
		defer watchdog.Stop()
		_, err := h.Run(ctx, m, host.Call{Args: []string{"stdin"}, Stdin: pr})
		returned := time.Now()
		pw.CloseWithError(errors.New("test over"))
		<-done
		if cancelled.IsZero() {
			t.Fatalf("Run = %v, and the guest did not read its stdin", err)
		}
		if host.KindOf(err) != host.KindCancelled {
			t.Errorf("Run = %v, want kind cancelled", err)
		}
		if d := returned.Sub(cancelled); d < hold {
			t.Errorf("Run returned %v after its ctx ended, before the Read did (%v): "+
				"the limitation is gone, update Call.Stdin's doc", d, hold)
		}
	})
}

// TestCreatedModes: what a guest makes in a writable mount gets 0644 (a
// file) or 0755 (a directory), less the umask, although WASI passes no
// mode and wazero asks for 0600 and 0700. Each umask is the host
// process's, set for the call.
func TestCreatedModes(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	m := compile(t, h, "gofiles")
	for _, umask := range []int{0o022, 0o002, 0o027, 0o077} {
		t.Run(fmt.Sprintf("umask %03o", umask), func(t *testing.T) {
			out := t.TempDir()
			call := host.Call{Grants: host.Grants{Mounts: []host.Mount{{HostDir: out, GuestDir: "/out"}}}}
			old := syscall.Umask(umask)
			r := files(t, h, m, call, "write:/out/f:3", "mkdir:/out/d", "mkdirall:/out/a/b", "write:/out/a/b/g:1")
			syscall.Umask(old)
			for op, got := range r {
				if strings.TrimSpace(got) != "ok" {
					t.Errorf("%s -> %q, want ok", op, got)
				}
			}
			for name, mode := range map[string]os.FileMode{"f": 0o644, "a/b/g": 0o644, "d": 0o755, "a": 0o755, "a/b": 0o755} {
				fi, err := os.Lstat(filepath.Join(out, name))
				if wantMode := mode &^ os.FileMode(umask); err != nil || fi.Mode().Perm() != wantMode {
					t.Errorf("%s: mode %v, %v; want %04o", name, fi.Mode(), err, wantMode)
				}
			}
		})
	}
}

// TestModesAndOwners: path_attrs and path_regrant through a Go guest
// (guest.Lattrs, guest.Regrant): a file's mode and owner are read in any
// mount; an existing file is given the mount's granted mode and owner
// only, and only in a writable mount that grants them; outside every host
// mount there is nothing to read or give.
func TestModesAndOwners(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	m := compile(t, h, "gofiles")
	out, ro := t.TempDir(), t.TempDir()
	for _, p := range []string{filepath.Join(out, "f"), filepath.Join(ro, "g")} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o700|fs.ModeSetuid); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("f", filepath.Join(out, "ln")); err != nil {
		t.Fatal(err)
	}
	uid, gid := os.Geteuid(), os.Getegid()
	made := host.Made{FileMode: 0o640, UID: -1, GID: -1}
	call := host.Call{Grants: host.Grants{DevNull: true, Mounts: []host.Mount{
		{HostDir: out, GuestDir: "/out", Made: made},
		{HostDir: out, GuestDir: "/plain"}, // the same directory, nothing granted
		{HostDir: ro, GuestDir: "/ro", ReadOnly: true},
	}}}
	ids := fmt.Sprintf(" %d %d", uid, gid)
	r := files(t, h, m, call, "lattrs:/out/f", "lattrs:/ro/g", "lattrs:/out/ln", "lattrs:/out/nope", "lattrs:/out",
		"lattrs:/etc/passwd", "lattrs:/dev/null", "lattrs:/out/../ro/g",
		"regrant:/ro/g:1", "regrant:/plain/f:1", "regrant:/out/f:2", "regrant:/dev/null:1", "regrant:/out/nope:1",
		"regrant:/out/f:1", "lattrs:/plain/f", "regrant:/out/./f:1", "regrant:/out/ln:1")
	want(t, r, map[string]string{
		"lattrs:/out/f":       "ok 4700" + ids,
		"lattrs:/ro/g":        "ok 4700" + ids,
		"lattrs:/out/ln":      "ok 777" + ids,
		"lattrs:/out/nope":    "err ENOENT notexist",
		"lattrs:/etc/passwd":  "err ENOENT notexist",
		"lattrs:/dev/null":    "err unsupported",
		"lattrs:/out/../ro/g": "ok 4700" + ids, // cleaned as a path: /ro/g
		"regrant:/ro/g:1":     "err denied",
		"regrant:/plain/f:1":  "err denied",
		"regrant:/out/f:2":    "err denied", // no owner granted
		"regrant:/dev/null:1": "err denied",
		"regrant:/out/nope:1": "err ENOENT notexist",
		"regrant:/out/f:1":    "ok 1",
		"lattrs:/plain/f":     "ok 640" + ids, // setuid cleared
		"regrant:/out/./f:1":  "ok 0",         // already as granted
		"regrant:/out/ln:1":   "ok 0",         // a symlink has no mode to give
	})
	if !strings.HasPrefix(r["lattrs:/out"], "ok ") {
		t.Errorf("lattrs of a mount's root = %q", r["lattrs:/out"])
	}
	if fi, err := os.Stat(filepath.Join(ro, "g")); err != nil || fi.Mode() != 0o700|fs.ModeSetuid {
		t.Errorf("the read-only mount's file: %v, %v; want it unchanged", fi, err)
	}
	if os.Geteuid() != 0 {
		return
	}
	call.Grants.Mounts[0].Made = host.Made{Chown: true, UID: 65534, GID: -1}
	r = files(t, h, m, call, "regrant:/out/f:2", "lattrs:/out/f", "regrant:/out/f:3")
	want(t, r, map[string]string{
		"regrant:/out/f:2": "ok 2",
		"lattrs:/out/f":    fmt.Sprintf("ok 640 65534 %d", gid),
		"regrant:/out/f:3": "err denied", // no mode granted
	})
}
