package gocache_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/ci/gocache"
)

// helperEnv makes the test binary a GOCACHEPROG serving the directory it
// names (TestGoBuild); helperStatsEnv names a file for its Stats.
const (
	helperEnv      = "GOCACHE_TEST_SERVE"
	helperStatsEnv = "GOCACHE_TEST_STATS"
)

func serveHelper(dir string) int {
	d, err := gocache.Open(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	st, err := gocache.Serve(context.Background(), os.Stdin, os.Stdout, gocache.DirBackend{Dir: d}, gocache.Config{})
	if p := os.Getenv(helperStatsEnv); p != "" {
		b, _ := json.Marshal(st)
		os.WriteFile(p, b, 0o600)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// response is what the go command reads.
type response struct {
	ID            int64
	Err           string
	KnownCommands []string
	Miss          bool
	OutputID      []byte
	Size          int64
	Time          *time.Time
	DiskPath      string
}

// session drives Serve as the go command does, through pipes.
type session struct {
	t    *testing.T
	in   *io.PipeWriter
	out  *io.PipeReader
	res  *json.Decoder
	done chan error
	st   gocache.Stats
}

func startSession(t *testing.T, b gocache.Backend, cfg gocache.Config) *session {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	s := &session{t: t, in: inW, out: outR, res: json.NewDecoder(outR), done: make(chan error, 1)}
	go func() {
		st, err := gocache.Serve(context.Background(), inR, outW, b, cfg)
		s.st = st
		inR.Close()
		outW.Close()
		s.done <- err
	}()
	t.Cleanup(func() { inW.Close(); outR.Close() })
	if caps := s.read(); caps.ID != 0 || strings.Join(caps.KnownCommands, ",") != "get,put,close" {
		t.Fatalf("first response = %+v, want ID 0 and get, put, close", caps)
	}
	return s
}

func (s *session) send(raw string) {
	s.t.Helper()
	if _, err := io.WriteString(s.in, raw); err != nil {
		s.t.Fatalf("write %.40q: %v", raw, err)
	}
}

// put writes a put as go does: the request, an empty line, the body.
func (s *session) put(id int64, action, output []byte, body []byte) {
	s.t.Helper()
	req, _ := json.Marshal(map[string]any{"ID": id, "Command": "put", "ActionID": action, "OutputID": output, "BodySize": len(body)})
	raw := string(req) + "\n\n"
	if len(body) > 0 {
		raw += `"` + base64.StdEncoding.EncodeToString(body) + "\"\n"
	}
	s.send(raw)
}

func (s *session) get(id int64, action []byte) {
	req, _ := json.Marshal(map[string]any{"ID": id, "Command": "get", "ActionID": action})
	s.send(string(req) + "\n\n")
}

func (s *session) read() response {
	s.t.Helper()
	var r response
	if err := s.res.Decode(&r); err != nil {
		s.t.Fatalf("reading a response: %v", err)
	}
	return r
}

// end waits for Serve to return and returns its error.
func (s *session) end() error {
	s.t.Helper()
	select {
	case err := <-s.done:
		return err
	case <-time.After(10 * time.Second):
		s.t.Fatal("Serve did not return")
		return nil
	}
}

func TestServe(t *testing.T) {
	d := openDir(t)
	s := startSession(t, gocache.DirBackend{Dir: d}, gocache.Config{MaxBody: 1000})
	body := []byte("the object file")

	s.get(1, id("a"))
	if r := s.read(); r.ID != 1 || !r.Miss || r.Err != "" {
		t.Errorf("get of an empty cache = %+v, want a miss", r)
	}
	s.put(2, id("a"), out(body), body)
	r := s.read()
	if r.ID != 2 || r.Err != "" || r.DiskPath == "" {
		t.Fatalf("put = %+v, want a DiskPath", r)
	}
	if b, _ := os.ReadFile(r.DiskPath); !bytes.Equal(b, body) {
		t.Errorf("put's DiskPath holds %q, want %q", b, body)
	}
	s.get(3, id("a"))
	if r := s.read(); r.ID != 3 || r.Miss || !bytes.Equal(r.OutputID, out(body)) || r.Size != int64(len(body)) || r.Time == nil || r.DiskPath == "" {
		t.Errorf("get after put = %+v, want a hit", r)
	}

	// Refused, and the session goes on: bytes that are not the output
	// ID's, a body over MaxBody, an unknown command, a bad ID.
	s.put(4, id("b"), out(body), []byte("something else"))
	if r := s.read(); r.ID != 4 || !strings.Contains(r.Err, "does not match") {
		t.Errorf("put of a body not hashing to its output ID = %+v, want an error", r)
	}
	big := bytes.Repeat([]byte("x"), 1001)
	s.put(5, id("c"), out(big), big)
	if r := s.read(); r.ID != 5 || !strings.Contains(r.Err, "more than the 1000 kept") {
		t.Errorf("put over MaxBody = %+v, want an error", r)
	}
	s.send(`{"ID":6,"Command":"get2","ActionID":"AAAA"}` + "\n")
	if r := s.read(); r.ID != 6 || !strings.Contains(r.Err, `unknown command "get2"`) {
		t.Errorf("unknown command = %+v, want an error", r)
	}
	s.get(7, []byte("short"))
	if r := s.read(); r.ID != 7 || !r.Miss || r.Err != "" {
		t.Errorf("get of a 5-byte action = %+v, want a miss (a get never fails)", r)
	}
	s.put(8, id("empty"), out(nil), nil)
	if r := s.read(); r.ID != 8 || r.Err != "" || r.DiskPath == "" {
		t.Errorf("put of an empty output = %+v", r)
	}
	s.send(`{"ID":9,"Command":"close"}` + "\n")
	if r := s.read(); r.ID != 9 || r.Err != "" {
		t.Errorf("close = %+v", r)
	}
	if err := s.end(); err != nil {
		t.Fatalf("Serve = %v", err)
	}
	want := gocache.Stats{Gets: 3, Hits: 1, HitBytes: int64(len(body)), Puts: 2, PutBytes: int64(len(body)), Failed: 3}
	if s.st != want {
		t.Errorf("stats = %+v, want %+v", s.st, want)
	}
}

// TestServeProtocolErrors: input that is not the protocol ends the
// session with ErrProtocol, at once, whatever was sent before.
func TestServeProtocolErrors(t *testing.T) {
	body := base64.StdEncoding.EncodeToString([]byte("0123456789"))
	putReq := func(size int) string {
		return fmt.Sprintf(`{"ID":1,"Command":"put","ActionID":%q,"OutputID":%q,"BodySize":%d}`+"\n\n",
			base64.StdEncoding.EncodeToString(id("a")), base64.StdEncoding.EncodeToString(out([]byte("0123456789"))), size)
	}
	for _, tc := range []struct{ name, input string }{
		{"not JSON", "hello\n"},
		{"a line too long", `{"ID":1,"Command":"get","ActionID":"` + strings.Repeat("A", gocache.MaxRequestLine) + "\"}\n"},
		{"a body that is not a string", putReq(10) + "1234\n"},
		{"input ends in a body", putReq(10) + `"` + body[:4]},
		{"input ends before a body", putReq(10)},
		{"a body longer than its size", putReq(3) + `"` + body + "\"\n"},
		{"a negative size", putReq(-1)},
		{"a get with a body", `{"ID":1,"Command":"get","BodySize":4}` + "\n"},
		{"input ends in a request", `{"ID":1,"Command":"ge`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var outBuf bytes.Buffer
			_, err := gocache.Serve(context.Background(), strings.NewReader(tc.input), &outBuf, gocache.DirBackend{Dir: openDir(t)}, gocache.Config{})
			if !errors.Is(err, gocache.ErrProtocol) {
				t.Fatalf("Serve = %v, want ErrProtocol", err)
			}
		})
	}
}

// FuzzServe: whatever the input, Serve returns (no panic, no hang), and
// every line it writes is a response.
func FuzzServe(f *testing.F) {
	body := []byte("0123456789")
	put, _ := json.Marshal(map[string]any{"ID": 1, "Command": "put", "ActionID": id("a"), "OutputID": out(body), "BodySize": len(body)})
	get, _ := json.Marshal(map[string]any{"ID": 2, "Command": "get", "ActionID": id("a")})
	f.Add(string(put) + "\n\n\"" + base64.StdEncoding.EncodeToString(body) + "\"\n" + string(get) + "\n" + `{"ID":3,"Command":"close"}` + "\n")
	f.Add(string(put) + "\n\n\"AAAA")
	f.Add(`{"ID":1,"Command":"close"}`)
	f.Add("")
	root := f.TempDir()
	f.Fuzz(func(t *testing.T, input string) {
		d, err := gocache.Open(root)
		if err != nil {
			t.Fatal(err)
		}
		var outBuf bytes.Buffer
		gocache.Serve(context.Background(), strings.NewReader(input), &outBuf, gocache.DirBackend{Dir: d}, gocache.Config{MaxBody: 1 << 20})
		sc := bufio.NewScanner(&outBuf)
		for sc.Scan() {
			var r response
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("Serve wrote %q, not a response: %v", sc.Bytes(), err)
			}
		}
	})
}

// goEnv is an environment for a go command of its own caches.
func goEnv(t *testing.T, extra ...string) []string {
	env := []string{"GOFLAGS=", "GOWORK=off", "GOOS=", "GOARCH=", "CGO_ENABLED=0", "GOCACHE=" + t.TempDir(), "GOCACHEPROG="}
	return append(append(os.Environ(), env...), extra...)
}

// TestGoBuild: the go command builds a program with this package as its
// GOCACHEPROG (the test binary serving a Dir): the binary is the one a
// build with go's own cache makes, and built again from a fresh GOCACHE,
// every compile is a hit (go -x runs no compile, and links from the
// outputs' DiskPaths).
func TestGoBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the standard library's packages of a program (-short)")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skipf("needs the go command: %v", err) // under wasip1, there is none
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "go.mod"), []byte("module example.com/hello\n\ngo 1.24\n"), 0o644)
	os.WriteFile(filepath.Join(src, "main.go"), []byte("package main\n\nimport (\n\t\"fmt\"\n\t\"strings\"\n)\n\nfunc main() { fmt.Println(strings.ToUpper(\"hello\")) }\n"), 0o644)
	cache := t.TempDir()
	build := func(out string, env []string, flags ...string) string {
		t.Helper()
		cmd := exec.Command("go", append(append([]string{"build"}, flags...), "-o", out, ".")...)
		cmd.Dir, cmd.Env = src, env
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go build: %v\n%s", err, b)
		}
		return string(b)
	}
	stats := func(p string) gocache.Stats {
		t.Helper()
		var st gocache.Stats
		b, err := os.ReadFile(p)
		if err != nil || json.Unmarshal(b, &st) != nil {
			t.Fatalf("the helper's stats: %v %q", err, b)
		}
		return st
	}
	bin := t.TempDir()
	native := filepath.Join(bin, "native")
	build(native, goEnv(t))
	progEnv := func(statsFile string) []string {
		return goEnv(t, "GOCACHEPROG="+exe, helperEnv+"="+cache, helperStatsEnv+"="+statsFile)
	}
	first := filepath.Join(bin, "first")
	build(first, progEnv(filepath.Join(bin, "stats1")))
	st1 := stats(filepath.Join(bin, "stats1"))
	if st1.Puts < 10 || st1.Hits != 0 || st1.Failed != 0 {
		t.Errorf("first build: %+v, want tens of puts, no hit, no failure", st1)
	}
	second := filepath.Join(bin, "second")
	x := build(second, progEnv(filepath.Join(bin, "stats2")), "-x")
	st2 := stats(filepath.Join(bin, "stats2"))
	if st2.Hits < st1.Puts/2 || st2.Failed != 0 {
		t.Errorf("second build: %+v, want most of the first build's %d puts as hits", st2, st1.Puts)
	}
	t.Logf("first build %+v; second %+v", st1, st2)
	if strings.Contains(x, "/compile ") {
		t.Errorf("the second build compiled:\n%s", x)
	}
	sum := func(p string) [32]byte { b, _ := os.ReadFile(p); return sha256.Sum256(b) }
	if sum(first) != sum(native) || sum(second) != sum(native) {
		t.Error("a binary built through the cache differs from the native build's")
	}
	if b, err := exec.Command(second).Output(); err != nil || string(b) != "HELLO\n" {
		t.Errorf("the binary printed %q, %v", b, err)
	}
}

