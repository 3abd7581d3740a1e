// memdiag/leak_check.hpp - a scope that reports what it allocated and did not free.
#pragma once

#include "budget.hpp"

namespace memdiag {

/// A check at scope end that nothing allocated inside was left allocated.
/// With breach_policy::report (the default) it prints what leaked; with
/// throw_exception its destructor (or finish()) throws budget_exceeded.
/// A leak is a block allocated inside the scope (this thread, or threads
/// joined to it) and not freed when it ends; freeing memory allocated before
/// the scope neither hides a leak nor makes the figures negative (see
/// limits::max_live_bytes). Cost: while a leak_check is open, each allocation
/// and free of its thread also updates a per-thread table of live blocks.
/// Exception safety: as scoped_budget (construction and used() never throw;
/// the destructor does not throw while an exception is in flight).
class leak_check {
public:
    /// Starts watching this thread's allocations.
    explicit leak_check(breach_policy policy = breach_policy::report, const char* name = "leak_check",
                        source_place where = source_place::caller()) noexcept
        : scope_(limits{}.max_live_bytes(0), policy, scope_kind::this_thread, name, where) {}
    /// Bytes and allocations leaked so far: live_bytes and live_allocations
    /// are the blocks allocated inside the scope and still held (never negative);
    /// the other figures count every event of the scope.
    allocation_stats used() const noexcept { return scope_.used(); }
    /// True when something is still held.
    bool leaking() const noexcept { return used().live_bytes > 0; }
    /// Ends the check now (throws with throw_exception if something leaked).
    void finish() { scope_.finish(); }

private:
    scoped_budget scope_;
};

}  // namespace memdiag
