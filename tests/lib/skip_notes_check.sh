#!/usr/bin/env bash
# tests/lib/skip_notes_check.sh - ctest_skip_notes (tests/lib/skip_notes.sh) on a
# made-up LastTest.log: a skipped test with two SKIP lines, a passing test that
# skipped part of its checks, a skipped test that printed no SKIP line, and a
# test without SKIP lines (not named).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/skip_notes.sh"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cat >"$log" <<'LOG'
1/4 Test: alpha
Output:
SKIP: go is not installed
SKIP: second reason
<end of output>
2/4 Test: beta
ok: something
SKIP: prlimit part not run under an emulator
<end of output>
3/4 Test: gamma
<end of output>
4/4 Test: delta
all fine
<end of output>
LOG
want='   alpha: SKIP: go is not installed; SKIP: second reason
   beta: SKIP: prlimit part not run under an emulator
   gamma: skipped (it printed no SKIP line)'
got=$(ctest_skip_notes "$log" alpha gamma)
if [ "$got" != "$want" ]; then
    printf 'FAIL: ctest_skip_notes printed:\n%s\nwant:\n%s\n' "$got" "$want" >&2
    exit 1
fi
[ -z "$(ctest_skip_notes /nonexistent/LastTest.log alpha)" ] || { echo "FAIL: output for a missing log" >&2; exit 1; }
echo "skip notes checks passed"
