// Package lacks has tests that need what wasip1 lacks: they fail under
// spindle exec as under any wasip1 runtime, and spindle exec says why.
package lacks

import (
	"net"
	"os"
	"os/exec"
	"runtime"
	"testing"
)

func TestSubprocess(t *testing.T) {
	if err := exec.Command("/bin/true").Run(); err != nil {
		t.Fatal(err)
	}
}

func TestPipe(t *testing.T) {
	if _, _, err := os.Pipe(); err != nil {
		t.Fatal(err)
	}
}

func TestDialOut(t *testing.T) {
	c, err := net.Dial("tcp", "127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestSkipsWithReason(t *testing.T) {
	if runtime.GOOS == "wasip1" {
		t.Skip("skipping on wasip1: no subprocesses")
	}
}

func TestPlainFailure(t *testing.T) { t.Error("this test fails on purpose") }
