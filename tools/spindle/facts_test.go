package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/internal/testutil"
	"github.com/spindle-hq/spindle/tools/batteries/inspect"
	"golang.org/x/sys/unix"
)

// inspectBatteries builds the facts and stat batteries (reactors) into a
// directory and points spindle at it, as make build puts them beside
// bin/spindle.
func inspectBatteries(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	for _, b := range []string{"facts", "stat"} {
		wasm, err := os.ReadFile(testutil.BuildWasm(t, "tools/batteries/"+b, true))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, b+".wasm"), wasm, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv(batteriesEnv, dir)
}

// machine is what the test itself reads of this machine, by other means
// than the battery: uname(2), sysinfo(2) and glibc's getconf.
type machine struct {
	hostname, release, arch string
	cpus                    int
	memTotal                uint64
	uptime                  time.Duration
}

func thisMachine(t *testing.T) machine {
	t.Helper()
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("getconf", "_NPROCESSORS_ONLN").Output()
	if err != nil {
		t.Fatalf("getconf _NPROCESSORS_ONLN: %v", err)
	}
	cpus, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("getconf _NPROCESSORS_ONLN = %q", out)
	}
	return machine{hostname: unix.ByteSliceToString(u.Nodename[:]), release: unix.ByteSliceToString(u.Release[:]),
		arch: unix.ByteSliceToString(u.Machine[:]), cpus: cpus, memTotal: uint64(si.Totalram) * uint64(si.Unit),
		uptime: time.Duration(si.Uptime) * time.Second}
}

// checkFacts compares one --json line of spindle facts with what the test
// read of the same machine.
func checkFacts(t *testing.T, l factsLine, m machine) {
	t.Helper()
	if l.Status != "ok" || l.Facts == nil {
		t.Fatalf("%s: status %q, error %+v; want ok with facts", l.Target, l.Status, l.Error)
	}
	f := l.Facts
	for _, c := range []struct {
		what      string
		got, want any
	}{
		{"hostname", f.Hostname, m.hostname},
		{"kernel.release", f.Kernel.Release, m.release},
		{"kernel.name", f.Kernel.Name, "Linux"},
		{"arch", f.Arch, m.arch},
		{"cpu.count", f.CPU.Count, m.cpus},
		{"memory.total_bytes", f.Memory.TotalBytes, m.memTotal},
	} {
		if c.got != c.want {
			t.Errorf("%s: %s = %v, this machine says %v", l.Target, c.what, c.got, c.want)
		}
	}
	if up := time.Duration(f.UptimeSeconds * float64(time.Second)); up < m.uptime-time.Minute || up > m.uptime+2*time.Minute {
		t.Errorf("%s: uptime %v, sysinfo says %v", l.Target, up, m.uptime)
	}
	if f.OS.ID == "" || f.BootTime == 0 || f.MachineID == "" {
		t.Errorf("%s: os %+v, boot time %d, machine id %q: want them read", l.Target, f.OS, f.BootTime, f.MachineID)
	}
	if !slices.ContainsFunc(f.Users, func(u inspect.User) bool { return u.Name == "root" && u.UID == 0 }) {
		t.Errorf("%s: users lack root (uid 0): %+v", l.Target, f.Users)
	}
	if !slices.ContainsFunc(f.Mounts, func(mt inspect.Mount) bool { return mt.Path == "/" }) {
		t.Errorf("%s: mounts lack /: %+v", l.Target, f.Mounts)
	}
	if !slices.ContainsFunc(f.Interfaces, func(it inspect.Interface) bool {
		return slices.Contains(it.IPv4, "127.0.0.1/8") && slices.Contains(it.IPv6, "::1/128")
	}) {
		t.Errorf("%s: no interface holds 127.0.0.1/8 and ::1/128: %+v", l.Target, f.Interfaces)
	}
	if len(f.Missing) != 0 {
		t.Errorf("%s: missing %+v; this machine has every file the battery reads", l.Target, f.Missing)
	}
}

// factsLines decodes spindle facts --json, one line per target, by name.
func factsLines(t *testing.T, out string) map[string]factsLine {
	t.Helper()
	lines := map[string]factsLine{}
	for _, s := range strings.Split(strings.TrimSpace(out), "\n") {
		var l factsLine
		if err := json.Unmarshal([]byte(s), &l); err != nil {
			t.Fatalf("a --json line %.200q: %v", s, err)
		}
		lines[l.Target] = l
	}
	return lines
}

