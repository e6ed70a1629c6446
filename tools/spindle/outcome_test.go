package main

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/internal/testutil"
)

// waitProcesses waits until n processes run exe.
func waitProcesses(t *testing.T, exe string, n int) []int {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		pids := processesOf(exe)
		if len(pids) >= n {
			return pids
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d processes of %s, want %d", len(pids), exe, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRunInterruptedCounted: Ctrl-C while two targets run their task is
// neither a failure nor unreachable: each target's line has kind
// "interrupted" (class cancelled) and one wording, the recap counts them
// as interrupted, and the exit status is 130.
func TestRunInterruptedCounted(t *testing.T) {
	testutil.VerifyNone(t)
	exe := cliCopy(t)
	probe := testutil.BuildWasm(t, "examples/wasm/ciprobe", false)
	cmd, sc, errOut := startCLI(t, exe, "run", "--json", "-t", "local:int-a", "-t", "local:int-b", probe, "--", "loop")
	waitProcesses(t, exe, 3)
	time.Sleep(500 * time.Millisecond) // the tasks are looping (or still starting: the same outcome)
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	var lines []runLine
	for sc.Scan() {
		var l runLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, l)
	}
	waitExit(t, cmd, exe, errOut)
	if len(lines) != 2 {
		t.Fatalf("%d JSON lines, want 2\n%s", len(lines), errOut)
	}
	for _, l := range lines {
		if l.OK || l.Error == nil || l.Error.Kind != "interrupted" || l.Error.Class != "cancelled" || l.Error.Message != "the run was interrupted before this target finished" {
			t.Errorf("line %s; want kind interrupted, class cancelled, one wording", show(l))
		}
	}
	if !strings.Contains(errOut.String(), "2 targets: 0 ok, 0 failed, 0 unreachable, 2 interrupted in ") {
		t.Errorf("the recap does not count 2 interrupted:\n%s", errOut)
	}
}

// TestRunLostMidTask: a context killed while its task runs is "lost",
// not unreachable and not a routing error: one line on stderr in one
// wording with a hint, counted as lost, exit 3.
func TestRunLostMidTask(t *testing.T) {
	testutil.VerifyNone(t)
	exe := cliCopy(t)
	probe := testutil.BuildWasm(t, "examples/wasm/ciprobe", false)
	for _, asJSON := range []bool{false, true} {
		args := []string{"run", "-t", "local:lost-a", probe, "--", "echo", "started", ";", "loop"}
		if asJSON {
			args = []string{"run", "--json", "-t", "local:lost-a", "-t", "local:lost-b", probe, "--", "loop"}
		}
		cmd, sc, errOut := startCLI(t, exe, args...)
		if !asJSON && (!sc.Scan() || sc.Text() != "started") {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the task did not start: %q %v\n%s", sc.Text(), sc.Err(), errOut.String())
		}
		want := 2
		if asJSON {
			want = 3
		}
		pids := waitProcesses(t, exe, want)
		if asJSON {
			time.Sleep(500 * time.Millisecond) // running their tasks
		}
		for _, pid := range pids {
			if pid != cmd.Process.Pid {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		var out []string
		for sc.Scan() {
			out = append(out, sc.Text())
		}
		cmd.Wait()
		if code := cmd.ProcessState.ExitCode(); code != exitCIInfra {
			t.Errorf("--json %v: exit %d, want %d\n%s\n%s", asJSON, code, exitCIInfra, out, errOut)
		}
		if !asJSON {
			want := "local:lost-a                 FAILED  lost: its context went away during the task\n    hint: "
			if !strings.Contains(errOut.String(), want) || strings.Contains(errOut.String(), "routing") {
				t.Errorf("stderr:\n%s\nwant %q and no routing", errOut, want)
			}
			continue
		}
		var targets []string
		for _, text := range out {
			var l runLine
			if err := json.Unmarshal([]byte(text), &l); err != nil || l.OK || l.Error.Kind != "lost" || l.Error.Class != "lost" || l.Error.Message != "its context went away during the task" {
				t.Errorf("line %q (%v); want kind lost, class lost, one wording", text, err)
			}
			targets = append(targets, l.Target)
		}
		if slices.Sort(targets); !slices.Equal(targets, []string{"local:lost-a", "local:lost-b"}) {
			t.Errorf("lines for %q, want one for each target", targets)
		}
		if !strings.Contains(errOut.String(), "2 targets: 0 ok, 0 failed, 0 unreachable, 2 lost in ") {
			t.Errorf("the recap does not count 2 lost:\n%s", errOut)
		}
	}
}
