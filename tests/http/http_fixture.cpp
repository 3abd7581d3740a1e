// tests/http/http_fixture.cpp - a program with known heap sites and the pprof
// endpoint, driven by tests/http/http_check.sh and flamegraph_check.sh.
//
//   http_fixture [--token T] [--read-timeout MS] [--max-conn N] [--stacks N]
//
// Records every allocation (interval 1) and keeps live, in 64 KiB blocks:
//   alloc_a 1 MiB, alloc_b 2 MiB, alloc_c 4 MiB, and tagged_site<int&>()
//   256 KiB (a name with '<', '>' and '&'); churn allocates 1 MiB and frees it.
// --stacks N adds N distinct stacks of one 64-byte block each (for the
// requests/s measure). Then serves on 127.0.0.1 with a free port and prints
// "port N" on stdout. Commands on stdin, one per line:
//   delta        alloc_delta allocates and keeps 512 KiB more (8 blocks)
//   flame PATH   writes the flame graph page to PATH, prints "flame ok"
//   counts       prints "counts ALLOCS BYTES" of the process tracker
//   quit         stops the server (stop() joins) and prints "stopped N" (requests served)
// stdin is read with read(2) into a fixed buffer: the fixture's own steady
// state allocates nothing, so the profile holds the sites above only.
#define MEMDIAG_REPLACE_GLOBAL_NEW
#define MEMDIAG_REPLACE_MALLOC
#include <memdiag/global_new.hpp>
#include <memdiag/heap_flamegraph.hpp>
#include <memdiag/heap_profile.hpp>
#include <memdiag/http.hpp>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

constexpr std::size_t block = 64 * 1024;
char* kept[256];
std::size_t kept_count = 0;
volatile int marker;  // distinct stores keep identical-code folding from merging the sites

}  // namespace

#if defined(__clang__)
#define FIXTURE_SITE __attribute__((noinline))
#else
#define FIXTURE_SITE __attribute__((noinline, noclone))  // no "[clone .constprop.0]" names
#endif
// Each site's loop stays a loop: unrolled, one function would allocate from
// several call sites, each its own stack (clang -O3 unrolls these).
#define FIXTURE_NO_UNROLL _Pragma("GCC unroll 1")

FIXTURE_SITE void alloc_a() {
    marker = 1;
    FIXTURE_NO_UNROLL
    for (std::size_t i = 0; i < (1u << 20) / block; ++i) kept[kept_count++] = new char[block];
}
FIXTURE_SITE void alloc_b() {
    marker = 2;
    FIXTURE_NO_UNROLL
    for (std::size_t i = 0; i < (2u << 20) / block; ++i) kept[kept_count++] = new char[block];
}
FIXTURE_SITE void alloc_c() {
    marker = 3;
    FIXTURE_NO_UNROLL
    for (std::size_t i = 0; i < (4u << 20) / block; ++i) kept[kept_count++] = new char[block];
}
FIXTURE_SITE void alloc_delta() {
    marker = 4;
    FIXTURE_NO_UNROLL
    for (std::size_t i = 0; i < (512u << 10) / block; ++i) kept[kept_count++] = new char[block];
}
FIXTURE_SITE void churn() {  // 1 MiB allocated and freed: only in the allocated views
    marker = 8;
    char* scratch[16];
    FIXTURE_NO_UNROLL
    for (char*& p : scratch) p = new char[block];
    FIXTURE_NO_UNROLL
    for (char* p : scratch) delete[] p;
}
template <class T>
FIXTURE_SITE void tagged_site() {
    marker = 5;
    FIXTURE_NO_UNROLL
    for (std::size_t i = 0; i < (256u << 10) / block; ++i) kept[kept_count++] = new char[block];
}

