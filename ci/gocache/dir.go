package gocache

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spindle-hq/spindle/internal/atomicfile"
)

// IDSize is the size of an action ID and of an output ID: a sha256.
const IDSize = sha256.Size

const (
	// TrimGrace is how recently used an output must have been for Trim to
	// keep it whatever its age or the directory's size: another go command
	// may be reading it.
	TrimGrace = time.Hour
	// touchEvery is how stale a file's mtime may get before a use renews
	// it (so a warm build does not rewrite every mtime); less than
	// TrimGrace, so an output in use always looks used within it.
	touchEvery = 10 * time.Minute
	// maxEntryBytes bounds an action file: one short line.
	maxEntryBytes = 256
	entryMagic    = "spindle-gocache-v1"
)

var (
	// ErrBadID is an action or output ID that is not IDSize bytes.
	ErrBadID = errors.New("gocache: an ID must be 32 bytes")
	// ErrMismatch is a body that is not what its put said: another size,
	// or bytes that do not hash to its output ID.
	ErrMismatch = errors.New("gocache: body does not match its output ID")

	errTooLong = errors.New("gocache: file longer than an entry can be")
)

// Entry is what a cache holds of one action: its output.
type Entry struct {
	Output []byte    // the output ID: the sha256 of the output's bytes
	Size   int64     // the output's size
	Time   time.Time // when the entry was put
	Path   string    // the file holding the output, absolute
}

// Dir is a cache directory (see the package doc). It is safe for
// concurrent use by goroutines and by processes sharing the directory.
type Dir struct {
	root string
}

// Open opens the cache directory root, making it (0700) if it is not
// there. root must be absolute: go reads outputs by the paths it is given.
func Open(root string) (*Dir, error) {
	if !filepath.IsAbs(root) {
		return nil, fmt.Errorf("gocache: %q: the cache directory must be an absolute path", root)
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("gocache: %w", err)
	}
	fi, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("gocache: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("gocache: %s is not a directory", root)
	}
	return &Dir{root: filepath.Clean(root)}, nil
}

// Root is the directory's path.
func (d *Dir) Root() string { return d.root }

// file is the path of id's file of kind 'a' (action) or 'd' (output).
func (d *Dir) file(id []byte, kind byte) string {
	h := hex.EncodeToString(id)
	return filepath.Join(d.root, h[:2], h+"-"+string(kind))
}

// OutputPath is the path of output's file, whether or not it is there.
func (d *Dir) OutputPath(output []byte) string { return d.file(output, 'd') }

// Output reports whether output's file is there, and its size.
func (d *Dir) Output(output []byte) (path string, size int64, ok bool) {
	if len(output) != IDSize {
		return "", 0, false
	}
	path = d.file(output, 'd')
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return path, 0, false
	}
	return path, fi.Size(), true
}

// Get returns the entry of action. A missing entry, or one whose output
// file is gone or of another size, is a miss (false, nil); err is for an
// entry that could not be read.
func (d *Dir) Get(action []byte) (Entry, bool, error) {
	if len(action) != IDSize {
		return Entry{}, false, ErrBadID
	}
	ap := d.file(action, 'a')
	b, amtime, err := readSmall(ap, maxEntryBytes)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errTooLong) {
		return Entry{}, false, nil // a damaged entry is a miss, and the next put replaces it
	}
	if err != nil {
		return Entry{}, false, fmt.Errorf("gocache: entry %x: %w", action, err)
	}
	e, ok := parseEntry(b)
	if !ok {
		return Entry{}, false, nil
	}
	e.Path = d.file(e.Output, 'd')
	fi, err := os.Stat(e.Path)
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != e.Size {
		return Entry{}, false, nil
	}
	now := time.Now()
	touch(e.Path, fi.ModTime(), now)
	touch(ap, amtime, now)
	return e, true, nil
}

// touch marks a file used, when its mark is older than touchEvery.
func touch(path string, mtime, now time.Time) {
	if now.Sub(mtime) > touchEvery {
		_ = os.Chtimes(path, now, now)
	}
}

// Put stores body, size bytes that hash to output, as the output of
// action, and returns the new entry. body is read to its end or to size+1
// bytes, whichever is first. An output already in the directory is not
// written again (its bytes were checked when it was).
func (d *Dir) Put(action, output []byte, size int64, body io.Reader) (Entry, error) {
	if len(action) != IDSize || len(output) != IDSize {
		return Entry{}, ErrBadID
	}
	if size < 0 {
		return Entry{}, fmt.Errorf("gocache: put %x: size %d", action, size)
	}
	e := Entry{Output: slices.Clone(output), Size: size, Time: time.Now(), Path: d.file(output, 'd')}
	// An output already here is marked used first, so that a Trim that
	// listed it before sees it used (and keeps it); if it is gone by
	// then, it is written.
	if fi, err := os.Stat(e.Path); err == nil && fi.Mode().IsRegular() && fi.Size() == size && os.Chtimes(e.Path, e.Time, e.Time) == nil {
		if _, err := io.Copy(io.Discard, io.LimitReader(body, size+1)); err != nil {
			return Entry{}, fmt.Errorf("gocache: put %x: body: %w", action, err)
		}
	} else if err := d.writeOutput(e.Path, output, size, body); err != nil {
		return Entry{}, fmt.Errorf("gocache: put %x: %w", action, err)
	}
	line := fmt.Sprintf("%s %x %d %d\n", entryMagic, output, size, e.Time.UnixNano())
	if err := writeAtomic(d.file(action, 'a'), func(f *os.File) error {
		_, err := f.WriteString(line)
		return err
	}); err != nil {
		return Entry{}, fmt.Errorf("gocache: put %x: %w", action, err)
	}
	return e, nil
}

