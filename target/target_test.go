package target

import (
	"errors"
	"go/build"
	"reflect"
	"strings"
	"testing"
	"time"
)

// ssh, sudo and so on build the hops Parse should return, with the
// defaults Parse fills in.
func ssh(user, host string, port int) Hop {
	return Hop{Method: "ssh", Name: "ssh." + host, User: user, Host: host, Port: port, Batch: true}
}

func sudo(user string) Hop { return Hop{Method: "sudo", Name: "sudo." + user, User: user} }

func local(name string) Hop { return Hop{Method: "local", Name: name} }

func with(h Hop, f func(*Hop)) Hop { f(&h); return h }

var parseTests = []struct {
	in   string
	want Target
	// canon is t.String() when it differs from in.
	canon string
}{
	// local
	{in: "local", want: Target{local("")}},
	{in: "local:a", want: Target{local("a")}},
	{in: "local?name=a", want: Target{local("a")}, canon: "local:a"},
	{in: "local:a/local:b", want: Target{local("a"), local("b")}},
	{in: "local/local", want: Target{local(""), local("")}},
	{in: "local:a?timeout=5s", want: Target{with(local("a"), func(h *Hop) { h.ConnectTimeout = 5 * time.Second })}},
	{in: "local://alice", want: Target{{Method: "local", Name: "local.alice", User: "alice"}}},
	{in: "local://alice?name=al", want: Target{{Method: "local", Name: "al", User: "alice"}}},
	{in: "local:a:b", want: Target{local("a:b")}},
	{in: "local:localhost", want: Target{local("localhost")}},

	// ssh
	{in: "ssh://web1", want: Target{ssh("", "web1", 0)}},
	{in: "ssh://admin@web1:2222", want: Target{ssh("admin", "web1", 2222)}},
	{in: "ssh://10.0.0.1:22", want: Target{ssh("", "10.0.0.1", 22)}},
	{in: "ssh://root@[::1]:2200", want: Target{ssh("root", "::1", 2200)}},
	{in: "ssh://[fe80::1%25eth0]", want: Target{ssh("", "fe80::1%eth0", 0)}},
	{in: "ssh://alice%40corp@web1", want: Target{ssh("alice@corp", "web1", 0)}},
	{in: "ssh://alice@corp@web1", want: Target{ssh("alice@corp", "web1", 0)}, canon: "ssh://alice%40corp@web1"},
	{in: "ssh://web1:022", want: Target{ssh("", "web1", 22)}, canon: "ssh://web1:22"},
	{in: "ssh://web1?identity=/home/me/.ssh/id_ed25519", want: Target{with(ssh("", "web1", 0), func(h *Hop) { h.Identity = "/home/me/.ssh/id_ed25519" })}},
	{in: "ssh://web1?identity=/my%20keys/id%26x", want: Target{with(ssh("", "web1", 0), func(h *Hop) { h.Identity = "/my keys/id&x" })}},
	{in: "ssh://web1?hostkey=yes", want: Target{with(ssh("", "web1", 0), func(h *Hop) { h.HostKeyCheck = "yes" })}},
	{in: "ssh://web1?hostkey=no", want: Target{with(ssh("", "web1", 0), func(h *Hop) { h.HostKeyCheck = "no" })}},
	{in: "ssh://web1?hostkey=accept-new", want: Target{with(ssh("", "web1", 0), func(h *Hop) { h.HostKeyCheck = "accept-new" })}},
	{in: "ssh://web1?opt=ProxyJump=j1&opt=Compression=yes", want: Target{with(ssh("", "web1", 0), func(h *Hop) {
		h.SSHOptions = []string{"ProxyJump=j1", "Compression=yes"}
	})}},
	{in: "ssh://web1?opt=UserKnownHostsFile=/etc/kh", want: Target{with(ssh("", "web1", 0), func(h *Hop) { h.SSHOptions = []string{"UserKnownHostsFile=/etc/kh"} })}},
	{in: "ssh://web1?config=/etc/ssh/work_config", want: Target{with(ssh("", "web1", 0), func(h *Hop) { h.SSHConfig = "/etc/ssh/work_config" })}},
	{in: "ssh://web1?config=/usr%2Flocal/cfg", want: Target{with(ssh("", "web1", 0), func(h *Hop) { h.SSHConfig = "/usr/local/cfg" })}},
	{in: "ssh://web1?keepalive=30", want: Target{with(ssh("", "web1", 0), func(h *Hop) { h.KeepAlive = 30 * time.Second })}},
	{in: "ssh://web1?batch=no", want: Target{with(ssh("", "web1", 0), func(h *Hop) { h.Batch = false })}},
	{in: "ssh://web1?batch=yes", want: Target{ssh("", "web1", 0)}, canon: "ssh://web1"},
	{in: "ssh://web1?name=front&timeout=1m30s", want: Target{with(ssh("", "web1", 0), func(h *Hop) {
		h.Name, h.ConnectTimeout = "front", 90*time.Second
	})}},
	{in: "ssh://web1?name=ssh.web1", want: Target{ssh("", "web1", 0)}, canon: "ssh://web1"},
	{
		in: "ssh://u@h:1?batch=no&keepalive=5&opt=A=b&hostkey=no&identity=/i&timeout=2s&name=n",
		want: Target{{Method: "ssh", Name: "n", User: "u", Host: "h", Port: 1, Identity: "/i", HostKeyCheck: "no",
			SSHOptions: []string{"A=b"}, KeepAlive: 5 * time.Second, ConnectTimeout: 2 * time.Second}},
		canon: "ssh://u@h:1?name=n&timeout=2s&identity=/i&hostkey=no&opt=A=b&keepalive=5&batch=no",
	},

	// sudo
	{in: "sudo://", want: Target{sudo("root")}, canon: "sudo://root"},
	{in: "sudo://root", want: Target{sudo("root")}},
	{in: "sudo://postgres?timeout=3s", want: Target{with(sudo("postgres"), func(h *Hop) { h.ConnectTimeout = 3 * time.Second })}},
	{in: "sudo://?name=admin", want: Target{with(sudo("root"), func(h *Hop) { h.Name = "admin" })}, canon: "sudo://root?name=admin"},

	// docker, podman
	{in: "docker://app", want: Target{{Method: "docker", Name: "docker.app", Container: "app"}}},
	{in: "docker://www-data@app?name=d", want: Target{{Method: "docker", Name: "d", User: "www-data", Container: "app"}}},
	{in: "podman://db", want: Target{{Method: "podman", Name: "podman.db", Container: "db"}}},
	{in: "podman://0@db?timeout=10s", want: Target{{Method: "podman", Name: "podman.db", User: "0", Container: "db", ConnectTimeout: 10 * time.Second}}},

	// kubectl
	{in: "kubectl://api", want: Target{{Method: "kubectl", Name: "kubectl.api", Pod: "api"}}},
	{in: "kubectl://prod/api", want: Target{{Method: "kubectl", Name: "kubectl.api", Namespace: "prod", Pod: "api"}}},
	{in: "kubectl://prod/api:app?context=eu", want: Target{{Method: "kubectl", Name: "kubectl.api", Namespace: "prod", Pod: "api", Container: "app", KubeContext: "eu"}}},
	{in: "kubectl://api:app", want: Target{{Method: "kubectl", Name: "kubectl.api", Pod: "api", Container: "app"}}},
	{in: "kubectl://local", want: Target{{Method: "kubectl", Name: "kubectl.local", Pod: "local"}}},
	{in: "kubectl://prod/%6Cocal", want: Target{{Method: "kubectl", Name: "kubectl.local", Namespace: "prod", Pod: "local"}}},

	// chains
	{in: "ssh://bastion/ssh://admin@web1:2222?identity=/k/id/sudo://root", want: Target{
		ssh("", "bastion", 0),
		with(ssh("admin", "web1", 2222), func(h *Hop) { h.Identity = "/k/id" }),
		sudo("root"),
	}},
	{in: "ssh://web1/local:w", want: Target{ssh("", "web1", 0), local("w")}},
	{in: "ssh://web1/local", want: Target{ssh("", "web1", 0), local("")}},
	{in: "ssh://web1/local?timeout=1s", want: Target{ssh("", "web1", 0), with(local(""), func(h *Hop) { h.ConnectTimeout = time.Second })}},
	{in: "local:a/ssh://web1/docker://app/sudo://", want: Target{local("a"), ssh("", "web1", 0),
		{Method: "docker", Name: "docker.app", Container: "app"}, sudo("root")}, canon: "local:a/ssh://web1/docker://app/sudo://root"},
	{in: "kubectl://prod/api:app/local:w/podman://c", want: Target{
		{Method: "kubectl", Name: "kubectl.api", Namespace: "prod", Pod: "api", Container: "app"}, local("w"),
		{Method: "podman", Name: "podman.c", Container: "c"}}},

	// The "/" rule: only a "/" followed by a hop start starts a hop.
	{in: "ssh://a?identity=/k/ssh/id/sudo://", want: Target{with(ssh("", "a", 0), func(h *Hop) { h.Identity = "/k/ssh/id" }), sudo("root")},
		canon: "ssh://a?identity=/k/ssh/id/sudo://root"},
	{in: "ssh://a?identity=/k/sudo:/x/localhost/docker/id", want: Target{with(ssh("", "a", 0), func(h *Hop) { h.Identity = "/k/sudo:/x/localhost/docker/id" })}},
	{in: "ssh://a?identity=/usr%2Flocal/id", want: Target{with(ssh("", "a", 0), func(h *Hop) { h.Identity = "/usr/local/id" })}},
	{in: "ssh://a?identity=/x%2Fssh://y", want: Target{with(ssh("", "a", 0), func(h *Hop) { h.Identity = "/x/ssh://y" })}},
	{in: "ssh://a?identity=/k//sudo://", want: Target{with(ssh("", "a", 0), func(h *Hop) { h.Identity = "/k/" }), sudo("root")},
		canon: "ssh://a?identity=/k//sudo://root"},
	{in: "ssh://a?opt=ProxyCommand=nc%20%25h%20%25p", want: Target{with(ssh("", "a", 0), func(h *Hop) { h.SSHOptions = []string{"ProxyCommand=nc %h %p"} })}},
}

