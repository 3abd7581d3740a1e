// memdiag/fault_injection.hpp - make each allocation of a function fail in turn.
//
// fail_each_allocation and fail_after_bytes: exception-safety test drivers.
// Injection works through every path memdiag sees (the global hook,
// tracking_allocator, tracking_resource), through the budget layer's admit
// handler (detail/budget_events.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>

#include "budget.hpp"

namespace memdiag {

/// Outcome of a fault-injection run.
struct injection_result {
    std::size_t attempts = 0;           ///< runs made, the final successful one included
    std::size_t injected_failures = 0;  ///< runs that ended in an injected std::bad_alloc
    bool completed = false;             ///< a run finished without an injected failure
    std::size_t leaking_attempt = 0;    ///< first failed run (1-based) that left memory allocated; 0: none
    std::int64_t leaked_bytes = 0;      ///< what that run allocated and did not free
    /// Completed, and no failed run leaked.
    bool ok() const noexcept { return completed && leaking_attempt == 0; }
};

namespace detail {
template <class F, class Check>
injection_result run_with_injection(F& f, Check& after_failure, std::uint64_t fail_at, std::uint64_t byte_threshold,
                                    injection_result& r) {
    injection inj;
    inj.fail_at = fail_at;
    inj.byte_threshold = byte_threshold;
    thread_state* s = current_thread_state();
    if (s == nullptr) return r;
    install_budget_handlers();
    ++r.attempts;
    bool failed = false;
    allocation_stats used;
    {
        // Per-block live figures: a failed run that frees older memory and
        // leaks as much new memory is still seen to leak.
        scoped_budget scope{births_tag{}, limits{}, "fault_injection"};
        // Restores the thread however the run ends: `inj` dies with this frame,
        // also when f throws something other than std::bad_alloc.
        struct armed_injection {
            thread_state* s;
            void* previous;
            armed_injection(thread_state* st, injection* i) noexcept : s(st), previous(st->injection) {
                s->injection = i;
                arm_thread();
            }
            ~armed_injection() {
                s->injection = previous;
                disarm_thread();
            }
            armed_injection(const armed_injection&) = delete;
            armed_injection& operator=(const armed_injection&) = delete;
        };
        {
            armed_injection armed{s, &inj};
#if MEMDIAG_HAS_EXCEPTIONS
            try {
                f();
            } catch (const std::bad_alloc&) {
                if (!inj.fired) throw;  // a real failure, not ours
                failed = true;
            }
#else
            f();
            failed = inj.fired;
#endif
        }
        used = scope.used();
    }
    if (failed) {
        ++r.injected_failures;
        if (used.live_bytes > 0 && r.leaking_attempt == 0) {
            r.leaking_attempt = r.attempts;
            r.leaked_bytes = used.live_bytes;
        }
        after_failure();
    } else {
        r.completed = true;
    }
    return r;
}
}  // namespace detail

/// Exception-safety test driver: runs f again and again, making its 1st, then
/// 2nd, 3rd ... allocation throw std::bad_alloc, through every path memdiag
/// sees, until a run completes without an injected failure. After each failed
/// run it calls after_failure() (check your invariants there) and checks that
/// the run left nothing allocated. `max_runs` bounds the work.
///
/// Exception safety: exceptions from f other than the injected std::bad_alloc
/// (a real std::bad_alloc included), and any from after_failure, propagate;
/// the thread's injection state and scopes are restored before they leave, so
/// later allocations behave normally. Without exceptions, a run counts as
/// failed when an injected allocation failed in it (f sees null or aborts,
/// depending on the allocation form).
template <class F, class Check>
injection_result fail_each_allocation(F&& f, Check&& after_failure, std::size_t max_runs = 100000) {
    injection_result r;
    for (std::uint64_t n = 1; n <= max_runs && !r.completed; ++n)
        detail::run_with_injection(f, after_failure, n, ~std::uint64_t{0}, r);
    return r;
}

/// Runs f once, making every allocation fail once more than `byte_threshold`
/// bytes have been allocated in the run; after a failure calls after_failure().
template <class F, class Check>
injection_result fail_after_bytes(std::uint64_t byte_threshold, F&& f, Check&& after_failure) {
    injection_result r;
    detail::run_with_injection(f, after_failure, 0, byte_threshold, r);
    return r;
}

}  // namespace memdiag
