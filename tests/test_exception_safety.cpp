// Exception safety: the guarantees memdiag's public operations document, proved
// with memdiag's own fault injection. Linked into memdiag_reliability_tests (the
// global hook is installed there, except under ThreadSanitizer).
#include <memdiag/allocator.hpp>
#include <memdiag/budget.hpp>
#include <memdiag/env.hpp>
#include <memdiag/global_new.hpp>
#include <memdiag/resource.hpp>

#include <map>
#include <memory_resource>
#include <stdexcept>
#include <string>
#include <vector>

#include "catch.hpp"
#include "flaky_upstream.hpp"

using memdiag::breach_policy;
using memdiag::limits;
using memdiag::scoped_budget;

namespace {

thread_local void* volatile sink = nullptr;  // per thread: tests allocate from several threads

template <class T>
using tracked_vector = std::vector<T, memdiag::tracking_allocator<T>>;

// The thread is back to the fast path: no scope, no injection, nothing armed.
bool thread_is_quiet() {
    memdiag::detail::thread_state* s = memdiag::detail::current_thread_state();
    return memdiag::detail::tls_head.guards == 0 && (s == nullptr || (s->injection == nullptr && s->scopes == nullptr));
}

using memdiag_test::flaky_allocator;
using memdiag_test::flaky_resource;

}  // namespace

// ---- fault injection leaves the thread as it found it ------------------------

TEST_CASE("fault injection: an exception other than bad_alloc leaves the thread as it was",
          "[exception_safety][injection]") {
    REQUIRE(thread_is_quiet());
    memdiag::tracker t{"escape"};
    int runs = 0;
    // Run 1 fails at its first allocation (injected); run 2 gets past it and
    // throws an exception of its own, which must reach the caller...
    // The exception type allocates nothing itself (std::runtime_error's message
    // would be the run's next allocation, failed in turn), so runs stay 2 with
    // and without the malloc hook that sees the exception object.
    struct not_an_allocation_failure {};
    auto work = [&] {
        ++runs;
        tracked_vector<int> v{memdiag::tracking_allocator<int>{t}};
        v.reserve(8);
        throw not_an_allocation_failure{};
    };
    CHECK_THROWS_AS(memdiag::fail_each_allocation(work, [] {}), not_an_allocation_failure);
    CHECK(runs == 2);
    // ...and the thread must not stay armed with the run's (dead) injection state.
    CHECK(thread_is_quiet());
    memdiag::tracking_allocator<int> a{t};
    for (int i = 0; i < 10; ++i) a.deallocate(a.allocate(1), 1);  // none may be failed
    CHECK(t.stats().live_bytes == 0);
}

TEST_CASE("fault injection: code translating the injected failure leaves the thread as it was",
          "[exception_safety][injection]") {
    auto work = [&] {
        try {
            sink = memdiag::tracking_allocator<char>{}.allocate(10);
            memdiag::tracking_allocator<char>{}.deallocate(static_cast<char*>(sink), 10);
        } catch (const std::bad_alloc&) {
            throw std::runtime_error("translated");
        }
    };
    CHECK_THROWS_AS(memdiag::fail_each_allocation(work, [] {}), std::runtime_error);
    CHECK(thread_is_quiet());
}

TEST_CASE("fault injection: the enclosing budget still counts exactly", "[exception_safety][injection]") {
    memdiag::tracker t{"outer"};
    scoped_budget outer{limits{}, "outer"};
    const auto before = outer.used();
    auto r = memdiag::fail_each_allocation(
        [&] {
            tracked_vector<int> v{memdiag::tracking_allocator<int>{t}};
            for (int i = 0; i < 50; ++i) v.push_back(i);
        },
        [&] { CHECK(t.stats().live_bytes == 0); });
    CHECK(r.ok());
    const auto d = outer.used() - before;
    CHECK(d.live_bytes == 0);
    CHECK(d.allocations == d.deallocations);
    CHECK(d.allocations >= t.stats().allocations);  // the outer budget saw every counted one
    CHECK(t.stats().allocations == t.stats().deallocations);
}

// ---- strong guarantee: a failed allocation changes no figure ------------------

