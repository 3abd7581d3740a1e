#!/usr/bin/env bash
# scripts/catch2-v3.sh - memdiag's whole test suite against Catch2 v3.
#
# Builds Catch2 3.7.1 from ../shared/third_party/catch2-3.7.1.tar.gz (relative to
# the project root; MEMDIAG_THIRD_PARTY overrides the folder) and installs it
# under build/catch2-v3/prefix, once: a later run reuses it. Then configures
# memdiag against it (checking that v3, not Debian's v2, was found), builds the
# tests and runs them all with CTest, integration_check (Catch2 failing cases,
# listener, snapshots, baselines) included. memdiag builds in Debug here, as
# in scripts/test.sh (the optimized builds are the matrix's release rows).
#
# Exit: 0 passed, 1 a build or test failed, 77 the archive is absent.
# Environment: CXX (compiler), MEMDIAG_JOBS (parallel jobs, default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
third_party=${MEMDIAG_THIRD_PARTY:-$root/../shared/third_party}
archive=$third_party/catch2-3.7.1.tar.gz
if [ ! -f "$archive" ]; then
  echo "SKIP: $archive not found (Catch2 3.7.1 source archive; set MEMDIAG_THIRD_PARTY)" >&2
  exit 77
fi
bash scripts/setup-deps.sh cmake ninja-build golang-go libgtest-dev doctest-dev pkg-config
jobs=${MEMDIAG_JOBS:-2}
work=$root/build/catch2-v3
prefix=$work/prefix

if [ ! -f "$prefix/.memdiag-done" ]; then
  echo "== Catch2 3.7.1: build and install into $prefix"
  rm -rf "$work/src" "$work/catch2-build" "$prefix"
  mkdir -p "$work/src"
  tar xzf "$archive" -C "$work/src"
  cmake -S "$work/src/Catch2-3.7.1" -B "$work/catch2-build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_TESTING=OFF -DCATCH_INSTALL_DOCS=OFF >/dev/null
  cmake --build "$work/catch2-build" -j "$jobs"
  cmake --install "$work/catch2-build" --prefix "$prefix" >/dev/null
  touch "$prefix/.memdiag-done"
else
  echo "== Catch2 3.7.1: reusing $prefix"
fi

echo "== memdiag against Catch2 v3"
cmake -S . -B "$work/memdiag" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_PREFIX_PATH="$prefix" \
  -DMEMDIAG_BUILD_BENCHMARKS=OFF | grep "memdiag:" || true
if ! grep -q "^Catch2_DIR:PATH=$prefix/" "$work/memdiag/CMakeCache.txt"; then
  echo "FAIL: the build did not pick Catch2 v3 from $prefix:" >&2
  grep "^Catch2_DIR" "$work/memdiag/CMakeCache.txt" >&2 || true
  exit 1
fi
cmake --build "$work/memdiag" -j "$jobs"
ctest --test-dir "$work/memdiag" --output-on-failure -j "$jobs"
# integration_check skips (77) without binaries: here it must have run the Catch2 checks.
if ! grep -q "ok:   c2-allocs" "$work/memdiag/Testing/Temporary/LastTest.log"; then
  echo "FAIL: integration_check did not run the Catch2 checks" >&2
  exit 1
fi
echo "memdiag: all tests passed against Catch2 v3"
