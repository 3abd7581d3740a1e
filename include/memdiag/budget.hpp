// memdiag/budget.hpp - scoped memory budgets and measurement.
//
// A scoped_budget limits what a block of code may allocate. It sees every
// allocation memdiag sees (the global hook, tracking_allocator, tracking_resource):
//
//     memdiag::scoped_budget guard{memdiag::limits{}.max_allocations(10).max_bytes(4096)};
//     parse(input);   // the 11th allocation throws memdiag::budget_exceeded (a std::bad_alloc)
//
// Scope: the current thread by default (other threads' allocations never count);
// scope_kind::process counts every thread. Nested budgets compose: an allocation
// counts against every enclosing budget of its thread. Work handed to another
// thread joins the budget through a budget_handle (see budget_join).
//
// The budget layer, one concept per file (this header includes them all):
//   breach.hpp           policies, limit kinds, breach_info, format_breach, budget_exceeded
//   limits.hpp           limits, scope_kind
//   budget.hpp           scoped_budget, budget_handle, budget_join, measure, allocs_per_run
//   leak_check.hpp       leak_check
//   fault_injection.hpp  fail_each_allocation, fail_after_bytes
//   soft_limit.hpp       set_soft_limit
//   detail/scope_link.hpp       a budget's state, its links into thread chains, leak-check births
//   detail/breach_handling.hpp  noting crossings, acting on them by policy with no lock held
//   detail/budget_events.hpp    the layer's handlers in the event path, its part in fork handling
//   detail/birth_table.hpp      per-thread table of live blocks and when they were born
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <utility>

#include "breach.hpp"
#include "detail/budget_events.hpp"
#include "detail/scope_link.hpp"
#include "limits.hpp"
#include "stats.hpp"
#include "tracker.hpp"

namespace memdiag {

class budget_handle;

/// An RAII memory budget. While it lives, allocations of its scope (this thread,
/// or the process) are counted against its limits and a breach is handled by its
/// policy. At its end, max_live_bytes is checked against what the scope still
/// holds.
///
/// The destructor may throw budget_exceeded (breach_policy::throw_exception,
/// max_live_bytes crossed, no exception in flight); to end the scope without
/// that, call finish() and handle the result.
///
/// Exception safety: construction, used(), breaches(), budget_limits() and
/// handle() never throw (when memdiag cannot get memory for its counters, a
/// process-wide budget or a handle counts nothing). finish() and the destructor
/// end the scope first and then apply the policy, so when they throw the scope
/// is already closed; the destructor never throws while an exception is in
/// flight. Allocations refused by the budget are not counted (strong).
class scoped_budget {
public:
    /// Opens a budget with the given limits and policy, counting this thread's
    /// allocations (or the process's, with scope_kind::process).
    explicit scoped_budget(const limits& lim, breach_policy policy = breach_policy::throw_exception,
                           scope_kind kind = scope_kind::this_thread, const char* name = "budget",
                           source_place where = source_place::caller()) noexcept {
        open(lim, policy, kind, name, where);
    }

    /// Opens a this-thread budget named `name`, opened at `where` (MEMDIAG_HERE).
    scoped_budget(const limits& lim, const char* name, source_place where = source_place::caller(),
                  breach_policy policy = breach_policy::throw_exception) noexcept
        : scoped_budget(lim, policy, scope_kind::this_thread, name, where) {}

    /// Internal (fault injection): a this-thread scope whose used() live
    /// figures are per block, as a leak check's, without a live limit.
    scoped_budget(detail::births_tag, const limits& lim, const char* name) noexcept {
        link_.births = true;
        open(lim, breach_policy::throw_exception, scope_kind::this_thread, name, source_place::caller());
    }

    ~scoped_budget() noexcept(false) {
        if (finished_) return;
        const bool unwinding = std::uncaught_exceptions() > unwinding_at_start_;
        end(!unwinding);
    }
    scoped_budget(const scoped_budget&) = delete;
    scoped_budget& operator=(const scoped_budget&) = delete;

    /// What the scope has counted so far (allocations, bytes, live growth, peak
    /// growth); after it ended, what it had counted when it ended.
    allocation_stats used() const noexcept {
#if MEMDIAG_ENABLED
        if (finished_) return final_;
        return detail::scope_figures(link_, state_);
#else
        return {};
#endif
    }
    /// How many times a limit was crossed, on this thread and on joined ones
    /// (every policy; see breach_policy for what one crossing is): a loop of
    /// allocations past max_allocations is one, each allocation refused by
    /// throw_exception is one, max_live_bytes held at scope end is one.
    std::uint64_t breaches() const noexcept {
        return link_.breaches + (link_.shared != nullptr ? link_.shared->joined_breaches.load() : 0);
    }
    /// The limits this budget enforces.
    const limits& budget_limits() const noexcept { return link_.lim; }

