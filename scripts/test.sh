#!/usr/bin/env bash
# scripts/test.sh - build memdiag and run its whole test suite (CMake/CTest and Meson).
#
# Installs what the tests need with apt-get when it is missing (or prints the
# command to run). Build trees go to build/test and build/meson.
# Environment: CXX (compiler), MEMDIAG_JOBS (parallel jobs).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-deps.sh cmake ninja-build catch2 meson pkg-config golang-go python3 gzip \
  libbenchmark-dev util-linux libgtest-dev doctest-dev
jobs=${MEMDIAG_JOBS:-$(nproc)}

echo "== CMake build and CTest"
cmake -S . -B build/test -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/test -j "$jobs"
ctest --test-dir build/test --output-on-failure -j "$jobs"

echo "== Meson build and meson test"
if [ ! -d build/meson ]; then meson setup build/meson . >/dev/null; fi
meson test -C build/meson --print-errorlogs

echo "memdiag: all tests passed"
