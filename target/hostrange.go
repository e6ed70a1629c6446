package target

import (
	"fmt"
	"strconv"
	"strings"
)

// Bounds on what an inventory may expand to; see the package
// documentation.
const (
	// maxLineHosts bounds the hosts one host line's ranges expand to.
	maxLineHosts = 10000
	// maxInventoryHosts bounds the hosts of one inventory.
	maxInventoryHosts = 100000
)

// expandHosts expands the ranges of a host line's name: web[01:03] is
// web01, web02, web03; several ranges give every combination, the leftmost
// varying slowest. A name without "[" is returned as it is. The names are
// not yet checked as host names.
func expandHosts(spec string) ([]string, error) {
	names := []string{""}
	rest := spec
	for rest != "" {
		i := strings.IndexAny(rest, "[]")
		if i < 0 {
			names = appendEach(names, []string{rest})
			break
		}
		if rest[i] == ']' {
			return nil, fmt.Errorf("host %q: %q without %q", spec, "]", "[")
		}
		j := strings.IndexByte(rest[i:], ']')
		if j < 0 {
			return nil, fmt.Errorf("host %q: %q without %q", spec, "[", "]")
		}
		if i > 0 {
			names = appendEach(names, []string{rest[:i]})
		}
		items, err := expandRange(rest[i+1:i+j], maxLineHosts/len(names))
		if err != nil {
			return nil, fmt.Errorf("host %q: range [%s]: %w", spec, rest[i+1:i+j], err)
		}
		names = appendEach(names, items)
		rest = rest[i+j+1:]
	}
	return names, nil
}

// appendEach returns every prefix followed by every suffix, prefixes
// varying slowest.
func appendEach(prefixes, suffixes []string) []string {
	if len(suffixes) == 1 {
		for i := range prefixes {
			prefixes[i] += suffixes[0]
		}
		return prefixes
	}
	out := make([]string, 0, len(prefixes)*len(suffixes))
	for _, p := range prefixes {
		for _, s := range suffixes {
			out = append(out, p+s)
		}
	}
	return out
}

// expandRange expands START:END or START:END:STEP, numbers or single
// letters, END included. It fails rather than give more than limit items.
func expandRange(spec string, limit int) ([]string, error) {
	parts := strings.Split(spec, ":")
	if len(parts) != 2 && len(parts) != 3 {
		return nil, fmt.Errorf("want [START:END] or [START:END:STEP]")
	}
	start, end := parts[0], parts[1]
	if start == "" || end == "" {
		return nil, fmt.Errorf("empty start or end (want [START:END], as [01:50] or [a:f])")
	}
	step := uint64(1)
	if len(parts) == 3 {
		n, err := strconv.ParseUint(parts[2], 10, 32)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("step %q: want a whole number from 1", parts[2])
		}
		step = n
	}
	tooMany := fmt.Errorf("expands to more than %d hosts, the most one host line may give", maxLineHosts)
	switch {
	case isDigits(start) && isDigits(end):
		if len(start) > 18 || len(end) > 18 {
			return nil, tooMany
		}
		padded := len(start) > 1 && start[0] == '0' || len(end) > 1 && end[0] == '0'
		if padded && len(start) != len(end) {
			return nil, fmt.Errorf("%s and %s differ in width: zero padding needs START and END of one width, as [01:50]", start, end)
		}
		a, _ := strconv.ParseUint(start, 10, 64)
		b, _ := strconv.ParseUint(end, 10, 64)
		if a > b {
			return nil, fmt.Errorf("start %s is after end %s", start, end)
		}
		if (b-a)/step >= uint64(limit) {
			return nil, tooMany
		}
		width := 0
		if padded {
			width = len(start)
		}
		var out []string
		for n := a; n <= b; n += step {
			out = append(out, fmt.Sprintf("%0*d", width, n))
		}
		return out, nil
	case isLetter(start) && isLetter(end) && isLower(start[0]) == isLower(end[0]):
		if start > end {
			return nil, fmt.Errorf("start %s is after end %s", start, end)
		}
		if uint64(end[0]-start[0])/step >= uint64(limit) {
			return nil, tooMany
		}
		var out []string
		for c := uint64(start[0]); c <= uint64(end[0]); c += step {
			out = append(out, string(rune(c)))
		}
		return out, nil
	}
	return nil, fmt.Errorf("want numbers, or single letters of one case, as [01:50] or [a:f]")
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func isLetter(s string) bool {
	return len(s) == 1 && ('a' <= s[0] && s[0] <= 'z' || 'A' <= s[0] && s[0] <= 'Z')
}

func isLower(c byte) bool { return 'a' <= c && c <= 'z' }
