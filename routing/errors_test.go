package routing_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/spindle-hq/spindle/broker"
	"github.com/spindle-hq/spindle/internal/testutil"
	"github.com/spindle-hq/spindle/routing"
	"github.com/spindle-hq/spindle/wire"
	"github.com/vmihailenco/msgpack/v5"
)

var codes = []struct {
	code     wire.Code
	sentinel error
}{
	{wire.CodeNoRoute, routing.ErrNoRoute},
	{wire.CodeInvalidHandle, routing.ErrInvalidHandle},
	{wire.CodeRefused, routing.ErrRefused},
	{wire.CodeTooLarge, routing.ErrTooLarge},
	{wire.CodeDisconnected, routing.ErrDisconnected},
	{wire.CodeShutdown, routing.ErrShutdown},
	{wire.CodeUnidirectional, routing.ErrUnidirectional},
	{wire.CodeUnexpectedSrc, routing.ErrUnexpectedSource},
	{wire.CodeClosed, routing.ErrSenderClosed},
	{wire.CodeCallFailed, routing.ErrCallFailed},
	{wire.CodeBadRequest, routing.ErrBadRequest},
	{wire.CodeNotFound, routing.ErrNotFound},
}

func TestCodeOfAndIs(t *testing.T) {
	for _, tt := range codes {
		wrapped := fmt.Errorf("op on context 7: %w", tt.sentinel)
		if got := routing.CodeOf(tt.sentinel); got != tt.code {
			t.Errorf("CodeOf(%v) = %d, want %d", tt.sentinel, got, tt.code)
		}
		if got := routing.CodeOf(wrapped); got != tt.code {
			t.Errorf("CodeOf(%v) = %d, want %d", wrapped, got, tt.code)
		}
		re := &routing.RemoteError{Code: tt.code, Message: "m", Context: 7}
		if got := routing.CodeOf(fmt.Errorf("w: %w", re)); got != tt.code {
			t.Errorf("CodeOf(wrapped RemoteError{Code: %d}) = %d", tt.code, got)
		}
		for _, other := range codes {
			if got := errors.Is(re, other.sentinel); got != (other.code == tt.code) {
				t.Errorf("errors.Is(RemoteError{Code: %d}, %v) = %v", tt.code, other.sentinel, got)
			}
		}
	}
	for _, code := range []wire.Code{wire.CodeUnknown, 999} {
		re := &routing.RemoteError{Code: code}
		for _, tt := range codes {
			if errors.Is(re, tt.sentinel) {
				t.Errorf("errors.Is(RemoteError{Code: %d}, %v) = true", code, tt.sentinel)
			}
		}
		if got := routing.CodeOf(re); got != code {
			t.Errorf("CodeOf(RemoteError{Code: %d}) = %d", code, got)
		}
	}
	if got := routing.CodeOf(errors.New("plain")); got != wire.CodeCallFailed {
		t.Errorf("CodeOf(plain error) = %d, want %d", got, wire.CodeCallFailed)
	}
	if got := (&routing.RemoteError{Code: 1, Message: "no way", Context: 3}).Error(); got != "context 3: no way" {
		t.Errorf("Error() = %q", got)
	}
}

func TestErrorOf(t *testing.T) {
	body, _ := msgpack.Marshal(&wire.ErrorBody{Code: wire.CodeNotFound, Message: "nope"})
	tests := []struct {
		m    *wire.Message
		want error // nil: no error
	}{
		{&wire.Message{Enc: wire.EncRaw, Body: []byte("ok")}, nil},
		{&wire.Message{Enc: wire.EncMsgpack, Body: []byte{0xc0}}, nil},
		{&wire.Message{Enc: wire.EncError, Src: 4, Body: body}, routing.ErrNotFound},
		{&wire.Message{Enc: wire.EncError, Src: 4, ReplyTo: wire.IsDead, Body: body}, routing.ErrNotFound},
		{&wire.Message{Enc: wire.EncError, Src: 4, Body: []byte{0xc1}}, routing.ErrBadRequest},
		// A hostile child's bodies: 1 MiB of nesting, a 2^32-1 element map.
		{&wire.Message{Enc: wire.EncError, Src: 4, Body: append(bytes.Repeat([]byte{0x91}, 1<<20), 0xc0)}, wire.ErrMalformed},
		{&wire.Message{Enc: wire.EncError, Src: 4, ReplyTo: wire.IsDead, Body: []byte{0xdf, 0xff, 0xff, 0xff, 0xff}}, wire.ErrMalformed},
	}
	for _, tt := range tests {
		err := routing.ErrorOf(tt.m)
		var re *routing.RemoteError
		if tt.want == nil && err != nil || tt.want != nil && (!errors.Is(err, tt.want) || !errors.As(err, &re) || re.Context != 4) ||
			errors.Is(err, wire.ErrMalformed) && !errors.Is(err, routing.ErrBadRequest) {
			t.Errorf("ErrorOf(%v %x) = %v, want %v from context 4", tt.m, tt.m.Body, err, tt.want)
		}
	}
}

// TestErrorOfStart: a failed START_CHILD's "start" map reaches the
// RemoteError; every other error body has none.
func TestErrorOfStart(t *testing.T) {
	start := &wire.StartFailure{Class: "unreachable", Label: "ssh web1", Detail: "ssh: connect to host web1 port 22: Connection refused"}
	body, _ := msgpack.Marshal(&wire.ErrorBody{Code: wire.CodeCallFailed, Message: "x", Start: start})
	var re *routing.RemoteError
	if err := routing.ErrorOf(&wire.Message{Enc: wire.EncError, Src: 4, Body: body}); !errors.As(err, &re) || re.Start == nil || *re.Start != *start {
		t.Errorf("ErrorOf(a failed START_CHILD) = %#v, want Start %+v", err, start)
	}
	plain, _ := msgpack.Marshal(&wire.ErrorBody{Code: wire.CodeNotFound, Message: "nope"})
	if err := routing.ErrorOf(&wire.Message{Enc: wire.EncError, Src: 4, Body: plain}); !errors.As(err, &re) || re.Start != nil {
		t.Errorf("ErrorOf(a plain error body) = %#v, want no Start", err)
	}
}

// TestReplyErrorAcrossTheWire: an error a handler replies with matches the
// same sentinel in the caller, two hops away, with the same code.
func TestReplyErrorAcrossTheWire(t *testing.T) {
	testutil.VerifyNone(t)
	tr := newTree(t, routing.Config{})
	const hFail = 650
	n := tr.a1
	if _, err := n.r.AddHandler(func(m *wire.Message, _ *broker.Stream) {
		if m.IsDead() {
			return
		}
		err := codes[m.Body[0]].sentinel
		_ = n.r.ReplyError(n.b.Context(), m, fmt.Errorf("handler for %d: %w", m.Src, err))
	}, routing.HandlerOptions{Handle: hFail}); err != nil {
		t.Fatal(err)
	}
	for i, tt := range codes {
		_, err := tr.master.r.Call(bg(t), n.id(), hFail, wire.EncRaw, []byte{byte(i)})
		re := remote(t, err, tt.sentinel, n.id())
		if re.Code != tt.code || routing.CodeOf(err) != tt.code {
			t.Errorf("reply with %v: code %d, CodeOf %d, want %d", tt.sentinel, re.Code, routing.CodeOf(err), tt.code)
		}
		if want := "handler for 0: " + tt.sentinel.Error(); re.Message != want {
			t.Errorf("reply with %v: message %q, want %q", tt.sentinel, re.Message, want)
		}
	}
}
