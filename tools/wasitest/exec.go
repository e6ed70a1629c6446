package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// runner runs tests through a spindle binary.
type runner struct {
	Spindle string        // the binary
	Jobs    int           // tests at once
	Timeout time.Duration // a test's limit
}

// result is how one test went.
type result struct {
	Passed bool
	Why    string // a failure's reason, on one line
}

// runAll runs every test of suites, Jobs at a time, and returns their
// results by ID.
func (r *runner) runAll(suites []suite) map[string]result {
	var mu sync.Mutex
	results := map[string]result{}
	sem := make(chan struct{}, r.Jobs)
	var wg sync.WaitGroup
	for _, s := range suites {
		for _, t := range s.Tests {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				res := r.runOne(t)
				mu.Lock()
				results[t.ID] = res
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	return results
}

// maxCapture bounds what is kept of a test's stdout and of its stderr.
const maxCapture = 1 << 20

// runOne runs t as the suite's runner does (see the package doc).
func (r *runner) runOne(t test) result {
	fail := func(format string, args ...any) result {
		return result{Why: fmt.Sprintf(format, args...)}
	}
	argv := []string{"run", "--stdin", "-"}
	if t.Spec.Root != "" {
		tmp, err := os.MkdirTemp("", "wasitest-")
		if err != nil {
			return fail("%v", err)
		}
		defer removeTree(tmp)
		dir := filepath.Join(tmp, "root")
		if err := copyTree(t.Spec.Root, dir); err != nil {
			return fail("copy the root directory: %v", err)
		}
		argv = append(argv, "--mount", dir+":/")
	}
	for k, v := range t.Spec.Env {
		argv = append(argv, "--env", k+"="+v)
	}
	argv = append(argv, t.Wasm, "--")
	argv = append(argv, t.Spec.Args...)

	cmd := exec.Command(r.Spindle, argv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // to kill its children with it
	stdout, stderr := newCapture(), newCapture()
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = 5 * time.Second // a child holding the pipes past spindle's exit
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fail("%v", err)
	}
	if err := cmd.Start(); err != nil {
		stdin.Close()
		return fail("start %s: %v", r.Spindle, err)
	}
	// expired is closed at the test's deadline.
	expired := make(chan struct{})
	deadline := time.AfterFunc(r.Timeout, func() { close(expired) })
	defer deadline.Stop()
	// exited is closed when spindle has exited and its output is all in
	// (Wait returns after the copying), waitErr set before.
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()

	// As the suite's runner: stdin stays open while the expected output
	// is read, then is closed, then the exit status is awaited.
	var why []string
	for _, w := range []struct {
		name string
		c    *capture
		want *string
	}{{"stdout", stdout, t.Spec.Stdout}, {"stderr", stderr, t.Spec.Stderr}} {
		if w.want == nil {
			continue
		}
		got := w.c.waitFor(len(*w.want), exited, expired)
		if got != *w.want {
			why = append(why, fmt.Sprintf("%s %s, want %s", w.name, quote(got), quote(*w.want)))
		}
	}
	stdin.Close()
	timedOut := false
	select {
	case <-exited:
	case <-expired:
		timedOut = true
	}
	if timedOut {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	switch {
	case timedOut:
		why = append([]string{fmt.Sprintf("timed out after %v", r.Timeout)}, why...)
	case cmd.ProcessState == nil:
		why = append(why, fmt.Sprintf("wait: %v", waitErr))
	case cmd.ProcessState.ExitCode() != t.Spec.ExitCode:
		why = append(why, fmt.Sprintf("exit status %d, want %d", cmd.ProcessState.ExitCode(), t.Spec.ExitCode))
	}
	if len(why) == 0 {
		return result{Passed: true}
	}
	if e := firstLines(stderr.String(), 2); e != "" && t.Spec.Stderr == nil {
		why = append(why, "stderr: "+quote(e))
	}
	return result{Why: strings.Join(why, "; ")}
}

// quote shows s on one line, at most 400 bytes of it.
func quote(s string) string {
	const max = 400
	if len(s) > max {
		return fmt.Sprintf("%q...(%d bytes)", s[:max], len(s))
	}
	return fmt.Sprintf("%q", s)
}

// firstLines is the first n lines of s: where a guest says why it failed
// (a Rust panic's message, a C assertion), before spindle's summary.
func firstLines(s string, n int) string {
	lines := strings.SplitN(strings.TrimSpace(s), "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}

// capture is a writer that keeps the first maxCapture bytes written to it
// and lets a reader wait for some of them. It is safe for concurrent use.
type capture struct {
	mu      sync.Mutex
	buf     bytes.Buffer  // guarded by mu
	changed chan struct{} // a token after each write
}

func newCapture() *capture { return &capture{changed: make(chan struct{}, 1)} }

func (c *capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	if room := maxCapture - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(len(p), room)])
	}
	c.mu.Unlock()
	select {
	case c.changed <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (c *capture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// waitFor returns the first n bytes written, or fewer once done is closed
// (the writer has finished) or deadline fires.
func (c *capture) waitFor(n int, done, deadline <-chan struct{}) string {
	for {
		s := c.String()
		if len(s) >= n {
			return s[:n]
		}
		select {
		case <-c.changed:
		case <-done:
			s = c.String()
			return s[:min(n, len(s))]
		case <-deadline:
			return s
		}
	}
}

// copyTree copies the directory src to dst (which must not exist): files,
// directories and symlinks, each made writable by its owner, since the
// suite's own tree may be read-only and the tests write into their copy.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch mode := info.Mode(); {
		case mode.IsDir():
			return os.Mkdir(to, mode.Perm()|0o700)
		case mode&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, to)
		case mode.IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(to, b, mode.Perm()|0o600)
		default:
			return fmt.Errorf("%s: not a file, directory or symlink", p)
		}
	})
}

// removeTree removes dir and what a test left in it, directories it made
// unwritable included.
func removeTree(dir string) {
	if os.RemoveAll(dir) == nil {
		return
	}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	if err := os.RemoveAll(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(os.Stderr, "wasitest: %v\n", err)
	}
}
