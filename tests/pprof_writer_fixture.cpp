// tests/pprof_writer_fixture.cpp - writes a heap snapshot of known content for
// tests/pprof_check.sh, which reads it back with the real readers.
//
//   pprof_writer_fixture OUTDIR INTERVAL
//
// Writes OUTDIR/heap.pb.gz, OUTDIR/heap.txt (text report) and OUTDIR/heap.folded
// (collapsed stacks) for three sites whose stacks are real return addresses in
// this program's functions:
//   main -> fixture_alloc_a                    4 objects / 4 MiB, all in use
//   main -> fixture_alloc_b                    16 objects / 64 KiB, all in use
//   main -> fixture_alloc_b -> fixture_alloc_c 10 objects / 1000 B, 3 / 300 B in use
// The figures are the recorded ones; INTERVAL is written as the sampling
// interval, so the writer scales them when it is above 1.
//
// Also writes OUTDIR/large.pb.gz (interval 1): 5000 samples with random stacks
// of 1..16 of those frames; sample i allocated one object of 64 * (i % 10 + 1)
// bytes, still in use when i is even. Totals: 5000 objects / 1760000 bytes
// allocated, 2500 objects / 800000 bytes in use.
#include <memdiag/snapshot/pprof.hpp>
#include <memdiag/snapshot/report.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

struct site {
    std::uintptr_t frames[4];
    std::size_t depth = 0;
};
site sites[3];
// Distinct stores keep identical-code folding (GCC's -fipa-icf) from merging
// the fixture functions into one.
volatile int fixture_marker;

}  // namespace

// noclone keeps GCC from renaming the functions "... [clone .constprop.0]".
#if defined(__clang__)
#define FIXTURE_NOINLINE __attribute__((noinline))
#else
#define FIXTURE_NOINLINE __attribute__((noinline, noclone))
#endif

// Returns the address its caller continues at: a return address inside the caller.
FIXTURE_NOINLINE std::uintptr_t fixture_here() {
    return reinterpret_cast<std::uintptr_t>(__builtin_return_address(0));
}

FIXTURE_NOINLINE void fixture_alloc_c(site& s) {
    fixture_marker = 3;
    s.frames[s.depth++] = fixture_here();
    s.frames[s.depth++] = reinterpret_cast<std::uintptr_t>(__builtin_return_address(0));
    asm volatile("" ::: "memory");  // keep the calls from becoming tail calls
}

FIXTURE_NOINLINE void fixture_alloc_b(site& s, bool deeper) {
    fixture_marker = 2;
    if (deeper) {
        fixture_alloc_c(s);
    } else {
        s.frames[s.depth++] = fixture_here();
    }
    s.frames[s.depth++] = reinterpret_cast<std::uintptr_t>(__builtin_return_address(0));
    asm volatile("" ::: "memory");
}

FIXTURE_NOINLINE void fixture_alloc_a(site& s) {
    fixture_marker = 1;
    s.frames[s.depth++] = fixture_here();
    s.frames[s.depth++] = reinterpret_cast<std::uintptr_t>(__builtin_return_address(0));
    asm volatile("" ::: "memory");
}

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s OUTDIR INTERVAL\n", argv[0]);
        return 2;
    }
    std::string dir = argv[1];
    std::uint64_t interval = std::strtoull(argv[2], nullptr, 10);

    fixture_alloc_a(sites[0]);
    fixture_alloc_b(sites[1], false);
    fixture_alloc_b(sites[2], true);
    const memdiag::snapshot::heap_sample samples[3] = {
        {sites[0].frames, sites[0].depth, 4, 4 << 20, 4, 4 << 20},
        {sites[1].frames, sites[1].depth, 16, 64 << 10, 16, 64 << 10},
        {sites[2].frames, sites[2].depth, 10, 1000, 3, 300},
    };
    memdiag::snapshot::heap_view view{samples, 3, interval, 1700000000123456789};

    memdiag::result r = memdiag::snapshot::write_pprof(view, (dir + "/heap.pb.gz").c_str());
    if (!r) {
        std::fprintf(stderr, "write_pprof: %s\n", r.message());
        return 1;
    }
    memdiag::detail::internal_string text = memdiag::snapshot::text_report(view, 10);
    r = memdiag::snapshot::write_text_file((dir + "/heap.txt").c_str(), text.data(), text.size());
    if (!r) {
        std::fprintf(stderr, "write_text_file: %s\n", r.message());
        return 1;
    }
    memdiag::detail::internal_string folded = memdiag::snapshot::collapsed_stacks(view);
    r = memdiag::snapshot::write_text_file((dir + "/heap.folded").c_str(), folded.data(), folded.size());
    if (!r) {
        std::fprintf(stderr, "write_text_file: %s\n", r.message());
        return 1;
    }

    // The large profile: every stack frame is one of the real return addresses.
    std::uintptr_t pool[16];
    std::size_t pool_size = 0;
    for (const site& st : sites)
        for (std::size_t f = 0; f < st.depth; ++f) pool[pool_size++] = st.frames[f];
    const std::size_t n = 5000;
    static std::uintptr_t stacks[n][16];
    static memdiag::snapshot::heap_sample large[n];
    std::uint64_t x = 88172645463325252ull;
    for (std::size_t i = 0; i < n; ++i) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        std::size_t depth = 1 + x % 16;
        for (std::size_t f = 0; f < depth; ++f) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            stacks[i][f] = pool[(x >> 8) % pool_size];
        }
        std::int64_t bytes = 64 * static_cast<std::int64_t>(i % 10 + 1);
        bool live = i % 2 == 0;
        large[i] = {stacks[i], depth, 1, bytes, live ? 1 : 0, live ? bytes : 0};
    }
    memdiag::snapshot::heap_view large_view{large, n, 1, 1700000000123456789};
    r = memdiag::snapshot::write_pprof(large_view, (dir + "/large.pb.gz").c_str());
    if (!r) {
        std::fprintf(stderr, "write_pprof: %s\n", r.message());
        return 1;
    }
    // A profile whose tables were full: it carries the dropped-samples comment
    // and the text report starts with the same notice.
    memdiag::snapshot::heap_view dropped_view{samples, 3, interval, 1700000000123456789, 3103633};
    r = memdiag::snapshot::write_pprof(dropped_view, (dir + "/dropped.pb.gz").c_str());
    if (!r) {
        std::fprintf(stderr, "write_pprof: %s\n", r.message());
        return 1;
    }
    memdiag::detail::internal_string dropped_text = memdiag::snapshot::text_report(dropped_view, 10);
    r = memdiag::snapshot::write_text_file((dir + "/dropped.txt").c_str(), dropped_text.data(), dropped_text.size());
    if (!r) {
        std::fprintf(stderr, "write_text_file: %s\n", r.message());
        return 1;
    }
    std::fputs(text.c_str(), stdout);
    return 0;
}
