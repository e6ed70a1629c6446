#!/usr/bin/env bash
# tools/testdeps.sh: what `make test` needs beyond Go, in one list that
# `make test` and .ci/run both use.
#
#   tools/testdeps.sh check     exit 0 when everything is there; else print
#                               one line naming the command to run, exit 1
#   tools/testdeps.sh ensure    check; when something is missing and this is
#                               root with apt-get, install it (then check);
#                               else the one line of check, exit 1
#
# Why each is needed:
#   openssh-server, openssh-client  the ssh tests start their own sshd on a
#                                   loopback port (internal/testutil/sshd.go)
#   sudo                            sudo:// contexts, run as the user spindle-test
#   iproute2                        ip netns: test hosts in network namespaces
#   procps                          ps and pkill in test diagnostics
#   clang, lld                      the C guests: examples/wasm/c-* (freestanding)
#                                   and host/testdata/c
#   wasi-libc, libclang-rt-dev-wasm32  host/testdata/c only: C guests that use
#                                   libc (stdio, malloc), as users' C guests do,
#                                   and clang's builtins library that they link
#   make, gcc, libc6-dev            make itself, and cgo for the race detector
#   git, ca-certificates            make check, and the Go module proxy
#   podman, runc, busybox-static,   the container tests (container_test.go) run a real
#   docker.io, uidmap               engine, rootful and rootless (uidmap), on a busybox
#                                   image built with tools/ctrimage.sh (runc: crun
#                                   refuses hybrid cgroups)
#   python3-mitogen                 spindle bench --peers runs the same figures
#                                   through Mitogen (tools/spindle/benchpeers.go)
# The ssh, sudo and namespace tests also need root: sshd changes user on
# login, and the tests add the user spindle-test.
set -euo pipefail

# package:file-that-shows-it-is-installed (a glob), one entry per package.
deps=(
	openssh-server:/usr/sbin/sshd
	openssh-client:/usr/bin/ssh
	sudo:/usr/bin/sudo
	iproute2:/usr/sbin/ip
	procps:/usr/bin/pkill
	clang:/usr/bin/clang
	lld:/usr/bin/wasm-ld
	wasi-libc:/usr/include/wasm32-wasi/stdio.h
	libclang-rt-dev-wasm32:/usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a
	make:/usr/bin/make
	gcc:/usr/bin/gcc
	libc6-dev:/usr/include/stdio.h
	git:/usr/bin/git
	ca-certificates:/etc/ssl/certs/ca-certificates.crt
	python3-mitogen:/usr/lib/python3/dist-packages/mitogen/__init__.py
	podman:/usr/bin/podman
	runc:/usr/bin/runc
	busybox-static:/bin/busybox
	docker.io:/usr/sbin/dockerd
	uidmap:/usr/bin/newuidmap
)

# SPINDLE_TESTDEPS_ROOT is prefixed to every file above: for the script's
# own test (internal/testutil/testdeps_test.go), which points it at an empty
# directory to see what a fresh machine is told.
missing=()
find_missing() {
	missing=()
	local d
	for d in "${deps[@]}"; do
		compgen -G "${SPINDLE_TESTDEPS_ROOT:-}${d#*:}" >/dev/null || missing+=("${d%%:*}")
	done
}

# say prints the one line that tells what to do, and fails.
say() {
	echo "make test: $*" >&2
	exit 1
}

check() {
	find_missing
	if [ "${#missing[@]}" -gt 0 ]; then
		if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
			say "missing ${missing[*]}; run: tools/testdeps.sh ensure"
		elif command -v apt-get >/dev/null; then
			say "missing ${missing[*]}; run: sudo apt-get install -y ${missing[*]}   (then, as root: make test)"
		else
			say "missing ${missing[*]} (Debian package names); install them with this system's package manager, then run make test as root"
		fi
	fi
	if [ "$(id -u)" != 0 ]; then
		say "the ssh, sudo and network-namespace tests need root (they start sshd and add the user spindle-test); run: sudo env PATH=\"\$PATH\" make test   (or make short: the quick tests, no root)"
	fi
}

install_missing() {
	find_missing
	[ "${#missing[@]}" -gt 0 ] || return 0
	if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
		check # says what to run
	fi
	echo "tools/testdeps.sh: installing ${missing[*]} (apt-get)" >&2
	export DEBIAN_FRONTEND=noninteractive
	local try
	for try in 1 2 3; do
		if apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
			return 0
		fi
		[ "$try" = 3 ] && say "apt-get install ${missing[*]} failed three times"
		sleep 10
	done
}

case "${1:-}" in
check) check ;;
ensure)
	install_missing
	check
	;;
*)
	echo "usage: tools/testdeps.sh check|ensure" >&2
	exit 2
	;;
esac
