package mask

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// secretsForTest are secrets with the bytes each encoding treats
// specially: plain text, URL and JSON metacharacters, HTML characters,
// non-ASCII, bytes that are not UTF-8, control bytes, and a multi-line key
// with a CRLF line.
var secretsForTest = []string{
	"hunter2-token-0123",
	"p@ss w/rd+&=?<>\"\\é\t%",
	"\x00\xff\x10s3cr\x7fet\xc3",
	"-----BEGIN KEY-----\nMIIEpAIBAAKCAQEA1x\r\nshort\nzq9Lw0rKd+/AB==\n-----END KEY-----\n",
	"abcd",
}

// independentForms computes the forms of secret s that must never survive
// masking, with the standard library directly and without the package's
// code: the secret, each line of it of at least 4 bytes, and their
// encodings. The base64 cores inside a longer stream come from
// stableCore, which finds them by experiment, not by arithmetic.
func independentForms(s []byte) map[string][]byte {
	out := map[string][]byte{}
	units := map[string][]byte{"": s}
	if bytes.Contains(s, []byte("\n")) {
		for i, line := range strings.Split(string(s), "\n") {
			line = strings.TrimSuffix(line, "\r")
			if len(line) >= 4 {
				units[fmt.Sprintf("line %d ", i)] = []byte(line)
			}
		}
	}
	for name, u := range units {
		out[name+"exact"] = u
		out[name+"base64 std"] = []byte(base64.StdEncoding.EncodeToString(u))
		out[name+"base64 std raw"] = []byte(base64.RawStdEncoding.EncodeToString(u))
		out[name+"base64 url"] = []byte(base64.URLEncoding.EncodeToString(u))
		out[name+"base64 url raw"] = []byte(base64.RawURLEncoding.EncodeToString(u))
		for align := range 3 {
			out[fmt.Sprintf("%sbase64 std core %d", name, align)] = stableCore(base64.StdEncoding, u, align)
			out[fmt.Sprintf("%sbase64 url core %d", name, align)] = stableCore(base64.URLEncoding, u, align)
		}
		out[name+"query"] = []byte(url.QueryEscape(string(u)))
		out[name+"path"] = []byte(url.PathEscape(string(u)))
		j, _ := json.Marshal(string(u))
		out[name+"json html"] = j[1 : len(j)-1]
		var b bytes.Buffer
		e := json.NewEncoder(&b)
		e.SetEscapeHTML(false)
		e.Encode(string(u))
		out[name+"json"] = b.Bytes()[1 : b.Len()-2]
		out[name+"hex"] = []byte(hex.EncodeToString(u))
		out[name+"HEX"] = []byte(strings.ToUpper(hex.EncodeToString(u)))
	}
	return out
}

// stableCore finds the characters of a base64 stream that depend on s
// alone when s starts align bytes into a group of three: it encodes s
// between neighbours and between the same neighbours with every bit
// flipped, and keeps the characters that did not change (a character with
// any bit from a neighbour changes when all those bits flip).
func stableCore(enc *base64.Encoding, s []byte, align int) []byte {
	lo, hi := stableRange(enc, s, align, 3)
	pre := bytes.Repeat([]byte{0x5a}, align)
	return []byte(enc.EncodeToString(append(append(pre, s...), 0x5a, 0x5a, 0x5a))[lo:hi])
}

// stableRange returns the range of characters that depend on s alone in
// the encoding of align neighbour bytes, s, and after more neighbour bytes.
func stableRange(enc *base64.Encoding, s []byte, align, after int) (lo, hi int) {
	stream := func(b byte) string {
		pre := bytes.Repeat([]byte{b}, align)
		post := bytes.Repeat([]byte{b}, after)
		return enc.EncodeToString(append(append(pre, s...), post...))
	}
	x, y := stream(0x5a), stream(0xa5)
	lo, hi = -1, -1
	for i := range len(x) {
		if x[i] == y[i] && x[i] != '=' {
			if lo < 0 {
				lo = i
			}
			hi = i + 1
		}
	}
	return lo, hi
}

func mustNew(t testing.TB, secrets ...string) *Masker {
	t.Helper()
	var b [][]byte
	for _, s := range secrets {
		b = append(b, []byte(s))
	}
	m, err := New(b)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m
}

