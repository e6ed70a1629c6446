package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/internal/testutil"
)

// liveOutput collects a process's stdout and lets the test wait for a part
// of it. It is safe for concurrent use.
type liveOutput struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{}
}

func (l *liveOutput) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.b.Write(p)
	l.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (l *liveOutput) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *liveOutput) waitFor(s string, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for !strings.Contains(l.String(), s) {
		select {
		case <-l.changed:
		case <-t.C:
			return false
		}
	}
	return true
}

// startStdinCLI starts the spindle CLI (this test binary as it) with args and
// returns it with the write end of its stdin and its stdout and stderr.
func startStdinCLI(t *testing.T, args ...string) (*exec.Cmd, io.WriteCloser, *liveOutput, *liveOutput) {
	t.Helper()
	cmd := exec.Command(self(t), args...)
	cmd.Env = append(os.Environ(), cliEnv+"=1", "XDG_CACHE_HOME="+filepath.Join(os.TempDir(), "spindle-test-xdg"))
	out := &liveOutput{changed: make(chan struct{}, 1)}
	errOut := &liveOutput{changed: make(chan struct{}, 1)}
	cmd.Stdout, cmd.Stderr = out, errOut
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, in, out, errOut
}

// waitStdinCLI waits up to d for cmd, killing it after that and failing.
func waitStdinCLI(t *testing.T, cmd *exec.Cmd, d time.Duration) int {
	t.Helper()
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		t.Fatalf("spindle run did not exit within %v", d)
	}
	return cmd.ProcessState.ExitCode()
}

// TestRunStdinStreamed: spindle run --stdin - streams a pipe to a command
// two hops down: the first line's echo is on spindle's stdout before the
// pipe is closed, and closing it ends the command (EOF), exit 0.
func TestRunStdinStreamed(t *testing.T) {
	testutil.VerifyNone(t)
	probe := testutil.BuildWasm(t, "examples/wasm/ciprobe", false)
	cmd, in, out, errOut := startStdinCLI(t, "run", "-t", "local:a/local:b", "--stdin", "-", probe, "--", "lines")
	for _, line := range []string{"one", "two"} {
		if _, err := io.WriteString(in, line+"\n"); err != nil {
			t.Fatal(err)
		}
		if !out.waitFor("> "+line+"\n", time.Minute) {
			in.Close()
			waitStdinCLI(t, cmd, time.Minute)
			t.Fatalf("no echo of %q while stdin is open: stdout %q, stderr %q", line, out.String(), errOut.String())
		}
	}
	in.Close()
	if code := waitStdinCLI(t, cmd, time.Minute); code != 0 || out.String() != "> one\n> two\n" {
		t.Fatalf("spindle run = %d, stdout %q, want 0 and both lines echoed\nstderr: %s", code, out.String(), errOut.String())
	}
}

// TestRunStdinNotRead: a command that never reads stdin exits, and
// spindle run with it, though its --stdin - pipe is never closed.
func TestRunStdinNotRead(t *testing.T) {
	testutil.VerifyNone(t)
	probe := testutil.BuildWasm(t, "examples/wasm/ciprobe", false)
	cmd, in, out, errOut := startStdinCLI(t, "run", "--stdin", "-", probe, "--", "echo", "hi")
	defer in.Close()
	if code := waitStdinCLI(t, cmd, time.Minute); code != 0 || out.String() != "hi\n" {
		t.Fatalf("spindle run = %d, stdout %q, want 0 and hi\nstderr: %s", code, out.String(), errOut.String())
	}
}

// TestRunStdinTargets: with several targets, a regular --stdin FILE is
// streamed to each from its start, "-" is shared as it comes when they all
// run at once, and read whole and copied to each when not (--parallel 1).
func TestRunStdinTargets(t *testing.T) {
	testutil.VerifyNone(t)
	probe := testutil.BuildWasm(t, "examples/wasm/ciprobe", false)
	data := bytes.Repeat([]byte("0123456789abcdef"), 100_000) // 1.6 MB: many chunks
	file := filepath.Join(t.TempDir(), "in")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`"stdout":"%d %x\n"`, len(data), sha256.Sum256(data))
	for _, tc := range []struct{ stdin, parallel string }{{file, "2"}, {"-", "2"}, {"-", "1"}} {
		stdin := tc.stdin
		cmd, in, out, errOut := startStdinCLI(t, "run", "-t", "local:x", "-t", "local:y", "--parallel", tc.parallel,
			"--json", "--stdin", stdin, probe, "--", "stdinsum")
		if stdin == "-" {
			in.Write(data)
		}
		in.Close()
		if code := waitStdinCLI(t, cmd, time.Minute); code != 0 || strings.Count(out.String(), want) != 2 {
			t.Fatalf("spindle run --parallel "+tc.parallel+" --stdin %s = %d, want both targets to print %s:\n%s\nstderr: %s", stdin, code, want, out.String(), errOut.String())
		}
	}
}

