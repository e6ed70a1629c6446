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
// password is given through the Go API.
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
// An inventory is an INI file in the style of Ansible's:
//
//	# a comment; ";" also starts one at the start of a line
//	db0                                     # a host before any header is in no group
//	[web]
//	web1 target=ssh://admin@10.0.0.1
//	web2 target=ssh://admin@10.0.0.2 name=frontend2
//	bastion via=                            # an empty via= cancels the group's
//	[web:vars]
//	via=ssh://bastion
//	[db]
//	db1 target=ssh://db1/sudo://postgres
//	[prod:children]
//	web
//	db
//	[all:vars]
//	via=ssh://jump
//
// A host line is the host's name and then KEY=VALUE settings, split on
// spaces:
//
//	target=TARGET   where the host is; without it, ssh://NAME
//	via=TARGET      hops to go through first: the host's target is via + target
//	name=NAME       the context name of the target's last hop
//
// A host may be listed in several groups, but with settings on one line
// only; elsewhere it is listed by name alone. A host's via is its own via=,
// else the via= in [GROUP:vars] of the nearest group holding it (its own
// groups, then the groups listing those as children, and so on; groups at
// the same distance must agree), else [all:vars]. [GROUP:children] lists
// groups, one a line; cycles among them are harmless. Inline comments
// start at a "#" after a space. Host and group names are letters, digits,
// "_", "-" and "."; "all" stands for every host: [all] lists hosts in no
// group, like the lines before any header, and [all:children] changes
// nothing. Errors name the line and match ErrInventory; those caused by a
// target also match ErrInvalid.
//
// Inventory.Resolve takes a host name, a group name or "all" and returns the
// hosts it stands for, each once, in the order of the file.
//
// # Concurrency
//
// Parsing starts no goroutines and keeps no state between calls. A parsed
// Inventory never changes and is safe for concurrent use; Target and Hop
// are plain values.
package target
