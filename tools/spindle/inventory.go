package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/spindle-hq/spindle/host"
	"github.com/spindle-hq/spindle/target"
	"github.com/vmihailenco/msgpack/v5"
)

// This file holds what spindle run does with an inventory: -t patterns,
// --limit, --list-hosts, the retry file and the hosts' variables.

// selectTargets expands the -t flags into named targets, in the order
// given, each name once (-t web -t web1 runs web1 once), then keeps only
// those every --limit names.
func selectTargets(o *runOpts) ([]target.Named, error) {
	var inv *target.Inventory
	if o.inventory != "" {
		var err error
		if inv, err = target.LoadInventory(o.inventory); err != nil {
			return nil, err
		}
	}
	out, err := resolveTargets(o.targets, inv)
	if err != nil {
		return nil, err
	}
	for _, l := range o.limits {
		keep, err := limitNames(l, inv)
		if err != nil {
			return nil, err
		}
		// A limit of only exclusions ("!web3") keeps the rest, target
		// chains too; any other keeps only what it names.
		chains := !slices.ContainsFunc(strings.FieldsFunc(l, func(r rune) bool { return r == ',' || r == ':' }),
			func(term string) bool { return term[0] != '!' })
		out = slices.DeleteFunc(out, func(nt target.Named) bool {
			return !keep[nt.Name] && !(chains && target.IsChain(nt.Name) && !strings.HasPrefix(l, "@"))
		})
	}
	return out, nil
}

// resolveTargets expands each spec: a target chain (one that starts like
// a hop: local, local:NAME, METHOD://...) as it is, named by the spec;
// anything else as a host pattern of the inventory.
func resolveTargets(specs []string, inv *target.Inventory) ([]target.Named, error) {
	var out []target.Named
	seen := map[string]bool{}
	add := func(nts ...target.Named) {
		for _, nt := range nts {
			if !seen[nt.Name] { // -t web -t web1: web1 once
				seen[nt.Name] = true
				out = append(out, nt)
			}
		}
	}
	for _, spec := range specs {
		if target.IsChain(spec) || inv == nil {
			t, err := target.Parse(spec)
			if err != nil {
				if !target.IsChain(spec) && !methodTypo(spec) {
					err = fmt.Errorf("%w (a host or group name needs --inventory)", err)
				}
				return nil, err
			}
			add(target.Named{Name: spec, Target: t})
			continue
		}
		named, err := inv.Select(spec)
		if err != nil {
			if methodTypo(spec) {
				_, err = target.Parse(spec) // "ssh:web1": say how a chain is written
			}
			return nil, err
		}
		add(named...)
	}
	return out, nil
}

// methodTypo reports whether spec starts "METHOD:" without "//", as
// ssh:web1: a target chain written wrong rather than a pattern.
func methodTypo(spec string) bool {
	m, _, ok := strings.Cut(spec, ":")
	return ok && slices.Contains([]string{"ssh", "sudo", "docker", "podman", "kubectl"}, m)
}

// limitNames is the set of target names one --limit keeps: those listed
// in the file for @FILE, else those its pattern (or target chain)
// resolves to.
func limitNames(l string, inv *target.Inventory) (map[string]bool, error) {
	keep := map[string]bool{}
	if file, ok := strings.CutPrefix(l, "@"); ok {
		names, err := readRetryFile(file)
		if err != nil {
			return nil, fmt.Errorf("--limit %s: %w", l, err)
		}
		for _, n := range names {
			keep[n] = true
		}
		return keep, nil
	}
	if inv == nil && !target.IsChain(l) {
		return nil, fmt.Errorf("--limit %s: a host pattern needs --inventory (or give @FILE, a file of names)", l)
	}
	named, err := resolveTargets([]string{l}, inv)
	if err != nil {
		return nil, fmt.Errorf("--limit: %w", err)
	}
	for _, nt := range named {
		keep[nt.Name] = true
	}
	return keep, nil
}

// maxRetryNames bounds the names a retry file may list, as the inventory
// bounds its hosts.
const maxRetryNames = 100000

// readRetryFile reads target names, one a line; blank lines and lines
// starting with "#" are skipped.
func readRetryFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if len(names) == maxRetryNames {
			return nil, fmt.Errorf("more than %d names", maxRetryNames)
		}
		names = append(names, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", len(names)+1, err)
	}
	return names, nil
}

