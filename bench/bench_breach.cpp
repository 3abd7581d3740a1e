// bench/bench_breach.cpp - what a breaching allocation costs under the callback
// and report policies (issue 13: each one used to build a symbolizer and re-read
// the ELF symbol tables, milliseconds per allocation).
//
//   *_over:      every allocation is over a max_allocations budget that was
//                crossed before the loop: the same crossing, acted on once.
//   *_crossing:  every allocation crosses max_peak_bytes anew (its free ends the
//                crossing): the whole breach path each time (stack walk, hook
//                frames stripped with the cached symbolizer, callback or
//                report), after the first breach built the symbolizer.
//
// The report benchmarks send stderr to /dev/null while they run.
#define MEMDIAG_REPLACE_GLOBAL_NEW
#include <benchmark/benchmark.h>
#include <memdiag/budget.hpp>
#include <memdiag/global_new.hpp>

#include <cstdio>

#include <fcntl.h>
#include <unistd.h>

namespace {

std::size_t g_callbacks = 0;
void count_breach(const memdiag::breach_info&, void*) { ++g_callbacks; }

// stderr goes to /dev/null while it lives (the report policy writes there).
class quiet_stderr {
public:
    quiet_stderr() {
        std::fflush(stderr);
        saved_ = dup(2);
        const int null = open("/dev/null", O_WRONLY);
        if (null >= 0) {
            dup2(null, 2);
            close(null);
        }
    }
    ~quiet_stderr() {
        std::fflush(stderr);
        if (saved_ >= 0) {
            dup2(saved_, 2);
            close(saved_);
        }
    }
    quiet_stderr(const quiet_stderr&) = delete;
    quiet_stderr& operator=(const quiet_stderr&) = delete;

private:
    int saved_ = -1;
};

memdiag::limits with_callback(memdiag::limits lim) { return lim.on_breach(&count_breach); }

void run(benchmark::State& state, const memdiag::limits& lim, memdiag::breach_policy policy,
         memdiag::scope_kind kind, std::size_t size) {
    memdiag::scoped_budget guard{lim, policy, kind, "bench"};
    delete new char[size];  // the first breach (builds the symbolizer) is not timed
    for (auto _ : state) {
        char* p = new char[size];
        benchmark::DoNotOptimize(p);
        delete[] p;
    }
    state.counters["breaches"] = static_cast<double>(guard.breaches());
}

void callback_over(benchmark::State& state) {
    run(state, with_callback(memdiag::limits{}.max_allocations(0)), memdiag::breach_policy::callback,
        memdiag::scope_kind::this_thread, 16);
}
void callback_crossing(benchmark::State& state) {
    run(state, with_callback(memdiag::limits{}.max_peak_bytes(64)), memdiag::breach_policy::callback,
        memdiag::scope_kind::this_thread, 128);
}
void callback_crossing_process(benchmark::State& state) {
    run(state, with_callback(memdiag::limits{}.max_peak_bytes(1 << 20)), memdiag::breach_policy::callback,
        memdiag::scope_kind::process, 2 << 20);
}
void report_over(benchmark::State& state) {
    quiet_stderr quiet;
    run(state, memdiag::limits{}.max_allocations(0), memdiag::breach_policy::report, memdiag::scope_kind::this_thread,
        16);
}
void report_crossing(benchmark::State& state) {
    quiet_stderr quiet;
    run(state, memdiag::limits{}.max_peak_bytes(64), memdiag::breach_policy::report,
        memdiag::scope_kind::this_thread, 128);
}

}  // namespace

BENCHMARK(callback_over);
BENCHMARK(callback_crossing);
BENCHMARK(callback_crossing_process);
BENCHMARK(report_over);
BENCHMARK(report_crossing);
BENCHMARK_MAIN();
