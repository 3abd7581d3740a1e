#!/usr/bin/env bash
# tests/field/yaml_cpp.sh - memdiag on a real GoogleTest suite: yaml-cpp 0.9.0
# and its own ~1,050 tests, built out of tree from
# ../shared/third_party/yaml-cpp-0.9.0.tar.gz (relative to the project root;
# MEMDIAG_THIRD_PARTY overrides the folder). Run it as `scripts/field.sh --yaml-cpp`.
#
# The yaml-cpp build (library, GoogleTest, the test objects; about 8 minutes on
# two idle cores) goes into a cache folder, $MEMDIAG_FIELD_CACHE/yaml-cpp
# (default build/field/yaml-cpp), and is reused by later runs; memdiag's parts
# are compiled and linked into the test binary on every run.
#
# Checks:
#   1. The suite passes plain and with memdiag's hook and GoogleTest listener.
#   2. With MEMDIAG_TEST_BUDGET=allocations=2000,peak=256K the whole suite
#      finishes within 1.5x of the plain run's time (best of N runs each).
#   3. With MEMDIAG_SNAPSHOT_DIR and a budget tight enough to fail some tests
#      on purpose, every failing test leaves NAME.pb.gz, and go tool pprof
#      reads each one.
#   4. Stacks are never wrong: in an exact heap profile of the whole suite (the
#      hook of tinyxml2_hook.cpp, every allocation sampled), no sample has a
#      frame outside the executable mappings the profile lists. The same
#      figure for other memdiag headers (MEMDIAG_FIELD_COMPARE_INCLUDE=DIR,
#      say an older checkout's include/) is printed for comparison.
#
# Exit: 0 all passed, 1 a check failed, 77 the archive, cmake or go is absent.
# Environment: CXX (default g++), MEMDIAG_FIELD_RUNS (timed runs each, 5).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
third_party=${MEMDIAG_THIRD_PARTY:-$root/../shared/third_party}
archive=$third_party/yaml-cpp-0.9.0.tar.gz
if [ ! -f "$archive" ]; then
    echo "SKIP: $archive not found (yaml-cpp 0.9.0 source archive; set MEMDIAG_THIRD_PARTY)" >&2
    exit 77
fi
command -v cmake >/dev/null 2>&1 || { echo "SKIP: cmake is not installed (needed to build yaml-cpp)" >&2; exit 77; }
. "$root/tests/lib/check_common.sh"
require_go
cxx=${CXX:-g++}
runs=${MEMDIAG_FIELD_RUNS:-5}
cache=${MEMDIAG_FIELD_CACHE:-$root/build/field}/yaml-cpp
work=$root/build/field/yaml-cpp-run
mkdir -p "$cache" "$work"
export GOCACHE="${GOCACHE:-$work/gocache}" HOME="${HOME:-$work}"
src=$cache/src/yaml-cpp-0.9.0
flags="-O2 -g -fno-omit-frame-pointer"

# --- yaml-cpp and its test objects, once --------------------------------------
stamp="yaml-cpp 0.9.0 | $cxx | $flags"
if [ ! -x "$cache/b/test/yaml-cpp-tests" ] || [ "$(cat "$cache/stamp" 2>/dev/null)" != "$stamp" ]; then
    echo "== building yaml-cpp 0.9.0 and its tests into $cache (once; about 8 minutes on 2 idle cores)"
    rm -rf "$cache/src" "$cache/b" "$cache/stamp"
    mkdir -p "$cache/src"
    tar xzf "$archive" -C "$cache/src" || { echo "FAIL: cannot extract $archive" >&2; exit 1; }
    if ! cmake -S "$src" -B "$cache/b" -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_COMPILER="$cxx" \
            -DYAML_CPP_BUILD_TESTS=ON -DYAML_CPP_BUILD_TOOLS=OFF \
            -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_C_FLAGS="$flags" >"$cache/configure.log" 2>&1 ||
       ! cmake --build "$cache/b" --target yaml-cpp-tests -j"${MEMDIAG_JOBS:-2}" >"$cache/build.log" 2>&1; then
        echo "FAIL: building yaml-cpp failed; see $cache/configure.log and $cache/build.log" >&2
        tail -20 "$cache/build.log" >&2
        exit 1
    fi
    echo "$stamp" >"$cache/stamp"
fi

# --- memdiag's parts, linked into yaml-cpp's test binary ----------------------
echo "== linking yaml-cpp-tests with memdiag's hook (and listener)"
gtest_inc=(-isystem "$src/test/googletest-1.13.0/googletest/include")
build() {
    "$@" 2>"$work/build.err" || { fail "build: $*"; cat "$work/build.err" >&2; exit 1; }
}
compile_hook() {  # include-dir output
    build "$cxx" -std=c++17 $flags -I"$1" -c "$here/tinyxml2_hook.cpp" -o "$2"
}
compile_hook "$root/include" "$work/hook.o"
build "$cxx" -std=c++17 $flags -Wall -Wextra -Werror -I"$root/include" "${gtest_inc[@]}" \
    -c "$here/yaml_cpp_listener.cpp" -o "$work/listener.o"
