package spindle

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/spindle-hq/spindle/routing"
	"github.com/spindle-hq/spindle/target"
	"github.com/spindle-hq/spindle/wire"
)

// StartClass names how a child failed to start (StartError.Class). The
// set is small and closed; a class from a newer peer that this one does
// not know reads as ClassOther.
type StartClass string

// The classes of StartError. Each of auth, host_key, unreachable and
// platform also matches its sentinel (ErrAuth, ErrHostKey, ErrUnreachable,
// ErrPlatform) with errors.Is.
const (
	// ClassAuth: the transport refused our credentials: an ssh key, user
	// or agent; a sudo password, or sudoers.
	ClassAuth StartClass = "auth"
	// ClassHostKey: ssh could not verify the host's key: unknown, or
	// changed.
	ClassHostKey StartClass = "host_key"
	// ClassUnreachable: the host (or container, or pod) could not be
	// reached: connection refused, no route, no such name.
	ClassUnreachable StartClass = "unreachable"
	// ClassTimeout: no answer within the connect timeout (the hop option
	// timeout=, ChildOptions.ConnectTimeout, Config.ConnectTimeout; 30 s by
	// default), whether ssh's own ConnectTimeout fired or ours; or the
	// caller's deadline passed during the start.
	ClassTimeout StartClass = "timeout"
	// ClassPlatform: there is no broker binary here for the remote OS or
	// architecture.
	ClassPlatform StartClass = "platform"
	// ClassRefused: the start was refused before or while it ran: options
	// that cannot be used, a sandboxed context (a leaf), a remote that
	// cannot install the broker, a child that refused the handshake.
	ClassRefused StartClass = "refused"
	// ClassLost: the transport or the child went away during the start,
	// saying nothing that names a reason; or the context that was to start
	// it went away.
	ClassLost StartClass = "lost"
	// ClassCancelled: the caller's ctx was cancelled, or the context that
	// ran the start is shutting down.
	ClassCancelled StartClass = "cancelled"
	// ClassOther: anything else (the transport's command could not be run,
	// for one).
	ClassOther StartClass = "other"
)

// words are how each class reads in StartError's text.
var classWords = map[StartClass]string{
	ClassAuth:        "authentication failed",
	ClassHostKey:     "host key verification failed",
	ClassUnreachable: "host unreachable",
	ClassTimeout:     "timed out",
	ClassPlatform:    "no broker binary for the remote platform",
	ClassRefused:     "start refused",
	ClassLost:        "lost during start",
	ClassCancelled:   "start cancelled",
	ClassOther:       "start failed",
}

var classSentinel = map[StartClass]error{
	ClassAuth:        ErrAuth,
	ClassHostKey:     ErrHostKey,
	ClassUnreachable: ErrUnreachable,
	ClassPlatform:    ErrPlatform,
}

// knownClass is c if it is one of the classes, else ClassOther.
func knownClass(c string) StartClass {
	if _, ok := classWords[StartClass(c)]; ok {
		return StartClass(c)
	}
	return ClassOther
}

// StartError is a child that did not start: how (Class), where (Hop and
// Target when it was a hop of a target chain, else Name and Label), what
// the transport said or what went wrong (Detail, one line), and what to do
// about it when there is an obvious fix (Hint). Every failed start returns
// one, whichever context ran the transport: the class and detail cross the
// wire (docs/protocol.md, START_CHILD), so they read the same at the master
// for the second hop as for the first.
//
// Its text is one line, the same for the same failure on every run:
//
//	hop 1 ssh://nobody@127.0.0.1:1: host unreachable: ssh: connect to host 127.0.0.1 port 1: Connection refused
//
// The hint is not part of it. What varies from run to run (process IDs,
// exit statuses, the transport's whole output) is logged instead: the
// transport's lines as the child's records, and a "child start failed"
// record at level Info.
//
// errors.Is(err, ErrChildStart) holds for every StartError, and the class's
// sentinel for auth, host_key, unreachable and platform. Unwrap returns
// the cause: os.ErrDeadlineExceeded for a timeout, a *routing.RemoteError
// for a failure another context reported (so routing's sentinels match
// too), and so on. A StartError is not changed once returned: safe for
// concurrent reads.
type StartError struct {
	Class StartClass
	// Hop is the 1-based position of the hop in its target chain and
	// Target that hop without its options ("ssh://user@host:port"); set by
	// Master.StartTarget and Fleet, zero for Master.Start and
	// Context.Start.
	Hop    int
	Target string
	// Name is the context's name; Label names its transport ("ssh web1",
	// "sudo -u root", "local").
	Name  string
	Label string
	// Detail is one line: the transport's own line that names the failure
	// ("ssh: connect to host web1 port 22: Connection refused"), else what
	// went wrong in our words.
	Detail string
	// Hint is an obvious fix, when there is one (an unknown host key: how
	// to accept it); else "".
	Hint string
	// Err is the cause, or nil.
	Err error
}

