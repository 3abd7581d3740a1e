#!/usr/bin/env bash
# tests/http/http_check.sh - the pprof endpoint against the real clients:
#   - `go tool pprof -top -sample_index=inuse_space http://.../debug/pprof/heap`
#     lists alloc_a, alloc_b, alloc_c and tagged_site<int&> with exactly 1024,
#     2048, 4096 and 256 kB (every allocation recorded, 64 KiB blocks);
#   - /debug/pprof/allocs opens with alloc_space as its default type;
#   - /debug/memdiag/stats and /debug/memdiag/env are valid JSON
#     (python3 -m json.tool) with the expected figures;
#   - serving 40 requests of every kind changes neither the process counts
#     nor the profile (the server's allocations are invisible);
#   - /debug/pprof/heap?seconds=2 while the fixture allocates 512 KiB in
#     alloc_delta holds exactly that one site and nothing else;
#   - bad clients (bad_clients.py): 100 KiB request line, one byte per second,
#     64 simultaneous and 64 idle connections, POST, /../../etc/passwd,
#     disconnect mid-response, missing and wrong tokens; the server keeps serving;
#   - quit: stop() joins and the port is closed.
#
#   tests/http/http_check.sh [HTTP_FIXTURE_BINARY]
#
# Without the argument the fixture is built with $CXX (default c++). Installs
# curl and python3 when missing (scripts/setup-deps.sh). Exit status: 0 passed,
# 1 a check failed, 77 (skip) when go, curl or python3 cannot be installed.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/memdiag-http-check.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT
. "$root/tests/lib/check_common.sh"

# ---- tools -------------------------------------------------------------------
require_go
for tool in curl python3; do
    command -v "$tool" >/dev/null 2>&1 || bash "$root/scripts/setup-deps.sh" "$tool" >&2 ||
        { echo "SKIP: $tool is not installed and could not be installed" >&2; exit 77; }
done
export GOCACHE="${GOCACHE:-$work/gocache}" HOME="${HOME:-$work}" PPROF_TMPDIR="$work/pprof"

fixture=${1:-}
if [ -z "$fixture" ]; then
    fixture="$work/http_fixture"
    ${CXX:-c++} -std=c++17 -O2 -g -fno-omit-frame-pointer ${CXXFLAGS:-} -I"$root/include" \
        "$here/http_fixture.cpp" -o "$fixture" -ldl -lpthread ||
        { echo "FAIL: cannot build the fixture" >&2; exit 1; }
fi
[ -x "$fixture" ] || { echo "FAIL: fixture '$fixture' is not executable" >&2; exit 1; }

# start NAME ARGS...: runs the fixture with commands from the fifo $work/NAME.in
# (kept open on fd 3/4...), output in $work/NAME.out; sets $port.
start() {
    local name=$1
    shift
    mkfifo "$work/$name.in"
    "$fixture" "$@" <"$work/$name.in" >"$work/$name.out" 2>"$work/$name.err" &
    pids+=($!)
    exec {fd}>"$work/$name.in"
    eval "${name}_fd=$fd"
    port=
    for _ in $(seq 100); do
        port=$(awk '/^port /{print $2}' "$work/$name.out")
        [ -n "$port" ] && break
        sleep 0.1
    done
    [ -n "$port" ] || { cat "$work/$name.err" >&2; echo "FAIL: the fixture did not start" >&2; exit 1; }
}
# say NAME COMMAND: sends a command and waits for its answer line.
say() {
    local name=$1 cmd=$2 fdvar="${1}_fd" before
    before=$(wc -l <"$work/$name.out")
    echo "$cmd" >&"${!fdvar}"
    for _ in $(seq 100); do
        [ "$(wc -l <"$work/$name.out")" -gt "$before" ] && break
        sleep 0.05
    done
    tail -n 1 "$work/$name.out"
}

start main --read-timeout 2000 --max-conn 16
base="http://127.0.0.1:$port"
pass "fixture serving on port $port"

# ---- go tool pprof -top over HTTP -----------------------------------------------
if go tool pprof -top -unit=kb -sample_index=inuse_space "$base/debug/pprof/heap" >"$work/top.txt" 2>"$work/pprof.err"; then
    pass "go tool pprof fetched and parsed /debug/pprof/heap"
else
    cat "$work/pprof.err" >&2
    fail "go tool pprof could not read /debug/pprof/heap"
