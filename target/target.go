package target

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Hop is one context of a target chain: how to start it from the context
// before it (or from the master, for the first hop).
//
// Fields that do not apply to Method are zero. A Hop is a plain value:
// safe for concurrent reads, not for concurrent writes.
type Hop struct {
	// Method is "local", "ssh", "sudo", "docker", "podman" or "kubectl".
	Method string

	// Name is the context's name. Parse fills it from name= (or, for
	// local:NAME, from NAME); otherwise with a default derived from the hop:
	// "ssh.HOST", "sudo.USER", "docker.CONTAINER", "podman.CONTAINER",
	// "kubectl.POD", "local.USER" for local://USER. It is empty only for a
	// plain "local" hop, which the runtime then numbers ("local.ID").
	Name string

	// User is the login user (ssh), the user to become (sudo, and local://
	// USER, which only root may use), or the user inside the container
	// (docker, podman). Parse sets "root" for a sudo hop without a user.
	User string

	// Host and Port are the ssh server. Port 0 leaves it to ssh's config.
	Host string
	Port int

	// Container is the docker or podman container, or the kubectl
	// container inside Pod (empty: the pod's default container).
	Container string

	// Namespace, Pod and KubeContext say where kubectl execs. Empty
	// Namespace and KubeContext leave them to kubectl's config.
	Namespace, Pod, KubeContext string

	// Identity is an ssh private key file (ssh -i).
	Identity string

	// HostKeyCheck is ssh's StrictHostKeyChecking: "yes", "no",
	// "accept-new", or "" to leave it to ssh's config.
	HostKeyCheck string

	// SSHOptions are extra ssh -o options, each "KEY=VALUE", in order.
	SSHOptions []string

	// SSHConfig is an ssh client configuration file (ssh -F), read by the
	// ssh that starts this hop: on the machine of the context before it.
	// Empty leaves it to ssh's default files.
	SSHConfig string

	// KeepAlive is ssh's ServerAliveInterval, in whole seconds; 0 leaves it
	// to ssh's config.
	KeepAlive time.Duration

	// Batch runs ssh with BatchMode=yes, so it fails rather than prompts.
	// Parse sets it for every ssh hop unless the target says batch=no.
	Batch bool

	// ConnectTimeout bounds starting the context; 0 means the runtime's
	// default.
	ConnectTimeout time.Duration
}

// Target is a chain of hops: the first is started by the master, each
// next one by the context before it. Its String is the canonical target
// string, which Parse reads back to an equal Target.
type Target []Hop

// hopSchemes are the methods written "METHOD://...". "local" is the one
// method that may also be written without "://".
var hopSchemes = [...]string{"ssh", "sudo", "docker", "podman", "kubectl"}

const hopStartsText = `local, local:NAME, local://USER, ssh://, sudo://, docker://, podman:// or kubectl://`

// hopStart reports whether s begins with a hop: "local" followed by the end,
// "/", ":" or "?", or one of the hopSchemes followed by "://". It returns the
// length of the method prefix ("local", "local://" or "ssh://").
func hopStart(s string) (int, bool) {
	for _, m := range hopSchemes {
		if len(s) >= len(m)+3 && s[:len(m)] == m && s[len(m):len(m)+3] == "://" {
			return len(m) + 3, true
		}
	}
	if !strings.HasPrefix(s, "local") {
		return 0, false
	}
	rest := s[len("local"):]
	if strings.HasPrefix(rest, "://") {
		return len("local://"), true
	}
	if rest == "" || rest[0] == '/' || rest[0] == ':' || rest[0] == '?' {
		return len("local"), true
	}
	return 0, false
}

// Parse reads a target string: hops joined by "/", a new hop starting at
// each "/" that is followed by a hop start (see the package documentation
// for the rule and its examples).
func Parse(s string) (Target, error) {
	t, err := parse(s)
	if err != nil {
		if err.password {
			// Never quote the string: it holds the password.
			err.msg = fmt.Sprintf("%s: %s", ErrInvalid, err.msg)
		} else {
			err.msg = fmt.Sprintf("%s %q: %s", ErrInvalid, s, err.msg)
		}
		return nil, err
	}
	return t, nil
}

