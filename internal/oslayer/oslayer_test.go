package oslayer_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/internal/oslayer"
	"github.com/spindle-hq/spindle/internal/testutil"
	"golang.org/x/sys/unix"
)

// Apply is irreversible and process-wide, so every test applies it in a
// helper process: the test binary re-executed with helperEnv set, which
// applies the Config it is given, runs the probes, prints a helperResult as
// one JSON line and waits for its stdin to close, so that the test can read
// its /proc entries while it is still confined.
const (
	helperEnv = "OSLAYER_TEST_HELPER"
	// lockedThreads is how many OS threads the helper pins goroutines to
	// before Apply: each probes a forbidden file after it, so a layer that
	// reached only the calling thread would show.
	lockedThreads = 4
)

// probe is one thing the helper tries after Apply.
type probe struct {
	Op   string // read, write, mkdir, rename, remove, readdir, exec, fsize, nofile, threads
	Path string
	To   string // rename's target
	N    int64  // fsize: bytes to write
}

type probeResult struct {
	Err   string // "" or the errno's name (or the error's text)
	Count int    // nofile: descriptors opened before the failure
}

type helperResult struct {
	NNPBefore string // NoNewPrivs in /proc/self/status before Apply
	Report    oslayer.Report
	String    string
	Probes    []probeResult
	Threads   []string // threads: what each locked thread got
	ApplyNs   int64    // how long Apply took
}

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(runHelper())
	}
	testutil.VerifyTestMain(m)
}

func runHelper() int {
	var in struct {
		Config oslayer.Config
		Probes []probe
	}
	env := os.Getenv(helperEnv)
	os.Unsetenv(helperEnv) // what it execs is never a helper itself
	if err := json.Unmarshal([]byte(env), &in); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 2
	}
	var res helperResult
	res.NNPBefore = statusField("/proc/self/status", "NoNewPrivs")
	// Threads that exist before Apply, each with a goroutine pinned to it
	// that probes after Apply.
	start := make(chan string)
	var wg sync.WaitGroup
	res.Threads = make([]string, lockedThreads)
	for i := range lockedThreads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			path := <-start
			if path != "" {
				res.Threads[i] = errName(readFile(path))
			}
		}()
	}
	t0 := time.Now()
	res.Report = oslayer.Apply(in.Config)
	res.ApplyNs = int64(time.Since(t0))
	res.String = res.Report.String()
	var threadsPath string
	for _, p := range in.Probes {
		var r probeResult
		switch p.Op {
		case "read":
			r.Err = errName(readFile(p.Path))
		case "write":
			r.Err = errName(os.WriteFile(p.Path, []byte("x"), 0o600))
		case "mkdir":
			r.Err = errName(os.Mkdir(p.Path, 0o700))
		case "rename":
			r.Err = errName(os.Rename(p.Path, p.To))
		case "remove":
			r.Err = errName(os.Remove(p.Path))
		case "readdir":
			_, err := os.ReadDir(p.Path)
			r.Err = errName(err)
		case "exec":
			// Stdio given, so os/exec opens no /dev/null: what is refused
			// is the exec itself.
			cmd := exec.Command(p.Path, "-test.run=^$") // a test binary then runs no test
			cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stderr, os.Stderr
			r.Err = errName(cmd.Run())
		case "fsize":
			r.Err = errName(writeBytes(p.Path, p.N))
		case "nofile":
			r.Count, r.Err = openUntilFailure(p.Path)
		case "threads":
			threadsPath = p.Path
		default:
			r.Err = "unknown probe " + p.Op
		}
		res.Probes = append(res.Probes, r)
	}
	for range lockedThreads {
		start <- threadsPath
	}
	wg.Wait()
	b, _ := json.Marshal(&res)
	fmt.Printf("%s\n", b)
	_, _ = io.Copy(io.Discard, os.Stdin) // until the test has looked at /proc
	return 0
}

func readFile(path string) error {
	_, err := os.ReadFile(path)
	return err
}

func writeBytes(path string, n int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.Write(make([]byte, n))
	return err
}

