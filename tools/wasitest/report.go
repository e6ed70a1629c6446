package main

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
)

// knownList is the known failures: a test ID's reason.
type knownList map[string]string

// readKnown reads a known-failures file: "ID reason" a line, blank lines
// and lines starting with # ignored. Every entry needs a reason.
func readKnown(p string) (knownList, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	list := knownList{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, reason, _ := strings.Cut(line, " ")
		reason = strings.TrimSpace(reason)
		switch {
		case reason == "":
			return nil, fmt.Errorf("%s:%d: %s has no reason: write why it cannot pass after its ID", p, n, id)
		case list[id] != "":
			return nil, fmt.Errorf("%s:%d: %s is listed twice", p, n, id)
		}
		list[id] = reason
	}
	return list, sc.Err()
}

// report prints the failures, each suite's counts and the totals, and
// returns the exit status.
func report(w io.Writer, suites []suite, results map[string]result, known knownList, verbose bool) int {
	status := exitOK
	passed, failed := 0, 0
	seen := map[string]bool{}
	for _, s := range suites {
		sp, sf, sk := 0, 0, 0
		for _, t := range s.Tests {
			seen[t.ID] = true
			res := results[t.ID]
			reason, listed := known[t.ID]
			switch {
			case res.Passed && listed:
				sp++
				status = exitFail
				fmt.Fprintf(w, "PASS %s: listed as a known failure (%s): take it off the list\n", t.ID, reason)
			case res.Passed:
				sp++
				if verbose {
					fmt.Fprintf(w, "ok   %s\n", t.ID)
				}
			case listed:
				sf++
				sk++
				fmt.Fprintf(w, "known %s: %s (listed: %s)\n", t.ID, res.Why, reason)
			default:
				sf++
				status = exitFail
				fmt.Fprintf(w, "FAIL %s: %s\n", t.ID, res.Why)
			}
		}
		line := fmt.Sprintf("%s: %d passed, %d failed", s.Name, sp, sf)
		if sk > 0 {
			line += fmt.Sprintf(" (%d known)", sk)
		}
		fmt.Fprintln(w, line)
		passed += sp
		failed += sf
	}
	for _, id := range slices.Sorted(maps.Keys(known)) {
		if !seen[id] {
			status = exitFail
			fmt.Fprintf(w, "listed as a known failure, but no such test: %s\n", id)
		}
	}
	fmt.Fprintf(w, "%d passed, %d failed\n", passed, failed)
	return status
}
