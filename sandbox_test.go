package spindle_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/internal/testutil"
	"github.com/spindle-hq/spindle/routing"
	"github.com/vmihailenco/msgpack/v5"
	"golang.org/x/sys/unix"
)

// landlockABI asks this kernel for its Landlock ABI version, the probe
// go-landlock makes: landlock_create_ruleset(NULL, 0,
// LANDLOCK_CREATE_RULESET_VERSION).
func landlockABI() (int, unix.Errno) {
	r, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	return int(r), e
}

// procField returns field of /proc/PID/task/TID/status for every thread
// of process pid.
func procField(t *testing.T, pid int, field string) map[string]string {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]string)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "status"))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = "absent"
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, field+":"); ok {
				out[e.Name()] = strings.TrimSpace(v)
			}
		}
	}
	return out
}

// procLimit returns the soft and hard columns of the line of
// /proc/PID/limits that starts with name.
func procLimit(t *testing.T, pid int, name string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok {
			if f := strings.Fields(rest); len(f) >= 2 {
				return f[0] + " " + f[1]
			}
		}
	}
	t.Fatalf("no %q in /proc/%d/limits:\n%s", name, pid, b)
	return ""
}

// checkSandboxed checks what c says of its layers and what /proc says of
// its process, and reports whether Landlock is active in it (with rw
// read-write paths).
func checkSandboxed(t *testing.T, ctx context.Context, c *spindle.Context, rw int) (spindle.SandboxResult, bool) {
	t.Helper()
	var sr spindle.SandboxResult
	if err := c.Call(ctx, "sandbox", nil, &sr); err != nil {
		t.Fatalf("sandbox of %s: %v", c, err)
	}
	t.Logf("%s: %s", c, sr.Report)
	var names []string
	for _, l := range sr.Layers {
		names = append(names, l.Name)
	}
	if !sr.Sandboxed || !slices.Equal(names, []string{"no_new_privs", "rlimit", "landlock"}) {
		t.Fatalf("sandbox of %s = %+v, want sandboxed with layers no_new_privs, rlimit, landlock", c, sr)
	}
	if l := sr.Layers[0]; !l.Active {
		t.Errorf("no_new_privs layer of %s = %+v, want active", c, l)
	}
	if l := sr.Layers[1]; !l.Active || l.Detail != "nofile=4096 core=0" {
		t.Errorf("rlimit layer of %s = %+v, want active with %q", c, l, "nofile=4096 core=0")
	}
	ll := sr.Layers[2]
	abi, errno := landlockABI()
	if errno != 0 {
		t.Logf("Landlock is not available on this kernel (landlock_create_ruleset: %s): checking the report says so with the kernel's reason", unix.ErrnoName(errno))
		want := "landlock off (kernel: landlock_create_ruleset: " + unix.ErrnoName(errno)
		if ll.Active || !strings.Contains(sr.Report, want) {
			t.Errorf("report of %s = %q, want it to contain %q", c, sr.Report, want)
		}
	} else if want := fmt.Sprintf("abi=%d rw=%d ro=", abi, rw); !ll.Active || !strings.HasPrefix(ll.Detail, want) {
		t.Errorf("landlock layer of %s = %+v, want active with detail starting %q (kernel ABI %d)", c, ll, want, abi)
	}

	// What the kernel says of the process.
	for tid, v := range procField(t, c.PID(), "NoNewPrivs") {
		if v != "1" {
			t.Errorf("%s: thread %s: NoNewPrivs = %q, want 1", c, tid, v)
		}
	}
	for _, l := range []struct{ name, want string }{
		{"Max open files", "4096 4096"},
		{"Max core file size", "0 0"},
	} {
		if got := procLimit(t, c.PID(), l.name); got != l.want {
			t.Errorf("%s: /proc/%d/limits %q = %q, want %q", c, c.PID(), l.name, got, l.want)
		}
	}
	// stats reads /proc/self: still allowed.
	st := stats(t, ctx, c)
	if st.Sandbox != sr.Report || st.FDs <= 0 || st.RSSBytes <= 0 {
		t.Errorf("stats of %s = %+v, want sandbox %q and readable /proc/self", c, st, sr.Report)
	}
	return sr, ll.Active
}

