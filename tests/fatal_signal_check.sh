#!/usr/bin/env bash
# tests/fatal_signal_check.sh OOM_PROGRAMS - a crash leaves a heap snapshot and still
# dies by its signal: `oom_programs crash` (tests/oom/oom_programs.cpp, default profiler options, 32 MiB kept at
# leak_site) with MEMDIAG_DUMP_ON_SIGNAL=1, for a null dereference (SIGSEGV,
# status 139), abort() (SIGABRT, 134) and an infinite recursion (SIGSEGV on
# the alternate stack, 139). Each leaves DIR/heap.<pid>.signal.pb.gz that go
# tool pprof reads, with leak_site holding >= 80% of in-use bytes. Then a bad
# MEMDIAG_DUMP_ON_SIGNAL value: a message, no handler, the same death.
# Exit 77: no go.
set -uo pipefail
[ $# -eq 1 ] || { echo "usage: $0 OOM_PROGRAMS_BINARY" >&2; exit 2; }
bin=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib/check_common.sh"
require_go
work=$(mktemp -d "${TMPDIR:-/tmp}/memdiag-signal.XXXXXX")
trap 'rm -rf "$work"' EXIT
export GOCACHE="${GOCACHE:-$work/gocache}" HOME="${HOME:-$work}"
unset MEMDIAG_DUMP_AT MEMDIAG_DUMP_DIR MEMDIAG_DUMP_ON_SIGNAL
ulimit -c 0  # the default action would write a core here; its status bit still shows the signal

for case in "segv 139 SIGSEGV" "abort 134 SIGABRT" "recursion 139 SIGSEGV"; do
    set -- $case
    mode=$1 want=$2 sig=$3
    dir=$work/$mode
    mkdir "$dir"
    MEMDIAG_DUMP_ON_SIGNAL=1 MEMDIAG_DUMP_DIR=$dir "$bin" crash "$mode" >"$work/out.txt" 2>"$work/err.txt"
    expect_status "$mode: died by $sig" "$want" $?
    grep -q "memdiag: $sig: heap snapshot written to $dir/heap\.[0-9]*\.signal\.pb\.gz" "$work/err.txt" &&
        pass "$mode: stderr says where the snapshot is" || fail "$mode: stderr: $(head -3 "$work/err.txt")"
    pprof_share "$mode" "$(ls "$dir"/heap.*.signal.pb.gz 2>/dev/null | head -1)" leak_site
done

mkdir "$work/bad"
MEMDIAG_DUMP_ON_SIGNAL=yes MEMDIAG_DUMP_DIR=$work/bad "$bin" crash segv >/dev/null 2>"$work/err.txt"
rc=$?
[ $rc -eq 139 ] && grep -q 'MEMDIAG_DUMP_ON_SIGNAL="yes": want 1 or 0' "$work/err.txt" && [ -z "$(ls "$work/bad")" ] &&
    pass "bad MEMDIAG_DUMP_ON_SIGNAL: message, no handler, status 139" ||
    fail "bad MEMDIAG_DUMP_ON_SIGNAL: status $rc, stderr: $(head -2 "$work/err.txt"), files: $(ls "$work/bad")"
MEMDIAG_DUMP_ON_SIGNAL=1 "$bin" crash abort >/dev/null 2>"$work/err.txt"
rc=$?
[ $rc -eq 134 ] && grep -q "MEMDIAG_DUMP_ON_SIGNAL=1 needs MEMDIAG_DUMP_DIR" "$work/err.txt" &&
    pass "MEMDIAG_DUMP_ON_SIGNAL=1 without a directory: message, status 134" ||
    fail "no directory: status $rc, stderr: $(head -2 "$work/err.txt")"

if [ "$failures" -ne 0 ]; then
    cat "$work/err.txt" >&2
    echo "$failures check(s) failed" >&2
    exit 1
fi
echo "fatal signal checks passed ($passes)"
