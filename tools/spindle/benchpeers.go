package main

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The Mitogen side of `spindle bench --peers`: the same operations run
// through Mitogen (Debian's python3-mitogen, or any python that imports
// mitogen) in the same run, printed beside Spindle's with the ratio.
//
// The script runs as the leader of its own process group, and every
// child Mitogen starts for it (local contexts, and their children for the
// 2- and 3-hop chain) stays in that group: when the run is cut off (its
// timeout, Ctrl-C) the whole group is killed, and runMitogen returns only
// once no live process is left in it.

//go:embed peers/mitogen_bench.py
var mitogenBenchScript []byte

// envBenchPython names the python for --peers; when set, it is the only
// one tried.
const envBenchPython = "SPINDLE_BENCH_PYTHON"

// mitogenInstallHint says how to get a python that imports mitogen.
const mitogenInstallHint = "install Mitogen with: apt-get install python3-mitogen (Debian, Ubuntu: /usr/bin/python3 then imports it), " +
	"or pip install mitogen; or set " + envBenchPython + " to a python that imports mitogen"

// errNoMitogen is returned by findMitogen when no candidate python
// imports mitogen; cmdBench reports it as a usage error.
var errNoMitogen = errors.New("--peers needs Mitogen, and no python here imports it")

// peerTimeout bounds the whole Mitogen run (a normal run takes ~20 s).
const peerTimeout = 5 * time.Minute

// peerPython is a python found to import mitogen.
type peerPython struct {
	Path           string // as found: the env var's value, a PATH lookup, /usr/bin/python3
	PythonVersion  string
	MitogenVersion string
}

// findMitogen returns the first candidate python that imports mitogen:
// $SPINDLE_BENCH_PYTHON alone when it is set; else python3 on PATH, then
// /usr/bin/python3 (a pyenv or venv python3 on PATH often lacks the
// system's dist-packages). The error wraps errNoMitogen and names what
// each candidate said.
func findMitogen(ctx context.Context) (peerPython, error) {
	var cands []string
	if p := os.Getenv(envBenchPython); p != "" {
		cands = []string{p}
	} else {
		if p, err := exec.LookPath("python3"); err == nil {
			cands = append(cands, p)
		}
		if len(cands) == 0 || cands[0] != "/usr/bin/python3" {
			cands = append(cands, "/usr/bin/python3")
		}
	}
	var tried []string
	for _, c := range cands {
		py, err := probePython(ctx, c)
		if err == nil {
			return py, nil
		}
		name := c
		if os.Getenv(envBenchPython) != "" {
			name = envBenchPython + "=" + c
		}
		tried = append(tried, fmt.Sprintf("%s: %v", name, err))
	}
	return peerPython{}, fmt.Errorf("%w (tried %s); %s", errNoMitogen, strings.Join(tried, "; "), mitogenInstallHint)
}

// probePython imports mitogen with python and reads both versions.
func probePython(ctx context.Context, python string) (peerPython, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	const probe = "import sys, mitogen; print('%d.%d.%d' % sys.version_info[:3], '.'.join(map(str, mitogen.__version__)))"
	out, errb := newCapBuffer(4096), newCapBuffer(4096)
	cmd := exec.CommandContext(ctx, python, "-c", probe)
	cmd.Stdout, cmd.Stderr = out, errb
	if err := cmd.Run(); err != nil {
		if last := lastLine(errb.String()); last != "" {
			return peerPython{}, errors.New(last)
		}
		return peerPython{}, err
	}
	f := strings.Fields(out.String())
	if len(f) != 2 {
		return peerPython{}, fmt.Errorf("probe printed %q", out.String())
	}
	return peerPython{Path: python, PythonVersion: f[0], MitogenVersion: f[1]}, nil
}

