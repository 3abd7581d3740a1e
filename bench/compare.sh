#!/usr/bin/env bash
# bench/compare.sh - memdiag against other memory tools on two workloads, side by side.
#
# Builds bench/workload.cpp (plain, and with memdiag counting / sampling / exact),
# then, for each shape (index: the word index on --threads threads; small: many
# small short-lived objects on --small-threads threads), runs every row
# interleaved, REPS times, and reports the median wall time, CPU time (user +
# sys) and peak RSS of each, with ratios to the plain run (the median of each
# repetition's ratio to the plain run just before it, so a machine that slows
# down or speeds up between repetitions moves both sides), and for memdiag's
# profiler rows the samples it dropped (exact mode with default options must
# show 0).
#
#   bench/compare.sh [--reps N] [--rounds N] [--threads N] [--small-rounds N] [--small-threads N]
#                    [--shapes "index small"] [--out FILE] [--quick]
#
# --quick skips the slow tools (massif, gperftools, jemalloc profiling).
# Installs what it needs from Debian's packages (scripts/setup-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

reps=3 rounds=400 small_rounds=1000 threads=2 small_threads=4 shapes="index small" out=build/compare/results.md quick=0
while [ $# -gt 0 ]; do
  case $1 in
    --reps) reps=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --small-threads) small_threads=$2; shift 2 ;;
    --small-rounds) small_rounds=$2; shift 2 ;;
    --shapes) shapes=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    *) echo "usage: $0 [--reps N] [--rounds N] [--threads N] [--small-threads N] [--small-rounds N] [--shapes LIST] [--out FILE] [--quick]" >&2; exit 2 ;;
  esac
done

bash scripts/setup-deps.sh time heaptrack valgrind libgoogle-perftools4 libjemalloc2
dir=$root/build/compare
mkdir -p "$dir"
CXX=${CXX:-g++}
. bench/workload_variants.sh
build_workload_variants "$dir"
libdir=/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
tcmalloc=$(ls "$libdir"/libtcmalloc.so.4 2>/dev/null || true)
jemalloc=$(ls "$libdir"/libjemalloc.so.2 2>/dev/null || true)

# Rows: name | command (run through env, so VAR=value prefixes work).
rows=("plain|$dir/plain"
      "memdiag, counting (global hook)|$dir/count"
      "memdiag, sampling 512 KiB|$dir/sample"
      "memdiag, exact (every allocation, default options)|$dir/exact")
rows+=("heaptrack|heaptrack -o $dir/heaptrack.out $dir/plain")
if [ $quick = 0 ]; then
  rows+=("valgrind massif|valgrind --tool=massif --massif-out-file=$dir/massif.out $dir/plain")
  [ -n "$tcmalloc" ] && rows+=("gperftools heap profiler|LD_PRELOAD=$tcmalloc HEAPPROFILE=$dir/gperf $dir/plain")
  if [ -n "$jemalloc" ]; then
    rows+=("jemalloc (no profiling)|LD_PRELOAD=$jemalloc $dir/plain"
           "jemalloc, profiling 512 KiB|LD_PRELOAD=$jemalloc MALLOC_CONF=prof:true,lg_prof_sample:19 $dir/plain"
           "jemalloc, profiling every allocation|LD_PRELOAD=$jemalloc MALLOC_CONF=prof:true,lg_prof_sample:0 $dir/plain")
  fi
fi

mkdir -p "$(dirname "$out")"
: >"$out"
machine="$(nproc) CPUs, $(awk '/model name/{$1=$2=$3="";print;exit}' /proc/cpuinfo | sed 's/^ *//'), $(uname -sr)"
load="$(cut -d' ' -f1-3 /proc/loadavg)"
for shape in $shapes; do
nthreads=$threads nrounds=$rounds
[ "$shape" = small ] && nthreads=$small_threads nrounds=$small_rounds
args=(--rounds "$nrounds" --threads "$nthreads" --shape "$shape")
echo "shape $shape: ${args[*]}"
results=$dir/runs-$shape.txt
: >"$results"
for rep in $(seq 1 "$reps"); do
  for row in "${rows[@]}"; do
    name=${row%%|*} cmd=${row#*|}
    rm -f "$dir"/heaptrack.out* "$dir"/gperf.* "$dir"/massif.out jeprof.*.heap 2>/dev/null || true
    # wall seconds, user seconds, sys seconds, max RSS KiB
    if ! /usr/bin/time -o "$dir/time.txt" -f "%e %U %S %M" env $cmd "${args[@]}" >"$dir/stdout.txt" 2>"$dir/stderr.txt"; then
      echo "FAILED: $name ($cmd)" >&2
      sed 's/^/  /' "$dir/stderr.txt" | tail -5 >&2
      exit 1
    fi
    m=$(tail -n 1 "$dir/time.txt")
    # memdiag's profiler rows print "dropped: N"; other rows have none.
    dropped=$(sed -n 's/.*dropped: \([0-9]*\).*/\1/p' "$dir/stdout.txt" | tail -n 1)
    echo "$name|$m|${dropped:--}" >>"$results"
    printf '  rep %s  %-40s %s\n' "$rep" "$name" "$m"
  done
done
rm -f jeprof.*.heap 2>/dev/null || true

python3 - "$results" "$out" "$reps" "$nrounds" "$nthreads" "$machine" "$CXX" "$shape" "$load" <<'PY'
import statistics, sys, datetime
results, out, reps, rounds, threads, machine, cxx, shape, load = sys.argv[1:]
rows, order, drops = {}, [], {}
for line in open(results):
    name, m, dropped = line.rstrip("\n").split("|")
    parts = m.split()
    if len(parts) != 4:
        continue
    wall, user, sys_, rss = map(float, parts)
    if name not in rows:
        rows[name] = []; order.append(name); drops[name] = set()
    rows[name].append((wall, user + sys_, rss))
    drops[name].add(dropped)
med = {n: tuple(statistics.median(v[i] for v in rows[n]) for i in range(3)) for n in order}
plain = rows.get("plain", [])
def paired(n, i):
    # The median over repetitions of (this row / the plain run of the same repetition).
    r = [v[i] / p[i] for v, p in zip(rows[n], plain) if p[i] > 0]
    return f"{statistics.median(r):.2f}x" if r else "n/a"
lines = [f"Workload `bench/workload.cpp --shape {shape}` ({rounds} rounds, {threads} threads), {cxx} -O2, "
         f"median of {reps} interleaved runs (ratios: median of each run's ratio to the plain run beside it), "
         f"{datetime.date.today()}, {machine}, load average at start {load}.", "",
         "| tool | wall s | wall vs plain | CPU s | CPU vs plain | peak RSS MiB | dropped samples |",
         "|---|---:|---:|---:|---:|---:|---:|"]
for n in order:
    w, c, r = med[n]
    d = ", ".join(sorted(drops[n])) if drops[n] != {"-"} else ""
    lines.append(f"| {n} | {w:.2f} | {paired(n, 0)} | {c:.2f} | {paired(n, 1)} | {r / 1024:.0f} | {d} |")
open(out, "a").write("\n".join(lines) + "\n\n")
print("\n".join(lines))
PY
done
echo "table written to $out"
