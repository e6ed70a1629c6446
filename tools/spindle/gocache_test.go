package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/ci/gocache"
	"github.com/spindle-hq/spindle/internal/testutil"
	"github.com/spindle-hq/spindle/routing"
)

// gocacheBuild runs go build of testdata/toolexec with spindle gocache
// (this test binary, as the CLI) and these flags as its GOCACHEPROG, a
// GOCACHE of its own, and XDG_CACHE_HOME xdg (where a local context keeps
// the shared cache). It returns the binary's sha256 and go's output.
func gocacheBuild(t *testing.T, xdg, out string, flags ...string) ([32]byte, string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return gocacheBuildWith(t, exe, xdg, out, flags...)
}

// gocacheBuildWith is gocacheBuild with the spindle binary exe.
func gocacheBuildWith(t *testing.T, exe, xdg, out string, flags ...string) ([32]byte, string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-x", "-o", out, ".")
	cmd.Dir = "testdata/toolexec"
	cmd.Env = append(os.Environ(), "GOCACHE="+t.TempDir(), "GOFLAGS=", "GOWORK=off", "GOOS=", "GOARCH=",
		"XDG_CACHE_HOME="+xdg, cliEnv+"=1", "GOCACHEPROG="+exe+" gocache -v "+strings.Join(flags, " "))
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go build with spindle gocache %s: %v\n%s", strings.Join(flags, " "), err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(data), string(b)
}

// gocacheSummary reads the -v line of spindle gocache: hits, puts, and
// the shared cache's hits and puts sent (-1 without one).
func gocacheSummary(t *testing.T, out string) (hits, puts, sharedHits, sent int) {
	t.Helper()
	m := regexp.MustCompile(`spindle gocache: (\d+) gets, (\d+) hits \([^)]*\), (\d+) puts \([^)]*\)(?:; on \S+: (\d+) hits, (\d+) puts sent)?`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no summary line from spindle gocache -v:\n%s", out)
	}
	n := func(s string) int {
		if s == "" {
			return -1
		}
		v, _ := strconv.Atoi(s)
		return v
	}
	return n(m[2]), n(m[3]), n(m[4]), n(m[5])
}

// TestGocacheShared: two machines' worth of go builds (each with an empty
// GOCACHE and an empty cache directory of its own) share one Go build
// cache held by a context, local or over a loopback sshd (as another
// user): the first puts every output there, the second gets them back
// from it and compiles nothing, and both binaries are the native build's.
func TestGocacheShared(t *testing.T) {
	testutil.VerifyNone(t)
	if testing.Short() {
		t.Skip("builds the standard library's packages of a program twice (-short)")
	}
	dir := t.TempDir()
	native := filepath.Join(dir, "native")
	goBuild(t, filepath.Join(dir, "cache-native"), native)
	nb, _ := os.ReadFile(native)
	want := sha256.Sum256(nb)
	for _, tc := range []struct {
		name string
		ssh  bool
	}{{"local", false}, {"ssh", true}} {
		t.Run(tc.name, func(t *testing.T) {
			exe, err := os.Executable()
			if err != nil {
				t.Fatal(err)
			}
			xdg := t.TempDir() // the local context's ~/.cache
			served := filepath.Join(xdg, "spindle", gocacheServedDir)
			shared := []string{"-t", "local:gocache-shared"}
			if tc.ssh {
				if os.Geteuid() != 0 {
					t.Skip("needs root for sshd; CI runs as root")
				}
				s := testutil.StartSSHD(t)
				exe = testutil.BuildBroker(t) // what ssh ships: not this race-built test binary
				forgetBroker(t, exe, s)
				served = filepath.Join("/home", s.Unpriv, ".cache/spindle", gocacheServedDir)
				os.RemoveAll(served)
				t.Cleanup(func() { os.RemoveAll(served) })
				shared = []string{"--ssh-config", s.SSHConfig, "-t", "ssh://" + s.Unpriv + "@" + testutil.SSHHost}
			}
			sum1, out1 := gocacheBuildWith(t, exe, xdg, filepath.Join(t.TempDir(), "one"), append([]string{"--dir", filepath.Join(t.TempDir(), "machine1")}, shared...)...)
			_, puts1, hits1, sent1 := gocacheSummary(t, out1)
			if puts1 < 10 || sent1 != puts1 || hits1 != 0 {
				t.Errorf("first build: %d puts, %d sent to the context, %d hits from it; want tens of puts, all sent, no hit\n%s", puts1, sent1, hits1, out1)
			}
			if outputs, _ := filepath.Glob(filepath.Join(served, "*", "*-d")); len(outputs) < 10 {
				t.Errorf("the context's cache directory %s holds %d outputs", served, len(outputs))
			}
			sum2, out2 := gocacheBuildWith(t, exe, xdg, filepath.Join(t.TempDir(), "two"), append([]string{"--dir", filepath.Join(t.TempDir(), "machine2")}, shared...)...)
			hits2, _, shared2, _ := gocacheSummary(t, out2)
			if shared2 < puts1/2 || shared2 != hits2 {
				t.Errorf("second build: %d hits, %d of them from the context; want every hit from it, most of the first build's %d puts\n%s", hits2, shared2, puts1, out2)
			}
			if strings.Contains(out2, "/compile ") {
				t.Errorf("the second build compiled:\n%s", out2)
			}
			if sum1 != want || sum2 != want {
				t.Error("a binary built through the shared cache differs from the native build's")
			}
		})
	}
}

