// bench/bench_stack.cpp - cost of capturing and symbolizing stacks.
//
// Build with -O2 -fno-omit-frame-pointer. Each capture benchmark first recurses
// to the wanted depth, so a capture of N frames walks N real frames.
// Target: 16 frames with the frame-pointer walk under 50 ns.
#include <memdiag/detail/symbols.hpp>
#include <memdiag/stack.hpp>

#include <benchmark/benchmark.h>

#include <cstdint>

namespace {

using addr_t = std::uintptr_t;

// Recurses `depth` frames, then runs the benchmark loop at the bottom.
__attribute__((noinline)) void at_depth(benchmark::State& state, int depth, std::size_t frames,
                                        memdiag::stack_method method) {
    if (depth > 0) {
        at_depth(state, depth - 1, frames, method);
        benchmark::ClobberMemory();  // not a tail call: this frame stays on the stack
        return;
    }
    addr_t out[256];
    std::size_t got = 0;
    for (auto _ : state) {
        got = memdiag::capture_stack(out, frames, 0, method);
        benchmark::DoNotOptimize(out);
        benchmark::DoNotOptimize(got);
    }
    if (got != frames) state.SkipWithError("captured fewer frames than asked");
    state.counters["frames"] = static_cast<double>(got);
}

void capture(benchmark::State& state, memdiag::stack_method method) {
    const auto frames = static_cast<std::size_t>(state.range(0));
    at_depth(state, static_cast<int>(frames), frames, method);
}

void BM_capture_frame_pointers(benchmark::State& state) { capture(state, memdiag::stack_method::frame_pointers); }
void BM_capture_automatic(benchmark::State& state) { capture(state, memdiag::stack_method::automatic); }
void BM_capture_unwinder(benchmark::State& state) { capture(state, memdiag::stack_method::unwinder); }

BENCHMARK(BM_capture_frame_pointers)->Arg(16)->Arg(32);
BENCHMARK(BM_capture_automatic)->Arg(16)->Arg(32);
BENCHMARK(BM_capture_unwinder)->Arg(16)->Arg(32);

__attribute__((noinline)) int symbolized_function(int x) {
    benchmark::DoNotOptimize(x);
    return x + 1;
}

// One address, symbol tables already read: object lookup, binary search, a copy
// of the cached demangled name.
void BM_symbolize_cached(benchmark::State& state) {
    memdiag::detail::symbolizer sym;
    const auto pc = reinterpret_cast<addr_t>(&symbolized_function) + 1;
    if (sym.function_name(pc).empty()) state.SkipWithError("symbol not found");
    for (auto _ : state) {
        auto name = sym.function_name(pc);
        benchmark::DoNotOptimize(name.data());
    }
}
BENCHMARK(BM_symbolize_cached);

// First lookup in a fresh symbolizer: list objects, map and sort the
// executable's symbol tables, demangle.
void BM_symbolize_cold(benchmark::State& state) {
    const auto pc = reinterpret_cast<addr_t>(&symbolized_function) + 1;
    for (auto _ : state) {
        memdiag::detail::symbolizer sym;
        auto name = sym.function_name(pc);
        benchmark::DoNotOptimize(name.data());
    }
}
BENCHMARK(BM_symbolize_cold)->Unit(benchmark::kMicrosecond);

void BM_list_loaded_modules(benchmark::State& state) {
    for (auto _ : state) {
        auto mods = memdiag::detail::list_loaded_modules();
        benchmark::DoNotOptimize(mods.data());
    }
}
BENCHMARK(BM_list_loaded_modules)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
