#!/usr/bin/env bash
# tools/ctrimage.sh: the local container image the container tests start,
# and how to start a container from it on this machine. No registry: the
# image is a busybox-static root file system imported with `ENGINE import`.
# The container tests (internal/testutil/container.go) and .ci/run share it.
#
#   tools/ctrimage.sh image ENGINE       build the image if this engine lacks
#                                        it (cached: its tag is the hash of
#                                        its recipe); print its tag
#   tools/ctrimage.sh run ENGINE NAME    start container NAME from the image,
#                                        detached, no network, labelled
#                                        spindle-test; print its tag
#   tools/ctrimage.sh check ENGINE       start and remove a throwaway
#                                        container: can this engine run one?
#   tools/ctrimage.sh clean ENGINE       remove the containers labelled
#                                        spindle-test (left by a killed run)
#   tools/ctrimage.sh dockerd start|stop a private dockerd (its data under
#                                        the cache, its socket at
#                                        /run/spindle-dockerd/docker.sock)
#                                        when no engine answers docker info;
#                                        start prints DOCKER_HOST=... (and
#                                        "started" when it started it)
#
# ENGINE is podman, docker, or podman-rootless (podman run by root as the
# unprivileged user SPINDLE_CTR_USER, default spindle-test, which the
# tests create: rootless containers, in that user's own storage). On failure each prints one line, "ctrimage:
# ENGINE cannot run a container here: <the engine's own error>", and exits 1.
# Every engine command is bounded (timeout); nothing here waits for stdin.
#
# What an engine needs here, and what this works around (a Firecracker VM:
# cgroup v1 with an empty cgroup2 beside it, no CAP_SYS_RESOURCE):
#   - crun 1.8 refuses hybrid cgroups ("cgroups in hybrid mode not
#     supported"): podman is given --runtime runc when crun cannot start one;
#   - runc and crun cannot raise RLIMIT_NOFILE or RLIMIT_NPROC to podman
#     4.3's defaults (1048576) without CAP_SYS_RESOURCE ("setrlimit
#     RLIMIT_NOFILE: Operation not permitted"): the limits are then given
#     explicitly, no higher than this process's own.
# The first set of flags that starts a container is kept in the cache (a
# file per engine) and tried first next time.
set -euo pipefail

cache="${SPINDLE_CTR_CACHE:-/var/cache/spindle-ctr}"
label=spindle-test
engine_timeout=60 # seconds, for each engine command
busybox=/bin/busybox
rootless_user="${SPINDLE_CTR_USER:-spindle-test}" # podman-rootless runs podman as this user

die() {
	echo "ctrimage: $*" >&2
	exit 1
}

# first_line prints the first line of the engine's output that says
# something, without podman's "Error: " prefix.
first_line() {
	grep -v '^[[:space:]]*$' | grep -v '^time=' | head -n 1 | sed 's/^Error: //'
}

need_engine() {
	case "$1" in
	podman | docker | podman-rootless) ;;
	*) die "unknown engine ${1:-(none)}: podman, podman-rootless or docker" ;;
	esac
	local prog=${1%-rootless}
	command -v "$prog" >/dev/null || die "$1 cannot run a container here: $prog is not installed (tools/testdeps.sh ensure installs it)"
	[ "$(id -u)" = 0 ] || die "$1 cannot run a container here: the container tests run the engine as root (podman-rootless: as root, which runs podman as $rootless_user)"
	if [ "$1" = podman-rootless ]; then
		id "$rootless_user" >/dev/null 2>&1 || die "$1 cannot run a container here: no user $rootless_user (the tests create it; or set SPINDLE_CTR_USER)"
		grep -q "^$rootless_user:" /etc/subuid || die "$1 cannot run a container here: $rootless_user has no subordinate UIDs in /etc/subuid (useradd gives them; podman needs them)"
	fi
}

