package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spindle-hq/spindle/internal/testutil"
)

// batteries builds the sh battery into a directory and points spindle at
// it (SPINDLE_BATTERIES), as make build puts it beside bin/spindle.
func batteries(t *testing.T) string {
	t.Helper()
	wasm, err := os.ReadFile(testutil.BuildWasm(t, "tools/batteries/sh", false))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "sh.wasm"), wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(batteriesEnv, dir)
	return dir
}

// TestShLocal: spindle sh runs exactly the argv on each local target and
// prints a row per target and the recap; a failing program fails its
// target; --json is one object per target.
func TestShLocal(t *testing.T) {
	testutil.VerifyNone(t)
	batteries(t)
	t.Setenv("XDG_CACHE_HOME", filepath.Join(os.TempDir(), "spindle-test-xdg"))

	code, out, errs := cli(t, "sh", "-t", "local:a", "-t", "local:b", "--", "echo", "hello", "*")
	if code != 0 {
		t.Fatalf("spindle sh echo = %d\n%s\n%s", code, out, errs)
	}
	for _, want := range []string{"local:a | CHANGED | rc=0 >>\n    hello *\n", "local:b | CHANGED | rc=0 >>\n    hello *\n",
		"\nRECAP\n", "local:a              : ok=1 changed=1 unreachable=0 failed=0\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errs, "2 targets: 2 changed, 0 failed, 0 unreachable in ") {
		t.Errorf("stderr lacks the summary:\n%s", errs)
	}

	code, out, errs = cli(t, "sh", "-t", "local", "--env", "X=from-env", "--chdir", "/tmp", "--", "sh", "-c", "echo $X; pwd; exit 3")
	if code != exitCIFailed || !strings.Contains(out, "local | FAILED | rc=3 >>\n    from-env\n    /tmp\n") ||
		!strings.Contains(out, "local                : ok=0 changed=0 unreachable=0 failed=1") {
		t.Errorf("spindle sh exit 3 = %d, want %d and a FAILED row\n%s\n%s", code, exitCIFailed, out, errs)
	}

	code, out, errs = cli(t, "sh", "-t", "local", "--timeout", "200ms", "--", "sleep", "30")
	if code != exitCIFailed || !strings.Contains(out, "rc=124") || !strings.Contains(out, "its process group was killed") {
		t.Errorf("spindle sh --timeout = %d\n%s\n%s", code, out, errs)
	}

	code, out, errs = cli(t, "sh", "-t", "local", "--json", "--", "no-such-program-here")
	var l shLine
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &l); err != nil || code != exitCIFailed {
		t.Fatalf("spindle sh --json = %d, %q: %v\n%s", code, out, err, errs)
	}
	if l.Status != "failed" || l.RC == nil || *l.RC != 127 || !strings.Contains(l.Stdout, "not installed") {
		t.Errorf("--json line = %+v, want failed with rc 127 (not installed)", l)
	}
}

func TestShUsage(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--", "uptime"}, "name the targets with -t"},
		{[]string{"-t", "local"}, "no program given"},
		{[]string{"-t", "local", "--", "./x"}, `program "./x": want a name`},
		{[]string{"-t", "local", "--chdir", "tmp", "--", "ls"}, "--chdir"},
		{[]string{"-t", "local", "--env", "X", "--", "ls"}, `--env "X": want K=V`},
		{[]string{"-t", "local", "--timeout", "5", "--", "ls"}, "needs a unit"},
		{[]string{"-t", "local", "--parallel", "0", "--", "ls"}, "--parallel"},
	} {
		code, _, errs := runCmd(t, append([]string{"sh"}, tt.args...)...)
		if code != exitUsage || !strings.Contains(errs, tt.want) {
			t.Errorf("spindle sh %q = %d, %q; want %d and %q", tt.args, code, errs, exitUsage, tt.want)
		}
	}
	o, err := parseShArgs([]string{"-t", "local", "--become", "--", "ls", "-l", "a*"})
	if err != nil {
		t.Fatal(err)
	}
	gs := o.shGrants()
	if o.becomeUser != "root" || len(gs) != len(shSearchDirs) || gs[0].Path != "/usr/local/sbin/ls" ||
		strings.Join(gs[0].Args, " ") != `-l a\*` || gs[0].Env["PATH"] == "" {
		t.Errorf("grants of ls -l a* = %+v (become %q), want one per search dir with the arguments quoted", gs, o.becomeUser)
	}
}

func TestBatteryPin(t *testing.T) {
	b := []byte("module bytes")
	sum := sha256.Sum256(b)
	hash := hex.EncodeToString(sum[:])
	if _, pinned, err := checkPin("sh", "x/sh.wasm", b, "facts=00,sh="+hash); err != nil || !pinned {
		t.Errorf("matching pin: pinned %v, %v", pinned, err)
	}
	if _, _, err := checkPin("sh", "x/sh.wasm", b, "sh="+strings.Repeat("0", 64)); err == nil || !strings.Contains(err.Error(), "rebuild both with make build") {
		t.Errorf("wrong pin: %v, want a refusal", err)
	}
	if _, _, err := checkPin("sh", "x/sh.wasm", b, "facts="+hash); err == nil || !strings.Contains(err.Error(), "built without it") {
		t.Errorf("no pin for sh: %v, want a refusal", err)
	}
	if _, pinned, err := checkPin("sh", "x/sh.wasm", b, ""); err != nil || pinned {
		t.Errorf("unpinned build: pinned %v, %v; want the module, unpinned", pinned, err)
	}
	t.Setenv(batteriesEnv, t.TempDir())
	if _, _, err := loadBattery("sh"); err == nil || !strings.Contains(err.Error(), "make build puts it in bin/batteries/") {
		t.Errorf("loadBattery with none = %v, want where to get it", err)
	}
}

// TestShSSH: spindle sh over the loopback sshd, through an intermediate
// (ssh, then a local child there), and --become-user through the sudo hop
// appended to each chain.
func TestShSSH(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for sshd; CI runs as root")
	}
	testutil.VerifyNone(t)
	s := sshCLI(t)
	batteries(t)
	hostT := "ssh://" + testutil.SSHHost
	code, out, errs := cli(t, "sh", "--ssh-config", s.SSHConfig, "-t", hostT, "-t", hostT+"/local:leaf", "--", "id", "-un")
	if code != 0 || strings.Count(out, "| CHANGED | rc=0 >>\n    root\n") != 2 {
		t.Fatalf("spindle sh over ssh = %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = cli(t, "sh", "--ssh-config", s.SSHConfig, "-t", hostT+"/local:leaf", "--become-user", s.Unpriv, "--", "id", "-un")
	if code != 0 || !strings.Contains(out, "| CHANGED | rc=0 >>\n    "+s.Unpriv+"\n") {
		t.Fatalf("spindle sh --become-user %s = %d\n%s\n%s", s.Unpriv, code, out, errs)
	}
	code, out, errs = cli(t, "sh", "--ssh-config", s.SSHConfig, "-t", "ssh://nobody@127.0.0.1:1", "--", "id")
	if code != exitCIInfra || !strings.Contains(out, "ssh://nobody@127.0.0.1:1 | UNREACHABLE! => ") {
		t.Errorf("spindle sh to a closed port = %d\n%s\n%s", code, out, errs)
	}
}
