#!/usr/bin/env bash
# tests/integration_check.sh - checks the test-framework integrations from the
# outside: failing cases must fail (non-zero exit) with the figures, the top
# sites and the environment facts in their output; the snapshot of a failing
# test must exist and open in `go tool pprof -raw`; baselines must round-trip,
# catch a regression beyond the tolerance and reject a bad file; the
# benchmark integration must report 3 allocations per iteration for a body
# that makes exactly 3.
#
#   tests/integration_check.sh [--catch2 BIN] [--gtest BIN] [--doctest BIN] [--benchmark BIN]
#
# Each binary is optional (its checks are skipped). Exit: 0 all passed,
# 1 a check failed, 77 nothing could be checked or go cannot be installed.
set -uo pipefail

catch2="" gtest="" doctest="" bench=""
while [ $# -gt 0 ]; do
    case "$1" in
        --catch2) catch2=$2; shift 2 ;;
        --gtest) gtest=$2; shift 2 ;;
        --doctest) doctest=$2; shift 2 ;;
        --benchmark) bench=$2; shift 2 ;;
        *) echo "usage: $0 [--catch2 BIN] [--gtest BIN] [--doctest BIN] [--benchmark BIN]" >&2; exit 2 ;;
    esac
done
if [ -z "$catch2$gtest$doctest$bench" ]; then
    echo "SKIP: no integration binary given" >&2
    exit 77
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/memdiag-integration.XXXXXX")
trap 'rm -rf "$work"' EXIT
. "$here/lib/check_common.sh"

# ---- go tool pprof ---------------------------------------------------------------
require_go
export GOCACHE="${GOCACHE:-$work/gocache}" HOME="${HOME:-$work}"

# The test-side settings must come from this script only.
unset MEMDIAG_SNAPSHOT_DIR MEMDIAG_TOP_SITES MEMDIAG_SAMPLE_INTERVAL MEMDIAG_TEST_BUDGET \
      MEMDIAG_BASELINE MEMDIAG_BASELINE_TOLERANCE MEMDIAG_IT_WORK

# run NAME EXPECT(fail|pass) CMD... : runs, saves output to $work/NAME.out, checks the exit status.
run() {
    local name=$1 expect=$2
    shift 2
    "$@" >"$work/$name.out" 2>&1
    local status=$?
    if [ "$expect" = fail ] && [ $status -eq 0 ]; then
        fail "$name: exited 0, expected a failure"; return 1
    elif [ "$expect" = pass ] && [ $status -ne 0 ]; then
        fail "$name: exited $status, expected success"; sed 's/^/    /' "$work/$name.out" | tail -40 >&2; return 1
    fi
    return 0
}
# has NAME TEXT... : each TEXT occurs in the output of NAME.
has() {
    local name=$1 missing=0
    shift
    for text in "$@"; do
        if ! grep -qF -- "$text" "$work/$name.out"; then
            fail "$name: output lacks '$text'"; missing=1
        fi
    done
    [ $missing -eq 0 ] && pass "$name: $*"
}
# snapshot NAME DIR BASE [FUNCTION] : DIR/BASE.pb.gz opens in go tool pprof -raw
# (naming FUNCTION when given), DIR/BASE.txt and the flame graph DIR/BASE.html exist.
snapshot() {
    local name=$1 dir=$2 base=$3 fn=${4:-}
    local pb="$dir/$base.pb.gz" txt="$dir/$base.txt"
    [ -s "$pb" ] || { fail "$name: no snapshot $pb"; ls -la "$dir" >&2 2>/dev/null; return; }
    [ -s "$txt" ] || fail "$name: no text report $txt"
    [ -s "$dir/$base.html" ] && grep -q "memdiag-data" "$dir/$base.html" || fail "$name: no flame graph $dir/$base.html"
    grep -qF "$pb" "$work/$name.out" || fail "$name: output does not say where the snapshot went"
    if ! go tool pprof -raw "$pb" >"$work/$name.raw" 2>"$work/$name.raw.err"; then
        fail "$name: go tool pprof -raw cannot open $pb: $(head -3 "$work/$name.raw.err")"; return
    fi
    grep -q "inuse_space" "$work/$name.raw" || { fail "$name: pprof -raw shows no inuse_space sample type"; return; }
    if [ -n "$fn" ] && ! grep -qF "$fn" "$work/$name.raw"; then
        fail "$name: snapshot does not name $fn"; return
    fi
    pass "$name: snapshot $base.pb.gz opens in go tool pprof -raw${fn:+ and names $fn}"
}
# baseline_round_trip PREFIX CMD... : record, check unchanged, within tolerance,
# regression beyond it, bad file, missing file. The workload size is MEMDIAG_IT_WORK.
baseline_round_trip() {
    local p=$1 test_name=$2
    shift 2
    local file="$work/$p.baseline"
    if run "$p-record" pass env MEMDIAG_IT_WORK=100 MEMDIAG_BASELINE="record:$file" "$@"; then
        if grep -qF " $test_name" "$file" && grep -qF " $test_name/inner" "$file"; then
            pass "$p-record: $(grep -c '' "$file") lines, per-test and per-scope entries"
        else
            fail "$p-record: baseline lacks '$test_name' or '$test_name/inner'"; cat "$file" >&2
        fi
    fi
    run "$p-same" pass env MEMDIAG_IT_WORK=100 MEMDIAG_BASELINE="check:$file" "$@" && pass "$p-same: unchanged run passes"
    run "$p-within" pass env MEMDIAG_IT_WORK=105 MEMDIAG_BASELINE="check:$file" MEMDIAG_BASELINE_TOLERANCE=10% "$@" &&
        pass "$p-within: +5% passes with a 10% tolerance"
    run "$p-regress" fail env MEMDIAG_IT_WORK=150 MEMDIAG_BASELINE="check:$file" MEMDIAG_BASELINE_TOLERANCE=10% "$@" &&
        has "$p-regress" "memory regression in '$test_name/inner'" "tolerance 10%" "allocations: "
    printf 'memdiag-baseline 1\n12 x broken line\n' >"$work/$p.bad"
    run "$p-bad" fail env MEMDIAG_BASELINE="check:$work/$p.bad" "$@" &&
        has "$p-bad" "cannot check against the baseline" "$p.bad:2: expected"
    run "$p-missing" fail env MEMDIAG_BASELINE="check:$work/$p.none" "$@" && has "$p-missing" "cannot open"
}

