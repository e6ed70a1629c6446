package host

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Checking a module before guard rewrites it (guard.go), in two parts.
//
// Declared counts. wazero's decoder allocates each vector of a module at
// the length the module declares, before it reads the elements: a module
// of 60 bytes whose name section declares 2^31 local names makes it
// allocate 64 GiB at once, and the process dies (a Go runtime fatal
// error, not a panic). So guard reads, before wazero sees them, every
// vector wazero allocates that way (types, imports, functions, tables,
// globals, exports, elements and their entries, code, data, the name
// section's names) and refuses a module whose declared lengths its bytes
// do not hold: what wazero then allocates is at most a small multiple of
// the module's size.
//
// Indexes. The rewrite appends function and global indexes that the
// original module cannot name, so guard checks that the module names none
// past the ones it declares: checkIndexes for every section but the code,
// which scanBody checks as it reads it.

// errIndex wraps the refusal of a module that names a function or global
// index past the ones it declares (see above).
var errIndex = errors.New("no such index")

// errReserved wraps the refusal of a module that exports a name of the
// host's own (reservedPrefix: depthExport, stopExport and the others).
var errReserved = errors.New("name reserved for the host (the spindle$ prefix)")

// space is the function and global indexes a module declares, imports
// first: the only ones it may name.
type space struct {
	funcs, globals uint32
}

// where names the place of an index in a module, for an error message. It
// is a plain value, formatted only when there is an error: guard passes one
// for every index of a module of millions.
type where struct {
	kind       string // "global", "export", "data segment", "call", ...
	i          int64  // the item's number, or -1
	name       string // an export's name, or ""
	sub1, sub2 string // what within it: ": offset", ": ref.func", ...
}

// at is the place kind with no number.
func at(kind string) where { return where{kind: kind, i: -1} }

// with is w, narrowed to sub.
func (w where) with(sub string) where {
	if w.sub1 == "" {
		w.sub1 = sub
	} else {
		w.sub2 = sub
	}
	return w
}

func (w where) String() string {
	s := w.kind
	if w.i >= 0 {
		s += " " + strconv.FormatInt(w.i, 10)
	}
	if w.name != "" {
		s += " " + strconv.Quote(w.name)
	}
	return s + w.sub1 + w.sub2
}

// function checks function index i, named by what.
func (s space) function(what where, i uint32) error {
	if i < s.funcs {
		return nil
	}
	return fmt.Errorf("%s %d: %w (the module has %d functions)", what, i, errIndex, s.funcs)
}

// global checks global index i, named by what.
func (s space) global(what where, i uint32) error {
	if i < s.globals {
		return nil
	}
	return fmt.Errorf("%s %d: %w (the module has %d globals)", what, i, errIndex, s.globals)
}

// checkSections refuses sections out of wazero's order or repeated (custom
// sections anywhere, the others in increasing id, the tag section between
// memory and global, the data count section between element and code), a
// custom section whose name its bytes do not hold, and a name section
// that checkNames refuses.
func checkSections(sections []sectionSpan) error {
	last := 0
	for _, s := range sections {
		if s.id == sectionCustom {
			r := &reader{b: s.body}
			name := r.name()
			if r.bad {
				return fmt.Errorf("%w: a custom section's name", errMalformed)
			}
			if name == "name" {
				if err := checkNames(r.b); err != nil {
					return err
				}
			}
			continue
		}
		if s.id > sectionTag || sectionOrder(s.id) <= last {
			return fmt.Errorf("%w: section %d out of order", errMalformed, s.id)
		}
		last = sectionOrder(s.id)
	}
	return nil
}

// checkNames reads the subsections of a name section that wazero decodes
// (module name 0, function names 1, local names 2): each must fill its
// declared size exactly, so that wazero, which reads them past that size,
// reads the same counts. Other subsections wazero skips by their size.
func checkNames(b []byte) error {
	r := &reader{b: b}
	for len(r.b) > 0 && !r.bad {
		id := r.byte()
		size := r.u32()
		if r.bad || uint64(size) > uint64(len(r.b)) {
			return fmt.Errorf("%w: name section", errMalformed)
		}
		sub := &reader{b: r.b[:size]}
		r.b = r.b[size:]
		switch id {
		case 0:
			sub.name()
		case 1:
			n := sub.u32()
			for i := uint32(0); i < n && !sub.bad; i++ {
				sub.u32()
				sub.name()
			}
		case 2:
			n := sub.u32()
			for i := uint32(0); i < n && !sub.bad; i++ {
				sub.u32()
				locals := sub.u32()
				for j := uint32(0); j < locals && !sub.bad; j++ {
					sub.u32()
					sub.name()
				}
			}
		default:
			continue
		}
		if sub.bad || len(sub.b) != 0 {
			return fmt.Errorf("%w: name subsection %d", errMalformed, id)
		}
	}
	if r.bad {
		return fmt.Errorf("%w: name section", errMalformed)
	}
	return nil
}

