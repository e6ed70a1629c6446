// Package updir's test reads a file above its package directory: it
// passes under spindle exec --module, which shows it the whole module.
package updir

import (
	"os"
	"strings"
	"testing"
)

func TestReadsAbove(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "A small module") {
		t.Fatalf("../README.md begins %.20q", b)
	}
	if wd, err := os.Getwd(); err != nil || !strings.HasSuffix(wd, "/updir") {
		t.Fatalf("working directory %q, %v; want the package's", wd, err)
	}
}