facts=("-bit pointers" "effective memory limit")

# ---- Catch2 ------------------------------------------------------------------------
if [ -n "$catch2" ]; then
    s="$work/c2snap"
    run c2-allocs fail env MEMDIAG_SNAPSHOT_DIR="$s" "$catch2" "[allocs]" &&
        has c2-allocs "made 3 allocation(s), at most 2 allowed (1 over)" "measured: allocations=3" \
            "top allocation sites" "${facts[@]}" && snapshot c2-allocs "$s" allocation_count_over_the_limit
    run c2-bytes fail "$catch2" "[bytes]" && has c2-bytes "allocated 1000 bytes, at most 100 allowed" "${facts[@]}"
    run c2-peak fail "$catch2" "[peak]" && has c2-peak "peaked at 1000 live bytes, at most 100 allowed"
    run c2-noalloc fail "$catch2" "[no_alloc]" && has c2-noalloc "allocated 1 time(s)" "none allowed"
    run c2-leak fail env MEMDIAG_SNAPSHOT_DIR="$s" "$catch2" "[leak]" &&
        has c2-leak "in 1 allocation(s)" "memdiag_it_leaky_function" &&
        snapshot c2-leak "$s" leak_memory_left_allocated memdiag_it_leaky_function
    if grep -qF "not reached" "$work/c2-leak.out"; then fail "c2-leak: REQUIRE did not stop the test"; fi
    run c2-section fail "$catch2" "[section]" && has c2-section "budget 'budget section' exceeded: max_allocations" \
        "limit:     2 allocations" "measured: allocations=5"
    # The report names the test case's own place (it said "opened at ?:0").
    c2_default_line=$(grep -n '"default budget breached"' "$here/integration/catch2_failing.cpp" | head -1 | cut -d: -f1)
    run c2-default fail env MEMDIAG_TEST_BUDGET=allocations=20 "$catch2" "[default_budget]" &&
        has c2-default "budget 'test budget' exceeded: max_allocations" "test:      default budget breached" \
            "catch2_failing.cpp:$c2_default_line"
    run c2-default-off pass "$catch2" "[default_budget]" && pass "c2-default-off: no default budget, no failure"
    run c2-setup pass env MEMDIAG_TEST_BUDGET=allocations=100 "$catch2" "[setup]" &&
        pass "c2-setup: 500 setup allocations left out of a 100-allocation default budget"
    run c2-override pass env MEMDIAG_TEST_BUDGET=allocations=20 "$catch2" "[override]" &&
        pass "c2-override: test_budget() lifts the default budget for one test"
    run c2-badspec fail env MEMDIAG_TEST_BUDGET=frobs=1 "$catch2" "[override]" &&
        has c2-badspec "configuration error: MEMDIAG_TEST_BUDGET" "unknown limit"
    baseline_round_trip c2-baseline "baseline workload" "$catch2" "[baseline]"
fi

