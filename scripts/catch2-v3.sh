#!/usr/bin/env bash
# scripts/catch2-v3.sh - memdiag's Catch2-facing tests against Catch2 v3.
#
# Builds Catch2 3.7.1 from ../shared/third_party/catch2-3.7.1.tar.gz (relative to
# the project root; MEMDIAG_THIRD_PARTY overrides the folder) and installs it
# under build/catch2-v3/prefix, once: a later run reuses it. Then configures
# memdiag against it (checking that v3, not Debian's v2, was found), then builds
# and runs what depends on the Catch2 version: the shared test main, the core
# and hook suites (every Catch2 construct the suites use: tests/catch.hpp is the
# one place v2 and v3 differ for them, Approx included), memdiag/testing/catch2.hpp's
# own suite, and integration_check (Catch2 failing cases, listener, snapshots,
# baselines). The other suites include the same tests/catch.hpp and run in every
# other row. memdiag builds in Debug here, as in scripts/test.sh.
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
targets=()
# The other frameworks' failing programs join integration_check when found.
for t in memdiag_tests memdiag_hook_tests memdiag_testing_catch2_tests catch2_budget \
         catch2_failing gtest_failing doctest_failing benchmark_memory; do
  ninja -C "$work/memdiag" -t query "$t" >/dev/null 2>&1 && targets+=("$t")
done
cmake --build "$work/memdiag" -j "$jobs" --target "${targets[@]}" | grep -v '^\[[0-9]*/[0-9]*\] ' || [ "${PIPESTATUS[0]}" = 0 ]
ctest --test-dir "$work/memdiag" --output-on-failure -j "$jobs" \
  -R '^(memdiag_tests|memdiag_hook_tests|memdiag_testing_catch2_tests|integration_check)$'
# integration_check skips (77) without binaries: here it must have run the Catch2 checks.
if ! grep -q "ok:   c2-allocs" "$work/memdiag/Testing/Temporary/LastTest.log"; then
  echo "FAIL: integration_check did not run the Catch2 checks" >&2
  exit 1
fi
echo "memdiag: the Catch2-facing tests passed against Catch2 v3 (${targets[*]})"
