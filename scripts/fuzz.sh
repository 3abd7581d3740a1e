#!/usr/bin/env bash
# scripts/fuzz.sh [SECONDS] [TARGET...] - build every libFuzzer target under
# tests/fuzz with clang (-fsanitize=fuzzer,address,undefined) and run each for
# SECONDS (default 60) over its seed corpus in tests/fuzz/corpus/<name>.
#
# Targets: tests/fuzz/fuzz_<name>.cpp; seeds: tests/fuzz/corpus/<first word of
# name> (fuzz_env_parse -> corpus/env, fuzz_elf_symbols -> corpus/elf).
# New inputs go to build/fuzz/<name>/corpus, never into the seed corpus; a crash
# leaves its input in build/fuzz/<name>/ and fails the script.
# Environment: MEMDIAG_FUZZ_DIR (build root, default build/fuzz), CXX_FUZZ (clang++).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds=${1:-60}
shift || true
out=${MEMDIAG_FUZZ_DIR:-build/fuzz}
case $out in /*) ;; *) out=$root/$out ;; esac
cxx=${CXX_FUZZ:-clang++}
bash scripts/setup-deps.sh clang

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in tests/fuzz/fuzz_*.cpp; do targets+=("$(basename "$f" .cpp)"); done
fi

flags=(-std=c++17 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
  -fno-sanitize-recover=undefined -Iinclude)
pids=()
for t in "${targets[@]}"; do
  name=${t#fuzz_}
  seeds=tests/fuzz/corpus/${name%%_*}
  dir=$out/$name
  mkdir -p "$dir/corpus"
  echo "== $t: build"
  "$cxx" "${flags[@]}" "tests/fuzz/$t.cpp" -o "$dir/$t" -ldl
done
# Run the targets two at a time (libFuzzer uses one core each).
status=0
run_one() {
  local t=$1 name=${1#fuzz_}
  local seeds=tests/fuzz/corpus/${name%%_*} dir=$out/$name
  [ -d "$seeds" ] || seeds=
  # shellcheck disable=SC2086
  if (cd "$dir" && ASAN_OPTIONS=detect_leaks=1 "./$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 corpus ${seeds:+"$root/$seeds"} >"$dir/log.txt" 2>&1); then
    echo "-- $t: $(grep -E '^stat::number_of_executed_units' "$dir/log.txt" | awk '{print $2}') runs in ${seconds} s, no crash"
  else
    echo "-- $t FAILED; log: $dir/log.txt" >&2
    tail -40 "$dir/log.txt" >&2
    return 1
  fi
}
running=0
for t in "${targets[@]}"; do
  run_one "$t" &
  pids+=($!)
  running=$((running + 1))
  if [ $running -ge 2 ]; then
    wait "${pids[0]}" || status=1
    pids=("${pids[@]:1}")
    running=$((running - 1))
  fi
done
for p in "${pids[@]}"; do wait "$p" || status=1; done
[ $status -eq 0 ] && echo "fuzz: all targets ran ${seconds} s without a crash"
exit $status
