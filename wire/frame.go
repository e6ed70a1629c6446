package wire

import (
	"encoding/binary"
	"fmt"
	"io"
	"unsafe"
)

// HeaderLen is the size in bytes of the fixed frame header.
const HeaderLen = 26

// ProtocolVersion is the version exchanged in the handshake. A parent and a
// child with different versions refuse to talk.
//
// History:
//   - 1: first version: 26-byte header, msgpack/raw/error encodings, handles
//     100-111, error codes 1-12.
//   - 2: CANCEL_TASK (112); RunTask id and deadline_ns and the budget
//     limits; task output as acknowledged chunks; ADD_ROUTE only for IDs
//     in blocks granted to the child's subtree; random dynamic handles.
//   - 3: GET_BLOBS (113) and PULL_BLOBS (114), directory blobs; RunTask
//     workspace and disk_bytes; TaskResult output_tree; the task kinds
//     "workspace" and "outputs". A version-2 child would answer the new
//     handles with "no such handle" mid-run: hence a new version.
//   - 4: RunTask stdin is a channel the context reads the command's stdin
//     from, a StdinChunk per request, instead of bytes sent whole. A
//     version-3 context would fail to decode the new field: hence a new
//     version.
const ProtocolVersion = 4

// DefaultMaxMessageSize is the largest body a router accepts unless configured
// otherwise. Children inherit their parent's limit in the handshake.
const DefaultMaxMessageSize = 128 << 20

// Encoding says how a frame's body is to be read. It is the first field of the
// header, so a stream that is out of step (or is not a Spindle stream at all)
// is detected on the first bad frame.
type Encoding uint16

// The encodings. Any other value in a header is corruption.
const (
	// EncMsgpack: the body is one msgpack value.
	EncMsgpack Encoding = 0x534d // "SM"
	// EncRaw: the body is opaque bytes, passed through untouched.
	EncRaw Encoding = 0x5352 // "SR"
	// EncError: the body is a msgpack ErrorBody. Used by dead messages and by
	// replies that carry a failure.
	EncError Encoding = 0x5345 // "SE"
)

// Valid reports whether e is one of the defined encodings.
func (e Encoding) Valid() bool {
	return e == EncMsgpack || e == EncRaw || e == EncError
}

func (e Encoding) String() string {
	switch e {
	case EncMsgpack:
		return "msgpack"
	case EncRaw:
		return "raw"
	case EncError:
		return "error"
	}
	return fmt.Sprintf("Encoding(%#04x)", uint16(e))
}

// Message is one frame: the routing fields of the header and the body.
// Lengths are derived from Body when encoding.
type Message struct {
	Enc     Encoding
	Dst     uint32 // destination context ID; 0 is the master
	Src     uint32 // source context ID; replies go here
	Auth    uint32 // the context under whose authority the message acts
	Handle  uint32 // handle in the destination context
	ReplyTo uint32 // handle for the reply; 0 = none; IsDead marks a dead message
	Body    []byte

	buf *Buffer // the pooled buffer behind Body, if any (see Release)
}

// IsDead reports whether m is a dead message (an error notice that must
// never be answered).
func (m *Message) IsDead() bool { return m.ReplyTo == IsDead }

func (m *Message) String() string {
	return fmt.Sprintf("Message{%s dst=%d src=%d auth=%d handle=%d reply_to=%d len=%d}",
		m.Enc, m.Dst, m.Src, m.Auth, m.Handle, m.ReplyTo, len(m.Body))
}

// Header is a decoded frame header.
type Header struct {
	Enc                             Encoding
	Dst, Src, Auth, Handle, ReplyTo uint32
	Length                          uint32 // body length in bytes
}

// AppendHeader appends m's 26-byte header to b and returns the result.
func (m *Message) AppendHeader(b []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(m.Enc))
	b = binary.BigEndian.AppendUint32(b, m.Dst)
	b = binary.BigEndian.AppendUint32(b, m.Src)
	b = binary.BigEndian.AppendUint32(b, m.Auth)
	b = binary.BigEndian.AppendUint32(b, m.Handle)
	b = binary.BigEndian.AppendUint32(b, m.ReplyTo)
	return binary.BigEndian.AppendUint32(b, uint32(len(m.Body)))
}

