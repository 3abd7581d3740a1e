#!/usr/bin/env bash
# tests/readme_snippets.sh - every C++ block of README.md is one of the files in
# examples/readme/, verbatim, so the README shows only code the build compiles
# (examples/CMakeLists.txt builds examples/readme/*.cpp with -Werror).
# Also fails when a file in examples/readme/ is quoted nowhere.
# Exit 0: all blocks match; 1: a block differs (the diff against the closest
# file is printed).
set -uo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Blocks to $work/block-N.cpp with their README line.
awk -v dir="$work" '
    /^```cpp[[:space:]]*$/ { n++; file = sprintf("%s/block-%02d.cpp", dir, n); print NR > (file ".line"); inside = 1; next }
    /^```/ && inside { inside = 0; close(file); next }
    inside { print > file }
' README.md

failures=0 blocks=0
declare -A quoted
for block in "$work"/block-*.cpp; do
    [ -e "$block" ] || continue
    blocks=$((blocks + 1))
    line=$(cat "$block.line")
    match=
    for f in examples/readme/*.cpp; do
        if cmp -s "$block" "$f"; then match=$f; break; fi
    done
    if [ -n "$match" ]; then
        quoted[$match]=1
        echo "ok:   README.md:$line is $match"
        continue
    fi
    failures=$((failures + 1))
    best= best_n=-1
    for f in examples/readme/*.cpp; do  # closest: the most lines in common
        n=$(comm -12 <(sort "$block") <(sort "$f") | wc -l)
        if [ "$n" -gt "$best_n" ]; then best=$f best_n=$n; fi
    done
    echo "FAIL: README.md:$line: the C++ block is no file in examples/readme/ (closest: $best)"
    diff -u --label "README.md:$line" --label "$best" "$block" "$best" | sed 's/^/    /'
done
for f in examples/readme/*.cpp; do
    if [ -z "${quoted[$f]:-}" ]; then
        failures=$((failures + 1))
        echo "FAIL: $f is not quoted in README.md"
    fi
done
echo "readme_snippets: $blocks C++ blocks, $failures failures"
[ "$failures" -eq 0 ] && [ "$blocks" -gt 0 ]
