package spindle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spindle-hq/spindle/wire"
)

// Errors of remote starts, each matched with errors.Is by the *StartError
// of its class (ClassAuth, ClassHostKey, ClassUnreachable, ClassPlatform),
// which also matches ErrChildStart.
var (
	// ErrAuth: the transport refused our credentials (ssh key, sudo
	// password).
	ErrAuth = errors.New("spindle: authentication failed")
	// ErrHostKey: ssh could not verify the remote host's key.
	ErrHostKey = errors.New("spindle: host key verification failed")
	// ErrUnreachable: the remote host could not be reached.
	ErrUnreachable = errors.New("spindle: host unreachable")
	// ErrPlatform: the remote OS or architecture has no broker binary here.
	ErrPlatform = errors.New("spindle: no broker binary for the remote platform")
)

// childArg is the hidden argument that makes the spindle binary a child
// broker on its stdin and stdout (how the bootstrap script starts it).
const childArg = "__spindle_child__"

// deadlineConn is a stream to a child that supports deadlines: a
// socketpair's net.Conn, or a transport's pipes.
type deadlineConn interface {
	io.ReadWriteCloser
	SetDeadline(time.Time) error
}

// pipeConn joins two pipe ends into one stream: in a parent, the read end
// of a transport's stdout and the write end of its stdin; in a child started
// by the bootstrap script, its own stdin and stdout.
type pipeConn struct {
	r, w half
}

// half is one direction of a pipeConn: an *os.File (a pipe's end, or a
// socket's used one way).
type half interface {
	io.ReadWriteCloser
	SetDeadline(time.Time) error
	SyscallConn() (syscall.RawConn, error)
}

// SyscallConn gives the write end's descriptor, so the broker writes to it
// with writev (see broker.Broker.NewStream).
func (p *pipeConn) SyscallConn() (syscall.RawConn, error) { return p.w.SyscallConn() }

func (p *pipeConn) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p *pipeConn) Write(b []byte) (int, error) { return p.w.Write(b) }

// SetReadDeadline sets the read end's deadline.
func (p *pipeConn) SetReadDeadline(t time.Time) error { return p.r.SetDeadline(t) }

func (p *pipeConn) Close() error {
	err := p.w.Close()
	if err2 := p.r.Close(); err == nil {
		err = err2
	}
	return err
}
func (p *pipeConn) SetDeadline(t time.Time) error {
	err := p.r.SetDeadline(t)
	if err2 := p.w.SetDeadline(t); err == nil {
		err = err2
	}
	return err
}

// bootScript is the POSIX sh program a transport runs on the remote side.
// It reports the platform, takes the hash and size of the broker binary
// that fits, looks for it in a per-user cache keyed by that hash (the
// user's ~/.cache, else a private /tmp/spindle-UID that it owns, never a
// shared directory), receives it only when missing (checked against the
// hash, written under a temporary name, made executable, renamed into
// place), and execs it as a child broker on its stdin and stdout. Each step
// answers on a "SPINDLE1" line.
const bootScript = `echo "SPINDLE1 $(uname -s) $(uname -m)";read H N||exit 3;case $H in *[!0-9a-f]*|'')exit 3;;esac;` +
	`D=${XDG_CACHE_HOME:-${HOME:-/nonexistent}/.cache}/spindle/bin;` +
	`if ! mkdir -p "$D" 2>/dev/null||[ ! -w "$D" ];then D=${TMPDIR:-/tmp}/spindle-$(id -u);` +
	`mkdir -p -m 700 "$D"&&[ -O "$D" ]||{ echo "SPINDLE1 ERROR no private writable cache dir for $(id -un)";exit 4;};fi;B=$D/spindle-$H;` +
	`if [ -x "$B" ];then echo "SPINDLE1 HAVE";else echo "SPINDLE1 NEED";T=$B.$$;` +
	`{ head -c "$N" >"$T"&&[ "$({ sha256sum "$T"||shasum -a 256 "$T";} 2>/dev/null|cut -d' ' -f1)" = "$H" ]&&chmod 700 "$T"&&mv -f "$T" "$B";}||` +
	`{ rm -f "$T";echo "SPINDLE1 ERROR cannot install $B";exit 4;};fi;echo "SPINDLE1 READY";exec "$B" ` + childArg

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// bootstrap runs the remote half of a start: read the platform, send the
// binary's hash (and the binary when the remote cache lacks it), wait for
// the broker to be exec'd.
func (n *node) bootstrap(ctx context.Context, conn deadlineConn, c *childProc) error {
	defer n.bound(ctx, conn, c.connectTO)()

	line, err := readBootLine(conn)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() == nil {
			return fmt.Errorf("bootstrap: no answer from %s within the connect timeout (%v): %w", c.name, c.connectTO, err)
		}
		return fmt.Errorf("bootstrap: %w", err)
	}
	c.transportUp = true
	c.disarmSecret() // sudo did not prompt, or has been answered: never again
	f := strings.Fields(line)
	if len(f) != 2 {
		return &StartError{Class: ClassOther, Detail: fmt.Sprintf("unexpected bootstrap line %q", line)}
	}
	goos, goarch := platform(f[0], f[1])
	n.log.Log(ctx, LevelTrace, "bootstrap: remote platform", "child", c.name, "uname", f[0]+" "+f[1], "platform", goos+"/"+goarch)
	bin, err := n.brokerBinary(goos, goarch)
	if err != nil {
		_, _ = io.WriteString(conn, "- 0\n")
		return &StartError{Class: ClassPlatform, Err: err,
			Detail: fmt.Sprintf("remote is %s %s: no broker binary for %s/%s here", f[0], f[1], goos, goarch)}
	}
	if _, err := fmt.Fprintf(conn, "%s %d\n", bin.hash, len(bin.data)); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if line, err = readBootLine(conn); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	switch line {
	case "HAVE":
		c.sentBinary = false
		n.log.Log(ctx, LevelTrace, "bootstrap: broker binary cached on the remote", "child", c.name, "sha256", bin.hash, "bytes", len(bin.data))
	case "NEED":
		c.sentBinary = true
		n.log.Log(ctx, LevelTrace, "bootstrap: sending the broker binary", "child", c.name, "sha256", bin.hash, "bytes", len(bin.data))
		if _, err := conn.Write(bin.data); err != nil {
			if why, rerr := readBootLine(conn); rerr == nil {
				return bootRefusal(why)
			}
			return fmt.Errorf("bootstrap: send broker binary: %w", err)
		}
	default:
		return bootRefusal(line)
	}
	if line, err = readBootLine(conn); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if line != "READY" {
		return bootRefusal(line)
	}
	n.log.Log(ctx, LevelTrace, "bootstrap: broker started on the remote", "child", c.name)
	return nil
}