TEST_CASE("tracking_allocator::allocate: strong guarantee", "[exception_safety][allocator]") {
    memdiag::tracker t{"strong"};
    bool fail = false;
    using alloc = memdiag::tracking_allocator<int, flaky_allocator<int>>;
    alloc a{t, flaky_allocator<int>{&fail}};
    int* kept = a.allocate(4);
    const memdiag::allocation_stats before = t.stats();

    SECTION("the upstream throws") {
        fail = true;
        CHECK_THROWS_AS(a.allocate(10), std::bad_alloc);
        fail = false;
        CHECK(t.stats() == before);
    }
    SECTION("a budget refuses") {
        // No Catch macro inside the budget: they allocate too.
        bool threw = false, unchanged = false;
        std::uint64_t breaches = 0;
        {
            scoped_budget b{limits{}.max_bytes(8)};
            const auto used = b.used();
            try {
                sink = a.allocate(10);
            } catch (const memdiag::budget_exceeded&) {
                threw = true;
            }
            const auto now = b.used();
            // The exception object's free (global hook) is the only event allowed.
            unchanged = now.allocations == used.allocations && now.bytes_allocated == used.bytes_allocated;
            breaches = b.breaches();
        }
        CHECK(threw);
        CHECK(unchanged);
        CHECK(breaches == 1);
        CHECK(t.stats() == before);
    }
    SECTION("fault injection fails it") {
        auto r = memdiag::fail_each_allocation([&] { a.deallocate(a.allocate(10), 10); }, [&] {
            CHECK(t.stats() == before);
        });
        CHECK(r.ok());
        CHECK(r.injected_failures == 1);
    }
    SECTION("the size overflows") {
        CHECK_THROWS_AS(a.allocate(~std::size_t{0}), std::bad_alloc);
        CHECK(t.stats() == before);
    }
    CHECK(t.stats().live_bytes == before.live_bytes);
    a.deallocate(kept, 4);
    CHECK(t.stats().live_bytes == 0);
}

TEST_CASE("tracking_resource::allocate: strong guarantee", "[exception_safety][resource]") {
    flaky_resource upstream;
    memdiag::tracking_resource res{&upstream};
    void* kept = res.allocate(32);
    const memdiag::allocation_stats before = res.stats();
    SECTION("the upstream throws") {
        upstream.fail = true;
        CHECK_THROWS_AS(res.allocate(64), std::bad_alloc);
        upstream.fail = false;
        CHECK(res.stats() == before);
    }
    SECTION("a budget refuses") {
        bool threw = false;
        {
            scoped_budget b{limits{}.max_allocations(0)};
            try {
                sink = res.allocate(64);
            } catch (const memdiag::budget_exceeded&) {
                threw = true;
            }
        }
        CHECK(threw);
        CHECK(res.stats() == before);
    }
    SECTION("fault injection fails it") {
        auto r = memdiag::fail_each_allocation([&] { res.deallocate(res.allocate(64), 64); }, [&] {
            CHECK(res.stats() == before);
        });
        CHECK(r.ok());
    }
    CHECK(res.stats().live_bytes == before.live_bytes);
    res.deallocate(kept, 32);
    CHECK(res.stats().live_bytes == 0);
}

TEST_CASE("a breach's exception object keeps the process figures balanced", "[exception_safety][global_new]") {
    if (!memdiag::global_hook_installed()) return;  // ThreadSanitizer builds
    memdiag::tracker t{"thrower"};
    memdiag::tracking_allocator<char> a{t};
    const memdiag::allocation_stats before = memdiag::process_stats();
    int caught = 0;
    for (int i = 0; i < 100; ++i) {
        try {
            scoped_budget b{limits{}.max_allocations(0)};
            sink = a.allocate(1);
        } catch (const memdiag::budget_exceeded&) {
            ++caught;
        }
    }
    const memdiag::allocation_stats d = memdiag::process_stats() - before;
    CHECK(caught == 100);
    CHECK(d.allocations == d.deallocations);  // each exception object counted out and back
    CHECK(d.live_bytes == 0);
}

TEST_CASE("global operator new: a failed allocation is not counted", "[exception_safety][global_new]") {
    if (!memdiag::global_hook_installed()) return;  // ThreadSanitizer builds
    memdiag::allocation_stats before, after_throw, after_nothrow;
    void* nothrow_result = &before;
    auto r = memdiag::fail_after_bytes(
        0,
        [&] {
            before = memdiag::process_stats();
            try {
                sink = ::operator new(100);
            } catch (const std::bad_alloc&) {
                after_throw = memdiag::process_stats();
            }
            nothrow_result = ::operator new(100, std::nothrow);
            after_nothrow = memdiag::process_stats();
        },
        [] {});
    CHECK(r.attempts == 1);
    CHECK(nothrow_result == nullptr);
    CHECK(after_throw.allocations == before.allocations);
    CHECK(after_throw.bytes_allocated == before.bytes_allocated);
    CHECK(after_nothrow.allocations == before.allocations);
}

TEST_CASE("a throw-policy breach leaves the budget's figures unchanged", "[exception_safety][budget]") {
    memdiag::tracker t{"breach"};
    memdiag::tracking_allocator<char> a{t};
    bool threw = false, unchanged = false;
    memdiag::allocation_stats end;
    std::uint64_t breaches = 0;
    {
        // Counts only the tracking allocator's events: the global hook's would
        // include Catch's own allocations.
        scoped_budget b{limits{}.max_bytes(100)};
        char* p = a.allocate(60);
        const auto used = b.used();
        try {
            sink = a.allocate(60);
        } catch (const memdiag::budget_exceeded&) {
            threw = true;
        }
        const auto now = b.used();
        unchanged = now.allocations == used.allocations && now.bytes_allocated == used.bytes_allocated;
        char* q = a.allocate(40);  // still within the limit: succeeds
        end = b.used();
        a.deallocate(q, 40);
        a.deallocate(p, 60);
        breaches = b.breaches();
    }
    CHECK(threw);
    CHECK(unchanged);
    CHECK(end.bytes_allocated == 100);
    CHECK(end.allocations == 2);
    CHECK(breaches == 1);
}

