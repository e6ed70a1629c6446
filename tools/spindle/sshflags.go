package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/ci/mask"
	"github.com/spindle-hq/spindle/target"
	"golang.org/x/sys/unix"
)

// connUsage documents the connection flags in spindle run's and spindle
// ci's usage.
const connUsage = connUsageNoBecome + `  -K, --ask-become-pass  ask once, on the terminal, for the sudo password of
                      every sudo hop (never echoed, never in argv or logs)
`

// connUsageNoBecome is connUsage without -K, for the commands that go
// starts with no terminal to ask on (toolexec, gocache), which refuse it.
const connUsageNoBecome = `  --ssh-config FILE   ssh's config file (ssh -F) for every ssh hop started
                      on this machine; a hop behind another machine (after
                      an ssh, docker, podman or kubectl hop) uses that
                      machine's ssh config, or its own config=PATH there
  --connect-timeout D every hop's connect and bootstrap timeout (default
                      30s; a hop's own timeout= wins)
  --host-key-checking yes|no|accept-new   every ssh hop's
                      StrictHostKeyChecking (a hop's own hostkey= wins)
`

// becomePrompt is what -K prints on the terminal.
const becomePrompt = "BECOME password: "

// maxPassword bounds the line -K reads.
const maxPassword = 4096

// errInterrupted is the prompt's answer to Ctrl-C.
var errInterrupted = errors.New("interrupted")

// connFlags are the flags that say how spindle run and spindle ci connect:
// applied to every hop of every target, and how much of it they log.
type connFlags struct {
	sshConfig      string
	connectTimeout time.Duration
	hostKey        string
	askPass        bool
	verbosity      int // -v 1, -vv 2, -vvv 3; repeated -v add up
}

// set takes the flag name (without its dashes); ok is false when it is not
// one of the connection flags. val returns the flag's value.
func (f *connFlags) set(name string, val func() (string, error)) (ok bool, err error) {
	switch name {
	case "v", "verbose":
		f.verbosity++
	case "vv":
		f.verbosity += 2
	case "vvv":
		f.verbosity += 3
	case "K", "ask-become-pass":
		f.askPass = true
	case "ssh-config":
		var v string
		if v, err = val(); err == nil {
			err = f.setSSHConfig(v)
		}
	case "connect-timeout":
		var v string
		if v, err = val(); err == nil {
			err = f.setConnectTimeout(v)
		}
	case "host-key-checking":
		var v string
		if v, err = val(); err == nil {
			err = f.setHostKey(v)
		}
	default:
		return false, nil
	}
	return true, err
}

func (f *connFlags) setSSHConfig(v string) error {
	st, err := os.Stat(v)
	switch {
	case v == "":
		return errors.New("--ssh-config: empty path")
	case err != nil:
		return fmt.Errorf("--ssh-config: %w", err)
	case st.IsDir():
		return fmt.Errorf("--ssh-config %s: a directory, not an ssh config file", v)
	}
	f.sshConfig = v
	return nil
}

func (f *connFlags) setConnectTimeout(v string) error {
	d, err := parseDurationFlag("--connect-timeout", v)
	if err != nil {
		return err
	}
	f.connectTimeout = d
	return nil
}

func (f *connFlags) setHostKey(v string) error {
	switch v {
	case "yes", "no", "accept-new":
		f.hostKey = v
		return nil
	}
	return fmt.Errorf("--host-key-checking %q: want yes, no or accept-new", v)
}

// register adds the connection flags to a flag set (spindle ci's).
func (f *connFlags) register(fs interface {
	Func(name, usage string, fn func(string) error)
	BoolFunc(name, usage string, fn func(string) error)
}) {
	for _, name := range []string{"ssh-config", "connect-timeout", "host-key-checking"} {
		fs.Func(name, "", func(v string) error {
			_, err := f.set(name, func() (string, error) { return v, nil })
			return err
		})
	}
	for _, name := range []string{"v", "verbose", "vv", "vvv", "K", "ask-become-pass"} {
		fs.BoolFunc(name, "", func(string) error {
			_, err := f.set(name, nil)
			return err
		})
	}
}

