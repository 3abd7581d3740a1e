// Scopes that outlive their thread's thread_local objects (issue 12, item 2).
// Linked into memdiag_tests, which replaces neither operator new nor malloc:
// a thread's first event is the one the test makes, so the order in which the
// thread_local objects and memdiag's reaper are constructed is the test's.
#include <memdiag/allocator.hpp>
#include <memdiag/budget.hpp>

#include <atomic>
#include <optional>
#include <thread>

#include "catch.hpp"

using memdiag::limits;
using memdiag::scoped_budget;

namespace {
memdiag::tracker& exit_tracker() {
    static memdiag::tracker t{"thread exit"};
    return t;
}
void churn_exit(int n) {
    memdiag::tracking_allocator<char> a{exit_tracker()};
    for (int i = 0; i < n; ++i) a.deallocate(a.allocate(16), 16);
}
/// Allocates when destroyed: constructed before a scope, so destroyed after
/// memdiag's reaper (registered when the scope is opened) and before the scope.
struct allocates_at_exit {
    ~allocates_at_exit() { churn_exit(5); }
};
}  // namespace

TEST_CASE("thread exit: a thread_local budget_join outlives the thread's reaper", "[lifetime][threads]") {
    scoped_budget b{limits{}, "joined"};
    memdiag::budget_handle h = b.handle();
    std::thread worker([h] {
        // Constructed in this order: `join` (empty), `late`, then the join
        // itself, which creates the thread state and its reaper. Destroyed in
        // reverse: the reaper, `late` (allocates), the join.
        thread_local std::optional<memdiag::budget_join> join;
        thread_local allocates_at_exit late;
        (void)&late;
        join.emplace(h);
        churn_exit(3);
    });
    worker.join();
    // The body's 3 and the 5 made after the reaper ran both count.
    CHECK(b.used().allocations == 8);
}

TEST_CASE("thread exit: a thread_local scoped_budget sees the thread's last allocations", "[lifetime][threads]") {
    std::atomic<std::uint64_t> seen{0};
    std::thread worker([&] {
        struct publishes {
            std::optional<scoped_budget> scope;
            std::atomic<std::uint64_t>* out = nullptr;
            ~publishes() {
                if (scope) *out = scope->used().allocations;
            }
        };
        thread_local publishes p;
        thread_local allocates_at_exit late;
        (void)&late;
        p.out = &seen;
        p.scope.emplace(limits{}, "thread_local scope");  // first event of the thread: creates its state
        churn_exit(2);
    });
    worker.join();
    CHECK(seen.load() == 7);
}
