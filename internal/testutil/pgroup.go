package testutil

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ProcessGroup returns the processes of the machine whose process group
// is pgid, whoever their parent is (an orphan reparented to init
// included), zombies too. It returns nil if /proc cannot be read.
func ProcessGroup(pgid int) []Proc {
	names, err := readDirNames("/proc")
	if err != nil {
		return nil
	}
	var out []Proc
	for _, name := range names {
		if _, err := strconv.Atoi(name); err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + name + "/stat")
		if err != nil {
			continue
		}
		end := bytes.LastIndexByte(data, ')')
		if end < 0 {
			continue
		}
		// After "(comm)": state ppid pgrp ...
		f := strings.Fields(string(data[end+1:]))
		if len(f) < 3 || f[2] != strconv.Itoa(pgid) {
			continue
		}
		if p, _, _, err := parseStat(data); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// NoLiveProcessGroup fails t if a live process is left in process group
// pgid after about two seconds. A zombie is dead: an orphan waits for init
// to reap it, which here (PID 1 is not a shell's init) can take a second
// or two.
func NoLiveProcessGroup(t testing.TB, pgid int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		var live []Proc
		for _, p := range ProcessGroup(pgid) {
			if p.State != 'Z' {
				live = append(live, p)
			}
		}
		if len(live) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process group %d still holds %v", pgid, live)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
