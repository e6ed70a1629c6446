package mask

import (
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// benchStream returns about size bytes of build-log-like text (words,
// paths, hashes, base64) with one of secrets, in some form, every 64 KiB
// or so.
func benchStream(size int, secrets [][]byte) []byte {
	rng := rand.New(rand.NewPCG(7, 8))
	words := []string{"ok", "github.com/spindle-hq/spindle/ci", "PASS", "--- FAIL:", "=== RUN", "TestSomething/sub_case", "0.012s", "compiling", "downloading", "sha256:", "error:", "warning:", "main.go:42:7:"}
	var b []byte
	for len(b) < size {
		switch rng.IntN(20) {
		case 0:
			h := make([]byte, 16)
			for i := range h {
				h[i] = byte(rng.Uint32())
			}
			b = fmt.Appendf(b, "%x ", h)
		case 1:
			h := make([]byte, 24)
			for i := range h {
				h[i] = byte(rng.Uint32())
			}
			b = append(b, base64.StdEncoding.EncodeToString(h)...)
			b = append(b, ' ')
		default:
			b = append(b, words[rng.IntN(len(words))]...)
			b = append(b, ' ')
		}
		if rng.IntN(10) == 0 {
			b = append(b, '\n')
		}
		if rng.IntN(6000) == 0 {
			s := secrets[rng.IntN(len(secrets))]
			if rng.IntN(2) == 0 {
				b = append(b, s...)
			} else {
				b = append(b, base64.StdEncoding.EncodeToString(s)...)
			}
		}
	}
	return b[:size]
}

func benchSecrets() [][]byte {
	rng := rand.New(rand.NewPCG(9, 10))
	var secrets [][]byte
	for i := range 10 {
		s := make([]byte, 32)
		for j := range s {
			s[j] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"[rng.IntN(64)]
		}
		secrets = append(secrets, fmt.Appendf(nil, "tok%d_%s", i, s))
	}
	return secrets
}

// BenchmarkWriter masks a 16 MiB log with 10 secrets of 37 bytes, written
// in 32 KiB pieces.
func BenchmarkWriter(b *testing.B) {
	secrets := benchSecrets()
	m, err := New(secrets)
	if err != nil {
		b.Fatal(err)
	}
	data := benchStream(16<<20, secrets)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		w := m.Writer(io.Discard)
		for i := 0; i < len(data); i += 32 << 10 {
			w.Write(data[i:min(len(data), i+32<<10)])
		}
		w.Close()
	}
}

// BenchmarkNew is the cost of building the matcher for 10 secrets.
func BenchmarkNew(b *testing.B) {
	secrets := benchSecrets()
	for b.Loop() {
		if _, err := New(secrets); err != nil {
			b.Fatal(err)
		}
	}
}
