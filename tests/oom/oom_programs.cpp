// tests/oom/oom_programs.cpp (target oom_programs) - the programs the
// out-of-memory checks run, one binary (one compile of the heap profiler):
//
//   oom_programs leak MIB|forever        keeps MIB MiB in 64 KiB blocks at leak_site,
//                                        prints "done", exits 0 (forever: until killed);
//                                        watermark_check.sh, oom_kill_check.sh
//   oom_programs crash segv|abort|recursion
//                                        keeps 32 MiB at leak_site, then crashes;
//                                        fatal_signal_check.sh
//   oom_programs bad_alloc DUMP_PATH [--stacks]
//                                        leaks until operator new throws; oom_snapshot_check.sh
//
// leak and crash start the heap profiler on DEFAULT options, so the environment
// alone (MEMDIAG_DUMP_AT, MEMDIAG_DUMP_DIR, MEMDIAG_DUMP_LIMIT,
// MEMDIAG_DUMP_ON_SIGNAL) sets watermarks and the signal snapshot. Every block is
// touched, so the kernel sees the leak as resident memory.
//
// bad_alloc: leak_everything keeps 256 KiB blocks until the address space runs
// out; the global hook's out-of-memory handler then writes the snapshot to
// DUMP_PATH before bad_alloc propagates. Exit 3: bad_alloc never came (no
// limit?). --stacks records every allocation (max_stacks etc. stay default) and
// first keeps 64 bytes at each of 16384 distinct stacks, so the writer needs more
// than a fixed reserve would give it: the reserve must follow the tables.
#define MEMDIAG_REPLACE_GLOBAL_NEW
#include <memdiag/global_new.hpp>
#include <memdiag/heap_profile.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "../lib/call_paths.hpp"

namespace {
struct block {
    block* next;
    char payload[64 * 1024 - sizeof(block*)];
};
block* volatile g_head = nullptr;
int* volatile g_null = nullptr;
volatile unsigned long g_depth_limit = ~0ul;  // never reached; hides the recursion from -Winfinite-recursion

struct node {
    node* next;
    char payload[256 * 1024 - sizeof(node*)];
};
node* volatile g_nodes = nullptr;
// The leaf of the distinct call paths: keeps a small block.
struct keep_small {
    static void at_leaf() {
        void** p = static_cast<void**>(::operator new(64));
        *p = g_small;
        g_small = p;
    }
    static void* volatile g_small;
};
void* volatile keep_small::g_small = nullptr;
}  // namespace

// noinline: the leak site must be its own frame in the snapshots.
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

// noinline: the leak site must be its own frame in the snapshot.
__attribute__((noinline)) std::size_t leak_everything() {
    std::size_t n = 0;
    for (;;) {
        node* b = new node;
        std::memset(b->payload, 1, sizeof b->payload);  // touched: RSS as well as address space
        b->next = g_nodes;
        g_nodes = b;
        if (++n > (std::size_t{1} << 24)) return n;  // 4 TiB: there is no limit
    }
}

int bad_alloc_main(int argc, char** argv) {
    const bool many_stacks = argc == 3 && std::strcmp(argv[2], "--stacks") == 0;
    if (argc != 2 && !many_stacks) {
        std::fprintf(stderr, "usage: oom_programs bad_alloc DUMP_PATH [--stacks]\n");
        return 2;
    }
    memdiag::profile_options options;
    options.dump_on_bad_alloc(argv[1]);
    if (many_stacks) options.sample_interval(1);
    memdiag::result r = memdiag::heap_profiler::start(options);
    if (!r) {
        std::fprintf(stderr, "cannot start the profiler: %s\n", r.message());
        return 1;
    }
    try {
        if (many_stacks) {
            for (unsigned i = 0; i < (1u << 14); ++i) memdiag_test::call_paths<14, keep_small>::pick(i);
            const memdiag::heap_profile_stats st = memdiag::heap_profiler::stats();
            std::printf("%llu stacks recorded\n", static_cast<unsigned long long>(st.stacks));
        }
        leak_everything();
    } catch (const std::bad_alloc&) {
        std::size_t blocks = 0;
        for (node* b = g_nodes; b != nullptr; b = b->next) ++blocks;
        std::printf("bad_alloc after %zu blocks of 256 KiB\n", blocks);
        return 0;
    }
    std::fprintf(stderr, "no bad_alloc: is the address space limited?\n");
    return 3;
}

namespace {
// The heap profiler on default options (the environment sets the rest).
bool start_profiler() {
    const memdiag::result r = memdiag::heap_profiler::start();
    if (!r) std::fprintf(stderr, "cannot start the profiler: %s\n", r.message());
    return static_cast<bool>(r);
}
}  // namespace

int main(int argc, char** argv) {
    const char* mode = argc >= 2 ? argv[1] : "";
    if (std::strcmp(mode, "bad_alloc") == 0) return bad_alloc_main(argc - 1, argv + 1);
    if (std::strcmp(mode, "leak") == 0 && argc == 3) {
        if (!start_profiler()) return 1;
        if (std::strcmp(argv[2], "forever") == 0) {
            for (;;) leak_site(16);
        }
        leak_site(std::strtoul(argv[2], nullptr, 10) * 16);
        std::printf("done\n");
        return 0;
    }
    if (std::strcmp(mode, "crash") == 0 && argc == 3) {
        if (!start_profiler()) return 1;
        leak_site(32 * 16);
        if (std::strcmp(argv[2], "segv") == 0) return *g_null;
        if (std::strcmp(argv[2], "abort") == 0) std::abort();
        if (std::strcmp(argv[2], "recursion") == 0) return static_cast<int>(recurse(0));
    }
    std::fprintf(stderr, "usage: %s leak MIB|forever | crash segv|abort|recursion | bad_alloc DUMP_PATH [--stacks]\n",
                 argv[0]);
    return 2;
}
