package host_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/host"
	"github.com/spindle-hq/spindle/internal/testutil"
)

// report parses the guests' "key=value" sandbox report.
func report(t *testing.T, out string) map[string]string {
	t.Helper()
	r := make(map[string]string)
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("report line %q in %q", line, out)
		}
		r[k] = v
	}
	return r
}

// sandbox runs the sandbox report of a Go guest, command or reactor.
func sandbox(t *testing.T, h *host.Host, guest string, g host.Grants) map[string]string {
	t.Helper()
	m := compile(t, h, guest)
	var stdout bytes.Buffer
	call := host.Call{Grants: g, Stdout: &stdout}
	if m.Kind() == host.Command {
		call.Args = []string{"sandbox"}
	} else {
		call.Task = "sandbox"
	}
	res, err := h.Run(t.Context(), m, call)
	if err != nil {
		t.Fatalf("%s: Run: %v", guest, err)
	}
	return report(t, stdout.String()+string(res.Output))
}

func TestSandboxDefaults(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	for _, guest := range []string{"gocmd", "goreactor"} {
		r1 := sandbox(t, h, guest, host.Grants{})
		r2 := sandbox(t, h, guest, host.Grants{})
		if r1["year"] != "2022" {
			t.Errorf("%s: year = %s, want the fake clock's 2022", guest, r1["year"])
		}
		if r1["env"] != "[]" {
			t.Errorf("%s: env = %s, want none", guest, r1["env"])
		}
		if r1["data"] != "error" {
			t.Errorf("%s: /data = %s, want no file system", guest, r1["data"])
		}
		if r1["rand"] != r2["rand"] {
			t.Errorf("%s: random bytes %s then %s, want deterministic ones", guest, r1["rand"], r2["rand"])
		}
	}
}

func TestSandboxGrants(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	g := host.Grants{
		Clock:  true,
		Random: true,
		Env:    map[string]string{"B": "2", "A": "1"},
		Mounts: []host.Mount{{HostDir: t.TempDir(), GuestDir: "/data", ReadOnly: true}},
	}
	for _, guest := range []string{"gocmd", "goreactor"} {
		r1 := sandbox(t, h, guest, g)
		r2 := sandbox(t, h, guest, g)
		if want := fmt.Sprint(time.Now().Year()); r1["year"] != want {
			t.Errorf("%s: year = %s, want %s", guest, r1["year"], want)
		}
		if r1["env"] != `["A=1" "B=2"]` {
			t.Errorf("%s: env = %s, want A and B", guest, r1["env"])
		}
		if r1["data"] != "ok" {
			t.Errorf("%s: /data = %s, want the mount", guest, r1["data"])
		}
		if r1["rand"] == r2["rand"] {
			t.Errorf("%s: random bytes %s twice, want real ones", guest, r1["rand"])
		}
	}
}

// TestClockSleep checks that a guest sleeping on the real clock still ends
// at its timeout, and that the fake clock's sleeps take no host time.
func TestClockSleep(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	m := compile(t, h, "goreactor")
	start := time.Now()
	_, err := h.Run(t.Context(), m, host.Call{
		Task: "sleep", Input: []byte("1h"),
		Grants: host.Grants{Clock: true},
		Limits: host.Limits{Timeout: 300 * time.Millisecond},
	})
	if host.KindOf(err) != host.KindTimeout {
		t.Errorf("real sleep: Run = %v, want kind timeout", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("real sleep ended after %v, want about 300ms", d)
	}
	// The fake clock advances 1ms per read, so the guest's runtime reads
	// it about a thousand times to sleep a second.
	start = time.Now()
	if _, err := h.Run(t.Context(), m, host.Call{
		Task: "sleep", Input: []byte("1s"),
		Limits: host.Limits{Timeout: 5 * time.Second},
	}); err != nil {
		t.Errorf("fake sleep: Run = %v, want success", err)
	}
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Errorf("fake sleep of 1s took %v", d)
	}
}

func TestMounts(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	m := compile(t, h, "gocmd")

	top := t.TempDir()
	ro := filepath.Join(top, "ro")
	rw := filepath.Join(top, "rw")
	for _, d := range []string{ro, rw} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	must(t, os.WriteFile(filepath.Join(top, "secret.txt"), []byte("SECRET"), 0o644))
	must(t, os.WriteFile(filepath.Join(ro, "in.txt"), []byte("input"), 0o644))
	must(t, os.Symlink("../secret.txt", filepath.Join(ro, "link")))
	must(t, os.Symlink(filepath.Join(top, "secret.txt"), filepath.Join(ro, "abslink")))

	ops := []struct {
		op   string
		want string // "ok ..." or "error"
	}{
		{"read:/ro/in.txt", "ok input"},
		{"write:/ro/new.txt:x", "error"},
		{"write:/rw/out.txt:hello", "ok "},
		{"read:/rw/out.txt", "ok hello"},
		{"ls:/ro", "ok abslink,in.txt,link"},
		{"read:/ro/../secret.txt", "error"},
		{"read:/rw/../secret.txt", "error"},
		{"read:/ro/link", "error"},
		{"read:/ro/abslink", "error"},
		{"symlink:../secret.txt:/rw/evil", ""}, // may be made
		{"read:/rw/evil", "error"},             // but not followed out
		{"symlink:/etc/passwd:/rw/abs", "error"},
		{"read:/etc/passwd", "error"},
	}
	var args []string
	for _, o := range ops {
		args = append(args, o.op)
	}
	var stdout bytes.Buffer
	res, err := h.Run(t.Context(), m, host.Call{
		Args:   args,
		Stdout: &stdout,
		Grants: host.Grants{Mounts: []host.Mount{
			{HostDir: ro, GuestDir: "/ro", ReadOnly: true},
			{HostDir: rw, GuestDir: "/rw"},
		}},
	})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("Run = %v, %v\n%s", res, err, stdout.String())
	}
	if strings.Contains(stdout.String(), "SECRET") {
		t.Errorf("the guest read the secret outside its mounts:\n%s", stdout.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != len(ops) {
		t.Fatalf("%d lines for %d ops:\n%s", len(lines), len(ops), stdout.String())
	}
	for i, o := range ops {
		if o.want == "" {
			continue
		}
		if want := o.op + " -> " + o.want; lines[i] != want {
			t.Errorf("got %q, want %q", lines[i], want)
		}
	}
	if b, err := os.ReadFile(filepath.Join(rw, "out.txt")); err != nil || string(b) != "hello" {
		t.Errorf("host sees rw/out.txt = %q, %v; want hello", b, err)
	}
	if _, err := os.Stat(filepath.Join(ro, "new.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("read-only mount was written: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
