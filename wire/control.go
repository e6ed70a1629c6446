package wire

import "github.com/vmihailenco/msgpack/v5"

// Hello is the first frame a parent sends a new child (handle HandleHello,
// Dst = the child's new ID, Src = the parent's ID).
type Hello struct {
	Version        int      `msgpack:"version"`
	ID             uint32   `msgpack:"id"`
	Name           string   `msgpack:"name"`
	ParentIDs      []uint32 `msgpack:"parent_ids"` // parent first, the master (0) last
	MaxMessageSize uint32   `msgpack:"max_message_size"`
	LogLevel       int      `msgpack:"log_level"` // slog.Level: records below it are never sent
	Unidirectional bool     `msgpack:"unidirectional"`
	ShutdownGrace  int64    `msgpack:"shutdown_grace_ns"`
	CacheDir       string   `msgpack:"cache_dir,omitempty"` // where the child keeps modules and compiled code; "" = its user's cache dir, "-" = memory only
	// Sandbox asks the child to confine itself with the OS's layers
	// (no_new_privs, rlimits, Landlock) right after the handshake. A
	// sandboxed child starts no children of its own.
	Sandbox bool `msgpack:"sandbox,omitempty"`
}

// HelloAck is the child's answer to Hello.
type HelloAck struct {
	Version int    `msgpack:"version"`
	ID      uint32 `msgpack:"id"`
	PID     int    `msgpack:"pid"`
	Error   string `msgpack:"error,omitempty"` // set when the child refuses the Hello
}

// Route is the body of ADD_ROUTE, DEL_ROUTE and STOP_CHILD.
type Route struct {
	ID   uint32 `msgpack:"id"`
	Name string `msgpack:"name,omitempty"`
}

// IDBlock is the reply to ALLOCATE_ID: the IDs [Start, End) belong to the
// asker for the rest of the run.
type IDBlock struct {
	Start uint32 `msgpack:"start"`
	End   uint32 `msgpack:"end"`
}

// CallRequest is the body of a CALL message.
type CallRequest struct {
	Fn   string             `msgpack:"fn"`
	Args msgpack.RawMessage `msgpack:"args,omitempty"`
}

// StartChild is the body of START_CHILD: how the receiving context is to
// start its new child. Method "" or "local" re-executes its own binary.
type StartChild struct {
	Name           string   `msgpack:"name"`
	Method         string   `msgpack:"method,omitempty"` // local, ssh, sudo, docker, podman, kubectl
	User           string   `msgpack:"user,omitempty"`
	Host           string   `msgpack:"host,omitempty"`
	Port           int      `msgpack:"port,omitempty"`
	Identity       string   `msgpack:"identity,omitempty"`
	HostKeyCheck   string   `msgpack:"hostkey,omitempty"`
	SSHOptions     []string `msgpack:"ssh_options,omitempty"`
	SSHConfig      string   `msgpack:"ssh_config,omitempty"` // ssh -F, a path on the receiving context's machine
	KeepAliveNs    int64    `msgpack:"keepalive_ns,omitempty"`
	NoBatch        bool     `msgpack:"no_batch,omitempty"`
	Container      string   `msgpack:"container,omitempty"`
	Namespace      string   `msgpack:"namespace,omitempty"`
	Pod            string   `msgpack:"pod,omitempty"`
	KubeContext    string   `msgpack:"kube_context,omitempty"`
	ConnectTimeout int64    `msgpack:"connect_timeout_ns,omitempty"`
	// Password answers sudo's prompt. It crosses only the (trusted) stream
	// from parent to child and is never logged.
	Password string `msgpack:"password,omitempty"`
	// Sandbox: the new child confines itself (Hello.Sandbox).
	Sandbox bool `msgpack:"sandbox,omitempty"`
}

// ChildStarted is the reply to START_CHILD.
type ChildStarted struct {
	ID         uint32 `msgpack:"id"`
	Name       string `msgpack:"name"`
	PID        int    `msgpack:"pid"` // of the transport (ssh, sudo, ...) or the local broker
	SentBinary bool   `msgpack:"sent_binary,omitempty"`
}

// LogRecord is the body of FORWARD_LOG.
type LogRecord struct {
	Context string   `msgpack:"ctx"`   // name of the context the record is about
	TimeNs  int64    `msgpack:"t"`     // Unix nanoseconds
	Level   int      `msgpack:"level"` // slog.Level
	Msg     string   `msgpack:"msg"`
	Attrs   []string `msgpack:"attrs,omitempty"` // key, value, key, value...
}

// GetModule is the body of GET_MODULE.
type GetModule struct {
	Hash string `msgpack:"hash"` // hex sha256
}

