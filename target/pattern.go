package target

import (
	"fmt"
	"path"
	"strings"
)

// IsChain reports whether s is meant as a target chain rather than an
// inventory pattern: whether it begins with a hop start ("local" followed
// by the end, "/", ":" or "?", or METHOD://). It does not say that s
// parses; Parse does.
func IsChain(s string) bool {
	_, ok := hopStart(s)
	return ok
}

// Select returns the hosts a pattern stands for, each once. A pattern is
// terms joined by "," or ":" (the two are the same); a term is a host
// name, a group name, "all" (or "*"), or a glob ("*" any run of
// characters, "?" any one) matching host and group names, and may be
// prefixed by "&" (intersection) or "!" (exclusion). The plain terms are
// joined first, in the order written, each term's hosts in file order;
// then each "&" term keeps only the hosts it also names, and each "!"
// term drops the hosts it names. A pattern of only "&" and "!" terms
// starts from every host, so "!db" is every host outside db.
//
// A term that names nothing (an unknown name, a glob that matches no
// name) is an error matching ErrUnknown; a malformed pattern one matching
// ErrPattern.
func (inv *Inventory) Select(pattern string) ([]Named, error) {
	terms := strings.FieldsFunc(pattern, func(r rune) bool { return r == ',' || r == ':' })
	if len(terms) == 0 || strings.Contains(pattern, ",,") || strings.Contains(pattern, "::") ||
		strings.ContainsAny(pattern[:1]+pattern[len(pattern)-1:], ",:") || len(strings.Fields(pattern)) != 1 {
		return nil, fmt.Errorf("%w %q: want terms joined by \",\" or \":\", as web:&prod or web,!db", ErrPattern, pattern)
	}
	var union []string
	inUnion := make(map[string]bool)
	var keep, drop []map[string]bool
	plain := false
	for _, term := range terms {
		op, name := byte(0), term
		if term[0] == '&' || term[0] == '!' {
			op, name = term[0], term[1:]
		}
		set, err := inv.match(name, term, pattern)
		if err != nil {
			return nil, err
		}
		switch op {
		case '&':
			keep = append(keep, set)
		case '!':
			drop = append(drop, set)
		default:
			plain = true
			for _, h := range inv.hosts { // file order within a term
				if set[h.name] && !inUnion[h.name] {
					inUnion[h.name] = true
					union = append(union, h.name)
				}
			}
		}
	}
	if !plain {
		for _, h := range inv.hosts {
			union = append(union, h.name)
		}
	}
	out := make([]Named, 0, len(union))
next:
	for _, name := range union {
		for _, set := range keep {
			if !set[name] {
				continue next
			}
		}
		for _, set := range drop {
			if set[name] {
				continue next
			}
		}
		out = append(out, inv.byName[name].named())
	}
	return out, nil
}

// match is the set of hosts one term's name stands for.
func (inv *Inventory) match(name, term, pattern string) (map[string]bool, error) {
	if name == "" {
		return nil, fmt.Errorf("%w %q: term %q names nothing", ErrPattern, pattern, term)
	}
	for _, r := range name {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("_-.*?", r)) {
			hint := ""
			switch r {
			case '[', ']':
				hint = " (ranges are for inventory host lines; in a pattern, use a glob such as web0*)"
			case '&', '!':
				hint = " (\"&\" and \"!\" start a term)"
			}
			return nil, fmt.Errorf("%w %q: term %q: %q is not allowed%s", ErrPattern, pattern, term, r, hint)
		}
	}
	if name == "*" {
		name = "all"
	}
	if !strings.ContainsAny(name, "*?") {
		set, ok := inv.members(name)
		if !ok {
			if term == pattern {
				return nil, inv.unknown(name)
			}
			return nil, fmt.Errorf("%w %q in pattern %q (groups: %s)", ErrUnknown, name, pattern, strings.Join(append([]string{"all"}, inv.order...), ", "))
		}
		return set, nil
	}
	set := make(map[string]bool)
	for _, h := range inv.hosts {
		if ok, _ := path.Match(name, h.name); ok {
			set[h.name] = true
		}
	}
	for _, g := range inv.order {
		if ok, _ := path.Match(name, g); ok {
			members, _ := inv.members(g)
			for h := range members {
				set[h] = true
			}
		}
	}
	if len(set) == 0 {
		return nil, fmt.Errorf("%w: %q in pattern %q matches no host or group", ErrUnknown, name, pattern)
	}
	return set, nil
}
