package ci

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func keyTestAction() *Action {
	return &Action{
		Module:       strings.Repeat("ab", 32),
		Args:         []string{"-l", "."},
		Env:          map[string]string{"GOARCH": "amd64", "GOOS": "linux"},
		InputRoot:    strings.Repeat("cd", 32),
		Outputs:      []string{"fmt.txt", "dist/bin"},
		Stdin:        "in.txt",
		Timeout:      time.Minute,
		MemoryBytes:  256 << 20,
		OutputBytes:  16 << 20,
		DiskBytes:    1 << 30,
		Secrets:      []string{"TOKEN"},
		FailIfOutput: true,
		Platform:     Platform,
		Salt:         "1",
	}
}

// TestKeyKnownAnswer pins the encoding: if this fails, the encoding
// changed, and with it every key in every cache. Bump keyMagic's version
// and then this value, on purpose. The value was computed by a separate
// program written from Key's documentation, not by Key.
func TestKeyKnownAnswer(t *testing.T) {
	const want = "a88c5d49d5cc5c71a44ac85c5958c8fa28d1c90265f513c7f787bc3afba7cdf1"
	a := keyTestAction()
	if got := a.Key(); got != want {
		t.Errorf("Key() = %s, want %s", got, want)
	}
}

// TestKeyEachField changes every field of an Action in turn (found by
// reflection, so a new field is not forgotten) and wants a new key each
// time.
func TestKeyEachField(t *testing.T) {
	base := keyTestAction().Key()
	typ := reflect.TypeFor[Action]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		a := keyTestAction()
		v := reflect.ValueOf(a).Elem().Field(i)
		if !change(v) {
			t.Fatalf("field %s of kind %v: teach this test to change it", f.Name, f.Type.Kind())
		}
		if a.Key() == base {
			t.Errorf("changing Action.%s left the key unchanged", f.Name)
		}
	}
}

// change changes the field v (a string, an int64, a bool, a slice of
// strings or a map of strings) and reports whether it knew how.
func change(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.String:
		v.SetString(v.String() + "x")
	case reflect.Int64:
		v.SetInt(v.Int() + 1)
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Slice:
		v.Set(reflect.Append(v, reflect.ValueOf("extra")))
	case reflect.Map:
		v.SetMapIndex(reflect.ValueOf("EXTRA"), reflect.ValueOf(""))
	default:
		return false
	}
	return true
}

func TestKeyDistinct(t *testing.T) {
	// Pairs that a careless encoding (joined strings, unsorted maps)
	// would confuse.
	mod := func(f func(*Action)) *Action { a := keyTestAction(); f(a); return a }
	tests := []struct {
		name string
		a, b *Action
	}{
		{"args split differently", mod(func(a *Action) { a.Args = []string{"ab", "c"} }), mod(func(a *Action) { a.Args = []string{"a", "bc"} })},
		{"arg order", mod(func(a *Action) { a.Args = []string{"a", "b"} }), mod(func(a *Action) { a.Args = []string{"b", "a"} })},
		{"empty arg vs none", mod(func(a *Action) { a.Args = []string{""} }), mod(func(a *Action) { a.Args = nil })},
		{"env name and value moved", mod(func(a *Action) { a.Env = map[string]string{"A": "B=C"} }), mod(func(a *Action) { a.Env = map[string]string{"A=B": "C"} })},
		{"value moves across fields", mod(func(a *Action) { a.Stdin = "x"; a.Salt = "" }), mod(func(a *Action) { a.Stdin = ""; a.Salt = "x" })},
		{"clock vs random", mod(func(a *Action) { a.Clock = true }), mod(func(a *Action) { a.Random = true })},
		{"output vs secret", mod(func(a *Action) { a.Outputs = []string{"T"}; a.Secrets = nil }), mod(func(a *Action) { a.Outputs = nil; a.Secrets = []string{"T"} })},
	}
	for _, tt := range tests {
		if tt.a.Key() == tt.b.Key() {
			t.Errorf("%s: the same key %s for both", tt.name, tt.a.Key())
		}
	}
}