// naive masks data by the package's rules without streaming: it marks
// every byte inside any occurrence of any form, found by bytes.Index, and
// turns each run of marked bytes into one Replacement.
func naive(forms [][]byte, data []byte) []byte {
	covered := make([]bool, len(data))
	for _, f := range forms {
		for i := 0; i+len(f) <= len(data); {
			j := bytes.Index(data[i:], f)
			if j < 0 {
				break
			}
			for k := i + j; k < i+j+len(f); k++ {
				covered[k] = true
			}
			i += j + 1
		}
	}
	var out []byte
	for i, b := range data {
		switch {
		case !covered[i]:
			out = append(out, b)
		case i == 0 || !covered[i-1]:
			out = append(out, Replacement...)
		}
	}
	return out
}

func allForms(secrets ...[]byte) [][]byte {
	var out [][]byte
	for _, s := range secrets {
		out = append(out, forms(s)...)
	}
	return out
}

// writeSplit writes data to a fresh Writer of m in the pieces that cuts
// (increasing offsets) make, then closes it, and returns what came out.
func writeSplit(t testing.TB, m *Masker, data []byte, cuts ...int) []byte {
	t.Helper()
	var out bytes.Buffer
	w := m.Writer(&out)
	prev := 0
	for _, c := range append(cuts, len(data)) {
		if n, err := w.Write(data[prev:c]); n != c-prev || err != nil {
			t.Fatalf("Write(%d bytes) = %d, %v", c-prev, n, err)
		}
		prev = c
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return out.Bytes()
}

func byteByByte(data []byte) []int {
	cuts := make([]int, 0, len(data))
	for i := 1; i < len(data); i++ {
		cuts = append(cuts, i)
	}
	return cuts
}

func TestNewRefuses(t *testing.T) {
	for _, s := range []string{"", "Q", "QZ", "QZ#"} {
		_, err := New([][]byte{[]byte("long enough"), []byte(s)})
		if !errors.Is(err, ErrShortSecret) {
			t.Errorf("New(%q) = %v, want ErrShortSecret", s, err)
		}
		if err != nil && s != "" && strings.Contains(err.Error(), s) {
			t.Errorf("New(%q): the error %q repeats the secret", s, err)
		}
	}
	long := bytes.Repeat([]byte{'x'}, MaxLen+1)
	if _, err := New([][]byte{long}); !errors.Is(err, ErrLongSecret) {
		t.Errorf("New(%d bytes) = %v, want ErrLongSecret", len(long), err)
	}
	if _, err := New([][]byte{long[:MinLen], long[:MaxLen]}); err != nil {
		t.Errorf("New(%d and %d bytes) = %v, want success", MinLen, MaxLen, err)
	}
	m, err := New(nil)
	if err != nil {
		t.Fatalf("New(nil) = %v", err)
	}
	if got := m.String("anything at all"); got != "anything at all" {
		t.Errorf("New(nil).String = %q, want it unchanged", got)
	}
	if got := writeSplit(t, m, []byte("some bytes"), 2, 5); string(got) != "some bytes" {
		t.Errorf("New(nil) writer passed on %q, want it unchanged", got)
	}
}

// TestEveryForm writes each form of each secret between two markers, whole,
// split at every point, and byte by byte, and wants only the markers back.
func TestEveryForm(t *testing.T) {
	for si, s := range secretsForTest {
		m := mustNew(t, s)
		for name, f := range independentForms([]byte(s)) {
			data := append(append([]byte("before["), f...), "]after"...)
			want := "before[***]after"
			if got := m.String(string(data)); got != want {
				t.Errorf("secret %d, %s: String(%q) = %q, want %q", si, name, data, got, want)
				continue
			}
			if got := writeSplit(t, m, data); string(got) != want {
				t.Errorf("secret %d, %s: one Write of %q gave %q, want %q", si, name, data, got, want)
			}
			if got := writeSplit(t, m, data, byteByByte(data)...); string(got) != want {
				t.Errorf("secret %d, %s: byte by byte %q gave %q, want %q", si, name, data, got, want)
			}
			for cut := 1; cut < len(data); cut++ {
				if got := writeSplit(t, m, data, cut); string(got) != want {
					t.Errorf("secret %d, %s: %q split at %d gave %q, want %q", si, name, data, cut, got, want)
					break
				}
			}
		}
	}
}

// TestBase64Stream hides a secret inside a longer base64 stream at each
// alignment, with neighbours of every length, and checks that every
// character that depends on the secret alone is masked and nothing else
// changed.
func TestBase64Stream(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for si, s := range secretsForTest {
		m := mustNew(t, s)
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			for before := range 7 {
				for after := range 5 {
					stream := make([]byte, before+len(s)+after)
					for i := range stream {
						stream[i] = byte(rng.Uint32())
					}
					copy(stream[before:], s)
					e := enc.EncodeToString(stream)
					lo, hi := stableRange(enc, []byte(s), before, after)
					data := []byte("data: " + e + " .")
					got := string(writeSplit(t, m, data, byteByByte(data)...))
					head, tail, ok := strings.Cut(strings.TrimSuffix(strings.TrimPrefix(got, "data: "), " ."), Replacement)
					switch {
					case !ok || strings.Contains(tail, Replacement):
						t.Errorf("secret %d at %d+%d in %q: got %q, want one mask", si, before, after, e, got)
					case !strings.HasPrefix(e, head) || !strings.HasSuffix(e, tail):
						t.Errorf("secret %d at %d+%d in %q: got %q, which changed what is not masked", si, before, after, e, got)
					case len(head) > lo || len(e)-len(tail) < hi:
						t.Errorf("secret %d at %d+%d in %q: got %q, want characters [%d,%d) masked", si, before, after, e, got, lo, hi)
					}
				}
			}
		}
	}
}

