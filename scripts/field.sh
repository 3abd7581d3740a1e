#!/usr/bin/env bash
# scripts/field.sh - memdiag on real projects' own test suites (field tests).
#
#   scripts/field.sh --tinyxml2   TinyXML-2's xmltest (seconds; CI runs it)
#   scripts/field.sh --yaml-cpp   yaml-cpp's GoogleTest suite: the listener and a
#                                 default budget within 1.5x of the plain time,
#                                 snapshots of failing tests, stacks never wrong
#                                 (builds yaml-cpp once, about 8 minutes on two
#                                 idle cores: not for every CI run)
#   scripts/field.sh --all        both
#
# The sources come from ../shared/third_party/ (MEMDIAG_THIRD_PARTY overrides);
# yaml-cpp's build is cached in $MEMDIAG_FIELD_CACHE/yaml-cpp (default
# build/field/yaml-cpp). Exit: 0 passed, 1 a check failed, 77 cannot run here
# (the reason on stderr), 2 usage.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
usage() { sed -n '4,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -eq 1 ] || usage
case $1 in
    --tinyxml2) exec bash "$root/tests/field/tinyxml2.sh" ;;
    --yaml-cpp) exec bash "$root/tests/field/yaml_cpp.sh" ;;
    --all)
        bash "$root/tests/field/tinyxml2.sh"; a=$?
        bash "$root/tests/field/yaml_cpp.sh"; b=$?
        for rc in $a $b; do [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ] && exit 1; done
        [ $a -eq 77 ] && [ $b -eq 77 ] && exit 77
        exit 0 ;;
    *) usage ;;
esac
