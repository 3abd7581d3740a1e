#!/usr/bin/env bash
# tests/consumers/install_without_frameworks.sh - a fresh copy of the source
# configures and installs with no test framework visible:
#   cmake -S . -B b && cmake --install b --prefix P
# Catch2, GoogleTest, doctest and Google Benchmark are hidden with
# CMAKE_DISABLE_FIND_PACKAGE_<name>. Checks: configure prints exactly one
# "memdiag: not found" status line, the install has the headers and the CMake
# package, a consumer builds against the install, and asking for the tests
# explicitly (-DMEMDIAG_BUILD_TESTS=ON) fails with a message naming Catch2.
# Exit 0: passed; 1: failed; 77: cmake or a C++ compiler is missing.
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
. tests/lib/check_common.sh

command -v cmake >/dev/null 2>&1 || { echo "SKIP: cmake is not installed"; exit 77; }
command -v "${CXX:-c++}" >/dev/null 2>&1 || { echo "SKIP: no C++ compiler (${CXX:-c++})"; exit 77; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A fresh clone of the working tree: tracked and new files, no build trees.
src=$work/src
mkdir -p "$src"
git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -xf - -C "$src"

hide=(-DCMAKE_DISABLE_FIND_PACKAGE_Catch2=ON -DCMAKE_DISABLE_FIND_PACKAGE_GTest=ON
      -DCMAKE_DISABLE_FIND_PACKAGE_doctest=ON -DCMAKE_DISABLE_FIND_PACKAGE_benchmark=ON)

if cmake -S "$src" -B "$work/b" "${hide[@]}" >"$work/configure.log" 2>&1; then
    pass "configure without frameworks"
else
    fail "configure without frameworks"; cat "$work/configure.log"
fi
lines=$(grep -c "memdiag: not found" "$work/configure.log")
if [ "$lines" = 1 ]; then
    pass "one status line: $(grep "memdiag: not found" "$work/configure.log" | sed 's/^-- //')"
else
    fail "expected one 'memdiag: not found' status line, got $lines"; cat "$work/configure.log"
fi
if cmake --install "$work/b" --prefix "$work/P" >"$work/install.log" 2>&1 &&
    [ -f "$work/P/include/memdiag/memdiag.hpp" ] &&
    [ -f "$work/P/share/cmake/memdiag/memdiagConfig.cmake" ]; then
    pass "cmake --install --prefix P (headers and CMake package)"
else
    fail "install"; cat "$work/install.log"
fi
if cmake -S tests/consumers/cmake_package -B "$work/consumer" -DCMAKE_PREFIX_PATH="$work/P" >"$work/consumer.log" 2>&1 &&
    cmake --build "$work/consumer" >>"$work/consumer.log" 2>&1 && "$work/consumer/consumer" >>"$work/consumer.log" 2>&1; then
    pass "a consumer builds and runs against the install"
else
    fail "consumer against the install"; cat "$work/consumer.log"
fi
if cmake -S "$src" -B "$work/explicit" "${hide[@]}" -DMEMDIAG_BUILD_TESTS=ON >"$work/explicit.log" 2>&1; then
    fail "-DMEMDIAG_BUILD_TESTS=ON without Catch2 configured (should fail)"
elif grep -q "MEMDIAG_BUILD_TESTS=ON needs Catch2" "$work/explicit.log"; then
    pass "-DMEMDIAG_BUILD_TESTS=ON without Catch2 fails, naming Catch2"
else
    fail "-DMEMDIAG_BUILD_TESTS=ON failed without naming Catch2"; cat "$work/explicit.log"
fi

echo "install_without_frameworks: $passes passed, $failures failed"
[ "$failures" -eq 0 ]