func TestOverlaps(t *testing.T) {
	tests := []struct {
		name    string
		secrets []string
		in      string
		want    string
	}{
		{"overlapping secrets", []string{"abcdef12", "ef123456"}, "xx abcdef123456 yy", "xx *** yy"},
		{"one inside another", []string{"0123456789", "3456"}, "<3456> <0123456789> <345>", "<***> <***> <345>"},
		{"prefix of another", []string{"secret", "secret-long"}, "a secret-long b secret c secre", "a *** b *** c secre"},
		{"prefix, reversed order", []string{"secret-long", "secret"}, "a secret-lon b secret-long", "a ***-lon b ***"},
		{"back to back", []string{"tokenA11", "tokenB22"}, "tokenA11tokenB22!tokenA11 tokenB22", "***!*** ***"},
		{"self-overlapping", []string{"abab"}, "x ababab y abaab", "x *** y abaab"},
		{"repeated", []string{"aaaa"}, "aaaaaaaaaaa b aaa", "*** b aaa"},
		{"failure links", []string{"abcX", "bcY1", "cZ12"}, "abcY1 abcZ12 abcabcX", "a*** ab*** abc***"},
		{"secret with mask chars", []string{"x***"}, "x***", "***"},
	}
	for _, tt := range tests {
		m := mustNew(t, tt.secrets...)
		if got := m.String(tt.in); got != tt.want {
			t.Errorf("%s: String(%q) = %q, want %q", tt.name, tt.in, got, tt.want)
		}
		if got := writeSplit(t, m, []byte(tt.in), byteByByte([]byte(tt.in))...); string(got) != tt.want {
			t.Errorf("%s: byte by byte %q gave %q, want %q", tt.name, tt.in, got, tt.want)
		}
	}
}

// TestHeldBack checks the bound: after every Write, all but the last
// maxLen-1 bytes have been passed on, and Flush passes on the rest.
func TestHeldBack(t *testing.T) {
	m := mustNew(t, secretsForTest...)
	maxLen := m.ac.maxLen
	data := bytes.Repeat([]byte("no secret here; "), 4*maxLen/16+1)
	var out bytes.Buffer
	w := m.Writer(&out)
	for i := range data {
		w.Write(data[i : i+1])
		if want := max(0, i+1-(maxLen-1)); out.Len() != want {
			t.Fatalf("after %d bytes, %d passed on, want %d (longest form %d)", i+1, out.Len(), want, maxLen)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), data) {
		t.Errorf("after Flush, passed on %q, want %q", out.Bytes(), data)
	}
}

