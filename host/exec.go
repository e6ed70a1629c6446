package host

import (
	"context"
	"fmt"
	"log/slog"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/spindle-hq/spindle/wire"
	"github.com/tetratelabs/wazero/api"
	"github.com/vmihailenco/msgpack/v5"
)

// The granted exec capability (docs/abi.md, "exec"): a guest runs a host
// program only if the call's Grants.Exec names it, with the grant's
// environment and working directory, its own time limit and output bound,
// in a process group of its own that is killed when the program exits, its
// time passes or the call ends. Every run is logged through the call's Log.

// ExecGrant grants a call one host program. A call with no ExecGrant runs
// nothing; exec then fails for the guest, naming the grant it lacks.
type ExecGrant struct {
	// Path is the program, an absolute clean path on the machine the call
	// runs on. The guest names it by this path, or by its base name alone
	// (the first granted Path of that base name that exists is taken).
	Path string
	// Args are patterns for the arguments after argv[0], one per
	// argument: "*" matches any run of characters ("/" included), "?" any
	// one character, "\" makes the next character literal, anything else
	// matches itself. A last pattern "..." matches any number of further
	// arguments (zero included). No patterns: the program runs with no
	// arguments.
	Args []string
	// Env is the program's whole environment; nothing of the context's
	// own environment is passed.
	Env map[string]string
	// Dir is the program's working directory (default "/").
	Dir string
	// Timeout bounds one run (default DefaultExecTimeout); a run never
	// outlives its call. A guest may ask for less, never more.
	Timeout time.Duration
	// OutputBytes bounds what one run's stdout and stderr pass on, both
	// together (default DefaultExecOutputBytes); the rest is read, dropped
	// and counted.
	OutputBytes int64
}

// The defaults and bounds of exec.
const (
	DefaultExecTimeout     = 30 * time.Second
	DefaultExecOutputBytes = 1 << 20
	// MaxExecRuns bounds the runs of one call: one more gets ERR_LIMIT.
	MaxExecRuns = 256
	// MaxExecRequest bounds the encoded request a guest passes (argv);
	// longer is ERR_INVALID, undecoded.
	MaxExecRequest = 64 << 10
	// MinExecResult is the least result buffer exec takes (ERR_INVALID
	// below it, before anything runs): room for the result's fields and
	// an error message.
	MinExecResult = 4096
	// execGrace is how long the output of a killed group is still read:
	// past it, a descendant that left the group and holds the pipes is
	// given up on (its pipes are closed).
	execGrace = 2 * time.Second
	// maxExecMessage clips the error messages in results and logs.
	maxExecMessage = 1024
)

// checkExec validates the call's exec grants.
func checkExec(gs []ExecGrant) error {
	for _, g := range gs {
		if !path.IsAbs(g.Path) || path.Clean(g.Path) != g.Path {
			return fmt.Errorf("%w: exec grant %q is not a clean absolute path", ErrInvalidCall, g.Path)
		}
		if g.Dir != "" && (!path.IsAbs(g.Dir) || path.Clean(g.Dir) != g.Dir) {
			return fmt.Errorf("%w: exec grant %s: working directory %q is not a clean absolute path", ErrInvalidCall, g.Path, g.Dir)
		}
		for k, v := range g.Env {
			if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
				return fmt.Errorf("%w: exec grant %s: environment variable %q", ErrInvalidCall, g.Path, k)
			}
		}
		for i, p := range g.Args {
			if p == argsRest && i != len(g.Args)-1 {
				return fmt.Errorf("%w: exec grant %s: %q must be the last argument pattern", ErrInvalidCall, g.Path, argsRest)
			}
			if strings.ContainsRune(p, 0) {
				return fmt.Errorf("%w: exec grant %s: argument pattern holds NUL", ErrInvalidCall, g.Path)
			}
		}
	}
	return nil
}

// argsRest, as the last argument pattern, matches any further arguments.
const argsRest = "..."

// allows reports whether g permits args (argv[1:]).
func (g *ExecGrant) allows(args []string) bool {
	pats := g.Args
	rest := len(pats) > 0 && pats[len(pats)-1] == argsRest
	if rest {
		pats = pats[:len(pats)-1]
		if len(args) < len(pats) {
			return false
		}
	} else if len(args) != len(pats) {
		return false
	}
	for i, p := range pats {
		if !matchArg(p, args[i]) {
			return false
		}
	}
	return true
}