func TestParse(t *testing.T) {
	for _, tt := range parseTests {
		got, err := Parse(tt.in)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Parse(%q) = %#v, %v, want %#v", tt.in, got, err, tt.want)
			continue
		}
		canon := tt.canon
		if canon == "" {
			canon = tt.in
		}
		if s := got.String(); s != canon {
			t.Errorf("Parse(%q).String() = %q, want %q", tt.in, s, canon)
		}
	}
}

// TestRoundTrip checks Parse(t.String()) == t over the Parse table and over
// hops built in Go with values that need escapes.
func TestRoundTrip(t *testing.T) {
	var targets []Target
	for _, tt := range parseTests {
		targets = append(targets, tt.want)
	}
	odd := []string{"/usr/local/id", "/x/ssh://y", "/a/local", "a/ssh:/", "/k/", "sp ace", "a&b=c?d#e%f", "ü", "local", "/local:x", "/docker:/"}
	for _, v := range odd {
		targets = append(targets,
			Target{with(ssh("", "h", 0), func(h *Hop) { h.Identity = v }), sudo("root")},
			Target{with(ssh("", "h", 0), func(h *Hop) { h.SSHOptions = []string{"X=" + v} }), local("")},
			Target{{Method: "kubectl", Name: "kubectl.p", Pod: "p", KubeContext: v}, local("w")},
		)
	}
	for _, pod := range []string{"local", "local:x", "localhost", "ssh"} {
		targets = append(targets, Target{{Method: "kubectl", Name: "n", Namespace: "ns", Pod: pod}, local("")})
	}
	for _, name := range []string{"a:b", "x?y", "p%q", "a&b", "local", "ssh:", "ü"} {
		targets = append(targets, Target{local(name), local(name)}, Target{with(sudo("root"), func(h *Hop) { h.Name = name }), sudo("root")})
	}
	for _, user := range []string{"a@b", "x%", "local", "ü"} {
		targets = append(targets,
			Target{ssh(user, "h", 0), {Method: "docker", Name: "docker.c", User: user, Container: "c"}, sudo(user)},
			Target{{Method: "local", Name: "local." + user, User: user}})
	}
	targets = append(targets,
		Target{ssh("", "::1", 22), ssh("", "2001:db8::2", 0)},
		Target{with(ssh("", "h", 0), func(h *Hop) { h.ConnectTimeout = 1500 * time.Millisecond })},
	)
	for _, want := range targets {
		s := want.String()
		got, err := Parse(s)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("Parse(%q) = %#v, %v, want %#v", s, got, err, want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in       string
		want     string // in the error text
		password bool
	}{
		{"", "empty target", false},
		{"web1", `"web1" is not a hop`, false},
		{"/ssh://a", `"/ssh://a" is not a hop`, false},
		{"ftp://x", `unknown method "ftp"`, false},
		{"SSH://x", `unknown method "SSH"`, false},
		{"ssh:x", `write ssh://`, false},
		{"sudo", `write sudo://`, false},
		{"locale", `"locale" is not a hop`, false},
		{"ssh://a/ftp://b", `"/ftp://b": unknown method "ftp"`, false},
		{"ssh://a/web1", `"/web1" does not start a hop`, false},
		{"ssh://a/", `trailing "/"`, false},
		{"ssh://a//sudo://", `hop 1 "ssh://a/": trailing "/"`, false},
		{"ssh://a b", "space or control character at offset 7", false},
		{"ssh://a\tb", "space or control character", false},
		{"ssh://a?identity=/usr/local/id", `write that "/" as %2F`, false},

		{"local:", `empty name after "local:"`, false},
		{"local:a?name=b", "name given twice", false},
		{"local://", "empty user after local://", false},
		{"local://a@b", "local takes only a user", false},
		{"local/x", `"/x" does not start a hop`, false},
		{"local?identity=/k", `unknown option "identity" for local (want name, timeout)`, false},

		{"ssh://", "empty host", false},
		{"ssh://@h", "empty user", false},
		{"ssh://u@", "empty host", false},
		{"ssh://h:", `bad port ""`, false},
		{"ssh://h:0", `bad port "0"`, false},
		{"ssh://h:65536", `bad port "65536"`, false},
		{"ssh://h:x", `bad port "x"`, false},
		{"ssh://h:-1", `bad port "-1"`, false},
		{"ssh://::1", "IPv6 address in brackets", false},
		{"ssh://[::1", `missing "]"`, false},
		{"ssh://[::1]x", `unexpected "x"`, false},
		{"ssh://[]", "empty host", false},
		{"ssh://h%2Fx", `host "h%2Fx"`, false},
		{"ssh://h%zz", "bad %-escape", false},
		{"ssh://h?", `no options after "?"`, false},
		{"ssh://h?batch=no&", "empty option", false},
		{"ssh://h?batch", "want KEY=VALUE", false},
		{"ssh://h?bogus=1", `unknown option "bogus" for ssh (want name, timeout, identity, hostkey, config, opt, keepalive, batch)`, false},
		{"ssh://h?context=x", `unknown option "context" for ssh`, false},
		{"ssh://h?identity=", "identity=: empty path", false},
		{"ssh://h?identity=a&identity=b", "identity given twice", false},
		{"ssh://h?identity=%zz", "bad %-escape", false},
		{"ssh://h?identity=a%0Ab", "control character", false},
		{"ssh://h?hostkey=maybe", "want yes, no or accept-new", false},
		{"ssh://h?config=", "config=: empty path", false},
		{"sudo://?config=/c", `unknown option "config" for sudo`, false},
		{"ssh://h?opt=x", "want KEY=VALUE", false},
		{"ssh://h?opt==x", "want KEY=VALUE", false},
		{"ssh://h?opt=A-B=x", "want KEY=VALUE", false},
		{"ssh://h?opt=A=", "want KEY=VALUE", false},
		{"ssh://h?keepalive=0", "positive whole number", false},
		{"ssh://h?keepalive=5s", "positive whole number", false},
		{"ssh://h?batch=false", "want yes or no", false},
		{"ssh://h?timeout=5", "positive duration", false},
		{"ssh://h?timeout=-1s", "positive duration", false},
		{"ssh://h?timeout=0s", "positive duration", false},
		{"ssh://h?name=", "empty name", false},
		{"ssh://h?name=a%20b", "may not contain", false},
		{"ssh://h?name=a%2Fb", "may not contain", false},

		{"sudo://a@b", "sudo takes only a user", false},
		{"sudo://a/b", `"/b" does not start a hop`, false},
		{"sudo://?identity=/k", `unknown option "identity" for sudo (want name, timeout)`, false},

		{"docker://", "empty container", false},
		{"docker://u@", "empty container", false},
		{"docker://@c", "empty user", false},
		{"podman://a/b", `"/b" does not start a hop`, false},
		{"podman://c?batch=no", `unknown option "batch" for podman`, false},

		{"kubectl://", "empty pod", false},
		{"kubectl:///p", "empty namespace", false},
		{"kubectl://ns/", "empty pod", false},
		{"kubectl://p:", "empty container", false},
		{"kubectl://ns/p/x", `"/x" does not start a hop`, false},
		{"kubectl://u@p", "kubectl takes no user@", false},
		{"kubectl://p?context=", "empty context", false},
		{"kubectl://p?identity=/k", `unknown option "identity" for kubectl (want name, timeout, context)`, false},

		{"ssh://a/ssh://b:99999", `hop 2 "ssh://b:99999": bad port "99999"`, false},
		{"local/ssh://", `hop 2 "ssh://": empty host`, false},

		{"sudo://root?password=hunter2", "password= is not accepted", true},
		{"ssh://a/sudo://?password=hunter2", "hop 2 (sudo): password= is not accepted", true},
		{"ssh://u:hunter2@h", "user:password is not accepted", true},
		{"docker://u:hunter2@c", "user:password is not accepted", true},
		{"sudo://root:hunter2", "user:password is not accepted", true},
		{"local://root:hunter2", "user:password is not accepted", true},
		{"ssh://h?password=hunter2%zz", "password= is not accepted", true},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) = %v, %v, want error containing %q", tt.in, got, err, tt.want)
			continue
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) = %v, want errors.Is ErrInvalid", tt.in, err)
		}
		if errors.Is(err, ErrPassword) != tt.password {
			t.Errorf("Parse(%q) = %v, errors.Is ErrPassword = %v, want %v", tt.in, err, !tt.password, tt.password)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Parse(%q) = %v, which repeats the password", tt.in, err)
		}
	}
}

