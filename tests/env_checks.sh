#!/bin/sh
# tests/env_checks.sh - checks the env_report example against the system.
#
# Usage: tests/env_checks.sh path/to/env_report [path/to/env_report-32bit]
#
# Checks that the report runs and agrees with independent sources (getconf,
# /proc/meminfo, ulimit, /proc/self/cgroup, the binary's ELF class); that
# --json is valid JSON for python3's parser; that under `prlimit --as=N` the
# report shows the limit and --require-memory fails with advice; and that a
# 32-bit build reports 32 bits and warns. Without a 32-bit binary it builds
# one with ${CXX:-g++} -m32 from examples/env_report.cpp.
#
# Exit status: 0 all passed, 1 a check failed (each failure is printed as
# FAIL), 77 a needed tool is missing (printed as SKIP) and nothing failed.
set -u

report=${1:?usage: env_checks.sh path/to/env_report [path/to/env_report-32bit]}
report32=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
failures=0
skipped=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/memdiag-env.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok:   $*"; }
skip() { echo "SKIP: $*"; skipped=$((skipped + 1)); }
# value KEY FILE: the value of KEY=... in a text report, quotes removed.
value() { grep "^$1=" "$2" | head -n 1 | sed 's/  # .*//; s/^[^=]*=//; s/ *$//; s/^"\(.*\)"$/\1/'; }
# elf_class FILE: 1 for a 32-bit ELF file, 2 for a 64-bit one.
elf_class() { od -An -t u1 -j 4 -N 1 "$1" | tr -d ' '; }

if [ "$(uname -s)" != Linux ]; then
    echo "SKIP: these checks read /proc and use prlimit: Linux only (this is $(uname -s))"
    exit 77
fi
[ -x "$report" ] || { echo "FAIL: $report is not an executable"; exit 1; }
if [ -n "$report32" ] && [ ! -x "$report32" ]; then echo "FAIL: $report32 is not an executable"; exit 1; fi
case "$report" in */*) ;; *) report=./$report ;; esac
case "$report32" in "" | */*) ;; *) report32=./$report32 ;; esac

# ---- the report runs and agrees with independent sources -------------------
if "$report" > "$tmp/report.txt" 2> "$tmp/report.err"; then
    pass "env_report runs ($(wc -l < "$tmp/report.txt") items)"
else
    fail "env_report exited $?: $(cat "$tmp/report.err")"
fi
for key in arch pointer_bits page_size physical_memory rlimit_as cgroup_layout malloc effective_limit; do
    grep -q "^$key=" "$tmp/report.txt" || fail "no $key line in the report"
done

page=$(value page_size "$tmp/report.txt")
if [ "$page" = "$(getconf PAGESIZE)" ]; then pass "page_size=$page matches getconf PAGESIZE"
else fail "page_size=$page but getconf PAGESIZE says $(getconf PAGESIZE)"; fi

bits=$(value pointer_bits "$tmp/report.txt")
case "$(elf_class "$report"):$bits" in
    2:64 | 1:32) pass "pointer_bits=$bits matches the binary's ELF class" ;;
    *) fail "pointer_bits=$bits but the ELF class byte of $report is $(elf_class "$report")" ;;
esac

phys=$(value physical_memory "$tmp/report.txt")
memtotal=$(($(awk '/^MemTotal:/ { print $2; exit }' /proc/meminfo) * 1024))
if [ -n "$phys" ] && [ "$((phys / 1048576))" = "$((memtotal / 1048576))" ]; then
    pass "physical_memory=$phys matches /proc/meminfo MemTotal"
else fail "physical_memory=$phys but /proc/meminfo MemTotal is $memtotal"; fi

as=$(value rlimit_as "$tmp/report.txt")
ulimit_v=$(ulimit -v)
if [ "$ulimit_v" = unlimited ]; then expect_as=unlimited; else expect_as=$((ulimit_v * 1024)); fi
if [ "$as" = "$expect_as" ]; then
    pass "rlimit_as=$as matches ulimit -v ($ulimit_v)"
