package target

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
)

// Inventory is a parsed inventory file: hosts, each with a target, and
// groups of them. It is immutable once parsed, so safe for concurrent use.
type Inventory struct {
	hosts  []*invHost // in order of first mention in the file
	byName map[string]*invHost
	groups map[string]*invGroup
	order  []string // group names in order of first mention
}

// Named is a resolved inventory host: its inventory name, its full target
// (via hops first) and its variables, after precedence (nil if it has
// none). A Named owns its Target and Vars: changing them changes nothing
// else.
type Named struct {
	Name   string
	Target Target
	Vars   map[string]string
}

type invHost struct {
	name    string
	line    int               // first mention
	setLine int               // the line that carries its settings; 0 if none does
	target  Target            // target=, or nil for ssh://NAME
	ctxName string            // name=
	via     *Target           // via=; non-nil but empty for an explicit "via="
	groups  []string          // direct groups, in file order
	vars    map[string]string // its own, from its line; shared by a range's hosts
	full    Target            // via + target, name= applied
	allVars map[string]string // vars after precedence; nil if none
}

// varDef is a [GROUP:vars] variable and the line that set it.
type varDef struct {
	value string
	line  int
}

type invGroup struct {
	name      string
	line      int  // first mention
	declared  bool // by [NAME] or [NAME:children]
	childLine int  // first mention as a child, if it came before any header
	hosts     []string
	children  []string
	parents   []string
	via       *Target
	viaLine   int
	vars      map[string]varDef
}

// LoadInventory reads the inventory file at path (see ParseInventory).
func LoadInventory(path string) (*Inventory, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("target: load inventory: %w", err)
	}
	defer f.Close()
	return parseInventory(f, path+":")
}

// ParseInventory reads an inventory (format in the package documentation).
// Errors match ErrInventory and name the line.
func ParseInventory(r io.Reader) (*Inventory, error) {
	return parseInventory(r, "line ")
}

// inventoryParser holds the state of one parse.
type inventoryParser struct {
	inv     *Inventory
	where   string // "line " or "PATH:", before a line number
	lineNo  int
	allVia  *Target
	allVars map[string]varDef
}

func (p *inventoryParser) errorf(line int, format string, args ...any) error {
	return fmt.Errorf("%w: %s%d: %s", ErrInventory, p.where, line, fmt.Sprintf(format, args...))
}

// parseTargetAt parses a target= or via= value, wrapping its error with the
// line; the error matches ErrInvalid (and ErrPassword) too.
func (p *inventoryParser) parseTargetAt(key, value string) (Target, error) {
	t, perr := parse(value)
	if perr == nil {
		return t, nil
	}
	if perr.password {
		return nil, fmt.Errorf("%w: %s%d: %s=: %w", ErrInventory, p.where, p.lineNo, key, perr)
	}
	return nil, fmt.Errorf("%w: %s%d: %s=%s: %w", ErrInventory, p.where, p.lineNo, key, value, perr)
}

