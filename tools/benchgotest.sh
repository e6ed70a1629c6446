#!/usr/bin/env bash
# tools/benchgotest.sh: the wall time of `GOOS=wasip1 GOARCH=wasm go test`
# over a set of packages with spindle exec as the test-binary runner, on one
# local context against three, beside wazero's own CLI (the peer: GOROOT's
# go_wasip1_wasm_exec with GOWASIRUNTIME=wazero) and the native `go test` of
# the same packages, all in the same minutes. Medians of RUNS runs (default
# 3), after one warm-up run that fills the build cache, so that every row
# measures linking and running the test binaries, not compiling packages.
#
#   tools/benchgotest.sh [PACKAGES...]    default: 12 standard-library
#                                         packages whose tests pass on wasip1
#
# Needs bin/spindle (make build). The wazero row needs a wazero CLI on PATH
# or in $(go env GOPATH)/bin (go install
# github.com/tetratelabs/wazero/cmd/wazero@VERSION, VERSION from go.mod);
# without one the row says so. Quote the ratios: absolute times on a shared
# machine drift 2x.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
pkgs=("$@")
if [ ${#pkgs[@]} -eq 0 ]; then
	pkgs=(strconv unicode/utf8 unicode/utf16 sort container/list container/ring
		path text/tabwriter encoding/hex encoding/base64 encoding/csv hash/crc32)
fi
spindle=$PWD/bin/spindle
[ -x "$spindle" ] || {
	echo "benchgotest: $spindle missing: run make build" >&2
	exit 1
}
export GOFLAGS= GOWORK=off
goroot=$(go env GOROOT)
wazero=$(command -v wazero || true)
[ -n "$wazero" ] || { [ -x "$(go env GOPATH)/bin/wazero" ] && wazero=$(go env GOPATH)/bin/wazero; } || true
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

bench=benchgotest
# shellcheck source=tools/benchlib.sh
. tools/benchlib.sh

wasmtest() { GOOS=wasip1 GOARCH=wasm go test "$@" "${pkgs[@]}"; }
wazerotest() { GOWASIRUNTIME=wazero wasmtest "$@"; }

echo "benchgotest: ${#pkgs[@]} packages, median of $runs runs each: ${pkgs[*]}" >&2
wall wasmtest -count=1 -exec "$spindle exec -t local:a" >/dev/null # warm-up: the build cache
row one wasmtest -count=1 -exec "$spindle exec -t local:a"
row three wasmtest -count=1 -exec "$spindle exec -t local:a -t local:b -t local:c"
if [ -n "$wazero" ]; then
	export PATH="$(dirname "$wazero"):$PATH"
	row wazero wazerotest -count=1 -exec "$goroot/lib/wasm/go_wasip1_wasm_exec"
fi
wall go test -count=1 "${pkgs[@]}" >/dev/null # warm-up: the native build
row native go test -count=1 "${pkgs[@]}"
printf '%-44s %8s %8s\n' "go test, ${#pkgs[@]} packages" "wall s" "ratio"
printf '%-44s %8.2f %8s\n' "spindle exec, 1 local context" "${rows[one]}" "1.00"
printf '%-44s %8.2f %8s\n' "spindle exec, 3 local contexts" "${rows[three]}" "$(ratio "${rows[three]}" "${rows[one]}")"
if [ -n "$wazero" ]; then
	printf '%-44s %8.2f %8s\n' "wazero CLI (go_wasip1_wasm_exec)" "${rows[wazero]}" "$(ratio "${rows[wazero]}" "${rows[one]}")"
else
	printf '%-44s %8s\n' "wazero CLI (go_wasip1_wasm_exec)" "no wazero on PATH: go install github.com/tetratelabs/wazero/cmd/wazero@$(go list -m -f '{{.Version}}' github.com/tetratelabs/wazero)"
fi
printf '%-44s %8.2f %8s\n' "native go test (linux)" "${rows[native]}" "$(ratio "${rows[native]}" "${rows[one]}")"
echo "ratios: each row's wall time over the 1-context row's (median of $runs; the machine has $(nproc) cores)"
