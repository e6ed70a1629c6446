package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/target"
	"github.com/spindle-hq/spindle/tools/batteries/inspect"
	"github.com/vmihailenco/msgpack/v5"
)

const factsUsage = `usage: spindle facts -t PATTERN [flags]

Gathers each target's facts, as Ansible's setup module does: hostname,
OS release, kernel, architecture, CPUs, memory, disks, mounts, network
interfaces and their addresses, uptime, load and users. It runs the facts
battery (a wasm module shipped with spindle, bin/batteries/facts.wasm,
pinned by its hash) with read-only mounts of the target's /etc, /proc,
/sys and /usr/lib (where /etc/os-release usually points) and nothing
else: no exec, no clock, no network. A fact it cannot read is empty and
named, with why, under "missing"; it never fails the target.

flags:
` + inspectUsage + connUsage + `
output: a table, a row per target as it finishes (TARGET, HOSTNAME, OS,
KERNEL, ARCH, CPUS, MEMORY, UPTIME), each fact that could not be had on a
line below it; FAILED or UNREACHABLE rows as spindle sh prints them. Then
a recap, one line per target: facts are never "changed". With --json, one
object per target per line instead: {"target", "status" (ok, failed or
unreachable), "facts": {...}, "error": {...}}; the fields of "facts" and
the files they come from are in tools/batteries/inspect/doc.go.

exit status: 0 every target ok; 1 the battery failed somewhere; 3 a
target could not be reached (and none failed); 2 bad usage; 130
interrupted.
`

// factsLine is one target's outcome in --json mode.
type factsLine struct {
	Target string         `json:"target"`
	Status string         `json:"status"` // "ok", "failed" or "unreachable"
	Facts  *inspect.Facts `json:"facts,omitempty"`
	Error  *runError      `json:"error,omitempty"`
}

func parseFactsArgs(args []string) (*inspectOpts, error) {
	o := &inspectOpts{}
	fs := flag.NewFlagSet("facts", flag.ContinueOnError)
	o.register(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return nil, err
	}
	if err := errNoArgs(pos); err != nil {
		return nil, err
	}
	if err := o.check(); err != nil {
		return nil, err
	}
	return o, nil
}

// factsColumns are the table's columns after TARGET, with their widths
// (a longer value widens its cell, never cut).
var factsColumns = []struct {
	name  string
	width int
}{{"HOSTNAME", 16}, {"OS", 30}, {"KERNEL", 20}, {"ARCH", 8}, {"CPUS", 4}, {"MEMORY", 9}, {"UPTIME", 0}}

func cmdFacts(args []string, stdout, stderr io.Writer) int {
	o, err := parseFactsArgs(args)
	if isHelp(err) {
		fmt.Fprint(stdout, factsUsage)
		return 0
	}
	if err != nil {
		return usageError(stderr, "facts", err)
	}
	input, err := msgpack.Marshal(struct{}{})
	if err != nil {
		fmt.Fprintf(stderr, "spindle facts: %v\n", err)
		return 1
	}
	var mounts []spindle.Mount
	for _, d := range inspect.FactsMounts {
		mounts = append(mounts, spindle.Mount{Host: d, Guest: d, ReadOnly: true})
	}
	width := 0
	header := func(names []string) {
		for _, n := range names {
			width = max(width, len(escapeLine(n)))
		}
		if o.asJSON {
			return
		}
		cells := []string{"TARGET"}
		for _, c := range factsColumns {
			cells = append(cells, c.name)
		}
		printRow(stdout, width, cells)
	}
	each := func(ctx context.Context, fl *spindle.Fleet, hash string, nt target.Named, mask func(string) string) func() string {
		t := spindle.Task{Module: hash, Task: "facts", Input: input, Mounts: mounts,
			Limits: spindle.Limits{Timeout: o.timeout}}
		var f inspect.Facts
		status, e := runBattery(ctx, fl, nt, t, &f, o.conn.sshConfig)
		l := factsLine{Target: nt.Name, Status: status, Error: e}
		if e != nil {
			e.Message = mask(e.Message)
		} else {
			l.Facts = &f
		}
		return func() string {
			if o.asJSON {
				b, _ := json.Marshal(l)
				fmt.Fprintf(stdout, "%s\n", jsonSafe(b))
				return l.Status
			}
			printFactsRow(stdout, width, l)
			return l.Status
		}
	}
	return fanOut(o, "facts", "facts", stdout, stderr, header, each)
}

// printRow writes cells padded to the columns' widths, TARGET's first.
func printRow(w io.Writer, targetWidth int, cells []string) {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%-*s", targetWidth, cells[0])
	for i, c := range cells[1:] {
		sb.WriteString("  ")
		if i < len(factsColumns)-1 {
			fmt.Fprintf(&sb, "%-*s", factsColumns[i].width, c)
		} else {
			sb.WriteString(c)
		}
	}
	fmt.Fprintln(w, strings.TrimRight(sb.String(), " "))
}

// printFactsRow writes one target's row of the table, and the facts that
// are missing below it. Everything from the target is escaped.
func printFactsRow(w io.Writer, width int, l factsLine) {
	if l.Status != "ok" {
		printFailure(w, l.Target, l.Status, l.Error)
		return
	}
	f := l.Facts
	osName := f.OS.PrettyName
	if osName == "" {
		osName = strings.TrimSpace(f.OS.Name + " " + f.OS.VersionID)
	}
	cells := []string{l.Target, f.Hostname, osName, f.Kernel.Release, f.Arch, "", "", ""}
	if f.CPU.Count > 0 {
		cells[5] = strconv.Itoa(f.CPU.Count)
	}
	if f.Memory.TotalBytes > 0 {
		cells[6] = humanBytes(f.Memory.TotalBytes)
	}
	if f.UptimeSeconds > 0 {
		cells[7] = humanDuration(time.Duration(f.UptimeSeconds * float64(time.Second)))
	}
	for i, c := range cells {
		if c == "" {
			c = "-"
		}
		cells[i] = escapeLine(c)
	}
	printRow(w, width, cells)
	for _, m := range f.Missing {
		fmt.Fprintf(w, "    missing %s: %s\n", escapeLine(m.Field), escapeLine(m.Reason))
	}
}

// humanBytes is n in the largest binary unit under which it is at least 1,
// with one decimal.
func humanBytes(n uint64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	v, u := float64(n), 0
	for v >= 1024 && u < len(units)-1 {
		v /= 1024
		u++
	}
	if u == 0 {
		return fmt.Sprintf("%d B", n)
	}
	return fmt.Sprintf("%.1f %s", v, units[u])
}

// humanDuration is d as days, hours and minutes (3d4h5m), or seconds
// under a minute.
func humanDuration(d time.Duration) string {
	if d < time.Minute {
		return d.Round(time.Second).String()
	}
	m := int64(d / time.Minute)
	days, hours, mins := m/(24*60), m/60%24, m%60
	switch {
	case days > 0:
		return fmt.Sprintf("%dd%dh%dm", days, hours, mins)
	case hours > 0:
		return fmt.Sprintf("%dh%dm", hours, mins)
	}
	return fmt.Sprintf("%dm", mins)
}
