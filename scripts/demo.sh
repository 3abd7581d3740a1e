#!/usr/bin/env bash
# scripts/demo.sh - build the examples and show what memdiag does.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-deps.sh cmake ninja-build
cmake -S . -B build/demo -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DMEMDIAG_BUILD_TESTS=OFF -DMEMDIAG_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build build/demo >/dev/null

echo "== 1. Containers attributed to named trackers (examples/track_containers.cpp)"
build/demo/examples/track_containers
