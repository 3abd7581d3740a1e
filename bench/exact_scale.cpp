// bench/exact_scale.cpp - the heap profiler in exact mode with default options
// on a large live set: N live allocations (default 10 million) spread over
// 4096 call paths, then a snapshot. Prints what the tables take (bytes, and
// per live sample), whether anything was dropped, the time per recorded
// allocation, and how long writing the pprof file takes. Issue 15 target 6.
//
//   exact_scale [N] [OUT.pb.gz]
//
// Plain program (no Google Benchmark); build with -O2 -fno-omit-frame-pointer.
#define MEMDIAG_REPLACE_GLOBAL_NEW
#include <memdiag/global_new.hpp>
#include <memdiag/heap_profile.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

volatile int g_sink = 0;

// 12 levels of two distinct callers: 4096 call paths.
void step(unsigned bits, int level, std::vector<char*>& keep, std::size_t n);
__attribute__((noinline)) void leaf(std::vector<char*>& keep, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
        keep.push_back(new char[16 + (i & 3) * 8]);
        keep.back()[0] = 'x';
    }
}
__attribute__((noinline)) void zero(unsigned bits, int level, std::vector<char*>& keep, std::size_t n) {
    step(bits, level, keep, n);
    g_sink = g_sink + 1;
}
__attribute__((noinline)) void one(unsigned bits, int level, std::vector<char*>& keep, std::size_t n) {
    step(bits, level, keep, n);
    g_sink = g_sink + 2;
}
__attribute__((noinline)) void step(unsigned bits, int level, std::vector<char*>& keep, std::size_t n) {
    if (level == 0) leaf(keep, n);
    else if ((bits & 1) != 0) one(bits >> 1, level - 1, keep, n);
    else zero(bits >> 1, level - 1, keep, n);
    g_sink = g_sink + 3;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

int main(int argc, char** argv) {
    const std::size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 10000000;
    const char* out = argc > 2 ? argv[2] : "exact_scale.pb.gz";
    const int levels = 12;
    const std::size_t paths = std::size_t{1} << levels;
    std::vector<char*> keep;
    keep.reserve(n);  // before start(): the vector's own block stays out of the figures
    if (!memdiag::heap_profiler::start(memdiag::profile_options{}.sample_interval(1))) return 1;
    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t p = 0; p < paths; ++p) step(static_cast<unsigned>(p), levels, keep, n / paths);
    const double alloc_s = seconds_since(t0);
    const memdiag::heap_profile_stats st = memdiag::heap_profiler::stats();
    const auto t1 = std::chrono::steady_clock::now();
    const memdiag::result r = memdiag::write_heap_profile(out);
    const double write_s = seconds_since(t1);
    std::printf("live allocations: %zu over %zu paths, recorded %llu, dropped: %llu, stacks %llu\n", keep.size(),
                paths, static_cast<unsigned long long>(st.live_samples),
                static_cast<unsigned long long>(st.dropped_samples), static_cast<unsigned long long>(st.stacks));
    std::printf("tables: %.1f MiB (cap %.0f MiB), %.1f bytes per live sample\n", static_cast<double>(st.table_bytes) / 1048576.0,
                static_cast<double>(st.max_table_bytes) / 1048576.0,
                st.live_samples != 0 ? static_cast<double>(st.table_bytes) / static_cast<double>(st.live_samples) : 0.0);
    std::printf("allocating: %.2f s (%.0f ns per recorded allocation); write_heap_profile: %.2f s (%s)\n", alloc_s,
                1e9 * alloc_s / static_cast<double>(keep.size()), write_s, r ? "ok" : r.message());
    for (char* p : keep) delete[] p;
    return st.dropped_samples == 0 && r ? 0 : 1;
}