// parse is Parse without the target string in its errors' text.
func parse(s string) (Target, *parseError) {
	if s == "" {
		return nil, &parseError{msg: "empty target"}
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return nil, &parseError{msg: fmt.Sprintf("space or control character at offset %d (escape it as %%%02X)", i, c)}
		}
	}
	texts, err := splitHops(s)
	if err != nil {
		return nil, err
	}
	t := make(Target, 0, len(texts))
	for i, text := range texts {
		h, err := parseHop(text)
		if err != nil {
			switch {
			case len(texts) == 1:
			case err.password:
				err.msg = fmt.Sprintf("hop %d (%s): %s", i+1, methodOf(text), err.msg)
			default:
				err.msg = fmt.Sprintf("hop %d %q: %s", i+1, text, err.msg)
				if i > 0 && strings.Contains(texts[i-1], "?") {
					err.msg += fmt.Sprintf(` (if "/%s" is part of an option value of hop %d, write that "/" as %%2F)`, text, i)
				}
			}
			return nil, err
		}
		t = append(t, h)
	}
	return t, nil
}

// splitHops cuts s before every "/" that is followed by a hop start. The
// "//" of a hop's own "METHOD://" never counts, so "kubectl://local" is one
// hop (pod "local").
func splitHops(s string) ([]string, *parseError) {
	n, ok := hopStart(s)
	if !ok {
		return nil, noHopError(s)
	}
	var hops []string
	start := 0
	for i := n; i < len(s); i++ {
		if s[i] != '/' {
			continue
		}
		if m, ok := hopStart(s[i+1:]); ok {
			hops = append(hops, s[start:i])
			start = i + 1
			i += m // the loop's i++ lands on the new hop's first byte after its method
		}
	}
	return append(hops, s[start:]), nil
}

// noHopError explains why text does not start a hop.
func noHopError(text string) *parseError {
	if scheme, _, ok := strings.Cut(text, "://"); ok && !strings.ContainsAny(scheme, "/?@") {
		return &parseError{msg: fmt.Sprintf("unknown method %q (a hop starts with %s)", scheme, hopStartsText)}
	}
	for _, m := range hopSchemes {
		if text == m || strings.HasPrefix(text, m+":") {
			return &parseError{msg: fmt.Sprintf("%q: write %s:// (a hop starts with %s)", text, m, hopStartsText)}
		}
	}
	return &parseError{msg: fmt.Sprintf("%q is not a hop (a hop starts with %s)", text, hopStartsText)}
}

// methodOf is the method of a hop's text, for errors that must not quote it.
func methodOf(text string) string {
	n, _ := hopStart(text)
	return strings.TrimSuffix(text[:n], "://")
}

// param is one KEY=VALUE option of a hop, its value unescaped.
type param struct{ key, val string }

// Options each method accepts besides name= and timeout=.
var methodOptions = map[string][]string{
	"local":   nil,
	"ssh":     {"identity", "hostkey", "config", "opt", "keepalive", "batch"},
	"sudo":    nil,
	"docker":  nil,
	"podman":  nil,
	"kubectl": {"context"},
}

func parseHop(text string) (Hop, *parseError) {
	n, _ := hopStart(text)
	h := Hop{Method: strings.TrimSuffix(text[:n], "://")}
	body, query, hasQuery := strings.Cut(text[n:], "?")
	var params []param
	if hasQuery {
		var err *parseError
		if params, err = parseQuery(query); err != nil {
			return Hop{}, err
		}
	}
	// A user:password@ (or sudo://user:password) is refused before
	// anything could echo it.
	user, _, hasUser := strings.Cut(body, "@")
	if !hasUser && (h.Method == "sudo" || text[:n] == "local://") {
		user, hasUser = body, true
	}
	if hasUser && strings.Contains(user, ":") {
		return Hop{}, &parseError{msg: "user:password is not accepted: a password is given with -K (spindle run -K) or through the Go API, never in a target", password: true}
	}

	var err *parseError
	switch h.Method {
	case "local":
		err = h.parseLocal(text[:n], body)
	case "ssh":
		err = h.parseSSH(body)
	case "sudo":
		err = h.parseSudo(body)
	case "docker", "podman":
		err = h.parseContainer(body)
	case "kubectl":
		err = h.parseKube(body)
	}
	if err != nil {
		return Hop{}, err
	}
	if h.Method == "ssh" {
		h.Batch = true
	}
	explicitName := false
	if h.Method == "local" && h.Name != "" {
		explicitName = true // local:NAME
	}
	seen := make(map[string]bool)
	for _, p := range params {
		if p.key == "name" && explicitName {
			return Hop{}, &parseError{msg: "name given twice (local:NAME and name=)"}
		}
		if seen[p.key] && p.key != "opt" {
			return Hop{}, &parseError{msg: fmt.Sprintf("option %s given twice", p.key)}
		}
		seen[p.key] = true
		if err := h.setOption(p); err != nil {
			return Hop{}, err
		}
	}
	if !seen["name"] && !explicitName {
		h.Name = defaultName(h)
	}
	return h, nil
}