    /// Ends the scope now: checks max_live_bytes, applies the policy (a
    /// throw_exception policy throws from here). Later calls do nothing.
    void finish() { end(true); }

    /// A handle that charges another thread's allocations to this budget while
    /// a budget_join holding it lives on that thread (see budget_join).
    budget_handle handle();

private:
    friend class budget_handle;
    void open(const limits& lim, breach_policy policy, scope_kind kind, const char* name,
              source_place where) noexcept {
#if MEMDIAG_ENABLED
        link_.lim = lim;
        link_.policy = policy;
        link_.name = name != nullptr ? name : "budget";
        link_.where = where;
        link_.process_wide = kind == scope_kind::process;
        (void)detail::verify_global_hook(detail::hook_linked());  // once: a bypassed hook is said, not silent
        detail::install_budget_handlers();
        if (link_.process_wide) {
            (void)detail::current_thread_state();  // registered: fork tells its scopes from others'

            link_.shared = detail::new_shared(&link_);
            if (link_.shared != nullptr) {
                detail::spin_guard g(detail::g_process_scopes_lock);
                link_.shared->next_process = detail::g_process_scopes;
                detail::g_process_scopes = link_.shared;
                detail::g_registry.global_slow.fetch_or(detail::slow_process_scope);
            }
        } else {
            state_ = detail::push_scope(link_);
        }
#else
        (void)lim, (void)policy, (void)kind, (void)name, (void)where;
#endif
    }
    void end(bool may_throw) {
        if (finished_) return;
#if MEMDIAG_ENABLED
        const allocation_stats u = used();
        final_ = u;
        finished_ = true;
        if (link_.process_wide) {
            if (link_.shared != nullptr) {
                detail::spin_guard g(detail::g_process_scopes_lock);
                for (detail::budget_shared** p = &detail::g_process_scopes; *p != nullptr; p = &(*p)->next_process) {
                    if (*p == link_.shared) {
                        *p = link_.shared->next_process;
                        break;
                    }
                }
                if (detail::g_process_scopes == nullptr)
                    detail::g_registry.global_slow.fetch_and(~detail::slow_process_scope);
            }
        } else {
            detail::pop_scope(state_, link_);
            state_ = nullptr;  // popping the last scope of an exited thread frees its state
        }
        if (link_.shared != nullptr) {
            link_.breaches += link_.shared->joined_breaches.load();
            link_.shared->closed.store(true);
            detail::release_shared(link_.shared);
            link_.shared = nullptr;
        }
        if (u.live_bytes > 0 && static_cast<std::uint64_t>(u.live_bytes) > link_.lim.live_bytes()) {
            breach_info info;
            info.which = limit_kind::live_bytes;
            info.limit = link_.lim.live_bytes();
            info.attempted = static_cast<std::uint64_t>(u.live_bytes);
            info.at_scope_end = true;
            info.live_allocations = u.live_allocations > 0 ? static_cast<std::uint64_t>(u.live_allocations) : 0;
            detail::on_breach(link_, info, may_throw);
        }
#else
        finished_ = true;
        (void)may_throw;
#endif
    }