// TestGocacheUnreachable: a shared cache that cannot be started is said
// once, and the build goes on with the directory alone.
func TestGocacheUnreachable(t *testing.T) {
	testutil.VerifyNone(t)
	if testing.Short() {
		t.Skip("builds the standard library's packages of a program (-short)")
	}
	dir := t.TempDir()
	_, out := gocacheBuild(t, t.TempDir(), filepath.Join(dir, "bin"), "--dir", filepath.Join(dir, "cache"), "-t", "ssh://nobody@127.0.0.1:1", "--connect-timeout", "5s")
	if n := strings.Count(out, "spindle gocache: the cache on ssh://nobody@127.0.0.1:1 is out of use"); n != 1 {
		t.Errorf("the unreachable cache was said %d times, want once:\n%s", n, out)
	}
	if _, puts, _, sent := gocacheSummary(t, out); puts < 10 || sent != 0 {
		t.Errorf("%d puts, %d sent; want tens of puts into the directory and none sent\n%s", puts, sent, out)
	}
	// The next go command of the directory does not try again for a while:
	// a host that hangs would cost each its connect timeout.
	marks, _ := filepath.Glob(filepath.Join(dir, "cache", ".down-*"))
	if len(marks) != 1 {
		t.Fatalf("marks of the failure: %v, want one", marks)
	}
	// (A directory of its own, holding only the mark, so that go misses.)
	mark, _ := os.ReadFile(marks[0])
	os.MkdirAll(filepath.Join(dir, "cache2"), 0o700)
	os.WriteFile(filepath.Join(dir, "cache2", filepath.Base(marks[0])), mark, 0o600)
	_, out = gocacheBuild(t, t.TempDir(), filepath.Join(dir, "bin2"), "--dir", filepath.Join(dir, "cache2"), "-t", "ssh://nobody@127.0.0.1:1", "--connect-timeout", "5s")
	if !strings.Contains(out, "is out of use (it failed ") || !strings.Contains(out, "asked again 5m0s after that") {
		t.Errorf("the second build did not skip the failed cache:\n%s", out)
	}
	// The skip does not mark the failure again: the mark still says the
	// first failure, so the host is asked again once it is old enough.
	if again, _ := os.ReadFile(filepath.Join(dir, "cache2", filepath.Base(marks[0]))); !bytes.Equal(again, mark) {
		t.Errorf("the mark was rewritten by the session that skipped the host: %q, was %q", again, mark)
	}
}

// newTestShared is a shared cache on a directory of its own, held by the
// local context name; say's lines are collected.
func newTestShared(t *testing.T, name string, o gocacheOpts) (*sharedCache, *[]string) {
	t.Helper()
	d, err := gocache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	said := new([]string)
	say := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		*said = append(*said, fmt.Sprintf(format, a...))
	}
	o.target, o.maxAge = "local:"+name, gocacheDefaultAge
	return newSharedCache(d, &o, say), said
}

