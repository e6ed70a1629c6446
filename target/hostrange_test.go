package target

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// names renders Resolve's or Select's result as its host names.
func names(ns []Named) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.Name)
	}
	return out
}

func TestInventoryRanges(t *testing.T) {
	tests := []struct {
		line string
		want []string
	}{
		{"web[01:03]", []string{"web01", "web02", "web03"}},
		{"web[1:3]", []string{"web1", "web2", "web3"}},
		{"web[8:11]", []string{"web8", "web9", "web10", "web11"}},
		{"web[0:2]", []string{"web0", "web1", "web2"}},
		{"web[001:010:3]", []string{"web001", "web004", "web007", "web010"}},
		{"db[a:c]", []string{"dba", "dbb", "dbc"}},
		{"db[A:E:2]", []string{"dbA", "dbC", "dbE"}},
		{"h[1:2].example.com", []string{"h1.example.com", "h2.example.com"}},
		{"r[1:2]-[a:b].dc", []string{"r1-a.dc", "r1-b.dc", "r2-a.dc", "r2-b.dc"}},
		{"one[5:5]", []string{"one5"}},
		{"plain", []string{"plain"}},
	}
	for _, tt := range tests {
		inv, err := ParseInventory(strings.NewReader("[g]\n" + tt.line + "\n"))
		if err != nil {
			t.Errorf("ParseInventory(%q) = %v", tt.line, err)
			continue
		}
		got, err := inv.Resolve("g")
		if err != nil || !reflect.DeepEqual(names(got), tt.want) {
			t.Errorf("%q: Resolve(g) = %q, %v, want %q", tt.line, names(got), err, tt.want)
		}
	}

	// Settings on a range line apply to each host, {name} filled in.
	inv, err := ParseInventory(strings.NewReader("[g]\nw[1:2] target=ssh://admin@{name}.example.com/local:{name} role=web\n"))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := inv.Resolve("all")
	want := []string{"w1=ssh://admin@w1.example.com/local:w1", "w2=ssh://admin@w2.example.com/local:w2"}
	if !reflect.DeepEqual(resolved(got), want) || got[1].Vars["role"] != "web" {
		t.Errorf("range with settings = %q (vars %v), want %q and role=web", resolved(got), got[1].Vars, want)
	}
	got[0].Vars["role"] = "changed" // each Named owns its vars
	if again, _ := inv.Resolve("w1"); again[0].Vars["role"] != "web" {
		t.Errorf("changing a result's Vars changed the inventory: %v", again[0].Vars)
	}
}

func TestInventoryRangeErrors(t *testing.T) {
	tests := []struct{ line, want string }{
		{"web[3:1]", `range [3:1]: start 3 is after end 1`},
		{"web[c:a]", `range [c:a]: start c is after end a`},
		{"web[01:100]", `range [01:100]: 01 and 100 differ in width`},
		{"web[1:010]", `range [1:010]: 1 and 010 differ in width`},
		{"web[]", `range []: want [START:END] or [START:END:STEP]`},
		{"web[1]", `range [1]: want [START:END]`},
		{"web[1:]", `range [1:]: empty start or end`},
		{"web[:5]", `range [:5]: empty start or end`},
		{"web[1:2:3:4]", `range [1:2:3:4]: want [START:END]`},
		{"web[1:5:0]", `range [1:5:0]: step "0": want a whole number from 1`},
		{"web[1:5:x]", `range [1:5:x]: step "x"`},
		{"web[a:Z]", `range [a:Z]: want numbers, or single letters of one case`},
		{"web[aa:zz]", `range [aa:zz]: want numbers, or single letters`},
		{"web[1:c]", `range [1:c]: want numbers`},
		{"web[1:10001]", "expands to more than 10000 hosts"},
		{"web[1:100]-[1:101]", "expands to more than 10000 hosts"},
		{"web[0:99999999999999999999]", "expands to more than 10000 hosts"},
		{"web[1:2", `host "web[1:2": "[" without "]"`},
		{"web1:2]", `host "web1:2]": "]" without "["`},
		{"web[1:2]x!", `host name "web1x!"`},
	}
	for _, tt := range tests {
		in := "# c\n[g]\n" + tt.line + "\n"
		_, err := ParseInventory(strings.NewReader(in))
		if !errors.Is(err, ErrInventory) || !strings.Contains(err.Error(), "line 3: ") || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseInventory(%q) = %v, want ErrInventory at line 3 containing %q", in, err, tt.want)
		}
	}

	// 10,000 on one line is the bound, not past it; and the file's path
	// names the line.
	if _, err := ParseInventory(strings.NewReader("[g]\nweb[00001:10000]\n")); err != nil {
		t.Errorf("ParseInventory(10,000 hosts) = %v", err)
	}
	path := filepath.Join(t.TempDir(), "hosts.ini")
	if err := os.WriteFile(path, []byte("[g]\nok[1:2]\n\nweb[09:1]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadInventory(path); err == nil || !strings.Contains(err.Error(), path+":4: host \"web[09:1]\"") {
		t.Errorf("LoadInventory = %v, want the error at %s:4", err, path)
	}

	// The inventory as a whole is bounded too.
	var b strings.Builder
	b.WriteString("[g]\n")
	for i := 0; i < maxInventoryHosts/maxLineHosts; i++ {
		b.WriteString("h" + strings.Repeat("x", i) + "[1:10000]\n")
	}
	b.WriteString("one-more\n")
	if _, err := ParseInventory(strings.NewReader(b.String())); !errors.Is(err, ErrInventory) || !strings.Contains(err.Error(), "more than 100000 hosts") {
		t.Errorf("ParseInventory(100,001 hosts) = %v, want the bound", err)
	}
}

