// bench/oom_snapshot_cost.cpp - what writing a heap snapshot costs in address
// space and time, for sizing the emergency reserve (heap_profile.hpp).
//
//     oom_snapshot_cost [SAMPLES [LEVELS]]     # defaults: 100000 samples, 14 levels
//
// Records SAMPLES live allocations (interval 1) spread over 2^LEVELS distinct
// stacks (each about 2 x LEVELS frames deep), then writes the snapshot twice
// and prints: the tables' figures, the reserve the profiler keeps for them, the
// growth of VmPeak during the first write (the address space a write needs,
// what `prlimit --as` limits) and the wall time of each write.
#define MEMDIAG_REPLACE_GLOBAL_NEW
#include <memdiag/global_new.hpp>
#include <memdiag/heap_profile.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <unistd.h>

#include "../tests/lib/call_paths.hpp"

namespace {

std::vector<void*>* g_keep = nullptr;

long vm_kib(const char* field) {
    FILE* f = std::fopen("/proc/self/status", "r");
    if (f == nullptr) return -1;
    char line[256];
    long v = -1;
    const std::size_t n = std::strlen(field);
    while (std::fgets(line, sizeof line, f) != nullptr)
        if (std::strncmp(line, field, n) == 0) v = std::atol(line + n + 1);
    std::fclose(f);
    return v;
}

struct keep_block {
    static void at_leaf() { g_keep->push_back(::operator new(64)); }
};

template <int L>
void run(unsigned samples) {
    for (unsigned i = 0; i < samples; ++i) memdiag_test::call_paths<L, keep_block>::pick(i);
}

}  // namespace

int main(int argc, char** argv) {
    const unsigned samples = argc > 1 ? static_cast<unsigned>(std::atol(argv[1])) : 100000;
    const int levels = argc > 2 ? std::atoi(argv[2]) : 14;
    std::vector<void*> keep;
    keep.reserve(samples);
    g_keep = &keep;
    memdiag::heap_profiler::start(memdiag::profile_options{}.sample_interval(1));
    memdiag::heap_profiler::set_dump_path("/dev/null/unused");  // keeps the emergency reserve
    switch (levels) {
        case 8: run<8>(samples); break;
        case 10: run<10>(samples); break;
        case 12: run<12>(samples); break;
        case 14: run<14>(samples); break;
        case 16: run<16>(samples); break;
        default: std::fprintf(stderr, "LEVELS: 8, 10, 12, 14 or 16\n"); return 2;
    }
    const memdiag::heap_profile_stats st = memdiag::heap_profiler::stats();
    std::printf("samples %llu, live %llu, stacks %llu, dropped %llu\n",
                static_cast<unsigned long long>(st.samples), static_cast<unsigned long long>(st.live_samples),
                static_cast<unsigned long long>(st.stacks), static_cast<unsigned long long>(st.dropped_samples));
    std::printf("emergency reserve: %zu KiB\n", memdiag::detail::heapprof::reserve_size() / 1024);
    char path[64];
    std::snprintf(path, sizeof path, "/tmp/oom_snapshot_cost.%ld.pb.gz", static_cast<long>(::getpid()));
    for (int round = 0; round < 2; ++round) {
        const long peak_before = vm_kib("VmPeak:"), size_before = vm_kib("VmSize:");
        const auto t0 = std::chrono::steady_clock::now();
        memdiag::result r = memdiag::write_heap_profile(path);
        const auto t1 = std::chrono::steady_clock::now();
        const long peak_after = vm_kib("VmPeak:");
        if (!r) {
            std::fprintf(stderr, "write failed: %s\n", r.message());
            return 1;
        }
        std::printf("write %d: %.1f ms, address space needed above VmSize: %ld KiB (VmPeak %ld -> %ld KiB)\n",
                    round + 1, std::chrono::duration<double, std::milli>(t1 - t0).count(),
                    peak_after - size_before, peak_before, peak_after);
    }
    std::remove(path);
    for (void* p : keep) ::operator delete(p);
    return 0;
}