// bootRefusal is the error of a bootstrap line that is not the next step:
// the script's "ERROR ..." (it cannot install the broker), or garbage.
func bootRefusal(line string) error {
	if why, ok := strings.CutPrefix(line, "ERROR "); ok {
		return &StartError{Class: ClassRefused, Detail: "the remote cannot run the broker: " + oneLine(why)}
	}
	return &StartError{Class: ClassOther, Detail: fmt.Sprintf("unexpected bootstrap line %q", oneLine(line))}
}

// readBootLine reads one "SPINDLE1 ..." line, a byte at a time so nothing
// after it (the first frames) is consumed. Lines without the marker (a
// login banner on stdout) are skipped.
func readBootLine(r io.Reader) (string, error) {
	const marker = "SPINDLE1 "
	for skipped := 0; skipped < 100; skipped++ {
		var b strings.Builder
		one := make([]byte, 1)
		for {
			if _, err := r.Read(one); err != nil {
				if errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				return "", err
			}
			if one[0] == '\n' {
				break
			}
			if b.Len() > 4096 {
				return "", fmt.Errorf("line too long")
			}
			b.WriteByte(one[0])
		}
		if rest, ok := strings.CutPrefix(b.String(), marker); ok {
			return strings.TrimSpace(rest), nil
		}
	}
	return "", fmt.Errorf("no SPINDLE1 line in the first 100 lines")
}

// platform maps uname -s and uname -m to GOOS and GOARCH.
func platform(sys, machine string) (string, string) {
	goos := strings.ToLower(sys)
	switch machine {
	case "x86_64", "amd64":
		return goos, "amd64"
	case "aarch64", "arm64", "armv8l":
		return goos, "arm64"
	}
	return goos, machine
}

// binary is a broker binary ready to ship.
type binary struct {
	hash string
	data []byte
}

// binaries caches the broker binaries this context can ship, by platform.
type binaries struct {
	mu sync.Mutex
	m  map[string]*binary // guarded by mu: "goos/goarch" -> binary
}

// brokerBinary returns the broker binary for goos/goarch: this process's
// own executable when it fits, else spindle-<goos>-<goarch> next to it (what
// `make build` produces).
func (n *node) brokerBinary(goos, goarch string) (*binary, error) {
	key := goos + "/" + goarch
	n.bins.mu.Lock()
	defer n.bins.mu.Unlock()
	if b, ok := n.bins.m[key]; ok {
		return b, nil
	}
	path := n.exe
	if goos != runtime.GOOS || goarch != runtime.GOARCH {
		path = filepath.Join(filepath.Dir(n.exe), "spindle-"+goos+"-"+goarch)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("no %s: build it with `GOOS=%s GOARCH=%s go build -o %s ./tools/spindle` (make build does linux/amd64 and linux/arm64)",
				path, goos, goarch, path)
		}
		return nil, err
	}
	sum := sha256.Sum256(data)
	b := &binary{hash: hex.EncodeToString(sum[:]), data: data}
	if n.bins.m == nil {
		n.bins.m = make(map[string]*binary)
	}
	n.bins.m[key] = b
	return b, nil
}

// sudoPrompt is the prompt sudo is told to print when it wants a password.
const sudoPrompt = "[spindle-sudo-password]"

