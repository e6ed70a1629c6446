package pass

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestReadsTestdata(t *testing.T) {
	b, err := os.ReadFile("testdata/greeting.txt")
	if err != nil || string(b) != "hello from testdata\n" {
		t.Fatalf("ReadFile(testdata/greeting.txt) = %q, %v", b, err)
	}
}

func TestWritesTempDir(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.txt")
	if err := os.WriteFile(p, []byte("written"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "written" {
		t.Fatalf("ReadFile(%s) = %q, %v", p, b, err)
	}
}

func TestSourceIsReadOnly(t *testing.T) {
	if err := os.WriteFile("testdata/new.txt", []byte("x"), 0o644); err == nil {
		t.Fatal("wrote to the package directory, which is read-only")
	}
}

func TestNoExec(t *testing.T) {
	if _, err := exec.Command("true").Output(); err != nil {
		t.Skipf("cannot exec subprocess: %v", err)
	}
}

func TestSub(t *testing.T) {
	for _, name := range []string{"a", "b"} {
		t.Run(name, func(t *testing.T) { t.Log("sub", name) })
	}
}
