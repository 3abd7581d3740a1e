// tests/lib/call_paths.hpp - many distinct stacks on demand, for the programs
// that fill a profiler's stack table (tests/oom, bench/oom_snapshot_cost).
//
// call_paths<L, Leaf>::pick(bits) reaches Leaf::at_leaf() through one of 2^L
// call paths: each level calls the next through one of two frames, chosen by
// one bit of `bits`. Every level keeps its frame (no inlining, no tail calls).
#pragma once

namespace memdiag_test {

template <int L, class Leaf>
struct call_paths {
    __attribute__((noinline)) static void left(unsigned bits) { call_paths<L - 1, Leaf>::pick(bits); }
    __attribute__((noinline)) static void right(unsigned bits) { call_paths<L - 1, Leaf>::pick(bits); }
    __attribute__((noinline)) static void pick(unsigned bits) {
        if (bits & 1u) left(bits >> 1);
        else right(bits >> 1);
        __asm__ volatile("" ::: "memory");  // no tail call: every level keeps its frame
    }
};

template <class Leaf>
struct call_paths<0, Leaf> {
    __attribute__((noinline)) static void pick(unsigned) {
        Leaf::at_leaf();
        __asm__ volatile("" ::: "memory");
    }
};

}  // namespace memdiag_test
