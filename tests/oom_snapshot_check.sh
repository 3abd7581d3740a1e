#!/usr/bin/env bash
# tests/oom_snapshot_check.sh OOM_PROGRAMS - a real allocation failure
# leaves a snapshot with DEFAULT profiler options: runs `oom_programs bad_alloc`
# under `prlimit --as` until operator new throws std::bad_alloc, then reads the
# snapshot with go tool pprof and checks that leak_everything holds >= 80% of
# the in-use bytes. Twice: default options, and with 8192+ distinct live
# stacks recorded first (the emergency reserve must follow the tables).
# Exit 77: no go, or no prlimit.
set -uo pipefail
[ $# -eq 1 ] || { echo "usage: $0 OOM_PROGRAMS_BINARY" >&2; exit 2; }
bin=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib/check_common.sh"
command -v prlimit >/dev/null 2>&1 || { echo "SKIP: prlimit (util-linux) is not installed" >&2; exit 77; }
require_go
work=$(mktemp -d "${TMPDIR:-/tmp}/memdiag-oom.XXXXXX")
trap 'rm -rf "$work"' EXIT
export GOCACHE="${GOCACHE:-$work/gocache}" HOME="${HOME:-$work}"
limit=${MEMDIAG_OOM_TEST_LIMIT:-300000000}  # bytes of address space

for mode in default --stacks; do
    dump=$work/heap-$mode.pb.gz
    args=("$dump")
    [ "$mode" = default ] || args+=("$mode")
    prlimit --as="$limit" "$bin" bad_alloc "${args[@]}" >"$work/out.txt" 2>"$work/err.txt"
    rc=$?
    [ $rc -eq 0 ] && grep -q "^bad_alloc after" "$work/out.txt" &&
        pass "$mode: std::bad_alloc reached under prlimit --as=$limit" ||
        fail "$mode: exit $rc, no bad_alloc: $(cat "$work/out.txt" "$work/err.txt" | head -3)"
    grep -q "heap snapshot written to $dump" "$work/err.txt" && pass "$mode: the failure says where the snapshot is" ||
        fail "$mode: stderr: $(head -3 "$work/err.txt")"
    pprof_share "$mode" "$dump" leak_everything
done
if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed" >&2
    exit 1
fi
echo "out-of-memory snapshot checks passed ($passes)"
