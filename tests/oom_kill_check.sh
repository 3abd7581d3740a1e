#!/usr/bin/env bash
# tests/oom_kill_check.sh OOM_PROGRAMS - a real OOM kill leaves watermark
# snapshots. Creates a child memory cgroup with a 64 MiB limit (cgroup v1:
# memory.limit_in_bytes under the memory controller's hierarchy; v2: memory.max
# in a directory under the process's cgroup), moves `oom_programs leak forever`
# into it with MEMDIAG_DUMP_AT=80%,90%,95% (the limit comes from the cgroup, via
# env::collect().effective_limit()), lets the kernel kill it, and checks: death
# by SIGKILL (status 137), the 80% and 90% snapshots exist, the last one opens
# in go tool pprof and leak_site holds >= 80% of in-use bytes. The cgroup is
# removed afterwards. Exit 77 (with the reason) when no cgroup can be made:
# not root, no memory controller, read-only hierarchy. Exit 77 too without go.
set -uo pipefail
[ $# -eq 1 ] || { echo "usage: $0 OOM_PROGRAMS_BINARY" >&2; exit 2; }
bin=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib/check_common.sh"
skip() { echo "SKIP: $*" >&2; exit 77; }
limit_mib=64

[ "$(id -u)" = 0 ] || skip "creating a memory cgroup needs root"
[ -r /proc/self/cgroup ] || skip "/proc/self/cgroup is missing: not Linux or no cgroups"

# Find where to make the child cgroup: v1 memory controller first, else v2.
cg_version="" cg_parent=""
v1_path=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ { print $3; exit }' /proc/self/cgroup)
v1_mount=$(awk '$3 == "cgroup" && $4 ~ /(^|,)memory(,|$)/ { print $2; exit }' /proc/mounts)
v2_path=$(awk -F: '$1 == "0" && $2 == "" { print $3; exit }' /proc/self/cgroup)
v2_mount=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
if [ -n "$v1_path" ] && [ -n "$v1_mount" ] && [ -d "$v1_mount$v1_path" ]; then
    cg_version=1 cg_parent=$v1_mount$v1_path
elif [ -n "$v2_path" ] && [ -n "$v2_mount" ] && [ -d "$v2_mount$v2_path" ]; then
    grep -qw memory "$v2_mount$v2_path/cgroup.controllers" 2>/dev/null ||
        skip "cgroup v2 at $v2_mount$v2_path has no memory controller"
    cg_version=2 cg_parent=$v2_mount$v2_path
else
    skip "no cgroup v1 memory hierarchy and no cgroup v2 mount found (/proc/mounts)"
fi
require_go

work=$(mktemp -d "${TMPDIR:-/tmp}/memdiag-oom-kill.XXXXXX")
cg=$cg_parent/memdiag-oom-kill-$$
cleanup() {
    if [ -d "$cg" ]; then
        # The killed process may take a moment to leave the group.
        for _ in 1 2 3 4 5 6 7 8 9 10; do rmdir "$cg" 2>/dev/null && break; sleep 0.2; done
        [ -d "$cg" ] && echo "warning: could not remove $cg" >&2
    fi
    rm -rf "$work"
}
trap cleanup EXIT
export GOCACHE="${GOCACHE:-$work/gocache}" HOME="${HOME:-$work}"

mkdir "$cg" 2>"$work/mkdir.txt" || skip "cannot create $cg: $(cat "$work/mkdir.txt")"
limit=$((limit_mib * 1024 * 1024))
if [ $cg_version = 1 ]; then
    echo "$limit" >"$cg/memory.limit_in_bytes" 2>/dev/null || skip "cannot write $cg/memory.limit_in_bytes"
    # With swap, the group would swap instead of being killed: cap memory+swap too.
    [ -e "$cg/memory.memsw.limit_in_bytes" ] && echo "$limit" >"$cg/memory.memsw.limit_in_bytes"
else
    if [ ! -e "$cg/memory.max" ]; then
        echo +memory >"$cg_parent/cgroup.subtree_control" 2>/dev/null ||
            skip "cannot enable the memory controller for children of $cg_parent (processes live there?)"
    fi
    echo "$limit" >"$cg/memory.max" 2>/dev/null || skip "cannot write $cg/memory.max"
    [ -e "$cg/memory.swap.max" ] && echo 0 >"$cg/memory.swap.max"
fi
echo "cgroup v$cg_version: $cg, limit $limit_mib MiB"

mkdir "$work/snaps"
# The shell joins the group, then becomes the leak (same pid, so it is inside).
# Without MALLOC_PERTURB_ (meson test sets it): glibc's calloc then fills even
# fresh mmapped blocks, so the profiler's tables (about 20 MiB, normally never
# touched) would be resident and the kill would come before the 80% level.
env -u MALLOC_PERTURB_ MEMDIAG_DUMP_AT=80%,90%,95% MEMDIAG_DUMP_DIR=$work/snaps \
    sh -c 'echo $$ >"$1/cgroup.procs" && exec "$2" leak forever' sh "$cg" "$bin" >"$work/out.txt" 2>"$work/err.txt"
rc=$?
[ $rc -eq 137 ] && pass "killed by SIGKILL (status 137): the kernel's OOM killer" ||
    fail "exit status $rc, not 137: $(tail -3 "$work/err.txt")"
grep -q "heap snapshots at 80%, 90%, 95% of $limit_mib MiB (cgroup_v${cg_version}_memory" "$work/err.txt" &&
    pass "the limit came from the cgroup" || fail "start line: $(head -1 "$work/err.txt")"
if [ $cg_version = 1 ] && [ -r "$cg/memory.oom_control" ]; then
    echo "memory.oom_control: $(tr '\n' ' ' <"$cg/memory.oom_control")"
fi
for pct in 80 90; do
    ls "$work/snaps"/heap.*."$pct".pb.gz >/dev/null 2>&1 && pass "heap.<pid>.$pct.pb.gz written before the kill" ||
        fail "no $pct% snapshot: $(ls "$work/snaps")"
done
last=$(ls "$work/snaps"/heap.*.pb.gz 2>/dev/null | sort -t. -k3 -n | tail -1)
echo "snapshots: $(ls "$work/snaps" | tr '\n' ' ')(last: ${last##*/})"
pprof_share "last snapshot" "$last" leak_site
if [ "$failures" -ne 0 ]; then
    cat "$work/err.txt" >&2
    echo "$failures check(s) failed" >&2
    exit 1
fi
echo "OOM kill checks passed ($passes)"