// parseQuery splits "k=v&k=v", unescaping the values.
func parseQuery(q string) ([]param, *parseError) {
	if q == "" {
		return nil, &parseError{msg: `no options after "?"`}
	}
	var params []param
	for _, f := range strings.Split(q, "&") {
		k, v, ok := strings.Cut(f, "=")
		if k == "password" || strings.HasPrefix(k, "password%") {
			return nil, &parseError{msg: "password= is not accepted: a password is given with -K (spindle run -K) or through the Go API, never in a target", password: true}
		}
		if f == "" {
			return nil, &parseError{msg: fmt.Sprintf("empty option in %q", "?"+q)}
		}
		if !ok {
			return nil, &parseError{msg: fmt.Sprintf("option %q: want KEY=VALUE", f)}
		}
		val, err := url.PathUnescape(v)
		if err != nil {
			return nil, &parseError{msg: fmt.Sprintf("option %s: bad %%-escape in %q", k, v)}
		}
		if i := strings.IndexFunc(val, isControl); i >= 0 {
			return nil, &parseError{msg: fmt.Sprintf("option %s: control character in value", k)}
		}
		params = append(params, param{k, val})
	}
	return params, nil
}

func isControl(r rune) bool { return r < ' ' || r == 0x7f }

func (h *Hop) setOption(p param) *parseError {
	bad := func(format string, args ...any) *parseError {
		return &parseError{msg: fmt.Sprintf("option %s=%s: ", p.key, p.val) + fmt.Sprintf(format, args...)}
	}
	switch {
	case p.key == "name":
		if err := checkName(p.val); err != nil {
			return bad("%s", err)
		}
		h.Name = p.val
	case p.key == "timeout":
		d, err := time.ParseDuration(p.val)
		if err != nil || d <= 0 {
			return bad("want a positive duration such as 10s or 1m30s")
		}
		h.ConnectTimeout = d
	case h.Method == "ssh" && p.key == "identity":
		if p.val == "" {
			return bad("empty path")
		}
		h.Identity = p.val
	case h.Method == "ssh" && p.key == "hostkey":
		switch p.val {
		case "yes", "no", "accept-new":
		default:
			return bad("want yes, no or accept-new")
		}
		h.HostKeyCheck = p.val
	case h.Method == "ssh" && p.key == "config":
		if p.val == "" {
			return bad("empty path")
		}
		h.SSHConfig = p.val
	case h.Method == "ssh" && p.key == "opt":
		k, v, ok := strings.Cut(p.val, "=")
		if !ok || k == "" || v == "" || strings.IndexFunc(k, notAlnum) >= 0 {
			return bad("want KEY=VALUE, KEY an ssh option name such as ProxyJump")
		}
		h.SSHOptions = append(h.SSHOptions, p.val)
	case h.Method == "ssh" && p.key == "keepalive":
		n, err := strconv.Atoi(p.val)
		if err != nil || n <= 0 || n > 1<<31-1 {
			return bad("want a positive whole number of seconds")
		}
		h.KeepAlive = time.Duration(n) * time.Second
	case h.Method == "ssh" && p.key == "batch":
		switch p.val {
		case "yes":
			h.Batch = true
		case "no":
			h.Batch = false
		default:
			return bad("want yes or no")
		}
	case h.Method == "kubectl" && p.key == "context":
		if p.val == "" {
			return bad("empty context")
		}
		h.KubeContext = p.val
	default:
		want := append([]string{"name", "timeout"}, methodOptions[h.Method]...)
		return &parseError{msg: fmt.Sprintf("unknown option %q for %s (want %s)", p.key, h.Method, strings.Join(want, ", "))}
	}
	return nil
}

func notAlnum(r rune) bool {
	return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9')
}

// checkName validates a context name.
func checkName(name string) error {
	if name == "" {
		return fmt.Errorf("empty name")
	}
	if strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '/' }) {
		return fmt.Errorf("a name may not contain spaces, control characters or %q", "/")
	}
	return nil
}

// unescapeField unescapes one part of a hop before "?" and checks it is a
// non-empty word without spaces, control characters, "/" or "@".
func unescapeField(what, raw string) (string, *parseError) {
	if raw == "" {
		return "", &parseError{msg: "empty " + what}
	}
	v, err := url.PathUnescape(raw)
	if err != nil {
		return "", &parseError{msg: fmt.Sprintf("%s %q: bad %%-escape", what, raw)}
	}
	if v == "" || strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '/' }) {
		return "", &parseError{msg: fmt.Sprintf("%s %q: spaces, control characters and %q are not allowed", what, raw, "/")}
	}
	return v, nil
}