fi
# pprof shortens "void tagged_site<int&>()" to "void tagged_site".
for want in "alloc_a 1024kB" "alloc_b 2048kB" "alloc_c 4096kB" "tagged_site 256kB"; do
    fn=${want% *} bytes=${want#* }
    got=$(awk -v fn="$fn" '$NF == fn || index($NF, fn "(") == 1 { print $1 " " $4 }' "$work/top.txt")
    [ "$got" = "$bytes $bytes" ] && pass "-top: $fn flat and cum $bytes" ||
        fail "-top: $fn: expected flat and cum '$bytes', got '${got:-no row}'"
done
grep -q "^Type: inuse_space" "$work/top.txt" && pass "-top: type inuse_space" || fail "-top: wrong type"

go tool pprof -top "$base/debug/pprof/allocs" >"$work/allocs.txt" 2>"$work/pprof.err"
grep -q "^Type: alloc_space" "$work/allocs.txt" && pass "/debug/pprof/allocs defaults to alloc_space" ||
    fail "/debug/pprof/allocs: default type is not alloc_space: $(grep '^Type' "$work/allocs.txt")"
go tool pprof -top "$base/debug/pprof/heap" >"$work/heapdef.txt" 2>"$work/pprof.err"
grep -q "^Type: inuse_space" "$work/heapdef.txt" && pass "/debug/pprof/heap defaults to inuse_space" ||
    fail "/debug/pprof/heap: default type is not inuse_space"

# ---- content types and JSON -----------------------------------------------------------
ct=$(curl -s -o "$work/h.pb.gz" -w "%{http_code} %{content_type}" "$base/debug/pprof/heap")
[ "$ct" = "200 application/octet-stream" ] && pass "heap: 200 application/octet-stream" || fail "heap: got '$ct'"
gzip -t "$work/h.pb.gz" 2>/dev/null && pass "heap: body is gzip" || fail "heap: body is not gzip"
for ep in stats env; do
    ct=$(curl -s -o "$work/$ep.json" -w "%{http_code} %{content_type}" "$base/debug/memdiag/$ep")
    [ "$ct" = "200 application/json" ] && pass "$ep: 200 application/json" || fail "$ep: got '$ct'"
    python3 -m json.tool "$work/$ep.json" >/dev/null && pass "$ep: valid JSON (python3 -m json.tool)" ||
        fail "$ep: invalid JSON: $(head -c 300 "$work/$ep.json")"
done
python3 - "$work/stats.json" <<'EOF' && pass "stats: hook installed, 7.25 MiB live sampled in 116+ samples, profiler running" || fail "stats: unexpected figures"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["global_hook_installed"] is True, s
assert s["process"]["live_bytes"] >= 7.25 * 2**20, s
assert s["heap_profiler"]["running"] and s["heap_profiler"]["sample_interval"] == 1, s
assert s["heap_profiler"]["samples"] >= 116 and s["heap_profiler"]["dropped_samples"] == 0, s
assert s["server"]["requests"] >= 1, s
EOF
python3 - "$work/env.json" <<'EOF' && pass "env: the environment report (items with page_size)" || fail "env: unexpected JSON"
import json, sys
e = json.load(open(sys.argv[1]))
assert "items" in e and "page_size" in e["items"], list(e)[:10]
EOF
ct=$(curl -s -o "$work/flame.html" -w "%{http_code} %{content_type}" "$base/debug/memdiag/flame")
[ "$ct" = "200 text/html; charset=utf-8" ] && pass "flame: 200 text/html" || fail "flame: got '$ct'"
grep -q 'tagged_site\\u003cint\\u0026\\u003e' "$work/flame.html" && pass "flame: names escaped in the data" ||
    fail "flame: tagged_site<int&> not found escaped"

# ---- the server is invisible in the counts -----------------------------------------
c1=$(say main counts)
h1=$(curl -s "$base/debug/memdiag/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["heap_profiler"]["samples"])')
for _ in $(seq 10); do
    for ep in pprof/heap pprof/allocs memdiag/stats memdiag/env memdiag/flame nowhere; do
        curl -s -o /dev/null "$base/debug/$ep"
    done
done
c2=$(say main counts)
h2=$(curl -s "$base/debug/memdiag/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["heap_profiler"]["samples"])')
[ "$c1" = "$c2" ] && pass "60 requests leave the process counts unchanged ($c1)" || fail "process counts moved: '$c1' -> '$c2'"
[ -n "$h1" ] && [ "$h1" = "$h2" ] && pass "60 requests leave the profile unchanged ($h1 samples)" ||
    fail "profile samples moved: '$h1' -> '$h2'"

# ---- delta profile -------------------------------------------------------------
go tool pprof -raw "$base/debug/pprof/heap?seconds=2" >"$work/delta.txt" 2>"$work/delta.err" &
delta_pid=$!
sleep 0.7
say main delta >/dev/null
t0=$(date +%s.%N)
curl -s -o /dev/null -w "" "$base/debug/memdiag/stats"
t1=$(date +%s.%N)
wait "$delta_pid" || { cat "$work/delta.err" >&2; fail "go tool pprof could not read the delta profile"; }
python3 -c "import sys; sys.exit(0 if $t1 - $t0 < 1 else 1)" && pass "served other requests during the delta window" ||
    fail "a request during the delta window took $(python3 -c "print($t1 - $t0)") s"
samples=$(awk '/^Samples:/{s=1; next} /^Locations/{s=0} s && /^ *-?[0-9]+ +-?[0-9]+ +-?[0-9]+ +-?[0-9]+:/' "$work/delta.txt")
if [ "$(printf '%s\n' "$samples" | grep -c .)" = 1 ] &&
    printf '%s\n' "$samples" | grep -Eq '^ *8 +524288 +8 +524288:'; then
    pass "delta over 2 s: one sample, 8 objects / 512 KiB allocated and in use"
else
    fail "delta over 2 s: expected one sample '8 524288 8 524288', got: $samples"
fi
leaf=$(awk '/^Locations/{l=1; next} l && /^ *1: /{print $4; exit}' "$work/delta.txt")
[ "$leaf" = "alloc_delta()" ] && pass "delta: the sample's leaf is alloc_delta()" || fail "delta: leaf is '$leaf'"
grep -q "^Duration: 2" "$work/delta.txt" && pass "delta: duration 2 s" || fail "delta: no 2 s duration"

# ---- bad clients, then a token -------------------------------------------------------
python3 "$here/bad_clients.py" "$port" clients || fail "bad clients (see above)"

stopped=$(say main quit)
case "$stopped" in
    "stopped "[0-9]*) pass "stop() returned: $stopped" ;;
    *) fail "quit: '$stopped'" ;;
esac
curl -s -o /dev/null "$base/debug/memdiag/stats" && fail "the port still answers after stop()" ||
    pass "the port is closed after stop()"

start tok --token "s3cret-$$-token"
python3 "$here/bad_clients.py" "$port" token "s3cret-$$-token" || fail "token checks (see above)"
say tok quit >/dev/null

if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed" >&2
    exit 1
fi
echo "all http checks passed ($passes)"
