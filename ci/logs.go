package ci

import (
	"bytes"
	"sync"

	"github.com/spindle-hq/spindle/ci/mask"
)

// logWriter is one stream of one step attempt: what the guest writes is
// masked, kept (up to max bytes, for the cache and the report) and
// emitted as log events line by line. Write and Close may be called from
// different goroutines (the task's output copier, then the step's), so
// they lock.
type logWriter struct {
	r                 *runner
	job, step, target string
	stream            string
	max               int64

	mu     sync.Mutex
	masked *mask.Writer // writes into sink
	sink   *lineSink
	closed bool
}

// lineSink receives masked bytes: it keeps them and cuts lines. A line
// longer than MaxLogLine is one event, cut; the rest of it, up to its
// newline, is dropped (skipping), so a stream with no newlines costs one
// event, not one per MaxLogLine bytes.
type lineSink struct {
	w        *logWriter
	kept     bytes.Buffer
	partial  []byte
	skipping bool
}

func (r *runner) newLog(job, step, target, stream string, max int64) *logWriter {
	w := &logWriter{r: r, job: job, step: step, target: target, stream: stream, max: max}
	w.sink = &lineSink{w: w}
	w.masked = r.mask.Writer(w.sink)
	return w
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return len(p), nil
	}
	return w.masked.Write(p)
}

// Close flushes what the masker held back and the last partial line.
func (w *logWriter) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	w.closed = true
	_ = w.masked.Close()
	s := w.sink
	if len(s.partial) > 0 {
		w.r.emitLine(w.job, w.step, w.target, w.stream, s.partial)
		s.partial = nil
	}
}

// Bytes is the masked output kept; valid after Close.
func (w *logWriter) Bytes() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sink.kept.Bytes()
}

func (s *lineSink) Write(p []byte) (int, error) {
	if room := s.w.max - int64(s.kept.Len()); room > 0 {
		s.kept.Write(p[:min(int64(len(p)), room)])
	}
	data := p
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if s.skipping {
			if i < 0 {
				break
			}
			s.skipping = false
			data = data[i+1:]
			continue
		}
		if i < 0 {
			max := s.w.r.opts.MaxLogLine
			s.partial = append(s.partial, data[:min(len(data), max+1-len(s.partial))]...)
			if len(s.partial) > max {
				s.w.r.emitLine(s.w.job, s.w.step, s.w.target, s.w.stream, s.partial)
				s.partial = s.partial[:0]
				s.skipping = true
			}
			break
		}
		line := data[:i]
		if len(s.partial) > 0 {
			line = append(s.partial, line...)
			s.partial = s.partial[:0]
		}
		s.w.r.emitLine(s.w.job, s.w.step, s.w.target, s.w.stream, line)
		data = data[i+1:]
	}
	return len(p), nil
}

// emitLines emits every line of b (a replayed stream).
func (r *runner) emitLines(job, step, target, stream string, b []byte) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			r.emitLine(job, step, target, stream, b)
			return
		}
		r.emitLine(job, step, target, stream, b[:i])
		b = b[i+1:]
	}
}

// emitLine emits one log line, cut at MaxLogLine and made valid UTF-8.
func (r *runner) emitLine(job, step, target, stream string, line []byte) {
	if len(line) > r.opts.MaxLogLine {
		line = append(line[:r.opts.MaxLogLine:r.opts.MaxLogLine], "…"...)
	}
	r.emit(Event{
		Type: EventLog, Job: job, Step: step, Target: target, Stream: stream,
		Line: string(bytes.ToValidUTF8(bytes.TrimRight(line, "\r"), []byte("\uFFFD"))),
	})
}
