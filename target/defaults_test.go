package target

import (
	"testing"
	"time"
)

func TestWithDefaults(t *testing.T) {
	d := Defaults{ConnectTimeout: 7 * time.Second, HostKeyCheck: "accept-new", SSHConfig: "/cfg"}
	tests := []struct {
		in, want string
	}{
		{"local", "local?timeout=7s"},
		{"ssh://web1", "ssh://web1?timeout=7s&hostkey=accept-new&config=/cfg"},
		// The target's own settings win.
		{"ssh://web1?timeout=2s&hostkey=yes&config=/mine", "ssh://web1?timeout=2s&hostkey=yes&config=/mine"},
		{"sudo://root?timeout=1m", "sudo://root?timeout=1m0s"},
		// Hops on the master's machine get the config file; hops behind
		// another machine do not (the path names a file here).
		{"ssh://bastion/ssh://web1", "ssh://bastion?timeout=7s&hostkey=accept-new&config=/cfg/ssh://web1?timeout=7s&hostkey=accept-new"},
		{"sudo://root/ssh://web1", "sudo://root?timeout=7s/ssh://web1?timeout=7s&hostkey=accept-new&config=/cfg"},
		{"local:a/ssh://web1/sudo://", "local:a?timeout=7s/ssh://web1?timeout=7s&hostkey=accept-new&config=/cfg/sudo://root?timeout=7s"},
		{"docker://app/ssh://web1", "docker://app?timeout=7s/ssh://web1?timeout=7s&hostkey=accept-new"},
		{"ssh://bastion/ssh://web1?config=/there", "ssh://bastion?timeout=7s&hostkey=accept-new&config=/cfg/ssh://web1?timeout=7s&hostkey=accept-new&config=/there"},
	}
	for _, tt := range tests {
		in, err := Parse(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		before := in.String()
		got := in.WithDefaults(d)
		if got.String() != tt.want {
			t.Errorf("Parse(%q).WithDefaults(%+v) = %s, want %s", tt.in, d, got, tt.want)
		}
		if in.String() != before {
			t.Errorf("WithDefaults changed its receiver: %s, was %s", in, before)
		}
		if back, err := Parse(got.String()); err != nil || back.String() != got.String() {
			t.Errorf("Parse(%s) = %v, %v; want it back", got, back, err)
		}
		if zero := in.WithDefaults(Defaults{}); zero.String() != before {
			t.Errorf("Parse(%q).WithDefaults(zero) = %s, want it unchanged", tt.in, zero)
		}
	}
	// The copy shares no option slice with the original.
	in, _ := Parse("ssh://web1?opt=A=b")
	got := in.WithDefaults(d)
	got[0].SSHOptions[0] = "X=y"
	if in[0].SSHOptions[0] != "A=b" {
		t.Errorf("WithDefaults shares SSHOptions with its receiver")
	}
}

func TestStartedRemotely(t *testing.T) {
	tests := []struct {
		in   string
		want []bool
	}{
		{"local", []bool{false}},
		{"local:a/sudo://root/ssh://h/local", []bool{false, false, false, true}},
		{"ssh://a/ssh://b", []bool{false, true}},
		{"kubectl://p/sudo://", []bool{false, true}},
		{"podman://c/local", []bool{false, true}},
	}
	for _, tt := range tests {
		tg, err := Parse(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		for i, want := range tt.want {
			if got := tg.StartedRemotely(i); got != want {
				t.Errorf("Parse(%q).StartedRemotely(%d) = %v, want %v", tt.in, i, got, want)
			}
		}
	}
}
