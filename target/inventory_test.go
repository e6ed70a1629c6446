package target

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const testInventory = `# comment
; another comment

ungrouped1
[web]
web1 target=ssh://admin@10.0.0.1
web2 target=ssh://admin@10.0.0.2 name=frontend2   # inline comment
web3
[web:vars]
via=ssh://bastion

[db]
db1 target=ssh://bastion/ssh://db1/sudo://postgres via=
db2 via=ssh://jump?identity=/k#1
web1
[prod:children]
web
db
[staging]
st1 target=local:st1
[staging:vars]
  via = local:gw
[everything:children]
prod
staging
[all:vars]
via=ssh://outer
[loop1:children]
loop2
[loop2:children]
loop1
[loop2]
looper
`

// resolved renders Resolve's result as "NAME=TARGET" strings.
func resolved(ns []Named) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.Name+"="+n.Target.String())
	}
	return out
}

func TestInventoryResolve(t *testing.T) {
	inv, err := ParseInventory(strings.NewReader(testInventory))
	if err != nil {
		t.Fatal(err)
	}
	const (
		ungrouped1 = "ungrouped1=ssh://outer/ssh://ungrouped1"
		web1       = "web1=ssh://bastion/ssh://admin@10.0.0.1"
		web2       = "web2=ssh://bastion/ssh://admin@10.0.0.2?name=frontend2"
		web3       = "web3=ssh://bastion/ssh://web3"
		db1        = "db1=ssh://bastion/ssh://db1/sudo://postgres"
		db2        = "db2=ssh://jump?identity=/k%231/ssh://db2"
		st1        = "st1=local:gw/local:st1"
		looper     = "looper=ssh://outer/ssh://looper"
	)
	tests := []struct {
		name string
		want []string
	}{
		{"web1", []string{web1}},
		{"db2", []string{db2}},
		{"ungrouped1", []string{ungrouped1}},
		{"web", []string{web1, web2, web3}},
		{"db", []string{web1, db1, db2}}, // file order, not group order
		{"prod", []string{web1, web2, web3, db1, db2}},
		{"everything", []string{web1, web2, web3, db1, db2, st1}},
		{"staging", []string{st1}},
		{"loop1", []string{looper}},
		{"loop2", []string{looper}},
		{"all", []string{ungrouped1, web1, web2, web3, db1, db2, st1, looper}},
	}
	for _, tt := range tests {
		got, err := inv.Resolve(tt.name)
		if err != nil || !reflect.DeepEqual(resolved(got), tt.want) {
			t.Errorf("Resolve(%q) = %q, %v, want %q", tt.name, resolved(got), err, tt.want)
		}
	}

	// Each result owns its target.
	a, _ := inv.Resolve("web1")
	a[0].Target[0].Host = "changed"
	b, _ := inv.Resolve("web1")
	if got := b[0].Target.String(); got != "ssh://bastion/ssh://admin@10.0.0.1" {
		t.Errorf("Resolve after changing a result = %q", got)
	}

	_, err = inv.Resolve("nope")
	if !errors.Is(err, ErrUnknown) || !strings.Contains(err.Error(), "all, web, db, prod, staging, everything, loop1, loop2") {
		t.Errorf("Resolve(%q) = %v, want ErrUnknown listing the groups", "nope", err)
	}
}

