package testutil

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

const (
	// pollInterval and pollTimeout bound how long a leftover may take to go
	// away: a goroutine still returning, a descriptor closed by it, a child
	// being reaped.
	pollInterval = 10 * time.Millisecond
	pollTimeout  = 2 * time.Second
)

// Proc is one process as /proc/PID/stat describes it. It is a plain value,
// safe to copy and share.
type Proc struct {
	PID int
	// Comm is the executable name, truncated by the kernel to 15 bytes.
	Comm string
	// State is the one-letter state: 'R', 'S', 'D', 'T', 'Z' (zombie), ...
	State byte
}

// String formats p as "pid 123 (sleep) state S".
func (p Proc) String() string {
	return fmt.Sprintf("pid %d (%s) state %c", p.PID, p.Comm, p.State)
}

// VerifyNone registers a cleanup that fails t if, once the test and every
// cleanup registered after this call have run, the process has goroutines,
// open file descriptors or child processes (zombies included) that it did
// not have when VerifyNone was called. Leftovers get up to two seconds to go
// away, polled every 10 ms.
//
// Call it first in the test, and not from a test that runs in parallel with
// others (see the package doc).
func VerifyNone(t testing.TB) {
	t.Helper()
	verifyNone(t, pollTimeout)
}

func verifyNone(t testing.TB, timeout time.Duration) {
	t.Helper()
	s, err := takeSnapshot(goleak.IgnoreCurrent())
	if err != nil {
		t.Logf("testutil: checking goroutines only: %v", err)
	}
	t.Cleanup(func() {
		if err := s.wait(timeout); err != nil {
			t.Errorf("testutil: test left behind:\n%v", err)
		}
	})
}

// VerifyTestMain runs the tests, as goleak.VerifyTestMain does, and exits
// with their exit code. When they passed, it first waits up to two seconds
// for goroutines (other than goleak's defaults) and for child processes that
// were not there before the tests to go away, and exits with 1, printing
// them, if some remain.
//
// Use it as
//
//	func TestMain(m *testing.M) { testutil.VerifyTestMain(m) }
func VerifyTestMain(m *testing.M) {
	s, err := takeSnapshot()
	if err != nil {
		fmt.Fprintf(os.Stderr, "testutil: checking goroutines only: %v\n", err)
	}
	// Descriptors opened once per process (by package init, by the runtime
	// on first use) may legitimately outlive the tests.
	s.fds = nil
	code := m.Run()
	if code == 0 {
		if err := s.wait(pollTimeout); err != nil {
			fmt.Fprintf(os.Stderr, "testutil: tests passed but left behind:\n%v\n", err)
			code = 1
		}
	}
	CleanupWasm()
	StopEngines()
	os.Exit(code)
}

// snapshot is the state of the process when a check began.
type snapshot struct {
	goleakOpts []goleak.Option // goroutines to ignore besides goleak's defaults
	fds        map[int]string  // nil: do not check descriptors
	children   map[procKey]Proc
	checkProcs bool // false: /proc could not be read, do not check children
}

// procKey names a process across PID reuse.
type procKey struct {
	pid       int
	startTime uint64 // clock ticks after boot
}

func takeSnapshot(goleakOpts ...goleak.Option) (*snapshot, error) {
	s := &snapshot{goleakOpts: goleakOpts}
	// The runtime opens its poller's epoll and eventfd descriptors on first
	// use and never closes them; open them now so they count as there
	// before the test.
	if r, w, err := os.Pipe(); err == nil {
		r.Close()
		w.Close()
	}
	var errs []error
	fds, err := openFDs()
	if err != nil {
		errs = append(errs, err)
	} else {
		s.fds = fds
	}
	children, err := children()
	if err != nil {
		errs = append(errs, err)
	} else {
		s.children = children
		s.checkProcs = true
	}
	return s, errors.Join(errs...)
}

// wait polls s.leaks every pollInterval until it finds nothing or timeout
// has passed, and returns what it found last.
func (s *snapshot) wait(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := s.leaks()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(pollInterval)
	}
}

