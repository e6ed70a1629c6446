package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/internal/testutil"
	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal of cols columns: the master side, which
// the test reads, and the terminal a process under test writes to.
func openPTY(t *testing.T, cols uint16) (ptm, tty *os.File) {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("no pseudo-terminals here: %v", err)
	}
	fd := int(ptm.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err = os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetWinsize(int(tty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 40, Col: cols}); err != nil {
		t.Fatal(err)
	}
	return ptm, tty
}

// screenLines replays what a terminal was sent and returns the lines it
// ended up with: "\r\033[K" erases the line being written, "\n" (the pty
// sends "\r\n") ends it. last is the line left unfinished at the end.
func screenLines(raw string) (lines []string, last string) {
	var cur strings.Builder
	for i := 0; i < len(raw); i++ {
		switch {
		case strings.HasPrefix(raw[i:], "\r\033[K"):
			cur.Reset()
			i += 3
		case strings.HasPrefix(raw[i:], "\r\n"), raw[i] == '\n':
			if raw[i] == '\r' {
				i++
			}
			lines = append(lines, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(raw[i])
		}
	}
	return lines, cur.String()
}

// runOnPTY runs the spindle command with stdout and stderr on a
// pseudo-terminal, as an operator does, and returns what the terminal was
// sent and the exit status.
func runOnPTY(t *testing.T, args ...string) (string, int) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ptm, tty := openPTY(t, 200)
	defer ptm.Close()
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), cliEnv+"=1", "XDG_CACHE_HOME="+filepath.Join(os.TempDir(), "spindle-test-xdg"))
	cmd.Stdout, cmd.Stderr = tty, tty
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close() // the CLI and its children hold it now
	var screen bytes.Buffer
	read := make(chan struct{})
	go func() {
		defer close(read)
		io.Copy(&screen, ptm) // until EIO: every holder of the tty has gone
	}()
	wait := make(chan error, 1)
	go func() { wait <- cmd.Wait() }()
	select {
	case <-wait:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-wait
		t.Fatal("spindle run did not end")
	}
	select {
	case <-read:
	case <-time.After(10 * time.Second):
		t.Fatal("the terminal was not closed by every process")
	}
	return screen.String(), cmd.ProcessState.ExitCode()
}

// checkScreen checks that no line the terminal ended up with holds a
// piece of the progress line, that the last is the recap and that
// nothing is left on the line after it; it returns the lines.
func checkScreen(t *testing.T, raw, recap string) []string {
	t.Helper()
	lines, last := screenLines(raw)
	for _, l := range lines {
		if strings.Contains(l, "[run ") {
			t.Errorf("the progress line shares a line with other output: %q", l)
		}
	}
	if last != "" {
		t.Errorf("the terminal was left with %q on its last line", last)
	}
	if len(lines) == 0 || !strings.Contains(lines[len(lines)-1], recap) {
		t.Errorf("the last line is not the recap %q:\n%s", recap, strings.Join(lines, "\n"))
	}
	return lines
}

// TestProgressLineOnTTY: on a terminal, with several targets, the
// progress line shows the counts, the elapsed time and the targets
// running longest; no result row or log record ever shares a line with
// it, and it is gone at the end.
func TestProgressLineOnTTY(t *testing.T) {
	testutil.VerifyNone(t)
	bad := testutil.BuildWasm(t, "examples/wasm/bad", true)
	three := []string{"run", "-t", "local:p1", "-t", "local:p2", "-t", "local:p3"}
	t.Run("rows", func(t *testing.T) {
		raw, code := runOnPTY(t, append(three, "--timeout", "2500ms", bad, "loop")...)
		if code != exitCIFailed {
			t.Errorf("exit %d, want %d (three timeouts)\n%q", code, exitCIFailed, raw)
		}
		// A redraw a second or more in (the ticker may be late under load).
		if !regexp.MustCompile(`\r\x1b\[K\[run [1-9]\d*s\] 0/3 done: 0 ok, 0 failed, 0 unreachable; 3 running: local:p`).MatchString(raw) ||
			!strings.Contains(raw, "/3 done: 0 ok, 1 failed") {
			t.Errorf("no progress line with counts, elapsed time and running targets:\n%q", raw)
		}
		rows := 0
		for _, l := range checkScreen(t, raw, "3 targets: 0 ok, 3 failed, 0 unreachable in ") {
			if strings.HasPrefix(l, "local:p") && strings.Contains(l, "FAILED  timeout") {
				rows++
			}
		}
		if rows != 3 {
			t.Errorf("%d result rows, want 3:\n%q", rows, raw)
		}
	})
	t.Run("log records", func(t *testing.T) {
		raw, code := runOnPTY(t, append(three, "-v", bad, "log_flood", "--input", `{"n": 200}`)...)
		if code != 0 {
			t.Errorf("exit %d, want 0\n%q", code, raw)
		}
		records := 0
		for _, l := range checkScreen(t, raw, "3 targets: 3 ok, 0 failed, 0 unreachable in ") {
			if strings.Contains(l, `msg="log_flood i=`) {
				records++
			}
		}
		if records != 600 {
			t.Errorf("%d whole log records on the screen, want 600 (%d bytes written)", records, len(raw))
		}
	})
}

// TestStatusLineWidth: the line is cut to the terminal's width, so it
// never wraps (a wrapped line could not be erased).
func TestStatusLineWidth(t *testing.T) {
	ptm, tty := openPTY(t, 40)
	defer ptm.Close()
	defer tty.Close()
	s := newStatusLine(tty, true, "run", func() string { return strings.Repeat("x", 100) })
	s.begin("a-target-with-a-long-name")
	s.close()
	tty.Close()
	b, _ := io.ReadAll(ptm)
	for _, draw := range strings.Split(string(b), "\r\033[K") {
		if n := len([]rune(draw)); n >= 40 {
			t.Errorf("a draw of %d columns on a 40-column terminal: %q", n, draw)
		}
	}
	if !strings.Contains(string(b), "[run 0s] xxx") {
		t.Errorf("nothing drawn: %q", b)
	}
}
