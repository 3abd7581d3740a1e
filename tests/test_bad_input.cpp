// Bad input: every public entry point given zero, huge, overflowing or
// contradictory arguments returns a defined result or a clear error, and frees
// of memory memdiag never saw do not break the tracker. Linked into
// memdiag_reliability_tests (global hook installed, except under ThreadSanitizer).
// Snapshot path failures are tested in test_pprof.cpp.
#include <memdiag/allocator.hpp>
#include <memdiag/budget.hpp>
#include <memdiag/env.hpp>
#include <memdiag/global_new.hpp>
#include <memdiag/resource.hpp>
#include <memdiag/result.hpp>
#include <memdiag/stack.hpp>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <memory_resource>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "catch.hpp"

using memdiag::breach_policy;
using memdiag::limits;
using memdiag::scoped_budget;

namespace {
[[maybe_unused]] thread_local void* volatile sink = nullptr;  // per thread: tests allocate from several threads
// Sizes read through a volatile, so the compiler cannot fold the call away.
volatile std::size_t huge_size = ~std::size_t{0} - 4096;
volatile std::size_t max_size = ~std::size_t{0};
}  // namespace

// ---- trackers --------------------------------------------------------------------

TEST_CASE("tracker names: null, empty and overlong", "[bad_input][tracker]") {
    memdiag::tracker null_name{nullptr};
    CHECK(std::string(null_name.name()).empty());
    memdiag::tracker empty{""};
    CHECK(std::string(empty.name()).empty());
    const std::string long_name(500, 'n');
    memdiag::tracker overlong{long_name.c_str()};
    CHECK(std::string(overlong.name()) == std::string(63, 'n'));
}

TEST_CASE("more trackers than shards: every one still counts exactly", "[bad_input][tracker]") {
    constexpr int count = MEMDIAG_MAX_TRACKERS + 8;
    std::vector<std::unique_ptr<memdiag::tracker>> trackers;
    for (int i = 0; i < count; ++i) trackers.push_back(std::make_unique<memdiag::tracker>("many"));
    int unsharded = 0;
    for (auto& t : trackers) unsharded += t->sharded() ? 0 : 1;
    CHECK(unsharded >= 8);
    for (int i = 0; i < count; ++i) {
        memdiag::tracking_allocator<char> a{*trackers[i]};
        std::thread th([&] {
            for (int k = 0; k <= i; ++k) a.deallocate(a.allocate(10), 10);
        });
        th.join();
    }
    for (int i = 0; i < count; ++i) {
        const memdiag::allocation_stats s = trackers[i]->stats();
        CHECK(s.allocations == static_cast<std::uint64_t>(i + 1));
        CHECK(s.bytes_freed == static_cast<std::uint64_t>(10 * (i + 1)));
        CHECK(s.live_bytes == 0);
    }
    // Shards freed by destroyed trackers are reused, starting from zero.
    trackers.clear();
    memdiag::tracker fresh{"fresh"};
    CHECK(fresh.sharded());
    CHECK(fresh.stats() == memdiag::allocation_stats{});
}

// ---- tracking_allocator / tracking_resource ----------------------------------------

TEST_CASE("tracking_allocator: zero, huge and overflowing counts", "[bad_input][allocator]") {
    memdiag::tracker t{"sizes"};
    memdiag::tracking_allocator<std::uint64_t> a{t};
    CHECK_THROWS_AS(a.allocate(max_size), std::bad_array_new_length);          // n * 8 overflows
    CHECK_THROWS_AS(a.allocate(a.max_size() + 1), std::bad_alloc);             // over the upstream's limit
    CHECK(t.stats() == memdiag::allocation_stats{});
    std::uint64_t* p = a.allocate(0);  // what std::allocator gives for 0: counted as 0 bytes
    a.deallocate(p, 0);
    const memdiag::allocation_stats s = t.stats();
    CHECK(s.allocations == 1);
    CHECK(s.deallocations == 1);
    CHECK(s.bytes_allocated == 0);
    CHECK(s.live_bytes == 0);
}