relink() {  # output objects...
    local out=$1; shift
    local line
    line=$(cat "$cache/b/test/CMakeFiles/yaml-cpp-tests.dir/link.txt")
    line=${line/ -o yaml-cpp-tests / $* -o $out }
    (cd "$cache/b/test" && eval "$line -pthread -ldl") 2>"$work/build.err" ||
        { fail "relink $out"; cat "$work/build.err" >&2; exit 1; }
}
plain=$cache/b/test/yaml-cpp-tests
relink "$work/tests_listener" "$work/hook.o" "$work/listener.o"
relink "$work/tests_hooked" "$work/hook.o"

cd "$src/test" || exit 1
# Runs the binary `runs` times; prints the best wall time in seconds.
best_time() {  # label command...
    local label=$1; shift
    local best="" t s e
    for ((i = 0; i < runs; i++)); do
        s=$(date +%s.%N)
        "$@" >"$work/$label.out" 2>"$work/$label.err"
        echo $? >"$work/$label.rc"
        e=$(date +%s.%N)
        t=$(awk -v e="$e" -v s="$s" 'BEGIN { printf "%.3f", e - s }')
        if [ -z "$best" ] || awk -v t="$t" -v b="$best" 'BEGIN { exit !(t < b) }'; then best=$t; fi
    done
    printf '%.3f\n' "$best"
}
tests_in() { sed -n 's/^\[==========\] \([0-9]*\) tests from .* ran\..*/\1/p' "$1" | tail -1; }
failed_in() { sed -n 's/^\[  FAILED  \] \([^ ,]*\.[^ ,]*\)\(, where.*\)\?$/\1/p' "$1" | sed 's/ (.*//' | sort -u; }

# 1 and 2: plain, hooked, hooked with the listener and the default budget.
budget_spec="allocations=2000,peak=256K"
t_plain=$(best_time plain "$plain")
t_hook=$(best_time hooked "$work/tests_hooked")
t_budget=$(MEMDIAG_TEST_BUDGET=$budget_spec best_time budget "$work/tests_listener")
for run in plain hooked; do
    if [ "$(cat "$work/$run.rc")" = 0 ]; then
        pass "$run suite: $(tests_in "$work/$run.out") tests passed"
    else
        fail "$run suite failed:"; grep -F '[  FAILED  ]' "$work/$run.out" | head >&2
    fi
done
n_budget_failed=$(failed_in "$work/budget.out" | wc -l)
ratio=$(awk -v a="$t_budget" -v b="$t_plain" 'BEGIN { printf "%.2f", a / b }')
echo "   times (best of $runs): plain ${t_plain}s, hook ${t_hook}s, listener + MEMDIAG_TEST_BUDGET=$budget_spec ${t_budget}s" \
     "(x$ratio; $n_budget_failed tests over that budget)"
if awk -v a="$t_budget" -v b="$t_plain" 'BEGIN { exit !(a <= 1.5 * b) }'; then
    pass "suite with listener and budget: ${t_budget}s within 1.5x of plain ${t_plain}s (x$ratio)"
else
    fail "suite with listener and budget: ${t_budget}s, over 1.5x of plain ${t_plain}s (x$ratio)"
fi
if ! grep -q 'memdiag' "$work/budget.out" "$work/budget.err" && [ "$n_budget_failed" = 0 ]; then
    echo "   note: no test went over $budget_spec and memdiag printed nothing" >&2
fi

# 3. Snapshots of failing tests.
snapdir=$work/snapshots
rm -rf "$snapdir"
tight="allocations=300"
MEMDIAG_SNAPSHOT_DIR=$snapdir MEMDIAG_TEST_BUDGET=$tight "$work/tests_listener" >"$work/snap.out" 2>"$work/snap.err"
failed_in "$work/snap.out" >"$work/snap.failed"
n_failed=$(wc -l <"$work/snap.failed")
if [ "$n_failed" -eq 0 ]; then
    fail "snapshots: no test failed under MEMDIAG_TEST_BUDGET=$tight (the check needs some)"