// checkIndexes checks the function and global indexes that the sections
// other than the code name against sp: the globals' initializers, the
// exports, the start function, the element segments (function indexes,
// expressions and offsets) and the data segments' offsets. It also refuses
// an export named with reservedPrefix, more exports than lim.Functions, and more
// element segment entries than lim.TableElements+lim.Functions.
func checkIndexes(sections []sectionSpan, sp space, lim ModuleLimits) error {
	entries := lim.TableElements + lim.Functions // element entries left
	for _, s := range sections {
		r := &reader{b: s.body}
		var err error
		switch s.id {
		case sectionGlobal:
			n := r.u32()
			for i := uint32(0); i < n && !r.bad && err == nil; i++ {
				r.valType()
				r.byte() // mutability
				err = constExpr(r, sp, where{kind: "global", i: int64(i)})
			}
		case sectionExport:
			n := r.u32()
			if int64(n) > lim.Functions {
				return fmt.Errorf("%w: %d exports, the bound is %d (ModuleLimits.Functions)", errGuard, n, lim.Functions)
			}
			for i := uint32(0); i < n && !r.bad && err == nil; i++ {
				name := r.name()
				kind, idx := r.byte(), r.u32()
				switch {
				case r.bad:
				case strings.HasPrefix(name, reservedPrefix):
					err = fmt.Errorf("export %q: %w", name, errReserved)
				case kind == 0:
					err = sp.function(where{kind: "export", i: -1, name: name, sub1: ": function"}, idx)
				case kind == 3:
					err = sp.global(where{kind: "export", i: -1, name: name, sub1: ": global"}, idx)
				}
			}
		case sectionStart:
			if idx := r.u32(); !r.bad {
				err = sp.function(at("start function"), idx)
			}
		case sectionElem:
			n := r.u32()
			for i := uint32(0); i < n && !r.bad && err == nil; i++ {
				err = elemSegment(r, sp, where{kind: "element segment", i: int64(i)}, &entries)
			}
		case sectionData:
			n := r.u32()
			for i := uint32(0); i < n && !r.bad && err == nil; i++ {
				what := where{kind: "data segment", i: int64(i)}
				switch flags := r.u32(); flags {
				case 0:
					err = constExpr(r, sp, what)
				case 1:
				case 2:
					r.u32() // memory index
					err = constExpr(r, sp, what)
				default:
					err = fmt.Errorf("%w: %s: flags %d", errMalformed, what, flags)
				}
				r.skip(int(r.u32()))
			}
		}
		if err != nil {
			return err
		}
		whole := s.id == sectionGlobal || s.id == sectionExport || s.id == sectionStart || s.id == sectionElem || s.id == sectionData
		if r.bad || whole && len(r.b) != 0 {
			return fmt.Errorf("%w: section %d", errMalformed, s.id)
		}
	}
	return nil
}

// elemSegment reads one element segment and checks its indexes, and takes
// its entries from *entries. Its flags
// (0 to 7): bit 0 passive or declarative, else active; bit 1 with bit 0
// declarative, without it an explicit table index; bit 2 expressions
// instead of function indexes.
func elemSegment(r *reader, sp space, what where, entries *int64) error {
	flags := r.u32()
	if flags > 7 {
		return fmt.Errorf("%w: %s: flags %d", errMalformed, what, flags)
	}
	if flags&3 == 2 {
		r.u32() // table index
	}
	if flags&1 == 0 {
		if err := constExpr(r, sp, what.with(": offset")); err != nil {
			return err
		}
	}
	if flags&3 != 0 {
		if flags&4 == 0 {
			r.byte() // element kind
		} else {
			r.valType() // reference type
		}
	}
	n := r.u32()
	if *entries -= int64(n); *entries < 0 {
		return fmt.Errorf("%w: %s: the element segments hold more than TableElements+Functions entries (ModuleLimits)", errGuard, what)
	}
	for i := uint32(0); i < n && !r.bad; i++ {
		var err error
		if flags&4 == 0 {
			if idx := r.u32(); !r.bad {
				err = sp.function(what.with(": function"), idx)
			}
		} else {
			err = constExpr(r, sp, what)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// constExpr reads a constant expression up to its end and checks the
// global.get and ref.func in it against sp. It reads what wazero's
// decoder does (with the extended-const arithmetic); anything else is
// errMalformed.
func constExpr(r *reader, sp space, what where) error {
	for !r.bad {
		var err error
		switch op := r.byte(); op {
		case opEnd:
			return nil
		case 0x41: // i32.const
			r.leb(5)
		case 0x42: // i64.const
			r.leb(10)
		case 0x43:
			r.skip(4)
		case 0x44:
			r.skip(8)
		case 0x6a, 0x6b, 0x6c, 0x7c, 0x7d, 0x7e: // i32/i64 add, sub, mul
		case 0x23:
			if idx := r.u32(); !r.bad {
				err = sp.global(what.with(": global.get"), idx)
			}
		case 0xd0: // ref.null heaptype
			r.leb(5)
		case 0xd2:
			if idx := r.u32(); !r.bad {
				err = sp.function(what.with(": ref.func"), idx)
			}
		case 0xfd: // v128.const
			if r.u32() != 12 {
				return fmt.Errorf("%w: %s: vector instruction in a constant expression", errMalformed, what)
			}
			r.skip(16)
		default:
			if r.bad {
				break
			}
			return fmt.Errorf("%w: %s: opcode %#x in a constant expression", errMalformed, what, op)
		}
		if err != nil {
			return err
		}
	}
	return fmt.Errorf("%w: %s", errMalformed, what)
}
