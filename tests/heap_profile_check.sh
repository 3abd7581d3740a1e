#!/usr/bin/env bash
# tests/heap_profile_check.sh - runs the heap_snapshot example and checks its
# profile with the real reader, go tool pprof:
#   - `-top -sample_index=inuse_space` lists alloc_a, alloc_b and alloc_c with
#     exactly 1MB, 2MB and 4MB flat (pprof prints MB = 1024 KiB);
#   - `-raw` totals: inuse_space 7 MiB and alloc_space 8 MiB to the byte,
#     inuse_objects 112 and alloc_objects 128 (64 KiB blocks, every one recorded);
#   - the text report on stdout agrees.
#
#   tests/heap_profile_check.sh [HEAP_SNAPSHOT_BINARY]
#
# Without the argument the example is built with $CXX (default c++) and
# $CXXFLAGS. Exit status: 0 passed, 1 a check failed, 77 (skip) when go is
# missing and cannot be installed.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/memdiag-heap-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
. "$here/lib/check_common.sh"

# ---- tools -------------------------------------------------------------------
require_go
command -v awk >/dev/null 2>&1 || { echo "SKIP: awk is not installed" >&2; exit 77; }
export GOCACHE="${GOCACHE:-$work/gocache}" HOME="${HOME:-$work}"
pprof() { go tool pprof "$@" 2>"$work/pprof.err"; }

# ---- the example -------------------------------------------------------------
example=${1:-}
if [ -z "$example" ]; then
    example="$work/heap_snapshot"
    ${CXX:-c++} -std=c++17 -O2 -g -fno-omit-frame-pointer ${CXXFLAGS:-} -I"$root/include" \
        "$root/examples/heap_snapshot.cpp" -o "$example" -ldl -lpthread ||
        { echo "FAIL: cannot build the example" >&2; exit 1; }
fi
[ -x "$example" ] || { echo "FAIL: example '$example' is not executable" >&2; exit 1; }

profile="$work/heap.pb.gz"
if run_target "$example" "$profile" >"$work/report.txt" 2>"$work/example.err"; then
    pass "heap_snapshot wrote $(wc -c <"$profile") bytes"
else
    cat "$work/example.err" >&2
    echo "FAIL: heap_snapshot exited with an error" >&2
    exit 1
fi

# ---- -top: the three functions with their bytes ------------------------------
if pprof -top -sample_index=inuse_space "$example" "$profile" >"$work/top.txt"; then
    pass "go tool pprof -top parses the profile"
else
    cat "$work/pprof.err" >&2
    fail "go tool pprof -top rejected the profile"
fi
# Rows: flat flat% sum% cum cum% name...
for want in "alloc_a 1MB" "alloc_b 2MB" "alloc_c 4MB"; do
    fn=${want% *} bytes=${want#* }
    got=$(awk -v fn="$fn" '$6 ~ "^" fn "\\(" { print $1 " " $4 }' "$work/top.txt")
    if [ "$got" = "$bytes $bytes" ]; then
        pass "-top: $fn flat $bytes cum $bytes"
    else
        fail "-top: $fn: expected flat and cum '$bytes', got '${got:-no row}'"
    fi
done
grep -q "accounting for 7MB, 100% of 7MB total" "$work/top.txt" && pass "-top: 7MB in use in total" ||
    fail "-top: total is not 7MB: $(grep accounting "$work/top.txt")"

# ---- -raw: exact totals ------------------------------------------------------
# Sums each sample type over the samples: "alloc_objects alloc_space inuse_objects inuse_space".
totals=$(pprof -raw "$profile" | awk '
    /^Samples:/ { in_samples = 1; next }
    /^Locations/ { in_samples = 0 }
    in_samples && /^ *-?[0-9]+ +-?[0-9]+ +-?[0-9]+ +-?[0-9]+:/ {
        sub(":.*", ""); a += $1; b += $2; c += $3; d += $4; n++ }
    END { if (n == 0) exit 1; printf "%d %d %d %d\n", a, b, c, d }')
expected="128 8388608 112 7340032"
[ "$totals" = "$expected" ] && pass "-raw totals: $totals (alloc_objects alloc_space inuse_objects inuse_space)" ||
    fail "-raw totals: expected '$expected', got '${totals:-unparsable}'"
pprof -raw "$profile" | grep -q "^PeriodType: space bytes" && pass "-raw: period type space/bytes" ||
    fail "-raw: period type is not space/bytes"
pprof -raw "$profile" | grep -q "^Period: 1$" && pass "-raw: period 1 (every allocation)" ||
    fail "-raw: period is not 1"

# ---- the text report ---------------------------------------------------------
grep -q "in use:    7.0 MiB (7340032 B) in 112 objects" "$work/report.txt" && pass "report: 7 MiB in 112 objects" ||
    fail "report: wrong in-use total: $(grep 'in use:' "$work/report.txt")"
grep -q "dropped_samples: 0" "$work/report.txt" && pass "report: no dropped samples" ||
    fail "report: dropped_samples missing or not 0"
for fn in alloc_a alloc_b alloc_c; do
    grep -q "^ *$fn()" "$work/report.txt" && pass "report names $fn" || fail "report does not name $fn"
done

if [ "$failures" -ne 0 ]; then
    echo "--- go tool pprof -top ---" >&2
    cat "$work/top.txt" >&2
    echo "$failures check(s) failed" >&2
    exit 1
fi
echo "all heap profile checks passed"
