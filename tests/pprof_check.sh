#!/usr/bin/env bash
# tests/pprof_check.sh - checks memdiag's heap snapshot files with real readers:
# `go tool pprof` for the profiles, gzip and Python's zlib for the gzip framing.
#
#   tests/pprof_check.sh [FIXTURE_BINARY]
#
# FIXTURE_BINARY is tests/pprof_writer_fixture.cpp built by the build system;
# without it the script builds it with $CXX (default c++) and $CXXFLAGS.
# Exit status: 0 all checks passed, 1 a check failed, 77 (skip) when go is
# missing and cannot be installed.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/memdiag-pprof-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
. "$here/lib/check_common.sh"

# ---- tools -------------------------------------------------------------------
require_go
for tool in gzip awk; do
    command -v "$tool" >/dev/null 2>&1 || { echo "SKIP: $tool is not installed" >&2; exit 77; }
done
# go needs a writable cache directory even for `go tool`.
export GOCACHE="${GOCACHE:-$work/gocache}" HOME="${HOME:-$work}"
pprof() { go tool pprof "$@" 2>"$work/pprof.err"; }

# ---- the fixture -----------------------------------------------------------------
fixture=${1:-}
if [ -z "$fixture" ]; then
    fixture="$work/pprof_writer_fixture"
    ${CXX:-c++} -std=c++17 -O2 -g ${CXXFLAGS:-} -I"$root/include" "$here/pprof_writer_fixture.cpp" \
        -o "$fixture" || { echo "FAIL: cannot build the fixture" >&2; exit 1; }
fi
[ -x "$fixture" ] || { echo "FAIL: fixture '$fixture' is not executable" >&2; exit 1; }

# Sums each sample type over the samples of `go tool pprof -raw` output:
# prints "alloc_objects alloc_space inuse_objects inuse_space".
raw_totals() {
    pprof -raw "$1" | awk '
        /^Samples:/ { in_samples = 1; next }
        /^Locations/ { in_samples = 0 }
        in_samples && /^ *-?[0-9]+ +-?[0-9]+ +-?[0-9]+ +-?[0-9]+:/ {
            sub(":.*", ""); a += $1; b += $2; c += $3; d += $4; n++ }
        END { if (n == 0) exit 1; printf "%d %d %d %d\n", a, b, c, d }'
}

# Go's scaleHeapSample for one (count, size) pair at a rate, in awk's doubles.
scale() {
    awk -v n="$1" -v s="$2" -v r="$3" 'BEGIN {
        if (n == 0 || s == 0) { print "0 0"; exit }
        if (r <= 1) { printf "%d %d\n", n, s; exit }
        k = 1 / (1 - exp(-(s / n) / r)); printf "%d %d\n", int(n * k), int(s * k) }'
}

# The fixture's recorded sites: alloc_objects alloc_bytes inuse_objects inuse_bytes function.
sites=$'4 4194304 4 4194304 fixture_alloc_a\n16 65536 16 65536 fixture_alloc_b\n10 1000 3 300 fixture_alloc_c'

