// bench/bench_heap_profile.cpp - what the heap profiler costs.
//
//   BM_alloc_free/<mode>   an allocation-heavy loop (mixed sizes, 256 live
//                          blocks in a ring) through operator new/delete
//   BM_containers/<mode>   strings in a std::map and vectors growing: the kind of
//                          code the workload targets are about
//     mode 0 plain         C malloc/free (alloc_free) or the hook with the
//                          profiler off (containers: see below)
//     mode 1 counting      the global hook counting, profiler off
//     mode 2 sampled       the profiler at the default interval (512 KiB)
//     mode 3 exact         the profiler recording every allocation with its stack
//   BM_write_snapshot      write_heap_profile with 100,000 live samples over
//                          1,024 distinct stacks (target: under 100 ms)
//   BM_heap_report         heap_report(10) over the same table
//
// The global hook is replaced in this binary, so BM_containers has no hook-free
// mode; compare its counting row with bench_containers' plain figures.
// Build with -O2 -fno-omit-frame-pointer (the stack walk's fast path).
#define MEMDIAG_REPLACE_GLOBAL_NEW
#include <memdiag/global_new.hpp>
#include <memdiag/heap_profile.hpp>

#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

namespace {

const char* const mode_names[] = {"plain", "counting", "sampled", "exact"};

/// Starts the profiler for modes 2 and 3; stops it when the benchmark ends.
struct profiler_mode {
    explicit profiler_mode(benchmark::State& state) : mode(state.range(0)) {
        state.SetLabel(mode_names[mode]);
        if (mode >= 2) {
            memdiag::result r = memdiag::heap_profiler::start(
                memdiag::profile_options{}.sample_interval(mode == 2 ? memdiag::default_sample_interval : 1));
            if (!r) state.SkipWithError(r.message());
        }
    }
    ~profiler_mode() { memdiag::heap_profiler::stop(); }
    std::int64_t mode;
};

// Sizes cycle through a fixed mix: mostly small, some medium, a few large.
constexpr std::size_t size_mix[16] = {16, 24, 32, 48, 64, 96, 128, 24, 256, 32, 512, 40, 1024, 64, 4096, 200};

void BM_alloc_free(benchmark::State& state) {
    profiler_mode m(state);
    void* ring[256] = {};
    std::size_t i = 0;
    for (auto _ : state) {
        for (int k = 0; k < 1000; ++k, ++i) {
            void*& slot = ring[i & 255];
            const std::size_t n = size_mix[i & 15];
            if (m.mode == 0) {
                std::free(slot);
                slot = std::malloc(n);
            } else {
                ::operator delete(slot);
                slot = ::operator new(n);
            }
            benchmark::DoNotOptimize(slot);
        }
    }
    for (void*& p : ring) {
        if (m.mode == 0) std::free(p);
        else ::operator delete(p);
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * 1000);
}
BENCHMARK(BM_alloc_free)->DenseRange(0, 3);

void BM_containers(benchmark::State& state) {
    profiler_mode m(state);
    std::size_t allocations = 0;
    for (auto _ : state) {
        std::map<std::string, std::vector<int>> index;
        for (int k = 0; k < 200; ++k) {
            std::string key = "key-with-a-long-prefix-" + std::to_string(k * 7919 % 1000);
            std::vector<int>& v = index[key];
            for (int j = 0; j < 20; ++j) v.push_back(j);
        }
        benchmark::DoNotOptimize(index);
        allocations += 200 * 7;  // key + node + vector growth (1,2,4,8,16,32): roughly
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(allocations));
}
BENCHMARK(BM_containers)->DenseRange(1, 3);

// ---- snapshots -----------------------------------------------------------------

constexpr int live_samples = 100000;
constexpr int stack_bits = 10;  // 2^10 distinct stacks

std::vector<void*>* g_blocks = nullptr;

// Two near-identical functions: a path of `bits` choices between them gives
// 2^bits distinct stacks, as a real program's many call paths would.
__attribute__((noinline)) void branch_a(unsigned path, int bits, int count);
__attribute__((noinline)) void branch_b(unsigned path, int bits, int count);

__attribute__((noinline)) void leaf_alloc(int count) {
    for (int i = 0; i < count; ++i) g_blocks->push_back(::operator new(64 + static_cast<std::size_t>(i % 4) * 32));
}
void branch_a(unsigned path, int bits, int count) {
    if (bits == 0) leaf_alloc(count);
    else if (path & 1) branch_a(path >> 1, bits - 1, count);
    else branch_b(path >> 1, bits - 1, count);
    benchmark::ClobberMemory();  // not a tail call: every level keeps its frame
}
void branch_b(unsigned path, int bits, int count) {
    if (bits == 0) leaf_alloc(count);
    else if (path & 1) branch_a(path >> 1, bits - 1, count);
    else branch_b(path >> 1, bits - 1, count);
    benchmark::ClobberMemory();
}

/// Fills the profiler with 100,000 live samples over 1,024 stacks (exact mode).
void fill_table() {
    static bool filled = false;
    if (filled) return;
    filled = true;
    static std::vector<void*> blocks;
    blocks.reserve(live_samples);
    g_blocks = &blocks;
    memdiag::heap_profiler::start(memdiag::profile_options{}.sample_interval(1));
    const int per_stack = live_samples >> stack_bits;
    for (unsigned path = 0; path < (1u << stack_bits); ++path)
        branch_a(path, stack_bits, per_stack + (path < (live_samples & ((1 << stack_bits) - 1)) ? 1 : 0));
    memdiag::heap_profiler::stop();  // the table stays, frozen
}

void BM_write_snapshot(benchmark::State& state) {
    fill_table();
    const memdiag::heap_profile_stats st = memdiag::heap_profiler::stats();
    char path[64];
    std::snprintf(path, sizeof path, "/tmp/memdiag-bench-heap-%d.pb.gz", static_cast<int>(::getpid()));
    for (auto _ : state) {
        memdiag::result r = memdiag::write_heap_profile(path);
        if (!r) state.SkipWithError(r.message());
    }
    std::remove(path);
    state.counters["live_samples"] = static_cast<double>(st.live_samples);
    state.counters["stacks"] = static_cast<double>(st.stacks);
}
BENCHMARK(BM_write_snapshot)->Unit(benchmark::kMillisecond)->MinTime(2.0);

void BM_heap_report(benchmark::State& state) {
    fill_table();
    for (auto _ : state) benchmark::DoNotOptimize(memdiag::heap_report(10));
}
BENCHMARK(BM_heap_report)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
