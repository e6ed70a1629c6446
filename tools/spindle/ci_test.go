package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spindle-hq/spindle/internal/testutil"
)

// ciJob writes a job file naming the probe module and returns its path.
func ciJob(t *testing.T, yaml string) string {
	t.Helper()
	probe := testutil.BuildWasm(t, "examples/wasm/ciprobe", false)
	p := filepath.Join(t.TempDir(), "job.yaml")
	if err := os.WriteFile(p, []byte(strings.ReplaceAll(yaml, "PROBE", probe)), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCIExitCodesAndOutput(t *testing.T) {
	testutil.VerifyNone(t)
	ws := t.TempDir()
	if err := os.WriteFile(filepath.Join(ws, "a.txt"), []byte("hello from a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	pass := ciJob(t, `
jobs:
  j:
    steps:
      - {name: show, module: PROBE, args: [cat, /src/a.txt]}
`)
	code, out, errOut := runCmd(t, "ci", "--cache-dir", cache, "-w", ws, pass)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"j/show | hello from a", "j/show: passed (cache miss) on local", "1 steps: 1 passed", "cache: 0 hits, 1 misses"} {
		if !strings.Contains(out, want) {
			t.Fatalf("stdout lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runCmd(t, "ci", "--cache-dir", cache, "-w", ws, pass, "--json")
	if code != 0 {
		t.Fatalf("--json rerun: exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var types []string
	for _, l := range lines {
		var ev struct {
			Type   string `json:"type"`
			Result *struct {
				Cache string `json:"cache"`
			} `json:"result"`
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("not a JSON line: %q: %v", l, err)
		}
		types = append(types, ev.Type)
		if ev.Result != nil && ev.Result.Cache != "hit" {
			t.Fatalf("rerun was not a hit: %s", l)
		}
	}
	if types[len(types)-1] != "summary" || !strings.Contains(strings.Join(types, " "), "log") {
		t.Fatalf("event types: %v", types)
	}

	fail := ciJob(t, `
jobs:
  j:
    steps:
      - {name: bad, module: PROBE, args: [stderr, broken, ";", exit, "2"]}
`)
	code, out, _ = runCmd(t, "ci", "--cache-dir", cache, "-w", ws, fail)
	if code != exitCIFailed || !strings.Contains(out, "j/bad | broken") || !strings.Contains(out, "exit status 2") {
		t.Fatalf("failing job: exit %d\n%s", code, out)
	}

	bad := ciJob(t, "jobs:\n  j:\n    stepz: []\n")
	code, _, errOut = runCmd(t, "ci", bad)
	if code != exitUsage || !strings.Contains(errOut, "job.yaml:3:5") {
		t.Fatalf("malformed file: exit %d: %s", code, errOut)
	}
	if code, _, errOut = runCmd(t, "ci"); code != exitUsage || !strings.Contains(errOut, "a job file is needed") {
		t.Fatalf("no file: exit %d: %s", code, errOut)
	}
	if code, _, errOut = runCmd(t, "ci", "--parallel", "0", pass); code != exitUsage || !strings.Contains(errOut, "--parallel") {
		t.Fatalf("bad flag: exit %d: %s", code, errOut)
	}
	unreachable := ciJob(t, `
jobs:
  j:
    targets: ["ssh://nobody@127.0.0.1:1?timeout=5s"]
    steps:
      - {name: s, module: PROBE, args: [echo, hi]}
`)
	if code, out, _ = runCmd(t, "ci", "--retries", "0", "--cache-dir", cache, "-w", ws, unreachable); code != exitCIInfra {
		t.Fatalf("unreachable target: exit %d\n%s", code, out)
	}
}

// TestCISecretsFromFlags: a secret the job file asks for gets its value
// only from the operator's flags (or --trust-secrets), never from a source
// the job file chose; the value never reaches the output.
func TestCISecretsFromFlags(t *testing.T) {
	testutil.VerifyNone(t)
	ws := t.TempDir()
	t.Setenv("OPERATOR_TOKEN", "the-operators-token")
	t.Setenv("HOST_SECRET", "a-host-secret-the-file-wants")
	job := ciJob(t, `
secrets:
  TOKEN: {env: HOST_SECRET}
jobs:
  j:
    steps:
      - {name: s, module: PROBE, secrets: [TOKEN], args: [cat, /run/secrets/TOKEN]}
`)
	code, _, errOut := runCmd(t, "ci", "--cache-dir", "-", "-w", ws, job)
	if code != exitUsage || !strings.Contains(errOut, "give it with --secret TOKEN") {
		t.Fatalf("no flag: exit %d: %s", code, errOut)
	}
	code, out, errOut := runCmd(t, "ci", "--cache-dir", "-", "-w", ws, "--secret", "TOKEN=OPERATOR_TOKEN", job)
	if code != 0 || !strings.Contains(out, "j/s | ***") {
		t.Fatalf("--secret: exit %d\n%s\n%s", code, out, errOut)
	}
	if strings.Contains(out+errOut, "the-operators-token") || strings.Contains(out+errOut, "a-host-secret") {
		t.Fatalf("a secret reached the output:\n%s\n%s", out, errOut)
	}
	if code, _, errOut = runCmd(t, "ci", "--cache-dir", "-", "-w", ws, "--secret", "OTHER", job); code != exitUsage ||
		!strings.Contains(errOut, "no such secret") {
		t.Fatalf("an undeclared --secret: exit %d: %s", code, errOut)
	}
	if code, out, _ = runCmd(t, "ci", "--cache-dir", "-", "-w", ws, "--trust-secrets", job); code != 0 || !strings.Contains(out, "j/s | ***") {
		t.Fatalf("--trust-secrets: exit %d\n%s", code, out)
	}
}