// ---- destructors never throw while unwinding -----------------------------------

TEST_CASE("a leaking scope does not throw from its destructor while unwinding", "[exception_safety][budget]") {
    memdiag::tracker t{"unwind"};
    memdiag::tracking_allocator<char> a{t};
    char* leaked = nullptr;
    try {
        memdiag::leak_check lc{breach_policy::throw_exception};
        scoped_budget b{limits{}.max_live_bytes(0)};
        leaked = a.allocate(50);
        throw std::runtime_error("first");
    } catch (const std::runtime_error& e) {
        CHECK(std::string(e.what()) == "first");  // not std::terminate, not budget_exceeded
    }
    a.deallocate(leaked, 50);
    CHECK(thread_is_quiet());
}

TEST_CASE("finish() throws once; the destructor then stays quiet", "[exception_safety][budget]") {
    memdiag::tracker t{"finish"};
    memdiag::tracking_allocator<char> a{t};
    char* leaked = nullptr;
    int throws = 0;
    try {
        memdiag::leak_check lc{breach_policy::throw_exception};
        leaked = a.allocate(10);
        try {
            lc.finish();
        } catch (const memdiag::budget_exceeded& e) {
            ++throws;
            CHECK(e.which() == memdiag::limit_kind::live_bytes);
        }
        lc.finish();  // no second report
    } catch (...) {
        ++throws;
    }
    CHECK(throws == 1);
    a.deallocate(leaked, 10);
    CHECK(thread_is_quiet());
}

// ---- operations that allocate are strong: they succeed or change nothing -------

TEST_CASE("allocating helpers are strong and leak-free under every failure", "[exception_safety]") {
    memdiag::allocation_stats s;
    s.allocations = 123456789;
    s.bytes_allocated = 987654321;
    s.update_live();
    std::string text;
    auto r = memdiag::fail_each_allocation([&] { text = s.to_string(); }, [&] { CHECK(text.empty()); });
    CHECK(r.ok());
    CHECK(text.find("allocations=123456789") == 0);

    std::string bytes, json;
    memdiag::env::fact<std::uint64_t> size;
    r = memdiag::fail_each_allocation(
        [&] {
            // Results land in locals and move out only when all succeeded.
            std::string b = memdiag::env::format_bytes(std::uint64_t{3} << 40);
            std::string j = memdiag::env::json_escape(std::string(40, '"') + "\x01\xff tail");
            memdiag::env::fact<std::uint64_t> z = memdiag::env::parse_size("1.5GiB and some words to make it long");
            bytes.swap(b);
            json.swap(j);
            size = std::move(z);
        },
        [] {});
    CHECK(r.ok());
    CHECK(bytes == memdiag::env::format_bytes(std::uint64_t{3} << 40));
    CHECK(!size.known);
}

TEST_CASE("env::collect under fault injection: no leak on any failure path", "[exception_safety][env]") {
    memdiag::env::report rep;
    std::size_t checks = 0;
    auto r = memdiag::fail_each_allocation(
        [&] {
            memdiag::env::report fresh = memdiag::env::collect();
            const std::string text = fresh.to_text() + fresh.to_json();
            rep = std::move(fresh);
            sink = const_cast<char*>(text.data());
        },
        [&] { ++checks; }, 20000);
    CHECK(r.completed);
    CHECK(r.ok());
    CHECK(checks == r.injected_failures);
    if (memdiag::global_hook_installed()) CHECK(r.injected_failures > 10);  // it does allocate
}

TEST_CASE("std::map insert through a tracking allocator keeps the strong guarantee",
          "[exception_safety][allocator]") {
    memdiag::tracker t{"map"};
    using alloc = memdiag::tracking_allocator<std::pair<const int, std::string>>;
    std::map<int, std::string, std::less<int>, alloc> m{alloc{t}};
    for (int i = 0; i < 20; ++i) m.emplace(i, std::string(40, 'a'));
    const auto snapshot = m;
    const std::int64_t live = t.stats().live_bytes;
    auto r = memdiag::fail_each_allocation([&] { m.emplace(100, std::string(40, 'b')); }, [&] {
        CHECK(m == snapshot);
        CHECK(t.stats().live_bytes == live);
    });
    CHECK(r.ok());
    CHECK(r.injected_failures >= 1);
    CHECK(m.size() == 21);
}
