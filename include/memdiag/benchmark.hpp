// memdiag/benchmark.hpp - allocation figures in Google Benchmark runs.
//
// One line, instead of BENCHMARK_MAIN():
//
//     MEMDIAG_BENCHMARK_MAIN();
//
// registers memdiag's benchmark::MemoryManager and prints its figures as
// columns of the console output, next to the timings:
//
//     BM_parse    412 ns    411 ns   1702154 allocs/iter=3 bytes/iter=96 peak=64
//
// and in the JSON output (allocs_per_iter, max_bytes_used, as Google
// Benchmark writes them). With your own main(), call
// memdiag::register_benchmark_memory_manager() and pass a
// memdiag::benchmark_console_reporter to RunSpecifiedBenchmarks for the columns.
//
// How it counts. Google Benchmark runs each benchmark once more, after the
// timed runs, for min(16, iterations) iterations between the manager's
// Start() and Stop(); memdiag counts that thread's allocations there
// (global operator new: define MEMDIAG_REPLACE_GLOBAL_NEW in one file).
// Timings are unaffected. The figures include what the runner itself
// allocates in that run: one block (its thread manager) per run, plus one
// when the benchmark has arguments, i.e. 1/16 or 2/16 of an allocation per
// iteration. For exact per-iteration figures of the loop alone, put a
// memdiag::benchmark_allocations in the benchmark body (it counts every run,
// so it slows the timed runs down a little).
//
// Written for Google Benchmark 1.7 (MemoryManager::Stop(Result*) is still
// pure there; Run::memory_result is a pointer).
#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "budget.hpp"
#include "config.hpp"
#include "stats.hpp"

#if MEMDIAG_POSIX
#include <unistd.h>  // isatty: colors only on a terminal, as Google Benchmark does
#endif

namespace memdiag {

/// A benchmark::MemoryManager counting the calling thread's allocations
/// between Start() and Stop() with a memdiag scope.
class benchmark_memory_manager : public ::benchmark::MemoryManager {
public:
    benchmark_memory_manager() = default;
    // noexcept like the base's: a scope without limits never throws on closing.
    ~benchmark_memory_manager() noexcept { scope_.reset(); }
    /// Starts counting this thread's allocations.
    void Start() { scope_.emplace(limits{}, "benchmark memory run"); }
    /// Stops counting and fills in Google Benchmark's result.
    void Stop(Result& result) {
        if (!scope_) return;
        last_ = scope_->used();
        scope_.reset();
        result.num_allocs = static_cast<int64_t>(last_.allocations);
        result.max_bytes_used = static_cast<int64_t>(last_.peak_live_bytes);
        result.total_allocated_bytes = static_cast<int64_t>(last_.bytes_allocated);
        result.net_heap_growth = static_cast<int64_t>(last_.live_bytes);
    }
    // Declared without `override`: later Google Benchmark versions drop this
    // pointer form, and then it is simply an unused function.
    /// The pointer form Google Benchmark 1.7 still declares pure.
    void Stop(Result* result) {
        if (result != nullptr) Stop(*result);
    }
    /// The figures of the last Start()/Stop() pair.
    const allocation_stats& last() const noexcept { return last_; }

private:
    std::optional<scoped_budget> scope_;
    allocation_stats last_;
};

/// Registers a process-wide benchmark_memory_manager with Google Benchmark
/// (once) and returns it.
inline benchmark_memory_manager& register_benchmark_memory_manager() {
    static benchmark_memory_manager manager;
    static const bool registered = (::benchmark::RegisterMemoryManager(&manager), true);
    (void)registered;
    return manager;
}

/// Adds the memory run's figures to a run as counters: allocs/iter,
/// bytes/iter and peak (bytes, binary prefixes). Runs without figures are left alone.
inline void add_memory_counters(::benchmark::BenchmarkReporter::Run& run) {
    if (run.memory_result == nullptr || run.run_type != ::benchmark::BenchmarkReporter::Run::RT_Iteration) return;
    const ::benchmark::MemoryManager::Result& m = *run.memory_result;
    // The runner divides num_allocs by its memory-run iterations; recover them
    // to give bytes per iteration too.
    const double iterations = run.allocs_per_iter > 0 ? static_cast<double>(m.num_allocs) / run.allocs_per_iter : 0;
    // Unknown figures hold the tombstone (INT64_MAX); the library does not
    // export TombstoneValue itself, so compare with the value.
    const bool known = m.total_allocated_bytes >= 0 && m.total_allocated_bytes != INT64_MAX;
    const double bytes = known && iterations > 0 ? static_cast<double>(m.total_allocated_bytes) / iterations : 0;
    // A benchmark_allocations in the body already gave exact figures: keep them.
    if (run.counters.count("allocs/iter") != 0) return;
    using counter = ::benchmark::Counter;
    run.counters["allocs/iter"] = counter(run.allocs_per_iter);
    run.counters["bytes/iter"] = counter(bytes, counter::kDefaults, counter::kIs1024);
    run.counters["peak"] = counter(static_cast<double>(m.max_bytes_used), counter::kDefaults, counter::kIs1024);
}

/// Google Benchmark's console reporter with the memory figures as columns.
class benchmark_console_reporter : public ::benchmark::ConsoleReporter {
public:
    using ::benchmark::ConsoleReporter::ConsoleReporter;
    /// Adds the memory counters, then prints as the console reporter does.
    void ReportRuns(const std::vector<Run>& runs) override {
        std::vector<Run> with_memory = runs;
        for (Run& r : with_memory) add_memory_counters(r);
        ::benchmark::ConsoleReporter::ReportRuns(with_memory);
    }
};

/// Google Benchmark's JSON reporter with the same counters added.
class benchmark_json_reporter : public ::benchmark::JSONReporter {
public:
    /// Adds the memory counters, then prints as the JSON reporter does.
    void ReportRuns(const std::vector<Run>& runs) override {
        std::vector<Run> with_memory = runs;
        for (Run& r : with_memory) add_memory_counters(r);
        ::benchmark::JSONReporter::ReportRuns(with_memory);
    }
};

namespace detail {
/// The value of --NAME=VALUE in argv (fallback when absent). Google Benchmark
/// does not export its flags, so the display options are read back here.
inline std::string benchmark_flag(int argc, char** argv, const char* name, const char* fallback) {
    std::string value = fallback;
    const std::string flag = std::string("--") + name + "=";
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a.compare(0, flag.size(), flag) == 0) value = a.substr(flag.size());
    }
    return value;
}
inline bool flag_true(const std::string& v) { return v == "true" || v == "yes" || v == "1" || v == "on"; }