func (e *StartError) Error() string {
	var b strings.Builder
	switch {
	case e.Hop > 0 && e.Target != "":
		fmt.Fprintf(&b, "hop %d %s", e.Hop, e.Target)
	case e.Name != "" && e.Label != "":
		fmt.Fprintf(&b, "child %s (%s)", e.Name, e.Label)
	case e.Name != "":
		b.WriteString("child " + e.Name)
	case e.Label != "":
		b.WriteString(e.Label)
	default:
		b.WriteString("child")
	}
	b.WriteString(": " + classWords[knownClass(string(e.Class))])
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	return b.String()
}

// Is matches ErrChildStart, and the class's sentinel.
func (e *StartError) Is(target error) bool {
	if target == ErrChildStart {
		return true
	}
	s, ok := classSentinel[e.Class]
	return ok && s == target
}

// Unwrap returns the cause.
func (e *StartError) Unwrap() error { return e.Err }

// withHop returns err as the StartError of hop i (0-based) of a chain: a
// copy, since the error of a shared hop is returned to every caller.
func withHop(err error, i int, h target.Hop) error {
	var se *StartError
	if !errors.As(err, &se) {
		se = &StartError{Class: ClassOther, Detail: oneLine(err.Error()), Err: err}
	}
	cp := *se
	cp.Hop = i + 1
	cp.Target, _, _ = strings.Cut(h.String(), "?")
	return &cp
}

// wire is how e crosses to the parent, in the failed reply to START_CHILD.
// Message keeps the text older peers classify by (the sentinels' text);
// Start is what this version reads.
func (e *StartError) wire() *wire.ErrorBody {
	msg := e.Error()
	msg = ErrChildStart.Error() + ": " + msg
	if s, ok := classSentinel[e.Class]; ok {
		msg = s.Error() + ": " + msg
	}
	return &wire.ErrorBody{Code: routing.CodeOf(e), Message: msg,
		Start: &wire.StartFailure{Class: string(e.Class), Label: e.Label, Detail: e.Detail}}
}

// maxDetail bounds a detail line from another context.
const maxDetail = 512

// oneLine keeps the first line of s, at most maxDetail bytes of it.
func oneLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	s = strings.TrimSpace(s)
	if len(s) > maxDetail {
		s = s[:maxDetail] + "..."
	}
	return s
}

// remoteStartError is the StartError of a START_CHILD that context via
// answered with err. The class and detail are the remote's, the hint is
// ours (what a child sends is never an instruction to the operator).
func remoteStartError(ctx context.Context, via *Context, req *wire.StartChild, err error) *StartError {
	se := &StartError{Name: req.Name, Err: err}
	var re *routing.RemoteError
	isRemote := errors.As(err, &re)
	switch {
	case isRemote && re.Start != nil:
		se.Class = knownClass(re.Start.Class)
		se.Label, se.Detail = oneLine(re.Start.Label), oneLine(re.Start.Detail)
	case isRemote && strings.Contains(re.Message, ErrChildStart.Error()):
		// An older peer: its text says how, its sentinels do not cross.
		se.Class, se.Detail = legacyStartText(re.Message)
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		se.Class, se.Detail = ClassTimeout, fmt.Sprintf("context %s did not answer before the caller's deadline", via.name)
	case ctx.Err() != nil || errors.Is(err, routing.ErrShutdown):
		se.Class, se.Detail = ClassCancelled, "the start was cancelled"
	case errors.Is(err, routing.ErrDisconnected) || errors.Is(err, routing.ErrNoRoute):
		se.Class, se.Detail = ClassLost, fmt.Sprintf("context %s went away during the start", via.name)
	case errors.Is(err, routing.ErrRefused):
		se.Class, se.Detail = ClassRefused, oneLine(remoteMessage(err))
	default:
		se.Class, se.Detail = ClassOther, oneLine(remoteMessage(err))
	}
	se.Hint = hintFor(se.Class, se.Detail, req)
	return se
}

// remoteMessage is the text of a failure another context reported,
// without routing's "context N: " (IDs vary from run to run).
func remoteMessage(err error) string {
	var re *routing.RemoteError
	if errors.As(err, &re) {
		return re.Message
	}
	return err.Error()
}

// legacyStartText reads the class and detail out of the text of a start
// error from an older peer.
func legacyStartText(msg string) (StartClass, string) {
	lines := strings.Split(msg, "\n")
	if class, line, ok := classify(lines); ok {
		return class, line
	}
	for class, s := range classSentinel {
		if strings.Contains(msg, s.Error()) {
			return class, oneLine(msg)
		}
	}
	return ClassOther, oneLine(msg)
}