// TestZeroHopString checks that hops built in Go without Name or Batch
// print as parseable targets.
func TestZeroHopString(t *testing.T) {
	tests := []struct {
		h    Hop
		want string
	}{
		{Hop{Method: "ssh", Host: "web1"}, "ssh://web1?batch=no"},
		{Hop{Method: "ssh", Host: "web1", Batch: true, KeepAlive: 1500 * time.Millisecond}, "ssh://web1?keepalive=2"},
		{Hop{Method: "sudo", User: "root"}, "sudo://root"},
		{Hop{Method: "local"}, "local"},
		{Hop{Method: "kubectl", Pod: "p", Namespace: "n"}, "kubectl://n/p"},
	}
	for _, tt := range tests {
		if got := tt.h.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.h, got, tt.want)
		}
		if _, err := Parse(tt.want); err != nil {
			t.Errorf("Parse(%q) = %v", tt.want, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, tt := range parseTests {
		f.Add(tt.in)
		f.Add(tt.in[:len(tt.in)/2])
	}
	f.Add("ssh://a?identity=/usr/local/id")
	f.Add("kubectl://ns/%6Cocal:c")
	f.Fuzz(func(t *testing.T, s string) {
		t1, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(%q) = %v, not ErrInvalid", s, err)
			}
			return
		}
		s2 := t1.String()
		t2, err := Parse(s2)
		if err != nil || !reflect.DeepEqual(t1, t2) {
			t.Fatalf("Parse(%q) = %#v\nParse(%q) = %#v, %v, want the same", s, t1, s2, t2, err)
		}
		if s3 := t2.String(); s3 != s2 {
			t.Fatalf("String() = %q then %q, want a fixed point", s2, s3)
		}
	})
}

// TestImports keeps the package at the bottom of the import graph: the
// standard library only.
func TestImports(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		if first, _, _ := strings.Cut(imp, "/"); strings.Contains(first, ".") {
			t.Errorf("package target imports %q; it may import the standard library only", imp)
		}
	}
}