func TestKeyCanonical(t *testing.T) {
	base := keyTestAction().Key()
	same := []struct {
		name string
		f    func(*Action)
	}{
		{"env built in another order", func(a *Action) {
			a.Env = map[string]string{}
			a.Env["GOOS"] = "linux"
			a.Env["GOARCH"] = "amd64"
		}},
		{"outputs reordered", func(a *Action) { a.Outputs = []string{"dist/bin", "fmt.txt"} }},
		{"outputs repeated", func(a *Action) { a.Outputs = []string{"fmt.txt", "dist/bin", "fmt.txt"} }},
		{"secrets repeated", func(a *Action) { a.Secrets = []string{"TOKEN", "TOKEN"} }},
		{"empty platform is Platform", func(a *Action) { a.Platform = "" }},
	}
	for _, tt := range same {
		a := keyTestAction()
		tt.f(a)
		if got := a.Key(); got != base {
			t.Errorf("%s: key %s, want the base key %s", tt.name, got, base)
		}
	}
	// Key leaves the action as it was.
	a := keyTestAction()
	a.Outputs = []string{"b", "a", "b"}
	a.Key()
	if !reflect.DeepEqual(a.Outputs, []string{"b", "a", "b"}) {
		t.Errorf("Key changed Outputs to %q", a.Outputs)
	}
	// No nil map or slice is told from an empty one.
	b, c := keyTestAction(), keyTestAction()
	b.Env, c.Env = nil, map[string]string{}
	b.Args, c.Args = nil, []string{}
	if b.Key() != c.Key() {
		t.Errorf("nil and empty Env/Args give different keys")
	}
}

func TestCacheable(t *testing.T) {
	tests := []struct {
		f    func(*Action)
		ok   bool
		want []string // in why
	}{
		{func(a *Action) {}, true, nil},
		{func(a *Action) { a.Clock = true }, false, []string{"real clock"}},
		{func(a *Action) { a.Random = true }, false, []string{"real randomness"}},
		{func(a *Action) { a.Secrets = []string{"B", "A"} }, false, []string{"secrets (A, B)"}},
		{func(a *Action) { a.Clock, a.Random, a.Secrets = true, true, []string{"T"} }, false, []string{"clock", "randomness", "secrets (T)"}},
	}
	for i, tt := range tests {
		a := keyTestAction()
		a.Secrets = nil
		tt.f(a)
		ok, why := a.Cacheable()
		if ok != tt.ok || (ok && why != "") {
			t.Errorf("case %d: Cacheable() = %v, %q; want %v", i, ok, why, tt.ok)
		}
		for _, w := range tt.want {
			if !strings.Contains(why, w) {
				t.Errorf("case %d: Cacheable() why = %q, want it to contain %q", i, why, w)
			}
		}
	}
}

// TestStepAction checks that every field of a Step that can change what
// the step does reaches its Action: changing it changes the key.
func TestStepAction(t *testing.T) {
	base := &Step{
		Name: "s", Tool: "gofmt", Args: []string{"-l"}, Env: map[string]string{"A": "1"},
		Inputs: []string{"**"}, Outputs: []string{"o"}, Stdin: "in", Timeout: time.Minute,
		MemoryBytes: 1 << 20, OutputBytes: 1 << 20, DiskBytes: 1 << 20,
	}
	key := func(s *Step) string { return s.Action("m", "root", "salt").Key() }
	want := key(base)
	if a := base.Action("m", "root", "salt"); a.Platform != Platform || a.Module != "m" || a.InputRoot != "root" || a.Salt != "salt" {
		t.Errorf("Action = %+v, want Module, InputRoot, Salt as given and Platform %q", a, Platform)
	}
	// Fields that do not reach the key: the name and how the module is
	// named (the module hash stands for them), the inputs (the input root
	// stands for them), the report (read after the run), the position.
	notInKey := map[string]bool{"Name": true, "Tool": true, "Module": true, "Hash": true, "Inputs": true, "Report": true, "Pos": true}
	typ := reflect.TypeFor[Step]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		s := *base
		s.Args, s.Outputs = append([]string(nil), base.Args...), append([]string(nil), base.Outputs...)
		s.Env = map[string]string{"A": "1"}
		v := reflect.ValueOf(&s).Elem().Field(i)
		switch {
		case f.Type.Kind() == reflect.Struct:
			s.Pos.Line++
		case !change(v):
			t.Fatalf("field %s of kind %v: teach this test to change it", f.Name, f.Type.Kind())
		}
		if changed := key(&s) != want; changed == notInKey[f.Name] {
			t.Errorf("changing Step.%s: key changed = %v, want %v", f.Name, changed, !notInKey[f.Name])
		}
	}
	// The action owns its slices and map.
	a := base.Action("m", "root", "salt")
	a.Args[0], a.Env["A"] = "changed", "changed"
	if base.Args[0] != "-l" || base.Env["A"] != "1" {
		t.Errorf("changing the Action changed the Step: %q %q", base.Args, base.Env)
	}
}
