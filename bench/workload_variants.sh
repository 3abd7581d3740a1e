# bench/workload_variants.sh - sourced by compare.sh, instructions.sh and
# where_time_goes.sh, so that all three measure the same builds.
#
# build_workload_variants DIR: bench/workload.cpp as DIR/plain, and with
# memdiag's global hook as DIR/count (counting), DIR/sample (sampling at
# 512 KiB) and DIR/exact (every allocation), with $CXX (default g++), -O2,
# frame pointers kept. Run from the repository's root.
build_workload_variants() {
  local dir=$1 cxx=${CXX:-g++}
  local flags=(-std=c++17 -O2 -g -fno-omit-frame-pointer -I"$PWD/include" -pthread)
  mkdir -p "$dir"
  echo "building the workload variants with $cxx"
  "$cxx" "${flags[@]}" bench/workload.cpp -o "$dir/plain"
  "$cxx" "${flags[@]}" -DMEMDIAG_WORKLOAD_HOOK bench/workload.cpp -o "$dir/count" -ldl
  "$cxx" "${flags[@]}" -DMEMDIAG_WORKLOAD_HOOK -DMEMDIAG_WORKLOAD_INTERVAL=524288 bench/workload.cpp -o "$dir/sample" -ldl
  "$cxx" "${flags[@]}" -DMEMDIAG_WORKLOAD_HOOK -DMEMDIAG_WORKLOAD_INTERVAL=1 bench/workload.cpp -o "$dir/exact" -ldl
}
