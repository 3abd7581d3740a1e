#!/usr/bin/env bash
# bench/instructions.sh - memdiag's overhead in instructions, which a loaded
# machine does not blur (timed runs of short processes vary by 10 to 20%).
#
# Counts instructions with valgrind's cachegrind (--cache-sim=no):
#   workload  bench/workload.cpp on one thread, built as bench/compare.sh builds
#             it (g++ -O2 -g -fno-omit-frame-pointer): plain, counting, sampling
#             at 512 KiB, exact; each as a ratio to plain, per shape.
#   hook      bench_hook (g++ -O3 -fno-omit-frame-pointer): instructions per
#             new/delete pair of 32 bytes, counting, sampling at 512 KiB and
#             inside a budget, against malloc+free.
#   allocators bench_containers (g++ -O3, as a CMake Release build): each
#             container's instructions per iteration, tracked over plain.
# A benchmark's per-iteration figure is the difference of two runs with
# different MEMDIAG_BENCH_ITERATIONS over the difference of the counts, so
# start-up and set-up cancel out.
#
#   bench/instructions.sh [--rounds N] [--small-rounds N] [--only workload|hook|allocators] [--out FILE]
#
# Writes a Markdown report (default build/instructions/report.md) and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

rounds=20 small_rounds=200 only="" out=build/instructions/report.md
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --small-rounds) small_rounds=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "usage: $0 [--rounds N] [--small-rounds N] [--only workload|hook|allocators] [--out FILE]" >&2; exit 2 ;;
  esac
done
case $only in ""|workload|hook|allocators) ;; *) echo "--only: workload, hook or allocators" >&2; exit 2 ;; esac

command -v valgrind > /dev/null || bash scripts/setup-deps.sh valgrind
dir=$root/build/instructions
mkdir -p "$dir" "$(dirname "$out")"
CXX=${CXX:-g++}

# Instructions executed by a command (cachegrind's "I refs").
instructions() {
  local log=$dir/cg.log
  if ! valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null --log-file="$log" "$@" \
      > /dev/null 2> "$dir/run.err"; then
    echo "bench/instructions.sh: failed: $*" >&2
    cat "$dir/run.err" >&2
    exit 1
  fi
  sed -n 's/.*I *refs: *//p' "$log" | tr -d ',' | head -n 1
}

# Instructions per iteration of one benchmark (an exact name), from two runs.
per_iteration() {
  local binary=$1 name=$2 n1=$3 n2=$4 a b
  a=$(MEMDIAG_BENCH_ITERATIONS=$n1 instructions "$binary" --benchmark_filter="^$name(/iterations:[0-9]+)?\$")
  b=$(MEMDIAG_BENCH_ITERATIONS=$n2 instructions "$binary" --benchmark_filter="^$name(/iterations:[0-9]+)?\$")
  python3 - "$name" "$a" "$b" "$n1" "$n2" <<'PY'
import sys
name, a, b, n1, n2 = sys.argv[1], *map(int, sys.argv[2:])
per = (b - a) / (n2 - n1)
if per < 1:  # the filter matched nothing: both runs did only start-up
    sys.exit(f"bench/instructions.sh: benchmark {name} did not run ({a} and {b} instructions)")
print(f"{per:.1f}")
PY
}

report=("# Instructions (\`bench/instructions.sh\`)" ""
        "valgrind cachegrind, $("$CXX" --version | head -n 1), $(date -u +%F)." "")

if [ -z "$only" ] || [ "$only" = workload ]; then
  . bench/workload_variants.sh
  build_workload_variants "$dir"
  report+=("## \`bench/workload.cpp\`, one thread, ratio to plain" ""
           "| shape | rounds | plain (instructions) | counting | sampling 512 KiB | exact |" "|---|---:|---:|---:|---:|---:|")
  for shape in index small; do
    n=$rounds
    [ "$shape" = small ] && n=$small_rounds
    declare -A ir=()
    for v in plain count sample exact; do
      ir[$v]=$(instructions "$dir/$v" --shape "$shape" --threads 1 --rounds "$n")
      echo "  $shape $v: ${ir[$v]}"
    done
    report+=("$(python3 -c "
p, c, s, e = ${ir[plain]}, ${ir[count]}, ${ir[sample]}, ${ir[exact]}
print(f'| {\"$shape\"} | $n | {p:,} | {c / p:.3f}x | {s / p:.3f}x | {e / p:.3f}x |')")")
    unset ir
  done
  report+=("")
fi

bench_build() {  # name, extra flags...
  local name=$1
  shift
  "$CXX" -std=c++17 -O3 -g -DNDEBUG "$@" -I"$root/include" "bench/$name.cpp" -o "$dir/$name" \
    -lbenchmark -pthread -ldl
}

if [ -z "$only" ] || [ "$only" = hook ]; then
  echo "building bench_hook"
  bench_build bench_hook -fno-omit-frame-pointer
  base=$(per_iteration "$dir/bench_hook" plain_malloc_free/32 100000 200000)
  report+=("## \`bench_hook\`, per new/delete pair of 32 bytes (g++ -O3 -fno-omit-frame-pointer)" ""
           "| pair | instructions | over malloc+free |" "|---|---:|---:|" "| malloc+free | $base | |")
  for row in "counting|hooked_new_delete/32" "sampling 512 KiB|sampled_new_delete_512KiB/32" \
             "inside a budget|hooked_new_delete_in_budget/32"; do
    n=$(per_iteration "$dir/bench_hook" "${row#*|}" 100000 200000)
    echo "  ${row%%|*}: $n"
    report+=("| ${row%%|*} | $n | +$(python3 -c "print(f'{$n - $base:.1f}')") |")
  done
  report+=("")
fi

if [ -z "$only" ] || [ "$only" = allocators ]; then
  echo "building bench_containers"
  bench_build bench_containers
  report+=("## \`bench_containers\`, per iteration (g++ -O3)" ""
           "| container | plain | pass-through | tracked | tracked vs plain | pass-through vs plain |"
           "|---|---:|---:|---:|---:|---:|")
  for row in "std::vector push_back|vector_push_back|plain|stateful<int>|tracked" \
             "std::map insert|map_insert|std::allocator<node>|stateful<node>|memdiag::tracking_allocator<node>" \
             "unordered_map<string> fill|unordered_string_fill|plain|stateful<int>|tracked" \
             "pmr::map insert|pmr_map_insert|pmr_kind::plain|pmr_kind::pass_through|pmr_kind::tracked"; do
    IFS='|' read -r label fn a b c <<< "$row"
    esc() { printf '%s' "$1" | sed 's/[][().*^$+?{}|\\]/\\&/g'; }
    pa=$(per_iteration "$dir/bench_containers" "$fn<$(esc "$a")>" 50 100)
    pb=$(per_iteration "$dir/bench_containers" "$fn<$(esc "$b")>" 50 100)
    pc=$(per_iteration "$dir/bench_containers" "$fn<$(esc "$c")>" 50 100)
    echo "  $label: $pa / $pb / $pc"
    report+=("| $label | $pa | $pb | $pc | $(python3 -c "print(f'{$pc / $pa:.3f}x | {$pb / $pa:.3f}x')") |")
  done
  report+=("")
fi

printf '%s\n' "${report[@]}" > "$out"
cat "$out"