// writeRetryFile writes the names of the targets that failed or were
// unreachable, in run order, one a line, and says where on stderr; after a
// run with no failures the file is left empty, so that --limit @FILE then
// runs nothing. The file is replaced whole (a rename), so a run that
// reads it with --limit @FILE may name it too.
func writeRetryFile(path string, lines []runLine, stderr io.Writer) {
	var b strings.Builder
	n := 0
	for _, l := range lines {
		var r recap
		if r.add(l); r.ok == 0 {
			b.WriteString(l.Target + "\n")
			n++
		}
	}
	if err := replaceFile(path, []byte(b.String())); err != nil {
		fmt.Fprintf(stderr, "spindle run: --retry-file: %v\n", err)
		return
	}
	if n > 0 {
		fmt.Fprintf(stderr, "spindle run: %d failed or unreachable %s listed in %s; rerun with --limit @%s\n",
			n, plural(n, "target", "targets"), escapeLine(path), escapeLine(path))
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// hostLine is one host of --list-hosts --json.
type hostLine struct {
	Name   string            `json:"name"`
	Target string            `json:"target"`
	Vars   map[string]string `json:"vars,omitempty"`
}

// listHosts prints what -t and --limit select, without starting anything:
// a name and its target chain a line (with -v, its variables too), or
// JSON lines with --json.
func listHosts(o *runOpts, stdout, stderr io.Writer) int {
	targets, err := selectTargets(o)
	if err != nil {
		fmt.Fprintf(stderr, "spindle run: %v\n", err)
		return exitUsage
	}
	width := 0
	for _, nt := range targets {
		width = max(width, len(nt.Name))
	}
	w := bufio.NewWriter(stdout)
	for _, nt := range targets {
		if o.asJSON {
			b, _ := json.Marshal(hostLine{Name: nt.Name, Target: nt.Target.String(), Vars: nt.Vars})
			fmt.Fprintf(w, "%s\n", jsonSafe(b))
			continue
		}
		line := fmt.Sprintf("%-*s  %s", width, nt.Name, nt.Target)
		if o.conn.verbosity > 0 {
			for _, k := range slices.Sorted(maps.Keys(nt.Vars)) {
				line += " " + k + "=" + quoteVar(nt.Vars[k])
			}
		}
		fmt.Fprintln(w, escapeLine(line))
	}
	if err := w.Flush(); err != nil {
		return 1
	}
	if len(targets) == 0 {
		fmt.Fprintln(stderr, "spindle run: no targets matched")
	}
	return 0
}

// quoteVar quotes a variable's value for --list-hosts when it would not
// read back as one field.
func quoteVar(v string) string {
	if v == "" || strings.ContainsAny(v, " \t\"'#") {
		return strconv.Quote(v)
	}
	return v
}

// taskVars is what a target's variables make of a task's env and input:
// a command module's environment is the variables, --env overriding them;
// a reactor's --input, when it is a JSON object, gets each variable as a
// field it does not have itself. A reactor's env, any other input, and
// targets without variables are left as they are.
type taskVars struct {
	env   map[string]string
	input []byte
}

// varsFor computes each target's env and input (see taskVars). inputObj
// is the decoded --input when it is a JSON object, else nil.
func varsFor(targets []target.Named, wasm []byte, env map[string]string, input []byte, inputObj map[string]any) ([]taskVars, error) {
	out := make([]taskVars, len(targets))
	command := false
	if slices.ContainsFunc(targets, func(nt target.Named) bool { return len(nt.Vars) > 0 }) {
		info, err := host.Describe(wasm)
		if err != nil {
			return nil, err
		}
		command = info.Kind == host.Command
	}
	for i, nt := range targets {
		out[i] = taskVars{env: env, input: input}
		switch {
		case len(nt.Vars) == 0:
		case command:
			e := maps.Clone(nt.Vars)
			maps.Copy(e, env)
			out[i].env = e
		case inputObj != nil:
			in := maps.Clone(inputObj)
			for k, v := range nt.Vars {
				if _, ok := in[k]; !ok {
					in[k] = v
				}
			}
			b, err := msgpack.Marshal(in)
			if err != nil {
				return nil, fmt.Errorf("--input for %s: %w", nt.Name, err)
			}
			out[i].input = b
		}
	}
	return out, nil
}
