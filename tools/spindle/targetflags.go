package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/spindle-hq/spindle/target"
)

// targetFlags are the flags that choose where a battery verb (sh, copy,
// facts, stat) runs: -t, -i, -l, --become and --become-user.
type targetFlags struct {
	targets    []string
	inventory  string
	limits     []string
	become     bool
	becomeUser string
}

// errNoTargets is a battery verb's error for a command line with no -t.
var errNoTargets = errors.New("name the targets with -t (-t local for this machine, -t all for every host of the --inventory)")

func (o *targetFlags) register(fs *flag.FlagSet) {
	for _, n := range []string{"t", "target"} {
		fs.Func(n, "", func(v string) error { o.targets = append(o.targets, v); return nil })
	}
	for _, n := range []string{"i", "inventory"} {
		fs.StringVar(&o.inventory, n, "", "")
	}
	for _, n := range []string{"l", "limit"} {
		fs.Func(n, "", func(v string) error { o.limits = append(o.limits, v); return nil })
	}
	fs.BoolVar(&o.become, "become", false, "")
	fs.StringVar(&o.becomeUser, "become-user", "", "")
}

// becomeDefaults makes --become-user imply --become, and --become alone
// mean root. Called once the flags are parsed.
func (o *targetFlags) becomeDefaults() {
	if o.becomeUser != "" {
		o.become = true
	}
	if o.become && o.becomeUser == "" {
		o.becomeUser = "root"
	}
}

// resolve expands the flags into the chains to run on: the -t patterns
// against the inventory (selectTargets), each chain once however it was
// spelled (dedupeTargets: two spellings of one chain would race on one
// host), and with --become a sudo hop after each. When there is nothing
// to run, it says why on stderr and returns done with the verb's exit
// status: 0 when no target matched, exitUsage for a bad flag.
func (o *targetFlags) resolve(verb, sshConfig string, stderr io.Writer) (targets []target.Named, code int, done bool) {
	targets, err := selectTargets(&runOpts{targets: o.targets, inventory: o.inventory, limits: o.limits})
	if err != nil {
		fmt.Fprintf(stderr, "spindle %s: %v\n", verb, err)
		return nil, exitUsage, true
	}
	targets, note := dedupeTargets(targets, sshConfig)
	if note != "" {
		fmt.Fprintf(stderr, "spindle %s: %s\n", verb, note)
	}
	if len(targets) == 0 {
		fmt.Fprintf(stderr, "spindle %s: no targets matched; nothing to do\n", verb)
		return nil, 0, true
	}
	if o.become {
		sudo, err := target.Parse("sudo://" + o.becomeUser)
		if err != nil {
			return nil, usageError(stderr, verb, fmt.Errorf("--become-user %q: %w", o.becomeUser, err)), true
		}
		for i := range targets {
			targets[i].Target = append(append(target.Target{}, targets[i].Target...), sudo...)
		}
	}
	return targets, 0, false
}