// failureSigns maps what transports print when they fail to the class of
// the failure; the first sign found in the output wins, so the more
// specific come first.
var failureSigns = []struct {
	class StartClass
	signs []string
}{
	{ClassHostKey, []string{"has changed and you have requested strict checking", "REMOTE HOST IDENTIFICATION HAS CHANGED",
		"host key is known for", "Host key verification failed"}},
	{ClassAuth, []string{"a password is required", "incorrect password", "Sorry, try again",
		"is not in the sudoers file", "is not allowed to run sudo", "Too many authentication failures",
		"Permission denied", "Authentication failed"}},
	{ClassTimeout, []string{"Connection timed out", "Operation timed out"}},
	{ClassUnreachable, []string{"Connection refused", "No route to host", "Could not resolve hostname",
		"Name or service not known", "Network is unreachable", "Connection reset by peer", "Connection closed by",
		// docker's and podman's words for a container that is not there or
		// not running (podman 4.3: "no container with name or ID "x" found:
		// no such container", "can only create exec sessions on running
		// containers: container state improper").
		"No such container", "no such container", "is not running", "can only create exec sessions on running containers",
		"Cannot connect to the Docker daemon", "(NotFound)"}},
	{ClassRefused, []string{"unknown user"}},
}

// classify finds the class of a transport's failure in the lines it
// printed, and the line that says it.
func classify(lines []string) (StartClass, string, bool) {
	for _, f := range failureSigns {
		for _, sign := range f.signs {
			for i := len(lines) - 1; i >= 0; i-- {
				if strings.Contains(lines[i], sign) {
					return f.class, oneLine(lines[i]), true
				}
			}
		}
	}
	return "", "", false
}

// lastMeaningful is the last line of a transport's output that says
// something: not empty, not a banner rule of "@".
func lastMeaningful(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if strings.Trim(l, "@") != "" {
			return oneLine(l)
		}
	}
	return ""
}

var platformDetail = regexp.MustCompile(`no broker binary for ([a-z0-9]+)/([a-z0-9]+)`)

// hintFor is the obvious fix for a failure of class with detail, starting
// the child req asks for (nil when unknown), or "". The spindle command
// rewrites its phrases that name hop options and the Go API into the flags
// an operator types (tools/spindle/hint.go): change them together.
func hintFor(class StartClass, detail string, req *wire.StartChild) string {
	method := ""
	if req != nil {
		method = req.Method
	}
	switch class {
	case ClassHostKey:
		if method != "ssh" || req.Host == "" {
			return ""
		}
		if strings.Contains(detail, "has changed") || strings.Contains(detail, "HAS CHANGED") {
			name := req.Host
			if req.Port != 0 && req.Port != 22 {
				name = "[" + req.Host + "]:" + strconv.Itoa(req.Port)
			}
			return fmt.Sprintf("the host's key has changed: if that is expected, remove the old key with ssh-keygen -R '%s' and check the new one's fingerprint before you accept it", name)
		}
		scan := req.Host
		if req.Port != 0 && req.Port != 22 {
			scan = "-p " + strconv.Itoa(req.Port) + " " + req.Host
		}
		return fmt.Sprintf("the host's key is not known: check its fingerprint, then add it with ssh-keyscan %s >> ~/.ssh/known_hosts, or accept a new key on first use with the hop option hostkey=accept-new", scan)
	case ClassAuth:
		switch method {
		case "ssh":
			return "check the login user, the key (the hop option identity=, or the agent) and the remote authorized_keys; ssh runs in batch mode and never asks for a password (batch=no lets it ask)"
		case "sudo":
			switch {
			case strings.Contains(detail, "a password is required"):
				return "sudo wants a password: give it (spindle run -K; ChildOptions.Password or Fleet.SudoPassword in Go), or let the user run sudo without one (NOPASSWD in sudoers)"
			case strings.Contains(detail, "incorrect password") || strings.Contains(detail, "Sorry, try again"):
				return "sudo refused the password given (spindle run -K; ChildOptions.Password in Go)"
			case strings.Contains(detail, "sudoers") || strings.Contains(detail, "not allowed"):
				return "this user may not run sudo as the target user: add a sudoers rule for it"
			}
		}
	case ClassTimeout:
		if strings.Contains(detail, "connect timeout") {
			return "the connect timeout is the hop option timeout= (e.g. ?timeout=1m; ChildOptions.ConnectTimeout in Go); ssh's ConnectTimeout follows it"
		}
	case ClassPlatform:
		if m := platformDetail.FindStringSubmatch(detail); m != nil {
			bin := "spindle-" + m[1] + "-" + m[2]
			return fmt.Sprintf("build %s next to the spindle binary: GOOS=%s GOARCH=%s go build -o %s ./tools/spindle (make build builds linux/amd64 and linux/arm64)",
				bin, m[1], m[2], bin)
		}
	}
	return ""
}
