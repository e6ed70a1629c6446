package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/internal/testutil"
)

// copyBattery builds the copy battery into a directory and points spindle
// at it (SPINDLE_BATTERIES); it returns the module's size.
func copyBattery(t *testing.T) int64 {
	t.Helper()
	wasm, err := os.ReadFile(testutil.BuildWasm(t, "tools/batteries/copy", false))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "copy.wasm"), wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(batteriesEnv, dir)
	return int64(len(wasm))
}

// fileID is what says whether a file was written again: a rename puts a
// new inode there, and a write in place moves the mtime.
type fileID struct {
	ino   uint64
	mtime int64
	mode  fs.FileMode
	uid   uint32
}

func idOf(t *testing.T, p string) fileID {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fileID{ino: st.Ino, mtime: fi.ModTime().UnixNano(), mode: fi.Mode(), uid: st.Uid}
}

// noTemps fails the test if a temporary file of the battery is left
// anywhere under dir.
func noTemps(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), ".spindle-") {
			t.Errorf("temporary file left: %s", p)
		}
		return nil
	})
}

func writeFile(t *testing.T, p string, b []byte, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func randBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func sameFile(t *testing.T, a, b string) {
	t.Helper()
	x, err1 := os.ReadFile(a)
	y, err2 := os.ReadFile(b)
	if err1 != nil || err2 != nil || !bytes.Equal(x, y) {
		t.Errorf("%s and %s differ (%v, %v)", a, b, err1, err2)
	}
}

// copyJSON parses spindle copy --json's lines: the targets' and the
// edges'.
func copyJSON(t *testing.T, out string) (lines map[string]copyLine, edges map[string]copyEdge) {
	t.Helper()
	lines, edges = map[string]copyLine{}, map[string]copyEdge{}
	for _, s := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(s, `{"from"`) {
			var e copyEdge
			if err := json.Unmarshal([]byte(s), &e); err != nil {
				t.Fatalf("edge line %q: %v", s, err)
			}
			edges[e.To] = e
			continue
		}
		var l copyLine
		if err := json.Unmarshal([]byte(s), &l); err != nil {
			t.Fatalf("line %q: %v", s, err)
		}
		lines[l.Target] = l
	}
	return lines, edges
}