func parseInventory(r io.Reader, where string) (*Inventory, error) {
	p := &inventoryParser{
		inv:   &Inventory{byName: make(map[string]*invHost), groups: make(map[string]*invGroup)},
		where: where,
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	group, kind := "all", "" // hosts before any header are in no group
	for sc.Scan() {
		p.lineNo++
		line := stripComment(sc.Text())
		if line == "" {
			continue
		}
		if line[0] == '[' {
			var err error
			if group, kind, err = p.header(line); err != nil {
				return nil, err
			}
			continue
		}
		var err error
		switch kind {
		case "":
			err = p.hostLine(group, line)
		case "vars":
			err = p.varsLine(group, line)
		case "children":
			err = p.childLine(group, line)
		}
		if err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %s%d: %w", ErrInventory, p.where, p.lineNo+1, err)
	}
	if err := p.finish(); err != nil {
		return nil, err
	}
	return p.inv, nil
}

// stripComment drops a whole-line comment ("#" or ";" first) or an inline
// one (" #" to the end), and surrounding space. A "#" inside a word, as in
// a target's option value, is kept.
func stripComment(line string) string {
	line = strings.TrimSpace(line)
	if line == "" || line[0] == '#' || line[0] == ';' {
		return ""
	}
	var quote byte // a quoted value may hold " #"
	for i := 1; i < len(line); i++ {
		switch c := line[i]; {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '#' && (line[i-1] == ' ' || line[i-1] == '\t'):
			return strings.TrimSpace(line[:i])
		}
	}
	return line
}

func (p *inventoryParser) header(line string) (group, kind string, err error) {
	if !strings.HasSuffix(line, "]") {
		return "", "", p.errorf(p.lineNo, "header %q: missing %q", line, "]")
	}
	group, kind, _ = strings.Cut(line[1:len(line)-1], ":")
	if err := checkWord("group", group); err != nil {
		return "", "", p.errorf(p.lineNo, "header %s: %s", line, err)
	}
	if group == "local" {
		return "", "", p.errorf(p.lineNo, "header %s: %q is a target (a local context): name the group otherwise", line, group)
	}
	switch kind {
	case "", "vars", "children":
	default:
		return "", "", p.errorf(p.lineNo, "header %s: unknown section %q (want [%s], [%s:vars] or [%s:children])", line, kind, group, group, group)
	}
	if group != "all" {
		g := p.group(group)
		if kind != "vars" {
			g.declared = true
		}
	}
	return group, kind, nil
}

// group returns the named group, adding it in file order if it is new.
func (p *inventoryParser) group(name string) *invGroup {
	g := p.inv.groups[name]
	if g == nil {
		g = &invGroup{name: name, line: p.lineNo}
		p.inv.groups[name] = g
		p.inv.order = append(p.inv.order, name)
	}
	return g
}

// checkWord validates a group or host name.
func checkWord(what, s string) error {
	if s == "" {
		return fmt.Errorf("empty %s name", what)
	}
	for _, r := range s {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("_-.", r)) {
			switch {
			case what == "host" && r == ':':
				return fmt.Errorf("host %q: give a port or address in target=, as web1 target=ssh://web1:2222", s)
			}
			return fmt.Errorf("%s name %q: want letters, digits, %q, %q and %q", what, s, "_", "-", ".")
		}
	}
	return nil
}

func (p *inventoryParser) hostLine(group, line string) error {
	fields, err := splitFields(line)
	if err != nil {
		return p.errorf(p.lineNo, "%q: %s", line, err)
	}
	spec := fields[0]
	if strings.Contains(spec, "=") {
		return p.errorf(p.lineNo, "%q: a host line starts with the host's name", line)
	}
	names, err := expandHosts(spec)
	if err != nil {
		return p.errorf(p.lineNo, "%s", err)
	}
	for _, name := range names {
		if err := checkWord("host", name); err != nil {
			return p.errorf(p.lineNo, "%s", err)
		}
		switch name {
		case "all":
			return p.errorf(p.lineNo, "%q is reserved for every host", "all")
		case "local":
			return p.errorf(p.lineNo, "%q is a target (a local context): name the host otherwise", "local")
		}
	}
	set, err := p.settings(spec, fields[1:], len(names) > 1)
	if err != nil {
		return err
	}
	for _, name := range names {
		h := p.inv.byName[name]
		if h == nil {
			if len(p.inv.hosts) == maxInventoryHosts {
				return p.errorf(p.lineNo, "more than %d hosts in the inventory", maxInventoryHosts)
			}
			h = &invHost{name: name, line: p.lineNo}
			p.inv.byName[name] = h
			p.inv.hosts = append(p.inv.hosts, h)
		}
		if group != "all" {
			g := p.inv.groups[group]
			if slices.Contains(h.groups, group) { // h.groups is short; g.hosts may not be
				return p.errorf(p.lineNo, "host %s listed twice in [%s]", name, group)
			}
			g.hosts = append(g.hosts, name)
			h.groups = append(h.groups, group)
		}
		if len(fields) == 1 {
			continue
		}
		if h.setLine != 0 {
			return p.errorf(p.lineNo, "host %s already has settings (line %d); list it elsewhere by name alone", name, h.setLine)
		}
		h.setLine = p.lineNo
		if err := p.apply(h, set); err != nil {
			return err
		}
	}
	return nil
}