    detail::scope_link link_;
    [[maybe_unused]] detail::thread_state* state_ = nullptr;  // unused under MEMDIAG_DISABLE
    allocation_stats final_;  ///< figures when the scope ended
    bool finished_ = false;
    int unwinding_at_start_ = std::uncaught_exceptions();
};

/// Lets another thread's allocations count against a scoped_budget. Obtain it
/// with scoped_budget::handle(), pass it (by value) into the thread or task, and
/// hold a budget_join there. A handle may outlive its budget: once the budget
/// has ended, the handle is inert and joining it does nothing.
/// Exception safety: every operation is noexcept (budget_join too).
class budget_handle {
public:
    budget_handle() noexcept = default;
    budget_handle(const budget_handle& o) noexcept : shared_(o.shared_) { retain(); }
    budget_handle& operator=(const budget_handle& o) noexcept {
        if (this != &o) {
            detail::release_shared(shared_);
            shared_ = o.shared_;
            retain();
        }
        return *this;
    }
    ~budget_handle() { detail::release_shared(shared_); }
    /// True when it refers to a budget that has not ended.
    bool active() const noexcept { return shared_ != nullptr && !shared_->closed.load(); }

private:
    friend class scoped_budget;
    friend class budget_join;
    explicit budget_handle(detail::budget_shared* s) noexcept : shared_(s) { retain(); }
    void retain() noexcept {
        if (shared_ != nullptr) shared_->refs.fetch_add(1, std::memory_order_relaxed);
    }
    detail::budget_shared* shared_ = nullptr;
};

inline budget_handle scoped_budget::handle() {
#if MEMDIAG_ENABLED
    if (link_.process_wide || finished_) return budget_handle(link_.shared);
    if (link_.shared == nullptr) {
        // From now on this thread counts into shared counters too, starting from
        // what it has counted so far.
        const allocation_stats so_far = used();
        link_.shared = detail::new_shared(&link_);
        if (link_.shared == nullptr) return budget_handle();
        link_.shared->allocations.store(so_far.allocations);
        link_.shared->deallocations.store(so_far.deallocations);
        link_.shared->bytes.store(so_far.bytes_allocated);
        link_.shared->freed.store(so_far.bytes_freed);
        // Net growth (a leak check's used() gives its born figures instead).
        link_.shared->live.store(static_cast<std::int64_t>(so_far.bytes_allocated - so_far.bytes_freed));
        link_.shared->peak.store(so_far.peak_live_bytes);
        link_.shared->born_bytes.store(link_.born_bytes);
        link_.shared->born_allocations.store(link_.born_allocations);
    }
    return budget_handle(link_.shared);
#else
    return budget_handle();
#endif
}

/// Joins the calling thread to a budget for as long as it lives: its
/// allocations count against that budget (and breach it, by its policy).
/// On a thread that already counts into that budget (its own thread, or a
/// join already held) it does nothing: allocations count once.
class budget_join {
public:
    /// Joins h's budget; a default or ended handle joins nothing.
    explicit budget_join(const budget_handle& h) noexcept : handle_(h) {
#if MEMDIAG_ENABLED
        if (!handle_.active()) return;
        // Already counted here (the budget's own thread, or joined twice, e.g.
        // a task pool running the task inline): joining again would count
        // every allocation twice.
        if (detail::thread_state* s = detail::current_thread_state()) {
            for (const detail::scope_link* l = s->scopes; l != nullptr; l = l->outer)
                if (l->shared == handle_.shared_) return;
        }
        const detail::budget_shared& shared = *handle_.shared_;
        link_.joined = true;
        link_.shared = handle_.shared_;
        link_.lim = shared.lim;
        link_.policy = shared.policy;
        link_.name = shared.name;
        link_.where = shared.where;
        state_ = detail::push_scope(link_);
#endif
    }
    ~budget_join() {
#if MEMDIAG_ENABLED
        detail::pop_scope(state_, link_);
#endif
    }
    budget_join(const budget_join&) = delete;
    budget_join& operator=(const budget_join&) = delete;

private:
    budget_handle handle_;
    detail::scope_link link_;
    [[maybe_unused]] detail::thread_state* state_ = nullptr;  // unused under MEMDIAG_DISABLE
};

/// Runs f() and returns what it allocated on this thread: allocations,
/// deallocations, bytes, live growth and peak growth.
/// Exception safety: what f throws propagates after the measurement scope
/// has ended; memdiag adds no exception of its own.
template <class F>
allocation_stats measure(F&& f) {
    scoped_budget scope{limits{}, "measure"};
    std::forward<F>(f)();
    return scope.used();
}

/// Average allocations per call of f over `runs` calls, after one warm-up call
/// (like Go's testing.AllocsPerRun), counting only the calling thread, so
/// background threads do not disturb it. Returns 0 when runs is 0.
template <class F>
double allocs_per_run(std::size_t runs, F&& f) {
    f();  // warm-up: first-time initialization is not the steady state
    if (runs == 0) return 0.0;
    scoped_budget scope{limits{}, "allocs_per_run"};
    for (std::size_t i = 0; i < runs; ++i) f();
    return static_cast<double>(scope.used().allocations) / static_cast<double>(runs);
}

}  // namespace memdiag

// Everything <memdiag/budget.hpp> has always given: leak checks, fault
// injection and the soft limit live in their own headers (each includes this one).
#include "fault_injection.hpp"
#include "leak_check.hpp"
#include "soft_limit.hpp"