// transport turns a START_CHILD into how to start the child.
func (n *node) transport(req *wire.StartChild) (childSpec, error) {
	spec, err := transportFor(req, n.connectTO)
	spec.req = req
	if err != nil {
		return spec, &StartError{Class: ClassRefused, Name: req.Name, Label: spec.label, Detail: oneLine(err.Error()), Err: err}
	}
	return spec, nil
}

// transportFor builds the command line of a transport; connectTO is the
// default connect timeout (ssh's ConnectTimeout).
func transportFor(req *wire.StartChild, connectTO time.Duration) (childSpec, error) {
	spec := childSpec{name: req.Name, connectTO: time.Duration(req.ConnectTimeout), sandbox: req.Sandbox}
	script := "sh -c " + shellQuote(bootScript)
	switch req.Method {
	case "", "local":
		spec.label = "local"
		if req.User != "" {
			cred, home, err := lookupCredential(req.User)
			if err != nil {
				return spec, err
			}
			spec.cred, spec.home = cred, home
		}
		return spec, nil
	case "ssh":
		if req.Host == "" {
			return spec, fmt.Errorf("ssh: no host")
		}
		argv := []string{"ssh"}
		if req.SSHConfig != "" {
			argv = append(argv, "-F", req.SSHConfig)
		}
		argv = append(argv, "-T", "-e", "none")
		if !req.NoBatch {
			argv = append(argv, "-o", "BatchMode=yes")
		}
		timeout := connectTO
		if req.ConnectTimeout > 0 {
			timeout = time.Duration(req.ConnectTimeout)
		}
		argv = append(argv, "-o", "ConnectTimeout="+strconv.Itoa(max(1, int(timeout.Seconds()))))
		if req.KeepAliveNs > 0 {
			argv = append(argv, "-o", "ServerAliveInterval="+strconv.Itoa(max(1, int(time.Duration(req.KeepAliveNs).Seconds()))))
		}
		if req.HostKeyCheck != "" {
			argv = append(argv, "-o", "StrictHostKeyChecking="+req.HostKeyCheck)
		}
		if req.Port != 0 {
			argv = append(argv, "-p", strconv.Itoa(req.Port))
		}
		if req.User != "" {
			argv = append(argv, "-l", req.User)
		}
		if req.Identity != "" {
			argv = append(argv, "-i", req.Identity, "-o", "IdentitiesOnly=yes")
		}
		for _, o := range req.SSHOptions {
			argv = append(argv, "-o", o)
		}
		spec.argv = append(argv, req.Host, script)
		spec.label = "ssh " + req.Host
		if spec.name == "" {
			spec.name = "ssh." + req.Host
		}
	case "sudo":
		user := req.User
		if user == "" {
			user = "root"
		}
		argv := []string{"sudo"}
		if req.Password != "" {
			argv = append(argv, "-S", "-p", sudoPrompt)
			spec.secret, spec.secretPrompt = req.Password, sudoPrompt
		} else {
			argv = append(argv, "-n")
		}
		spec.argv = append(argv, "-H", "-u", user, "--", "sh", "-c", bootScript)
		spec.label = "sudo -u " + user
		if spec.name == "" {
			spec.name = "sudo." + user
		}
	case "docker", "podman":
		if req.Container == "" {
			return spec, fmt.Errorf("%s: no container", req.Method)
		}
		argv := []string{req.Method, "exec", "-i"}
		if req.User != "" {
			argv = append(argv, "-u", req.User)
		}
		spec.argv = append(argv, req.Container, "sh", "-c", bootScript)
		spec.label = req.Method + " " + req.Container
		if spec.name == "" {
			spec.name = req.Method + "." + req.Container
		}
	case "kubectl":
		if req.Pod == "" {
			return spec, fmt.Errorf("kubectl: no pod")
		}
		argv := []string{"kubectl"}
		if req.KubeContext != "" {
			argv = append(argv, "--context", req.KubeContext)
		}
		argv = append(argv, "exec", "-i")
		if req.Namespace != "" {
			argv = append(argv, "-n", req.Namespace)
		}
		argv = append(argv, req.Pod)
		if req.Container != "" {
			argv = append(argv, "-c", req.Container)
		}
		spec.argv = append(argv, "--", "sh", "-c", bootScript)
		spec.label = "kubectl " + req.Pod
		if spec.name == "" {
			spec.name = "kubectl." + req.Pod
		}
	default:
		return spec, fmt.Errorf("unknown connection method %q", req.Method)
	}
	return spec, nil
}

// lookupCredential returns the uid and gid of user, for a local child run
// as another user; only root may do that.
func lookupCredential(name string) (*syscall.Credential, string, error) {
	if os.Geteuid() != 0 {
		return nil, "", fmt.Errorf("local as user %q: only root can start a child as another user", name)
	}
	u, err := lookupUser(name)
	if err != nil {
		return nil, "", fmt.Errorf("local as user %q: %w", name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, "", fmt.Errorf("local as user %q: uid %q gid %q", name, u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, u.HomeDir, nil
}