// AppendFrame appends m's header and body to b.
func (m *Message) AppendFrame(b []byte) []byte {
	return append(m.AppendHeader(b), m.Body...)
}

// DecodeError describes a frame that cannot be accepted. The stream it came
// from is out of step and must be closed.
type DecodeError struct {
	Reason string
}

func (e *DecodeError) Error() string { return "wire: bad frame: " + e.Reason }

// ParseHeader decodes a header from the first HeaderLen bytes of b and checks
// the encoding and the body length against max (0 means
// DefaultMaxMessageSize). It never allocates.
func ParseHeader(b []byte, max uint32) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, &DecodeError{Reason: fmt.Sprintf("short header: %d of %d bytes", len(b), HeaderLen)}
	}
	if max == 0 {
		max = DefaultMaxMessageSize
	}
	h := Header{
		Enc:     Encoding(binary.BigEndian.Uint16(b[0:2])),
		Dst:     binary.BigEndian.Uint32(b[2:6]),
		Src:     binary.BigEndian.Uint32(b[6:10]),
		Auth:    binary.BigEndian.Uint32(b[10:14]),
		Handle:  binary.BigEndian.Uint32(b[14:18]),
		ReplyTo: binary.BigEndian.Uint32(b[18:22]),
		Length:  binary.BigEndian.Uint32(b[22:26]),
	}
	if !h.Enc.Valid() {
		return h, &DecodeError{Reason: fmt.Sprintf("corruption detected: unknown encoding %#04x", uint16(h.Enc))}
	}
	if h.Length > max {
		return h, &DecodeError{Reason: fmt.Sprintf("maximum message size exceeded: %d > %d bytes", h.Length, max)}
	}
	return h, nil
}

// ReadMessage reads one frame from r. hdr is scratch space of at least
// HeaderLen bytes (so a reader loop allocates only bodies). The body length is
// checked against max before the body is allocated; a body of PoolMin bytes
// or more comes from the pool (see Message.Release). io.EOF is returned only
// when r ends cleanly between frames; a frame cut short gives
// io.ErrUnexpectedEOF.
func ReadMessage(r io.Reader, hdr []byte, max uint32) (*Message, error) {
	hdr = hdr[:HeaderLen]
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, err
	}
	h, err := ParseHeader(hdr, max)
	if err != nil {
		return nil, err
	}
	var m *Message
	switch {
	case h.Length >= PoolMin:
		m = &Message{}
		m.buf, m.Body = getBuffer(int(h.Length))
	case h.Length > uint32(smallBody):
		m = &Message{Body: make([]byte, h.Length)}
	case h.Length > 0:
		// One allocation for the message and its body (most calls and
		// replies are this small); the capacity stops an append from
		// running past the body.
		sm := &smallMessage{}
		m = &sm.m
		m.Body = sm.body[:h.Length:h.Length]
	default:
		m = &Message{}
	}
	m.Enc, m.Dst, m.Src, m.Auth, m.Handle, m.ReplyTo = h.Enc, h.Dst, h.Src, h.Auth, h.Handle, h.ReplyTo
	if h.Length > 0 {
		if _, err := io.ReadFull(r, m.Body); err != nil {
			m.Release()
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return m, nil
}

// smallBody is the largest body ReadMessage allocates together with its
// Message: a smallMessage is 128 bytes, one of the allocator's size classes.
const smallBody = 128 - int(unsafe.Sizeof(Message{}))

type smallMessage struct {
	m    Message
	body [smallBody]byte
}

// DecodeFrame decodes one whole frame held in b, which must be exactly one
// frame long. It is the in-memory twin of ReadMessage.
func DecodeFrame(b []byte, max uint32) (*Message, error) {
	h, err := ParseHeader(b, max)
	if err != nil {
		return nil, err
	}
	if rest := uint64(len(b) - HeaderLen); rest != uint64(h.Length) {
		return nil, &DecodeError{Reason: fmt.Sprintf("length field says %d bytes, frame holds %d", h.Length, rest)}
	}
	m := &Message{Enc: h.Enc, Dst: h.Dst, Src: h.Src, Auth: h.Auth, Handle: h.Handle, ReplyTo: h.ReplyTo}
	if h.Length > 0 {
		m.Body = append([]byte(nil), b[HeaderLen:]...)
	}
	return m, nil
}