// TestCopyLocal: spindle copy of a tree and of a file to local children:
// what lands where, modes, symlinks, a second run that writes nothing, a
// change that rewrites one file only, and failures that leave no
// temporary file.
func TestCopyLocal(t *testing.T) {
	testutil.VerifyNone(t)
	copyBattery(t)
	dir := t.TempDir()
	src, dest := filepath.Join(dir, "site"), filepath.Join(dir, "dest")
	writeFile(t, filepath.Join(src, "a.txt"), []byte("hello\n"), 0o600)
	writeFile(t, filepath.Join(src, "sub/run.sh"), []byte("#!/bin/sh\necho hi\n"), 0o700)
	writeFile(t, filepath.Join(src, "big.bin"), randBytes(t, 1<<20), 0o644)
	if err := os.Symlink("a.txt", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dest, 0o755); err != nil {
		t.Fatal(err)
	}

	// A directory SRC into an existing directory: DEST/site.
	code, out, errs := slowCLI(t, "copy", src, "-t", "local:a", dest) // the first compiles the battery
	if code != 0 || !strings.Contains(out, "local:a | CHANGED => "+dest+"/site (6 written, ") {
		t.Fatalf("spindle copy = %d\n%s\n%s", code, out, errs)
	}
	got := filepath.Join(dest, "site")
	for _, f := range []string{"a.txt", "sub/run.sh", "big.bin"} {
		sameFile(t, filepath.Join(src, f), filepath.Join(got, f))
	}
	if m := idOf(t, filepath.Join(got, "a.txt")).mode; m != 0o644 {
		t.Errorf("a.txt has mode %v, want 0644 (no --mode: 0644, or 0755 for an executable)", m)
	}
	if m := idOf(t, filepath.Join(got, "sub/run.sh")).mode; m != 0o755 {
		t.Errorf("sub/run.sh has mode %v, want 0755 (executable in SRC)", m)
	}
	if l, err := os.Readlink(filepath.Join(got, "link")); err != nil || l != "a.txt" {
		t.Errorf("link = %q, %v; want a symlink to a.txt", l, err)
	}
	before := map[string]fileID{}
	for _, f := range []string{"a.txt", "sub/run.sh", "big.bin", "link"} {
		before[f] = idOf(t, filepath.Join(got, f))
	}

	// The second run writes nothing, on two targets at once.
	code, out, errs = cli(t, "copy", src, "-t", "local:a", "-t", "local:b", dest, "--json")
	lines, _ := copyJSON(t, out)
	if code != 0 || len(lines) != 2 || lines["local:a"].Status != "ok" || lines["local:b"].Status != "ok" ||
		lines["local:a"].Unchanged != 4 || len(lines["local:a"].Changed) != 0 {
		t.Fatalf("second spindle copy = %d, want both ok with 4 unchanged\n%s\n%s", code, out, errs)
	}
	for f, id := range before {
		if now := idOf(t, filepath.Join(got, f)); now != id {
			t.Errorf("%s was touched by an unchanged run: %+v, was %+v", f, now, id)
		}
	}
	code, out, _ = cli(t, "copy", src, "-t", "local:a", dest)
	if code != 0 || !strings.Contains(out, "local:a | OK => "+got+" (4 unchanged)") ||
		!strings.Contains(out, "local:a              : ok=1 changed=0 unreachable=0 failed=0") {
		t.Errorf("unchanged run's rows:\n%s", out)
	}

	// One file changed: it alone is written, by a rename (a new inode).
	writeFile(t, filepath.Join(src, "a.txt"), []byte("hello again\n"), 0o600)
	code, out, errs = cli(t, "copy", src, "-t", "local:a", dest, "--json")
	lines, _ = copyJSON(t, out)
	if l := lines["local:a"]; code != 0 || l.Status != "changed" || len(l.Changed) != 1 || l.Changed[0] != got+"/a.txt" ||
		l.Bytes != int64(len("hello again\n")) {
		t.Fatalf("copy of one changed file = %d, %+v\n%s", code, l, errs)
	}
	sameFile(t, filepath.Join(src, "a.txt"), filepath.Join(got, "a.txt"))
	if idOf(t, filepath.Join(got, "a.txt")).ino == before["a.txt"].ino {
		t.Error("a.txt was written in place, not renamed over")
	}
	if idOf(t, filepath.Join(got, "big.bin")) != before["big.bin"] {
		t.Error("big.bin was written though it had not changed")
	}
	noTemps(t, dest)

	// SRC/ puts the contents in DEST, made if missing; a file SRC to a
	// new path is that file; --mode is exact (not less the umask), and
	// --owner and --group apply to what is written.
	code, out, errs = cli(t, "copy", src+"/", "-t", "local", filepath.Join(dir, "flat"))
	if code != 0 {
		t.Fatalf("copy SRC/ = %d\n%s\n%s", code, out, errs)
	}
	sameFile(t, filepath.Join(src, "sub/run.sh"), filepath.Join(dir, "flat/sub/run.sh"))
	conf := filepath.Join(dest, "app.conf")
	code, out, errs = cli(t, "copy", filepath.Join(src, "a.txt"), "-t", "local", conf, "--mode", "0666", "--owner", "65534", "--group", "65534")
	if code != 0 || !strings.Contains(out, "local | CHANGED => "+conf+" (1 written") {
		t.Fatalf("copy of a file = %d\n%s\n%s", code, out, errs)
	}
	if id := idOf(t, conf); id.mode != 0o666 || id.uid != 65534 {
		t.Errorf("app.conf: mode %v, uid %d; want 0666 exactly and uid 65534", id.mode, id.uid)
	}
	// DEST an existing directory: DEST/NAME; a DEST that is a symlink to
	// one is that directory.
	code, out, errs = cli(t, "copy", filepath.Join(src, "a.txt"), "-t", "local", dest)
	if code != 0 || !strings.Contains(out, "CHANGED => "+dest+"/a.txt") {
		t.Errorf("copy of a file into a directory = %d\n%s\n%s", code, out, errs)
	}
	if err := os.Symlink(dest, filepath.Join(dir, "destlink")); err != nil {
		t.Fatal(err)
	}
	code, out, errs = cli(t, "copy", filepath.Join(src, "sub/run.sh"), "-t", "local", filepath.Join(dir, "destlink"))
	if code != 0 || !strings.Contains(out, "CHANGED => "+dir+"/destlink/run.sh") {
		t.Errorf("copy of a file to a symlink to a directory = %d\n%s\n%s", code, out, errs)
	}
	sameFile(t, filepath.Join(src, "sub/run.sh"), filepath.Join(dest, "run.sh"))
	// A symlink where a file goes is replaced, not written through.
	if err := os.Symlink("a.txt", filepath.Join(dest, "ln")); err != nil {
		t.Fatal(err)
	}
	code, out, errs = cli(t, "copy", filepath.Join(src, "big.bin"), "-t", "local", filepath.Join(dest, "ln"))
	if fi, err := os.Lstat(filepath.Join(dest, "ln")); code != 0 || err != nil || !fi.Mode().IsRegular() {
		t.Errorf("copy over a symlink = %d (%v, %v)\n%s\n%s", code, fi, err, out, errs)
	}
	sameFile(t, filepath.Join(src, "a.txt"), filepath.Join(dest, "a.txt"))

	// Failures: a directory where a file goes; a file where DEST/ or a
	// tree's DEST goes; a missing parent. Each fails its target, exit 1, and leaves
	// no temporary file.
	if err := os.Remove(filepath.Join(got, "big.bin")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(got, "big.bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{src, dest}, got + "/big.bin is a directory: a file cannot replace it"},
		{[]string{filepath.Join(src, "a.txt"), conf + "/"}, conf + " exists and is not a directory (a file)"},
		{[]string{src, conf}, conf + " exists and is not a directory (a file)"},
		{[]string{src, dir + "/no/such/dir"}, "dest: " + dir + "/no/such (DEST's parent directory): no such file or directory"},
		{[]string{src, got + "/a.txt/x"}, "dest: " + got + "/a.txt (DEST's parent directory): not a directory"},
	} {
		code, out, errs = cli(t, append([]string{"copy", "-t", "local"}, tt.args...)...)
		if code != exitCIFailed || !strings.Contains(out, "local | FAILED! => ") || !strings.Contains(out, tt.want) {
			t.Errorf("spindle copy %q = %d, want %d and %q\n%s\n%s", tt.args, code, exitCIFailed, tt.want, out, errs)
		}
	}
	noTemps(t, dir)
	// The contexts made SRC as files in their work root for each call
	// and removed them after: none is left.
	run, _ := os.ReadFile(filepath.Join(src, "sub/run.sh"))
	left, _ := filepath.Glob(filepath.Join(os.TempDir(), "spindle-work-"+strconv.Itoa(os.Getuid()), "tree-*", "sub", "run.sh"))
	for _, p := range left {
		if b, err := os.ReadFile(p); err == nil && bytes.Equal(b, run) {
			t.Errorf("a tree mount was left in the work root: %s", filepath.Dir(filepath.Dir(p)))
		}
	}
}

// TestCopyDiskFull: a write that fails half way (a full file system)
// fails the target and leaves neither a temporary file nor a changed
// DEST.
func TestCopyDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	testutil.VerifyNone(t)
	copyBattery(t)
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	if err := os.Mkdir(small, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", small).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", small).Run() })
	writeFile(t, filepath.Join(small, "f"), []byte("old"), 0o644)
	src := filepath.Join(dir, "f")
	writeFile(t, src, randBytes(t, 2<<20), 0o644)
	code, out, errs := cli(t, "copy", src, "-t", "local", filepath.Join(small, "f"))
	if code != exitCIFailed || !strings.Contains(out, "local | FAILED! => copy: write "+small+"/f: ") {
		t.Fatalf("copy to a full file system = %d\n%s\n%s", code, out, errs)
	}
	if b, err := os.ReadFile(filepath.Join(small, "f")); err != nil || string(b) != "old" {
		t.Errorf("DEST after a failed copy = %q, %v; want the old file", b, err)
	}
	noTemps(t, small)
}

