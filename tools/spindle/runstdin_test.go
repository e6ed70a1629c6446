package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
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
// streamed to each from its start, and "-" is read whole and copied to
// each.
func TestRunStdinTargets(t *testing.T) {
	testutil.VerifyNone(t)
	probe := testutil.BuildWasm(t, "examples/wasm/ciprobe", false)
	data := bytes.Repeat([]byte("0123456789abcdef"), 100_000) // 1.6 MB: many chunks
	file := filepath.Join(t.TempDir(), "in")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`"stdout":"%d %x\n"`, len(data), sha256.Sum256(data))
	for _, stdin := range []string{file, "-"} {
		cmd, in, out, errOut := startStdinCLI(t, "run", "-t", "local:x", "-t", "local:y", "--json", "--stdin", stdin, probe, "--", "stdinsum")
		if stdin == "-" {
			in.Write(data)
		}
		in.Close()
		if code := waitStdinCLI(t, cmd, time.Minute); code != 0 || strings.Count(out.String(), want) != 2 {
			t.Fatalf("spindle run --stdin %s = %d, want both targets to print %s:\n%s\nstderr: %s", stdin, code, want, out.String(), errOut.String())
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
