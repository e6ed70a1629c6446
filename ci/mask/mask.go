package mask

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
)

const (
	// MinLen is the length in bytes of the shortest secret New accepts,
	// and of the shortest line of a multi-line secret that is masked on
	// its own.
	MinLen = 4

	// MaxLen is the length in bytes of the longest secret New accepts.
	MaxLen = 64 << 10

	// Replacement is what every run of masked bytes becomes.
	Replacement = "***"
)

// Sentinel errors of New and Writer. Check them with errors.Is.
var (
	// ErrShortSecret is returned by New for a secret shorter than MinLen.
	ErrShortSecret = errors.New("mask: secret shorter than 4 bytes")

	// ErrLongSecret is returned by New for a secret longer than MaxLen.
	ErrLongSecret = errors.New("mask: secret longer than 64 KiB")

	// ErrClosed is returned by Write and Flush after Close.
	ErrClosed = errors.New("mask: writer closed")
)

// Masker finds the secrets it was built with, in all their forms (see the
// package doc). It is immutable and safe for concurrent use.
type Masker struct {
	ac *automaton
}

// New returns a Masker for secrets. It copies what it needs; the caller may
// reuse the slices. No secrets gives a Masker that masks nothing. A secret
// shorter than MinLen or longer than MaxLen is an error (ErrShortSecret,
// ErrLongSecret) that names the secret by its index, never by its bytes.
func New(secrets [][]byte) (*Masker, error) {
	var all [][]byte
	for i, s := range secrets {
		switch {
		case len(s) < MinLen:
			return nil, fmt.Errorf("mask: secret %d is %d bytes: %w", i, len(s), ErrShortSecret)
		case len(s) > MaxLen:
			return nil, fmt.Errorf("mask: secret %d is %d bytes: %w", i, len(s), ErrLongSecret)
		}
		all = append(all, forms(s)...)
	}
	return &Masker{ac: build(all)}, nil
}

// Writer returns a Writer that passes on to w what is written to it, with
// every form of every secret replaced by Replacement.
func (m *Masker) Writer(w io.Writer) *Writer {
	return &Writer{ac: m.ac, w: w}
}

// String returns s with every form of every secret replaced by Replacement.
// It returns s itself when s holds no secret.
func (m *Masker) String(s string) string {
	if !m.ac.contains(s) {
		return s
	}
	var b strings.Builder
	w := m.Writer(&b)
	// A strings.Builder never fails, so neither can w.
	w.Write([]byte(s))
	w.Flush()
	return b.String()
}

// forms returns the byte strings that stand for secret s: the secret and
// each line of it of at least MinLen bytes, each of them as it is and in
// every encoding the package doc lists. It may hold duplicates.
func forms(s []byte) [][]byte {
	units := [][]byte{bytes.Clone(s)}
	if bytes.IndexByte(s, '\n') >= 0 {
		for line := range bytes.SplitSeq(s, []byte("\n")) {
			line = bytes.TrimSuffix(line, []byte("\r"))
			if len(line) >= MinLen {
				units = append(units, bytes.Clone(line))
			}
		}
	}
	var out [][]byte
	add := func(f []byte) {
		if len(f) >= MinLen {
			out = append(out, f)
		}
	}
	for _, u := range units {
		add(u)
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
			for align := range 3 {
				core, tail, padded := base64Forms(enc, u, align)
				add(core)
				add(tail)
				add(padded)
			}
		}
		add([]byte(url.QueryEscape(string(u))))
		add([]byte(url.PathEscape(string(u))))
		for _, html := range []bool{true, false} {
			add(jsonString(u, html))
		}
		h := hex.EncodeToString(u)
		add([]byte(h))
		add([]byte(strings.ToUpper(h)))
	}
	return out
}

// base64Forms returns what is left of s in enc's encoding of a stream in
// which s begins align bytes after a multiple of three.
//
// s occupies bits [8*align, 8*align + 8*len(s)) of the stream, so character
// k depends on s alone when 6k >= 8*align and 6k+6 <= 8*align + 8*len(s):
// those characters are the core, whatever bytes follow s. When nothing
// follows, the encoding goes on with one more character holding the last
// bits of s and zero bits, then the padding: the tail (from the core's first
// character to the end, unpadded) and padded (the same with the padding)
// are those forms. With align 0 they are the encoding of s itself.
func base64Forms(enc *base64.Encoding, s []byte, align int) (core, tail, padded []byte) {
	stream := make([]byte, align+len(s))
	copy(stream[align:], s)
	full := enc.EncodeToString(stream)
	raw := strings.TrimRight(full, "=")
	from := (8*align + 5) / 6
	to := (8*align + 8*len(s)) / 6
	return []byte(raw[from:to]), []byte(raw[from:]), []byte(full[from:])
}

// jsonString returns s as encoding/json writes a string, without the
// quotes.
func jsonString(s []byte, html bool) []byte {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(html)
	// Encoding a string cannot fail.
	e.Encode(string(s))
	out := bytes.TrimSuffix(b.Bytes(), []byte("\n"))
	return out[1 : len(out)-1]
}