// openUntilFailure opens path until an open fails, closes them all, and
// returns how many it opened and the error's name.
func openUntilFailure(path string) (int, string) {
	var fs []*os.File
	defer func() {
		for _, f := range fs {
			f.Close()
		}
	}()
	for len(fs) < 1<<16 {
		f, err := os.Open(path)
		if err != nil {
			return len(fs), errName(err)
		}
		fs = append(fs, f)
	}
	return len(fs), ""
}

func errName(err error) string {
	if err == nil {
		return ""
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return unix.ErrnoName(e)
	}
	return err.Error()
}

func statusField(path, field string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "unreadable: " + err.Error()
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "absent"
}

// helper is a running helper process.
type helper struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	res   helperResult
}

// startHelper starts a helper that applies cfg and runs probes, and
// returns once it has reported. It is stopped when the test ends.
func startHelper(t *testing.T, cfg oslayer.Config, probes ...probe) *helper {
	t.Helper()
	in, err := json.Marshal(map[string]any{"Config": cfg, "Probes": probes})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	// GORACE: else a -race helper exits a second late.
	cmd.Env = append(os.Environ(), helperEnv+"="+string(in), "GORACE=atexit_sleep_ms=0")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{cmd: cmd, stdin: stdin}
	t.Cleanup(func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("helper: %v", err)
		}
	})
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err != nil {
		t.Fatalf("helper's report: %v", err)
	}
	if err := json.Unmarshal(line, &h.res); err != nil {
		t.Fatalf("helper's report %q: %v", line, err)
	}
	if len(h.res.Probes) != len(probes) {
		t.Fatalf("helper ran %d probes, want %d", len(h.res.Probes), len(probes))
	}
	return h
}

// threadStatus returns the NoNewPrivs field of each thread of the helper.
func (h *helper) threadStatus(t *testing.T) map[string]string {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/task", h.cmd.Process.Pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]string)
	for _, e := range ents {
		out[e.Name()] = statusField(filepath.Join(dir, e.Name(), "status"), "NoNewPrivs")
	}
	return out
}

// limits returns the soft and hard columns of the helper's
// /proc/PID/limits line that starts with name.
func (h *helper) limits(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", h.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok {
			f := strings.Fields(rest)
			if len(f) >= 2 {
				return f[0] + " " + f[1]
			}
		}
	}
	t.Fatalf("no %q in /proc/%d/limits:\n%s", name, h.cmd.Process.Pid, b)
	return ""
}

// kernelABI asks the kernel for its Landlock ABI version as go-landlock
// does, independently of the package under test.
func kernelABI() (int, syscall.Errno) {
	r, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	return int(r), e
}

// checkLandlock checks the landlock layer against the kernel's own answer
// and reports whether Landlock is active (so the probes that need it apply).
func checkLandlock(t *testing.T, rep oslayer.Report, wantDetail string) bool {
	t.Helper()
	l, ok := rep.Layer(oslayer.Landlock)
	if !ok {
		t.Fatalf("report %q has no landlock layer", rep)
	}
	abi, errno := kernelABI()
	if errno != 0 {
		t.Logf("Landlock unavailable on this kernel: landlock_create_ruleset = %s; checking the report says so", unix.ErrnoName(errno))
		if want := "landlock off (kernel: landlock_create_ruleset: " + unix.ErrnoName(errno); l.Active || !strings.HasPrefix(l.String(), want) {
			t.Errorf("landlock layer = %q, want it to start with %q", l, want)
		}
		return false
	}
	t.Logf("kernel Landlock ABI %d", abi)
	want := fmt.Sprintf("abi=%d %s", abi, wantDetail)
	if !l.Active || l.Detail != want {
		t.Errorf("landlock layer = %q, want active with %q", l, want)
	}
	return l.Active
}

