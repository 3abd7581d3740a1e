// tests/oom/crash.cpp (target crash_with_snapshot) - keeps 32 MiB at leak_site, then crashes, with the heap
// profiler on default options (MEMDIAG_DUMP_ON_SIGNAL=1 and MEMDIAG_DUMP_DIR
// from the environment); for fatal_signal_check.sh.
//
//     crash segv|abort|recursion
#define MEMDIAG_REPLACE_GLOBAL_NEW
#include <memdiag/global_new.hpp>
#include <memdiag/heap_profile.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {
struct block {
    block* next;
    char payload[64 * 1024 - sizeof(block*)];
};
block* volatile g_head = nullptr;
int* volatile g_null = nullptr;
volatile unsigned long g_depth_limit = ~0ul;  // never reached; hides the recursion from -Winfinite-recursion
}  // namespace

__attribute__((noinline)) void leak_site(unsigned long blocks) {
    for (unsigned long i = 0; i < blocks; ++i) {
        block* b = new block;
        std::memset(b->payload, 1, sizeof b->payload);
        b->next = g_head;
        g_head = b;
    }
}

// Each frame keeps a buffer the compiler cannot drop, and the call is not a
// tail call, so the recursion overflows the stack.
__attribute__((noinline)) unsigned long recurse(unsigned long n) {
    volatile char pad[512];
    pad[n % sizeof pad] = static_cast<char>(n);
    if (n == g_depth_limit) return 0;
    return recurse(n + 1) + pad[(n * 7) % sizeof pad];
}

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s segv|abort|recursion\n", argv[0]);
        return 2;
    }
    const memdiag::result r = memdiag::heap_profiler::start();
    if (!r) {
        std::fprintf(stderr, "cannot start the profiler: %s\n", r.message());
        return 1;
    }
    leak_site(32 * 16);
    if (std::strcmp(argv[1], "segv") == 0) return *g_null;
    if (std::strcmp(argv[1], "abort") == 0) std::abort();
    if (std::strcmp(argv[1], "recursion") == 0) return static_cast<int>(recurse(0));
    return 2;
}
