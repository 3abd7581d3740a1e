#!/usr/bin/env bash
# scripts/test.sh - build memdiag and run its test suite.
#
#   CMake/CTest: every test, example and README snippet (-Werror).
#   Meson:       the library dependency, the examples and one test binary, so the
#                Meson build files are proved without building the suite twice.
#
# Quiet: one line per stage, the test summary, failures in full; why each
# skipped test was skipped. Build logs: build/test-logs/. Installs what the
# tests need with apt-get when it is missing (or prints the command to run).
# Build trees: build/test and build/meson.
# Environment: CXX (compiler), MEMDIAG_JOBS (parallel jobs for both halves).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
jobs=${MEMDIAG_JOBS:-$(nproc)}
logs=build/test-logs
mkdir -p "$logs"

stage_start=0
stage() { printf '%-52s' "== $1"; stage_start=$SECONDS; }
stage_ok() { echo " ok ($((SECONDS - stage_start)) s)"; }
# quiet LOG CMD...: runs CMD with its output in LOG; on failure prints LOG in full.
quiet() {
  local log=$1
  shift
  if ! "$@" >"$log" 2>&1; then
    echo " FAILED"
    cat "$log"
    echo "memdiag: FAILED: $* (log: $log)"
    exit 1
  fi
}
# ctest_skip_notes: why each skipped test skipped.
. tests/lib/skip_notes.sh

stage "dependencies (apt-get when missing)"
quiet "$logs/deps.log" bash scripts/setup-deps.sh cmake ninja-build catch2 libgtest-dev doctest-dev libbenchmark-dev meson \
  pkg-config golang-go python3 gzip util-linux
stage_ok

stage "CMake configure (build/test)"
# Debug (g++ -O0 -g), -Werror throughout: most of an -O3 build is code
# generation (a third of the time at -O0). CI builds the same suite at -O3 with
# g++ and clang++ too (scripts/matrix.sh release-gcc, release-clang), where
# optimizer-only warnings and clone-named functions (f.cold) show up.
quiet "$logs/cmake-configure.log" cmake -S . -B build/test -G Ninja -DCMAKE_BUILD_TYPE=Debug \
  -DMEMDIAG_BUILD_BENCHMARKS=OFF -DMEMDIAG_REQUIRE_FRAMEWORKS=ON
stage_ok

stage "CMake build, $jobs jobs"
quiet "$logs/cmake-build.log" cmake --build build/test -j "$jobs"
stage_ok

stage "CTest, $jobs jobs"
ctest_rc=0
ctest --test-dir build/test --output-on-failure -j "$jobs" >"$logs/ctest.log" 2>&1 || ctest_rc=$?
if [ "$ctest_rc" = 0 ]; then stage_ok; else echo " FAILED"; fi
# Everything but the progress lines of passing tests: failures in full, the summary.
grep -Ev '^ *Start +[0-9]+:|^ *[0-9]+/[0-9]+ Test +#[0-9]+: .*(Passed|\*\*\*Skipped) ' "$logs/ctest.log" |
  sed -e '/^Test project /d' -e '/^Internal ctest changing/d' -e '/^$/d' -e 's/^/   /'
mapfile -t skipped < <(sed -nE 's/^[[:space:]]*[0-9]+ - ([^ ]+) \(Skipped\)$/\1/p' "$logs/ctest.log")
# Why each skipped test skipped, and the tests that skipped some of their checks.
notes=$(ctest_skip_notes build/test/Testing/Temporary/LastTest.log "${skipped[@]}")
[ -z "$notes" ] || printf '   skip notes (why):\n%s\n' "$notes"
[ "$ctest_rc" = 0 ] || { echo "memdiag: FAILED: ctest (log: $logs/ctest.log)"; exit 1; }

stage "Meson setup (build/meson)"
if [ -d build/meson ]; then
  quiet "$logs/meson-setup.log" meson setup --reconfigure build/meson . -Dtests=enabled
else
  quiet "$logs/meson-setup.log" meson setup build/meson . -Dtests=enabled
fi
stage_ok

meson_targets=(track_containers budget_guard env_report heap_snapshot memdiag_tests)
stage "Meson build: examples, memdiag_tests, $jobs jobs"
quiet "$logs/meson-build.log" meson compile -C build/meson -j "$jobs" "${meson_targets[@]}"
stage_ok

stage "meson test: memdiag_tests, env_checks"
meson_rc=0
meson test -C build/meson --no-rebuild --num-processes "$jobs" --print-errorlogs memdiag_tests env_checks \
  >"$logs/meson-test.log" 2>&1 || meson_rc=$?
if [ "$meson_rc" = 0 ]; then stage_ok; else echo " FAILED"; cat "$logs/meson-test.log"; fi
sed -n 's/^\(Ok\|Expected Fail\|Fail\|Unexpected Pass\|Skipped\|Timeout\): */   \1: /p' "$logs/meson-test.log" |
  paste -sd' ' - | tr -s ' '
[ "$meson_rc" = 0 ] || { echo "memdiag: FAILED: meson test (log: $logs/meson-test.log)"; exit 1; }

# CPU seconds of the finished children (fields 16 and 17 of /proc/self/stat):
# with the wall time, what the machine's load does not change.
cpu=$(read -r -a f < /proc/$$/stat 2>/dev/null && echo " ($(((f[15] + f[16]) / $(getconf CLK_TCK))) s CPU)" || true)
echo "memdiag: all tests passed in $((SECONDS - start)) s$cpu"
