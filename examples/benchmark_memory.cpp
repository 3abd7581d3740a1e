// examples/benchmark_memory.cpp - allocations per iteration in Google Benchmark.
//
//   ./benchmark_memory                          # console: allocs/iter, bytes/iter, peak columns
//   ./benchmark_memory --benchmark_format=json  # the same counters, plus allocs_per_iter, max_bytes_used
#define MEMDIAG_REPLACE_GLOBAL_NEW  // count every operator new of this program
#include <memdiag/global_new.hpp>

#include <memdiag/benchmark.hpp>

#include <memory>
#include <string>
#include <vector>

// Exactly three allocations per iteration, all freed.
static void BM_three_allocations(benchmark::State& state) {
    for (auto _ : state) {
        auto a = std::make_unique<int>(1);
        auto b = std::make_unique<long>(2);
        auto c = std::make_unique<double>(3);
        benchmark::DoNotOptimize(a.get());
        benchmark::DoNotOptimize(b.get());
        benchmark::DoNotOptimize(c.get());
    }
}
BENCHMARK(BM_three_allocations);

// The same body, counted exactly inside the loop (every run, not only the memory run).
static void BM_three_allocations_exact(benchmark::State& state) {
    memdiag::benchmark_allocations counted{state};
    for (auto _ : state) {
        auto a = std::make_unique<int>(1);
        auto b = std::make_unique<long>(2);
        auto c = std::make_unique<double>(3);
        benchmark::DoNotOptimize(a.get());
        benchmark::DoNotOptimize(b.get());
        benchmark::DoNotOptimize(c.get());
    }
}
BENCHMARK(BM_three_allocations_exact);

// No allocation at all: the loop reuses a reserved buffer.
static void BM_reuse_buffer(benchmark::State& state) {
    std::string buffer;
    buffer.reserve(256);
    for (auto _ : state) {
        buffer.assign(100, 'x');
        benchmark::DoNotOptimize(buffer.data());
    }
}
BENCHMARK(BM_reuse_buffer);

MEMDIAG_BENCHMARK_MAIN();  // instead of BENCHMARK_MAIN(): registers memdiag's memory manager