// defaults are the flags as target defaults.
func (f *connFlags) defaults() target.Defaults {
	return target.Defaults{ConnectTimeout: f.connectTimeout, HostKeyCheck: f.hostKey, SSHConfig: f.sshConfig}
}

// args are the flags that reach a target (not -v, not -K), as arguments
// again: for a process that starts the targets on this one's behalf.
func (f *connFlags) args() []string {
	var a []string
	if f.sshConfig != "" {
		p, err := filepath.Abs(f.sshConfig)
		if err != nil {
			p = f.sshConfig
		}
		a = append(a, "--ssh-config", p)
	}
	if f.connectTimeout != 0 {
		a = append(a, "--connect-timeout", f.connectTimeout.String())
	}
	if f.hostKey != "" {
		a = append(a, "--host-key-checking", f.hostKey)
	}
	return a
}

// runLevel is spindle run's log level: warnings only; -v the tree's
// records (task logs); -vv debug (each transport's command line); -vvv the
// bootstrap steps too.
func (f *connFlags) runLevel() slog.Level {
	switch {
	case f.verbosity >= 3:
		return spindle.LevelTrace
	case f.verbosity == 2:
		return slog.LevelDebug
	case f.verbosity == 1:
		return slog.LevelInfo
	}
	return slog.LevelWarn
}

// conn is what the connection flags give one run: the password -K read,
// and a masker that keeps it out of what the run prints.
type conn struct {
	flags    *connFlags
	password string
	masker   *mask.Masker // nil: nothing to mask
}

// connect asks for the become password if -K was given, and says once on
// stderr when --ssh-config does not reach some hop of targets. It returns
// the exit status to end with when it fails.
func (f *connFlags) connect(stderr io.Writer, cmd string, targets []target.Target) (*conn, int) {
	c := &conn{flags: f}
	if f.sshConfig != "" {
		for _, t := range targets {
			if hop := remoteSSHHop(t); hop > 0 {
				fmt.Fprintf(stderr, "%s: --ssh-config %s is read on this machine only: hop %d of %s and hops like it run ssh on another machine, with that machine's config (or their own config=PATH there)\n",
					cmd, f.sshConfig, hop, t)
				break
			}
		}
	}
	if !f.askPass {
		return c, 0
	}
	pw, err := askPassword(becomePrompt)
	switch {
	case errors.Is(err, errInterrupted):
		fmt.Fprintf(stderr, "%s: interrupted\n", cmd)
		return nil, exitInterrupted
	case err != nil:
		fmt.Fprintf(stderr, "%s: -K: %v\n", cmd, err)
		return nil, exitUsage
	}
	c.password = pw
	// A password under mask.MinLen bytes is not masked: it would hide
	// every occurrence of its letters. It never reaches argv or a log
	// record anyway; masking is for text a remote side echoes.
	if m, err := mask.New([][]byte{[]byte(pw)}); err == nil {
		c.masker = m
	}
	return c, 0
}

// remoteSSHHop is the 1-based number of the first ssh hop of t that runs
// on another machine than this one, or 0.
func remoteSSHHop(t target.Target) int {
	for i, h := range t {
		if h.Method == "ssh" && h.SSHConfig == "" && t.StartedRemotely(i) {
			return i + 1
		}
	}
	return 0
}

// apply puts the flags on a fleet: its defaults and the sudo password.
func (c *conn) apply(fl *spindle.Fleet) {
	fl.Defaults = c.flags.defaults()
	fl.SudoPassword = c.password
}

// mask returns s with the password masked.
func (c *conn) mask(s string) string {
	if c == nil || c.masker == nil {
		return s
	}
	return c.masker.String(s)
}

// logger returns a text logger to w at level: records below it are not
// written; the password masked; LevelTrace written as TRACE.
func (c *conn) logger(w io.Writer, level slog.Level) *slog.Logger {
	if c.masker != nil {
		w = &maskWriter{w: w, c: c}
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: traceLevel}))
}