# eng ENGINE SECONDS ARGS...: the engine's command, bounded in time;
# podman-rootless is podman run as $rootless_user, from / (a cwd it can
# read), with its own environment (HOME, no XDG_RUNTIME_DIR: podman then
# keeps its runtime state under /tmp).
eng() {
	local e=$1 secs=$2
	shift 2
	case "$e" in
	podman-rootless)
		(cd / && timeout "$secs" runuser -u "$rootless_user" -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
			HOME="$(getent passwd "$rootless_user" | cut -d: -f6)" podman "$@")
		;;
	*) timeout "$secs" "$e" "$@" ;;
	esac
}

# recipe is what the image is made of; its hash is the image's tag.
recipe() {
	echo "spindle-ctr rootfs v1: busybox-static applets, /etc/passwd root:/root, /tmp 1777"
	sha256sum "$busybox" | cut -d' ' -f1
}

tag() {
	echo "localhost/spindle-ctr:$(recipe | sha256sum | cut -c1-12)"
}

# image ENGINE: import the image unless the engine has it.
image() {
	local e=$1 t
	t="$(tag)"
	if eng "$e" "$engine_timeout" image inspect "$t" >/dev/null 2>&1; then
		echo "$t"
		return
	fi
	[ -x "$busybox" ] || die "$e cannot run a container here: no $busybox to build the image from (apt-get install busybox-static)"
	local root
	root="$(mktemp -d)"
	# shellcheck disable=SC2064 # expand now: root is local
	trap "rm -rf '$root'" RETURN
	mkdir -p "$root/bin" "$root/etc" "$root/root" "$root/tmp" "$root/proc" "$root/sys" "$root/dev"
	chmod 1777 "$root/tmp"
	chmod 700 "$root/root"
	cp "$busybox" "$root/bin/busybox"
	local a
	for a in $("$busybox" --list); do
		[ "$a" = busybox ] || ln -s busybox "$root/bin/$a"
	done
	echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
	echo 'root:x:0:' >"$root/etc/group"
	local out
	if ! out="$(tar -C "$root" -c . | eng "$e" 120 import --change 'CMD ["/bin/sh"]' - "$t" 2>&1)"; then
		die "$e cannot run a container here: $e import: $(first_line <<<"$out")"
	fi
	echo "$t"
}

# limits are the --ulimit flags of this process's own hard limits, which a
# runtime without CAP_SYS_RESOURCE may set; nproc also no higher than 32768
# (podman 4.3 lowers its own to that where it cannot raise it).
limits() {
	local n p
	n="$(ulimit -Hn)"
	p="$(ulimit -Hu)"
	[ "$n" = unlimited ] && n=1048576
	{ [ "$p" = unlimited ] || [ "$p" -gt 32768 ]; } && p=32768
	echo "--ulimit nofile=$n:$n --ulimit nproc=$p:$p"
}

# candidates prints, one a line, the flag sets to try, best first: the
# kept one, then the engine's defaults, then the work-arounds above.
candidates() {
	local e=$1
	[ -s "$cache/$e.flags" ] && cat "$cache/$e.flags"
	echo "-"
	echo "$(limits)"
	if [ "$e" != docker ]; then
		echo "--runtime runc"
		echo "--runtime runc $(limits)"
	fi
}

# start ENGINE NAME TAG: start the container with the first flags that
# work; keep them.
start() {
	local e=$1 name=$2 t=$3 flags out err="" global run
	mkdir -p "$cache"
	while IFS= read -r flags; do
		global=() run=()
		# --runtime is a global flag of podman's, the rest are run's.
		# shellcheck disable=SC2206 # the flags are words without spaces
		local words=($flags)
		local i=0
		while [ "$i" -lt "${#words[@]}" ]; do
			case "${words[$i]}" in
			-) ;;
			--runtime)
				global+=(--runtime "${words[$((i + 1))]}")
				i=$((i + 1))
				;;
			*) run+=("${words[$i]}") ;;
			esac
			i=$((i + 1))
		done
		remove "$e" "$name"
		if out="$(eng "$e" "$engine_timeout" "${global[@]}" run -d --name "$name" --label "$label=1" \
			--network none "${run[@]}" "$t" sleep 2147483647 2>&1)"; then
			echo "$flags" >"$cache/$e.flags"
			return 0
		fi
		# The first error is the engine's own; later ones are what the
		# work-arounds ran into.
		[ -n "$err" ] || err="$(first_line <<<"$out")"
	done < <(candidates "$e" | awk '!seen[$0]++')
	remove "$e" "$name"
	die "$e cannot run a container here: $err"
}