check_interval() {
    local interval=$1 out="$work/i$1"
    mkdir -p "$out"
    if ! run_target "$fixture" "$out" "$interval" >"$out/stdout" 2>"$out/stderr"; then
        fail "interval $interval: fixture failed: $(cat "$out/stderr")"
        return
    fi
    local pb="$out/heap.pb.gz"

    # gzip framing: gzip's own test, zcat, and Python's zlib (gzip container, wbits 31).
    for f in "$pb" "$out/large.pb.gz"; do
        if gzip -t "$f" 2>/dev/null; then pass "gzip -t $(basename "$f") (interval $interval)"
        else fail "gzip -t rejects $f"; fi
        gzip -dc "$f" >"$f.raw" || fail "zcat $f"
        if command -v python3 >/dev/null 2>&1; then
            if python3 -c 'import sys, zlib
d = open(sys.argv[1], "rb").read(); raw = open(sys.argv[2], "rb").read()
o = zlib.decompressobj(31); u = o.decompress(d) + o.flush()
sys.exit(0 if u == raw and o.eof and not o.unused_data else 1)' "$f" "$f.raw"; then
                pass "python zlib inflates $(basename "$f") to gzip's bytes"
            else
                fail "python zlib disagrees with gzip on $f"
            fi
        fi
    done

    # Expected totals: exact figures, or Go-scaled per site and summed.
    local want_ao=0 want_ab=0 want_io=0 want_ib=0 ao ab io ib fn a b
    declare -A want_flat=()
    while read -r ao ab io ib fn; do
        read -r a b < <(scale "$ao" "$ab" "$interval")
        want_ao=$((want_ao + a)) want_ab=$((want_ab + b))
        read -r a b < <(scale "$io" "$ib" "$interval")
        want_io=$((want_io + a)) want_ib=$((want_ib + b))
        want_flat[$fn]=$b
    done <<<"$sites"
    if [ "$interval" = 524288 ]; then
        # The worked example in the reference: these must come out exactly.
        [ "$(scale 4 4194304 524288)" = "4 4850786" ] || fail "scale: 4 / 4 MiB should give 4 / 4850786"
        [ "$(scale 16 65536 524288)" = "2056 8421418" ] || fail "scale: 16 / 64 KiB should give 2056 / 8421418"
    fi

    local got want="$want_ao $want_ab $want_io $want_ib"
    if got=$(raw_totals "$pb"); then
        if [ "$got" = "$want" ]; then pass "interval $interval: -raw totals $got"
        else fail "interval $interval: -raw totals '$got', want '$want'"; fi
    else
        fail "interval $interval: go tool pprof -raw cannot read $pb: $(cat "$work/pprof.err")"
    fi

    # -top per sample index: the total and each function's own (flat) in-use bytes.
    local top
    top=$(pprof -top -nodefraction=0 -unit=B -sample_index=inuse_space "$pb")
    grep -q "of ${want_ib}B total" <<<"$top" && pass "interval $interval: -top inuse_space total ${want_ib}B" ||
        fail "interval $interval: -top inuse_space total is not ${want_ib}B:"$'\n'"$top"
    for fn in fixture_alloc_a fixture_alloc_b fixture_alloc_c; do
        if awk -v fn="$fn" -v want="${want_flat[$fn]}B" '$6 == fn && $1 == want { found = 1 } END { exit !found }' <<<"$top"; then
            pass "interval $interval: $fn flat ${want_flat[$fn]}B"
        else
            fail "interval $interval: $fn should have flat ${want_flat[$fn]}B:"$'\n'"$top"
        fi
    done
    local idx col=0
    for idx in alloc_objects alloc_space inuse_objects; do
        col=$((col + 1))
        local w
        w=$(awk -v c=$col '{ print $c }' <<<"$want")
        # -unit=B would label counts as bytes too: only the space index gets it.
        local unit=() suffix=""
        [ "$idx" = alloc_space ] && unit=(-unit=B) suffix=B
        pprof -top "${unit[@]}" -sample_index=$idx "$pb" | grep -q "of ${w}${suffix} total" &&
            pass "interval $interval: -top $idx total $w" || fail "interval $interval: -top $idx total is not $w"
    done

    # Profile metadata: period, sample types, names and mappings.
    local raw
    raw=$(pprof -raw "$pb")
    grep -q "^PeriodType: space bytes" <<<"$raw" && grep -q "^Period: $interval\$" <<<"$raw" &&
        pass "interval $interval: period type space/bytes, period $interval" || fail "interval $interval: period"
    grep -q "^alloc_objects/count alloc_space/bytes inuse_objects/count inuse_space/bytes" <<<"$raw" ||
        fail "interval $interval: sample types"
    grep -q "^Time: 2023-11-14 22:13:20.123456789" <<<"$raw" || fail "interval $interval: time_nanos"
    grep -q "bytes:\[1048576\]" <<<"$raw" || fail "interval $interval: 'bytes' label (block size)"
    for fn in fixture_alloc_a fixture_alloc_b fixture_alloc_c main; do
        grep -Eq "^ +[0-9]+: 0x[0-9a-f]+ M=1 $fn " <<<"$raw" || fail "interval $interval: no location named $fn"
    done
    grep -Eq "^1: 0x[0-9a-f]+/0x[0-9a-f]+/0x[0-9a-f]+ .*pprof_writer_fixture [0-9a-f]{40} \[FN\]" <<<"$raw" ||
        grep -Eq "^1: 0x[0-9a-f]+/0x[0-9a-f]+/0x[0-9a-f]+ /.* \[FN\]" <<<"$raw" ||
        fail "interval $interval: mapping 1 should be the fixture with its build id and [FN]:"$'\n'"$raw"

    # The large profile: 5000 samples, deduplicated locations, compressed.
    if [ "$interval" = 1 ]; then
        got=$(raw_totals "$out/large.pb.gz") && [ "$got" = "5000 1760000 2500 800000" ] &&
            pass "large profile: -raw totals $got" || fail "large profile: -raw totals '$got'"
        local zs rs
        zs=$(wc -c <"$out/large.pb.gz") rs=$(wc -c <"$out/large.pb.gz.raw")
        [ "$zs" -lt $((rs / 2)) ] && pass "large profile compressed $rs -> $zs bytes" ||
            fail "large profile barely compressed: $rs -> $zs"
    fi

    # Dropped samples: a comment in the profile (profile.proto field 13) that
    # go tool pprof shows, and the first line of the text report; none when
    # nothing was dropped.
    local note="memdiag: 3103633 samples dropped, tables full"
    if pprof -comments "$out/dropped.pb.gz" | grep -q "^$note"; then
        pass "interval $interval: -comments shows '$note'"
    else
        fail "interval $interval: -comments lacks '$note': $(pprof -comments "$out/dropped.pb.gz") $(cat "$work/pprof.err")"
    fi
    pprof -raw "$out/dropped.pb.gz" | grep -q "$note" && pass "interval $interval: -raw shows the comment" ||
        fail "interval $interval: -raw lacks the comment"
    [ -z "$(pprof -comments "$pb")" ] && pass "interval $interval: no comment when nothing was dropped" ||
        fail "interval $interval: unexpected comment in $pb: $(pprof -comments "$pb")"
    head -1 "$out/dropped.txt" | grep -q "^$note" && pass "interval $interval: the text report starts with the notice" ||
        fail "interval $interval: text report's first line: $(head -1 "$out/dropped.txt")"
    got=$(raw_totals "$out/dropped.pb.gz") && [ "$got" = "$want" ] ||
        fail "interval $interval: dropped profile totals '$got', want '$want'"

    # Text report and collapsed stacks.
    for fn in fixture_alloc_a fixture_alloc_b fixture_alloc_c; do
        grep -q "$fn" "$out/heap.txt" || fail "interval $interval: text report lacks $fn"
    done
    grep -q "in use: .*($want_ib B) in $want_io objects" "$out/heap.txt" &&
        pass "interval $interval: text report totals" || fail "interval $interval: text report totals:"$'\n'"$(cat "$out/heap.txt")"
    if grep -Evq '^[^;]+(;[^;]+)* [0-9]+$' "$out/heap.folded"; then
        fail "interval $interval: malformed collapsed line: $(grep -Ev '^[^;]+(;[^;]+)* [0-9]+$' "$out/heap.folded" | head -1)"
    fi
    local folded_total
    folded_total=$(awk '{ t += $NF } END { printf "%d", t }' "$out/heap.folded")
    [ "$folded_total" = "$want_ib" ] && pass "interval $interval: collapsed stacks total $folded_total" ||
        fail "interval $interval: collapsed stacks total $folded_total, want $want_ib"
    grep -q '^main;fixture_alloc_b[^;]*;fixture_alloc_c' "$out/heap.folded" ||
        fail "interval $interval: collapsed stacks should run root (main) first"

    # Files are private.
    local mode
    for f in "$pb" "$out/heap.txt" "$out/heap.folded"; do
        mode=$(stat -c %a "$f")
        [ "$mode" = 600 ] || fail "$f has mode $mode, want 600"
    done
}

check_interval 1
check_interval 524288

if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed" >&2
    exit 1
fi
echo "all pprof checks passed"
