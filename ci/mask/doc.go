// Package mask replaces secrets by "***" in logs, reports and error text
// before anyone sees them, in every form a program is likely to print them.
//
// New builds a Masker from the secrets. Masker.Writer wraps an io.Writer in
// a streaming Writer that masks what passes through it, even an occurrence
// split across Write calls; Masker.String masks a whole string (an error, a
// report field, a file name).
//
// # Forms
//
// For each secret, and for each line of a multi-line secret on its own
// (split at "\n", a trailing "\r" removed, lines of at least MinLen bytes),
// the Masker looks for:
//
//   - the bytes themselves;
//   - base64, standard and URL alphabets, padded and unpadded;
//   - the secret inside a longer base64 stream, at each of the three byte
//     alignments: the characters whose six bits all come from the secret
//     (the stable core) are masked, and when the stream ends with the
//     secret also the last character and the padding, so that at most the
//     few bits that share a character with the data before or after remain;
//   - url.QueryEscape and url.PathEscape;
//   - the string as encoding/json writes it, without the quotes, with HTML
//     escaping on (json.Marshal) and off (Encoder.SetEscapeHTML(false));
//   - hex, lower and upper case.
//
// Occurrences may overlap, and one secret may be a prefix of another: every
// byte that lies inside an occurrence of any form is hidden, and each
// maximal run of hidden bytes becomes one "***". So "abcdef" with the
// secrets "abcd" and "cdef" becomes "***", and two secrets printed back to
// back become one "***".
//
// A secret shorter than MinLen (4) bytes is refused by New with
// ErrShortSecret: a one-letter secret would mask every occurrence of that
// letter and leave logs unreadable. A secret longer than MaxLen (64 KiB) is
// refused with ErrLongSecret. Short secrets also mean short base64 cores
// (4 characters for a 4-byte secret), which occasionally mask unrelated
// text; masking too much is the safe direction.
//
// What stays visible: output cannot contain a form of a secret unless that
// form contains "*", since the "***" put in its place can spell a secret
// together with the bytes around it. Forms not listed above (base64 wrapped
// at 76 columns, lower-case %xx escapes, a secret printed with characters
// between its bytes) are not recognised.
//
// # Bounds
//
// A Writer holds back at most the longest form's length minus one bytes:
// a byte is passed on as soon as no occurrence that could still cover it
// can begin. Flush and Close pass on the rest; a secret whose first bytes
// were flushed has the rest of it masked when it arrives. Write processes
// its argument in chunks of 64 KiB, so a Writer's buffers stay below that
// plus the held-back bytes, whatever the size of one Write.
//
// The matcher is an Aho–Corasick automaton over all forms of all secrets,
// built once by New; it takes about 200 bytes of memory per byte of secret
// (a 37-byte token: 7 KB; a 2.7 KB PEM key: 550 KB), more while New builds
// it. The longest form is usually the hex encoding, twice the secret's
// length; JSON escaping of bytes that are not UTF-8 can make it six times.
//
// # Concurrency
//
// A Masker is immutable after New and safe for concurrent use; any number
// of Writers may share one. A Writer is not safe for concurrent use: one
// goroutine writes to it, flushes and closes it.
//
// # Lifecycle
//
// Close flushes a Writer and makes later writes fail with ErrClosed; it does
// not close the io.Writer beneath, which belongs to the caller. The first
// error of the writer beneath is returned by that Write and by every later
// call.
package mask
