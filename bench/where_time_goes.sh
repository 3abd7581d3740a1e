#!/usr/bin/env bash
# bench/where_time_goes.sh - where memdiag's overhead goes, by `perf record`.
#
# Builds bench/workload.cpp as bench/compare.sh does (plain, and with memdiag
# counting, sampling at 512 KiB and exact), records each variant on one thread
# with `perf record -e cpu-clock` (a software clock: it works in VMs without
# hardware counters), and splits each run's CPU samples into
#   hook      operator new / delete (memdiag's hook is inlined there; in the
#             plain build they are the standard library's thin wrappers)
#   memdiag   every other memdiag function (profiler, publish, slow paths)
#   malloc    the C library's allocator
#   workload  the rest (the program's own work, the kernel)
# as shares of the plain run's samples (so a row adds up to its ratio to
# plain), then lists the memdiag symbols that hold at least 0.5%.
#
#   bench/where_time_goes.sh [--shapes "index small"] [--rounds N] [--small-rounds N] [--out FILE]
#
# One thread, so that a sample is attributed to the code that ran, not to a
# thread waiting for a CPU. Writes a Markdown report (default
# build/where/report.md) and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

shapes="index small" rounds=100 small_rounds=1000 out=build/where/report.md
while [ $# -gt 0 ]; do
  case $1 in
    --shapes) shapes=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --small-rounds) small_rounds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "usage: $0 [--shapes LIST] [--rounds N] [--small-rounds N] [--out FILE]" >&2; exit 2 ;;
  esac
done

command -v perf > /dev/null || bash scripts/setup-deps.sh linux-perf
command -v perf > /dev/null || { echo "SKIP: perf is not installed and cannot be" >&2; exit 77; }
dir=$root/build/where
mkdir -p "$dir"
CXX=${CXX:-g++}
. bench/workload_variants.sh
build_workload_variants "$dir"

if ! perf record -e cpu-clock -o "$dir/probe.data" true > /dev/null 2>&1; then
  echo "SKIP: perf record cannot run here (kernel.perf_event_paranoid=$(cat /proc/sys/kernel/perf_event_paranoid 2>/dev/null))" >&2
  exit 77
fi

: > "$dir/runs.txt"
for shape in $shapes; do
  n=$rounds
  [ "$shape" = small ] && n=$small_rounds
  for v in plain count sample exact; do
    data=$dir/$shape-$v.data
    perf record -q -e cpu-clock -F 4999 -o "$data" "$dir/$v" --shape "$shape" --threads 1 --rounds "$n" > /dev/null
    perf report -i "$data" --stdio --no-children --sort dso,symbol --field-separator=';' 2> /dev/null |
      grep -v '^#' | grep -v '^$' > "$dir/$shape-$v.txt" || true
    echo "$shape|$v|$n|$dir/$shape-$v.txt" >> "$dir/runs.txt"
  done
done

python3 - "$dir/runs.txt" "$out" "$CXX" <<'PY'
import re, subprocess, sys
runs_file, out, cxx = sys.argv[1:4]
names = {"plain": "plain", "count": "counting", "sample": "sampling 512 KiB", "exact": "exact"}

def classify(dso, sym):
    if re.search(r"operator (new|delete)", sym):
        return "hook"
    if "memdiag" in sym:
        return "memdiag"
    if dso.startswith("libc") and re.search(r"malloc|free|_int_|unlink_chunk|tcache|realloc|calloc", sym):
        return "malloc"
    return "workload"

def total_samples(data):
    """Exact sample count (the report header rounds it to thousands)."""
    text = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "-n", "--sort", "comm",
                           "--field-separator=;"], capture_output=True, text=True).stdout
    return sum(int(l.split(";")[1]) for l in text.splitlines() if l and not l.startswith("#") and l.count(";") >= 2)

lines = [l.rstrip("\n").split("|") for l in open(runs_file)]
report = ["# Where the time goes (`bench/where_time_goes.sh`)", "",
          f"`perf record -e cpu-clock -F 4999`, one thread, {cxx} -O2 -fno-omit-frame-pointer, one run each. "
          "Every cell is CPU samples as a share of the plain run's total, so a row adds up to its "
          "ratio to plain and the columns say where the difference went (a rough split: one run, "
          "not a benchmark).", ""]
for shape in dict.fromkeys(l[0] for l in lines):
    rows = [l for l in lines if l[0] == shape]
    report += [f"## `--shape {shape}` ({rows[0][2]} rounds)", "",
               "| variant | samples | vs plain | hook (operator new/delete) | other memdiag | malloc/free | workload |",
               "|---|---:|---:|---:|---:|---:|---:|"]
    tops, base = {}, None
    for _, v, _, path in rows:
        share = {"hook": 0.0, "memdiag": 0.0, "malloc": 0.0, "workload": 0.0}
        syms = {}
        for entry in open(path):
            parts = entry.strip().split(";")
            if len(parts) < 3:
                continue
            try:
                pct = float(parts[0].strip().rstrip("%"))
            except ValueError:
                continue
            dso, sym = parts[1].strip(), re.sub(r"^\[[.k]\]\s*", "", parts[2].strip())
            kind = classify(dso, sym)
            share[kind] += pct
            if kind in ("hook", "memdiag"):
                syms[sym] = syms.get(sym, 0.0) + pct
        count = total_samples(path[:-4] + ".data")
        if v == "plain":
            base = count
        scale = count / base if base else 0.0
        report.append(f"| {names[v]} | {count} | {scale:.2f}x | " +
                      " | ".join(f"{share[k] * scale:.1f}%" for k in ("hook", "memdiag", "malloc", "workload")) + " |")
        tops[v] = sorted(((p * scale, s) for s, p in syms.items() if p * scale >= 0.5), reverse=True)[:8]
    report.append("")
    for v, syms in tops.items():
        if v == "plain" or not syms:
            continue
        report.append(f"{names[v]}, memdiag's symbols at 0.5% of plain or more: " +
                      "; ".join(f"`{s[:90]}` {p:.1f}%" for p, s in syms))
        report.append("")
open(out, "w").write("\n".join(report) + "\n")
print("\n".join(report))
PY