else
    missing=0 unreadable=0 files=()
    while read -r name; do
        file=$snapdir/$(printf '%s' "$name" | sed -e 's/[^A-Za-z0-9._-]\{1,\}/_/g' -e 's/^[._]*//' -e 's/[._]*$//' | cut -c1-120).pb.gz
        if [ -s "$file" ]; then
            files+=("$file")
        else
            missing=$((missing + 1)); [ $missing -le 5 ] && echo "   no snapshot for $name ($file)" >&2
        fi
    done <"$work/snap.failed"
    # One pprof run reads (and merges) them all; if it fails, find which.
    if [ ${#files[@]} -gt 0 ] && ! go tool pprof -top -nodecount=1 "${files[@]}" >/dev/null 2>"$work/pprof.err"; then
        for file in "${files[@]}"; do
            if ! go tool pprof -top -nodecount=1 "$file" >/dev/null 2>"$work/pprof.err"; then
                unreadable=$((unreadable + 1))
                [ $unreadable -le 5 ] && echo "   pprof cannot read $file: $(head -2 "$work/pprof.err")" >&2
            fi
        done
    fi
    if [ $missing -eq 0 ] && [ $unreadable -eq 0 ]; then
        pass "snapshots: each of the $n_failed tests failing MEMDIAG_TEST_BUDGET=$tight left a snapshot go tool pprof reads"
    else
        fail "snapshots: $n_failed failing tests, $missing without a snapshot, $unreadable unreadable"
    fi
fi

# 4. Exact profile: no frame outside the executable mappings.
# Prints "samples objects bad_samples bad_objects bad_locations locations" for a profile.
impossible_frames() {  # profile
    go tool pprof -raw "$1" 2>/dev/null | awk '
        function hex(s,   i, v) {
            v = 0; s = tolower(s); sub(/^0x/, "", s)
            for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
            return v
        }
        /^Samples:/ { part = "s"; next }
        /^Locations/ { part = "l"; next }
        /^Mappings/ { part = "m"; next }
        part == "s" && /^ *[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+:/ {
            objs = $1; n = split($0, f, ":"); split(f[2], ids, " ");
            cur = NR; sample_objs[cur] = objs; sample_ids[cur] = f[2]; next }
        part == "l" && /^ *[0-9]+: 0x/ {
            id = $1; sub(":", "", id); addr = hex($2); loc_addr[id] = addr; next }
        part == "m" && /^ *[0-9]+: 0x/ {
            split($2, r, "/"); nm++; ms[nm] = hex(r[1]); ml[nm] = hex(r[2]); next }
        END {
            for (id in loc_addr) {
                ok = 0; for (k = 1; k <= nm; k++) if (loc_addr[id] >= ms[k] && loc_addr[id] < ml[k]) ok = 1
                if (!ok) { bad[id] = 1; nbad++ }
                nloc++
            }
            for (s in sample_objs) {
                ns++; objs += sample_objs[s]
                n = split(sample_ids[s], ids, " "); b = 0
                for (i = 1; i <= n; i++) if (ids[i] in bad) b = 1
                if (b) { bs++; bo += sample_objs[s] }
            }
            printf "%d %d %d %d %d %d\n", ns, objs, bs, bo, nbad, nloc
        }'
}
profile_run() {  # hooked-binary profile
    rm -f "$2"
    MEMDIAG_FIELD_PROFILE=$2 "$1" >/dev/null 2>"$work/profile.err"
    [ -s "$2" ] || { fail "exact profile not written by $1: $(tail -3 "$work/profile.err")"; return 1; }
}
report_frames() {  # label profile -> sets bad_objects
    read -r ns objs bs bo nbad nloc < <(impossible_frames "$2")
    bad_objects=$bo
    if [ -z "${ns:-}" ] || [ "${objs:-0}" = 0 ]; then
        fail "$1: cannot read the profile's samples with go tool pprof -raw"; bad_objects=x; return
    fi
    echo "   $1: $bo of $objs objects ($(awk -v a="$bo" -v b="$objs" 'BEGIN { printf "%.2f", 100 * a / b }')%) in $bs of $ns stacks are under" \
         "$nbad of $nloc locations outside every executable mapping"
}
if profile_run "$work/tests_hooked" "$work/exact.pb.gz"; then
    report_frames "exact profile, these headers" "$work/exact.pb.gz"
    if [ "$bad_objects" = 0 ]; then
        pass "exact profile of the suite: no stack has a frame outside the executable mappings"
    else
        fail "exact profile of the suite: $bad_objects objects under impossible frames"
    fi
fi
if [ -n "${MEMDIAG_FIELD_COMPARE_INCLUDE:-}" ]; then
    compile_hook "$MEMDIAG_FIELD_COMPARE_INCLUDE" "$work/hook_compare.o"
    relink "$work/tests_compare" "$work/hook_compare.o"
    profile_run "$work/tests_compare" "$work/compare.pb.gz" &&
        report_frames "exact profile, $MEMDIAG_FIELD_COMPARE_INCLUDE" "$work/compare.pb.gz"
fi

echo "$passes passed, $failures failed"
[ $failures -eq 0 ]