func TestSandboxLocalChild(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := taskContext(t)
	m, logs := newMaster(t, spindle.Config{CacheDir: sharedCache()})
	hello := addModule(t, m, testutil.BuildWasm(t, "examples/wasm/hello", true))
	c, err := m.StartLocal(ctx, spindle.LocalOptions{Name: "boxed", Sandbox: true})
	if err != nil {
		t.Fatal(err)
	}
	plain := startLocal(t, ctx, m, "plain")
	sr, landlock := checkSandboxed(t, ctx, c, 2) // its cache dir and work root

	// Logged once, at INFO, by the child.
	recs := logs.find(func(r logRecord) bool { return r.Msg == "sandbox applied" })
	if len(recs) != 1 || recs[0].Level != slog.LevelInfo || recs[0].Attrs["context"] != "boxed" || recs[0].Attrs["layers"] != sr.Report {
		t.Errorf("sandbox records = %v, want one INFO from boxed with layers %q", recs, sr.Report)
	}
	if st := stats(t, ctx, plain); st.Sandbox != "off (not started with Sandbox)" {
		t.Errorf("stats of an unsandboxed context: sandbox = %q, want %q", st.Sandbox, "off (not started with Sandbox)")
	}

	// It still runs wasm, compiling into a cache of its own.
	res, err := c.Run(ctx, spindle.Task{Module: hello, Task: "hello", Input: mustPack(t, map[string]string{"name": "box"})})
	if err != nil {
		t.Fatalf("Run(hello) in a sandboxed context: %v", err)
	}
	var out struct {
		Greeting string `msgpack:"greeting"`
	}
	if err := msgpack.Unmarshal(res.Output, &out); err != nil || out.Greeting != "hello, box" {
		t.Fatalf("hello output = %q (%v), want greeting %q", res.Output, err, "hello, box")
	}
	if _, err := os.Stat(filepath.Join(sharedCache(), "sandbox", "modules", hello)); err != nil {
		t.Errorf("the sandboxed context's module cache: %v", err)
	}

	// Files: /etc/hostname is readable by the same binary unsandboxed, not
	// sandboxed; the work root is writable, the temp dir around it not, nor
	// the cache the master and unsandboxed contexts read.
	var host []byte
	if err := plain.Call(ctx, "read_file", "/etc/hostname", &host); err != nil {
		t.Fatalf("read /etc/hostname unsandboxed: %v", err)
	}
	work, err := spindle.WorkRoot()
	if err != nil {
		t.Fatal(err)
	}
	inWork := filepath.Join(work, "sandbox-test-"+t.Name())
	outside := filepath.Join(filepath.Dir(work), "sandbox-test-outside")
	poison := filepath.Join(sharedCache(), "modules", "sandbox-test-poison")
	defer os.Remove(inWork)
	defer os.Remove(outside)
	defer os.Remove(poison)
	readErr := c.Call(ctx, "read_file", "/etc/hostname", nil)
	writeErr := c.Call(ctx, "write_file", inWork, nil)
	outErr := c.Call(ctx, "write_file", outside, nil)
	poisonErr := c.Call(ctx, "write_file", poison, nil)
	if writeErr != nil {
		t.Errorf("write in the work root %s: %v", work, writeErr)
	}
	if landlock {
		t.Logf("Landlock active: read /etc/hostname: %v; write %s: %v; write %s: %v", readErr, outside, outErr, poison, poisonErr)
		for _, e := range []error{readErr, outErr, poisonErr} {
			if e == nil || !strings.Contains(e.Error(), "permission denied") {
				t.Errorf("sandboxed read of /etc/hostname, write outside the work root or into the shared cache = %v, want EACCES (permission denied)", e)
			}
		}
	} else if readErr != nil {
		t.Errorf("read /etc/hostname without Landlock = %v, want it to work", readErr)
	}

	// A leaf: no children.
	_, err = c.StartLocal(ctx, spindle.LocalOptions{Name: "grandchild"})
	var se *spindle.StartError
	if !errors.Is(err, spindle.ErrChildStart) || !errors.Is(err, routing.ErrRefused) || !errors.As(err, &se) || se.Class != spindle.ClassRefused ||
		err.Error() != "child grandchild (local): start refused: context boxed is sandboxed: a sandboxed context is a leaf and starts no children" {
		t.Errorf("start a child of a sandboxed context = %v, want ErrChildStart and ErrRefused, class refused, saying it is a leaf", err)
	}
	if err := c.Ping(ctx); err != nil {
		t.Errorf("ping after the refused start: %v", err)
	}
}

// TestSandboxThroughIntermediate: Sandbox travels in START_CHILD; the
// intermediate itself is not sandboxed.
func TestSandboxThroughIntermediate(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := testContext(t)
	m, _ := newMaster(t, spindle.Config{CacheDir: "-"})
	mid := startLocal(t, ctx, m, "mid")
	leaf, err := mid.StartLocal(ctx, spindle.LocalOptions{Name: "leaf", Sandbox: true})
	if err != nil {
		t.Fatal(err)
	}
	if st := stats(t, ctx, mid); st.Sandbox != "off (not started with Sandbox)" {
		t.Errorf("stats of the intermediate: sandbox = %q, want it off", st.Sandbox)
	}
	checkSandboxed(t, ctx, leaf, 1) // memory-only cache: the work root alone
}
