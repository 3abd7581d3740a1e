#!/usr/bin/env bash
# bench/include_time.sh - what including each public memdiag header costs.
#
# Times `g++ -std=c++17 -O2 -fsyntax-only` of a file that includes one header,
# median of 3 runs, for every public header, for <vector>+<string>+<map> as a
# reference, and for each test framework's own header (so the part memdiag adds
# to memdiag/testing/*.hpp shows). Times are CPU seconds (user + system) of
# the compiler, which a loaded machine disturbs less than wall time.
# Prints a Markdown table (the README's Performance section quotes it).
#
# The last rows time the headers that have an implementation split again with
# -DMEMDIAG_SEPARATE_IMPLEMENTATION (config.hpp): what a unit pays when one
# other unit includes memdiag/implementation.hpp; and the standard headers that
# memdiag.hpp includes with the switch, alone (the floor of that row).
#
# Usage: bench/include_time.sh [--runs N]   Environment: CXX (default g++).
set -euo pipefail
cd "$(dirname "$0")/.."
cxx=${CXX:-g++}
extra=()  # more compiler flags for the rows being timed
runs=3
[ "${1:-}" = --runs ] && runs=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# cpu_seconds FILE: median CPU time of $runs compiles of FILE.
cpu_seconds() {
  local i t times=()
  for ((i = 0; i < runs; i++)); do
    t=$( { /usr/bin/env time -f '%U %S' "$cxx" -std=c++17 -O2 -fsyntax-only -Iinclude "${extra[@]}" "$1" 2>&1 >/dev/null; } |
         tail -n 1 | awk '{ printf "%.2f", $1 + $2 }')
    times+=("$t")
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p"
}
# row LABEL INCLUDE...: one table row.
row() {
  local label=$1 f=$work/tu.cpp t
  shift
  printf '#include <%s>\n' "$@" >"$f"
  if ! "$cxx" -std=c++17 -fsyntax-only -Iinclude "${extra[@]}" "$f" 2>/dev/null; then
    echo "| $label | (does not compile alone here: a dependency is missing) | |"
    return
  fi
  t=$(cpu_seconds "$f")
  echo "| $label | $t | $(awk -v t="$t" -v r="$ref" 'BEGIN { printf "%.1fx", t / r }') |"
}

command -v /usr/bin/time >/dev/null 2>&1 || [ -x /usr/bin/time ] || { echo "bench/include_time.sh needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
echo "$cxx $("$cxx" -dumpversion), -std=c++17 -O2 -fsyntax-only, median of $runs, CPU s; $(date -u +%F), load $(cut -d' ' -f1 /proc/loadavg)"
echo
echo "| header | CPU s | vs reference |"
echo "|---|---:|---:|"
ref=1
printf '#include <vector>\n#include <string>\n#include <map>\n' >"$work/tu.cpp"
ref=$(cpu_seconds "$work/tu.cpp")
echo "| reference: \`<vector>\` + \`<string>\` + \`<map>\` | $ref | 1.0x |"
for h in $(cd include && find memdiag -name '*.hpp' -not -path 'memdiag/detail/*' | LC_ALL=C sort); do
  row "\`$h\`" "$h"
done
row "framework alone: \`<catch2/catch.hpp>\`" catch2/catch.hpp
row "framework alone: \`<gtest/gtest.h>\`" gtest/gtest.h
row "framework alone: \`<doctest/doctest.h>\`" doctest/doctest.h
row "framework alone: \`<benchmark/benchmark.h>\`" benchmark/benchmark.h
extra=(-DMEMDIAG_SEPARATE_IMPLEMENTATION)
for h in memdiag/budget.hpp memdiag/env.hpp memdiag/heap_profile.hpp memdiag/memdiag.hpp memdiag/http.hpp \
         memdiag/periodic_dump.hpp memdiag/testing/common.hpp memdiag/testing/catch2.hpp memdiag/testing/gtest.hpp \
         memdiag/testing/doctest.hpp; do
  row "\`$h\` with MEMDIAG_SEPARATE_IMPLEMENTATION" "$h"
done
# The floor under memdiag.hpp with the switch: the standard headers its common
# parts include (stats, tracker, the internal vector, the sampling path).
extra=()
# (With libstdc++ allocator.hpp takes std::allocator from <bits/allocator.h>, not <memory>.)
row "floor: the standard headers \`memdiag.hpp\` includes" string vector atomic limits \
  ctime cstdarg cstdio cstring cstdlib
row "\`<memory_resource>\` alone (what \`resource.hpp\` adds)" memory_resource