// TestFlushMidSecret: bytes flushed are gone, but the rest of an occurrence
// that began in them is still masked.
func TestFlushMidSecret(t *testing.T) {
	m := mustNew(t, "correct-horse-battery")
	var out bytes.Buffer
	w := m.Writer(&out)
	w.Write([]byte("pw=correct-hor"))
	w.Flush()
	w.Write([]byte("se-battery done; correct-horse-battery"))
	w.Close()
	if got, want := out.String(), "pw=correct-hor*** done; ***"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestLargeWrite(t *testing.T) {
	secret := "big-write-secret-42"
	m := mustNew(t, secret)
	rng := rand.New(rand.NewPCG(3, 4))
	var data []byte
	var want []byte
	for len(data) < 3*chunk {
		word := fmt.Sprintf("w%d ", rng.IntN(1000))
		data = append(data, word...)
		want = append(want, word...)
		if rng.IntN(500) == 0 || len(data)%chunk > chunk-20 {
			data = append(data, secret...)
			want = append(want, Replacement...)
		}
	}
	if got := writeSplit(t, m, data); !bytes.Equal(got, want) {
		t.Errorf("one Write of %d bytes: output differs from the expected (%d vs %d bytes)", len(data), len(got), len(want))
	}
}

type failWriter struct {
	n   int // bytes accepted before failing
	got []byte
}

var errDisk = errors.New("disk on fire")

func (f *failWriter) Write(p []byte) (int, error) {
	if len(f.got)+len(p) > f.n {
		k := f.n - len(f.got)
		f.got = append(f.got, p[:k]...)
		return k, errDisk
	}
	f.got = append(f.got, p...)
	return len(p), nil
}

type shortWriter struct{}

func (shortWriter) Write(p []byte) (int, error) { return len(p) / 2, nil }

func TestWriterErrors(t *testing.T) {
	m := mustNew(t, "secret-value")
	fw := &failWriter{n: 10}
	w := m.Writer(fw)
	if _, err := w.Write(bytes.Repeat([]byte("x"), 100)); !errors.Is(err, errDisk) {
		t.Fatalf("Write over a failing writer = %v, want errDisk", err)
	}
	for name, f := range map[string]func() error{
		"Write": func() error { _, err := w.Write([]byte("y")); return err },
		"Flush": w.Flush,
		"Close": w.Close,
	} {
		if err := f(); !errors.Is(err, errDisk) {
			t.Errorf("%s after a failure = %v, want errDisk again", name, err)
		}
	}

	w = m.Writer(shortWriter{})
	w.Write([]byte("hello"))
	if err := w.Flush(); !errors.Is(err, io.ErrShortWrite) {
		t.Errorf("Flush over a short writer = %v, want io.ErrShortWrite", err)
	}

	var out bytes.Buffer
	w = m.Writer(&out)
	w.Write([]byte("tail secret-value"))
	if err := w.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	if _, err := w.Write([]byte("more")); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close = %v, want ErrClosed", err)
	}
	if err := w.Flush(); !errors.Is(err, ErrClosed) {
		t.Errorf("Flush after Close = %v, want ErrClosed", err)
	}
	if got := out.String(); got != "tail ***" {
		t.Errorf("Close passed on %q, want %q", got, "tail ***")
	}
}

func TestStringUnchanged(t *testing.T) {
	m := mustNew(t, secretsForTest...)
	s := strings.Repeat("an ordinary error message, ", 10)
	if got := m.String(s); got != s {
		t.Errorf("String(%q) = %q, want it unchanged", s, got)
	}
	allocs := testing.AllocsPerRun(10, func() { m.String(s) })
	if allocs != 0 {
		t.Errorf("String with no secret allocates %v times, want 0", allocs)
	}
}