// TestInventoryVars checks variable precedence: the host's line, then the
// nearest group, then its parents, then [all:vars]; each variable on its
// own.
func TestInventoryVars(t *testing.T) {
	const in = `
[web]
web1 port=81 motd="hello # world"   # quotes keep spaces and " #"
web2
[web:vars]
port=8080
tier = 'front end'
[prod:children]
web
db
[prod:vars]
port=80
env=prod
tier=none
[db]
db1 target=local:db1 env=own
[all:vars]
region=eu
env=nowhere
[solo]
s1
`
	inv, err := ParseInventory(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]string{
		"web1": {"port": "81", "motd": "hello # world", "tier": "front end", "env": "prod", "region": "eu"},
		"web2": {"port": "8080", "tier": "front end", "env": "prod", "region": "eu"},
		"db1":  {"port": "80", "tier": "none", "env": "own", "region": "eu"},
		"s1":   {"env": "nowhere", "region": "eu"},
	}
	all, err := inv.Resolve("all")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range all {
		if !reflect.DeepEqual(n.Vars, want[n.Name]) {
			t.Errorf("%s: Vars = %v, want %v", n.Name, n.Vars, want[n.Name])
		}
	}
	if got, _ := inv.Resolve("db1"); got[0].Target.String() != "local:db1" {
		t.Errorf("db1: target = %s, want local:db1 (target= is not a variable)", got[0].Target)
	}

	// No variables anywhere: nil, not an empty map. Agreeing groups at
	// one distance are no conflict.
	inv, err = ParseInventory(strings.NewReader("[a]\nh\n[b]\nh\n[a:vars]\nx=1\n[b:vars]\nx=1\n[c]\nbare\n"))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := inv.Resolve("all")
	if !reflect.DeepEqual(got[0].Vars, map[string]string{"x": "1"}) || got[1].Vars != nil {
		t.Errorf("Vars = %v and %v, want x=1 and nil", got[0].Vars, got[1].Vars)
	}
}

func TestInventorySelect(t *testing.T) {
	const in = `
bastion
[web]
web[1:3]
[db]
db1
db2
web3
[prod:children]
web
db
[prod]
canary
[staging]
web2
st1
`
	inv, err := ParseInventory(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		pattern string
		want    []string
	}{
		{"web", []string{"web1", "web2", "web3"}},
		{"all", []string{"bastion", "web1", "web2", "web3", "db1", "db2", "canary", "st1"}},
		{"*", []string{"bastion", "web1", "web2", "web3", "db1", "db2", "canary", "st1"}},
		{"db:web", []string{"web3", "db1", "db2", "web1", "web2"}}, // term order; file order within a term
		{"db,web", []string{"web3", "db1", "db2", "web1", "web2"}},
		{"web:db1:web2", []string{"web1", "web2", "web3", "db1"}},
		{"web:&staging", []string{"web2"}},
		{"prod:&web:&db", []string{"web3"}},
		{"web:!db", []string{"web1", "web2"}},
		{"web,!web2", []string{"web1", "web3"}},
		{"!db", []string{"bastion", "web1", "web2", "canary", "st1"}},
		{"!prod", []string{"bastion", "st1"}},
		{"&staging", []string{"web2", "st1"}},
		{"!web:web", nil}, // the order of terms does not matter: web minus web
		{"web*", []string{"web1", "web2", "web3"}},
		{"*1", []string{"web1", "db1", "st1"}},
		{"web?:&db*", []string{"web3"}},
		{"st*", []string{"web2", "st1"}}, // the group staging, and st1
		{"prod:!web?", []string{"db1", "db2", "canary"}},
		{"bastion", []string{"bastion"}},
	}
	for _, tt := range tests {
		got, err := inv.Select(tt.pattern)
		if err != nil || !reflect.DeepEqual(names(got), tt.want) {
			t.Errorf("Select(%q) = %q, %v, want %q", tt.pattern, names(got), err, tt.want)
		}
	}

	errs := []struct {
		pattern string
		is      error
		want    string
	}{
		{"nope", ErrUnknown, `"nope" (groups: all, web, db, prod, staging)`},
		{"web:&nope", ErrUnknown, `"nope" in pattern "web:&nope"`},
		{"x*", ErrUnknown, `"x*" in pattern "x*" matches no host or group`},
		{"", ErrPattern, `want terms joined by`},
		{"web::db", ErrPattern, `want terms joined by`},
		{"web,", ErrPattern, `want terms joined by`},
		{":web", ErrPattern, `want terms joined by`},
		{"web db", ErrPattern, `want terms joined by`},
		{"web:!", ErrPattern, `term "!" names nothing`},
		{"web:&!db", ErrPattern, `"!" start a term`},
		{"web[1:2]", ErrPattern, "ranges are for inventory host lines"},
		{"~web.*", ErrPattern, `term "~web.*": '~' is not allowed`},
	}
	for _, tt := range errs {
		got, err := inv.Select(tt.pattern)
		if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Select(%q) = %q, %v, want %v containing %q", tt.pattern, names(got), err, tt.is, tt.want)
		}
	}
}

func TestIsChain(t *testing.T) {
	for s, want := range map[string]bool{
		"local": true, "local:w1": true, "local?name=x": true, "local/ssh://a": true, "local://root": true,
		"ssh://a": true, "sudo://": true, "kubectl://ns/pod": true, "ssh://a/b": true,
		"web": false, "web:&prod": false, "!db": false, "all": false, "localhost": false, "ssh:host": false, "locals": false,
	} {
		if got := IsChain(s); got != want {
			t.Errorf("IsChain(%q) = %v, want %v", s, got, want)
		}
	}
}
