// examples/heap_snapshot.cpp - an in-process heap snapshot, readable by pprof.
//
//     heap_snapshot heap.pb.gz            # writes the profile, prints the text report
//     go tool pprof -top -sample_index=inuse_space heap_snapshot heap.pb.gz
//
// alloc_a, alloc_b and alloc_c keep 1 MiB, 2 MiB and 4 MiB live in 64 KiB
// blocks; churn allocates 1 MiB and frees it again (it shows in alloc_space,
// not in inuse_space). The profiler records every allocation (interval 1), so
// the profile holds exactly those bytes, attributed to those functions; their
// names are written into the profile because go tool pprof cannot symbolize
// C++ binaries itself.
#define MEMDIAG_REPLACE_GLOBAL_NEW
#include <memdiag/global_new.hpp>
#include <memdiag/heap_profile.hpp>

#include <cstdio>

namespace {

constexpr std::size_t block_size = 64 * 1024;

// Fixed arrays, not vectors: the only allocations are the blocks themselves.
struct block_list {
    char* blocks[64];
    std::size_t count;
};

block_list a, b, c;

void keep(block_list& list, std::size_t bytes) {
#pragma GCC unroll 1
    for (std::size_t i = 0; i < bytes / block_size; ++i) list.blocks[list.count++] = new char[block_size];
}

void release(block_list& list) {
    for (std::size_t i = 0; i < list.count; ++i) delete[] list.blocks[i];
    list.count = 0;
}

}  // namespace

// noinline, so each is its own frame in the recorded stacks; the loop is
// written out in each (a shared helper would be the allocating frame instead)
// and not unrolled, so each function allocates from one call site (an
// unrolled loop would make one stack per copy of the call).
__attribute__((noinline)) void alloc_a() {
#pragma GCC unroll 1
    for (std::size_t i = 0; i < (1u << 20) / block_size; ++i) a.blocks[a.count++] = new char[block_size];
}
__attribute__((noinline)) void alloc_b() {
#pragma GCC unroll 1
    for (std::size_t i = 0; i < (2u << 20) / block_size; ++i) b.blocks[b.count++] = new char[block_size];
}
__attribute__((noinline)) void alloc_c() {
#pragma GCC unroll 1
    for (std::size_t i = 0; i < (4u << 20) / block_size; ++i) c.blocks[c.count++] = new char[block_size];
}
__attribute__((noinline)) void churn() {
    block_list scratch{};
    keep(scratch, 1u << 20);
    release(scratch);
}

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s OUTPUT.pb.gz\n", argv[0]);
        return 2;
    }
    memdiag::result r = memdiag::heap_profiler::start(memdiag::profile_options{}.sample_interval(1));
    if (!r) {
        std::fprintf(stderr, "heap_snapshot: %s\n", r.message());
        return 1;
    }
    alloc_a();
    alloc_b();
    alloc_c();
    churn();
    memdiag::heap_profiler::stop();

    r = memdiag::write_heap_profile(argv[1]);
    if (!r) {
        std::fprintf(stderr, "heap_snapshot: %s\n", r.message());
        return 1;
    }
    std::fputs(memdiag::heap_report(10).c_str(), stdout);
    std::printf("\nwrote %s\n", argv[1]);
    release(a), release(b), release(c);
    return 0;
}
