#!/usr/bin/env bash
# tools/benchgocache.sh: the wall time of a go install with spindle gocache
# as its GOCACHEPROG, against go's own build cache in the same minutes:
# from an empty cache (every output put, and with -t also sent to a local
# context), again unchanged (every output a hit), and on a "new machine"
# (an empty GOCACHE and an empty cache directory) whose cache is the one
# a context holds, filled by the build before. Each binary is checked
# against the native one's sha256. Medians of RUNS runs (default 3).
#
#   tools/benchgocache.sh [PKG@VERSION]   default:
#                                         github.com/itchyny/gojq/cmd/gojq@v0.12.17
#
# Needs bin/spindle (make build) and the module proxy. Quote the ratios:
# absolute times on a shared machine drift 2x.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
pkg=${1:-github.com/itchyny/gojq/cmd/gojq@v0.12.17}
spindle=$PWD/bin/spindle
[ -x "$spindle" ] || {
	echo "benchgocache: bin/spindle missing: run make build" >&2
	exit 1
}
export GOFLAGS= GOWORK=off
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The context's cache directory (and the served cache in it) is this
# bench's own.
export XDG_CACHE_HOME=$tmp/xdg

bench=benchgocache
# shellcheck source=tools/benchlib.sh
. tools/benchlib.sh

# install NAME [GOCACHEPROG]: go install of pkg into $tmp/bin-NAME, with
# the build cache $tmp/cache-NAME and GOCACHEPROG as given.
install() {
	GOCACHE="$tmp/cache-$1" GOCACHEPROG="${2:-}" GOBIN="$tmp/bin-$1" go install "$pkg"
}
# fresh NAME...: empties those caches (and the directories of gocache).
fresh() { for n in "$@"; do rm -rf "$tmp/cache-$n" "$tmp/gc-$n"; done; }
served() { rm -rf "$XDG_CACHE_HOME/spindle/gocache-served"; }

gc="$spindle gocache --dir"
shared="-t local:gocache-bench"
GOBIN="$tmp/dl" go install -n "$pkg" >/dev/null 2>&1 || {
	echo "benchgocache: cannot fetch $pkg" >&2
	exit 1
}
echo "benchgocache: $pkg, median of $runs runs each" >&2
cold_native() { fresh native && install native; }
cold_gocache() { fresh gocache && install gocache "$gc $tmp/gc-gocache"; }
cold_shared() { fresh shared && served && install shared "$gc $tmp/gc-shared $shared"; }
# A new machine: its own caches empty, the context's full.
new_machine() { fresh newmachine && install newmachine "$gc $tmp/gc-newmachine $shared"; }
row native cold_native
row native_again install native
row gocache cold_gocache
row gocache_again install gocache "$gc $tmp/gc-gocache"
row shared cold_shared
row newmachine new_machine
sum() { sha256sum "$tmp/bin-$1"/* | awk '{print $1}'; }
for name in gocache shared newmachine; do
	if [ "$(sum "$name")" != "$(sum native)" ]; then
		echo "benchgocache: the $name build's binary differs from the native one" >&2
		exit 1
	fi
done
n=${rows[native]}
printf '%-56s %8s %8s\n' "go install $pkg" "wall s" "× native"
printf '%-56s %8.2f %8s\n' "go's cache, empty" "$n" "1.00"
printf '%-56s %8.2f %8s\n' "spindle gocache, empty" "${rows[gocache]}" "$(ratio "${rows[gocache]}" "$n")"
printf '%-56s %8.2f %8s\n' "spindle gocache -t local context, both empty" "${rows[shared]}" "$(ratio "${rows[shared]}" "$n")"
printf '%-56s %8.2f %8s\n' "go's cache, again unchanged" "${rows[native_again]}" "$(ratio "${rows[native_again]}" "$n")"
printf '%-56s %8.2f %8s\n' "spindle gocache, again unchanged" "${rows[gocache_again]}" "$(ratio "${rows[gocache_again]}" "$n")"
printf '%-56s %8.2f %8s\n' "new machine: empty caches, the context's full (-t)" "${rows[newmachine]}" "$(ratio "${rows[newmachine]}" "$n")"
echo "benchgocache: every binary has the native one's sha256 $(sum native)" >&2