// traceLevel names spindle.LevelTrace in a text record.
func traceLevel(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.LevelKey {
		if l, ok := a.Value.Any().(slog.Level); ok && l <= spindle.LevelTrace {
			a.Value = slog.StringValue("TRACE")
		}
	}
	return a
}

// maskWriter masks each write on its own: a slog handler writes one whole
// record a call.
type maskWriter struct {
	w io.Writer
	c *conn
}

func (m *maskWriter) Write(p []byte) (int, error) {
	if _, err := io.WriteString(m.w, m.c.mask(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// askPassword prints prompt on the controlling terminal and reads one line
// there with echo off. The terminal's settings come back however it ends:
// a line, an error, or Ctrl-C (errInterrupted), SIGTERM or SIGHUP.
func askPassword(prompt string) (string, error) {
	// O_NOCTTY: never make it our controlling terminal (we need one
	// already: /dev/tty is that).
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return "", fmt.Errorf("no terminal to ask for the become password on (%v): run spindle from a terminal", err)
	}
	defer tty.Close()
	// Not tty.Fd(): that would make the file blocking, and the read below
	// must end when a signal comes.
	rc, err := tty.SyscallConn()
	if err != nil {
		return "", err
	}
	var old *unix.Termios
	var ioErr error
	if err := rc.Control(func(fd uintptr) {
		if old, ioErr = unix.IoctlGetTermios(int(fd), unix.TCGETS); ioErr != nil {
			return
		}
		quiet := *old
		quiet.Lflag &^= unix.ECHO | unix.ECHOE | unix.ECHOK | unix.ECHONL
		quiet.Lflag |= unix.ICANON | unix.ISIG
		// TCSETSF: what was typed ahead, before the prompt, is dropped.
		ioErr = unix.IoctlSetTermios(int(fd), unix.TCSETSF, &quiet)
	}); err != nil || ioErr != nil {
		return "", fmt.Errorf("the terminal's settings: %w", errors.Join(err, ioErr))
	}
	restore := func() {
		_ = rc.Control(func(fd uintptr) { _ = unix.IoctlSetTermios(int(fd), unix.TCSETS, old) })
	}
	defer restore()

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithCancel(context.Background())
	var interrupted bool // written before wg.Done, read after wg.Wait
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-sigs:
			interrupted = true
			if tty.SetReadDeadline(time.Unix(1, 0)) != nil {
				// Not pollable: the read cannot be ended. Nothing has
				// started yet: put the terminal back and go.
				restore()
				fmt.Fprintln(tty)
				os.Exit(exitInterrupted)
			}
		case <-ctx.Done():
		}
	}()

	if _, err := io.WriteString(tty, prompt); err != nil {
		cancel()
		wg.Wait()
		return "", err
	}
	line, err := readLine(tty)
	cancel()
	wg.Wait()
	_, _ = io.WriteString(tty, "\n") // the newline the terminal did not echo
	switch {
	case interrupted:
		return "", errInterrupted
	case err != nil:
		return "", fmt.Errorf("reading the password: %w", err)
	case line == "":
		return "", errors.New("empty password")
	}
	return line, nil
}

// readLine reads up to a newline (not included), at most maxPassword
// bytes. The error never holds what was read.
func readLine(r io.Reader) (string, error) {
	var b []byte
	one := make([]byte, 256)
	for {
		n, err := r.Read(one)
		for _, c := range one[:n] {
			if c == '\n' || c == '\r' {
				return string(b), nil
			}
			if len(b) >= maxPassword {
				return "", fmt.Errorf("longer than %d bytes", maxPassword)
			}
			b = append(b, c)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("end of input before a newline")
			}
			return "", err
		}
	}
}

// String never shows the password, should a conn be printed.
func (c *conn) String() string { return fmt.Sprintf("conn(%+v, password hidden)", c.flags.defaults()) }