TEST_CASE("tracking_resource: null upstream, huge sizes, odd alignments", "[bad_input][resource]") {
    SECTION("a null upstream means new_delete_resource") {
        memdiag::tracking_resource res{nullptr};
        CHECK(res.upstream_resource() == std::pmr::new_delete_resource());
        memdiag::tracker t{"null upstream"};
        memdiag::tracking_resource res2{memdiag::tracker_ref{t}, nullptr};
        CHECK(res2.upstream_resource() == std::pmr::new_delete_resource());
        res2.deallocate(res2.allocate(10), 10);
        CHECK(t.stats().allocations == 1);
    }
    SECTION("an impossible size throws and counts nothing") {
#if MEMDIAG_TSAN
        // The upstream is ::operator new, which ThreadSanitizer's runtime
        // defines (the global hook is off there) and ends the process in
        // instead of throwing, whatever allocator_may_return_null says.
        WARN("skipped under ThreadSanitizer: its operator new aborts on an impossible size instead of throwing");
        return;
#endif
        memdiag::tracking_resource res;
        CHECK_THROWS_AS(res.allocate(huge_size), std::bad_alloc);
        CHECK(res.stats() == memdiag::allocation_stats{});
    }
    SECTION("large alignments are honoured and counted") {
        memdiag::tracking_resource res;
        for (std::size_t align : {std::size_t{1}, std::size_t{64}, std::size_t{4096}, std::size_t{1} << 16}) {
            void* p = res.allocate(100, align);
            CHECK(reinterpret_cast<std::uintptr_t>(p) % align == 0);
            res.deallocate(p, 100, align);
        }
        CHECK(res.stats().allocations == 4);
        CHECK(res.stats().live_bytes == 0);
    }
}

TEST_CASE("frees of memory memdiag never saw do not break the tracker", "[bad_input][free]") {
    memdiag::tracker t{"foreign"};
    SECTION("tracking_allocator given a block from a plain allocator") {
        int* p = std::allocator<int>().allocate(10);
        memdiag::tracking_allocator<int>{t}.deallocate(p, 10);
        const memdiag::allocation_stats s = t.stats();
        CHECK(s.deallocations == 1);
        CHECK(s.allocations == 0);
        CHECK(s.live_bytes == -40);  // defined: live figures are signed
        CHECK(s.live_allocations == -1);
        // Counting goes on normally afterwards.
        memdiag::tracking_allocator<int> a{t};
        a.deallocate(a.allocate(10), 10);
        CHECK(t.stats().live_bytes == -40);
    }
    SECTION("a block allocated on a thread that has exited, freed here") {
        memdiag::tracking_allocator<char> a{t};
        char* p = nullptr;
        std::thread th([&] { p = a.allocate(123); });
        th.join();
        a.deallocate(p, 123);
        CHECK(t.stats().live_bytes == 0);
        CHECK(t.stats().allocations == 1);
    }
    SECTION("global delete of a block from beneath the hook") {
        if (!memdiag::global_hook_installed()) return;
        const memdiag::allocation_stats before = memdiag::process_stats();
        void* p = memdiag::detail::internal_malloc(100);  // never seen by the hook
        ::operator delete(p);
        const memdiag::allocation_stats d = memdiag::process_stats() - before;
        CHECK(d.deallocations == 1);
        CHECK(d.allocations == 0);
        CHECK(d.live_bytes < 0);
    }
    SECTION("scopes that see only the free") {
        memdiag::tracking_allocator<char> a{t};
        char* p = a.allocate(50);
        memdiag::allocation_stats used;
        bool leaking = true;
        {
            memdiag::leak_check lc{breach_policy::throw_exception};
            scoped_budget b{limits{}.max_live_bytes(0).max_peak_bytes(0)};
            a.deallocate(p, 50);
            used = b.used();
            leaking = lc.leaking();
        }  // a block older than the scope: its free neither breaches nor throws
        CHECK(used.live_bytes == 0);  // leak checks own only blocks born inside (issue 13)
        CHECK(used.peak_live_bytes == 0);
        CHECK_FALSE(leaking);
    }
}

// ---- the global hook and the C functions ------------------------------------------------

