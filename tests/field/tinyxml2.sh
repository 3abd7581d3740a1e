#!/usr/bin/env bash
# tests/field/tinyxml2.sh - memdiag on a real project: TinyXML-2 11.0.0 and its
# own test program xmltest, built out of tree from
# ../shared/third_party/tinyxml2-11.0.0.tar.gz (relative to the project root;
# MEMDIAG_THIRD_PARTY overrides the folder) into build/field/tinyxml2.
#
# Checks:
#   1. xmltest passes with memdiag's hook (operator new + C allocation functions).
#   2. memdiag's allocation count equals valgrind's "total heap usage" allocs of
#      the same program without the hook: exact, memdiag's own allocations zero.
#   3. The exact heap profile opens in go tool pprof and its top 3 sites by
#      allocated bytes are tinyxml2 functions.
#   4. A 5-allocation budget around XMLDocument::LoadFile breaches (report
#      policy) with a report whose stack names tinyxml2::XMLDocument::LoadFile,
#      and the document is complete and usable afterwards.
#
# Exit: 0 all passed, 1 a check failed, 77 the archive, valgrind or go is absent.
# Environment: CXX (default g++).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
third_party=${MEMDIAG_THIRD_PARTY:-$root/../shared/third_party}
archive=$third_party/tinyxml2-11.0.0.tar.gz
if [ ! -f "$archive" ]; then
    echo "SKIP: $archive not found (TinyXML-2 11.0.0 source archive; set MEMDIAG_THIRD_PARTY)" >&2
    exit 77
fi
. "$root/tests/lib/check_common.sh"
if ! command -v valgrind >/dev/null 2>&1; then
    bash "$root/scripts/setup-deps.sh" valgrind >/dev/null 2>&1 || true
fi
if ! command -v valgrind >/dev/null 2>&1; then
    echo "SKIP: valgrind is not installed and could not be installed (apt-get install valgrind)" >&2
    exit 77
fi
require_go
cxx=${CXX:-g++}
work=$root/build/field/tinyxml2
export GOCACHE="${GOCACHE:-$work/gocache}" HOME="${HOME:-$work}"
rm -rf "$work/src"
mkdir -p "$work/src"
tar xzf "$archive" -C "$work/src" || { echo "FAIL: cannot extract $archive" >&2; exit 1; }
src=$work/src/tinyxml2-11.0.0
flags=(-std=c++17 -O1 -g -fno-omit-frame-pointer)

echo "== building tinyxml2, xmltest (plain and with memdiag's hook) and the LoadFile budget driver"
build() {
    "$@" 2>"$work/build.err" || { fail "build: $*"; cat "$work/build.err" >&2; exit 1; }
}
build "$cxx" "${flags[@]}" -c "$src/tinyxml2.cpp" -o "$work/tinyxml2.o"
build "$cxx" "${flags[@]}" -I"$src" -c "$src/xmltest.cpp" -o "$work/xmltest.o"
build "$cxx" "${flags[@]}" -I"$root/include" -c "$here/tinyxml2_hook.cpp" -o "$work/hook.o"
build "$cxx" "${flags[@]}" -Wall -Wextra -Werror -I"$root/include" -I"$src" -c "$here/tinyxml2_budget.cpp" \
    -o "$work/budget.o"
build "$cxx" "$work/tinyxml2.o" "$work/xmltest.o" -o "$work/xmltest_plain"
build "$cxx" "$work/tinyxml2.o" "$work/xmltest.o" "$work/hook.o" -o "$work/xmltest_hooked" -pthread -ldl
build "$cxx" "$work/tinyxml2.o" "$work/budget.o" -o "$work/tinyxml2_budget" -pthread -ldl

cd "$src" || exit 1  # xmltest reads resources/ and writes resources/out/

# 1. xmltest passes with the hook.
if "$work/xmltest_hooked" >"$work/hooked.out" 2>"$work/hooked.err"; then
    pass "xmltest with memdiag's hook: $(grep -o 'Pass [0-9]*, Fail [0-9]*' "$work/hooked.out")"
else
    fail "xmltest with memdiag's hook failed"; tail -20 "$work/hooked.out" "$work/hooked.err" >&2
fi
ours=$(sed -n 's/^memdiag-field: allocations=\([0-9]*\).*/\1/p' "$work/hooked.err")

# 2. Allocation counts against valgrind's.
valgrind "$work/xmltest_plain" >/dev/null 2>"$work/valgrind.err"
theirs=$(sed -n 's/.*total heap usage: \([0-9,]*\) allocs.*/\1/p' "$work/valgrind.err" | tr -d ,)
if [ -z "$ours" ] || [ -z "$theirs" ]; then
    fail "allocation counts: memdiag '${ours}', valgrind '${theirs}' (one is missing)"
elif [ "$ours" = "$theirs" ]; then
    pass "allocations: memdiag $ours = valgrind $theirs"
else
    fail "allocations: memdiag counted $ours, valgrind $theirs ($((ours - theirs)) of memdiag's own or missed)"
fi

# 3. The exact profile: pprof reads it, tinyxml2 functions on top.
profile=$work/xmltest.pb.gz
rm -f "$profile"
MEMDIAG_FIELD_PROFILE=$profile "$work/xmltest_hooked" >/dev/null 2>"$work/profiled.err"
if ! go tool pprof -top -sample_index=alloc_space -nodecount=3 "$profile" >"$work/top.txt" 2>"$work/top.err"; then
    fail "go tool pprof cannot read $profile: $(head -3 "$work/top.err")"
else
    top=$(awk '/flat%/ { rows = 1; next } rows && NF >= 6 { $1 = $2 = $3 = $4 = $5 = ""; sub(/^ +/, ""); print }' \
          "$work/top.txt")
    if [ "$(printf '%s\n' "$top" | grep -c '^tinyxml2::')" -eq 3 ]; then
        pass "exact profile: top 3 sites by allocated bytes are $(printf '%s\n' "$top" | paste -sd, -)"
    else
        fail "exact profile: top 3 sites are not all tinyxml2 functions:"; cat "$work/top.txt" >&2
    fi
fi

# 4. A budget around LoadFile.
if "$work/tinyxml2_budget" resources/dream.xml >"$work/budget.out" 2>"$work/budget.err"; then
    if grep -qF "budget 'LoadFile budget' exceeded: max_allocations" "$work/budget.err" &&
       grep -qF "tinyxml2::XMLDocument::LoadFile" "$work/budget.err"; then
        pass "LoadFile budget: the breach report's stack names tinyxml2::XMLDocument::LoadFile"
    else
        fail "LoadFile budget: no report naming tinyxml2::XMLDocument::LoadFile"; cat "$work/budget.err" >&2
    fi
    if grep -qE '^breaches=1 error=0 root=PLAY children=[1-9]' "$work/budget.out"; then
        pass "LoadFile budget: one crossing, and the document is usable ($(cat "$work/budget.out"))"
    else
        fail "LoadFile budget: unexpected result: $(cat "$work/budget.out")"
    fi
else
    fail "tinyxml2_budget exited with an error"; cat "$work/budget.out" "$work/budget.err" >&2
fi

echo "$passes passed, $failures failed"
[ $failures -eq 0 ]
