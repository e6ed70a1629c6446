package spindle

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/spindle-hq/spindle/broker"
	"github.com/spindle-hq/spindle/routing"
	"github.com/spindle-hq/spindle/wire"
	"github.com/vmihailenco/msgpack/v5"
)

// LevelTrace is the level of the records that follow each step of a
// child's start: the platform its bootstrap script reports, whether the
// broker binary was found in the remote cache or sent, the handshake. A
// Config.LogLevel at or below it has every context of the tree send them.
// The command line of each transport, and each child started or reaped,
// are logged at slog.LevelDebug.
const LevelTrace = slog.LevelDebug - 4

// corkLimit bounds the records a child keeps before its route to the master
// is up.
const corkLimit = 1024

// maxLogText bounds one forwarded message or attribute value.
const maxLogText = 16 << 10

// maxLogBody bounds one FORWARD_LOG body. The master drops a larger one
// before decoding it (a record decodes to a few times its size, so this
// also bounds what one record costs); a sender drops attributes past it.
const maxLogBody = 256 << 10

// The master takes log records from each direct child's stream, that is
// from its whole subtree, at up to logRate a second after a burst of
// logBurst; what is over is dropped, counted, and the count logged at most
// once a second. A child that floods FORWARD_LOG costs the master that
// much work and the operator's log no more than that.
const (
	logRate  = 5000
	logBurst = 20000
)

// logLimiter is the master's token bucket per child stream for FORWARD_LOG.
// It is safe for concurrent use.
// The zero value applies logRate and logBurst.
type logLimiter struct {
	mu          sync.Mutex
	buckets     map[*broker.Stream]*logBucket // guarded by mu
	rate, burst float64                       // guarded by mu; 0: logRate, logBurst
}

// setBound replaces the rate and the burst (tests use a small bound, so
// that a sender slowed by -race and a loaded machine still outpaces it).
func (l *logLimiter) setBound(rate, burst float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rate, l.burst = rate, burst
}

// bound is the rate and burst in force.
func (l *logLimiter) bound() (rate, burst float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.boundLocked()
}

func (l *logLimiter) boundLocked() (rate, burst float64) {
	if l.rate == 0 {
		return logRate, logBurst
	}
	return l.rate, l.burst
}

type logBucket struct {
	tokens   float64
	last     time.Time // when tokens was last topped up
	dropped  int       // records dropped since reported
	reported time.Time // when a drop count was last returned
}

// allow says whether a record that came in on s may be logged at now, and
// when it is time to report drops, how many were dropped since the last
// report.
func (l *logLimiter) allow(s *broker.Stream, now time.Time) (ok bool, report int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	rate, burst := l.boundLocked()
	b := l.buckets[s]
	if b == nil {
		if l.buckets == nil {
			l.buckets = make(map[*broker.Stream]*logBucket)
		}
		if len(l.buckets) >= 64 {
			l.sweepLocked()
		}
		b = &logBucket{tokens: burst, last: now}
		l.buckets[s] = b
	}
	b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		ok = true
	} else {
		b.dropped++
	}
	if b.dropped > 0 && now.Sub(b.reported) >= time.Second {
		report, b.dropped, b.reported = b.dropped, 0, now
	}
	return ok, report
}

// sweepLocked forgets the buckets of streams that have closed.
func (l *logLimiter) sweepLocked() {
	for s := range l.buckets {
		select {
		case <-s.Done():
			delete(l.buckets, s)
		default:
		}
	}
}

// forwarder is the slog.Handler of a child context: records at or above the
// level the parent set are sent to the master on FORWARD_LOG. Records made
// before routing is up are held (corked) and sent, in order, by uncork.
type forwarder struct {
	level slog.Level
	name  string
	attrs []string // from WithAttrs, already flattened
	group string
	st    *forwardState // shared by every handler derived from the same root
}

type forwardState struct {
	mu      sync.Mutex
	r       *routing.Router   // guarded by mu: nil while corked
	corked  []*wire.LogRecord // guarded by mu
	dropped int               // guarded by mu: records lost to corkLimit
	sending sync.Mutex        // serialises sends so records stay in order
}

func newForwarder(name string, level slog.Level) *forwarder {
	return &forwarder{level: level, name: name, st: &forwardState{}}
}

func (f *forwarder) Enabled(_ context.Context, l slog.Level) bool { return l >= f.level }

func (f *forwarder) WithAttrs(as []slog.Attr) slog.Handler {
	g := *f
	g.attrs = append(append([]string(nil), f.attrs...), flattenAttrs(f.group, as)...)
	return &g
}

func (f *forwarder) WithGroup(name string) slog.Handler {
	g := *f
	if g.group != "" {
		g.group += "."
	}
	g.group += name
	return &g
}

func (f *forwarder) Handle(_ context.Context, rec slog.Record) error {
	lr := &wire.LogRecord{Context: f.name, TimeNs: rec.Time.UnixNano(), Level: int(rec.Level), Msg: clip(rec.Message),
		Attrs: append([]string(nil), f.attrs...)}
	rec.Attrs(func(a slog.Attr) bool {
		lr.Attrs = append(lr.Attrs, flattenAttrs(f.group, []slog.Attr{a})...)
		return true
	})
	return f.st.send(lr)
}