func TestOSLayerConfines(t *testing.T) {
	testutil.VerifyNone(t)
	dir := t.TempDir()
	rw, ro, outside := filepath.Join(dir, "rw"), filepath.Join(dir, "ro"), filepath.Join(dir, "outside")
	for _, d := range []string{rw, ro, outside} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{filepath.Join(ro, "f"), filepath.Join(outside, "secret"), filepath.Join(rw, "old")} {
		if err := os.WriteFile(f, []byte("data"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const maxFiles, maxBytes = 64, 1 << 20
	cfg := oslayer.Config{
		ReadWrite:    []string{rw},
		ReadOnly:     []string{ro, "/dev/null"},
		MaxFiles:     maxFiles,
		MaxFileBytes: maxBytes,
		NoCore:       true,
	}
	probes := []struct {
		p       probe
		want    string // with Landlock
		wantOff string // without
	}{
		{probe{Op: "read", Path: filepath.Join(ro, "f")}, "", ""},
		{probe{Op: "readdir", Path: ro}, "", ""},
		{probe{Op: "write", Path: filepath.Join(ro, "f")}, "EACCES", ""},
		{probe{Op: "write", Path: filepath.Join(ro, "new")}, "EACCES", ""},
		{probe{Op: "read", Path: filepath.Join(outside, "secret")}, "EACCES", ""},
		{probe{Op: "readdir", Path: outside}, "EACCES", ""},
		{probe{Op: "read", Path: "/etc/passwd"}, "EACCES", ""},
		{probe{Op: "write", Path: filepath.Join(rw, "new")}, "", ""},
		{probe{Op: "mkdir", Path: filepath.Join(rw, "d")}, "", ""},
		{probe{Op: "rename", Path: filepath.Join(rw, "new"), To: filepath.Join(rw, "d", "moved")}, "", ""},
		{probe{Op: "remove", Path: filepath.Join(rw, "old")}, "", ""},
		{probe{Op: "rename", Path: filepath.Join(rw, "d", "moved"), To: filepath.Join(outside, "moved")}, "EACCES", ""},
		{probe{Op: "exec", Path: os.Args[0]}, "EACCES", ""},
		// A write past RLIMIT_FSIZE fails; the helper lives on to report it.
		{probe{Op: "fsize", Path: filepath.Join(rw, "big"), N: maxBytes + 1}, "EFBIG", "EFBIG"},
		{probe{Op: "nofile", Path: "/dev/null"}, "EMFILE", "EMFILE"},
		{probe{Op: "threads", Path: filepath.Join(outside, "secret")}, "", ""},
	}
	var ps []probe
	for _, p := range probes {
		ps = append(ps, p.p)
	}
	h := startHelper(t, cfg, ps...)
	t.Logf("report: %s (Apply took %v)", h.res.String, time.Duration(h.res.ApplyNs))

	if h.res.NNPBefore != "0" {
		t.Fatalf("NoNewPrivs before Apply = %q: the test runs with it already set and cannot tell", h.res.NNPBefore)
	}
	if l, _ := h.res.Report.Layer(oslayer.NoNewPrivs); !l.Active {
		t.Errorf("no_new_privs layer = %q, want on", l)
	}
	for tid, v := range h.threadStatus(t) {
		if v != "1" {
			t.Errorf("thread %s of the helper: NoNewPrivs = %q, want 1", tid, v)
		}
	}
	wantRlimit := fmt.Sprintf("rlimit nofile=%d core=0 fsize=%d on", maxFiles, maxBytes)
	if l, _ := h.res.Report.Layer(oslayer.Rlimit); l.String() != wantRlimit {
		t.Errorf("rlimit layer = %q, want %q", l, wantRlimit)
	}
	for _, l := range []struct{ name, want string }{
		{"Max open files", fmt.Sprintf("%d %d", maxFiles, maxFiles)},
		{"Max core file size", "0 0"},
		{"Max file size", fmt.Sprintf("%d %d", maxBytes, maxBytes)},
	} {
		if got := h.limits(t, l.name); got != l.want {
			t.Errorf("/proc/PID/limits %q = %q, want %q", l.name, got, l.want)
		}
	}
	active := checkLandlock(t, h.res.Report, "rw=1 ro=2 exec=0")
	for i, p := range probes {
		want := p.wantOff
		if active {
			want = p.want
		}
		if got := h.res.Probes[i].Err; got != want {
			t.Errorf("%s %s%s = %q, want %q", p.p.Op, p.p.Path, p.p.To, got, want)
		}
	}
	if n := h.res.Probes[len(probes)-2].Count; n == 0 || n >= maxFiles {
		t.Errorf("opened %d descriptors before EMFILE, want between 1 and %d", n, maxFiles-1)
	}
	for i, got := range h.res.Threads {
		if want := map[bool]string{true: "EACCES", false: ""}[active]; got != want {
			t.Errorf("locked thread %d reading outside = %q, want %q", i, got, want)
		}
	}
	if fi, err := os.Stat(filepath.Join(rw, "big")); err != nil || fi.Size() != maxBytes {
		t.Errorf("file written past RLIMIT_FSIZE: %v, %v; want %d bytes", fi, err, maxBytes)
	}
}

// TestOSLayerExec: Exec grants running programs, and nothing else.
func TestOSLayerExec(t *testing.T) {
	testutil.VerifyNone(t)
	dir := t.TempDir()
	h := startHelper(t, oslayer.Config{Exec: []string{"/"}},
		probe{Op: "exec", Path: "/bin/true"},
		probe{Op: "read", Path: "/etc/passwd"},
		probe{Op: "write", Path: filepath.Join(dir, "f")},
	)
	t.Logf("report: %s", h.res.String)
	if l, _ := h.res.Report.Layer(oslayer.Rlimit); l.String() != "rlimit off (none asked for)" {
		t.Errorf("rlimit layer = %q, want %q", l, "rlimit off (none asked for)")
	}
	active := checkLandlock(t, h.res.Report, "rw=0 ro=0 exec=1")
	want := []string{"", "", ""}
	if active {
		want[2] = "EACCES"
	}
	for i, w := range want {
		if got := h.res.Probes[i].Err; got != w {
			t.Errorf("probe %d = %q, want %q", i, got, w)
		}
	}
}

// TestOSLayerMissingPath: a path that does not exist is named in the
// report, and the others are still granted.
func TestOSLayerMissingPath(t *testing.T) {
	testutil.VerifyNone(t)
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	gone := filepath.Join(dir, "gone")
	h := startHelper(t, oslayer.Config{ReadOnly: []string{gone, f}},
		probe{Op: "read", Path: f},
		probe{Op: "write", Path: f},
	)
	t.Logf("report: %s", h.res.String)
	if checkLandlock(t, h.res.Report, "rw=0 ro=2 exec=0 missing="+gone) {
		if got := h.res.Probes[1].Err; got != "EACCES" {
			t.Errorf("write to a read-only file = %q, want EACCES", got)
		}
	}
	if got := h.res.Probes[0].Err; got != "" {
		t.Errorf("read of a read-only file = %q, want success", got)
	}
}

func TestOSLayerReportString(t *testing.T) {
	tests := []struct {
		r    oslayer.Report
		want string
	}{
		{oslayer.Report{}, ""},
		{oslayer.Report{Layers: []oslayer.Layer{
			{Name: "no_new_privs", Active: true},
			{Name: "rlimit", Active: true, Detail: "nofile=4096 core=0"},
			{Name: "landlock", Detail: "kernel: landlock_create_ruleset: ENOSYS: function not implemented"},
		}}, "no_new_privs on; rlimit nofile=4096 core=0 on; landlock off (kernel: landlock_create_ruleset: ENOSYS: function not implemented)"},
		{oslayer.Report{Layers: []oslayer.Layer{{Name: "x"}}}, "x off"},
	}
	for _, tt := range tests {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("String(%+v) = %q, want %q", tt.r, got, tt.want)
		}
	}
}

func TestOSLayerKernelReason(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{unix.ENOSYS, "landlock_create_ruleset: ENOSYS: function not implemented: no Landlock in this kernel"},
		{unix.EOPNOTSUPP, "landlock_create_ruleset: EOPNOTSUPP: operation not supported: Landlock built in but not enabled at boot"},
		{unix.EPERM, "landlock_create_ruleset: EPERM: operation not permitted"},
	}
	for _, tt := range tests {
		if got := oslayer.KernelReason(tt.err); !strings.HasPrefix(got, tt.want) {
			t.Errorf("KernelReason(%v) = %q, want it to start with %q", tt.err, got, tt.want)
		}
	}
}