// stuckBackend's Get waits for its ctx; its Close fails.
type stuckBackend struct{ gocache.DirBackend }

func (stuckBackend) Get(ctx context.Context, _ []byte) (gocache.Entry, bool, error) {
	<-ctx.Done()
	return gocache.Entry{}, false, ctx.Err()
}

func (stuckBackend) Close(context.Context) error { return errors.New("the far side is gone") }

// TestServeEnds: when the go command goes away, a get still running is
// cancelled (Serve returns at once, not when the backend gives up); a
// backend's Close error is not an Err of close, which would fail go.
func TestServeEnds(t *testing.T) {
	b := stuckBackend{gocache.DirBackend{Dir: openDir(t)}}
	s := startSession(t, b, gocache.Config{})
	s.get(1, id("a"))
	time.Sleep(10 * time.Millisecond) // the get is in the backend
	s.in.Close()                      // the go command is gone:
	s.out.Close()                     // its end of both pipes
	if err := s.end(); err != nil && !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("Serve = %v, want nil or the write's error", err)
	}

	s = startSession(t, b, gocache.Config{})
	s.send(`{"ID":1,"Command":"close"}` + "\n")
	if r := s.read(); r.ID != 1 || r.Err != "" {
		t.Errorf("close with a failing backend = %+v, want no Err", r)
	}
	s.end()
}