// slashError reports a "/" that does not start a hop.
func slashError(rest string) *parseError {
	if rest == "" {
		return &parseError{msg: `trailing "/"`}
	}
	msg := fmt.Sprintf("%q does not start a hop (a hop starts with %s)", "/"+rest, hopStartsText)
	if scheme, _, ok := strings.Cut(rest, "://"); ok && !strings.ContainsAny(scheme, "/?@") {
		msg = fmt.Sprintf("%q: unknown method %q (a hop starts with %s)", "/"+rest, scheme, hopStartsText)
	}
	return &parseError{msg: msg}
}

// cutSlash returns the part of body before its first "/", or an error for
// anything after it: there, the "/" did not start a hop.
func cutSlash(body string) (string, *parseError) {
	if before, after, ok := strings.Cut(body, "/"); ok {
		return before, slashError(after)
	}
	return body, nil
}

func (h *Hop) parseLocal(prefix, body string) *parseError {
	if prefix == "local://" {
		body, err := cutSlash(body)
		if err != nil {
			return err
		}
		if h.User, err = unescapeField("user after local://", body); err != nil {
			return err
		}
		if strings.Contains(body, "@") {
			return &parseError{msg: fmt.Sprintf("local://%s: local takes only a user, as local://alice", body)}
		}
		return nil
	}
	if body == "" {
		return nil
	}
	if body[0] != ':' {
		_, err := cutSlash(body)
		return err
	}
	name, err := cutSlash(body[1:])
	if err != nil {
		return err
	}
	if name == "" {
		return &parseError{msg: `empty name after "local:"`}
	}
	if h.Name, err = unescapeField("name", name); err != nil {
		return err
	}
	return nil
}

func (h *Hop) parseSSH(body string) *parseError {
	body, err := cutSlash(body)
	if err != nil {
		return err
	}
	hostport := body
	if i := strings.LastIndex(body, "@"); i >= 0 {
		if h.User, err = unescapeField("user", body[:i]); err != nil {
			return err
		}
		hostport = body[i+1:]
	}
	var host, port string
	hasPort := false
	switch {
	case strings.HasPrefix(hostport, "["):
		end := strings.Index(hostport, "]")
		if end < 0 {
			return &parseError{msg: fmt.Sprintf("host %q: missing %q", hostport, "]")}
		}
		host = hostport[1:end]
		if rest := hostport[end+1:]; rest != "" {
			if rest[0] != ':' {
				return &parseError{msg: fmt.Sprintf("unexpected %q after host %q", rest, hostport[:end+1])}
			}
			port, hasPort = rest[1:], true
		}
	case strings.Count(hostport, ":") > 1:
		return &parseError{msg: fmt.Sprintf("host %q: write an IPv6 address in brackets, as ssh://[::1]:22", hostport)}
	default:
		host, port, hasPort = strings.Cut(hostport, ":")
	}
	if h.Host, err = unescapeField("host", host); err != nil {
		return err
	}
	if hasPort {
		p, perr := strconv.Atoi(port)
		if perr != nil || p < 1 || p > 65535 {
			return &parseError{msg: fmt.Sprintf("bad port %q (want 1 to 65535)", port)}
		}
		h.Port = p
	}
	return nil
}

func (h *Hop) parseSudo(body string) *parseError {
	body, err := cutSlash(body)
	if err != nil {
		return err
	}
	if body == "" {
		h.User = "root"
		return nil
	}
	if strings.Contains(body, "@") {
		return &parseError{msg: fmt.Sprintf("sudo://%s: sudo takes only a user, as sudo://postgres", body)}
	}
	h.User, err = unescapeField("user", body)
	return err
}

func (h *Hop) parseContainer(body string) *parseError {
	body, err := cutSlash(body)
	if err != nil {
		return err
	}
	container := body
	if i := strings.LastIndex(body, "@"); i >= 0 {
		if h.User, err = unescapeField("user", body[:i]); err != nil {
			return err
		}
		container = body[i+1:]
	}
	h.Container, err = unescapeField("container", container)
	return err
}

func (h *Hop) parseKube(body string) *parseError {
	if strings.Contains(body, "@") {
		return &parseError{msg: "kubectl takes no user@ (the container's user is the image's)"}
	}
	podPart := body
	if ns, rest, ok := strings.Cut(body, "/"); ok {
		var err *parseError
		if h.Namespace, err = unescapeField("namespace", ns); err != nil {
			return err
		}
		if podPart, err = cutSlash(rest); err != nil {
			return err
		}
	}
	pod, container, hasContainer := strings.Cut(podPart, ":")
	var err *parseError
	if h.Pod, err = unescapeField("pod", pod); err != nil {
		return err
	}
	if hasContainer {
		if h.Container, err = unescapeField("container", container); err != nil {
			return err
		}
	}
	return nil
}

