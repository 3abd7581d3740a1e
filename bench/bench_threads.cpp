// bench/bench_threads.cpp - cost per allocation of the global hook from 1 to 8
// threads (8 oversubscribe a 2-core machine): plain malloc/free, counting, and
// heap profiling at 512 KiB. Each thread frees and refills a ring of 256 blocks
// of 16 to 256 bytes, so frees follow allocations closely, as in request
// handling. The figure to read is CPU time per iteration (one free and one
// allocation), summed over threads: flat from 1 to 8 threads means no cache
// line is written by several threads on the hot path.
//
// This binary replaces operator new, so `new`/`delete` are hooked, while
// malloc/free (not replaced here) are the plain allocator the hook wraps.
#define MEMDIAG_REPLACE_GLOBAL_NEW
#include <benchmark/benchmark.h>
#include <memdiag/global_new.hpp>
#include <memdiag/heap_profile.hpp>

#include <cstddef>
#include <cstdio>
#include <cstdlib>

namespace {

constexpr std::size_t ring = 256;

std::size_t size_at(std::size_t i) noexcept { return 16 + (i * 37) % 241; }

template <class Alloc, class Free>
void churn(benchmark::State& state, Alloc alloc, Free release) {
    void* blocks[ring];
    for (std::size_t i = 0; i < ring; ++i) blocks[i] = alloc(size_at(i));
    std::size_t i = 0;
    for (auto _ : state) {
        const std::size_t slot = i % ring;
        release(blocks[slot]);
        blocks[slot] = alloc(size_at(i));
        benchmark::DoNotOptimize(blocks[slot]);
        ++i;
    }
    for (void* p : blocks) release(p);
}

void plain_malloc(benchmark::State& state) {
    churn(state, [](std::size_t n) { return std::malloc(n); }, [](void* p) { std::free(p); });
}

void hooked_new(benchmark::State& state) {
    churn(state, [](std::size_t n) { return ::operator new(n); }, [](void* p) { ::operator delete(p); });
}

void start_sampling(const benchmark::State&) {
    const memdiag::result r = memdiag::heap_profiler::start(memdiag::profile_options{}.sample_interval(512 * 1024));
    if (!r) {
        std::fprintf(stderr, "bench_threads: heap_profiler::start failed: %s\n", r.message());
        std::exit(1);
    }
}
void stop_sampling(const benchmark::State&) { memdiag::heap_profiler::stop(); }

}  // namespace

BENCHMARK(plain_malloc)->Threads(1)->Threads(2)->Threads(4)->Threads(8);
BENCHMARK(hooked_new)->Name("counting")->Threads(1)->Threads(2)->Threads(4)->Threads(8);
BENCHMARK(hooked_new)
    ->Name("sampling_512KiB")
    ->Setup(start_sampling)
    ->Teardown(stop_sampling)
    ->Threads(1)
    ->Threads(2)
    ->Threads(4)
    ->Threads(8);

BENCHMARK_MAIN();
