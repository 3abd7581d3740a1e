// bench/fixed_iterations.hpp - a fixed iteration count for instruction counting.
//
// Under callgrind or cachegrind, Google Benchmark's adaptive iteration count
// hides how many times the loop ran. With MEMDIAG_BENCH_ITERATIONS=N set, each
// benchmark given ->Apply(memdiag_bench::fixed_iterations) runs its loop
// exactly N times in one call, so instructions per iteration are the
// benchmark function's inclusive count (callgrind --toggle-collect) over N.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdlib>

namespace memdiag_bench {

/// Sets the iteration count from MEMDIAG_BENCH_ITERATIONS when it is a positive number.
inline void fixed_iterations(benchmark::internal::Benchmark* b) {
    const char* v = std::getenv("MEMDIAG_BENCH_ITERATIONS");
    if (v == nullptr) return;
    const long long n = std::atoll(v);
    if (n > 0) b->Iterations(n);
}

}  // namespace memdiag_bench