// defaultName is the name Parse gives a hop without name=; the runtime
// derives the same names.
func defaultName(h Hop) string {
	switch h.Method {
	case "local":
		if h.User != "" {
			return "local." + h.User
		}
		return ""
	case "ssh":
		return "ssh." + h.Host
	case "sudo":
		return "sudo." + h.User
	case "docker", "podman":
		return h.Method + "." + h.Container
	case "kubectl":
		return "kubectl." + h.Pod
	}
	return ""
}

// String returns the target in canonical form: hops' String joined by "/".
func (t Target) String() string {
	parts := make([]string, len(t))
	for i, h := range t {
		parts[i] = h.String()
	}
	return strings.Join(parts, "/")
}

// String returns the hop in canonical form: options in a fixed order
// (name, timeout, then the method's own), name= only when it differs from
// the default, and %-escapes wherever a character would be misread.
func (h Hop) String() string {
	var b strings.Builder
	nameDone := h.Name == "" || h.Name == defaultName(h)
	switch h.Method {
	case "local":
		switch {
		case h.User != "":
			b.WriteString("local://" + escape(h.User, "/?&#@:"))
		case h.Name != "":
			b.WriteString("local:" + escape(h.Name, "/?&#"))
			nameDone = true
		default:
			b.WriteString("local")
		}
	case "ssh":
		b.WriteString("ssh://")
		if h.User != "" {
			b.WriteString(escape(h.User, "/?&#@:") + "@")
		}
		host := escape(h.Host, "/?&#@[]")
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		b.WriteString(host)
		if h.Port != 0 {
			b.WriteString(":" + strconv.Itoa(h.Port))
		}
	case "sudo":
		b.WriteString("sudo://" + escape(h.User, "/?&#@:"))
	case "docker", "podman":
		b.WriteString(h.Method + "://")
		if h.User != "" {
			b.WriteString(escape(h.User, "/?&#@:") + "@")
		}
		b.WriteString(escape(h.Container, "/?&#@"))
	case "kubectl":
		b.WriteString("kubectl://")
		if h.Namespace != "" {
			b.WriteString(escape(h.Namespace, "/?&#@:") + "/")
			pod := escape(h.Pod, "/?&#@:")
			if startsHop(pod) {
				pod = fmt.Sprintf("%%%02X", pod[0]) + pod[1:]
			}
			b.WriteString(pod)
		} else {
			b.WriteString(escape(h.Pod, "/?&#@:"))
		}
		if h.Container != "" {
			b.WriteString(":" + escape(h.Container, "/?&#@:"))
		}
	default:
		b.WriteString(h.Method + "://")
	}

	var opts []string
	add := func(k, v string) { opts = append(opts, k+"="+guardSlashes(escape(v, "?&#"))) }
	if !nameDone {
		add("name", h.Name)
	}
	if h.ConnectTimeout > 0 {
		add("timeout", h.ConnectTimeout.String())
	}
	switch h.Method {
	case "ssh":
		if h.Identity != "" {
			add("identity", h.Identity)
		}
		if h.HostKeyCheck != "" {
			add("hostkey", h.HostKeyCheck)
		}
		if h.SSHConfig != "" {
			add("config", h.SSHConfig)
		}
		for _, o := range h.SSHOptions {
			add("opt", o)
		}
		if h.KeepAlive > 0 {
			add("keepalive", strconv.FormatInt(int64((h.KeepAlive+time.Second-1)/time.Second), 10))
		}
		if !h.Batch {
			add("batch", "no")
		}
	case "kubectl":
		if h.KubeContext != "" {
			add("context", h.KubeContext)
		}
	}
	if len(opts) > 0 {
		b.WriteString("?" + strings.Join(opts, "&"))
	}
	return b.String()
}

// escape %-escapes "%", spaces, control and non-ASCII bytes, and the bytes
// in special.
func escape(s, special string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '%' || strings.IndexByte(special, c) >= 0 {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// startsHop reports whether s, followed by whatever may come next in a
// target, could read as the start of a hop.
func startsHop(s string) bool {
	_, a := hopStart(s)
	_, b := hopStart(s + "/")
	return a || b
}

// guardSlashes escapes each "/" of an option value that Parse would take as
// the start of a new hop.
func guardSlashes(v string) string {
	if !strings.Contains(v, "/") {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '/' && startsHop(v[i+1:]) {
			b.WriteString("%2F")
		} else {
			b.WriteByte(v[i])
		}
	}
	return b.String()
}
