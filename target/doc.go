// Package target parses the one target syntax that says where spindle
// starts a context — shared by the spindle command line and the Go API —
// and inventory files that name targets.
//
// # Targets
//
// A target is a chain of hops joined by "/". The master starts the first
// hop; each later hop is started by the context before it:
//
//	ssh://bastion/ssh://admin@web1:2222?identity=/k/id/sudo://root
//
// is ssh to bastion, from there ssh to web1 as admin on port 2222 with key
// /k/id, and there sudo to root. Each hop is one of:
//
//	local                      a new local context (the runtime names it "local.ID")
//	local:NAME                 a new local context named NAME (same as local?name=NAME)
//	local://USER               a local context running as USER (only root may do this)
//	ssh://[USER@]HOST[:PORT]   ssh; an IPv6 HOST in brackets: ssh://[::1]:22
//	sudo://[USER]              sudo -u USER; USER defaults to root
//	docker://[USER@]CONTAINER  docker exec
//	podman://[USER@]CONTAINER  podman exec
//	kubectl://[NAMESPACE/]POD[:CONTAINER]   kubectl exec
//
// Methods are lower case. Options follow a "?" as KEY=VALUE pairs joined by
// "&":
//
//	every method   name=NAME            the context's name
//	               timeout=DURATION     connect timeout, a Go duration: 10s, 1m30s
//	ssh            identity=PATH        private key (ssh -i)
//	               hostkey=yes|no|accept-new   StrictHostKeyChecking; unset: ssh's config decides
//	               config=PATH          ssh client config file (ssh -F), on the machine that runs this ssh
//	               opt=KEY=VALUE        an extra ssh -o option; repeatable, kept in order
//	               keepalive=SECONDS    ServerAliveInterval
//	               batch=no             let ssh prompt (BatchMode=yes is the default)
//	kubectl        context=CONTEXT      kubectl --context
//
// Without name=, a hop is named from what it reaches: "ssh.HOST",
// "sudo.USER", "docker.CONTAINER", "podman.CONTAINER", "kubectl.POD",
// "local.USER"; see Hop.Name. Unknown options, options given twice (but
// opt=), bad ports, empty hosts, users, containers or pods, and unknown
// methods are errors that name the hop and the bad part.
//
// Target.WithDefaults fills settings a hop leaves unset from a Defaults
// given once for every target (a command line's --connect-timeout,
// --host-key-checking and --ssh-config); the target's own options win.
//
// Passwords never appear in a target: password= and user:password@ are
// rejected with ErrPassword (and the error does not repeat them). A sudo
// password is asked for on the terminal by spindle run -K (and spindle sh
// -K), or given through the Go API (spindle.ChildOptions.Password,
// spindle.Fleet.SudoPassword).
//
// # Where a hop starts
//
// Option values may contain "/" (identity=/k/id), and kubectl's
// NAMESPACE/POD has one, so not every "/" separates hops. The rule: a new
// hop starts at a "/" that is immediately followed by a hop start, which
// is
//
//	"local" followed by the end, "/", ":" or "?"
//	"ssh://", "sudo://", "docker://", "podman://" or "kubectl://"
//
// Every other "/" belongs to the hop before it. So:
//
//	ssh://a?identity=/k/id/sudo://root   two hops; identity is /k/id
//	kubectl://prod/api:app/local:w       two hops; pod api in namespace prod, then local w
//	ssh://a/local                        two hops: ssh to a, then a local context there
//	ssh://a?identity=/usr/local/id       two hops, "/local" starts one: an error
//	ssh://a?identity=/usr%2Flocal/id     one hop; identity is /usr/local/id
//	ssh://a/web1                         an error: "/web1" does not start a hop
//
// The "//" right after a method never counts: kubectl://local is one hop
// (pod local). Anywhere before or after "?", %XX escapes stand for bytes:
// use %2F for a "/" that would otherwise start a hop, %26 for "&" in a
// value, %40 for "@" in a user, %20 for a space (targets contain no raw
// spaces, so they split safely on the command line and in inventories).
// Target.String writes these escapes wherever they are needed, and always
// writes the canonical form: options in a fixed order, name= only when it
// differs from the default, sudo:// as sudo://root. Parse(t.String())
// returns a Target equal to t for every t that Parse returned.
//
// # Inventories
//
// An inventory is an INI file in the style of Ansible's (a sample:
// examples/inventory/hosts.ini):
//
//	# a comment; ";" also starts one at the start of a line
//	db0                                     # a host before any header is in no group
//	[web]
//	web1 target=ssh://admin@10.0.0.1
//	web2 target=ssh://admin@10.0.0.2 name=frontend2
//	web[03:20] target=ssh://admin@{name}.example.com role=frontend
//	bastion via=                            # an empty via= cancels the group's
//	[web:vars]
//	via=ssh://bastion
//	port=8080
//	[db]
//	db1 target=ssh://db1/sudo://postgres
//	[prod:children]
//	web
//	db
//	[prod:vars]
//	port=80
//	[all:vars]
//	via=ssh://jump
//	motd = "hello, world"
//
// A host line is the host's name and then KEY=VALUE fields, split on
// spaces; a double or single quote keeps spaces (and " #") in a value:
// motd="hello world". Three keys are the host's connection:
//
//	target=TARGET   where the host is; without it, ssh://NAME
//	via=TARGET      hops to go through first: the host's target is via + target
//	name=NAME       the context name of the target's last hop
//
// In these three, {name} stands for the host's name. Every other key is a
// variable for the host's tasks (how they get them is the caller's
// choice; spindle run's is in its usage). A variable's name is letters,
// digits and "_", not starting with a digit, so it can name an environment
// variable; its value is a string. ansible_* keys are refused: a
// connection is given with target= and via=.
//
// A host may be listed in several groups, but with settings on one line
// only; elsewhere it is listed by name alone. [GROUP:children] lists
// groups, one a line; cycles among them are harmless. Inline comments
// start at a "#" after a space, outside quotes. Host and group names are
// letters, digits, "_", "-" and "."; "all" stands for every host: [all]
// lists hosts in no group, like the lines before any header, and
// [all:children] changes nothing. "local" is refused as a host or group
// name: it is a target.
//
// # Host ranges
//
// A host line's name may hold ranges, each expanding to one host per
// value, END included:
//
//	web[01:50]      web01 ... web50: a START with a leading zero pads every
//	                value to its width (START and END must then be of one width)
//	web[1:50]       web1 ... web50
//	web[1:10:3]     web1 web4 web7 web10: a STEP
//	db[a:f]         dba ... dbf: single letters, of one case
//	r[1:2]-[a:b]    r1-a r1-b r2-a r2-b: several ranges, the leftmost slowest
//
// The line's settings (target=, via=, name=, variables) apply to each
// host; name= must then hold {name}. A reversed range, mismatched padding,
// an empty START or END, a STEP below 1 and a line that expands to more
// than 10,000 hosts are errors naming the line; an inventory holds at most
// 100,000 hosts.
//
// # Precedence
//
// A host's via and each of its variables come from the nearest place that
// sets them: the host's own line; else [GROUP:vars] of the groups holding
// it directly; else of the groups listing those as children, and so on
// outward; else [all:vars]. So a host beats its group, a child group its
// parent, every group all. Groups at the same distance that set the same
// key must agree (else the file is refused: set the key on the host);
// each variable is decided on its own. In [GROUP:vars], via= is the
// connection, target= and name= are refused (they are a host's own), every
// other key is a variable; the value is the rest of the line, without
// quotes that enclose it whole.
//
// Errors name the line ("PATH:LINE:" from LoadInventory) and match
// ErrInventory; those caused by a target also match ErrInvalid.
//
// # Patterns
//
// Inventory.Resolve takes a host name, a group name or "all" and returns the
// hosts it stands for, each once, in the order of the file. Inventory.Select
// takes a pattern, as Ansible's: terms joined by "," or ":" (the same),
// each a host, a group, "all" or "*", or a glob ("web*", "db?"), prefixed
// by "&" to intersect or "!" to exclude:
//
//	web:db          web's hosts, then db's (each once)
//	web:&prod       web's hosts that are also in prod
//	web:!db         web's hosts outside db
//	!db             every host outside db
//	web*,!web-canary
//
// The plain terms are joined in the order written (file order within a
// term), then "&" terms keep and "!" terms drop, whatever their place. A
// term that names nothing is an error (ErrUnknown), as is a malformed
// pattern (ErrPattern). Since a target chain also holds ":", a caller that
// takes both tells them apart with IsChain: a string that starts like a
// hop (local, local:NAME, METHOD://) is a chain, any other a pattern.
//
// # Bounds
//
// An inventory line is at most 1 MiB, one line expands to at most 10,000
// hosts and an inventory holds at most 100,000.
//
// # Concurrency
//
// Parsing starts no goroutines and keeps no state between calls. A parsed
// Inventory never changes and is safe for concurrent use; Target and Hop
// are plain values.
package target