func TestInventoryDefaults(t *testing.T) {
	inv, err := ParseInventory(strings.NewReader("[g]\nh1\nh2 target=local\n[g:children]\n[empty]\n"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := inv.Resolve("g")
	want := Target{{Method: "ssh", Name: "ssh.h1", Host: "h1", Batch: true}}
	if err != nil || len(got) != 2 || !reflect.DeepEqual(got[0].Target, want) || got[1].Target.String() != "local" {
		t.Errorf("Resolve(g) = %#v, %v, want h1 as %#v and h2 as local", got, err, want)
	}
	if got, err := inv.Resolve("empty"); err != nil || len(got) != 0 {
		t.Errorf("Resolve(empty) = %v, %v, want nothing", got, err)
	}
	if got, err := (&Inventory{}).Resolve("all"); err != nil || len(got) != 0 {
		t.Errorf("empty inventory: Resolve(all) = %v, %v, want nothing", got, err)
	}
}

func TestInventoryErrors(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		invalid bool // also ErrInvalid
	}{
		{"[web\nh", "line 1: header \"[web\": missing \"]\"", false},
		{"[]\n", "line 1: header []: empty group name", false},
		{"# c\n[web:hosts]\n", `line 2: header [web:hosts]: unknown section "hosts"`, false},
		{"[we b]\n", `line 1: header [we b]: group name "we b"`, false},
		{"\n\n[g]\nweb[3:1]\n", `line 4: host "web[3:1]": range [3:1]: start 3 is after end 1`, false},
		{"[g]\nweb1:2222\n", "line 2: host \"web1:2222\": give a port", false},
		{"[g]\ntarget=ssh://x\n", "line 2: \"target=ssh://x\": a host line starts with the host's name", false},
		{"[g]\nall\n", `line 2: "all" is reserved`, false},
		{"[g]\nh1 foo-bar=1\n", `line 2: host h1: variable name "foo-bar": want letters, digits and "_"`, false},
		{"[g]\nh1 ansible_host=10.0.0.1\n", `line 2: host h1: ansible_host=: spindle reads no ansible_* variables`, false},
		{"[g]\nh1 9lives=1\n", `line 2: host h1: variable name "9lives"`, false},
		{"[g]\nh1 x=1 x=2\n", "line 2: host h1: x= given twice", false},
		{"[g]\nh1 motd=\"hi there\n", `line 2: "h1 motd=\"hi there": unterminated " quote`, false},
		{"[g]\nlocal\n", `line 2: "local" is a target`, false},
		{"[local]\n", `line 1: header [local]: "local" is a target`, false},
		{"[g]\nh target=ssh://{host}\n", "line 2: host h: target=ssh://{host}: the one placeholder is {name}", false},
		{"[g]\nh[1:2] name=same\n", "line 2: host h[1:2]: name=same would give every host of the range one context name", false},
		{"[g]\nh[1:2] target=ssh://x:0{name}\n", `line 2: target=ssh://x:0h1: bad port "0h1"`, true},
		{"[g]\nh1\n[g:vars]\nx=1\nx=2\n", "line 5: [g:vars]: x= given twice (line 4)", false},
		{"[all:vars]\nx=1\nx=2\n", "line 3: [all:vars]: x= given twice (line 2)", false},
		{"[g]\nh1\n[g:vars]\ntarget=local\n", "line 4: [g:vars]: target= is a host's own setting", false},
		{"[g]\nh1\n[g:vars]\n-x=1\n", `line 4: [g:vars]: variable name "-x"`, false},
		{"[a]\nh\n[b]\nh\n[a:vars]\nx=1\n[b:vars]\nx=2\n", "line 2: host h: groups a (line 6) and b (line 8) give different x=; set x= on the host", false},
		{"[g]\nh1 target\n", `line 2: host h1: "target": want KEY=VALUE`, false},
		{"[g]\nh1 target=local target=local\n", "line 2: host h1: target= given twice", false},
		{"[g]\nh1 name=\n", "line 2: host h1: name=: empty name", false},
		{"[g]\nh1 target=ssh://h:0\n", `line 2: target=ssh://h:0: bad port "0"`, true},
		{"[g]\nh1 via=web1\n", `line 2: via=web1: "web1" is not a hop`, true},
		{"[g]\nh1\nh1\n", "line 3: host h1 listed twice in [g]", false},
		{"[g]\nh1 target=local\n[k]\nh1 target=local\n", "line 4: host h1 already has settings (line 2)", false},
		{"[g]\nh1\n[g:vars]\nvia\n", `line 4: [g:vars]: "via": want KEY=VALUE`, false},
		{"[g]\nh1\n[g:vars]\nansible_user=x\n", `line 4: [g:vars]: ansible_user=: spindle reads no ansible_* variables`, false},
		{"[g]\n[g:vars]\nvia=local\nvia=local\n", "line 4: [g:vars]: via= given twice (line 3)", false},
		{"[all:vars]\nvia=local\nvia=local\n", "line 3: [all:vars]: via= given twice", false},
		{"[g:vars]\nvia=ssh://x:0\n", `line 2: via=ssh://x:0: bad port "0"`, true},
		{"[g:vars]\nvia=local\n", "line 1: group g has [g:vars] but no [g] or [g:children] section", false},
		{"[p:children]\ng h\n", "line 2: [p:children]: \"g h\": want one group name per line", false},
		{"[p:children]\nall\n", `line 2: [p:children]: "all" cannot be a child`, false},
		{"[p:children]\ng!\n", `line 2: [p:children]: group name "g!"`, false},
		{"[p:children]\ng\ng\n[g]\n", "line 3: [p:children]: g listed twice", false},
		{"[p:children]\n\nmissing\n", "line 3: unknown group missing", false},
		{"[g]\ng\n", "line 2: g is both a host and a group", false},
		{"[a]\nh\n[b]\nh\n[a:vars]\nvia=ssh://x\n[b:vars]\nvia=ssh://y\n", "line 2: host h: groups a (line 6) and b (line 8) give different via=", false},
	}
	for _, tt := range tests {
		inv, err := ParseInventory(strings.NewReader(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseInventory(%q) = %v, %v, want error containing %q", tt.in, inv, err, tt.want)
			continue
		}
		if !errors.Is(err, ErrInventory) || errors.Is(err, ErrInvalid) != tt.invalid {
			t.Errorf("ParseInventory(%q) = %v, want ErrInventory (and ErrInvalid: %v)", tt.in, err, tt.invalid)
		}
	}

	_, err := ParseInventory(strings.NewReader("[g]\nh target=sudo://?password=hunter2\n"))
	if !errors.Is(err, ErrPassword) || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("ParseInventory with a password = %v, want ErrPassword naming line 2 without the password", err)
	}
	_, err = ParseInventory(strings.NewReader("[g]\nh target=local?x=" + strings.Repeat("a", 2<<20) + "\n"))
	if !errors.Is(err, ErrInventory) || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("ParseInventory with a 2 MiB line = %v, want ErrInventory naming line 2", err)
	}
}