TEST_CASE("global new: zero, huge and nothrow sizes", "[bad_input][global_new]") {
    const bool hooked = memdiag::global_hook_installed();
    const memdiag::allocation_stats before = memdiag::process_stats();
#if MEMDIAG_TSAN
    // ThreadSanitizer's runtime defines operator new (the hook is off there)
    // and ends the process on an impossible size instead of throwing.
    WARN("throwing new of an impossible size: not checked under ThreadSanitizer (its operator new aborts instead)");
#else
    CHECK_THROWS_AS(sink = ::operator new(huge_size), std::bad_alloc);
    CHECK_THROWS_AS(sink = ::operator new[](max_size), std::bad_alloc);
#if defined(__cpp_aligned_new)
    CHECK_THROWS_AS(sink = ::operator new(huge_size, std::align_val_t{64}), std::bad_alloc);
#endif
#endif
    CHECK(::operator new(huge_size, std::nothrow) == nullptr);
#if defined(__cpp_aligned_new)
    CHECK(::operator new(huge_size, std::align_val_t{4096}, std::nothrow) == nullptr);
#endif
    if (hooked) {
        const memdiag::allocation_stats d = memdiag::process_stats() - before;
        CHECK(d.live_bytes <= 0);  // no failed allocation was counted (Catch may free)
    }
    void* a = ::operator new(0);
    void* b = ::operator new(0);
    CHECK(a != nullptr);
    CHECK(a != b);
    ::operator delete(a);
    ::operator delete(b);
    ::operator delete(nullptr);
    ::operator delete[](nullptr);
#if defined(__cpp_sized_deallocation)  // clang enables it only with -fsized-deallocation
    ::operator delete(nullptr, std::size_t{0});
#endif
}

TEST_CASE("C functions: overflowing and contradictory arguments", "[bad_input][malloc]") {
    errno = 0;
    CHECK(std::malloc(huge_size) == nullptr);
    CHECK(errno == ENOMEM);
    errno = 0;
    volatile std::size_t half = (~std::size_t{0} >> 1) + 2;
    CHECK(std::calloc(half, 2) == nullptr);  // count * size overflows
    CHECK(errno == ENOMEM);
    CHECK(std::calloc(huge_size, 1) == nullptr);
    void* p = std::malloc(10);
    REQUIRE(p != nullptr);
    std::memset(p, 7, 10);
    CHECK(std::realloc(p, huge_size) == nullptr);  // the old block is untouched
    CHECK(static_cast<unsigned char*>(p)[9] == 7);
    std::free(p);
    std::free(nullptr);
    void* out = &out;
    CHECK(posix_memalign(&out, 3, 10) == EINVAL);          // not a power of two
    CHECK(posix_memalign(&out, 1, 10) == EINVAL);          // below sizeof(void*)
    CHECK(posix_memalign(&out, 64, huge_size) == ENOMEM);
    CHECK(out == &out);  // untouched on failure
    if (memdiag::malloc_hook_installed()) {
        // memdiag's own checks (glibc would accept some of these).
        errno = 0;
        volatile std::size_t three = 3;  // opaque: clang rejects a constant non-power-of-two alignment
        CHECK(aligned_alloc(three, 10) == nullptr);
        CHECK(errno == EINVAL);
    }
    const memdiag::allocation_stats before = memdiag::process_stats();
    void* z = std::malloc(0);  // unique pointer or null, both freeable
    std::free(z);
    void* r = std::realloc(nullptr, 16);
    r = std::realloc(r, 0);  // frees (glibc returns null)
    std::free(r);
    if (memdiag::malloc_hook_installed()) {
        const memdiag::allocation_stats d = memdiag::process_stats() - before;
        CHECK(d.allocations == d.deallocations);
        CHECK(d.live_bytes == 0);
    }
}

// ---- budgets -----------------------------------------------------------------------

TEST_CASE("budgets: zero, maximal and contradictory limits", "[bad_input][budget]") {
    memdiag::tracker t{"limits"};
    memdiag::tracking_allocator<char> a{t};
    auto try_allocate = [&](std::size_t n) {
        try {
            a.deallocate(a.allocate(n), n);
            return true;
        } catch (const memdiag::budget_exceeded&) {
            return false;
        }
    };
    {
        scoped_budget b{limits{}.max_allocations(0)};
        CHECK_FALSE(try_allocate(1));
    }
    {
        scoped_budget b{limits{}.max_bytes(0)};
        CHECK(try_allocate(0));  // zero bytes stay within zero
        CHECK_FALSE(try_allocate(1));
    }
    {
        // Maximal limits behave as none.
        scoped_budget b{limits{}.max_allocations(limits::unlimited).max_bytes(limits::unlimited)};
        CHECK(try_allocate(1 << 20));
        CHECK(b.breaches() == 0);
    }
    {
        // Contradictory: plenty of allocations but no bytes; the tighter one wins.
        scoped_budget b{limits{}.max_allocations(1000).max_bytes(10).max_peak_bytes(5)};
        CHECK(try_allocate(5));
        CHECK_FALSE(try_allocate(6));
        CHECK(b.breaches() == 1);
    }
    {
        // The callback policy with no callback lets the allocation proceed.
        scoped_budget b{limits{}.max_allocations(0), breach_policy::callback};
        CHECK(try_allocate(8));
        CHECK(b.breaches() == 1);
    }
    {
        // A null name and an out-of-range policy value.
        scoped_budget b{limits{}.max_allocations(0), breach_policy::report, memdiag::scope_kind::this_thread,
                        nullptr};
        CHECK(try_allocate(8));
        scoped_budget odd{limits{}.max_allocations(0), static_cast<breach_policy>(99)};
        CHECK(try_allocate(8));  // unknown policies let the allocation proceed
    }
}

