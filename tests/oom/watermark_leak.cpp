// tests/oom/watermark_leak.cpp - leaks through the global hook with the heap
// profiler on DEFAULT options, so the environment (MEMDIAG_DUMP_AT,
// MEMDIAG_DUMP_DIR, MEMDIAG_DUMP_LIMIT) alone sets the watermarks; for
// watermark_check.sh and oom_kill_check.sh.
//
//     watermark_leak MIB      # keeps MIB MiB in 64 KiB blocks, prints "done", exits 0
//     watermark_leak forever  # keeps leaking until the kernel kills it
//
// Every block is touched, so the kernel sees the leak as resident memory.
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

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s MIB|forever\n", argv[0]);
        return 2;
    }
    const memdiag::result r = memdiag::heap_profiler::start();
    if (!r) {
        std::fprintf(stderr, "cannot start the profiler: %s\n", r.message());
        return 1;
    }
    if (std::strcmp(argv[1], "forever") == 0) {
        for (;;) leak_site(16);
    }
    leak_site(std::strtoul(argv[1], nullptr, 10) * 16);
    std::printf("done\n");
    return 0;
}
