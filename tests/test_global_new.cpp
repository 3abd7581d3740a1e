// Tests for the global operator new/delete replacement (tests/hook_main.cpp defines it).
#include <memdiag/global_new.hpp>
#include <memdiag/heap_profile.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "catch.hpp"

namespace {
// Allocated by a static constructor, before main.
struct before_main {
    std::uint64_t allocations_seen;
    std::vector<int>* held;
    before_main() : held(new std::vector<int>(1000)) { allocations_seen = memdiag::process_stats().allocations; }
};
before_main early;

// Through a volatile sink: compilers may otherwise elide a new/delete pair.
thread_local void* volatile sink = nullptr;  // per thread: tests allocate from several threads

template <class F>
memdiag::allocation_stats process_delta(F f) {
    const auto before = memdiag::process_stats();
    f();
    return memdiag::process_stats() - before;
}
}  // namespace

TEST_CASE("the hook is installed in this binary", "[global_new]") {
    CHECK(memdiag::global_hook_installed());
}

TEST_CASE("allocations before main are counted", "[global_new]") {
    CHECK(early.allocations_seen >= 2);  // the vector object and its buffer
    CHECK(early.held->size() == 1000);
}

TEST_CASE("every form of new and delete is counted and balances", "[global_new]") {
    auto d = process_delta([] {
        sink = new int(1);
        delete static_cast<int*>(sink);
        sink = new int[10];
        delete[] static_cast<int*>(sink);
        sink = new (std::nothrow) int(2);
        delete static_cast<int*>(sink);
        sink = new (std::nothrow) int[3];
        delete[] static_cast<int*>(sink);
        sink = ::operator new(100);
#if defined(__cpp_sized_deallocation)  // clang enables it only with -fsized-deallocation
        ::operator delete(sink, 100);
#else
        ::operator delete(sink);
#endif
        sink = ::operator new[](50);
#if defined(__cpp_sized_deallocation)
        ::operator delete[](sink, 50);
#else
        ::operator delete[](sink);
#endif
    });
    CHECK(d.allocations == 6);
    CHECK(d.deallocations == 6);
    CHECK(d.bytes_allocated >= 4 + 40 + 4 + 12 + 100 + 50);
    CHECK(d.live_bytes == 0);
}

TEST_CASE("over-aligned new keeps its alignment and is counted", "[global_new]") {
    struct alignas(128) block {
        char data[256];
    };
    auto d = process_delta([] {
        auto* b = new block;
        CHECK(reinterpret_cast<std::uintptr_t>(b) % 128 == 0);
        delete b;
        auto* arr = new block[3];
        CHECK(reinterpret_cast<std::uintptr_t>(arr) % 128 == 0);
        delete[] arr;
        void* raw = ::operator new(64, std::align_val_t{4096}, std::nothrow);
        CHECK(reinterpret_cast<std::uintptr_t>(raw) % 4096 == 0);
        ::operator delete(raw, std::align_val_t{4096});
    });
    CHECK(d.allocations == 3);
    CHECK(d.deallocations == 3);
    CHECK(d.live_bytes == 0);
}

TEST_CASE("zero-size new returns distinct pointers", "[global_new]") {
    void* a = ::operator new(0);
    void* b = ::operator new(0);
    CHECK(a != b);
    ::operator delete(a);
    ::operator delete(b);
}

TEST_CASE("a failing new throws bad_alloc and nothrow new returns null", "[global_new]") {
    const volatile std::size_t huge = ~std::size_t{0} - 4096;  // beyond any address space, 32-bit too
    CHECK_THROWS_AS(::operator new(huge), std::bad_alloc);
    const auto before = memdiag::process_stats();
    sink = ::operator new(huge, std::nothrow);
    const auto after = memdiag::process_stats();
    CHECK(sink == nullptr);
    CHECK((after - before).allocations == 0);
}

