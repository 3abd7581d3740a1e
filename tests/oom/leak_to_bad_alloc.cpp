// tests/oom/leak_to_bad_alloc.cpp - leaks until operator new throws, with the
// heap profiler on DEFAULT options (only the dump path set), for
// oom_snapshot_check.sh, which runs it under `prlimit --as=...`.
//
//     leak_to_bad_alloc DUMP_PATH            # exit 0 once std::bad_alloc was caught
//     leak_to_bad_alloc DUMP_PATH --stacks   # first 16384 distinct live stacks (interval 1)
//
// leak_everything keeps 256 KiB blocks until the address space runs out; the
// global hook's out-of-memory handler then writes the snapshot to DUMP_PATH
// before bad_alloc propagates. Exit 3: bad_alloc never came (no limit?).
// --stacks records every allocation (max_stacks etc. stay default) and first
// keeps 64 bytes at each of 16384 distinct stacks, so the writer needs more
// than a fixed reserve would give it: the reserve must follow the tables.
#define MEMDIAG_REPLACE_GLOBAL_NEW
#include <memdiag/global_new.hpp>
#include <memdiag/heap_profile.hpp>

#include <cstdio>
#include <cstring>
#include <new>

namespace {
struct node {
    node* next;
    char payload[256 * 1024 - sizeof(node*)];
};
node* volatile g_head = nullptr;
// 2^L distinct call paths: each level calls the next through one of two frames.
template <int L>
struct paths {
    __attribute__((noinline)) static void left(unsigned bits) { paths<L - 1>::pick(bits); }
    __attribute__((noinline)) static void right(unsigned bits) { paths<L - 1>::pick(bits); }
    __attribute__((noinline)) static void pick(unsigned bits) {
        if (bits & 1u) left(bits >> 1);
        else right(bits >> 1);
        __asm__ volatile("" ::: "memory");  // no tail call: every level keeps its frame
    }
};
template <>
struct paths<0> {
    __attribute__((noinline)) static void pick(unsigned) {
        void** p = static_cast<void**>(::operator new(64));
        *p = g_small;
        g_small = p;
        __asm__ volatile("" ::: "memory");
    }
    static void* volatile g_small;
};
void* volatile paths<0>::g_small = nullptr;
}  // namespace

// noinline: the leak site must be its own frame in the snapshot.
__attribute__((noinline)) std::size_t leak_everything() {
    std::size_t n = 0;
    for (;;) {
        node* b = new node;
        std::memset(b->payload, 1, sizeof b->payload);  // touched: RSS as well as address space
        b->next = g_head;
        g_head = b;
        if (++n > (std::size_t{1} << 24)) return n;  // 4 TiB: there is no limit
    }
}

int main(int argc, char** argv) {
    const bool many_stacks = argc == 3 && std::strcmp(argv[2], "--stacks") == 0;
    if (argc != 2 && !many_stacks) {
        std::fprintf(stderr, "usage: %s DUMP_PATH [--stacks]\n", argv[0]);
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
            for (unsigned i = 0; i < (1u << 14); ++i) paths<14>::pick(i);
            const memdiag::heap_profile_stats st = memdiag::heap_profiler::stats();
            std::printf("%llu stacks recorded\n", static_cast<unsigned long long>(st.stacks));
        }
        leak_everything();
    } catch (const std::bad_alloc&) {
        std::size_t blocks = 0;
        for (node* b = g_head; b != nullptr; b = b->next) ++blocks;
        std::printf("bad_alloc after %zu blocks of 256 KiB\n", blocks);
        return 0;
    }
    std::fprintf(stderr, "no bad_alloc: is the address space limited?\n");
    return 3;
}
