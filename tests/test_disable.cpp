// MEMDIAG_DISABLE: every facility keeps its API and does nothing. Built as its
// own binary (memdiag_disable_tests) with MEMDIAG_DISABLE defined for every TU.
#define MEMDIAG_REPLACE_GLOBAL_NEW
#define MEMDIAG_REPLACE_MALLOC
#include <memdiag/global_new.hpp>
#include <memdiag/memdiag.hpp>
#include <memdiag/resource.hpp>
#include <memdiag/stack.hpp>

#include <cstdlib>
#include <map>
#include <memory_resource>
#include <string>
#include <thread>
#include <vector>

#include "catch.hpp"

#if MEMDIAG_ENABLED
#error "test_disable.cpp must be compiled with MEMDIAG_DISABLE"
#endif

using memdiag::breach_policy;
using memdiag::limits;
using memdiag::scoped_budget;

namespace {
thread_local void* volatile sink = nullptr;  // per thread: tests allocate from several threads
const memdiag::allocation_stats zero{};

void churn() {
    for (int i = 0; i < 100; ++i) {
        sink = ::operator new(64);
        ::operator delete(sink);
        sink = std::malloc(32);
        std::free(sink);
    }
}
}  // namespace

TEST_CASE("disabled: no hook is installed and nothing is counted", "[disable]") {
    CHECK_FALSE(memdiag::global_hook_installed());
    CHECK_FALSE(memdiag::malloc_hook_installed());
    churn();
    std::thread th(churn);
    th.join();
    CHECK(memdiag::process_stats() == zero);
}

TEST_CASE("disabled: trackers, allocators and resources work and count nothing", "[disable]") {
    memdiag::tracker t{"off"};
    {
        std::vector<int, memdiag::tracking_allocator<int>> v{memdiag::tracking_allocator<int>{t}};
        for (int i = 0; i < 1000; ++i) v.push_back(i);
        CHECK(v[999] == 999);
        using alloc = memdiag::tracking_allocator<std::pair<const int, std::string>>;
        std::map<int, std::string, std::less<int>, alloc> m{alloc{t}};
        m.emplace(1, std::string(100, 'x'));
        CHECK(m.at(1).size() == 100);
    }
    memdiag::tracking_resource res;
    {
        std::pmr::vector<std::pmr::string> pv{&res};
        pv.emplace_back(200, 'y');
        CHECK(pv[0].size() == 200);
    }
    CHECK(t.stats() == zero);
    CHECK(res.stats() == zero);
    CHECK(memdiag::default_tracker_stats() == zero);
    CHECK(std::string(t.name()) == "off");
    // The allocator's contract is unchanged: impossible sizes still throw.
    memdiag::tracking_allocator<int> a{t};
    CHECK_THROWS_AS(a.allocate(~std::size_t{0}), std::bad_alloc);
}

TEST_CASE("disabled: budgets never breach, measurements read zero", "[disable]") {
    memdiag::tracker t{"off"};
    memdiag::tracking_allocator<char> a{t};
    {
        scoped_budget guard{limits{}.max_allocations(0).max_bytes(0).max_peak_bytes(0).max_live_bytes(0)};
        char* p = a.allocate(100);
        churn();
        CHECK(guard.breaches() == 0);
        CHECK(guard.used() == zero);
        guard.finish();  // would throw for the live bytes if enabled
        a.deallocate(p, 100);
    }
    {
        scoped_budget process{limits{}.max_allocations(0), breach_policy::report_and_abort, memdiag::scope_kind::process};
        std::thread th(churn);
        th.join();
        CHECK(process.breaches() == 0);
        memdiag::budget_handle h = process.handle();
        CHECK_FALSE(h.active());
        memdiag::budget_join join{h};
    }
    CHECK(memdiag::measure(churn) == zero);
    CHECK(memdiag::allocs_per_run(10, churn) == 0.0);
    char* leaked = nullptr;
    {
        memdiag::leak_check lc{breach_policy::throw_exception};
        leaked = a.allocate(10);
        CHECK_FALSE(lc.leaking());
    }  // no throw
    a.deallocate(leaked, 10);
}

TEST_CASE("disabled: fault injection injects nothing", "[disable]") {
    int failures = 0;
    auto r = memdiag::fail_each_allocation([] { std::vector<std::string> v(10, std::string(50, 'z')); },
                                           [&] { ++failures; });
    CHECK(r.completed);
    CHECK(r.ok());
    CHECK(r.attempts == 1);
    CHECK(failures == 0);
    r = memdiag::fail_after_bytes(0, [] { sink = new int(1); delete static_cast<int*>(sink); }, [&] { ++failures; });
    CHECK(r.completed);
    CHECK(failures == 0);
}

namespace {
int soft_calls = 0;
}

TEST_CASE("disabled: the soft limit never fires, stacks are empty", "[disable]") {
    memdiag::set_soft_limit(1, [](const memdiag::allocation_stats&) { ++soft_calls; });
    std::vector<char> big(1 << 20);
    sink = big.data();
    churn();
    memdiag::set_soft_limit(0, nullptr);
    CHECK(soft_calls == 0);
    std::uintptr_t frames[16];
    CHECK(memdiag::capture_stack(frames, 16) == 0);
}

TEST_CASE("disabled: the environment report still works", "[disable]") {
    // env is not tracking: it reports in disabled builds too.
    const memdiag::env::report e = memdiag::env::collect();
    CHECK_FALSE(e.to_text().empty());
    CHECK(memdiag::env::parse_size("1K").value == 1024);
}