// TestInventoryVia checks via precedence: the host's own, then the
// nearest group's, then [all:vars].
func TestInventoryVia(t *testing.T) {
	const in = `
[inner]
h1
h2 via=ssh://own
h5 via=
[inner:vars]
via=ssh://near
[outer:children]
inner
[outer]
h3
[outer:vars]
via=ssh://far
[other]
h1
[other:vars]
via=ssh://near
[top:children]
outer
[top:vars]
via=ssh://top
[mid]
h6
[midparent:children]
mid
[midparent:vars]
via=ssh://mp?timeout=3s
[all:vars]
via=ssh://outermost
[bare]
h4
`
	inv, err := ParseInventory(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	got, err := inv.Resolve("all")
	want := []string{
		"h1=ssh://near/ssh://h1", // inner and other, at the same distance, agree
		"h2=ssh://own/ssh://h2",  // its own via= wins
		"h5=ssh://h5",            // an empty via= cancels the groups'
		"h3=ssh://far/ssh://h3",  // outer holds it directly; top is further
		"h6=ssh://mp?timeout=3s/ssh://h6",
		"h4=ssh://outermost/ssh://h4",
	}
	if err != nil || !reflect.DeepEqual(resolved(got), want) {
		t.Errorf("Resolve(all) = %q, %v, want %q", resolved(got), err, want)
	}
}

func TestLoadInventory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts.ini")
	if err := os.WriteFile(path, []byte("[web]\nweb1 target=ssh://web1\n[web:vars]\nbogus-1=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadInventory(path)
	if !errors.Is(err, ErrInventory) || !strings.Contains(err.Error(), path+":4:") {
		t.Errorf("LoadInventory(bad) = %v, want ErrInventory naming %s:4", err, path)
	}
	if err := os.WriteFile(path, []byte(testInventory), 0o644); err != nil {
		t.Fatal(err)
	}
	inv, err := LoadInventory(path)
	if err != nil {
		t.Fatalf("LoadInventory = %v", err)
	}
	if got, err := inv.Resolve("web2"); err != nil || len(got) != 1 || got[0].Target[1].Name != "frontend2" {
		t.Errorf("Resolve(web2) = %v, %v, want its context named frontend2", got, err)
	}
	if _, err := LoadInventory(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadInventory(missing) = %v, want os.ErrNotExist", err)
	}
}

func FuzzParseInventory(f *testing.F) {
	f.Add(testInventory)
	f.Add(testInventory[:len(testInventory)/2])
	f.Add("[a:children]\nb\n[b:children]\na\n[a]\nh via=local\n")
	f.Add("[w]\nweb[01:10:3]-[a:c] target=local:{name} x=\"a b\"\n[w:vars]\ny = 'q'\n")
	f.Fuzz(func(t *testing.T, s string) {
		inv, err := ParseInventory(strings.NewReader(s))
		if err != nil {
			if !errors.Is(err, ErrInventory) {
				t.Fatalf("ParseInventory(%q) = %v, not ErrInventory", s, err)
			}
			return
		}
		all, err := inv.Resolve("all")
		if err != nil {
			t.Fatalf("Resolve(all) = %v", err)
		}
		for _, n := range all {
			if _, err := Parse(n.Target.String()); err != nil && len(n.Target) > 0 {
				t.Fatalf("host %s: Parse(%q) = %v", n.Name, n.Target.String(), err)
			}
		}
	})
}

// TestSampleInventory parses the inventory shipped in examples/, so that
// it stays valid and means what its comments say.
func TestSampleInventory(t *testing.T) {
	inv, err := LoadInventory("../examples/inventory/hosts.ini")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		pattern string
		want    []string
	}{
		{"web", []string{"web01=ssh://ops@bastion.example.com/ssh://deploy@web01.example.com",
			"web02=ssh://ops@bastion.example.com/ssh://deploy@web02.example.com",
			"web03=ssh://ops@bastion.example.com/ssh://deploy@web03.example.com",
			"web04=ssh://ops@bastion.example.com/ssh://deploy@web04.example.com",
			"web-canary=ssh://ops@bastion.example.com/ssh://deploy@10.0.0.99:2222"}},
		{"db:&prod:!dbb", []string{"dba=ssh://ops@bastion.example.com/ssh://jump.internal/ssh://dba.internal/sudo://postgres",
			"dbc=ssh://ops@bastion.example.com/ssh://jump.internal/ssh://dbc.internal/sudo://postgres"}},
		{"!prod", []string{"bastion=ssh://ops@bastion.example.com", "demo1=local:demo1", "demo2=local:demo2", "demo3=local:demo3"}},
	}
	for _, tt := range tests {
		got, err := inv.Select(tt.pattern)
		if err != nil || !reflect.DeepEqual(resolved(got), tt.want) {
			t.Errorf("Select(%q) = %q, %v, want %q", tt.pattern, resolved(got), err, tt.want)
		}
	}
	vars := map[string]map[string]string{
		"web01":      {"role": "frontend", "port": "8080", "env": "prod", "region": "eu-west-1"},
		"web-canary": {"role": "canary", "port": "8080", "env": "prod", "region": "eu-west-1"},
		"dbb":        {"role": "database", "port": "80", "env": "prod", "region": "eu-west-1"},
		"demo1":      {"GREETING": "hello", "region": "eu-west-1"},
		"demo3":      {"GREETING": "hey", "region": "eu-west-1"},
		"bastion":    {"region": "eu-west-1"},
	}
	for name, want := range vars {
		if got, err := inv.Resolve(name); err != nil || !reflect.DeepEqual(got[0].Vars, want) {
			t.Errorf("%s: Vars = %v, %v, want %v", name, got, err, want)
		}
	}
}

func FuzzSelect(f *testing.F) {
	inv, err := ParseInventory(strings.NewReader(testInventory))
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range []string{"web", "web:&prod", "prod:!db", "!db", "web,db", "w*", "all:!web?", "", "::", "web:!", "a[1:2]"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, pattern string) {
		got, err := inv.Select(pattern)
		if err != nil {
			if !errors.Is(err, ErrPattern) && !errors.Is(err, ErrUnknown) {
				t.Fatalf("Select(%q) = %v, neither ErrPattern nor ErrUnknown", pattern, err)
			}
			return
		}
		seen := make(map[string]bool)
		for _, n := range got {
			if seen[n.Name] {
				t.Fatalf("Select(%q) = %q: %s twice", pattern, names(got), n.Name)
			}
			seen[n.Name] = true
		}
	})
}