// TestRunStdinInterrupt: Ctrl-C while a command two hops down waits to
// read a stdin that never comes exits 130 and leaves no process of the
// tree, though spindle itself is then inside a read of its stdin.
func TestRunStdinInterrupt(t *testing.T) {
	testutil.VerifyNone(t)
	exe := cliCopy(t)
	probe := testutil.BuildWasm(t, "examples/wasm/ciprobe", false)
	cmd := exec.Command(exe, "run", "-t", "local:sig-x/local:sig-y", "--stdin", "-", probe, "--", "echo", "started", ";", "lines")
	cmd.Env = append(os.Environ(), cliEnv+"=1")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errOut := &bytes.Buffer{}
	cmd.Stderr = errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	watchdog := time.AfterFunc(2*time.Minute, func() { cmd.Process.Kill() })
	defer watchdog.Stop()
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || sc.Text() != "started" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the task did not start: %q %v\n%s", sc.Text(), sc.Err(), errOut.String())
	}
	if _, err := io.WriteString(in, "one\n"); err != nil {
		t.Fatal(err)
	}
	if !sc.Scan() || sc.Text() != "> one" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("no echo: %q %v\n%s", sc.Text(), sc.Err(), errOut.String())
	}
	// The guest now waits in a read of stdin, and so does spindle.
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() {
	}
	waitExit(t, cmd, exe, errOut)
}

// TestStdinFan: readers of one shared source, started together, each read
// all of it, the same bytes; one that never reads holds the others at most
// max bytes ahead of it until it closes; a Read waiting for room ends when
// its reader closes.
func TestStdinFan(t *testing.T) {
	testutil.VerifyNone(t)
	data := make([]byte, 3<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	want := sha256.Sum256(data)
	const n = 8
	f := newStdinFan(bytes.NewReader(data), n, 256<<10)
	var wg sync.WaitGroup
	sums := make([][32]byte, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		r := &fanReader{f: f}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer r.Close()
			<-start
			h := sha256.New()
			// Small reads, of a different size each, to mix the pace.
			_, errs[i] = io.CopyBuffer(h, struct{ io.Reader }{r}, make([]byte, 1000+i*3000))
			copy(sums[i][:], h.Sum(nil))
		}()
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil || sums[i] != want {
			t.Errorf("reader %d: %v, sum %x, want %x", i, errs[i], sums[i][:4], want[:4])
		}
	}

	// A reader that never reads: the other stops at the bound.
	const max = 256 << 10
	f = newStdinFan(bytes.NewReader(data), 2, max)
	idle, fast := &fanReader{f: f}, &fanReader{f: f}
	var got atomic.Int64
	done := make(chan error, 1)
	go func() {
		n, err := io.Copy(io.Discard, struct{ io.Reader }{fast})
		got.Store(n)
		done <- err
	}()
	time.Sleep(200 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("the fast reader read everything (%d bytes, %v) while another had read nothing", got.Load(), err)
	default:
	}
	f.mu.Lock()
	kept := f.kept
	f.mu.Unlock()
	if kept > max+64<<10+pieceOverhead {
		t.Errorf("%d bytes kept for a reader that never reads, bound %d", kept, max)
	}
	idle.Close()
	if err := <-done; err != nil || got.Load() != int64(len(data)) {
		t.Errorf("after the idle reader closed: %d bytes, %v; want all %d", got.Load(), err, len(data))
	}
	fast.Close()

	// A Read waiting for room ends at its reader's Close.
	f = newStdinFan(bytes.NewReader(data), 2, 1)
	a, b := &fanReader{f: f}, &fanReader{f: f}
	b.Read(make([]byte, 10)) // b joins and takes the first piece
	b.Read(make([]byte, 1<<20))
	blocked := make(chan error, 1)
	go func() {
		_, err := b.Read(make([]byte, 10)) // room only when a reads
		blocked <- err
	}()
	time.Sleep(50 * time.Millisecond)
	b.Close()
	if err := <-blocked; !errors.Is(err, os.ErrClosed) {
		t.Errorf("a Read waiting for room, its reader closed: %v, want os.ErrClosed", err)
	}
	a.Close()
}