TEST_CASE("the new_handler is called before giving up", "[global_new]") {
    static int calls = 0;
    calls = 0;
    std::set_new_handler([] {
        ++calls;
        std::set_new_handler(nullptr);  // then give up
    });
    const volatile std::size_t huge = ~std::size_t{0} - 4096;  // beyond any address space, 32-bit too
    CHECK_THROWS_AS(::operator new(huge), std::bad_alloc);
    CHECK(calls == 1);
}

TEST_CASE("other threads' allocations are counted and survive thread exit", "[global_new][threads]") {
    auto d = process_delta([] {
        std::vector<std::thread> pool;
        for (int t = 0; t < 8; ++t)
            pool.emplace_back([] {
                long* volatile mine = nullptr;  // per thread: a shared sink would be freed twice
                for (int i = 0; i < 1000; ++i) {
                    mine = new long(i);
                    delete mine;
                }
            });
        for (auto& th : pool) th.join();
    });
    CHECK(d.allocations >= 8000);
    CHECK(d.deallocations >= 8000);
}

// guard_no_state stands for "no thread state" in the hook's one test: the
// thread's events after its state is retired (later thread_local destructors)
// must still be counted, through atomics, never through the freed state.
// Without retire_thread setting the bit, the hook's fast path takes the
// guards word 0 as "count in the state" and dereferences null.
TEST_CASE("after its state is retired a thread's new and delete are counted through atomics", "[global_new][threads]") {
    using namespace memdiag::detail;
    REQUIRE(memdiag::global_hook_active());
    bool fresh_has_bit = false, created_clears = false, retired_sets = false;
    std::uint64_t before = 0, after = 0;
    std::thread([&] {
        fresh_has_bit = tls_head.state == nullptr && (tls_head.guards & guard_no_state) != 0;
        sink = ::operator new(16);  // creates the state
        ::operator delete(sink);
        created_clears = tls_head.state != nullptr && tls_head.guards == 0;
        retire_thread(tls_head.state);  // what the reaper does at thread exit
        retired_sets = tls_head.state == nullptr && tls_head.guards == guard_no_state;
        before = g_process_slot.allocations.load(std::memory_order_relaxed);
        for (int i = 0; i < 10; ++i) {
            sink = ::operator new(48);
            ::operator delete(sink);
        }
        after = g_process_slot.allocations.load(std::memory_order_relaxed);
    }).join();
    CHECK(fresh_has_bit);
    CHECK(created_clears);
    CHECK(retired_sets);
    CHECK(after - before >= 10);  // other threads may count too, never fewer
}

namespace {
// The process-wide words the hot path might write: the process tracker's
// shared totals and the registry's flags. Compared field by field (a
// memcmp would also compare padding, which nothing initializes).
struct shared_words {
    std::uint64_t slot[6];
    std::uint64_t global_slow;
    std::uint64_t shard_in_use;
    std::uint64_t reentrant;
};
shared_words read_shared_words() {
    using namespace memdiag::detail;
    const auto r = std::memory_order_relaxed;
    const tracker_slot& t = g_process_slot;
    return {{t.allocations.load(r), t.deallocations.load(r), t.bytes_allocated.load(r), t.bytes_freed.load(r),
             static_cast<std::uint64_t>(t.live_published.load(r)), t.peak.load(r)},
            g_registry.global_slow.load(r),
            g_registry.shard_in_use.load(r),
            g_reentrant_events.load(r)};
}
bool same(const shared_words& a, const shared_words& b) {
    for (int i = 0; i < 6; ++i)
        if (a.slot[i] != b.slot[i]) return false;
    return a.global_slow == b.global_slow && a.shard_in_use == b.shard_in_use && a.reentrant == b.reentrant;
}

// 1000 new/delete pairs on this thread after its live-byte drift is published,
// so no pair reaches the publish threshold; returns the shard's allocation count
// change (1000 when every pair was counted).
std::uint64_t pairs_on_fast_path() {
    using namespace memdiag::detail;
    thread_state* s = current_thread_state();
    REQUIRE(s != nullptr);
    shard& sh = s->shards[0];
    publish_drift(sh, g_process_slot);
    const std::uint64_t before = sh.allocations.load(std::memory_order_relaxed);
    for (int i = 0; i < 1000; ++i) {
        sink = ::operator new(48);
        ::operator delete(sink);
    }
    return sh.allocations.load(std::memory_order_relaxed) - before;
}
}  // namespace

