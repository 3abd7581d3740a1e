#!/usr/bin/env bash
# tests/breach_dump_check.sh BUDGET_GUARD - a budget breach leaves a heap
# snapshot that the real reader opens: runs examples/budget_guard with
# MEMDIAG_DUMP_DIR set and checks the one file it writes with go tool pprof
# (-raw parses, -top names the function that breached). Exit 77: no go.
set -uo pipefail
[ $# -eq 1 ] || { echo "usage: $0 BUDGET_GUARD_BINARY" >&2; exit 2; }
bin=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib/check_common.sh"
require_go
work=$(mktemp -d "${TMPDIR:-/tmp}/memdiag-breach-dump.XXXXXX")
trap 'rm -rf "$work"' EXIT
export GOCACHE="${GOCACHE:-$work/gocache}" HOME="${HOME:-$work}"

MEMDIAG_DUMP_DIR=$work run_target "$bin" >"$work/out.txt" 2>&1 || fail "budget_guard exited with $?"
shopt -s nullglob
dumps=("$work"/memdiag-heap-*.pb.gz)
[ ${#dumps[@]} -eq 1 ] && pass "one snapshot written on the breach" || fail "expected 1 snapshot, found ${#dumps[@]}"
grep -q "budget 'parse' exceeded: max_allocations: heap snapshot written to $work/" "$work/out.txt" &&
    pass "the breach says where the snapshot is" || fail "no 'heap snapshot written to' line"
if [ ${#dumps[@]} -ge 1 ]; then
    [ "$(stat -c %a "${dumps[0]}")" = 600 ] && pass "mode 0600" || fail "mode is not 0600"
    go tool pprof -raw "${dumps[0]}" >"$work/raw.txt" 2>"$work/err.txt" && pass "go tool pprof -raw parses it" ||
        fail "go tool pprof -raw: $(head -3 "$work/err.txt")"
    go tool pprof -top -sample_index=alloc_space "${dumps[0]}" >"$work/top.txt" 2>/dev/null
    grep -q "::parse" "$work/top.txt" && pass "the profile names parse" || fail "parse not in the profile"
fi
if [ "$failures" -ne 0 ]; then
    cat "$work/out.txt" >&2
    echo "$failures check(s) failed" >&2
    exit 1
fi
echo "breach dump checks passed ($passes)"