else fail "rlimit_as=$as but ulimit -v says $ulimit_v"; fi

if [ -r /proc/self/cgroup ]; then
    if grep -q '^0::' /proc/self/cgroup; then
        if grep -qv '^0::' /proc/self/cgroup; then expect=hybrid; else expect=v2; fi
    else expect=v1; fi
    layout=$(value cgroup_layout "$tmp/report.txt")
    if [ "$layout" = "$expect" ]; then pass "cgroup_layout=$layout matches /proc/self/cgroup"
    else fail "cgroup_layout=$layout but /proc/self/cgroup says $expect"; fi
    if grep -q ':memory:' /proc/self/cgroup && grep -q '^cgroup_v1_memory_limit=unknown' "$tmp/report.txt"; then
        fail "in a v1 memory cgroup but cgroup_v1_memory_limit is unknown"
    fi
fi

# ---- JSON: a real parser, and the same facts -------------------------------
if command -v python3 > /dev/null 2>&1; then
    if "$report" --json --check > "$tmp/report.json" && python3 -m json.tool "$tmp/report.json" > /dev/null; then
        pass "--json parses with python3 -m json.tool"
        python3 - "$tmp/report.json" "$(getconf PAGESIZE)" <<'EOF' || fail "JSON content check (above)"
import json, sys
r = json.load(open(sys.argv[1]))
items = r["items"]
assert items["page_size"]["bytes"] == int(sys.argv[2]), items["page_size"]
for key, item in items.items():
    assert item["known"] == (item["value"] != "unknown"), key
    assert item["known"] or item["reason"], "unknown without a reason: " + key
assert r["effective_limit"]["key"] in items, r["effective_limit"]
assert {c["name"] for c in r["checks"]} >= {"warn_32bit", "check_rlimits", "check_overcommit"}
EOF
    else
        fail "--json output does not parse: $(python3 -m json.tool "$tmp/report.json" 2>&1 | tail -n 1)"
    fi
else
    skip "python3 not found: cannot parse --json output"
fi

# ---- under an address-space limit ---------------------------------------------
limit=$((768 * 1024 * 1024))
if ! command -v prlimit > /dev/null 2>&1; then
    skip "prlimit not found (util-linux): cannot check the RLIMIT_AS report"
elif grep -q '^sanitizers=.*address' "$tmp/report.txt"; then
    skip "env_report is an AddressSanitizer build: ASan cannot start under RLIMIT_AS (give a plain build)"
else
    prlimit --as=$limit "$report" > "$tmp/limited.txt" 2>&1 || fail "env_report failed under prlimit --as=$limit"
    if [ "$(value rlimit_as "$tmp/limited.txt")" = $limit ]; then pass "under prlimit --as=$limit: rlimit_as=$limit"
    else fail "under prlimit --as=$limit the report says rlimit_as=$(value rlimit_as "$tmp/limited.txt")"; fi
    if grep -q "^effective_limit=$limit .*from rlimit_as" "$tmp/limited.txt"; then pass "effective_limit comes from rlimit_as"
    else fail "effective_limit is not rlimit_as: $(grep '^effective_limit=' "$tmp/limited.txt")"; fi

    prlimit --as=$limit "$report" --require-memory=1G > "$tmp/require.txt" 2>&1
    rc=$?
    if [ $rc = 1 ] && grep -q '^FAIL require_memory: .*rlimit_as' "$tmp/require.txt" && grep -q 'advice: .*ulimit -v' "$tmp/require.txt"; then
        pass "--require-memory=1G under the limit: exit 1, FAIL line naming rlimit_as, ulimit -v advice"
    else
        fail "--require-memory=1G under prlimit --as=$limit: exit $rc, output:"; grep -E '^(FAIL|WARN|OK)|advice' "$tmp/require.txt"
    fi
    prlimit --as=$limit "$report" --check > "$tmp/check.txt" 2>&1
    rc=$?
    if [ $rc = 0 ] && grep -q '^WARN check_rlimits: rlimit_as' "$tmp/check.txt"; then pass "--check warns about RLIMIT_AS below RAM (exit 0)"
    else fail "--check under prlimit: exit $rc, no WARN check_rlimits line"; fi
    prlimit --as=$limit "$report" --check --strict > /dev/null 2>&1
    [ $? = 1 ] && pass "--check --strict fails on that warning" || fail "--check --strict did not exit 1 under prlimit"
    "$report" --require-memory=64M > /dev/null 2>&1
    [ $? = 0 ] && pass "--require-memory=64M passes without the limit" || fail "--require-memory=64M failed without a limit"