// testPut puts body as the output of the action named a, and waits for it
// to be sent (or the cache to go out of use).
func (s *sharedCache) testPut(t *testing.T, a string, body []byte) {
	t.Helper()
	sum := sha256.Sum256(body)
	want := s.sent.Load() + 1
	if _, err := s.Put(context.Background(), actionID(a), sum[:], int64(len(body)), bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	// Sent, or dropped once the cache is out of use.
	for deadline := time.Now().Add(time.Minute); s.sent.Load() < want && !s.lost.Load() && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
}

// TestGocacheChunked: an output larger than a chunk goes to the context in
// chunks and comes back to another machine's directory in chunks, whole;
// one the context has is not sent again; a warm session never starts the
// context.
func TestGocacheChunked(t *testing.T) {
	testutil.VerifyNone(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir()) // the local contexts' served cache
	ctx := context.Background()
	big := bytes.Repeat([]byte("0123456789abcdef"), (2*gocacheChunk+12345)/16)
	one, said := newTestShared(t, "gocache-chunked", gocacheOpts{})
	one.testPut(t, "big", big)
	one.testPut(t, "big again", big) // same output, another action
	one.testPut(t, "small", []byte("small"))
	// Two more actions of one new large output, queued together: two
	// senders take them at once, and the output crosses once.
	big2 := bytes.Repeat([]byte("fedcba9876543210"), (2*gocacheChunk+999)/16)
	sum2 := sha256.Sum256(big2)
	for _, a := range []string{"big2 a", "big2 b"} {
		if _, err := one.Put(ctx, actionID(a), sum2[:], int64(len(big2)), bytes.NewReader(big2)); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(time.Minute); one.sent.Load() < 5 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if err := one.Close(ctx); err != nil || one.sent.Load() != 5 || len(*said) != 0 {
		t.Fatalf("Close = %v; %d sent, said %q; want 5 sent and nothing said", err, one.sent.Load(), *said)
	}
	if n := one.chunked.Load(); n != 2 {
		t.Errorf("%d chunked uploads, want 2: one per large output", n)
	}

	two, said := newTestShared(t, "gocache-chunked", gocacheOpts{})
	for _, tc := range []struct {
		action string
		body   []byte
	}{{"big", big}, {"big again", big}, {"small", []byte("small")}} {
		e, ok, err := two.Get(ctx, actionID(tc.action))
		if !ok || err != nil {
			t.Fatalf("Get %s on the second machine = %v, %v (said %q)", tc.action, ok, err, *said)
		}
		if b, _ := os.ReadFile(e.Path); !bytes.Equal(b, tc.body) {
			t.Errorf("Get %s: %d bytes, want %d", tc.action, len(b), len(tc.body))
		}
	}
	if _, ok, _ := two.Get(ctx, actionID("never put")); ok {
		t.Error("a get of an action nobody put hit")
	}
	if err := two.Close(ctx); err != nil || two.hits.Load() != 3 || len(*said) != 0 {
		t.Errorf("Close = %v; %d hits from the context, said %q; want 3 and nothing said", err, two.hits.Load(), *said)
	}

	// Warm: every get a hit of the directory, the context never started.
	warm := newSharedCache(two.local, two.o, two.say)
	if _, ok, _ := warm.Get(ctx, actionID("big")); !ok || warm.startedAny.Load() {
		t.Errorf("a warm get = %v, started the context: %v; want a hit, not started", ok, warm.startedAny.Load())
	}
	if err := warm.Close(ctx); err != nil {
		t.Error(err)
	}
}

// TestGocacheContextLost: when the context holding the shared cache dies
// mid-session, the next get that asks it is a miss at once, that is said
// once, later puts are kept in the directory only, and Close returns.
func TestGocacheContextLost(t *testing.T) {
	testutil.VerifyNone(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	s, said := newTestShared(t, "gocache-lost", gocacheOpts{})
	ctx := context.Background()
	s.testPut(t, "a", []byte("the output of a"))
	if n := s.sent.Load(); n != 1 {
		t.Fatalf("%d puts sent, want 1 (%q)", n, *said)
	}
	if err := syscall.Kill(s.cx.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-s.cx.Disconnected()
	if _, ok, err := s.Get(ctx, actionID("b")); ok || err != nil {
		t.Errorf("Get through a dead context = %v, %v; want a miss", ok, err)
	}
	s.testPut(t, "c", []byte("the output of c"))
	if _, ok, _ := s.Get(ctx, actionID("c")); !ok {
		t.Error("a put after the loss was not kept in the directory")
	}
	s.Get(ctx, actionID("d"))
	if err := s.Close(ctx); err != nil {
		t.Errorf("Close = %v", err)
	}
	if n := s.sent.Load(); n != 1 || len(*said) != 1 || !strings.Contains((*said)[0], "the cache on local:gocache-lost is out of use") {
		t.Errorf("%d sent, said %q; want 1 sent and the loss said once", n, *said)
	}
}

// TestGocacheStalled: a context that stops answering (SIGSTOP) costs one
// call's timeout, once: the puts go on into the directory (queued, never
// waiting for the context), gets are misses, the loss is said once, and
// Close returns without another timeout.
func TestGocacheStalled(t *testing.T) {
	testutil.VerifyNone(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	s, said := newTestShared(t, "gocache-stalled", gocacheOpts{})
	s.callTimeout = 3 * time.Second
	ctx := context.Background()
	s.testPut(t, "first", []byte("the first output"))
	pid := s.cx.PID()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) })
	began := time.Now()
	for i := range gocacheSends + 2 {
		body := []byte(fmt.Sprintf("output %d", i))
		sum := sha256.Sum256(body)
		if _, err := s.Put(ctx, actionID(fmt.Sprint(i)), sum[:], int64(len(body)), bytes.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok, _ := s.Get(ctx, actionID("never put")); ok {
		t.Error("a get through a stalled context hit")
	}
	if err := s.Close(ctx); err != nil {
		t.Errorf("Close = %v", err)
	}
	took := time.Since(began)
	syscall.Kill(pid, syscall.SIGCONT)
	if took > 3*s.callTimeout {
		t.Errorf("the session took %v with the context stalled, want about one call timeout (%v)", took, s.callTimeout)
	}
	if len(*said) != 1 || !strings.Contains((*said)[0], "out of use") {
		t.Errorf("said %q, want the loss once", *said)
	}
	for i := range gocacheSends + 2 {
		if _, ok, _ := s.local.Get(actionID(fmt.Sprint(i))); !ok {
			t.Errorf("put %d was not kept in the directory", i)
		}
	}
}

// TestGocacheOpenFails: a context that starts but cannot open its cache
// (its cache directory is a file) puts the shared cache out of use at
// once: gets are misses, puts are kept here, the reason is said once, and
// Close returns.
func TestGocacheOpenFails(t *testing.T) {
	testutil.VerifyNone(t)
	file := filepath.Join(t.TempDir(), "not-a-dir")
	os.WriteFile(file, nil, 0o600)
	t.Setenv("XDG_CACHE_HOME", file)
	s, said := newTestShared(t, "gocache-open-fails", gocacheOpts{})
	ctx := context.Background()
	if _, ok, err := s.Get(ctx, actionID("a")); ok || err != nil {
		t.Errorf("Get = %v, %v; want a miss", ok, err)
	}
	s.testPut(t, "b", []byte("the output of b"))
	if _, ok, _ := s.Get(ctx, actionID("b")); !ok {
		t.Error("the put was not kept in the directory")
	}
	if err := s.Close(ctx); err != nil {
		t.Errorf("Close = %v", err)
	}
	if len(*said) != 1 || !strings.Contains((*said)[0], "gocache.open") || !strings.Contains((*said)[0], "not a directory") {
		t.Errorf("said %q, want the open's failure once", *said)
	}
}

// actionID is a made-up action ID.
func actionID(s string) []byte { h := sha256.Sum256([]byte("action " + s)); return h[:] }

// TestGocacheServedRefuses: the served cache's functions, called through
// a real context, refuse malformed IDs, sizes and uploads, bytes that are
// not the output's, and any caller but the master.
func TestGocacheServedRefuses(t *testing.T) {
	testutil.VerifyNone(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	ctx := context.Background()
	m, err := spindle.NewMaster(spindle.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	cx, err := m.StartLocal(ctx, spindle.LocalOptions{Name: "gocache-served"})
	if err != nil {
		t.Fatal(err)
	}
	defer cx.Shutdown(ctx)
	good := strings.Repeat("ab", 32)
	abc := sha256.Sum256([]byte("abc"))
	for _, tc := range []struct {
		name string
		fn   string
		args any
		want error
		text string
	}{
		{"short action", "gocache.get", gocacheGet{Action: "abcd"}, routing.ErrBadRequest, ""},
		{"upper-case action", "gocache.get", gocacheGet{Action: strings.ToUpper(good)}, routing.ErrBadRequest, ""},
		{"not msgpack", "gocache.get", []int{1, 2, 3}, routing.ErrBadRequest, ""},
		{"bad output", "gocache.put", gocachePut{Action: good, Output: "zz", Size: 1}, routing.ErrBadRequest, ""},
		{"too large", "gocache.put", gocachePut{Action: good, Output: good, Size: gocacheMaxShared + 1}, routing.ErrBadRequest, ""},
		{"data past its size", "gocache.put", gocachePut{Action: good, Output: good, Size: 2, Data: []byte("abc")}, routing.ErrBadRequest, ""},
		{"bytes not the output's", "gocache.put", gocachePut{Action: good, Output: good, Size: 3, Data: []byte("abc")}, nil, "does not match"},
		{"a chunk out of order", "gocache.put", gocachePut{Action: good, Output: hex.EncodeToString(abc[:]), Size: 3, Upload: "U-1", Offset: 1, Data: []byte("bc")}, routing.ErrBadRequest, ""},
		{"an upload name", "gocache.put", gocachePut{Action: good, Output: good, Size: 3, Upload: "../x", Data: []byte("abc")}, routing.ErrBadRequest, ""},
		{"read of an unknown output", "gocache.read", gocacheRead{Output: good}, routing.ErrNotFound, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := cx.Call(ctx, tc.fn, tc.args, nil)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("%s = %v, want %v %q", tc.fn, err, tc.want, tc.text)
			}
		})
	}
	var hit gocacheHit
	if err := cx.Call(ctx, "gocache.get", gocacheGet{Action: good}, &hit); err != nil || !hit.Miss {
		t.Errorf("get after the refused puts = %+v, %v; want a miss", hit, err)
	}
	// A caller other than the master (the call's source) is refused.
	for name, f := range gocacheFuncs() {
		if _, err := f.Fn(ctx, &spindle.CallInfo{Src: 7, CacheDir: t.TempDir()}, nil); !errors.Is(err, routing.ErrRefused) {
			t.Errorf("%s from context 7 = %v, want ErrRefused", name, err)
		}
	}
}

func TestGocacheFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-t", "local:a", "-t", "local:b"}, "-t given twice"},
		{[]string{"--max-age", "5"}, "a duration needs a unit"},
		{[]string{"--max-size", "lots"}, "want a number of bytes"},
		{[]string{"extra"}, "extra"},
		{[]string{"-K"}, "without a terminal"},
		{[]string{"--read-only"}, "give -t"},
		{[]string{"--max-age", "30m"}, "at least 1h0m0s"},
		{[]string{"--dir", "relative/dir"}, "want an absolute path"},
		{[]string{"--dir", "/proc/no/such"}, "no such file or directory"},
		{[]string{"-vv", "--dir", "/proc/no/such"}, "no such file or directory"},
	} {
		code, _, errs := runCmd(t, append([]string{"gocache"}, tc.args...)...)
		if code != exitUsage || !strings.Contains(errs, tc.want) {
			t.Errorf("spindle gocache %s = %d, %q; want %d and %q", strings.Join(tc.args, " "), code, errs, exitUsage, tc.want)
		}
	}
}