// mitogenRun is one run of the embedded script.
type mitogenRun struct {
	Python   string
	Args     []string       // the script's iteration flags
	Progress io.Writer      // its "mitogen_bench: PHASE" lines; nil discards them
	Started  func(pgid int) // if set, called once the script runs (tests)
}

// mitogenArgs are the script's iteration counts for spindle bench's
// scale: 1 normally, 10 with --quick.
func mitogenArgs(scale int) []string {
	if scale > 1 {
		return []string{"--spawns", "3", "--rtt", "200", "--pipelined", "2000", "--bulk-mib", "32", "--fanout-rounds", "1"}
	}
	return []string{"--spawns", "10", "--rtt", "2000", "--pipelined", "10000", "--bulk-mib", "256", "--fanout-rounds", "3"}
}

// run writes the script to a temporary directory, runs it in a process
// group of its own and parses its JSON. When ctx ends first, it kills the
// group; either way it returns once no live process is left in the group.
func (r mitogenRun) run(ctx context.Context) (map[string]json.RawMessage, error) {
	dir, err := os.MkdirTemp("", "spindle-peers-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "mitogen_bench.py")
	if err := os.WriteFile(script, mitogenBenchScript, 0o600); err != nil {
		return nil, err
	}
	out, errb := newCapBuffer(1<<20), newCapBuffer(64<<10)
	progress := r.Progress
	if progress == nil {
		progress = io.Discard
	}
	cmd := exec.Command(r.Python, append([]string{script}, r.Args...)...)
	cmd.Dir = dir
	// A context that outlives the script keeps its output pipes open: wait
	// for them briefly, then kill the group (below) all the same.
	cmd.WaitDelay = 2 * time.Second
	cmd.Stdout = out
	cmd.Stderr = io.MultiWriter(errb, progress)
	// Pdeathsig: if spindle itself dies, the script dies, and its
	// children with it (their parent's stream closes).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", r.Python, err)
	}
	pgid := cmd.Process.Pid
	if r.Started != nil {
		r.Started(pgid)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-waited:
		if errors.Is(werr, exec.ErrWaitDelay) {
			werr = nil // it exited 0; only its pipes were held open
		}
	case <-ctx.Done():
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-waited
		werr = ctx.Err()
	}
	// Whatever the script left behind goes too.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	if left := waitGroupGone(pgid, 5*time.Second); len(left) > 0 {
		return nil, fmt.Errorf("mitogen bench: processes %v of group %d outlived a SIGKILL", left, pgid)
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("mitogen bench cut off (%w); its process group %d was killed", ctx.Err(), pgid)
	}
	if werr != nil {
		return nil, fmt.Errorf("mitogen bench (%s): %v: %s", r.Python, werr, strings.TrimSpace(tail(errb.String(), 2000)))
	}
	var figs map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out.String()), &figs); err != nil {
		return nil, fmt.Errorf("mitogen bench printed %q: %w", tail(out.String(), 200), err)
	}
	return figs, nil
}

// groupMembers lists the live (not zombie) processes in process group
// pgid, from /proc.
func groupMembers(pgid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces and ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if g, _ := strconv.Atoi(f[2]); g == pgid {
			pids = append(pids, pid)
		}
	}
	return pids
}

