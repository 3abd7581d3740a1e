// tests/compile/all_headers.cpp - every public header in one translation unit,
// with the templates instantiated, so each build configuration (-fno-exceptions,
// -fno-rtti, MEMDIAG_DISABLE, MinGW, -m32, aarch64) proves the whole API compiles.
//
// Built as an object library by tests/reliability.cmake. scripts/matrix.sh also
// links it as a program (-DMEMDIAG_ALL_HEADERS_MAIN, with the global hook) and
// runs it where the target can run: a smoke test that needs neither exceptions
// nor RTTI nor a test framework. Exit status 0 = every check passed.
#include <memdiag/memdiag.hpp>
#include <memdiag/resource.hpp>
#include <memdiag/result.hpp>
#include <memdiag/stack.hpp>

#if !MEMDIAG_OS_WINDOWS
#include <memdiag/snapshot/pprof.hpp>
#include <memdiag/snapshot/report.hpp>
#endif
// Parts that are being written: compiled as soon as they exist.
#if __has_include(<memdiag/sampler.hpp>)
#include <memdiag/sampler.hpp>
#endif
// The heap profile writes through snapshot/report.hpp, whose printf-style
// formats (%zu) MinGW's checker rejects: Windows waits for that fix.
#if __has_include(<memdiag/heap_profile.hpp>) && !MEMDIAG_OS_WINDOWS
#include <memdiag/heap_profile.hpp>
// The pprof endpoint, periodic dumps and flame graphs (issue 16).
#include <memdiag/heap_flamegraph.hpp>
#include <memdiag/http.hpp>
#include <memdiag/periodic_dump.hpp>
#include <memdiag/snapshot/flamegraph.hpp>
#endif
// Google Benchmark links natively only: compiled here, never in the program.
#if __has_include(<memdiag/benchmark.hpp>) && __has_include(<benchmark/benchmark.h>) && \
    !defined(MEMDIAG_ALL_HEADERS_MAIN)
#include <memdiag/benchmark.hpp>
#endif

#ifdef MEMDIAG_ALL_HEADERS_MAIN
#define MEMDIAG_REPLACE_GLOBAL_NEW
#endif
#include <memdiag/global_new.hpp>

#include <cstdio>
#include <cstdlib>
#include <memory_resource>
#include <vector>

namespace {

int failures = 0;

void expect(bool ok, const char* what, int line) {
    if (!ok) {
        std::fprintf(stderr, "all_headers.cpp:%d: check failed: %s\n", line, what);
        ++failures;
    }
}
#define ALL_HEADERS_EXPECT(cond) expect((cond), #cond, __LINE__)

// A volatile sink keeps the compiler from eliding new/delete pairs.
void* volatile sink = nullptr;

}  // namespace

/// Exercises the API; returns the number of failed checks. Runs without
/// exceptions and without RTTI (no throwing policy is used).
int memdiag_all_headers_smoke() {
    memdiag::tracker t{"smoke"};
    {
        std::vector<int, memdiag::tracking_allocator<int>> v{memdiag::tracking_allocator<int>{t}};
        for (int i = 0; i < 100; ++i) v.push_back(i);
        ALL_HEADERS_EXPECT(v.size() == 100);
    }
    const memdiag::allocation_stats s = t.stats();
#if MEMDIAG_ENABLED
    ALL_HEADERS_EXPECT(s.allocations > 0);
    ALL_HEADERS_EXPECT(s.allocations == s.deallocations);
    ALL_HEADERS_EXPECT(s.live_bytes == 0);
    ALL_HEADERS_EXPECT(s.peak_live_bytes >= 100 * sizeof(int));
#else
    ALL_HEADERS_EXPECT(s == memdiag::allocation_stats{});
#endif

    memdiag::tracking_resource res{memdiag::tracker_ref{t}};
    {
        std::pmr::vector<int> pv{&res};
        pv.resize(1000);
    }
    ALL_HEADERS_EXPECT(t.stats().live_bytes == 0);

    // Budgets with the non-throwing policies.
    {
        memdiag::scoped_budget b{memdiag::limits{}.max_allocations(1), memdiag::breach_policy::callback};
        memdiag::tracking_allocator<char> a{t};
        char* p = a.allocate(10);
        char* q = a.allocate(10);
        a.deallocate(q, 10);
        a.deallocate(p, 10);
        ALL_HEADERS_EXPECT(b.breaches() == (MEMDIAG_ENABLED ? 1u : 0u));
    }
    const memdiag::allocation_stats used = memdiag::measure([&] {
        memdiag::tracking_allocator<long> a{t};
        a.deallocate(a.allocate(4), 4);
    });
    ALL_HEADERS_EXPECT(used.allocations == (MEMDIAG_ENABLED ? 1u : 0u));
    ALL_HEADERS_EXPECT(memdiag::allocs_per_run(3, [] {}) == 0.0);
    {
        memdiag::leak_check lc{memdiag::breach_policy::callback};
        ALL_HEADERS_EXPECT(!lc.leaking());
    }

    // The global hook, when this TU installed it.
    if (memdiag::global_hook_installed()) {
        const memdiag::allocation_stats before = memdiag::process_stats();
        sink = ::operator new(64);
        ::operator delete(sink);
        const memdiag::allocation_stats d = memdiag::process_stats() - before;
        ALL_HEADERS_EXPECT(d.allocations == 1 && d.deallocations == 1);
        ALL_HEADERS_EXPECT(d.live_bytes == 0);
        volatile std::size_t huge = ~std::size_t{0} - 4096;  // more than any address space
        void* p = ::operator new(huge, std::nothrow);
        ALL_HEADERS_EXPECT(p == nullptr);
    }

    // Fault injection without exceptions: the run sees a null from nothrow new.
    const memdiag::injection_result r = memdiag::fail_after_bytes(
        0, [] { sink = ::operator new(16, std::nothrow); }, [] {});
    if (memdiag::global_hook_installed()) ALL_HEADERS_EXPECT(sink == nullptr);
    ::operator delete(sink);
    ALL_HEADERS_EXPECT(r.attempts == (MEMDIAG_ENABLED ? 1u : 0u) || r.attempts == 1u);

    memdiag::set_soft_limit(0, nullptr);
    std::uintptr_t frames[8];
    ALL_HEADERS_EXPECT(memdiag::capture_stack(frames, 8) <= 8);
    char line[256];
    ALL_HEADERS_EXPECT(s.format(line, sizeof line) > 0);
    ALL_HEADERS_EXPECT(memdiag::result::failure(nullptr).message()[0] != '\0');

    const memdiag::env::report e = memdiag::env::collect();
    ALL_HEADERS_EXPECT(!e.to_text().empty());
    ALL_HEADERS_EXPECT(!e.to_json().empty());
    ALL_HEADERS_EXPECT(memdiag::env::parse_size("4K").value == 4096);
    return failures;
}

#ifdef MEMDIAG_ALL_HEADERS_MAIN
int main() {
    const int n = memdiag_all_headers_smoke();
    std::printf("all_headers smoke (%s, exceptions %s, rtti %s, memdiag %s): %s\n", MEMDIAG_ARCH_NAME,
                MEMDIAG_HAS_EXCEPTIONS ? "on" : "off", MEMDIAG_HAS_RTTI ? "on" : "off",
                MEMDIAG_ENABLED ? "enabled" : "disabled", n == 0 ? "ok" : "FAILED");
    return n == 0 ? 0 : 1;
}
#endif
