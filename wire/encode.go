package wire

import "github.com/vmihailenco/msgpack/v5"

// Hand encoders of the bodies on a task call's hot path (RUN_TASK and its
// reply): msgpack's reflection spends most of a RunTask's encoding on
// omitempty checks of fields a plain call leaves empty. Each writes exactly
// the bytes the reflection would (TestEncodersMatchReflection): a map of
// the fields that are not omitted, in declaration order, integers in
// msgpack's non-compact forms as its default encoder writes them. Fields
// that are rare on the hot path (mounts, grants, a workspace) go through
// msgpack's reflection for their values.

// EncodeMsgpack implements msgpack.CustomEncoder.
func (l Limits) EncodeMsgpack(e *msgpack.Encoder) error {
	i64 := [...]struct {
		key string
		v   int64
	}{
		{"output_bytes", l.OutputBytes}, {"log_bytes", l.LogBytes}, {"output_messages", l.OutputMessages},
		{"log_records", l.LogRecords}, {"send_bytes", l.SendBytes}, {"send_messages", l.SendMessages},
		{"stack_bytes", l.StackBytes},
	}
	n := 0
	for _, p := range []bool{l.TimeoutNs != 0, l.MemoryPages != 0, l.OpenFiles != 0, l.DiskBytes != 0} {
		if p {
			n++
		}
	}
	for _, f := range i64 {
		if f.v != 0 {
			n++
		}
	}
	w := newFieldWriter(e, n)
	w.int64(l.TimeoutNs, "timeout_ns")
	if l.MemoryPages != 0 {
		w.key("memory_pages")
		w.err(e.EncodeUint32(l.MemoryPages))
	}
	for _, f := range i64 {
		w.int64(f.v, f.key)
	}
	if l.OpenFiles != 0 {
		w.key("open_files")
		w.err(e.EncodeInt(int64(l.OpenFiles))) // an int: msgpack writes it compact
	}
	w.int64(l.DiskBytes, "disk_bytes")
	return w.e
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (r RunTask) EncodeMsgpack(e *msgpack.Encoder) error {
	present := [...]bool{
		true, r.Task != "", len(r.Input) > 0, len(r.Args) > 0, r.Stdin != nil, len(r.Env) > 0,
		len(r.Mounts) > 0, r.Clock, r.Random, r.DevNull, len(r.Channels) > 0, r.Output != nil,
		true, r.Pooled, r.ID != 0, r.DeadlineNs != 0, r.Workspace != nil, len(r.Exec) > 0,
	}
	n := 0
	for _, p := range present {
		if p {
			n++
		}
	}
	w := newFieldWriter(e, n)
	w.key("module")
	w.err(e.EncodeString(r.Module))
	if present[1] {
		w.key("task")
		w.err(e.EncodeString(r.Task))
	}
	if present[2] {
		w.key("input")
		w.err(e.EncodeBytes(r.Input))
	}
	if present[3] {
		w.value("args", r.Args)
	}
	if present[4] {
		w.value("stdin", r.Stdin)
	}
	if present[5] {
		w.value("env", r.Env)
	}
	if present[6] {
		w.value("mounts", r.Mounts)
	}
	w.bool(present[7], "clock")
	w.bool(present[8], "random")
	w.bool(present[9], "dev_null")
	if present[10] {
		w.value("channels", r.Channels)
	}
	if present[11] {
		w.value("output", r.Output)
	}
	w.key("limits")
	w.err(r.Limits.EncodeMsgpack(e))
	w.bool(present[13], "pooled")
	if present[14] {
		w.key("id")
		w.err(e.EncodeUint64(r.ID))
	}
	w.int64(r.DeadlineNs, "deadline_ns")
	if present[16] {
		w.value("workspace", r.Workspace)
	}
	if present[17] {
		w.value("exec", r.Exec)
	}
	return w.e
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (r TaskResult) EncodeMsgpack(e *msgpack.Encoder) error {
	n := 1
	for _, p := range []bool{len(r.Output) > 0, r.Command, r.Error != nil, r.OutputTree != ""} {
		if p {
			n++
		}
	}
	w := newFieldWriter(e, n)
	if len(r.Output) > 0 {
		w.key("output")
		w.err(e.EncodeBytes(r.Output))
	}
	w.key("exit_code")
	w.err(e.EncodeInt(int64(r.ExitCode)))
	w.bool(r.Command, "command")
	if r.Error != nil {
		w.value("error", r.Error)
	}
	if r.OutputTree != "" {
		w.key("output_tree")
		w.err(e.EncodeString(r.OutputTree))
	}
	return w.e
}

// fieldWriter writes a struct's map, keeping the first error.
type fieldWriter struct {
	enc *msgpack.Encoder
	e   error
}

func newFieldWriter(enc *msgpack.Encoder, fields int) *fieldWriter {
	return &fieldWriter{enc: enc, e: enc.EncodeMapLen(fields)}
}

func (w *fieldWriter) err(err error) {
	if w.e == nil {
		w.e = err
	}
}

func (w *fieldWriter) key(k string) { w.err(w.enc.EncodeString(k)) }

// bool writes key: true if set (the field is omitted when false).
func (w *fieldWriter) bool(set bool, key string) {
	if set {
		w.key(key)
		w.err(w.enc.EncodeBool(true))
	}
}

// int64 writes key: v unless v is 0 (omitted).
func (w *fieldWriter) int64(v int64, key string) {
	if v != 0 {
		w.key(key)
		w.err(w.enc.EncodeInt64(v))
	}
}

// value writes key: v through msgpack's reflection. The caller checks
// that the field is present first: boxing a slice allocates.
func (w *fieldWriter) value(key string, v any) {
	w.key(key)
	w.err(w.enc.Encode(v))
}
