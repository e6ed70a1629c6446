package host_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/spindle-hq/spindle/host"
	"github.com/spindle-hq/spindle/internal/testutil"
)

// TestDescribe reads the kind and exports of real guests, and names what a
// file that is not a module looks like.
func TestDescribe(t *testing.T) {
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	hello, err := host.Describe(read(testutil.BuildWasm(t, "examples/wasm/hello", true)))
	if err != nil || hello.Kind != host.Reactor || !hello.Dispatch || !slices.Contains(hello.Exports, "_initialize") {
		t.Errorf("hello: %+v, %v; want a reactor with spindle_call and _initialize", hello, err)
	}
	if !hello.Memory || hello.ImportsMemory || hello.CheckMemory() != nil {
		t.Errorf("hello: Memory %v, ImportsMemory %v, CheckMemory %v; want its own memory, exported", hello.Memory, hello.ImportsMemory, hello.CheckMemory())
	}
	if hello.MinPages == 0 || hello.MinPages > host.DefaultMemoryPages {
		t.Errorf("hello: MinPages %d, want its memory's declared minimum, above 0 and within the default limit", hello.MinPages)
	}
	// A memory section of one memory, min 3 (then min 2, max 9).
	for _, tt := range []struct {
		section string
		want    uint32
	}{
		{"\x05\x03\x01\x00\x03", 3},
		{"\x05\x04\x01\x01\x02\x09", 2},
		{"\x05\x02\x01\x00", 0}, // cut short
	} {
		m, err := host.Describe([]byte("\x00asm\x01\x00\x00\x00" + tt.section))
		if err != nil || m.MinPages != tt.want {
			t.Errorf("memory section %x: MinPages %d, %v; want %d", tt.section, m.MinPages, err, tt.want)
		}
	}
	// An import section with a function, then a memory: env.memory.
	imported, err := host.Describe([]byte("\x00asm\x01\x00\x00\x00" +
		"\x02\x15\x02\x01m\x01f\x00\x00\x03env\x06memory\x02\x00\x01"))
	if err != nil || !imported.ImportsMemory || imported.Memory || imported.CheckMemory() == nil {
		t.Errorf("a module importing its memory: %+v, %v; want ImportsMemory and an error from CheckMemory", imported, err)
	}
	if slices.Contains(hello.Tasks(), "spindle_call") || slices.Contains(hello.Tasks(), "_initialize") {
		t.Errorf("hello's tasks hold the ABI's own exports: %q", hello.Tasks())
	}
	cmd, err := host.Describe(read(testutil.BuildWasm(t, "examples/wasm/cmd", false)))
	if err != nil || cmd.Kind != host.Command || cmd.Dispatch {
		t.Errorf("cmd: %+v, %v; want a command", cmd, err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		b    []byte
		want string
	}{
		{"native", read(self)[:4096], "an ELF file"},
		{"empty", nil, "empty"},
		{"script", []byte("#!/bin/sh\necho hi\n"), "a script"},
		{"wat", []byte("  (module (func))"), "wasm text format"},
		{"component", []byte("\x00asm\x0d\x00\x01\x00"), "not 1 (a component?"},
		{"cut", []byte("\x00asm\x01\x00\x00\x00\x07\x10\x01"), "section sizes"},
		{"bad exports", []byte("\x00asm\x01\x00\x00\x00\x07\x03\x05\x01a"), "export section"},
	} {
		if _, err := host.Describe(tt.b); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error saying %q", tt.name, err, tt.want)
		}
	}
}