// What bench/bench_threads measures as flat cost from 1 to 8 threads: the hot
// path writes only the calling thread's memory.
TEST_CASE("counted new/delete pairs write no process-wide memdiag state", "[global_new][threads]") {
    REQUIRE(memdiag::global_hook_active());
    (void)pairs_on_fast_path();  // the thread state exists, the drift is published
    const shared_words before = read_shared_words();
    const std::uint64_t counted = pairs_on_fast_path();
    const shared_words after = read_shared_words();
    // pairs_on_fast_path publishes a drift of 0 after the warm-up: no value changes.
    CHECK(counted == 1000);
    CHECK(same(before, after));
}

#if MEMDIAG_HAS_LIBC_MALLOC && !MEMDIAG_ASAN && !MEMDIAG_TSAN
TEST_CASE("C allocation functions are counted on glibc", "[global_new][malloc]") {
    REQUIRE(memdiag::malloc_hook_installed());
    auto d = process_delta([] {
        sink = strdup("allocated by C code");
        std::free(sink);
        sink = std::calloc(10, 10);
        CHECK(static_cast<unsigned char*>(sink)[99] == 0);
        sink = std::realloc(sink, 1000);
        std::free(sink);
        void* p = nullptr;
        CHECK(posix_memalign(&p, 64, 100) == 0);
        sink = p;
        CHECK(reinterpret_cast<std::uintptr_t>(sink) % 64 == 0);
        std::free(sink);
        sink = aligned_alloc(256, 512);
        CHECK(reinterpret_cast<std::uintptr_t>(sink) % 256 == 0);
        std::free(sink);
    });
    CHECK(d.allocations == 5);  // strdup, calloc, realloc's new block, posix_memalign, aligned_alloc
    CHECK(d.deallocations == 5);
    CHECK(d.live_bytes == 0);
    volatile std::size_t n = ~std::size_t{0} / 2;  // opaque: the compiler would reject the overflow
    CHECK(std::calloc(n, 4) == nullptr);  // overflow
    void* p = nullptr;
    CHECK(posix_memalign(&p, 3, 8) == EINVAL);
}
#endif

#if MEMDIAG_HAS_LIBC_MALLOC && !MEMDIAG_ASAN && !MEMDIAG_TSAN
// With the C allocation functions replaced too, `malloc` resolves to memdiag's
// own, yet every block the hook sees comes from __libc_malloc: its chunk
// header is read inline, as without MEMDIAG_REPLACE_MALLOC (this binary
// defines both, so the hook's inline paths, the heap profiler's inline free
// filter test among them, run in this suite).
TEST_CASE("with malloc replaced too, chunk headers are read inline and agree with glibc",
          "[global_new][malloc]") {
    using memdiag::detail::glibc_chunk_usable;
    REQUIRE(memdiag::malloc_hook_installed());
    sink = ::operator new(40);  // the layout is checked by the first event at the latest
    ::operator delete(sink);
    CHECK(memdiag::detail::chunk_layout_unread() == 0);
    for (std::size_t n : {std::size_t{1}, std::size_t{24}, std::size_t{1000}, std::size_t{300000}}) {
        void* p = ::operator new(n);  // 300000: an mmapped chunk
        sink = p;
        CHECK(glibc_chunk_usable(reinterpret_cast<std::uintptr_t>(p)) == malloc_usable_size(p));
        ::operator delete(p);
        p = std::malloc(n);
        sink = p;
        CHECK(glibc_chunk_usable(reinterpret_cast<std::uintptr_t>(p)) == malloc_usable_size(p));
        std::free(p);
    }
}
#endif