// matchArg matches s against the pattern p of ExecGrant.Args. It runs in
// O(len(p)*len(s)) at worst: one star is retried at a time.
func matchArg(p, s string) bool {
	pi, si := 0, 0
	starP, starS := -1, 0
	for si < len(s) {
		if pi < len(p) {
			switch c := p[pi]; {
			case c == '*':
				starP, starS = pi, si
				pi++
				continue
			case c == '?':
				pi++
				si++
				continue
			case c == '\\' && pi+1 < len(p):
				if p[pi+1] == s[si] {
					pi += 2
					si++
					continue
				}
			case c == s[si]:
				pi++
				si++
				continue
			}
		}
		if starP < 0 {
			return false
		}
		starS++
		pi, si = starP+1, starS
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// QuoteArg makes s a pattern of ExecGrant.Args that matches s alone.
func QuoteArg(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '*' || c == '?' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	if b.String() == argsRest {
		return `\...`
	}
	return b.String()
}

// execRequest is what a guest passes to exec (docs/abi.md).
type execRequest struct {
	Argv      []string `msgpack:"argv"`
	TimeoutMs int64    `msgpack:"timeout_ms,omitempty"`
	Capture   bool     `msgpack:"capture,omitempty"`
}

// execResult is what exec writes back (docs/abi.md).
type execResult struct {
	Path       string `msgpack:"path,omitempty"`
	Pid        int    `msgpack:"pid,omitempty"`
	Exit       int    `msgpack:"exit"`
	Signal     string `msgpack:"signal,omitempty"`
	TimedOut   bool   `msgpack:"timed_out,omitempty"`
	Stdout     []byte `msgpack:"stdout,omitempty"`
	Stderr     []byte `msgpack:"stderr,omitempty"`
	Bytes      int64  `msgpack:"bytes"`             // stdout+stderr bytes the program wrote
	Dropped    int64  `msgpack:"dropped,omitempty"` // of them, past OutputBytes
	DurationNs int64  `msgpack:"duration_ns"`
	Denied     bool   `msgpack:"denied,omitempty"`
	NotFound   bool   `msgpack:"not_found,omitempty"`
	Error      string `msgpack:"error,omitempty"`
}

func abiExec(ctx context.Context, st *callState, mod api.Module, stack []uint64) int32 {
	if api.DecodeU32(stack[1]) > MaxExecRequest || api.DecodeU32(stack[3]) < MinExecResult {
		return codeInvalid
	}
	reqb, ok := view(mod, stack[0], stack[1])
	if !ok {
		return codeMemory
	}
	if _, ok := view(mod, stack[2], stack[3]); !ok {
		return codeMemory
	}
	var req execRequest
	if err := wire.Unmarshal(reqb, &req); err != nil || len(req.Argv) == 0 || req.Argv[0] == "" {
		return codeInvalid
	}
	for _, a := range req.Argv {
		if strings.ContainsRune(a, 0) {
			return codeInvalid
		}
	}
	if st.execRuns >= MaxExecRuns {
		return codeLimit
	}
	st.execRuns++
	res := st.exec(ctx, &req)
	// The guest's memory may have grown (and moved) while the program ran.
	buf, ok := view(mod, stack[2], stack[3])
	if !ok {
		return codeMemory
	}
	return int32(copy(buf, encodeExecResult(res, len(buf))))
}

// encodeExecResult encodes res in at most n bytes (n >= MinExecResult),
// cutting the captured output to fit and counting what was cut as dropped.
func encodeExecResult(res *execResult, n int) []byte {
	res.Error = clip(res.Error, maxExecMessage)
	for {
		b, err := msgpack.Marshal(res)
		if err != nil { // cannot happen for these fields
			b, _ = msgpack.Marshal(&execResult{Exit: -1, Error: "encode result: " + err.Error()})
		}
		if len(b) <= n {
			return b
		}
		over := len(b) - n + 16
		cut := func(p *[]byte) {
			k := min(over, len(*p))
			*p = (*p)[:len(*p)-k]
			res.Dropped += int64(k)
			over -= k
		}
		cut(&res.Stderr)
		cut(&res.Stdout)
	}
}

// exec runs req for the call, if a grant allows it, and returns the result
// for the guest. It runs on the call's goroutine.
func (st *callState) exec(ctx context.Context, req *execRequest) *execResult {
	g, path, err := st.findExec(req.Argv)
	if err != nil {
		res := &execResult{Exit: -1, Error: err.Error()}
		if g == nil {
			res.Denied = true
			st.log(ctx, slog.LevelWarn, "exec denied: "+err.Error())
		} else {
			res.NotFound = true
			st.log(ctx, slog.LevelInfo, "exec not run: "+err.Error())
		}
		return res
	}
	timeout := g.Timeout
	if timeout <= 0 {
		timeout = DefaultExecTimeout
	}
	if req.TimeoutMs > 0 && time.Duration(req.TimeoutMs)*time.Millisecond < timeout {
		timeout = time.Duration(req.TimeoutMs) * time.Millisecond
	}
	limit := g.OutputBytes
	if limit <= 0 {
		limit = DefaultExecOutputBytes
	}
	dir := g.Dir
	if dir == "" {
		dir = "/"
	}
	argv := append([]string{path}, req.Argv[1:]...)
	r := &execRun{st: st, ctx: ctx, capture: req.Capture, limit: limit}
	r.res.Path = path
	t0 := time.Now()
	err = r.run(ctx, argv, envList(g.Env), dir, timeout)
	r.res.DurationNs = int64(time.Since(t0))
	if err != nil {
		r.res.Exit = -1
		r.res.Error = err.Error()
	}
	st.log(ctx, slog.LevelInfo, r.summary(argv, dir))
	return &r.res
}

// findExec picks the grant for argv: argv[0] is a granted Path, or the
// base name of granted Paths (the first that exists is taken). The error
// names the grant that is missing; g is set when a grant matched but its
// program is not there.
func (st *callState) findExec(argv []string) (g *ExecGrant, path string, err error) {
	name, args := argv[0], argv[1:]
	grants := st.execGrants
	if len(grants) == 0 {
		return nil, "", fmt.Errorf("%s: the caller granted no programs (no exec grant: Task.Exec)", quoteArgv(argv))
	}
	byName := !strings.Contains(name, "/")
	var named []string
	for i := range grants {
		gr := &grants[i]
		if gr.Path != name && (!byName || baseName(gr.Path) != name) {
			continue
		}
		named = append(named, gr.Path)
		if !gr.allows(args) {
			continue
		}
		if byName && !isProgram(gr.Path) {
			if g == nil {
				g = gr
			}
			continue
		}
		return gr, gr.Path, nil
	}
	switch {
	case g != nil:
		return g, "", fmt.Errorf("%s: no granted program of that name exists here (granted: %s)", quoteArgv(argv), strings.Join(named, ", "))
	case len(named) > 0:
		return nil, "", fmt.Errorf("%s: these arguments are not granted for %s (grant: %s)", quoteArgv(argv), named[0], grantText(grants, named[0]))
	}
	var paths []string
	for _, gr := range grants {
		paths = append(paths, gr.Path)
	}
	return nil, "", fmt.Errorf("%s: program not granted (the exec grant holds %s)", quoteArgv(argv), clip(strings.Join(paths, ", "), 512))
}

func baseName(p string) string { return p[strings.LastIndexByte(p, '/')+1:] }

// grantText shows the argument patterns of the grants of path p.
func grantText(gs []ExecGrant, p string) string {
	var out []string
	for _, g := range gs {
		if g.Path == p {
			out = append(out, quoteArgv(append([]string{g.Path}, g.Args...)))
		}
	}
	return clip(strings.Join(out, "; "), 512)
}

func quoteArgv(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = strconv.Quote(a)
	}
	return clip(strings.Join(q, " "), 512)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// execRun is one program's run, owned by the call's goroutine.
type execRun struct {
	st      *callState
	ctx     context.Context
	capture bool
	limit   int64
	res     execResult
	// stopErr is the call's end while output was passed on (the output
	// limit, the caller gone): the run is killed.
	stopErr error
}

// take passes on or captures p, from stream 1 or 2, within the limit.
func (r *execRun) take(stream int, p []byte) {
	r.res.Bytes += int64(len(p))
	room := r.limit - (r.res.Bytes - int64(len(p)) - r.res.Dropped)
	if room < int64(len(p)) {
		keep := max(room, 0)
		r.res.Dropped += int64(len(p)) - keep
		p = p[:keep]
	}
	if len(p) == 0 || r.stopErr != nil {
		return
	}
	if r.capture {
		if stream == 2 {
			r.res.Stderr = append(r.res.Stderr, p...)
		} else {
			r.res.Stdout = append(r.res.Stdout, p...)
		}
		return
	}
	if _, err := r.st.writeStdio(stream == 2, p); err != nil {
		r.stopErr = err
	}
}

func (r *execRun) summary(argv []string, dir string) string {
	s := fmt.Sprintf("exec %s (dir %s, pid %d): ", quoteArgv(argv), dir, r.res.Pid)
	switch {
	case r.res.Error != "":
		s += "failed: " + clip(r.res.Error, maxExecMessage)
	case r.res.TimedOut:
		s += "timed out, process group killed"
	case r.res.Signal != "":
		s += "killed by " + r.res.Signal
	default:
		s += fmt.Sprintf("exit %d", r.res.Exit)
	}
	s += fmt.Sprintf(" in %v, %d bytes of output", time.Duration(r.res.DurationNs).Round(time.Microsecond), r.res.Bytes)
	if r.res.Dropped > 0 {
		s += fmt.Sprintf(" (%d dropped past %d)", r.res.Dropped, r.limit)
	}
	return s
}