// Distinct stacks for the many-stacks profile: recursion depth d and a
// branch pattern give each of N calls its own return-address sequence.
FIXTURE_SITE void many_leaf(char** out) { *out = static_cast<char*>(std::malloc(64)); }
FIXTURE_SITE void many_left(unsigned bits, unsigned depth, char** out);
FIXTURE_SITE void many_right(unsigned bits, unsigned depth, char** out);
void many_left(unsigned bits, unsigned depth, char** out) {
    if (depth == 0) return many_leaf(out);
    (bits & 1) ? many_right(bits >> 1, depth - 1, out) : many_left(bits >> 1, depth - 1, out);
    marker = 6;
}
void many_right(unsigned bits, unsigned depth, char** out) {
    if (depth == 0) return many_leaf(out);
    (bits & 1) ? many_right(bits >> 1, depth - 1, out) : many_left(bits >> 1, depth - 1, out);
    marker = 7;
}

int main(int argc, char** argv) {
    memdiag::http_options options;
    options.address("127.0.0.1:0");
    unsigned stacks = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (std::strcmp(argv[i], "--token") == 0) options.token(argv[i + 1]);
        else if (std::strcmp(argv[i], "--read-timeout") == 0) options.read_timeout_ms(std::atoi(argv[i + 1]));
        else if (std::strcmp(argv[i], "--max-conn") == 0) options.max_connections(static_cast<unsigned>(std::atoi(argv[i + 1])));
        else if (std::strcmp(argv[i], "--stacks") == 0) stacks = static_cast<unsigned>(std::atoi(argv[i + 1]));
        else {
            std::fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    memdiag::result started = memdiag::heap_profiler::start(
        memdiag::profile_options{}.sample_interval(1).max_stacks(stacks + 1024).max_live_samples(2 * stacks + 4096));
    if (!started) {
        std::fprintf(stderr, "heap profiler: %s\n", started.message());
        return 1;
    }
    alloc_a();
    alloc_b();
    alloc_c();
    tagged_site<int&>();
    churn();
    // 14 levels of left/right calls: up to 16384 distinct stacks.
    char** many = stacks ? static_cast<char**>(std::malloc(stacks * sizeof(char*))) : nullptr;
    for (unsigned i = 0; i < stacks; ++i) many_left(i, 14, &many[i]);

    memdiag::pprof_server server = memdiag::serve_pprof(options);
    if (!server) {
        std::fprintf(stderr, "serve_pprof: %s\n", server.status().message());
        return 1;
    }
    std::printf("port %u\n", static_cast<unsigned>(server.port()));
    std::fflush(stdout);

    char line[1024];
    std::size_t len = 0;
    for (;;) {
        const ssize_t n = ::read(0, line + len, sizeof line - 1 - len);
        if (n <= 0) break;
        len += static_cast<std::size_t>(n);
        char* nl;
        while ((nl = static_cast<char*>(std::memchr(line, '\n', len))) != nullptr) {
            *nl = '\0';
            if (std::strcmp(line, "delta") == 0) {
                alloc_delta();
                std::printf("delta ok\n");
            } else if (std::strncmp(line, "flame ", 6) == 0) {
                memdiag::result r = memdiag::write_heap_flamegraph(line + 6);
                std::printf("flame %s\n", r ? "ok" : r.message());
            } else if (std::strcmp(line, "counts") == 0) {
                const memdiag::allocation_stats s = memdiag::process_stats();
                std::printf("counts %llu %llu\n", static_cast<unsigned long long>(s.allocations),
                            static_cast<unsigned long long>(s.bytes_allocated));
            } else if (std::strcmp(line, "quit") == 0) {
                const unsigned long long served = server.requests_served();
                server.stop();
                std::printf("stopped %llu%s\n", served, server.running() ? " (still running!)" : "");
                return 0;
            } else {
                std::printf("unknown command '%s'\n", line);
            }
            std::fflush(stdout);
            const std::size_t used = static_cast<std::size_t>(nl - line) + 1;
            std::memmove(line, line + used, len - used);
            len -= used;
        }
    }
    return 0;
}