func (st *forwardState) send(lr *wire.LogRecord) error {
	st.mu.Lock()
	r := st.r
	if r == nil {
		if len(st.corked) < corkLimit {
			st.corked = append(st.corked, lr)
		} else {
			st.dropped++
		}
		st.mu.Unlock()
		return nil
	}
	st.mu.Unlock()
	st.sending.Lock()
	defer st.sending.Unlock()
	return sendLog(r, lr)
}

// uncork starts sending to the master through r, first the held records.
func (f *forwarder) uncork(r *routing.Router) {
	st := f.st
	st.sending.Lock()
	defer st.sending.Unlock()
	st.mu.Lock()
	held, dropped := st.corked, st.dropped
	st.corked, st.dropped, st.r = nil, 0, r
	st.mu.Unlock()
	for _, lr := range held {
		_ = sendLog(r, lr)
	}
	if dropped > 0 {
		_ = sendLog(r, &wire.LogRecord{Context: f.name, TimeNs: time.Now().UnixNano(), Level: int(slog.LevelWarn),
			Msg: fmt.Sprintf("%d early log records dropped", dropped)})
	}
}

func sendLog(r *routing.Router, lr *wire.LogRecord) error {
	body, err := msgpack.Marshal(lr)
	// Too big: keep the first half of the attributes (pairs), then a
	// marker, until it fits; the message itself is already clipped.
	for keep := len(lr.Attrs) / 2 &^ 1; err == nil && len(body) > maxLogBody && len(lr.Attrs) > 2; keep = keep / 2 &^ 1 {
		lr.Attrs = append(lr.Attrs[:keep:keep], "attrs_dropped", "over the record size bound")
		body, err = msgpack.Marshal(lr)
	}
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Broker().Context(), time.Second)
	defer cancel()
	return r.Send(ctx, &wire.Message{Enc: wire.EncMsgpack, Dst: 0, Handle: wire.HandleForwardLog, Body: body})
}

func flattenAttrs(group string, as []slog.Attr) []string {
	var out []string
	for _, a := range as {
		a.Value = a.Value.Resolve()
		key := a.Key
		if group != "" {
			key = group + "." + key
		}
		if a.Value.Kind() == slog.KindGroup {
			out = append(out, flattenAttrs(key, a.Value.Group())...)
			continue
		}
		out = append(out, key, clip(a.Value.String()))
	}
	return out
}

func clip(s string) string {
	if len(s) > maxLogText {
		return s[:maxLogText] + "…"
	}
	return s
}

// forwardLine logs one line of a child's output. In the master it goes to
// the master's logger; elsewhere straight to the master, tagged with the
// child's name (not this context's).
func (n *node) forwardLine(child, line string) {
	if n.r.IsMaster() {
		n.log.Info(line, "context", child, "stream", "stderr")
		return
	}
	lr := &wire.LogRecord{Context: child, TimeNs: time.Now().UnixNano(), Level: int(slog.LevelInfo), Msg: clip(line),
		Attrs: []string{"stream", "stderr"}}
	_ = sendLog(n.r, lr)
}

// onForwardLog, in the master, re-emits a child's record on the master's
// logger with the context's name attached.
func (n *node) onForwardLog(m *wire.Message, s *broker.Stream) {
	if m.IsDead() {
		return
	}
	// Records from this process (s nil: a task of the master's own) are
	// not a child's flood; those from a stream are bounded per stream.
	ok, dropped := s == nil, 0
	if s != nil {
		ok, dropped = n.logs.allow(s, time.Now())
	}
	if dropped > 0 {
		rate, burst := n.logs.bound()
		n.log.Warn("log records dropped: the subtree behind this stream logs faster than the bound",
			"stream", s.Name(), "src", m.Src, "dropped", dropped, "rate", rate, "burst", burst)
	}
	if !ok {
		return
	}
	if len(m.Body) > maxLogBody {
		n.log.Warn("FORWARD_LOG body over the bound, dropped", "src", m.Src, "bytes", len(m.Body), "bound", maxLogBody)
		return
	}
	var lr wire.LogRecord
	if err := wire.Unmarshal(m.Body, &lr); err != nil {
		n.log.Warn("bad FORWARD_LOG body", "src", m.Src, "err", err)
		return
	}
	level := slog.Level(lr.Level)
	ctx := context.Background()
	if !n.log.Enabled(ctx, level) {
		return
	}
	attrs := make([]any, 0, 4+len(lr.Attrs))
	attrs = append(attrs, "context", lr.Context, "context_id", m.Src)
	for i := 0; i+1 < len(lr.Attrs); i += 2 {
		attrs = append(attrs, lr.Attrs[i], lr.Attrs[i+1])
	}
	rec := slog.NewRecord(time.Unix(0, lr.TimeNs), level, lr.Msg, 0)
	rec.Add(attrs...)
	_ = n.log.Handler().Handle(ctx, rec)
}
