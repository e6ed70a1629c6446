package main

import (
	"fmt"
	"strconv"
	"strings"
)

// maxOutputBytes bounds --output-bytes. A reactor's output comes back in
// one reply, and a message is at most wire.DefaultMaxMessageSize (128 MiB):
// past half of that the task would fail in the tree, not at its limit.
const maxOutputBytes = 64 << 20

var sizeUnits = []struct {
	suffix string
	shift  uint
}{{"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"K", 10}, {"M", 20}, {"G", 30}}

// parseSize reads a byte count for flag: a plain number of bytes, or a
// whole number with a K, M or G (or KiB, MiB, GiB) suffix, all powers of
// 1024. It must be from 1 to max.
func parseSize(flag, v string, max int64) (int64, error) {
	bad := fmt.Errorf("%s %q: want a number of bytes, or one with a KiB, MiB or GiB suffix (as 64KiB), from 1 to %s", flag, v, formatSize(max))
	num, shift := v, uint(0)
	for _, u := range sizeUnits {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			num, shift = n, u.shift
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || num == "" || num[0] == '+' || num[0] == '-' {
		return 0, bad
	}
	if n < 1 || n > max>>shift {
		return 0, bad
	}
	return n << shift, nil
}

// formatSize writes n bytes with the largest binary unit that divides it.
func formatSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "GiB"
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "KiB"
	}
	return strconv.FormatInt(n, 10)
}