/// The console options Google Benchmark would use for these flags.
inline ::benchmark::ConsoleReporter::OutputOptions console_options(int argc, char** argv) {
    int options = ::benchmark::ConsoleReporter::OO_None;
    const std::string color = benchmark_flag(argc, argv, "benchmark_color", "auto");
    bool use_color = flag_true(color);
#if MEMDIAG_POSIX
    const char* term = std::getenv("TERM");
    if (color == "auto") use_color = isatty(1) != 0 && term != nullptr && std::strcmp(term, "dumb") != 0;
#endif
    if (use_color) options |= ::benchmark::ConsoleReporter::OO_Color;
    if (flag_true(benchmark_flag(argc, argv, "benchmark_counters_tabular", "false")))
        options |= ::benchmark::ConsoleReporter::OO_Tabular;
    return static_cast<::benchmark::ConsoleReporter::OutputOptions>(options);
}
}  // namespace detail

/// Runs the registered benchmarks with memdiag's memory manager and a display
/// reporter that shows its figures (console or JSON; other formats as Google
/// Benchmark prints them). What MEMDIAG_BENCHMARK_MAIN() calls.
inline int run_benchmarks_with_memory(int argc, char** argv) {
    // Read the display flags before Initialize() consumes them.
    const std::string format = detail::benchmark_flag(argc, argv, "benchmark_format", "console");
    const auto console = detail::console_options(argc, argv);
    ::benchmark::Initialize(&argc, argv);
    if (::benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    register_benchmark_memory_manager();
    if (format == "console") {
        benchmark_console_reporter display(console);
        ::benchmark::RunSpecifiedBenchmarks(&display);
    } else if (format == "json") {
        benchmark_json_reporter display;
        ::benchmark::RunSpecifiedBenchmarks(&display);
    } else {
        ::benchmark::RunSpecifiedBenchmarks();
    }
    ::benchmark::Shutdown();
    return 0;
}

/// Exact allocation figures of a benchmark's loop, as counters of its state:
/// allocs/iter, bytes/iter (averaged over iterations) and peak. Declare it
/// first thing in the body; it counts until the body returns.
///
///     static void BM_parse(benchmark::State& state) {
///         memdiag::benchmark_allocations counted{state};
///         for (auto _ : state) parse(input);
///     }
class benchmark_allocations {
public:
    /// Starts counting this thread's allocations for state.
    explicit benchmark_allocations(::benchmark::State& state) : state_(state), scope_(limits{}, "benchmark body") {}
    /// Sets the counters.
    ~benchmark_allocations() {
        const allocation_stats u = scope_.used();
        scope_.finish();
        using counter = ::benchmark::Counter;
        state_.counters["allocs/iter"] = counter(static_cast<double>(u.allocations), counter::kAvgIterations);
        state_.counters["bytes/iter"] =
            counter(static_cast<double>(u.bytes_allocated), counter::kAvgIterations, counter::kIs1024);
        state_.counters["peak"] = counter(static_cast<double>(u.peak_live_bytes), counter::kDefaults, counter::kIs1024);
    }
    benchmark_allocations(const benchmark_allocations&) = delete;
    benchmark_allocations& operator=(const benchmark_allocations&) = delete;

private:
    ::benchmark::State& state_;
    scoped_budget scope_;
};

}  // namespace memdiag

/// A main() for Google Benchmark with memdiag's memory figures (instead of BENCHMARK_MAIN()).
#define MEMDIAG_BENCHMARK_MAIN()                                                              \
    int main(int argc, char** argv) { return ::memdiag::run_benchmarks_with_memory(argc, argv); } \
    int main(int, char**)
