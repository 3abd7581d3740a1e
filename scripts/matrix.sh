#!/usr/bin/env bash
# scripts/matrix.sh - the build matrix CI runs after scripts/test.sh: compilers,
# language standards, sanitizers, and projects consuming memdiag.
#
# Usage: scripts/matrix.sh [NAME...]   (default: every configuration)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
jobs=${MEMDIAG_JOBS:-$(nproc)}
bash scripts/setup-deps.sh cmake ninja-build catch2 meson pkg-config clang

# cmake_config NAME CXX STD CXXFLAGS [EXTRA CMAKE ARGS...]: build and ctest one configuration.
cmake_config() {
  local name=$1 cxx=$2 std=$3 flags=$4
  shift 4
  local dir=build/matrix/$name t0=$SECONDS
  echo "== $name ($cxx, C++$std, ${flags:-no extra flags})"
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER="$cxx" \
    -DCMAKE_CXX_STANDARD="$std" -DCMAKE_CXX_FLAGS="$flags" -DMEMDIAG_BUILD_BENCHMARKS=OFF "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
  ctest --test-dir "$dir" --output-on-failure -j "$jobs"
  echo "-- $name passed in $((SECONDS - t0)) s"
}

consumers() {
  echo "== consumers: find_package after install, add_subdirectory, Meson subproject"
  local prefix=$root/build/matrix/prefix
  cmake -S . -B build/matrix/install -G Ninja -DMEMDIAG_BUILD_TESTS=OFF -DMEMDIAG_BUILD_EXAMPLES=OFF \
    -DMEMDIAG_BUILD_BENCHMARKS=OFF -DMEMDIAG_INSTALL=ON -DCMAKE_INSTALL_PREFIX="$prefix" >/dev/null
  cmake --build build/matrix/install >/dev/null
  cmake --install build/matrix/install >/dev/null
  test -f "$prefix/share/pkgconfig/memdiag.pc"
  cmake -S tests/consumers/cmake_package -B build/matrix/consumer-package -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
  cmake --build build/matrix/consumer-package >/dev/null
  build/matrix/consumer-package/consumer
  # pkg-config sees the installed package too
  PKG_CONFIG_PATH=$prefix/share/pkgconfig pkg-config --cflags memdiag | grep -q -- "-I$prefix/include"

  cmake -S tests/consumers/cmake_subdirectory -B build/matrix/consumer-subdir -DMEMDIAG_SOURCE_DIR="$root" >/dev/null
  cmake --build build/matrix/consumer-subdir >/dev/null
  build/matrix/consumer-subdir/consumer

  local mdir=build/matrix/meson-consumer
  rm -rf "$mdir" && mkdir -p "$mdir/subprojects"
  cp -r tests/consumers/meson_subproject "$mdir/project"
  cp tests/consumers/consumer.cpp "$mdir/consumer.cpp"
  mkdir -p "$mdir/project/subprojects/memdiag"
  cp -r include meson.build meson_options.txt "$mdir/project/subprojects/memdiag/"
  meson setup "$mdir/build" "$mdir/project" >/dev/null
  meson test -C "$mdir/build" --print-errorlogs
  echo "-- consumers passed"
}

run() {
  case $1 in
    gcc-17) cmake_config gcc-17 g++ 17 "" ;;
    gcc-20) cmake_config gcc-20 g++ 20 "" ;;
    clang-17) cmake_config clang-17 clang++ 17 "" ;;
    clang-20) cmake_config clang-20 clang++ 20 "" ;;
    asan) cmake_config asan clang++ 17 "-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" ;;
    tsan) cmake_config tsan clang++ 17 "-fsanitize=thread" ;;
    consumers) consumers ;;
    *) echo "unknown configuration: $1" >&2; exit 2 ;;
  esac
}

configs=("$@")
[ ${#configs[@]} -gt 0 ] || configs=(gcc-17 gcc-20 clang-17 clang-20 asan tsan consumers)
for c in "${configs[@]}"; do run "$c"; done
echo "matrix passed: ${configs[*]}"