// TestCopyUsage: bad usage is exit 2 with a clear message, before
// anything connects.
func TestCopyUsage(t *testing.T) {
	copyBattery(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "tree/f"), []byte("x"), 0o644)
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "tree/abs")); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(dir, "made")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{filepath.Join(dir, "missing"), "-t", "local", dest}, "missing: no such file or directory"},
		{[]string{filepath.Join(dir, "tree/f"), "-t", "local", "tmp/x"}, `DEST "tmp/x": want an absolute path`},
		{[]string{filepath.Join(dir, "tree/f"), dest}, "name the targets with -t"},
		{[]string{filepath.Join(dir, "tree/f"), "-t", "local"}, "want SRC and DEST"},
		{[]string{filepath.Join(dir, "tree/f"), "-t", "local", dest, "--mode", "4755"}, `--mode "4755": want permission bits`},
		{[]string{filepath.Join(dir, "tree/f"), "-t", "local", dest, "--mode", "rw"}, `--mode "rw"`},
		{[]string{filepath.Join(dir, "tree/f"), "-t", "local", dest, "--owner", "a:b"}, `--owner "a:b"`},
		{[]string{filepath.Join(dir, "tree"), "-t", "local", dest}, "abs is a symlink to the absolute path /etc/passwd"},
	} {
		code, _, errs := runCmd(t, append([]string{"copy"}, tt.args...)...)
		if code != exitUsage || !strings.Contains(errs, tt.want) {
			t.Errorf("spindle copy %q = %d, %q; want %d and %q", tt.args, code, errs, exitUsage, tt.want)
		}
	}
	if _, err := os.Lstat(dest); err == nil {
		t.Error("a refused copy made DEST")
	}
}