fi

# ---- a 32-bit build ----------------------------------------------------------------
if [ -z "$report32" ]; then
    cxx=${CXX:-g++}
    mkdir -p "$tmp/m32inc"
    # Debian: after a cross g++ removed g++-multilib, <asm/...> is missing for -m32.
    [ -d /usr/include/x86_64-linux-gnu/asm ] && ln -s /usr/include/x86_64-linux-gnu/asm "$tmp/m32inc/asm"
    if "$cxx" -std=c++17 -m32 -isystem "$tmp/m32inc" -I"$root/include" "$root/examples/env_report.cpp" \
        -o "$tmp/env_report32" > "$tmp/m32.log" 2>&1; then
        report32=$tmp/env_report32
    else
        skip "$cxx -m32 cannot build here (install g++-multilib): $(head -n 1 "$tmp/m32.log")"
    fi
fi
# Kernels without 32-bit support (CONFIG_IA32_EMULATION off) cannot execute it:
# qemu-i386 (qemu-user) runs it then.
run32=
if [ -n "$report32" ] && ! "$report32" > /dev/null 2>&1; then
    if [ "$(elf_class "$report32")" = 1 ] && command -v qemu-i386 > /dev/null 2>&1 &&
        qemu-i386 -L / "$report32" > /dev/null 2>&1; then
        run32="qemu-i386 -L /"
        echo "note: this kernel cannot execute 32-bit binaries: running the 32-bit build under qemu-i386"
    else
        skip "this kernel cannot execute the 32-bit build and qemu-i386 (qemu-user) is not installed: no 32-bit checks"
        report32=
    fi
fi
if [ -n "$report32" ]; then
    $run32 "$report32" --check > "$tmp/r32.txt" 2>&1
    rc=$?
    [ $rc = 0 ] || fail "32-bit env_report --check exited $rc (warnings alone must not fail)"
    [ "$(elf_class "$report32")" = 1 ] || fail "$report32 is not a 32-bit ELF file"
    if [ "$(value pointer_bits "$tmp/r32.txt")" = 32 ]; then pass "32-bit build: pointer_bits=32"
    else fail "32-bit build reports pointer_bits=$(value pointer_bits "$tmp/r32.txt")"; fi
    space=$(value address_space "$tmp/r32.txt")
    if [ -n "$space" ] && [ "$space" -le 4294967296 ]; then pass "32-bit build: address_space=$space (at most 4 GiB)"
    else fail "32-bit build: address_space=$space"; fi
    if grep -q '^WARN warn_32bit: 32-bit build' "$tmp/r32.txt" && grep -q 'advice: .*-m32' "$tmp/r32.txt"; then
        pass "32-bit build warns, with advice"
    else fail "32-bit build: no WARN warn_32bit line"; fi
    $run32 "$report32" --require-64bit > "$tmp/r32req.txt" 2>&1
    if [ $? = 1 ] && grep -q '^FAIL require_64bit' "$tmp/r32req.txt"; then pass "32-bit build: --require-64bit fails"
    else fail "32-bit build: --require-64bit did not fail"; fi
fi

if [ $failures -gt 0 ]; then
    echo "env_checks: $failures check(s) FAILED"
    exit 1
fi
if [ $skipped -gt 0 ]; then
    echo "env_checks: passed, but $skipped part(s) skipped (see SKIP above)"
    exit 77
fi
echo "env_checks: all passed"
