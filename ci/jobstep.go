package ci

import (
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The steps of a job file, key by key.

var stepKeys = []string{
	"name", "tool", "module", "hash", "args", "env", "inputs", "outputs", "stdin",
	"timeout", "memory", "output-bytes", "disk", "grants", "secrets", "fail-if-output", "report",
}

func (p *jobParser) steps(j *Job, n *yaml.Node, m *matrixCtx) {
	items, ok := p.list(n, "steps", "a list of steps")
	if !ok {
		return
	}
	if len(items) == 0 {
		p.errorf(n, "steps: empty (expected at least one step)")
		return
	}
	first := map[string]Pos{}
	for _, it := range items {
		s, nameNode := p.step(it, m)
		if s == nil {
			continue
		}
		j.Steps = append(j.Steps, s)
		if s.Name == "" {
			continue
		}
		if at, dup := first[s.Name]; dup {
			p.errorf(nameNode, "step name %q repeated in job %s, first at %d:%d (expected unique step names; give each a name:)",
				s.Name, j.Name, at.Line, at.Col)
			continue
		}
		first[s.Name] = s.Pos
	}
}

// step parses one step. It returns the step (nil if it is not even a
// mapping) and the node its name came from, for errors.
func (p *jobParser) step(n *yaml.Node, m *matrixCtx) (*Step, *yaml.Node) {
	r := p.node(n)
	if r == nil {
		return nil, nil
	}
	ents, ok := p.mapping(r, "", "a step: a mapping with tool:, module: or hash:")
	if !ok {
		return nil, nil
	}
	s := &Step{
		Pos:         p.pos(r),
		Inputs:      []string{DefaultInput},
		Timeout:     DefaultStepTimeout,
		MemoryBytes: DefaultMemoryBytes,
		OutputBytes: DefaultOutputBytes,
		DiskBytes:   DefaultDiskBytes,
	}
	nameNode := r
	var named bool
	var what []string // of tool, module, hash: those given
	var whatNode *yaml.Node
	for _, e := range ents {
		switch e.key {
		case "name":
			s.Name, named = p.str(e.v, "name")
			nameNode = e.v
			if named && !validJobName(s.Name) {
				p.errorf(e.v, "step name %q (expected letters, digits, _, . and -, not starting with . or -)", s.Name)
			}
		case "tool":
			s.Tool, _ = p.str(e.v, "tool")
			if !validJobName(s.Tool) {
				p.errorf(e.v, "tool %q (expected a toolbox tool's name: letters, digits, _, . and -)", s.Tool)
			}
		case "module":
			s.Module, _ = p.str(e.v, "module")
			p.checkModule(e.v, s.Module)
		case "hash":
			s.Hash, _ = p.str(e.v, "hash")
			if !validModuleHash(s.Hash) {
				p.errorf(e.v, "hash %q (expected the sha256 of a module: 64 lower-case hex digits)", s.Hash)
			}
		case "args":
			items, nodes, _ := p.strList(e.v, "args")
			for i, a := range items {
				p.templated(nodes[i], "args", a, m, nil)
			}
			s.Args = items
		case "env":
			s.Env = p.env(e.v, m)
		case "inputs":
			items, nodes, ok := p.strList(e.v, "inputs")
			if ok && len(items) == 0 {
				p.errorf(e.v, "inputs: empty (expected workspace globs; omit inputs for the whole workspace)")
			}
			for i, in := range items {
				p.templated(nodes[i], "inputs", in, m, checkInputPattern)
			}
			if ok && len(items) > 0 {
				s.Inputs = items
			}
		case "outputs":
			s.Outputs = p.outputs(e.v)
		case "stdin":
			s.Stdin, _ = p.str(e.v, "stdin")
			p.templated(e.v, "stdin", s.Stdin, m, checkStdin)
		case "timeout":
			s.Timeout, _ = p.duration(e.v, "timeout")
		case "memory":
			s.MemoryBytes, _ = p.size(e.v, "memory", 4<<30, true)
		case "output-bytes":
			s.OutputBytes, _ = p.size(e.v, "output-bytes", 1<<40, false)
		case "disk":
			s.DiskBytes, _ = p.size(e.v, "disk", 1<<40, false)
		case "grants":
			p.grants(s, e.v)
		case "secrets":
			items, nodes, _ := p.strList(e.v, "secrets")
			seen := map[string]bool{}
			for i, name := range items {
				if seen[name] {
					p.errorf(nodes[i], "secrets: %q listed twice (expected each secret once)", name)
					continue
				}
				seen[name] = true
				s.Secrets = append(s.Secrets, name)
				p.secretRefs[name] = append(p.secretRefs[name], p.pos(nodes[i]))
			}
		case "fail-if-output":
			s.FailIfOutput, _ = p.bool(e.v, "fail-if-output")
		case "report":
			s.Report, _ = p.str(e.v, "report")
			if s.Report != ReportGoTestJSON && s.Report != ReportTAP {
				p.errorf(e.v, "report: unknown format %q%s", s.Report,
					withExpected(ReportGoTestJSON+" or "+ReportTAP, didYouMean(s.Report, []string{ReportGoTestJSON, ReportTAP})))
			}
		default:
			p.unknownKey(e, "in a step", stepKeys)
			continue
		}
		if e.key == "tool" || e.key == "module" || e.key == "hash" {
			what = append(what, e.key)
			if len(what) == 2 {
				whatNode = e.k
			}
		}
	}
	switch {
	case len(what) == 0:
		p.errorf(r, "step runs nothing (expected one of tool:, module: or hash:)")
	case len(what) > 1:
		p.errorf(whatNode, "step has both %s and %s (expected exactly one of tool:, module:, hash:)", what[0], what[1])
	}
	if len(s.Secrets) > 0 && len(s.Outputs) > 0 {
		// Its outputs could carry a secret to steps, jobs and artifacts
		// that never named it, unmasked.
		p.errorf(r, "step reads secrets and declares outputs (expected one or the other: outputs would carry the secrets to steps that did not name them)")
	}
	if !named {
		s.Name = defaultStepName(s)
		if s.Name != "" && !validJobName(s.Name) {
			p.errorf(r, "step has no name and %q will not do as one (expected name: with letters, digits, _, . and -)", s.Name)
		}
	}
	return s, nameNode
}

// defaultStepName names a step that gives no name after what it runs.
func defaultStepName(s *Step) string {
	switch {
	case s.Tool != "":
		return s.Tool
	case s.Module != "":
		base := s.Module[strings.LastIndexByte(s.Module, '/')+1:]
		return strings.TrimSuffix(base, ".wasm")
	case len(s.Hash) >= 12:
		return s.Hash[:12]
	}
	return ""
}

func (p *jobParser) checkModule(n *yaml.Node, mod string) {
	switch {
	case mod == "":
		p.errorf(n, "module: empty (expected the path of a .wasm file)")
	case !strings.HasSuffix(mod, ".wasm"):
		p.errorf(n, "module %q (expected the path of a .wasm file; name a toolbox tool with tool:)", mod)
	case strings.ContainsFunc(mod, controlRune):
		p.errorf(n, "module: control character in %q (expected a path)", mod)
	default:
		p.noTemplate(n, "module", mod)
	}
}

var reservedEnv = []string{"PWD", "HOME", "TMPDIR"}

func (p *jobParser) env(n *yaml.Node, m *matrixCtx) map[string]string {
	ents, ok := p.mapping(n, "env", "a mapping of variable names to strings")
	if !ok {
		return nil
	}
	env := make(map[string]string, len(ents))
	for _, e := range ents {
		switch {
		case !validEnvName(e.key):
			p.errorf(e.k, "env: %q is not a variable name (expected letters, digits and _, not starting with a digit)", e.key)
			continue
		case slices.Contains(reservedEnv, e.key):
			p.errorf(e.k, "env: %s is set by spindle (expected another name; PWD, HOME and TMPDIR are fixed)", e.key)
			continue
		}
		v, ok := p.str(e.v, "env "+e.key)
		if !ok {
			continue
		}
		p.templated(e.v, "env "+e.key, v, m, nil)
		env[e.key] = v
	}
	return env
}

func (p *jobParser) outputs(n *yaml.Node) []string {
	items, nodes, ok := p.strList(n, "outputs")
	if !ok {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for i, o := range items {
		if err := checkRelPath(o); err != nil {
			p.errorf(nodes[i], "outputs: %v (expected a clean path relative to /out, like report.xml or dist/bin)", err)
			continue
		}
		if strings.Contains(o, "${{") {
			p.noTemplate(nodes[i], "outputs", o)
			continue
		}
		if seen[o] {
			p.errorf(nodes[i], "outputs: %q listed twice (expected each path once)", o)
			continue
		}
		seen[o] = true
		out = append(out, o)
	}
	return out
}

func (p *jobParser) grants(s *Step, n *yaml.Node) {
	ents, ok := p.mapping(n, "grants", "a mapping like {clock: true, random: true}")
	if !ok {
		return
	}
	for _, e := range ents {
		switch e.key {
		case "clock":
			s.Clock, _ = p.bool(e.v, "grants clock")
		case "random":
			s.Random, _ = p.bool(e.v, "grants random")
		default:
			p.unknownKey(e, "in grants", []string{"clock", "random"})
		}
	}
}