// hostSettings are the KEY=VALUE fields of one host line, before {name}
// is filled in.
type hostSettings struct {
	target, via, name *string
	vars              map[string]string // shared by every host of the line
}

// settings reads a host line's KEY=VALUE fields. spec is the line's host
// name or range.
func (p *inventoryParser) settings(spec string, fields []string, isRange bool) (hostSettings, error) {
	var set hostSettings
	seen := make(map[string]bool)
	for _, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return set, p.errorf(p.lineNo, "host %s: %q: want KEY=VALUE", spec, f)
		}
		if seen[k] {
			return set, p.errorf(p.lineNo, "host %s: %s= given twice", spec, k)
		}
		seen[k] = true
		switch k {
		case "target":
			set.target = &v
		case "via":
			set.via = &v
		case "name":
			if isRange && !strings.Contains(v, placeholder) {
				return set, p.errorf(p.lineNo, "host %s: name=%s would give every host of the range one context name: put %s in it", spec, v, placeholder)
			}
			set.name = &v
		default:
			if err := checkVarName(k); err != nil {
				return set, p.errorf(p.lineNo, "host %s: %s", spec, err)
			}
			if set.vars == nil {
				set.vars = make(map[string]string)
			}
			set.vars[k] = v
		}
	}
	return set, nil
}

// apply gives host h the settings of its line, {name} filled in.
func (p *inventoryParser) apply(h *invHost, set hostSettings) error {
	h.vars = set.vars
	fill := func(key string, v *string) (string, error) {
		s, err := fillName(key, *v, h.name)
		if err != nil {
			return "", p.errorf(p.lineNo, "host %s: %s", h.name, err)
		}
		return s, nil
	}
	if set.target != nil {
		v, err := fill("target", set.target)
		if err != nil {
			return err
		}
		if h.target, err = p.parseTargetAt("target", v); err != nil {
			return err
		}
	}
	if set.via != nil {
		v, err := fill("via", set.via)
		if err != nil {
			return err
		}
		t, err := p.viaValue(v)
		if err != nil {
			return err
		}
		h.via = &t
	}
	if set.name != nil {
		v, err := fill("name", set.name)
		if err != nil {
			return err
		}
		if err := checkName(v); err != nil {
			return p.errorf(p.lineNo, "host %s: name=%s: %s", h.name, v, err)
		}
		h.ctxName = v
	}
	return nil
}

// viaValue parses a via= value; empty means no via hops at all.
func (p *inventoryParser) viaValue(v string) (Target, error) {
	if v == "" {
		return Target{}, nil
	}
	return p.parseTargetAt("via", v)
}

func (p *inventoryParser) varsLine(group, line string) error {
	k, v, ok := strings.Cut(line, "=")
	k, v = strings.TrimSpace(k), strings.TrimSpace(v)
	if !ok {
		return p.errorf(p.lineNo, "[%s:vars]: %q: want KEY=VALUE", group, line)
	}
	var g *invGroup
	if group != "all" {
		g = p.inv.groups[group]
	}
	switch k {
	case "via":
		t, err := p.viaValue(v)
		if err != nil {
			return err
		}
		if g == nil {
			if p.allVia != nil {
				return p.errorf(p.lineNo, "[all:vars]: via= given twice")
			}
			p.allVia = &t
			return nil
		}
		if g.via != nil {
			return p.errorf(p.lineNo, "[%s:vars]: via= given twice (line %d)", group, g.viaLine)
		}
		g.via, g.viaLine = &t, p.lineNo
		return nil
	case "target", "name":
		return p.errorf(p.lineNo, "[%s:vars]: %s= is a host's own setting: give it on the host's line", group, k)
	}
	if err := checkVarName(k); err != nil {
		return p.errorf(p.lineNo, "[%s:vars]: %s", group, err)
	}
	vars := &p.allVars
	if g != nil {
		vars = &g.vars
	}
	if *vars == nil {
		*vars = make(map[string]varDef)
	}
	if d, ok := (*vars)[k]; ok {
		return p.errorf(p.lineNo, "[%s:vars]: %s= given twice (line %d)", group, k, d.line)
	}
	(*vars)[k] = varDef{value: unquote(v), line: p.lineNo}
	return nil
}