TEST_CASE("budgets ended out of order, twice, or after their thread", "[bad_input][budget]") {
    memdiag::tracker t{"order"};
    memdiag::tracking_allocator<char> a{t};
    std::optional<scoped_budget> outer, inner;
    outer.emplace(limits{}.max_allocations(100));
    inner.emplace(limits{}.max_allocations(100));
    outer.reset();  // the outer one ends first
    a.deallocate(a.allocate(1), 1);
    CHECK(inner->used().allocations == 1);
    inner->finish();
    inner->finish();  // later calls do nothing
    inner.reset();
    CHECK(memdiag::detail::tls_head.guards == 0);

    // A handle outliving its budget, joined by a thread later: inert.
    memdiag::budget_handle h;
    {
        scoped_budget b{limits{}.max_allocations(0)};
        h = b.handle();
        CHECK(h.active());
    }
    CHECK_FALSE(h.active());
    bool ok = true;
    std::thread th([&] {
        memdiag::budget_join join{h};
        try {
            a.deallocate(a.allocate(1), 1);
        } catch (...) {
            ok = false;
        }
    });
    th.join();
    CHECK(ok);
    memdiag::budget_join nothing{memdiag::budget_handle{}};  // default handle joins nothing
}

TEST_CASE("measurement helpers with zero runs and empty work", "[bad_input][budget]") {
    int calls = 0;
    CHECK(memdiag::allocs_per_run(0, [&] { ++calls; }) == 0.0);
    CHECK(calls == 1);  // the warm-up call only
    CHECK(memdiag::measure([] {}).allocations == 0);

    auto r = memdiag::fail_each_allocation([] {}, [] {}, 0);  // no runs allowed
    CHECK(r.attempts == 0);
    CHECK_FALSE(r.completed);
    r = memdiag::fail_each_allocation([] {}, [] {});  // nothing to fail
    CHECK(r.attempts == 1);
    CHECK(r.ok());

    memdiag::tracker t{"threshold"};
    memdiag::tracking_allocator<char> a{t};
    int failures = 0;
    r = memdiag::fail_after_bytes(
        std::numeric_limits<std::uint64_t>::max(), [&] { a.deallocate(a.allocate(1000), 1000); },
        [&] { ++failures; });
    CHECK(r.ok());
    CHECK(failures == 0);
    r = memdiag::fail_after_bytes(
        0, [&] { a.deallocate(a.allocate(1), 1); }, [&] { ++failures; });
    CHECK(r.injected_failures == 1);
    CHECK(failures == 1);
}

namespace {
std::atomic<int> soft_calls{0};
}

TEST_CASE("soft limit: zero, huge and nonsense arguments", "[bad_input][soft_limit]") {
    auto cb = [](const memdiag::allocation_stats&) { ++soft_calls; };
    memdiag::set_soft_limit(0, cb);  // removes
    CHECK(memdiag::detail::g_soft_limit.threshold.load() == -1);
    memdiag::set_soft_limit(1000, nullptr);  // removes
    CHECK(memdiag::detail::g_soft_limit.threshold.load() == -1);
    memdiag::set_soft_limit(~std::uint64_t{0}, cb, std::nan(""));  // capped, fraction defaulted
    CHECK(memdiag::detail::g_soft_limit.threshold.load() == std::numeric_limits<std::int64_t>::max());
    CHECK(memdiag::detail::g_soft_limit.rearm_below.load() > 0);
    for (double f : {-1.0, 0.0, 2.0, std::numeric_limits<double>::infinity()}) {
        memdiag::set_soft_limit(1 << 20, cb, f);
        CHECK(memdiag::detail::g_soft_limit.rearm_below.load() == static_cast<std::int64_t>((1 << 20) * 0.9));
    }
    memdiag::set_soft_limit(0, nullptr);
    CHECK(soft_calls == 0);
}

// ---- formatting into caller buffers ---------------------------------------------------------