// TestSharedMasker: many goroutines, started together, each with its own
// Writer over one Masker (run with -race).
func TestSharedMasker(t *testing.T) {
	m := mustNew(t, secretsForTest...)
	data := []byte("x " + secretsForTest[0] + " y " + base64.StdEncoding.EncodeToString([]byte(secretsForTest[1])) + " z")
	want := "x *** y *** z"
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan string, 16)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := range 50 {
				var out bytes.Buffer
				w := m.Writer(&out)
				cut := (g + i) % len(data)
				w.Write(data[:cut])
				w.Write(data[cut:])
				w.Close()
				if out.String() != want || m.String(string(data)) != want {
					errs <- fmt.Sprintf("goroutine %d: got %q, want %q", g, out.String(), want)
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// FuzzMask puts a form of each of two random secrets into random data,
// writes the result in random pieces, and checks that the output is what
// the non-streaming reference gives, that no form of either secret
// survives, and that data holding no form passes unchanged.
func FuzzMask(f *testing.F) {
	f.Add([]byte("some log output\nwith lines\n"), []byte("hunter22"), []byte("s3cret!"), uint8(0), uint16(5), uint64(1))
	f.Add([]byte(""), []byte("a\nbcde\nfghij"), []byte("abcd"), uint8(0x3f), uint16(0), uint64(2))
	f.Add([]byte("{\"key\": \"\"}"), []byte("p@ss<w>\"rd"), []byte("p@ss"), uint8(0x1a), uint16(9), uint64(3))
	f.Add([]byte("QUJDREVGR0g="), []byte("\x00\xff\xfe\xfd"), []byte("ABCDEFGH"), uint8(0x77), uint16(4), uint64(4))
	f.Add([]byte("abababab"), []byte("abab"), []byte("baba"), uint8(0xe4), uint16(3), uint64(5))
	f.Fuzz(func(t *testing.T, data, s1, s2 []byte, form uint8, at uint16, seed uint64) {
		if len(data) > 4096 || len(s1) > 64 || len(s2) > 64 {
			return
		}
		s1 = append(s1, "pad1"[:max(0, 4-len(s1))]...)
		s2 = append(s2, "pad2"[:max(0, 4-len(s2))]...)
		m, err := New([][]byte{s1, s2})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		rng := rand.New(rand.NewPCG(seed, uint64(form)))
		impl := allForms(s1, s2)

		// Data with no form in it passes unchanged.
		if !containsAny(data, impl) {
			if got := writeRandom(t, m, data, rng); !bytes.Equal(got, data) {
				t.Fatalf("data with no secret %q came out as %q", data, got)
			}
		}

		// Put a form of each secret into the data.
		in := data
		for i, s := range [][]byte{s1, s2} {
			pos := (int(at) >> (8 * i)) % (len(in) + 1)
			in = insert(in, pos, pickForm(s, int(form>>(4*i))&0xf, rng))
		}
		got := writeRandom(t, m, in, rng)
		if want := naive(impl, in); !bytes.Equal(got, want) {
			t.Fatalf("input %q:\n got %q\nwant %q", in, got, want)
		}
		for i, s := range [][]byte{s1, s2} {
			for name, f := range independentForms(s) {
				if bytes.Contains(f, []byte("*")) {
					continue // the mask itself can spell it; see the package doc
				}
				if bytes.Contains(got, f) {
					t.Fatalf("secret %d's form %s %q survives in %q (input %q)", i, name, f, got, in)
				}
			}
		}
	})
}

// pickForm returns form number k (of 16) of s: an independent form, or s
// inside a random base64 stream.
func pickForm(s []byte, k int, rng *rand.Rand) []byte {
	if k >= 12 {
		stream := make([]byte, rng.IntN(7)+len(s)+rng.IntN(5))
		for i := range stream {
			stream[i] = byte(rng.Uint32())
		}
		copy(stream[rng.IntN(len(stream)-len(s)+1):], s)
		enc := []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding}[k-12]
		return []byte(enc.EncodeToString(stream))
	}
	all := independentForms(s)
	names := []string{"exact", "base64 std", "base64 std raw", "base64 url", "base64 url raw", "query", "path", "json html", "json", "hex", "HEX", "exact"}
	if k == 11 {
		// A line of a multi-line secret, when there is one.
		for name, f := range all {
			if strings.HasPrefix(name, "line ") && strings.HasSuffix(name, " exact") {
				return f
			}
		}
	}
	return all[names[k]]
}

func insert(data []byte, pos int, f []byte) []byte {
	out := make([]byte, 0, len(data)+len(f))
	out = append(out, data[:pos]...)
	out = append(out, f...)
	return append(out, data[pos:]...)
}

func containsAny(data []byte, forms [][]byte) bool {
	for _, f := range forms {
		if bytes.Contains(data, f) {
			return true
		}
	}
	return false
}

// writeRandom writes data in random pieces and returns the output. It
// flushes only at the end: an earlier Flush lets the start of a secret
// through, by design.
func writeRandom(t *testing.T, m *Masker, data []byte, rng *rand.Rand) []byte {
	var cuts []int
	for i := 0; i < len(data); {
		i += 1 + rng.IntN(min(len(data), 40))
		if i < len(data) {
			cuts = append(cuts, i)
		}
	}
	return writeSplit(t, m, data, cuts...)
}
