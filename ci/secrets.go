package ci

import (
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
)

// MaxSecretBytes bounds one secret's value.
const MaxSecretBytes = 64 << 10

// ResolveSecrets reads the values of the job file's secrets on the master,
// from the sources the file names: only for a job file one trusts as much
// as the master's environment and files (spindle ci does not, unless told
// to: it takes values from its own flags). It reads them
// from the environment (lookup, e.g. os.LookupEnv) or from a file
// (relative to the job file's directory). A secret that is not set is an
// error naming it and where it was looked for; so is one too short to
// mask (see package ci/mask).
func ResolveSecrets(f *File, lookup func(string) (string, bool)) (map[string][]byte, error) {
	out := make(map[string][]byte, len(f.Secrets))
	for _, name := range slices.Sorted(maps.Keys(f.Secrets)) {
		src := f.Secrets[name]
		var v []byte
		switch {
		case src.Env != "":
			s, ok := lookup(src.Env)
			if !ok {
				return nil, fmt.Errorf("secret %s: environment variable %s is not set", name, src.Env)
			}
			v = []byte(s)
		case src.File != "":
			p := src.File
			if !filepath.IsAbs(p) {
				p = filepath.Join(filepath.Dir(f.Path), p)
			}
			var err error
			if v, err = ReadSecretFile(p); err != nil {
				return nil, fmt.Errorf("secret %s: %w", name, err)
			}
		default:
			return nil, fmt.Errorf("secret %s: neither env nor file", name)
		}
		if len(v) > MaxSecretBytes {
			return nil, fmt.Errorf("secret %s: %d bytes, more than %d", name, len(v), MaxSecretBytes)
		}
		out[name] = v
	}
	return out, nil
}

// ReadSecretFile reads a secret's value from a regular file of at most
// MaxSecretBytes.
func ReadSecretFile(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", p)
	}
	v, err := io.ReadAll(io.LimitReader(f, MaxSecretBytes+1))
	if err != nil {
		return nil, err
	}
	if len(v) > MaxSecretBytes {
		return nil, fmt.Errorf("%s holds more than %d bytes", p, MaxSecretBytes)
	}
	return v, nil
}
