package main

import (
	"strings"
	"testing"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/internal/testutil"
)

func TestParseDir(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want spindle.Mount
		err  string
	}{
		{v: "/srv/data", want: spindle.Mount{Host: "/srv/data", Guest: "/srv/data"}},
		{v: "/srv/a:b", want: spindle.Mount{Host: "/srv/a:b", Guest: "/srv/a:b"}},
		{v: "/srv/a:b::/data", want: spindle.Mount{Host: "/srv/a:b", Guest: "/data"}},
		{v: "/srv/x::/data:ro", want: spindle.Mount{Host: "/srv/x", Guest: "/data", ReadOnly: true}},
		{v: "/srv/x::data", err: "absolute and clean"},
		{v: "/srv/x::/a/../b", err: "absolute and clean"},
		{v: "::/data", err: "want HOST"},
	} {
		got, err := parseDir(tc.v)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("parseDir(%q) = %+v, %v; want an error with %q", tc.v, got, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("parseDir(%q) = %+v, %v; want %+v", tc.v, got, err, tc.want)
		}
	}
	if _, err := parseRunArgs([]string{"--dir", "/a", "--mount", "/b:/a", "m.wasm"}); err == nil || !strings.Contains(err.Error(), "already mounted") {
		t.Errorf("--dir /a then --mount /b:/a = %v, want already mounted", err)
	}
}

func TestCommandDefaults(t *testing.T) {
	o := &runOpts{module: "dir/prog.wasm", env: map[string]string{"KEEP": "flag"}, envInherit: true}
	commandDefaults(o, []string{"KEEP=env", "HOME=/root", "=odd", "NOEQ"})
	if o.task != "prog.wasm" || !o.devNull || o.env["KEEP"] != "flag" || o.env["HOME"] != "/root" || len(o.env) != 2 {
		t.Errorf("commandDefaults = task %q devNull %v env %v; want prog.wasm, true, KEEP=flag HOME=/root", o.task, o.devNull, o.env)
	}
	o = &runOpts{module: "p.wasm", env: map[string]string{}, mounts: []spindle.Mount{{Host: "/x", Guest: "/dev"}}}
	commandDefaults(o, []string{"HOME=/root"})
	if o.devNull || len(o.env) != 0 {
		t.Errorf("with a mount at /dev and no --env-inherit: devNull %v env %v; want false, none", o.devNull, o.env)
	}
}

// TestRunEnvInherit: --env-inherit passes this process's environment to a
// command, --env wins over it, and without it the command sees none.
func TestRunEnvInherit(t *testing.T) {
	testutil.VerifyNone(t)
	cmd := testutil.BuildWasm(t, "examples/wasm/cmd", false)
	t.Setenv("GREETING", "inherited")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--env-inherit"}, "GREETING=inherited\n"},
		{[]string{"--env-inherit", "--env", "GREETING=flag"}, "GREETING=flag\n"},
		{nil, "GREETING=\n"},
	} {
		code, out, errOut := cli(t, append(append([]string{"run"}, tc.args...), cmd)...)
		if code != 0 || !strings.Contains(out, tc.want) {
			t.Errorf("spindle run %v cmd.wasm = %d, stdout %q; want 0 and %q\n%s", tc.args, code, out, tc.want, errOut)
		}
	}
}
