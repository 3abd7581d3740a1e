// bench/bench_hook.cpp - cost of the global hook and of budget scopes.
//
// This binary replaces operator new, so `new`/`delete` are hooked, while
// malloc/free (not replaced here) are the plain allocator the hook wraps: the
// pairs run side by side in one process. Instructions per pair:
// MEMDIAG_BENCH_ITERATIONS (fixed_iterations.hpp).
#define MEMDIAG_REPLACE_GLOBAL_NEW
#include <benchmark/benchmark.h>
#include <memdiag/budget.hpp>
#include <memdiag/global_new.hpp>
#include <memdiag/heap_profile.hpp>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "fixed_iterations.hpp"

namespace {

void plain_malloc_free(benchmark::State& state) {
    const auto size = static_cast<std::size_t>(state.range(0));
    for (auto _ : state) {
        void* p = std::malloc(size);
        benchmark::DoNotOptimize(p);
        std::free(p);
    }
}

void hooked_new_delete(benchmark::State& state) {
    const auto size = static_cast<std::size_t>(state.range(0));
    for (auto _ : state) {
        void* p = ::operator new(size);
        benchmark::DoNotOptimize(p);
        ::operator delete(p);
    }
}

void start_sampling(const benchmark::State&) {
    const memdiag::result r = memdiag::heap_profiler::start(memdiag::profile_options{}.sample_interval(512 * 1024));
    if (!r) {
        std::fprintf(stderr, "bench_hook: heap_profiler::start failed: %s\n", r.message());
        std::exit(1);
    }
}
void stop_sampling(const benchmark::State&) { memdiag::heap_profiler::stop(); }

void hooked_new_delete_in_budget(benchmark::State& state) {
    const auto size = static_cast<std::size_t>(state.range(0));
    memdiag::scoped_budget guard{memdiag::limits{}.max_bytes(~std::uint64_t{0} / 2)};
    for (auto _ : state) {
        void* p = ::operator new(size);
        benchmark::DoNotOptimize(p);
        ::operator delete(p);
    }
}

void budget_scope_enter_exit(benchmark::State& state) {
    const memdiag::limits lim = memdiag::limits{}.max_allocations(100);
    for (auto _ : state) {
        memdiag::scoped_budget guard{lim};
        benchmark::DoNotOptimize(&guard);
    }
}

void measure_empty(benchmark::State& state) {
    for (auto _ : state) benchmark::DoNotOptimize(memdiag::measure([] {}));
}

}  // namespace

BENCHMARK(plain_malloc_free)->Arg(32)->Arg(256)->Apply(memdiag_bench::fixed_iterations);
BENCHMARK(hooked_new_delete)->Arg(32)->Arg(256)->Apply(memdiag_bench::fixed_iterations);
// The heap profiler sampling at its default rate: the countdown on the fast path.
BENCHMARK(hooked_new_delete)
    ->Name("sampled_new_delete_512KiB")
    ->Arg(32)
    ->Setup(start_sampling)
    ->Teardown(stop_sampling)
    ->Apply(memdiag_bench::fixed_iterations);
BENCHMARK(hooked_new_delete_in_budget)->Arg(32)->Apply(memdiag_bench::fixed_iterations);
BENCHMARK(budget_scope_enter_exit);
BENCHMARK(measure_empty);

BENCHMARK_MAIN();
