#!/usr/bin/env bash
# tests/watermark_check.sh OOM_PROGRAMS - watermark snapshots from the
# environment alone: `oom_programs leak` (tests/oom/oom_programs.cpp, default profiler options) keeps
# 70 MiB with MEMDIAG_DUMP_AT=80%,90%,95% MEMDIAG_DUMP_LIMIT=64MiB; the three
# files heap.<pid>.<percent>.pb.gz must exist, the 95% one must open in go tool
# pprof with leak_site holding >= 80% of in-use bytes. Then bad input (abc,
# 150%, 0%, no directory, a missing directory, a file as directory, a bad
# limit): a clear line on stderr, and the program runs to its end.
# Exit 77: no go.
set -uo pipefail
[ $# -eq 1 ] || { echo "usage: $0 OOM_PROGRAMS_BINARY" >&2; exit 2; }
bin=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib/check_common.sh"
require_go
work=$(mktemp -d "${TMPDIR:-/tmp}/memdiag-watermark.XXXXXX")
trap 'rm -rf "$work"' EXIT
export GOCACHE="${GOCACHE:-$work/gocache}" HOME="${HOME:-$work}"
unset MEMDIAG_DUMP_AT MEMDIAG_DUMP_DIR MEMDIAG_DUMP_LIMIT

mkdir "$work/snaps"
MEMDIAG_DUMP_AT=80%,90%,95% MEMDIAG_DUMP_DIR=$work/snaps MEMDIAG_DUMP_LIMIT=64MiB "$bin" leak 70 >"$work/out.txt" 2>"$work/err.txt"
rc=$?
[ $rc -eq 0 ] && grep -qx done "$work/out.txt" && pass "the leak ran to its end" || fail "exit $rc"
grep -q "heap snapshots at 80%, 90%, 95% of 64 MiB (MEMDIAG_DUMP_LIMIT)" "$work/err.txt" &&
    pass "start says where the snapshots go" || fail "no start line: $(head -2 "$work/err.txt")"
for pct in 80 90 95; do
    f=$(ls "$work/snaps"/heap.*."$pct".pb.gz 2>/dev/null | head -1)
    [ -n "$f" ] && [ "$(stat -c %a "$f")" = 600 ] && pass "heap.<pid>.$pct.pb.gz written (0600)" ||
        fail "no heap.<pid>.$pct.pb.gz: $(ls "$work/snaps")"
done
[ -z "$(ls "$work/snaps" | grep -v '^heap\.[0-9]*\.\(80\|90\|95\)\.pb\.gz$')" ] && pass "no other files (no temporaries left)" ||
    fail "unexpected files: $(ls "$work/snaps")"
pprof_share "95% snapshot" "$(ls "$work/snaps"/heap.*.95.pb.gz 2>/dev/null | head -1)" leak_site

# Bad input: one clear line, watermarks off, the program carries on.
touch "$work/a-file"
bad() {  # NAME EXPECTED-STDERR-PATTERN ENV...
    local name=$1 pattern=$2
    shift 2
    env "$@" "$bin" leak 1 >"$work/bad-out.txt" 2>"$work/bad-err.txt"
    local rc=$?
    if [ $rc -eq 0 ] && grep -qx done "$work/bad-out.txt" && grep -q -- "$pattern" "$work/bad-err.txt" &&
        grep -q "watermark snapshots are off" "$work/bad-err.txt"; then
        pass "bad input $name: '$(head -1 "$work/bad-err.txt")', program ran on"
    else
        fail "bad input $name: exit $rc, stderr: $(cat "$work/bad-err.txt")"
    fi
}
bad abc '"abc" is not a percentage' MEMDIAG_DUMP_AT=abc MEMDIAG_DUMP_DIR="$work/snaps"
bad 150% '"150%" is outside (0%, 100%]' MEMDIAG_DUMP_AT=150% MEMDIAG_DUMP_DIR="$work/snaps"
bad 0% '"0%" is outside (0%, 100%]' MEMDIAG_DUMP_AT=0% MEMDIAG_DUMP_DIR="$work/snaps"
bad "80%,x" '"x" is not a percentage' MEMDIAG_DUMP_AT=80%,x MEMDIAG_DUMP_DIR="$work/snaps"
bad "no directory" "needs a directory" MEMDIAG_DUMP_AT=80%
bad "missing directory" "No such file or directory" MEMDIAG_DUMP_AT=80% MEMDIAG_DUMP_DIR="$work/missing"
bad "file as directory" "is not a directory" MEMDIAG_DUMP_AT=80% MEMDIAG_DUMP_DIR="$work/a-file"
bad "bad limit" 'MEMDIAG_DUMP_LIMIT="lots"' MEMDIAG_DUMP_AT=80% MEMDIAG_DUMP_DIR="$work/snaps" MEMDIAG_DUMP_LIMIT=lots
if [ "$(id -u)" != 0 ]; then
    mkdir "$work/ro" && chmod 555 "$work/ro"
    bad "unwritable directory" "is not writable" MEMDIAG_DUMP_AT=80% MEMDIAG_DUMP_DIR="$work/ro"
else
    echo "note: unwritable-directory case not run: root may write anywhere"
fi
if [ "$failures" -ne 0 ]; then
    cat "$work/err.txt" >&2
    echo "$failures check(s) failed" >&2
    exit 1
fi
echo "watermark checks passed ($passes)"
