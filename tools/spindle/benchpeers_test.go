package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/internal/testutil"
)

// needMitogen returns a python that imports mitogen, or skips the test
// (tools/testdeps.sh installs python3-mitogen, so CI has one).
func needMitogen(t *testing.T) peerPython {
	t.Helper()
	py, err := findMitogen(context.Background())
	if err != nil {
		t.Skipf("no Mitogen here: %v", err)
	}
	return py
}

// TestBenchPeers runs spindle bench --peers for real (few iterations, no
// ssh or wasm figures) and checks both sides' figures are positive numbers
// and every row has its ratio and goal.
func TestBenchPeers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts ~30 Mitogen children")
	}
	needMitogen(t)
	testutil.VerifyNone(t)
	code, out, errs := runCmd(t, "bench", "--json", "--quick", "--peers", "--wasm", "", "--ssh", "127.0.0.1:1")
	if code != 0 {
		t.Fatalf("spindle bench --peers = %d, stderr:\n%s", code, errs)
	}
	var got benchResult
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("bench --peers output is not one JSON object: %v\n%s", err, out)
	}
	p := got.Peers
	if p == nil || p.Peer != "mitogen" || p.MitogenVersion == "" || p.PythonVersion == "" || p.Python == "" {
		t.Fatalf("bench --peers: peers = %+v, want mitogen with its versions and python:\n%s", p, out)
	}
	ours := map[string]float64{}
	for _, r := range got.rows() {
		ours[r.name] = *r.value
	}
	for _, row := range peerRows {
		if ours[row.key] <= 0 || p.Mitogen[row.key] <= 0 || p.Ratio[row.key] <= 0 || p.Goal[row.key] != row.goal {
			t.Errorf("bench --peers %s: spindle %v, mitogen %v, ratio %v, goal %v; want positive figures and goal %v",
				row.key, ours[row.key], p.Mitogen[row.key], p.Ratio[row.key], p.Goal[row.key], row.goal)
		}
		if _, ok := p.Met[row.key]; !ok {
			t.Errorf("bench --peers: no met for %s", row.key)
		}
	}
}

// TestBenchPeersNoMitogen: with SPINDLE_BENCH_PYTHON at a python that
// cannot import mitogen, or at nothing, --peers is a usage error (exit 2)
// that says how to install Mitogen, before any figure is measured.
func TestBenchPeersNoMitogen(t *testing.T) {
	testutil.VerifyNone(t)
	dir := t.TempDir()
	tests := []struct {
		name, python, want string
	}{
		{"nonexistent", filepath.Join(dir, "no-such-python"), "no such file"},
	}
	// A real python without mitogen: the system's, without site (so
	// without dist-packages, where Debian puts mitogen).
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		nosite := filepath.Join(dir, "python-nosite")
		if err := os.WriteFile(nosite, []byte("#!/bin/sh\nexec /usr/bin/python3 -S \"$@\"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		tests = append(tests, struct{ name, python, want string }{"without mitogen", nosite, "No module named 'mitogen'"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(envBenchPython, tt.python)
			code, out, errs := runCmd(t, "bench", "--peers", "--quick")
			for _, want := range []string{"spindle bench: --peers needs Mitogen", envBenchPython + "=" + tt.python, tt.want,
				"apt-get install python3-mitogen", "\nsee spindle bench -h\n"} {
				if !strings.Contains(errs, want) {
					t.Errorf("stderr lacks %q:\n%s", want, errs)
				}
			}
			if code != exitUsage || out != "" {
				t.Errorf("spindle bench --peers = %d, stdout %q; want %d and nothing", code, out, exitUsage)
			}
		})
	}
}

// TestMitogenRunKilled cuts the Mitogen script off while its chain of
// three contexts (child, grandchild, great-grandchild) is up, and checks
// the run returns the cut and leaves no live process in its group.
func TestMitogenRunKilled(t *testing.T) {
	py := needMitogen(t)
	testutil.VerifyNone(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	chain := make(chan struct{})
	var once sync.Once
	prog := &lineWatcher{want: "mitogen_bench: pipelined", seen: func() { once.Do(func() { close(chain) }) }}
	pgids := make(chan int, 1)
	done := make(chan error, 1)
	go func() {
		_, err := mitogenRun{Python: py.Path, Args: mitogenArgs(10), Progress: prog, Started: func(g int) { pgids <- g }}.run(ctx)
		done <- err
	}()
	var pgid int
	select {
	case pgid = <-pgids:
	case err := <-done:
		t.Fatalf("mitogen run ended before it started: %v", err)
	}
	select {
	case <-chain:
	case err := <-done:
		t.Fatalf("mitogen run ended before its chain was up: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("mitogen run: no chain after 2 minutes")
	}
	// The script and its three contexts, at least.
	if up := groupMembers(pgid); len(up) < 4 {
		t.Fatalf("group %d has %v, want the script and its chain of 3", pgid, up)
	}
	cancel()
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("mitogen run did not return within 30s of its cut")
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("mitogen run = %v, want context.Canceled", err)
	}
	if left := groupMembers(pgid); len(left) > 0 {
		t.Errorf("group %d left %v alive", pgid, left)
	}
}

// lineWatcher calls seen when a written line contains want. Safe for
// concurrent use.
type lineWatcher struct {
	want string
	seen func()
	mu   sync.Mutex
	buf  bytes.Buffer // guarded by mu
}

func (w *lineWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.want) {
		w.seen()
	}
	return len(p), nil
}