// LoadModule is the body of LOAD_MODULE: store the module (Data, unless the
// receiver is known to have it already) and pass it on toward Target.
type LoadModule struct {
	Hash   string `msgpack:"hash"`
	Target uint32 `msgpack:"target"`
	Data   []byte `msgpack:"data,omitempty"`
}

// GetBlobs is the body of GET_BLOBS and PULL_BLOBS: the blobs wanted, by
// hex sha256, each once.
type GetBlobs struct {
	Hashes []string `msgpack:"hashes"`
}

// Blob is one blob in a Blobs reply.
type Blob struct {
	Hash string `msgpack:"hash"`
	Data []byte `msgpack:"data"`
}

// Blobs is the reply to GET_BLOBS and PULL_BLOBS. Every hash it names was
// asked for, once: in Blobs with its bytes, in Missing (nobody has it), or
// in Large (too large for a batch: ask for it alone). A hash asked for and
// named nowhere did not fit in this reply: ask again.
type Blobs struct {
	Blobs   []Blob   `msgpack:"blobs,omitempty"`
	Missing []string `msgpack:"missing,omitempty"`
	Large   []string `msgpack:"large,omitempty"`
}

// Channel addresses a handle in a context; the same shape as a routing
// Sender.
type Channel struct {
	Context uint32 `msgpack:"ctx"`
	Handle  uint32 `msgpack:"handle"`
}

// Mount grants a task a host directory.
type Mount struct {
	Host     string `msgpack:"host"`
	Guest    string `msgpack:"guest"`
	ReadOnly bool   `msgpack:"ro"`
	// Collect makes a Tree mount a writable copy whose new and changed
	// files are collected, when the command exits, into
	// TaskResult.OutputTree (at most one per call). It sits beside
	// ReadOnly so that Mount stays 96 bytes: a slice of them is what a
	// hostile body of nils grows (TestWorstAmplification).
	Collect bool `msgpack:"collect,omitempty"`
	// Tree, instead of Host, is the digest of a tree the context makes as
	// files (fetching what it lacks) and mounts read-only.
	Tree string `msgpack:"tree,omitempty"`
	// FileMode and DirMode (permission bits) and Owner and Group (names
	// or numbers, looked up on the context) are what the guest's new
	// entries in a writable mount get.
	FileMode uint32 `msgpack:"file_mode,omitempty"`
	DirMode  uint32 `msgpack:"dir_mode,omitempty"`
	Owner    string `msgpack:"owner,omitempty"`
	Group    string `msgpack:"group,omitempty"`
}

// Limits bounds one task call; zero fields mean the context's defaults.
type Limits struct {
	TimeoutNs   int64  `msgpack:"timeout_ns,omitempty"`
	MemoryPages uint32 `msgpack:"memory_pages,omitempty"`
	OutputBytes int64  `msgpack:"output_bytes,omitempty"`
	LogBytes    int64  `msgpack:"log_bytes,omitempty"`

	OutputMessages int64 `msgpack:"output_messages,omitempty"`
	LogRecords     int64 `msgpack:"log_records,omitempty"`
	SendBytes      int64 `msgpack:"send_bytes,omitempty"`
	SendMessages   int64 `msgpack:"send_messages,omitempty"`
	StackBytes     int64 `msgpack:"stack_bytes,omitempty"`
	OpenFiles      int   `msgpack:"open_files,omitempty"`
	DiskBytes      int64 `msgpack:"disk_bytes,omitempty"`
}

// RunTask is the body of RUN_TASK.
type RunTask struct {
	Module   string            `msgpack:"module"` // hex sha256
	Task     string            `msgpack:"task,omitempty"`
	Input    []byte            `msgpack:"input,omitempty"`
	Args     []string          `msgpack:"args,omitempty"`
	Stdin    *Channel          `msgpack:"stdin,omitempty"` // where a command reads its stdin from (StdinChunk); nil: empty stdin
	Env      map[string]string `msgpack:"env,omitempty"`
	Mounts   []Mount           `msgpack:"mounts,omitempty"`
	Clock    bool              `msgpack:"clock,omitempty"`
	Random   bool              `msgpack:"random,omitempty"`
	DevNull  bool              `msgpack:"dev_null,omitempty"` // a /dev holding null
	Channels []Channel         `msgpack:"channels,omitempty"` // channels the task may send on
	Output   *Channel          `msgpack:"output,omitempty"`   // where a command's stdout/stderr chunks go (OutputChunk)
	Limits   Limits            `msgpack:"limits"`
	Pooled   bool              `msgpack:"pooled,omitempty"`
	// ID names the call for CANCEL_TASK from the same source; 0: none.
	ID uint64 `msgpack:"id,omitempty"`
	// DeadlineNs is how long the caller will wait, from when it sent the
	// request; the task is cancelled once it passes. 0: no deadline.
	DeadlineNs int64 `msgpack:"deadline_ns,omitempty"`
	// Workspace, if set, runs a command as a CI action: the context builds
	// its file view itself (see Workspace) and Mounts must be empty.
	Workspace *Workspace `msgpack:"workspace,omitempty"`
	// Exec are the host programs the task may run (host.ExecGrant),
	// checked by the context that runs it; none by default.
	Exec []ExecGrant `msgpack:"exec,omitempty"`
}