TEST_CASE("formatting into tiny or missing buffers", "[bad_input][format]") {
    memdiag::allocation_stats s;
    s.allocations = ~std::uint64_t{0};
    s.bytes_freed = ~std::uint64_t{0};
    s.update_live();
    const int n = s.format(nullptr, 0);  // the length it would need
    CHECK(n > 0);
    char one[1] = {'x'};
    volatile std::size_t one_size = sizeof one;  // opaque: the compiler would warn about the truncation
    CHECK(s.format(one, one_size) == n);
    CHECK(one[0] == '\0');
    CHECK(s.to_string().size() == static_cast<std::size_t>(n));

    memdiag::breach_info info;
    info.budget_name = nullptr;
    CHECK(memdiag::format_breach(info, nullptr, 0) == 0);
    char small[8];
    CHECK(memdiag::format_breach(info, small, sizeof small) == sizeof small - 1);
    info.where.file = nullptr;
    info.attempted = 10;
    info.limit = 20;  // attempted below the limit: "0 over", not a wrapped number
    char big[512];
    memdiag::format_breach(info, big, sizeof big);
    CHECK(std::string(big).find("(0 over)") != std::string::npos);
    memdiag::budget_exceeded e{info};
    CHECK(std::string(e.info().budget_name).empty());
    CHECK(std::strlen(e.what()) > 0);

    CHECK(std::string(memdiag::result::failure(nullptr).message()) == "failed");
    CHECK(std::string(memdiag::result::failure("").message()) == "failed");
    const std::string long_msg(1000, 'm');
    CHECK(std::strlen(memdiag::result::failure(long_msg.c_str()).message()) ==
          memdiag::result::message_capacity - 1);
}

TEST_CASE("stats arithmetic on readings in the wrong order", "[bad_input][stats]") {
    memdiag::allocation_stats small, large;
    large.allocations = 10;
    large.bytes_allocated = 1000;
    large.peak_live_bytes = 1000;
    large.update_live();
    const memdiag::allocation_stats d = small - large;  // wraps, defined for unsigned
    CHECK(d.allocations == ~std::uint64_t{0} - 9);
    CHECK(d.peak_live_bytes == 0);
    CHECK(d.live_bytes == -1000);
}

// ---- stack capture and the environment ----------------------------------------------------

TEST_CASE("capture_stack: null buffer, zero frames, huge skip", "[bad_input][stack]") {
    std::uintptr_t frames[4] = {};
    CHECK(memdiag::capture_stack(nullptr, 10) == 0);
    CHECK(memdiag::capture_stack(frames, 0) == 0);
    CHECK(memdiag::capture_stack(frames, 4, 1000000) == 0);
    for (auto m : {memdiag::stack_method::automatic, memdiag::stack_method::frame_pointers,
                   memdiag::stack_method::unwinder})
        CHECK(memdiag::capture_stack(frames, 4, 0, m) <= 4);
}

TEST_CASE("env: sizes and requirements at the extremes", "[bad_input][env]") {
    using memdiag::env::parse_size;
    for (const char* bad : {"", " ", "-1", "K", "1.", ".5K", "1..5K", "18446744073709551616", "16E", "17179869184G",
                            "1.1234567K", "12 parsecs", "0x10", "1e9"}) {
        INFO(bad);
        CHECK_FALSE(parse_size(bad).known);
        CHECK_FALSE(parse_size(bad).reason.empty());
    }
    CHECK(parse_size("18446744073709551615").value == ~std::uint64_t{0});
    CHECK(parse_size("0").known);
    CHECK(parse_size(std::string_view("4K\0junk", 7)).known == false);
    CHECK(memdiag::env::format_bytes(~std::uint64_t{0}) == "16.0 EiB");
    CHECK(memdiag::env::format_bytes(0) == "0 B");

    const memdiag::env::report r = memdiag::env::collect();
    CHECK(memdiag::env::require_memory(0, r).passed());
    const memdiag::env::check too_much = memdiag::env::require_memory(~std::uint64_t{0}, r);
    CHECK_FALSE(too_much.message.empty());
    CHECK(too_much.level != memdiag::env::severity::ok);
    CHECK(memdiag::env::require_address_space(0, r).passed());
    CHECK_FALSE(memdiag::env::require_address_space(~std::uint64_t{0}, r).passed());
    CHECK(memdiag::env::json_escape(std::string_view("\0\x7f\xc0\x80", 4)).find('\0') == std::string::npos);
}