// waitGroupGone polls until group pgid has no live process, or timeout;
// it returns those left.
func waitGroupGone(pgid int, timeout time.Duration) []int {
	deadline := time.Now().Add(timeout)
	for {
		left := groupMembers(pgid)
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// peerRow is a figure compared with Mitogen.
type peerRow struct {
	key          string
	higherBetter bool    // a rate; else a time or a size
	goal         float64 // Spindle must be this many times better
}

// peerRows are the rows of --peers. The goals are issue 11's: 5x on every
// row, 30x on start-up (spawn, and fan-out, which is 20 start-ups at once).
var peerRows = []peerRow{
	{"spawn_local_ms", false, 30},
	{"rtt_1hop_us", false, 5},
	{"rtt_2hop_us", false, 5},
	{"rtt_3hop_us", false, 5},
	{"pipelined_calls_per_s", true, 5},
	{"throughput_mb_s", true, 5},
	{"fanout20_ms", false, 30},
	{"child_rss_mb", false, 5},
}

// peersResult is the "peers" object of spindle bench --peers --json.
// Ratio is how many times better Spindle is (Mitogen's time over
// Spindle's, or Spindle's rate over Mitogen's).
type peersResult struct {
	Peer           string             `json:"peer"`
	MitogenVersion string             `json:"mitogen_version"`
	Python         string             `json:"python"`
	PythonVersion  string             `json:"python_version"`
	Mitogen        map[string]float64 `json:"mitogen"`
	Ratio          map[string]float64 `json:"ratio"`
	Goal           map[string]float64 `json:"goal"`
	Met            map[string]bool    `json:"met"`
	AllMet         bool               `json:"all_met"`
}

// benchPeers runs the Mitogen side and compares it with res.
func benchPeers(ctx context.Context, py peerPython, scale int, res *benchResult, progress io.Writer) (*peersResult, error) {
	ctx, cancel := context.WithTimeout(ctx, peerTimeout)
	defer cancel()
	figs, err := mitogenRun{Python: py.Path, Args: mitogenArgs(scale), Progress: progress}.run(ctx)
	if err != nil {
		return nil, err
	}
	return comparePeers(py, figs, res)
}

func comparePeers(py peerPython, figs map[string]json.RawMessage, res *benchResult) (*peersResult, error) {
	p := &peersResult{Peer: "mitogen", MitogenVersion: py.MitogenVersion, Python: py.Path, PythonVersion: py.PythonVersion,
		Mitogen: map[string]float64{}, Ratio: map[string]float64{}, Goal: map[string]float64{}, Met: map[string]bool{}, AllMet: true}
	ours := map[string]float64{}
	for _, r := range res.rows() {
		ours[r.name] = *r.value
	}
	for _, row := range peerRows {
		var v float64
		if err := json.Unmarshal(figs[row.key], &v); err != nil || v <= 0 {
			return nil, fmt.Errorf("mitogen bench: figure %s = %s, want a positive number", row.key, figs[row.key])
		}
		s := ours[row.key]
		p.Mitogen[row.key] = v
		p.Goal[row.key] = row.goal
		ratio := 0.0
		switch {
		case row.higherBetter:
			ratio = s / v
		case s > 0:
			ratio = v / s
		}
		p.Ratio[row.key] = round2(ratio)
		p.Met[row.key] = ratio >= row.goal
		p.AllMet = p.AllMet && p.Met[row.key]
	}
	return p, nil
}

// printPeers prints the side-by-side table under spindle bench's own.
func printPeers(w io.Writer, p *peersResult, res *benchResult) {
	ours := map[string]benchRow{}
	for _, r := range res.rows() {
		ours[r.name] = r
	}
	fmt.Fprintf(w, "\nbeside Mitogen %s (python %s, %s), same run; ratio: how many times better Spindle is\n",
		p.MitogenVersion, p.PythonVersion, p.Python)
	fmt.Fprintf(w, "%-24s %12s %12s %-6s %9s %-7s %s\n", "figure", "spindle", "mitogen", "unit", "ratio", "goal", "met")
	met := 0
	for _, row := range peerRows {
		r := ours[row.key]
		yes := "no"
		if p.Met[row.key] {
			yes, met = "yes", met+1
		}
		fmt.Fprintf(w, "%-24s %12.1f %12.1f %-6s %8.1fx %-7s %s\n", row.key, *r.value, p.Mitogen[row.key], r.unit,
			p.Ratio[row.key], fmt.Sprintf(">= %gx", row.goal), yes)
	}
	fmt.Fprintf(w, "goals met: %d of %d\n", met, len(peerRows))
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return strings.TrimSpace(s[i+1:])
	}
	return s
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