// ExecGrant grants a task one host program: its absolute Path, patterns
// for its arguments, its whole environment, working directory, time limit
// per run and output bound (see host.ExecGrant).
type ExecGrant struct {
	Path        string            `msgpack:"path"`
	Args        []string          `msgpack:"args,omitempty"`
	Env         map[string]string `msgpack:"env,omitempty"`
	Dir         string            `msgpack:"dir,omitempty"`
	TimeoutNs   int64             `msgpack:"timeout_ns,omitempty"`
	OutputBytes int64             `msgpack:"output_bytes,omitempty"`
}

// Workspace is the file view of an action (a CI step): the input tree,
// materialized read-only at /src, a writable /out whose declared Outputs
// are collected into an output tree when the command exits, private
// writable /tmp and /home, and the Secrets as files in a read-only
// /run/secrets. Trees are digests of package modules' Merkle directories;
// the context fetches their blobs from its parent.
type Workspace struct {
	Input   string            `msgpack:"input"`             // tree digest
	Outputs []string          `msgpack:"outputs,omitempty"` // clean relative paths under /out
	Stdin   string            `msgpack:"stdin,omitempty"`   // a file of the input tree, streamed as stdin
	Dir     string            `msgpack:"dir,omitempty"`     // a directory of the input tree: the working directory
	Secrets map[string][]byte `msgpack:"secrets,omitempty"` // name -> value, files of /run/secrets
	// OutputBytes and OutputFiles bound the collected outputs; 0 means the
	// defaults (1 GiB, 100,000 files).
	OutputBytes int64 `msgpack:"output_bytes,omitempty"`
	OutputFiles int   `msgpack:"output_files,omitempty"`
}

// CancelTask is the body of CANCEL_TASK: the RunTask.ID of a call the
// sender made and no longer waits for.
type CancelTask struct {
	ID uint64 `msgpack:"id"`
}

// OutputChunk is one piece of a command's stdout or stderr, streamed to
// RunTask.Output as it is written.
type OutputChunk struct {
	Stream int    `msgpack:"stream"` // 1 stdout, 2 stderr
	Data   []byte `msgpack:"data"`
}

// StdinChunk is the reply to a stdin read: a request (any body, ignored)
// the running task's context sends to RunTask.Stdin for the next piece of
// its stdin. Data is at most StdinChunkBytes; EOF says nothing follows
// Data (every later request gets EOF too); Error, if set, is why the
// caller's stdin failed, and also ends it.
type StdinChunk struct {
	Data  []byte `msgpack:"data,omitempty"`
	EOF   bool   `msgpack:"eof,omitempty"`
	Error string `msgpack:"error,omitempty"`
}

// The stdin stream's bounds (docs/protocol.md, "Stdin"): a context keeps
// at most StdinWindow reads of at most StdinChunkBytes each unanswered, and
// the caller queues at most StdinQueue reads per task, refusing one past it.
const (
	StdinChunkBytes = 64 << 10
	StdinWindow     = 4
	StdinQueue      = 2 * StdinWindow
)

// TaskResult is the reply to RUN_TASK. Exactly one of Error and the
// success fields is meaningful.
type TaskResult struct {
	Output   []byte     `msgpack:"output,omitempty"`
	ExitCode int        `msgpack:"exit_code"`
	Command  bool       `msgpack:"command,omitempty"` // the module was a command: ExitCode is meaningful
	Error    *TaskError `msgpack:"error,omitempty"`
	// OutputTree is the digest of a Workspace action's collected outputs,
	// held by the context that ran it (its parent pulls it).
	OutputTree string `msgpack:"output_tree,omitempty"`
}

// TaskError describes a task that failed (see docs/abi.md for the kinds).
type TaskError struct {
	Kind     string `msgpack:"kind"`
	Message  string `msgpack:"msg"`
	ExitCode int    `msgpack:"exit_code,omitempty"`
}