namespace {
using memdiag::detail::heapprof::tables;

std::size_t live_samples_in(const tables& t) {
    std::size_t n = 0;
    for (const auto& s : t.shards) n += s.count.load(std::memory_order_relaxed);
    return n;
}

struct profiled_pair {
    std::size_t after_new, after_delete;
};
// One sampled new/delete pair (exact mode) with `t` published as the
// profiler's tables in between; the previous tables are restored after.
// Nothing else allocates meanwhile (no assertion inside).
profiled_pair pair_in_tables(tables& t) {
    using memdiag::detail::heapprof::g_profiler;
    tables* const previous = g_profiler.current.load(std::memory_order_acquire);
    {
        memdiag::detail::spin_guard c(g_profiler.control);
        g_profiler.current.store(&t, std::memory_order_release);
    }
    void* p = ::operator new(100);
    sink = p;
    const std::size_t after_new = live_samples_in(t);
    ::operator delete(p);
    const std::size_t after_delete = live_samples_in(t);
    {
        memdiag::detail::spin_guard c(g_profiler.control);
        g_profiler.current.store(previous, std::memory_order_release);
    }
    return {after_new, after_delete};
}
}  // namespace

// While the heap profiler runs alone, operator delete tests the free filter
// inline and calls the profiler only on a possible hit (global_new.hpp). The
// filter it tests must be the current tables' at each free: a hook that kept
// the filter it read once (at start, or at its first free) would let a
// sampled block of newer tables go unforgotten. The one set of tables is
// never replaced today (heap_profile_impl.hpp reuses it), so the test
// publishes a second one as a swap or a regrowth would.
TEST_CASE("operator delete tests the current tables' free filter, not one read earlier",
          "[global_new][heap_profile]") {
    using namespace memdiag;
    REQUIRE(heap_profiler::start(profile_options{}.sample_interval(1)));
    tables* const first = detail::heapprof::g_profiler.current.load(std::memory_order_acquire);
    REQUIRE(first != nullptr);
    // A sampled pair in the process's tables first: the hook's inline test
    // has read their filter, and this thread's stack cache is registered
    // with them (never with the second tables).
    const std::size_t live_before = live_samples_in(*first);
    sink = ::operator new(100);
    const std::size_t live_sampled = live_samples_in(*first);
    ::operator delete(sink);
    CHECK(live_sampled == live_before + 1);
    CHECK(live_samples_in(*first) == live_before);

    auto second = std::make_unique<tables>();
    REQUIRE(second->allocate());
    second->configure(first->max_depth.load(), 0, 0, first->max_bytes);
    second->interval = 1;
    // No stack cache entry names this generation: samples go through the second tables' own stacks.
    second->generation.store(first->generation.load() + 1000);
    const profiled_pair in_second = pair_in_tables(*second);
    heap_profiler::stop();
    second->release();
    CHECK(in_second.after_new == 1);
    CHECK(in_second.after_delete == 0);  // a stale filter: 1
}

// The profiler's free path on its own: every sampled block that operator
// delete frees is forgotten, on the inline path (the layout read inline, no
// scope open), including frees that cross the thread's publish mark.
TEST_CASE("sampled blocks freed by operator delete leave the profiler's live table",
          "[global_new][heap_profile]") {
    using namespace memdiag;
    std::vector<char*> blocks;
    blocks.reserve(2000);
    REQUIRE(heap_profiler::start(profile_options{}.sample_interval(1)));
    const std::uint64_t live_before = heap_profiler::stats().live_samples;
    for (int i = 0; i < 2000; ++i) blocks.push_back(new char[static_cast<std::size_t>(16 + (i % 7) * 4096)]);
    const std::uint64_t live_held = heap_profiler::stats().live_samples;
    for (char* b : blocks) delete[] b;
    const std::uint64_t live_after = heap_profiler::stats().live_samples;
    heap_profiler::stop();
    CHECK(live_held >= live_before + 2000);
    CHECK(live_after <= live_before + 8);  // Catch2's own may come and go
#if MEMDIAG_HAS_LIBC_MALLOC && !MEMDIAG_ASAN && !MEMDIAG_TSAN
    CHECK(detail::chunk_layout_unread() == 0);  // the inline path ran
#endif
}