// writeOutput writes body to path, checking it is size bytes hashing to
// output.
func (d *Dir) writeOutput(path string, output []byte, size int64, body io.Reader) error {
	return writeAtomic(path, func(f *os.File) error {
		h := sha256.New()
		n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(body, size+1))
		switch {
		case err != nil:
			return fmt.Errorf("body: %w", err)
		case n != size:
			return fmt.Errorf("%w: %d bytes, the put said %d", ErrMismatch, n, size)
		case !bytes.Equal(h.Sum(nil), output):
			return fmt.Errorf("%w: the bytes hash to %x, not %x", ErrMismatch, h.Sum(nil), output)
		}
		return nil
	})
}

// writeAtomic writes path through a temporary file in its directory,
// renamed over it once fill has succeeded.
func writeAtomic(path string, fill func(*os.File) error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(path, ".tmp-", fill)
}

// readSmall reads a file of at most max bytes, and returns its mtime.
func readSmall(path string, max int64) ([]byte, time.Time, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, time.Time{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, time.Time{}, err
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err == nil && int64(len(b)) > max {
		err = errTooLong
	}
	return b, fi.ModTime(), err
}

// parseEntry parses an action file's line.
func parseEntry(b []byte) (Entry, bool) {
	f := strings.Fields(string(b))
	if len(f) != 4 || f[0] != entryMagic {
		return Entry{}, false
	}
	out, err := hex.DecodeString(f[1])
	size, serr := strconv.ParseInt(f[2], 10, 64)
	ns, terr := strconv.ParseInt(f[3], 10, 64)
	if err != nil || serr != nil || terr != nil || len(out) != IDSize || size < 0 {
		return Entry{}, false
	}
	return Entry{Output: out, Size: size, Time: time.Unix(0, ns)}, true
}

// TrimStats says what a Trim removed and kept.
type TrimStats struct {
	Removed      int   // files removed: entries, outputs and stale temporaries
	RemovedBytes int64 // their bytes
	Kept         int   // outputs kept
	KeptBytes    int64 // their bytes
}

// Trim removes the entries and outputs not used for maxAge (0: no age
// bound) and then, while the outputs left pass maxBytes (0: no bound),
// the least recently used outputs, and temporary files left by a writer
// that died. Whatever the bounds, it keeps what was used in the last
// TrimGrace. An entry whose output is removed is a miss from then on.
func (d *Dir) Trim(now time.Time, maxAge time.Duration, maxBytes int64) (TrimStats, error) {
	type file struct {
		path  string
		size  int64
		mtime time.Time
	}
	var outputs []file
	var st TrimStats
	remove := func(f file) bool {
		// Used since it was listed (a Get or Put touched it): kept.
		if fi, err := os.Stat(f.path); err != nil || fi.ModTime().After(f.mtime) {
			return false
		}
		if os.Remove(f.path) != nil {
			return false
		}
		st.Removed++
		st.RemovedBytes += f.size
		return true
	}
	old := func(f file, age time.Duration) bool {
		return age > 0 && now.Sub(f.mtime) > max(age, TrimGrace)
	}
	subs, err := os.ReadDir(d.root)
	if err != nil {
		return st, fmt.Errorf("gocache: trim: %w", err)
	}
	for _, sub := range subs {
		if !sub.IsDir() || len(sub.Name()) != 2 {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(d.root, sub.Name()))
		if err != nil {
			continue
		}
		for _, de := range ents {
			fi, err := de.Info()
			if err != nil || !fi.Mode().IsRegular() {
				continue
			}
			f := file{filepath.Join(d.root, sub.Name(), de.Name()), fi.Size(), fi.ModTime()}
			name := de.Name()
			switch {
			case strings.HasPrefix(name, ".tmp-"):
				if old(f, TrimGrace) {
					remove(f)
				}
			case old(f, maxAge):
				remove(f)
			case strings.HasSuffix(name, "-d"):
				outputs = append(outputs, f)
			}
		}
	}
	var total int64
	for _, f := range outputs {
		total += f.size
	}
	if maxBytes > 0 && total > maxBytes {
		slices.SortFunc(outputs, func(a, b file) int { return a.mtime.Compare(b.mtime) })
		kept := outputs[:0]
		for _, f := range outputs {
			if total > maxBytes && old(f, TrimGrace) && remove(f) {
				total -= f.size
				continue
			}
			kept = append(kept, f)
		}
		outputs = kept
	}
	st.Kept, st.KeptBytes = len(outputs), total
	return st, nil
}

// trimMark is the file whose mtime says when the directory was last
// trimmed.
const trimMark = "trimmed"

// TrimIfDue trims the directory (Trim) when it was last trimmed more than
// every ago, or never, and says whether it did. Of processes sharing the
// directory at most one trims in each period, give or take a race that
// costs a second walk.
func (d *Dir) TrimIfDue(now time.Time, every, maxAge time.Duration, maxBytes int64) (TrimStats, bool, error) {
	mark := filepath.Join(d.root, trimMark)
	if fi, err := os.Stat(mark); err == nil && now.Sub(fi.ModTime()) < every {
		return TrimStats{}, false, nil
	}
	if err := os.WriteFile(mark, nil, 0o600); err != nil {
		return TrimStats{}, false, fmt.Errorf("gocache: trim: %w", err)
	}
	_ = os.Chtimes(mark, now, now)
	st, err := d.Trim(now, maxAge, maxBytes)
	return st, true, err
}
