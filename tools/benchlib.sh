# tools/benchlib.sh: what the benchmark scripts share, sourced after they
# set $tmp (a directory of their own) and $bench (their name, for errors).

# wall CMD...: the seconds CMD takes; its output goes to $tmp/out, and a
# failing CMD stops the benchmark with that output.
wall() {
	local t0 t1
	t0=$(date +%s.%N)
	if ! "$@" >"$tmp/out" 2>&1; then
		echo "$bench: failed: $*" >&2
		tail -20 "$tmp/out" >&2
		exit 1
	fi
	t1=$(date +%s.%N)
	awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f\n", b - a}'
}

# ratio A B: A / B, two decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

# median N...: the median of the numbers.
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# row NAME CMD...: rows[NAME] is the median wall time of $runs runs of CMD.
declare -A rows
row() {
	local name=$1 ts=()
	shift
	for _ in $(seq "$runs"); do ts+=("$(wall "$@")"); done
	rows[$name]=$(median "${ts[@]}")
}
