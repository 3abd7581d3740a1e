// tests/integration/workload.hpp - allocation patterns with known figures,
// shared by the failing-case binaries of every framework. Functions stay out
// of line so their names show in heap snapshots.
#pragma once

#include <cstdlib>
#include <memory>
#include <vector>

namespace memdiag_it {

/// Keeps the optimizer from dropping an allocation whose result is unused.
inline volatile const void* g_sink = nullptr;
template <class T>
void keep(T&& value) {
    g_sink = &value;
    // The object may own the allocation (a unique_ptr): an asm that may read
    // all memory keeps the pointer inside it live, so no optimizer removes the
    // new/delete pair (C++14 allows that when the memory is unused).
    __asm__ volatile("" : : "g"(&value) : "memory");
}

/// Exactly n small allocations, all freed.
[[gnu::noinline]] inline void allocate_n(int n) {
    for (int i = 0; i < n; ++i) keep(std::make_unique<int>(i));
}

/// `n` allocations held together, then all freed: the peak grows with `n`, so
/// a test framework's own few bytes inside the test stay far below a baseline
/// tolerance (Catch2 v3 allocates a little per run, and not the same each run).
[[gnu::noinline]] inline void hold_n(int n) {
    std::vector<std::unique_ptr<int>> held;
    held.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) held.push_back(std::make_unique<int>(i));
    keep(held.data());
}

/// Three allocations, all freed.
[[gnu::noinline]] inline void allocate_three() { allocate_n(3); }

/// One 1000-byte vector, freed.
[[gnu::noinline]] inline void allocate_kilobyte() { keep(std::vector<char>(1000)); }

/// Leaks one 4000-byte block (kept reachable, so leak checkers stay quiet).
inline char* g_leaked = nullptr;
[[gnu::noinline]] inline void memdiag_it_leaky_function() {
    g_leaked = new char[4000];
    keep(g_leaked);
}

/// The workload size of the baseline cases: MEMDIAG_IT_WORK (default 100).
inline int work_size() {
    const char* v = std::getenv("MEMDIAG_IT_WORK");
    return v != nullptr ? std::atoi(v) : 100;
}

}  // namespace memdiag_it
