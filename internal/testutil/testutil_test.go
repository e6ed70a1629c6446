package testutil

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { VerifyTestMain(m) }

// helperEnv selects what TestHelperProcess does when the test binary is
// re-executed as a child.
const helperEnv = "TESTUTIL_HELPER"

// TestHelperProcess is not a test: it is the body of the child processes
// the other tests start.
func TestHelperProcess(t *testing.T) {
	switch os.Getenv(helperEnv) {
	case "":
		return
	case "exit":
		os.Exit(0)
	case "read-stdin":
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	case "leave-child":
		// Start a child and return without waiting for it, so that
		// VerifyTestMain finds it, running or as a zombie.
		if err := helperCommand("exit").Start(); err != nil {
			t.Fatal(err)
		}
		return
	default:
		t.Fatalf("unknown %s=%q", helperEnv, os.Getenv(helperEnv))
	}
}

func helperCommand(mode string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	// Under -race a process sleeps a second at exit unless told not to.
	cmd.Env = append(os.Environ(), helperEnv+"="+mode,
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	return cmd
}

func TestVerifyNoneCleanState(t *testing.T) {
	VerifyNone(t)

	done := make(chan struct{})
	go func() { close(done) }()
	<-done

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	w.Close()

	if out, err := helperCommand("exit").CombinedOutput(); err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
}

func blockUntilClosed(ch chan struct{}) { <-ch }

func TestCheckGoroutines(t *testing.T) {
	VerifyNone(t)

	s, err := takeSnapshot(goleak.IgnoreCurrent())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.leaks(); err != nil {
		t.Fatalf("leaks() before leaking = %v, want nil", err)
	}

	release, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		blockUntilClosed(release)
	}()
	defer func() { close(release); <-exited }()

	err = s.leaks()
	if err == nil || !strings.Contains(err.Error(), "blockUntilClosed") {
		t.Fatalf("leaks() with a blocked goroutine = %v, want it to name blockUntilClosed", err)
	}
}

func TestCheckFDs(t *testing.T) {
	VerifyNone(t)

	s, err := takeSnapshot(goleak.IgnoreCurrent())
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	err = s.leaks()
	for _, want := range []string{fmt.Sprintf("fd %d -> pipe:[", r.Fd()), fmt.Sprintf("fd %d -> pipe:[", w.Fd())} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("leaks() with an open pipe = %v, want it to contain %q", err, want)
		}
	}
	r.Close()
	w.Close()
	if err := s.leaks(); err != nil {
		t.Fatalf("leaks() after closing the pipe = %v, want nil", err)
	}
}

func TestCheckChildrenRunning(t *testing.T) {
	VerifyNone(t)

	s, err := takeSnapshot(goleak.IgnoreCurrent())
	if err != nil {
		t.Fatal(err)
	}
	cmd := helperCommand("read-stdin")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("helper: %v", err)
		}
	}()

	if !hasChild(Children(), cmd.Process.Pid, 0) {
		t.Errorf("Children() = %v, want it to hold pid %d", Children(), cmd.Process.Pid)
	}
	err = checkChildren(s.children)
	want := fmt.Sprintf("pid %d (", cmd.Process.Pid)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("checkChildren with a running child = %v, want it to contain %q", err, want)
	}
}

func TestCheckChildrenZombie(t *testing.T) {
	VerifyNone(t)

	s, err := takeSnapshot(goleak.IgnoreCurrent())
	if err != nil {
		t.Fatal(err)
	}
	cmd := helperCommand("exit")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()

	// Not waited for, the child stays a zombie once it has exited.
	deadline := time.Now().Add(10 * time.Second)
	for !hasChild(Children(), cmd.Process.Pid, 'Z') {
		if time.Now().After(deadline) {
			t.Fatalf("Children() = %v, want pid %d as a zombie", Children(), cmd.Process.Pid)
		}
		time.Sleep(pollInterval)
	}
	err = checkChildren(s.children)
	want := fmt.Sprintf("pid %d (", cmd.Process.Pid)
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "state Z") {
		t.Errorf("checkChildren with a zombie child = %v, want it to contain %q and %q", err, want, "state Z")
	}

	cmd.Wait()
	if err := checkChildren(s.children); err != nil {
		t.Errorf("checkChildren after Wait = %v, want nil", err)
	}
}

func hasChild(procs []Proc, pid int, state byte) bool {
	for _, p := range procs {
		if p.PID == pid && (state == 0 || p.State == state) {
			return true
		}
	}
	return false
}

// fakeTB records what VerifyNone reports instead of failing the real test.
type fakeTB struct {
	testing.TB
	cleanups []func()
	errs     []string
}

func (f *fakeTB) Helper()                   {}
func (f *fakeTB) Cleanup(fn func())         { f.cleanups = append(f.cleanups, fn) }
func (f *fakeTB) Logf(string, ...any)       {}
func (f *fakeTB) Errorf(s string, a ...any) { f.errs = append(f.errs, fmt.Sprintf(s, a...)) }

func (f *fakeTB) runCleanups() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}

func TestVerifyNoneReports(t *testing.T) {
	VerifyNone(t)

	fake := &fakeTB{TB: t}
	verifyNone(fake, 100*time.Millisecond)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	fake.runCleanups()
	r.Close()
	w.Close()
	if len(fake.errs) != 1 || !strings.Contains(fake.errs[0], "pipe:[") {
		t.Fatalf("VerifyNone with a leaked pipe reported %q, want one error naming the pipe", fake.errs)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("VerifyNone gave up after %v, want it to retry for 100ms", d)
	}

	fake = &fakeTB{TB: t}
	verifyNone(fake, 100*time.Millisecond)
	fake.runCleanups()
	if len(fake.errs) != 0 {
		t.Fatalf("VerifyNone on a clean test reported %q, want nothing", fake.errs)
	}
}

func TestVerifyTestMainReportsChild(t *testing.T) {
	VerifyNone(t)

	out, err := helperCommand("leave-child").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("test binary leaving a child: err = %v, want exit status 1\n%s", err, out)
	}
	if !strings.Contains(string(out), "child process") {
		t.Errorf("test binary leaving a child printed:\n%s\nwant it to name the child process", out)
	}
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		in    string
		want  Proc
		ppid  int
		start uint64
	}{
		{
			in:    "42 (sleep) S 7 42 7 0 -1 4194560 90 0 0 0 0 0 0 0 20 0 1 0 123456 2637824 128 18446744073709551615",
			want:  Proc{PID: 42, Comm: "sleep", State: 'S'},
			ppid:  7,
			start: 123456,
		},
		{
			in:    "9 (a (b) c) Z 1 9 1 0 -1 4194560 90 0 0 0 0 0 0 0 20 0 1 0 77 0 0 18446744073709551615",
			want:  Proc{PID: 9, Comm: "a (b) c", State: 'Z'},
			ppid:  1,
			start: 77,
		},
	}
	for _, tt := range tests {
		p, ppid, start, err := parseStat([]byte(tt.in))
		if err != nil || p != tt.want || ppid != tt.ppid || start != tt.start {
			t.Errorf("parseStat(%q) = %v, %d, %d, %v, want %v, %d, %d, nil", tt.in, p, ppid, start, err, tt.want, tt.ppid, tt.start)
		}
	}
	for _, in := range []string{"", "1 (x", "1 (x) S", "1 (x) S notanumber 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1"} {
		if _, _, _, err := parseStat([]byte(in)); err == nil {
			t.Errorf("parseStat(%q) = nil error, want an error", in)
		}
	}
}