func (p *inventoryParser) childLine(group, line string) error {
	if strings.ContainsAny(line, " \t=") {
		return p.errorf(p.lineNo, "[%s:children]: %q: want one group name per line", group, line)
	}
	if err := checkWord("group", line); err != nil {
		return p.errorf(p.lineNo, "[%s:children]: %s", group, err)
	}
	if line == "all" {
		return p.errorf(p.lineNo, "[%s:children]: %q cannot be a child", group, "all")
	}
	c := p.group(line)
	if c.line == p.lineNo {
		c.childLine = p.lineNo
	}
	if group == "all" {
		return nil // every group is in all already
	}
	g := p.inv.groups[group]
	if slices.Contains(g.children, line) {
		return p.errorf(p.lineNo, "[%s:children]: %s listed twice", group, line)
	}
	g.children = append(g.children, line)
	c.parents = append(c.parents, group)
	return nil
}

// finish checks what needs the whole file and computes each host's target
// and variables.
func (p *inventoryParser) finish() error {
	inv := p.inv
	for _, name := range inv.order {
		g := inv.groups[name]
		if !g.declared {
			if g.childLine != 0 {
				return p.errorf(g.childLine, "unknown group %s: it has no [%s] or [%s:children] section", name, name, name)
			}
			return p.errorf(g.line, "group %s has [%s:vars] but no [%s] or [%s:children] section", name, name, name, name)
		}
		if h := inv.byName[name]; h != nil {
			return p.errorf(h.line, "%s is both a host and a group", name)
		}
	}
	for _, h := range inv.hosts {
		target := h.target
		if target == nil {
			target = Target{{Method: "ssh", Host: h.name, Batch: true, Name: "ssh." + h.name}}
		}
		levels := p.groupLevels(h)
		via, err := p.viaFor(h, levels)
		if err != nil {
			return err
		}
		full := make(Target, 0, len(via)+len(target))
		full = append(full, via...)
		full = append(full, target...)
		if h.ctxName != "" {
			full[len(full)-1].Name = h.ctxName
		}
		h.full = full
		if h.allVars, err = p.varsFor(h, levels); err != nil {
			return err
		}
	}
	return nil
}

// groupLevels lists the groups holding h by distance: its own groups, then
// the groups listing those as children, and so on; each group once, at
// its nearest distance, in file order within a distance.
func (p *inventoryParser) groupLevels(h *invHost) [][]*invGroup {
	var levels [][]*invGroup
	seen := make(map[string]bool)
	names := h.groups
	for len(names) > 0 {
		var level []*invGroup
		var next []string
		for _, name := range names {
			if seen[name] {
				continue
			}
			seen[name] = true
			g := p.inv.groups[name]
			level = append(level, g)
			next = append(next, g.parents...)
		}
		if len(level) > 0 {
			levels = append(levels, level)
		}
		names = next
	}
	return levels
}