// TestFactsLocal: spindle facts on a local child and on a child of a
// child, against what the test reads of this machine; the table and the
// recap.
func TestFactsLocal(t *testing.T) {
	testutil.VerifyNone(t)
	inspectBatteries(t)
	m := thisMachine(t)
	code, out, errs := cli(t, "facts", "-t", "local:a", "-t", "local:a/local:b", "--json")
	if code != 0 {
		t.Fatalf("spindle facts --json = %d\n%s\n%s", code, out, errs)
	}
	lines := factsLines(t, out)
	if len(lines) != 2 {
		t.Fatalf("spindle facts --json printed %d targets, want 2:\n%s", len(lines), out)
	}
	for _, l := range lines {
		checkFacts(t, l, m)
	}

	code, out, errs = cli(t, "facts", "-t", "local")
	if code != 0 {
		t.Fatalf("spindle facts = %d\n%s\n%s", code, out, errs)
	}
	if !strings.HasPrefix(out, "TARGET  HOSTNAME") {
		t.Errorf("the table starts %.60q, want its header", out)
	}
	row, ok := lineWith(out, "local ", m.hostname, m.release, m.arch)
	if !ok || !strings.Contains(row, " "+strconv.Itoa(m.cpus)+" ") || !strings.Contains(row, " GiB ") {
		t.Errorf("no row of local with %s, %s, %s, %d CPUs and memory:\n%s", m.hostname, m.release, m.arch, m.cpus, out)
	}
	if !strings.Contains(out, "\nRECAP\nlocal                : ok=1 changed=0 unreachable=0 failed=0\n") {
		t.Errorf("no recap:\n%s", out)
	}
	if !strings.Contains(errs, "1 target: 1 ok, 0 failed, 0 unreachable in ") {
		t.Errorf("stderr lacks the summary:\n%s", errs)
	}

	// Granted /proc alone, the battery still answers: what it cannot
	// read is empty and listed, with why.
	wasm := testutil.BuildWasm(t, "tools/batteries/facts", true)
	code, out, errs = cli(t, "run", "-t", "local", "--mount", "/proc:/proc:ro", wasm, "facts", "--json")
	var rl struct {
		OK     bool          `json:"ok"`
		Output inspect.Facts `json:"output"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &rl); err != nil || code != 0 || !rl.OK {
		t.Fatalf("spindle run facts with /proc only = %d, %q: %v\n%s", code, out, err, errs)
	}
	missing := map[string]string{}
	for _, mf := range rl.Output.Missing {
		missing[mf.Field] = mf.Reason
	}
	if rl.Output.Hostname != m.hostname || rl.Output.Kernel.Release != m.release || rl.Output.OS.ID != "" || rl.Output.Users != nil ||
		!strings.Contains(missing["os"], "/etc/os-release") || !strings.Contains(missing["users"], "/etc/passwd") ||
		!strings.Contains(missing["interfaces"], "/sys/class/net") || missing["hostname"] != "" {
		t.Errorf("facts with /proc only: hostname %q, kernel %q, os %+v, missing %q; want /proc's facts and /etc's and /sys's listed missing",
			rl.Output.Hostname, rl.Output.Kernel.Release, rl.Output.OS, missing)
	}
}

// TestStatLocal: spindle stat of a file (its sha256 as the test computes
// it, its head, its mode and owner), a missing path, a path whose parent
// is missing, a directory and a symlink; the hash limit.
func TestStatLocal(t *testing.T) {
	testutil.VerifyNone(t)
	inspectBatteries(t)
	dir := t.TempDir()
	content := bytes.Repeat([]byte("spindle stat\n"), 1000)
	file := filepath.Join(dir, "file.txt")
	if err := os.WriteFile(file, content, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("file.txt", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(file, 0o640|fs.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	uid, gid := os.Geteuid(), os.Getegid()
	if uid == 0 {
		uid, gid = 65534, 65533
		if err := os.Chown(file, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	sum := sha256.Sum256(content)
	want := hex.EncodeToString(sum[:])
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	dirInfo, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	paths := []string{file, filepath.Join(dir, "nope"), filepath.Join(dir, "no-dir", "x"), file + "/under-a-file", dir, filepath.Join(dir, "link")}
	code, out, errs := cli(t, append([]string{"stat", "-t", "local", "-t", "local:a/local:b", "--json", "--read", "7"}, paths...)...)
	if code != 0 {
		t.Fatalf("spindle stat --json = %d\n%s\n%s", code, out, errs)
	}
	n := 0
	for _, s := range strings.Split(strings.TrimSpace(out), "\n") {
		var l statLine
		if err := json.Unmarshal([]byte(s), &l); err != nil {
			t.Fatalf("a --json line %.200q: %v", s, err)
		}
		n++
		if l.Status != "ok" || len(l.Files) != len(paths) {
			t.Fatalf("%s: %+v, want ok with %d files", l.Target, l, len(paths))
		}
		f := l.Files[0]
		if !f.Exists || f.Type != "file" || f.Size != int64(len(content)) || f.SHA256 != want || f.Head != "spindle" ||
			f.MTime != fi.ModTime().UTC().Format(time.RFC3339Nano) {
			t.Errorf("%s: %s = %+v, want a file of %d bytes, sha256 %s, mtime %v, head \"spindle\"", l.Target, file, f, len(content), want, fi.ModTime())
		}
		if f.Mode != "02640" || f.UID == nil || *f.UID != uid || f.GID == nil || *f.GID != gid {
			t.Errorf("%s: %s has mode %q, owner %v:%v; want 02640, %d:%d", l.Target, file, f.Mode, f.UID, f.GID, uid, gid)
		}
		for _, f := range l.Files[1:4] {
			if f.Exists || f.Error != "" {
				t.Errorf("%s: %+v, want absent, no error", l.Target, f)
			}
		}
		if f := l.Files[4]; !f.Exists || f.Type != "dir" || f.SHA256 != "" || f.Mode != inspect.OctalMode(dirInfo.Mode()) {
			t.Errorf("%s: %s = %+v, want a dir", l.Target, dir, f)
		}
		if f := l.Files[5]; !f.Exists || f.Type != "symlink" || f.LinkTarget != "file.txt" || f.SHA256 != "" || f.Mode != "0777" {
			t.Errorf("%s: link = %+v, want a symlink to file.txt, not followed", l.Target, f)
		}
		for i, f := range l.Files {
			if f.Path != paths[i] {
				t.Errorf("%s: file %d is %q, want %q", l.Target, i, f.Path, paths[i])
			}
		}
	}
	if n != 2 {
		t.Errorf("spindle stat --json printed %d lines, want 2:\n%s", n, out)
	}

	code, out, errs = cli(t, "stat", "-t", "local", "--hash-limit", "1KiB", file, filepath.Join(dir, "nope"))
	if code != 0 {
		t.Fatalf("spindle stat = %d\n%s\n%s", code, out, errs)
	}
	for _, want := range []string{
		"local | " + file + " | file size=13000 mtime=",
		fmt.Sprintf(" mode=02640 uid=%d gid=%d sha256 skipped", uid, gid),
		" sha256 skipped (larger than the hash limit, 1024 bytes)\n",
		"local | " + filepath.Join(dir, "nope") + " | absent\n",
		"\nRECAP\nlocal                : ok=1 changed=0 unreachable=0 failed=0\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("spindle stat --hash-limit 1KiB lacks %q:\n%s", want, out)
		}
	}
}

// TestInspectUsage: bad flags and arguments of spindle facts and spindle
// stat are one line and exit 2, before anything starts.
func TestInspectUsage(t *testing.T) {
	testutil.VerifyNone(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"facts"}, "name the targets with -t"},
		{[]string{"facts", "-t", "local", "extra"}, `"extra"`},
		{[]string{"facts", "-t", "local", "--parallel", "0"}, "--parallel 0"},
		{[]string{"facts", "-t", "local", "--timeout", "5"}, "needs a unit"},
		{[]string{"facts", "-t", "local", "--bogus"}, "bogus"},
		{[]string{"stat", "-t", "local"}, "no PATH given"},
		{[]string{"stat", "/etc"}, "name the targets with -t"},
		{[]string{"stat", "-t", "local", "etc/passwd"}, `PATH "etc/passwd": want a clean absolute path`},
		{[]string{"stat", "-t", "local", "/etc/../etc"}, "want a clean absolute path"},
		{[]string{"stat", "-t", "local", "--read", "65KiB", "/etc"}, "--read"},
		{[]string{"stat", "-t", "local", "--read", "-1", "/etc"}, "--read"},
		{[]string{"stat", "-t", "local", "--hash-limit", "0", "/etc"}, "--hash-limit"},
		{[]string{"stat", "-t", "local", "--hash-limit", "65GiB", "/etc"}, "--hash-limit"},
	} {
		code, out, errs := runCmd(t, tt.args...)
		if code != exitUsage || !strings.Contains(errs, tt.want) || out != "" {
			t.Errorf("spindle %q = %d, %q, %q; want %d and %q", tt.args, code, out, errs, exitUsage, tt.want)
		}
	}
	many := []string{"stat", "-t", "local"}
	for i := range 257 {
		many = append(many, "/p"+strconv.Itoa(i))
	}
	if code, _, errs := runCmd(t, many...); code != exitUsage || !strings.Contains(errs, "at most 256") {
		t.Errorf("spindle stat with 257 paths = %d, %q; want %d", code, errs, exitUsage)
	}
}

// TestInspectSSH: spindle facts and spindle stat over the loopback sshd,
// directly and through an intermediate (ssh, then a local child there),
// against what the test reads of the same machine; a parent directory the
// --become-user cannot read fails its target; a closed port is
// unreachable.
func TestInspectSSH(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for sshd; CI runs as root")
	}
	testutil.VerifyNone(t)
	s := sshCLI(t)
	inspectBatteries(t)
	m := thisMachine(t)
	hostT := "ssh://" + testutil.SSHHost
	code, out, errs := cli(t, "facts", "--ssh-config", s.SSHConfig, "-t", hostT, "-t", hostT+"/local:leaf", "--json")
	if code != 0 {
		t.Fatalf("spindle facts over ssh = %d\n%s\n%s", code, out, errs)
	}
	lines := factsLines(t, out)
	for _, name := range []string{hostT, hostT + "/local:leaf"} {
		l, ok := lines[name]
		if !ok {
			t.Fatalf("no line for %s:\n%s", name, out)
		}
		checkFacts(t, l, m)
	}

	code, out, errs = cli(t, "facts", "--ssh-config", s.SSHConfig, "-t", hostT+"/local:leaf", "--become-user", s.Unpriv, "--json")
	if code != 0 {
		t.Fatalf("spindle facts --become-user %s = %d\n%s\n%s", s.Unpriv, code, out, errs)
	}
	for _, l := range factsLines(t, out) {
		checkFacts(t, l, m)
	}

	dir := t.TempDir()
	content := []byte("read over ssh\n")
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, content, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	code, out, errs = cli(t, "stat", "--ssh-config", s.SSHConfig, "-t", hostT+"/local:leaf", "--read", "4", file, file+".missing")
	if code != 0 || !strings.Contains(out, hostT+"/local:leaf | "+file+" | file size=14 mtime=") ||
		!strings.Contains(out, " sha256="+hex.EncodeToString(sum[:])+"\n    read\n") ||
		!strings.Contains(out, " | "+file+".missing | absent\n") {
		t.Fatalf("spindle stat over ssh = %d\n%s\n%s", code, out, errs)
	}

	// t.TempDir's own parent is 0700: the unprivileged user needs a
	// directory it can reach.
	open, err := os.MkdirTemp("", "spindle-stat-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(open) })
	if err := os.Chmod(open, 0o755); err != nil {
		t.Fatal(err)
	}
	file = filepath.Join(open, "f")
	if err := os.WriteFile(file, content, 0o644); err != nil {
		t.Fatal(err)
	}
	private := filepath.Join(open, "private")
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}
	code, out, errs = cli(t, "stat", "--ssh-config", s.SSHConfig, "-t", hostT, "--become-user", s.Unpriv, "--json", filepath.Join(private, "x"), file)
	var l statLine
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &l); err != nil || code != exitCIFailed {
		t.Fatalf("spindle stat --become-user %s = %d, %q: %v\n%s", s.Unpriv, code, out, err, errs)
	}
	if l.Status != "failed" || len(l.Files) != 2 || l.Files[0].Error != "its parent directory "+private+" cannot be opened: permission denied" || l.Files[1].SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("stat of a path below a directory %s cannot read = %+v, want that path's error and the other file hashed", s.Unpriv, l)
	}

	code, out, errs = cli(t, "facts", "--ssh-config", s.SSHConfig, "-t", "ssh://nobody@127.0.0.1:1")
	if code != exitCIInfra || !strings.Contains(out, "ssh://nobody@127.0.0.1:1 | UNREACHABLE! => ") ||
		!strings.Contains(out, "ok=0 changed=0 unreachable=1 failed=0") {
		t.Errorf("spindle facts to a closed port = %d\n%s\n%s", code, out, errs)
	}
}

// want is how many targets -t fleet or -t hNN selects.
func want(args []string) int {
	if slices.Contains(args, "fleet") {
		return 30
	}
	return 1
}

// TestFactsFleetTime measures spindle facts over 30 inventory hosts on
// the loopback sshd (each its own ssh_config alias of it, so each its own
// connection and context) at --parallel 20, with the real bin/spindle,
// against "ssh HOST uname -a" for each host in a loop: the floor. A
// measurement, not an assertion: it runs only with SPINDLE_MEASURE=1
// (after make build), and prints its figures.
func TestFactsFleetTime(t *testing.T) {
	if os.Getenv("SPINDLE_MEASURE") != "1" || os.Geteuid() != 0 {
		t.Skip("a measurement: SPINDLE_MEASURE=1, as root, after make build")
	}
	bin, err := filepath.Abs("../../bin/spindle")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no bin/spindle (make build): %v", err)
	}
	testutil.VerifyNone(t)
	s := testutil.StartSSHD(t)
	cfgText, err := os.ReadFile(s.SSHConfig)
	if err != nil {
		t.Fatal(err)
	}
	var aliases []string
	var inv strings.Builder
	inv.WriteString("[fleet]\n")
	for i := 1; i <= 30; i++ {
		a := fmt.Sprintf("h%02d", i)
		aliases = append(aliases, a)
		fmt.Fprintf(&inv, "%s target=ssh://%s\n", a, a)
	}
	all := strings.Join(aliases, " ")
	cfg := strings.Replace(string(cfgText), "Host "+testutil.SSHHost+" ", "Host "+testutil.SSHHost+" "+all+" ", 1)
	cfg = strings.Replace(cfg, "Host "+testutil.SSHHost+"\n", "Host "+testutil.SSHHost+" "+all+"\n", 1)
	dir := t.TempDir()
	cfgPath, invPath := filepath.Join(dir, "ssh_config"), filepath.Join(dir, "hosts.ini")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(invPath, []byte(inv.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	t0 := time.Now()
	for _, a := range aliases {
		if out, err := exec.Command("ssh", "-F", cfgPath, a, "uname", "-a").CombinedOutput(); err != nil {
			t.Fatalf("ssh %s uname -a: %v\n%s", a, err, out)
		}
	}
	floor := time.Since(t0)

	one := func(args ...string) time.Duration {
		t0 := time.Now()
		cmd := exec.Command(bin, append([]string{"facts", "-i", invPath, "--ssh-config", cfgPath, "--parallel", "20", "--json"}, args...)...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("spindle facts: %v\n%s", err, errb.String())
		}
		d := time.Since(t0)
		if n := len(factsLines(t, out.String())); n != want(args) {
			t.Fatalf("spindle facts printed %d targets", n)
		}
		return d
	}
	first := one("-t", "fleet") // the broker binary and the module may need to be shipped and compiled
	warm := one("-t", "fleet")
	single := one("-t", "h01")
	t.Logf("30 hosts on the loopback sshd: ssh HOST uname -a in a loop %v (%v each); spindle facts --parallel 20: first run %v, warm %v (%.2fx the floor); one host alone %v",
		floor.Round(time.Millisecond), (floor / 30).Round(time.Millisecond), first.Round(time.Millisecond), warm.Round(time.Millisecond), float64(warm)/float64(floor), single.Round(time.Millisecond))
}
