#!/usr/bin/env bash
# tools/benchtoolexec.sh: the wall time of a go build with every compile,
# asm and link run as wasm through spindle toolexec, against the native
# build of the same program in the same minutes: from an empty build cache
# (the standard library included), with the tools granted their
# directories on three local contexts, shipped to them (--ship: what a
# context on another machine gets), and on one; then the same build again,
# unchanged (go's build cache: no tool runs). Each sandboxed build's binary
# is checked against the native one's sha256. Medians of RUNS runs
# (default 1: a build from empty takes minutes), the toolexec server warm
# (its tools compiled) before the first.
#
#   tools/benchtoolexec.sh [PKG@VERSION]   default:
#                                          github.com/itchyny/gojq/cmd/gojq@v0.12.17
#
# Needs bin/spindle and bin/gotools (make build gotools) and the module
# proxy. Quote the ratios: absolute times on a shared machine drift 2x.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-1}
pkg=${1:-github.com/itchyny/gojq/cmd/gojq@v0.12.17}
spindle=$PWD/bin/spindle
[ -x "$spindle" ] && [ -f bin/gotools/VERSION ] || {
	echo "benchtoolexec: bin/spindle or bin/gotools missing: run make build gotools" >&2
	exit 1
}
export GOFLAGS= GOWORK=off
tmp=$(mktemp -d)
three="-t local:a -t local:b -t local:c"
stop_servers() { # the servers this bench started, each named by its flags
	for flags in "$three" "--ship $three" "-t local:a"; do
		# shellcheck disable=SC2086 # the flags are words
		"$spindle" toolexec --stop $flags >/dev/null || true
	done
}
trap 'stop_servers; rm -rf "$tmp"' EXIT

bench=benchtoolexec
# shellcheck source=tools/benchlib.sh
. tools/benchlib.sh

# build NAME [TOOLEXEC]: go install of pkg into $tmp/NAME from an empty
# build cache $tmp/cache-NAME (kept, for the unchanged rebuild).
build() {
	local name=$1
	shift
	rm -rf "$tmp/cache-$name" "$tmp/$name"
	GOCACHE="$tmp/cache-$name" GOBIN="$tmp/$name" go install "$@" "$pkg"
}

rebuild() { # NAME [TOOLEXEC]: the same build, its cache full
	local name=$1
	shift
	GOCACHE="$tmp/cache-$name" GOBIN="$tmp/$name" go install "$@" "$pkg"
}

sum() { sha256sum "$tmp/$1"/* | awk '{print $1}'; }

te="$spindle toolexec --idle 60s"
# The module's download is not the build's.
GOBIN="$tmp/dl" go install -n "$pkg" >/dev/null 2>&1 || {
	echo "benchtoolexec: cannot fetch $pkg" >&2
	exit 1
}
echo "benchtoolexec: $pkg, median of $runs runs each" >&2
# Warm-up: each server starts, with its tools.
compile="$(go env GOROOT)/pkg/tool/$(go env GOHOSTOS)_$(go env GOHOSTARCH)/compile"
for flags in "$three" "--ship $three" "-t local:a"; do
	# shellcheck disable=SC2086 # the flags are words
	wall $te $flags "$compile" -V=full >/dev/null
done
row native build native
row granted build granted -toolexec "$te $three"
row shipped build shipped -toolexec "$te --ship $three"
# Again, unchanged, while that server is up (within its --idle).
row again rebuild shipped -toolexec "$te --ship $three"
row one build one -toolexec "$te -t local:a"
for name in granted shipped one; do
	if [ "$(sum "$name")" != "$(sum native)" ]; then
		echo "benchtoolexec: the $name build's binary differs from the native one" >&2
		exit 1
	fi
done
printf '%-52s %8s %8s\n' "go install $pkg" "wall s" "× native"
printf '%-52s %8.2f %8s\n' "native, empty build cache" "${rows[native]}" "1.00"
printf '%-52s %8.2f %8s\n' "toolexec, 3 local contexts, granted" "${rows[granted]}" "$(ratio "${rows[granted]}" "${rows[native]}")"
printf '%-52s %8.2f %8s\n' "toolexec, 3 local contexts, shipped (--ship)" "${rows[shipped]}" "$(ratio "${rows[shipped]}" "${rows[native]}")"
printf '%-52s %8.2f %8s\n' "toolexec, 1 local context, granted" "${rows[one]}" "$(ratio "${rows[one]}" "${rows[native]}")"
printf '%-52s %8.2f %8s\n' "toolexec, shipped, again unchanged" "${rows[again]}" "$(ratio "${rows[again]}" "${rows[native]}")"
echo "benchtoolexec: every sandboxed binary has the native one's sha256 $(sum native)" >&2