# remove ENGINE NAME...: remove containers at once (their init, sleep,
# ignores SIGTERM as PID 1: podman would wait 10 s for it).
remove() {
	local e=$1
	shift
	local now=()
	[ "$e" != docker ] && now=(-t 0)
	eng "$e" "$engine_timeout" rm -f "${now[@]}" "$@" >/dev/null 2>&1 || true
}

dockerd_dir=/run/spindle-dockerd

dockerd_start() {
	command -v docker >/dev/null || die "docker cannot run a container here: docker is not installed"
	if timeout 20 docker info >/dev/null 2>&1; then
		return 0 # an engine answers already
	fi
	local sock="unix://$dockerd_dir/docker.sock"
	if DOCKER_HOST="$sock" timeout 20 docker info >/dev/null 2>&1; then
		echo "DOCKER_HOST=$sock"
		return 0
	fi
	[ -x /usr/sbin/dockerd ] || die "docker cannot run a container here: no dockerd (apt-get install docker.io)"
	mkdir -p "$dockerd_dir" "$cache/docker"
	# No bridge and no iptables: the test containers have no network, and
	# this must not change the machine's firewall.
	setsid /usr/sbin/dockerd --data-root "$cache/docker" --exec-root "$dockerd_dir/exec" \
		--pidfile "$dockerd_dir/dockerd.pid" -H "$sock" --iptables=false --ip6tables=false --bridge=none \
		</dev/null >"$dockerd_dir/dockerd.log" 2>&1 &
	local i
	for i in $(seq 60); do
		if DOCKER_HOST="$sock" timeout 5 docker info >/dev/null 2>&1; then
			echo "DOCKER_HOST=$sock started"
			return 0
		fi
		if ! kill -0 $! 2>/dev/null; then
			break
		fi
		sleep 0.5
	done
	local why
	why="$(grep -i -E 'level=(fatal|error)|failed' "$dockerd_dir/dockerd.log" | tail -n 1 | sed 's/^.*msg="\{0,1\}//; s/"$//')"
	dockerd_stop
	die "docker cannot run a container here: dockerd did not start within 30 s: ${why:-see $dockerd_dir/dockerd.log}"
}

dockerd_stop() {
	local pid
	pid="$(cat "$dockerd_dir/dockerd.pid" 2>/dev/null)" || return 0
	kill "$pid" 2>/dev/null || return 0
	local i
	for i in $(seq 40); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.25
	done
	kill -KILL "$pid" 2>/dev/null || true
}

case "${1:-}" in
image)
	need_engine "${2:-}"
	image "$2"
	;;
run)
	need_engine "${2:-}"
	[ -n "${3:-}" ] || die "usage: tools/ctrimage.sh run ENGINE NAME"
	t="$(image "$2")"
	start "$2" "$3" "$t"
	echo "$t"
	;;
check)
	need_engine "${2:-}"
	t="$(image "$2")"
	name="spindle-ctrcheck-$$"
	start "$2" "$name" "$t"
	remove "$2" "$name"
	echo "ctrimage: $2 runs containers here ($t)"
	;;
clean)
	need_engine "${2:-}"
	ids="$(eng "$2" "$engine_timeout" ps -a -q --filter "label=$label" 2>/dev/null || true)"
	# shellcheck disable=SC2086 # one ID a word
	[ -z "$ids" ] || remove "$2" $ids
	;;
dockerd)
	case "${2:-}" in
	start) dockerd_start ;;
	stop) dockerd_stop ;;
	*) die "usage: tools/ctrimage.sh dockerd start|stop" ;;
	esac
	;;
*)
	echo "usage: tools/ctrimage.sh image|run|check|clean ENGINE [NAME], or dockerd start|stop" >&2
	exit 2
	;;
esac