// leaks looks once for leftovers of every kind.
func (s *snapshot) leaks() error {
	var errs []error
	if err := checkGoroutines(s.goleakOpts...); err != nil {
		errs = append(errs, err)
	}
	if s.fds != nil {
		if err := checkFDs(s.fds); err != nil {
			errs = append(errs, err)
		}
	}
	if s.checkProcs {
		if err := checkChildren(s.children); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// checkGoroutines reports goroutines other than the caller's, goleak's
// defaults (the testing package's own, os/signal's) and those opts ignore.
// goleak retries briefly by itself before it reports.
func checkGoroutines(opts ...goleak.Option) error {
	if err := goleak.Find(opts...); err != nil {
		return fmt.Errorf("leaked goroutines: %w", err)
	}
	return nil
}

// checkFDs reports an error naming the new descriptors if more are open now
// than in before.
func checkFDs(before map[int]string) error {
	now, err := openFDs()
	if err != nil {
		return err
	}
	if len(now) <= len(before) {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "open file descriptors grew from %d to %d:", len(before), len(now))
	for _, fd := range slices.Sorted(maps.Keys(now)) {
		if target, ok := before[fd]; ok && target == now[fd] {
			continue
		}
		fmt.Fprintf(&b, "\n\tfd %d -> %s", fd, now[fd])
	}
	return errors.New(b.String())
}

// checkChildren reports child processes, zombies included, that are not in
// before.
func checkChildren(before map[procKey]Proc) error {
	now, err := children()
	if err != nil {
		return err
	}
	var extra []Proc
	for k, p := range now {
		if _, ok := before[k]; !ok {
			extra = append(extra, p)
		}
	}
	if len(extra) == 0 {
		return nil
	}
	slices.SortFunc(extra, func(a, b Proc) int { return a.PID - b.PID })
	var b strings.Builder
	fmt.Fprintf(&b, "%d child process(es) left behind (state Z: exited, never waited for):", len(extra))
	for _, p := range extra {
		fmt.Fprintf(&b, "\n\t%v", p)
	}
	return errors.New(b.String())
}

// OpenFDs returns the process's open file descriptors, each mapped to what
// /proc/self/fd says it refers to: a path, "pipe:[N]", "socket:[N]",
// "anon_inode:[eventpoll]", and so on. The descriptor used to read the
// directory is left out. It returns nil if /proc/self/fd cannot be read.
func OpenFDs() map[int]string {
	fds, err := openFDs()
	if err != nil {
		return nil
	}
	return fds
}

func openFDs() (map[int]string, error) {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return nil, fmt.Errorf("listing file descriptors: %w", err)
	}
	defer d.Close()
	self := int(d.Fd())
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("listing file descriptors: %w", err)
	}
	fds := make(map[int]string, len(names))
	for _, name := range names {
		fd, err := strconv.Atoi(name)
		if err != nil || fd == self {
			continue
		}
		target, err := os.Readlink("/proc/self/fd/" + name)
		if err != nil {
			continue // closed since the directory was read
		}
		fds[fd] = target
	}
	return fds, nil
}

// Children returns the processes whose parent is this process, zombies
// included, ordered by PID. It returns nil if /proc cannot be read.
func Children() []Proc {
	m, err := children()
	if err != nil {
		return nil
	}
	procs := make([]Proc, 0, len(m))
	for _, p := range m {
		procs = append(procs, p)
	}
	slices.SortFunc(procs, func(a, b Proc) int { return a.PID - b.PID })
	return procs
}

func children() (map[procKey]Proc, error) {
	names, err := readDirNames("/proc")
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	self := os.Getpid()
	m := make(map[procKey]Proc)
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + name + "/stat")
		if err != nil {
			continue // exited and reaped since /proc was read
		}
		p, ppid, start, err := parseStat(data)
		if err != nil || ppid != self {
			continue
		}
		m[procKey{pid: pid, startTime: start}] = p
	}
	return m, nil
}

func readDirNames(dir string) ([]string, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Readdirnames(-1)
}

// parseStat parses the contents of /proc/PID/stat (see proc(5)): "pid (comm)
// state ppid ..." where comm may itself hold spaces and parentheses, and
// start time is the 22nd field.
func parseStat(data []byte) (p Proc, ppid int, startTime uint64, err error) {
	open := bytes.IndexByte(data, '(')
	end := bytes.LastIndexByte(data, ')')
	if open < 0 || end < open {
		return Proc{}, 0, 0, fmt.Errorf("parse stat %q: no comm", data)
	}
	fields := strings.Fields(string(data[end+1:]))
	// fields[0] is field 3 of proc(5).
	if len(fields) < 20 || len(fields[0]) != 1 {
		return Proc{}, 0, 0, fmt.Errorf("parse stat %q: short", data)
	}
	if ppid, err = strconv.Atoi(fields[1]); err != nil {
		return Proc{}, 0, 0, fmt.Errorf("parse stat %q: ppid: %w", data, err)
	}
	if startTime, err = strconv.ParseUint(fields[19], 10, 64); err != nil {
		return Proc{}, 0, 0, fmt.Errorf("parse stat %q: starttime: %w", data, err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data[:open])))
	return Proc{PID: pid, Comm: string(data[open+1 : end]), State: fields[0][0]}, ppid, startTime, nil
}
