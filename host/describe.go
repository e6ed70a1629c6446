package host

import (
	"bytes"
	"fmt"
	"slices"
)

// ModuleInfo is what Describe reads from a module's bytes without
// compiling it: enough for a caller to refuse a wrong call before it
// starts anything.
type ModuleInfo struct {
	// Kind is Command when the module exports _start, else Reactor.
	Kind ModuleKind
	// Exports are the exported functions' names, sorted, those with a
	// meaning of their own (_start, _initialize, spindle_call) included.
	Exports []string
	// Dispatch reports an export spindle_call: the reactor takes task
	// names it does not export.
	Dispatch bool
	// Memory reports an exported memory named "memory", which every
	// module must define and export (docs/abi.md); ImportsMemory a memory
	// among its imports, which none may have.
	Memory, ImportsMemory bool
	// MinPages is the declared minimum, in 64 KiB pages, of the memory the
	// module defines (0 when it defines none): a Limits.MemoryPages below
	// it fails every call (KindMemory).
	MinPages uint32
}

// CheckMemory returns the error Compile would give a module for its
// memory: none exported as "memory", or one imported.
func (i ModuleInfo) CheckMemory() error {
	switch {
	case i.ImportsMemory:
		return fmt.Errorf("it imports a memory; a module must define and export its own as %q", exportMemory)
	case !i.Memory:
		return fmt.Errorf("it does not export its memory as %q (docs/abi.md; a Go guest built with GOOS=wasip1 GOARCH=wasm does)", exportMemory)
	}
	return nil
}

// Tasks returns the exports a reactor's caller may name as a task (the
// functions other than _start, _initialize and spindle_call); their
// signatures are checked only when the module compiles.
func (i ModuleInfo) Tasks() []string {
	var out []string
	for _, e := range i.Exports {
		if e != exportStart && e != exportInitialize && e != exportDispatch {
			out = append(out, e)
		}
	}
	return out
}

// Describe reads a module's kind and exports from its bytes, in time
// linear in its size and without compiling it. A file that is not a wasm
// module gets an error saying what it looks like instead (a native
// executable, a script, text), so a caller can name the mistake.
func Describe(wasm []byte) (ModuleInfo, error) {
	var info ModuleInfo
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		return info, fmt.Errorf("not a wasm module: %s", looksLike(wasm))
	}
	if string(wasm[4:8]) != "\x01\x00\x00\x00" {
		return info, fmt.Errorf("a wasm binary of version %x, not 1 (a component? spindle runs core wasm modules)", wasm[4:8])
	}
	sections, ok := splitSections(wasm)
	if !ok {
		return info, fmt.Errorf("a malformed wasm module: its section sizes pass its end")
	}
	for _, s := range sections {
		if s.id == sectionImport {
			info.ImportsMemory = importsMemory(s.body)
		}
		if s.id == sectionMemory {
			info.MinPages = minPages(s.body)
		}
		if s.id != sectionExport {
			continue
		}
		r := &reader{b: s.body}
		n := r.u32()
		for range n {
			if r.bad {
				break
			}
			name := r.name()
			kind := r.byte()
			r.u32()
			switch kind {
			case 0: // a function
				info.Exports = append(info.Exports, name)
			case 2: // a memory
				info.Memory = info.Memory || name == exportMemory
			}
		}
		if r.bad {
			return info, fmt.Errorf("a malformed wasm module: its export section")
		}
	}
	slices.Sort(info.Exports)
	if _, ok := slices.BinarySearch(info.Exports, exportStart); ok {
		info.Kind = Command
	}
	_, info.Dispatch = slices.BinarySearch(info.Exports, exportDispatch)
	return info, nil
}

// importsMemory reports whether an import section lists a memory. A
// section it cannot read is taken as none: Compile says what is wrong.
func importsMemory(body []byte) bool {
	r := &reader{b: body}
	limits := func() {
		if r.byte()&1 != 0 {
			r.leb(10)
		}
		r.leb(10)
	}
	n := r.u32()
	for range n {
		r.name()
		r.name()
		switch r.byte() {
		case 0: // a function: its type
			r.u32()
		case 1: // a table
			r.valType()
			limits()
		case 2:
			return !r.bad
		case 3: // a global
			r.valType()
			r.byte()
		case 4: // a tag
			r.byte()
			r.u32()
		default:
			return false
		}
		if r.bad {
			return false
		}
	}
	return false
}

// minPages is the declared minimum of the first memory a memory section
// defines. A section it cannot read, or a 64-bit memory, is taken as 0:
// Compile says what is wrong.
func minPages(body []byte) uint32 {
	r := &reader{b: body}
	if r.u32() == 0 {
		return 0
	}
	if flags := r.byte(); flags&^1 != 0 { // only "min" and "min, max"
		return 0
	}
	if min := r.u32(); !r.bad {
		return min
	}
	return 0
}

// looksLike names what a file that is not wasm seems to be, by its first
// bytes.
func looksLike(b []byte) string {
	switch {
	case len(b) == 0:
		return "the file is empty"
	case bytes.HasPrefix(b, []byte("\x7fELF")):
		return "an ELF file (a native Linux executable or library): build the guest with GOOS=wasip1 GOARCH=wasm, or for wasm32-wasi"
	case bytes.HasPrefix(b, []byte("MZ")):
		return "a Windows executable"
	case bytes.HasPrefix(b, []byte{0xcf, 0xfa, 0xed, 0xfe}), bytes.HasPrefix(b, []byte{0xca, 0xfe, 0xba, 0xbe}):
		return "a Mach-O file (a native macOS executable)"
	case bytes.HasPrefix(b, []byte("#!")):
		return "a script"
	case bytes.HasPrefix(b, []byte("(module")) || bytes.HasPrefix(bytes.TrimSpace(b), []byte("(module")):
		return "the wasm text format (.wat): assemble it to binary first (wat2wasm)"
	case bytes.HasPrefix(b, []byte("PK\x03\x04")):
		return "a zip archive"
	case bytes.HasPrefix(b, []byte{0x1f, 0x8b}):
		return "a gzip file"
	}
	return fmt.Sprintf("it starts with %q, where a wasm module starts with \"\\x00asm\"", b[:min(8, len(b))])
}