// slowCLI is cli with a longer wait: the first run on a machine compiles
// the battery in each context that runs it, and this test binary's
// contexts are built with -race, which makes wazero's compiler several
// times slower (over two minutes for two at once on a loaded 2-core
// machine).
func slowCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(self(t), args...)
	cmd.Env = append(os.Environ(), cliEnv+"=1", "XDG_CACHE_HOME="+filepath.Join(os.TempDir(), "spindle-test-xdg"))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // no terminal: nothing can prompt
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitCLI(t, cmd, 6*time.Minute)
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// TestCopySSH: spindle copy over the loopback sshd to three targets
// behind one intermediate: the file crosses the master -> host edge once
// (counted by the contexts' blob stores, modules.Stats), a second run
// writes nothing and sends no content, and --become-user to a user that
// cannot write DEST fails clearly, leaving nothing behind.
func TestCopySSH(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: three ssh trees and a compile of the battery as another user")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for sshd; CI runs as root")
	}
	testutil.VerifyNone(t)
	s := sshCLI(t)
	battery := copyBattery(t)
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} { // the unprivileged user must reach DEST to be refused by it
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	size, leaves := int64(8<<20), []string{"a", "b", "c"}
	if os.Getenv("SPINDLE_COPY_MEASURE") != "" {
		// Issue 13's measure: 100 MB to 10 targets behind one host.
		size, leaves = 100_000_000, []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}
	}
	src := filepath.Join(dir, "payload.bin")
	writeFile(t, src, randBytes(t, int(size)), 0o644) // fresh bytes: no store holds them yet
	hostT := "ssh://" + testutil.SSHHost
	var args []string
	for _, leaf := range leaves {
		d := filepath.Join(dir, leaf)
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-t", hostT+"/local:"+leaf)
	}
	// One DEST for all three: each is its own context, on this machine.
	dest := filepath.Join(dir, "a")
	run := func() (map[string]copyLine, map[string]copyEdge, int64) {
		t.Helper()
		began := time.Now()
		code, out, errs := slowCLI(t, append([]string{"copy", "--ssh-config", s.SSHConfig, src, dest, "--json", "--edges"}, args...)...)
		t.Logf("spindle copy of %d bytes to %d targets behind %s: exit %d in %v", size, len(leaves), hostT, code, time.Since(began).Round(time.Millisecond))
		if code != 0 {
			t.Fatalf("spindle copy over ssh = %d\n%s\n%s", code, out, errs)
		}
		m := regexp.MustCompile(`; (\d+) bytes of blobs sent from here`).FindStringSubmatch(errs)
		if m == nil {
			t.Fatalf("stderr lacks the bytes sent:\n%s", errs)
		}
		sent, _ := strconv.ParseInt(m[1], 10, 64)
		lines, edges := copyJSON(t, out)
		t.Logf("sent %d bytes from the master; edges %+v", sent, edges)
		return lines, edges, sent
	}
	lines, edges, sent := run()
	changed := 0
	for _, l := range lines {
		if l.Status == "changed" {
			changed++
		}
	}
	if len(lines) != len(leaves) || changed == 0 {
		t.Fatalf("first run: %+v, want %d rows, at least one changed", lines, len(leaves))
	}
	sameFile(t, src, filepath.Join(dest, "payload.bin"))
	first := edges[hostT]
	// The edge above the host carried the file once: its bytes, the
	// battery's (unless the host's store had it) and a directory blob.
	if first.Bytes < size || first.Bytes > size+battery+64<<10 || sent != first.Bytes {
		t.Errorf("master -> %s: host received %d bytes, the master sent %d; want the %d-byte file once (plus at most the %d-byte battery)",
			hostT, first.Bytes, sent, size, battery)
	}
	for _, leaf := range leaves {
		e, ok := edges[hostT+"/local:"+leaf]
		if !ok || e.From != hostT || e.Bytes > first.Bytes {
			t.Errorf("edge to local:%s = %+v, %v; want from %s, at most what the host received", leaf, e, ok, hostT)
		}
	}
	id := idOf(t, filepath.Join(dest, "payload.bin"))

	lines, _, sent = run()
	for name, l := range lines {
		if l.Status != "ok" || l.Unchanged != 1 {
			t.Errorf("second run on %s: %+v, want ok, 1 unchanged", name, l)
		}
	}
	if sent >= size {
		t.Errorf("second run sent %d bytes from the master, want less than the %d-byte file (every hop keeps its copy)", sent, size)
	}
	if now := idOf(t, filepath.Join(dest, "payload.bin")); now != id {
		t.Errorf("second run touched payload.bin: %+v, was %+v", now, id)
	}

	// A user who cannot write DEST: a clear failure, nothing left.
	code, out, errs := slowCLI(t, "copy", "--ssh-config", s.SSHConfig, src, "-t", hostT+"/local:leaf", "--become-user", s.Unpriv, filepath.Join(dir, "b/x.bin"))
	if code != exitCIFailed || !strings.Contains(strings.ToLower(out), "| failed! => copy: write "+strings.ToLower(dir)+"/b/x.bin: permission denied") {
		t.Errorf("copy as %s to a root-owned directory = %d\n%s\n%s", s.Unpriv, code, out, errs)
	}
	// An owner a context not running as root cannot give: refused
	// before the battery runs.
	code, out, errs = slowCLI(t, "copy", "--ssh-config", s.SSHConfig, src, "-t", hostT+"/local:leaf", "--become-user", s.Unpriv, "--owner", "root", filepath.Join(dir, "b/x.bin"))
	if code != exitCIFailed || !strings.Contains(out, "only root may give files away") {
		t.Errorf("copy as %s with --owner root = %d\n%s\n%s", s.Unpriv, code, out, errs)
	}
	noTemps(t, dir)
}