# ---- GoogleTest ----------------------------------------------------------------------
if [ -n "$gtest" ]; then
    s="$work/gtsnap"
    run gt-allocs fail env MEMDIAG_SNAPSHOT_DIR="$s" "$gtest" --gtest_filter=Failing.AllocsOverLimit &&
        has gt-allocs "made 3 allocation(s), at most 2 allowed (1 over)" "extra context streams in" \
            "top allocation sites" "${facts[@]}" && snapshot gt-allocs "$s" Failing.AllocsOverLimit
    run gt-bytes fail "$gtest" --gtest_filter=Failing.BytesOverLimit && has gt-bytes "allocated 1000 bytes, at most 100 allowed"
    run gt-peak fail "$gtest" --gtest_filter=Failing.PeakOverLimit && has gt-peak "peaked at 1000 live bytes"
    run gt-noalloc fail "$gtest" --gtest_filter=Failing.NoAlloc && has gt-noalloc "none allowed"
    run gt-leak fail "$gtest" --gtest_filter=Failing.Leak --memdiag-snapshot-dir="$s" &&
        has gt-leak "leaked 40" && snapshot gt-leak "$s" Failing.Leak memdiag_it_leaky_function
    if grep -qF "not reached" "$work/gt-leak.out"; then fail "gt-leak: ASSERT did not return"; fi
    run gt-section fail "$gtest" --gtest_filter=Failing.BudgetSection && has gt-section "exceeded: max_allocations"
    run gt-default fail env MEMDIAG_TEST_BUDGET=allocations=20 "$gtest" --gtest_filter=Failing.DefaultBudget &&
        has gt-default "budget 'test budget' exceeded" "[  FAILED  ] Failing.DefaultBudget" "gtest_failing.cpp:"
    run gt-setup pass "$gtest" --gtest_filter='Passing.*' --memdiag-test-budget=allocations=100 &&
        pass "gt-setup: setup excluded, every assertion passes"
    baseline_round_trip gt-baseline "Baseline.Workload" "$gtest" --gtest_filter='Baseline.*'
fi

# ---- doctest ---------------------------------------------------------------------------
if [ -n "$doctest" ]; then
    s="$work/dtsnap"
    run dt-allocs fail env MEMDIAG_SNAPSHOT_DIR="$s" "$doctest" --test-case="allocs over the limit" &&
        has dt-allocs "made 3 allocation(s), at most 2 allowed" "${facts[@]}" && snapshot dt-allocs "$s" allocs_over_the_limit
    run dt-leak fail "$doctest" --test-case="leak" && has dt-leak "leaked 40"
    run dt-section fail "$doctest" --test-case="budget section" && has dt-section "exceeded: max_allocations"
    run dt-pass pass "$doctest" --test-case="every assertion passes" && pass "dt-pass: every assertion passes"
fi

# ---- Google Benchmark ------------------------------------------------------------------
if [ -n "$bench" ]; then
    if run bm-console pass "$bench" --benchmark_min_time=0.01 --benchmark_filter=BM_three; then
        # Console: the exact counter says 3, the memory run 3 plus the runner's 1/16.
        if grep -E '^BM_three_allocations_exact .*allocs/iter=3 ' "$work/bm-console.out" >/dev/null; then
            pass "bm-console: BM_three_allocations_exact shows allocs/iter=3"
        else
            fail "bm-console: no 'allocs/iter=3' for BM_three_allocations_exact"; cat "$work/bm-console.out" >&2
        fi
        if grep -E '^BM_three_allocations .*allocs/iter=3(\.0625)? ' "$work/bm-console.out" >/dev/null; then
            pass "bm-console: BM_three_allocations shows allocs/iter=$(grep -oE '^BM_three_allocations .*allocs/iter=[0-9.]+' "$work/bm-console.out" | sed 's/.*=//') (memory manager)"
        else
            fail "bm-console: BM_three_allocations lacks allocs/iter=3"; cat "$work/bm-console.out" >&2
        fi
    fi
    if run bm-json pass "$bench" --benchmark_min_time=0.01 --benchmark_filter=BM_three_allocations$ --benchmark_format=json; then
        # The memory manager's own figure, as Google Benchmark writes it.
        apr=$(grep -oE '"allocs_per_iter": [0-9.e+-]+' "$work/bm-json.out" | head -1 | sed 's/.*: //')
        if [ -n "$apr" ] && awk -v v="$apr" 'BEGIN { exit !(v >= 3 && v < 3.2) }'; then
            pass "bm-json: allocs_per_iter=$apr (3 + the runner's own allocation over 16 iterations)"
        else
            fail "bm-json: allocs_per_iter='$apr', expected 3 <= x < 3.2"
        fi
        has bm-json '"allocs/iter": ' '"max_bytes_used": '
    fi
fi

echo "$passes passed, $failures failed"
[ $failures -eq 0 ]