// viaFor finds a host's via hops: its own via=, else that of the nearest
// groups holding it, else [all:vars]. Groups at the same distance must
// agree.
func (p *inventoryParser) viaFor(h *invHost, levels [][]*invGroup) (Target, error) {
	if h.via != nil {
		return *h.via, nil
	}
	for _, level := range levels {
		var found *invGroup
		for _, g := range level {
			if g.via == nil {
				continue
			}
			if found != nil && found.via.String() != g.via.String() {
				return nil, p.errorf(h.line, "host %s: groups %s (line %d) and %s (line %d) give different via=; set via= on the host", h.name, found.name, found.viaLine, g.name, g.viaLine)
			}
			if found == nil {
				found = g
			}
		}
		if found != nil {
			return *found.via, nil
		}
	}
	if p.allVia != nil {
		return *p.allVia, nil
	}
	return nil, nil
}

// varsFor computes a host's variables by the same rule as via, for each
// variable on its own: the host's line, else the nearest groups that set
// it (which must agree), else [all:vars].
func (p *inventoryParser) varsFor(h *invHost, levels [][]*invGroup) (map[string]string, error) {
	out := maps.Clone(h.vars)
	if out == nil {
		out = make(map[string]string)
	}
	for _, level := range levels {
		found := make(map[string]*invGroup)
		for _, g := range level {
			for _, k := range slices.Sorted(maps.Keys(g.vars)) {
				if _, done := out[k]; done {
					continue
				}
				if f := found[k]; f != nil {
					if f.vars[k].value != g.vars[k].value {
						return nil, p.errorf(h.line, "host %s: groups %s (line %d) and %s (line %d) give different %s=; set %s= on the host", h.name, f.name, f.vars[k].line, g.name, g.vars[k].line, k, k)
					}
					continue
				}
				found[k] = g
			}
		}
		for k, g := range found {
			out[k] = g.vars[k].value
		}
	}
	for k, d := range p.allVars {
		if _, done := out[k]; !done {
			out[k] = d.value
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// Resolve returns the hosts a name stands for, in file order, each once: a
// host itself; a group's hosts, including those of its children, their
// children and so on (a cycle of groups is harmless); or, for "all", every
// host. Each Named holds its own copy of the target and variables. For
// patterns that combine names, see Select.
func (inv *Inventory) Resolve(name string) ([]Named, error) {
	want, ok := inv.members(name)
	if !ok {
		return nil, inv.unknown(name)
	}
	return inv.inFileOrder(want), nil
}

// members is the set of hosts name stands for (see Resolve); false if it
// is neither "all", a host nor a group.
func (inv *Inventory) members(name string) (map[string]bool, bool) {
	want := make(map[string]bool)
	switch {
	case name == "all":
		for _, h := range inv.hosts {
			want[h.name] = true
		}
	case inv.byName[name] != nil:
		want[name] = true
	case inv.groups[name] != nil:
		seen := make(map[string]bool)
		var walk func(string)
		walk = func(g string) {
			if seen[g] {
				return
			}
			seen[g] = true
			for _, h := range inv.groups[g].hosts {
				want[h] = true
			}
			for _, c := range inv.groups[g].children {
				walk(c)
			}
		}
		walk(name)
	default:
		return nil, false
	}
	return want, true
}

func (inv *Inventory) unknown(name string) error {
	return fmt.Errorf("%w %q (groups: %s)", ErrUnknown, name, strings.Join(append([]string{"all"}, inv.order...), ", "))
}

// inFileOrder returns the hosts of want in file order.
func (inv *Inventory) inFileOrder(want map[string]bool) []Named {
	out := make([]Named, 0, len(want))
	for _, h := range inv.hosts {
		if want[h.name] {
			out = append(out, h.named())
		}
	}
	return out
}

// clone copies t deeply enough that changing the copy cannot change t.
func (t Target) clone() Target {
	c := slices.Clone(t)
	for i := range c {
		c[i].SSHOptions = slices.Clone(c[i].SSHOptions)
	}
	return c
}

// named is h as a Named, with copies of its target and variables.
func (h *invHost) named() Named {
	return Named{Name: h.name, Target: h.full.clone(), Vars: maps.Clone(h.allVars)}
}