// TestCopyEmptyDirs: a tree's empty directories are made at DEST (0755),
// a second run finds them there and writes nothing.
func TestCopyEmptyDirs(t *testing.T) {
	testutil.VerifyNone(t)
	copyBattery(t)
	dir := t.TempDir()
	src, dest := filepath.Join(dir, "tree"), filepath.Join(dir, "dest")
	writeFile(t, filepath.Join(src, "f"), []byte("x"), 0o644)
	for _, d := range []string{"empty", "deep/er/est", "logs"} {
		if err := os.MkdirAll(filepath.Join(src, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errs := slowCLI(t, "copy", src+"/", "-t", "local", dest, "--json")
	lines, _ := copyJSON(t, out)
	l := lines["local"]
	if code != 0 || l.Status != "changed" {
		t.Fatalf("spindle copy = %d, %+v\n%s", code, l, errs)
	}
	for _, d := range []string{"empty", "deep/er/est", "logs"} {
		if fi, err := os.Lstat(filepath.Join(dest, d)); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o755 {
			t.Errorf("%s at DEST: %v, %v; want a directory, 0755", d, fi, err)
		}
		if !slices.Contains(l.Changed, filepath.Join(dest, d)+"/") {
			t.Errorf("changed = %q, want %s/ in it", l.Changed, filepath.Join(dest, d))
		}
	}
	code, out, errs = cli(t, "copy", src+"/", "-t", "local", dest, "--json")
	if lines, _ = copyJSON(t, out); code != 0 || lines["local"].Status != "ok" {
		t.Errorf("second spindle copy = %d, %+v; want ok\n%s", code, lines["local"], errs)
	}
}

// TestCopyDedupesTargets: one target named three ways (a chain, another
// spelling of it, an inventory host that stands for it) is copied to
// once, as spindle run does, and stderr says so; another target still
// runs.
func TestCopyDedupesTargets(t *testing.T) {
	testutil.VerifyNone(t)
	copyBattery(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "f")
	writeFile(t, src, []byte("once\n"), 0o644)
	dest := filepath.Join(dir, "dest")
	inv := writeInventory(t, "web target=local:a\n")
	code, out, errs := slowCLI(t, "copy", src, "-i", inv, "-t", "local:a", "-t", "local:b", "-t", "local?name=a", "-t", "web", dest, "--json")
	lines, _ := copyJSON(t, out)
	// The two copy to one DEST at once: one or both write it.
	a, b := lines["local:a"].Status, lines["local:b"].Status
	if code != 0 || len(lines) != 2 || a == "" || b == "" || a != "changed" && b != "changed" {
		t.Fatalf("spindle copy = %d, %v; want local:a and local:b once each\n%s\n%s", code, lines, out, errs)
	}
	if n := strings.Count(strings.TrimSpace(out), "\n") + 1; n != 2 {
		t.Errorf("%d lines of output, want 2:\n%s", n, out)
	}
	want := "spindle copy: 2 targets named twice, run once: local?name=a (as local:a), web (as local:a)\n"
	if strings.Count(errs, want) != 1 {
		t.Errorf("stderr:\n%s\nwant once: %q", errs, want)
	}
	sameFile(t, src, dest)
}

// TestCopyModeOwner: with --mode, --owner and --group a file whose bytes
// match but whose mode or owner differs is given them, not written, and
// reported changed; a third run is ok. Without --mode a file's mode is
// left alone. A tree's directories and symlinks get the owner back too.
func TestCopyModeOwner(t *testing.T) {
	testutil.VerifyNone(t)
	copyBattery(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "app.conf")
	writeFile(t, src, []byte("key = value\n"), 0o644)
	dest := filepath.Join(dir, "etc")
	if err := os.Mkdir(dest, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dest, "app.conf")
	root := os.Geteuid() == 0
	grant := []string{"--mode", "0640"}
	owner := uint32(os.Geteuid())
	if root {
		grant, owner = append(grant, "--owner", "65534", "--group", "65534"), 65534
	}
	copyTo := func(extra ...string) copyLine {
		t.Helper()
		code, out, errs := cli(t, append([]string{"copy", src, "-t", "local", dest, "--json"}, extra...)...)
		lines, _ := copyJSON(t, out)
		if code != 0 {
			t.Fatalf("spindle copy %q = %d\n%s\n%s", extra, code, out, errs)
		}
		return lines["local"]
	}
	code, out, errs := slowCLI(t, append([]string{"copy", src, "-t", "local", dest}, grant...)...)
	if code != 0 || !strings.Contains(out, "local | CHANGED => "+conf+" (1 written") {
		t.Fatalf("first spindle copy = %d\n%s\n%s", code, out, errs)
	}
	first := idOf(t, conf)
	if first.mode != 0o640 || first.uid != owner {
		t.Fatalf("app.conf: mode %v, uid %d; want 0640 and %d", first.mode, first.uid, owner)
	}

	// Only the mode differs: it is restored, the file not written.
	if err := os.Chmod(conf, 0o666); err != nil {
		t.Fatal(err)
	}
	l := copyTo(grant...)
	if l.Status != "changed" || len(l.Changed) != 0 || !slices.Equal(l.Fixed, []string{conf}) || l.Bytes != 0 {
		t.Errorf("after chmod: %+v; want changed, %s fixed, nothing written", l, conf)
	}
	if id := idOf(t, conf); id.mode != 0o640 || id.ino != first.ino || id.mtime != first.mtime {
		t.Errorf("after the second run: %+v; want mode 0640 and the same file (%+v)", id, first)
	}
	code, out, _ = cli(t, append([]string{"copy", src, "-t", "local", dest}, grant...)...)
	if code != 0 || !strings.Contains(out, "local | OK => "+conf+" (1 unchanged)") {
		t.Errorf("third run = %d, want ok:\n%s", code, out)
	}
	// The text rows say what was only given a mode.
	os.Chmod(conf, 0o600)
	code, out, _ = cli(t, append([]string{"copy", src, "-t", "local", dest}, grant...)...)
	if code != 0 || !strings.Contains(out, "local | CHANGED => "+conf+" (0 written, 0 bytes; 1 given the mode or owner; 0 unchanged)\n    "+conf+" (mode or owner)\n") {
		t.Errorf("rows of a mode-only change = %d:\n%s", code, out)
	}
	// Without --mode the mode is the operator's: left alone.
	os.Chmod(conf, 0o600)
	if l := copyTo(); l.Status != "ok" || idOf(t, conf).mode != 0o600 {
		t.Errorf("without --mode: %+v, mode %v; want ok and 0600 kept", l, idOf(t, conf).mode)
	}
	if !root {
		t.Log("not root: the owner is not tested")
		return
	}

	// Only the owner differs: given back.
	if err := os.Chown(conf, 0, 0); err != nil {
		t.Fatal(err)
	}
	os.Chmod(conf, 0o640)
	if l := copyTo(grant...); l.Status != "changed" || !slices.Equal(l.Fixed, []string{conf}) {
		t.Errorf("after chown: %+v; want %s fixed", l, conf)
	}
	if id := idOf(t, conf); id.uid != 65534 || id.mode != 0o640 || id.ino != first.ino {
		t.Errorf("after chown and a run: %+v; want uid 65534, 0640, the same file", id)
	}

	// A tree: its directories and symlinks get the owner back, the root
	// of SRC's copy too; DEST itself, for SRC/, is left alone.
	tree := filepath.Join(dir, "tree")
	writeFile(t, filepath.Join(tree, "sub/f"), []byte("f\n"), 0o644)
	if err := os.Symlink("sub/f", filepath.Join(tree, "ln")); err != nil {
		t.Fatal(err)
	}
	out2 := filepath.Join(dir, "out")
	os.Mkdir(out2, 0o755)
	code, out, errs = cli(t, append([]string{"copy", tree, "-t", "local", out2}, grant...)...)
	if code != 0 {
		t.Fatalf("copy of a tree = %d\n%s\n%s", code, out, errs)
	}
	got := filepath.Join(out2, "tree")
	for _, p := range []string{got, got + "/sub", got + "/ln"} {
		if err := os.Lchown(p, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errs = cli(t, append([]string{"copy", tree, "-t", "local", out2, "--json"}, grant...)...)
	lines, _ := copyJSON(t, out)
	l = lines["local"]
	slices.Sort(l.Fixed)
	if want := []string{got + "/", got + "/ln", got + "/sub/"}; code != 0 || l.Status != "changed" || !slices.Equal(l.Fixed, want) {
		t.Errorf("tree after chown = %d, %+v; want %q fixed\n%s", code, l, want, errs)
	}
	for _, p := range []string{got, got + "/sub", got + "/ln", got + "/sub/f"} {
		if id := idOf(t, p); id.uid != 65534 {
			t.Errorf("%s: uid %d, want 65534", p, id.uid)
		}
	}
	if id := idOf(t, got+"/sub"); id.mode.Perm() != 0o755 {
		t.Errorf("sub's mode %v: a directory's mode is not --mode's", id.mode)
	}
	os.Chown(out2, 0, 0)
	code, out, errs = cli(t, append([]string{"copy", tree + "/", "-t", "local", out2, "--json"}, grant...)...)
	if lines, _ = copyJSON(t, out); code != 0 || idOf(t, out2).uid != 0 {
		t.Errorf("SRC/ into DEST = %d, %+v: DEST's uid %d, want 0 (left alone)\n%s", code, lines["local"], idOf(t, out2).uid, errs)
	}
	// A DEST the copy makes is given the owner, as all it makes.
	made := filepath.Join(dir, "made")
	code, out, errs = cli(t, append([]string{"copy", tree, "-t", "local", made}, grant...)...)
	if code != 0 {
		t.Fatalf("copy of a tree to a new DEST = %d\n%s\n%s", code, out, errs)
	}
	for _, p := range []string{made, made + "/tree"} {
		if id := idOf(t, p); id.uid != 65534 {
			t.Errorf("%s: uid %d, want 65534 (made by the copy)", p, id.uid)
		}
	}
}

// layout lists what is under dir, one relative path a line, directories
// ending in "/" and symlinks in " -> TARGET".
func layout(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.IsDir():
			rel += "/"
		case d.Type()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			rel += " -> " + l
		}
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCopyRerun: the same copy run twice to a DEST that is not there
// lands in the same place both times (rsync's rule: a directory SRC at
// DEST/NAME whether or not DEST was there; not cp -r's, under which the
// second run would copy into the first's copy), and the second run
// reports ok, every file unchanged, and writes nothing.
func TestCopyRerun(t *testing.T) {
	testutil.VerifyNone(t)
	copyBattery(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "site")
	writeFile(t, filepath.Join(src, "a.txt"), []byte("a\n"), 0o644)
	writeFile(t, filepath.Join(src, "sub/b.txt"), []byte("b\n"), 0o644)
	if err := os.Symlink("a.txt", filepath.Join(src, "ln")); err != nil {
		t.Fatal(err)
	}
	tree := []string{"site/", "site/a.txt", "site/ln -> a.txt", "site/sub/", "site/sub/b.txt"}
	for i, tt := range []struct {
		name      string
		src, dest string // dest under the case's own directory
		want      []string
		wantDest  string // the report's DEST, under the case's directory
		unchanged int
	}{
		{"dir to a new DEST", src, "new", prefix("new/", tree), "new/site", 3},
		{"dir to a new DEST/", src, "new/", prefix("new/", tree), "new/site", 3},
		{"SRC/ to a new DEST", src + "/", "new", prefix("new/", []string{"a.txt", "ln -> a.txt", "sub/", "sub/b.txt"}), "new", 3},
		{"file to a new DEST", filepath.Join(src, "a.txt"), "conf", []string{"conf"}, "conf", 1},
		{"file to a new DEST/", filepath.Join(src, "a.txt"), "etc/", []string{"etc/", "etc/a.txt"}, "etc/a.txt", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			base := filepath.Join(dir, "case"+strconv.Itoa(i))
			if err := os.Mkdir(base, 0o755); err != nil {
				t.Fatal(err)
			}
			dest, wantDest := base+"/"+tt.dest, filepath.Join(base, tt.wantDest)
			run := func(n int) copyLine {
				t.Helper()
				code, out, errs := slowCLI(t, "copy", tt.src, "-t", "local", dest, "--json")
				lines, _ := copyJSON(t, out)
				l := lines["local"]
				if code != 0 || l.Dest != wantDest {
					t.Fatalf("run %d: spindle copy %s %s = %d, %+v; want 0 and dest %s\n%s\n%s", n, tt.src, dest, code, l, wantDest, out, errs)
				}
				if got := layout(t, base); !slices.Equal(got, tt.want) {
					t.Fatalf("after run %d: %s holds %q, want %q", n, base, got, tt.want)
				}
				return l
			}
			if l := run(1); l.Status != "changed" {
				t.Errorf("first run: %+v, want changed", l)
			}
			ids := map[string]fileID{}
			filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
				if err == nil {
					ids[p] = idOf(t, p)
				}
				return err
			})
			l := run(2)
			if l.Status != "ok" || len(l.Changed) != 0 || len(l.Fixed) != 0 || l.Unchanged != tt.unchanged || l.Bytes != 0 {
				t.Errorf("second run: %+v, want ok, %d unchanged, nothing written", l, tt.unchanged)
			}
			for p, id := range ids {
				if now := idOf(t, p); now != id {
					t.Errorf("second run touched %s: %+v, was %+v", p, now, id)
				}
			}
			noTemps(t, base)
		})
	}
}

// prefix puts p before each of names.
func prefix(p string, names []string) []string {
	out := []string{strings.TrimSuffix(p, "/") + "/"}
	for _, n := range names {
		out = append(out, p+n)
	}
	return out
}

// TestCopyInterruptedStart: Ctrl-C while a target's context is still
// starting (an ssh server that accepts and never answers) reports the
// target as interrupted, as run does, not as unreachable, and exits 130.
func TestCopyInterruptedStart(t *testing.T) {
	testutil.VerifyNone(t)
	copyBattery(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, silent
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	}()
	dir := t.TempDir()
	src := filepath.Join(dir, "a.txt")
	writeFile(t, src, []byte("a\n"), 0o644)
	exe := cliCopy(t)
	target := "ssh://127.0.0.1:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	cmd, sc, errOut := startCLI(t, exe, "copy", "--json", src, "-t", target, filepath.Join(dir, "dest"))
	time.Sleep(time.Second) // ssh is waiting for the server's banner
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	var lines []copyLine
	for sc.Scan() {
		var l copyLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, l)
	}
	waitExit(t, cmd, exe, errOut)
	if code := cmd.ProcessState.ExitCode(); code != exitInterrupted {
		t.Errorf("exit %d, want %d\n%s", code, exitInterrupted, errOut)
	}
	if len(lines) != 1 || lines[0].Status != "failed" || lines[0].Error == nil || lines[0].Error.Kind != "interrupted" {
		t.Fatalf("lines %+v; want one, failed, kind interrupted\n%s", lines, errOut)
	}
	if !strings.Contains(errOut.String(), "1 target: 0 ok, 0 changed, 0 failed, 0 unreachable, 1 interrupted in ") {
		t.Errorf("the recap does not count 1 interrupted:\n%s", errOut)
	}
}
