#!/usr/bin/env bash
# scripts/demo.sh - build the examples and show what memdiag does.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-deps.sh cmake ninja-build golang-go util-linux
cmake -S . -B build/demo -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DMEMDIAG_BUILD_TESTS=OFF -DMEMDIAG_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build build/demo >/dev/null
ex=build/demo/examples

# Bold headings on a terminal only: no escape codes in pipes and log files.
if [ -t 1 ]; then
  section() { printf '\n\033[1m== %s\033[0m\n' "$1"; }
else
  section() { printf '\n== %s\n' "$1"; }
fi

section "1. The ground: this program's memory world (examples/env_report.cpp)"
"$ex/env_report"

section "2. A budget around a block of code, breached (examples/budget_guard.cpp)"
"$ex/budget_guard" 2>&1

section "3. Memory attributed to named trackers (examples/track_containers.cpp)"
"$ex/track_containers"

section "4. A heap snapshot, opened by go tool pprof (examples/heap_snapshot.cpp)"
"$ex/heap_snapshot" build/demo/heap.pb.gz | head -n 20
echo
echo "\$ go tool pprof -top -sample_index=inuse_space $ex/heap_snapshot build/demo/heap.pb.gz"
go tool pprof -top -sample_index=inuse_space "$ex/heap_snapshot" build/demo/heap.pb.gz 2>/dev/null | head -n 12

section "5. A pass that eats all memory: watermarks and a bad_alloc snapshot, then a budget (examples/oom_guard.cpp)"
mkdir -p build/demo/oom && rm -f build/demo/oom/*
echo "\$ MEMDIAG_DUMP_DIR=build/demo/oom prlimit --as=400000000 $ex/oom_guard"
MEMDIAG_DUMP_DIR=build/demo/oom prlimit --as=400000000 "$ex/oom_guard" 2>&1 || true
echo "\$ go tool pprof -top -sample_index=inuse_space $ex/oom_guard build/demo/oom/oom_guard.bad_alloc.pb.gz"
{ go tool pprof -top -sample_index=inuse_space "$ex/oom_guard" build/demo/oom/oom_guard.bad_alloc.pb.gz 2>/dev/null || true; } | head -n 10
echo "\$ $ex/oom_guard --budget 64"
"$ex/oom_guard" --budget 64 2>&1 | head -n 12 || true
