// memdiag/detail/budget_events.hpp - the budget layer's handlers in the event path.
//
// tracker.hpp calls these for the events of armed threads (open scopes, fault
// injection) and while process-wide budgets exist: budget_admit before an
// allocation (limits, injection), budget_allocated / budget_freed after
// (scope figures, leak-check births). Also the layer's part in fork handling.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "../tracker.hpp"
#include "breach_handling.hpp"
#include "scope_link.hpp"

namespace memdiag {
namespace detail {

/// Fault injection state of a thread (fail_each_allocation / fail_after_bytes).
struct injection {
    std::uint64_t fail_at = 0;         ///< fail the allocation with this 1-based number (0: none)
    std::uint64_t byte_threshold = ~std::uint64_t{0};  ///< fail every allocation past this many bytes
    std::uint64_t seen = 0, bytes = 0;
    bool fired = false;
};

/// The budget layer's admit handler (see tracker.hpp).
inline bool budget_admit(thread_state* s, tracker_slot&, std::size_t size, bool may_throw) {
    if (s != nullptr) {
        if (auto* inj = static_cast<injection*>(s->injection)) {
            ++inj->seen;
            inj->bytes += size;
            if (inj->seen == inj->fail_at || inj->bytes > inj->byte_threshold) {
                inj->fired = true;
                return false;
            }
        }
        for (scope_link* l = s->scopes; l != nullptr; l = l->outer) {
            if (!l->lim.any_per_allocation()) continue;
            if (l->joined && l->shared->closed.load(std::memory_order_relaxed)) continue;  // budget ended
            if (!check_scope(*l, scope_figures(*l, s), size, may_throw)) return false;
        }
    }
    if (g_registry.global_slow.load(std::memory_order_relaxed) & slow_process_scope) {
        // Only counters are read and written under the lock; the breaches found
        // are acted on (stack, symbols, report, callback, throw) after releasing
        // it: a symbolizer or callback waiting for the loader lock while another
        // thread's dlclose waits for this one would deadlock.
        pending_breaches found;
        {
            spin_guard g(g_process_scopes_lock);
            for (budget_shared* p = g_process_scopes; p != nullptr && !found.refuses; p = p->next_process) {
                scope_link& l = *p->owner;
                if (l.lim.any_per_allocation()) check_scope(l, scope_figures(l, s), size, may_throw, &found);
            }
        }
        if (found.count > 0 || found.not_acted > 0) return act_on_pending(found, may_throw);
    }
    return true;
}

/// Charges an event to a budget whose counters threads share.
inline void charge_shared(budget_shared& b, std::size_t size, bool allocation) noexcept {
    if (allocation) (void)count_atomically(b.allocations, b.bytes, b.live, b.peak, size, true);
    else (void)count_atomically(b.deallocations, b.freed, b.live, b.peak, size, false);
}

/// After a free: a max_peak_bytes crossing ends once live growth is back under the limit.
inline void end_peak_crossing(std::atomic<unsigned>& over, std::int64_t growth, std::uint64_t limit) noexcept {
    constexpr unsigned bit = 1u << static_cast<unsigned>(limit_kind::peak_bytes);
    if ((over.load(std::memory_order_relaxed) & bit) != 0 && (growth <= 0 || static_cast<std::uint64_t>(growth) <= limit))
        over.fetch_and(~bit);
}

inline void budget_count(thread_state* s, void* p, std::size_t size, bool allocation) noexcept {
    if (s != nullptr && s->birth_scopes > 0) count_births(s, p, size, allocation);
    if (!allocation && t_uncharged_free_pending) {
        // The free of a budget_exceeded memdiag threw, whose allocation no
        // budget was charged for: thread scopes leave it out of their figures,
        // shared and process scopes do not count it.
        t_uncharged_free_pending = false;
        if (s != nullptr) {
            for (scope_link* l = s->scopes; l != nullptr; l = l->outer) {
                ++l->start_deallocations;
                l->start_freed += size;
            }
        }
        return;
    }
    if (s != nullptr) {
        for (scope_link* l = s->scopes; l != nullptr; l = l->outer) {
            if (l->shared != nullptr) {
                if (!l->shared->closed.load(std::memory_order_relaxed)) {
                    charge_shared(*l->shared, size, allocation);
                    if (!allocation) end_peak_crossing(l->shared->over, l->shared->live.load(), l->lim.peak_bytes());
                }
                continue;
            }
            if (!allocation && l->over.load(std::memory_order_relaxed) == 0) continue;  // the common free
            const std::int64_t growth = static_cast<std::int64_t>(s->bytes_allocated - s->bytes_freed) -
                                        static_cast<std::int64_t>(l->start_bytes - l->start_freed);
            if (!allocation) end_peak_crossing(l->over, growth, l->lim.peak_bytes());
            else if (growth > 0 && static_cast<std::uint64_t>(growth) > l->peak_growth)
                l->peak_growth = static_cast<std::uint64_t>(growth);
        }
    }
    if (g_registry.global_slow.load(std::memory_order_relaxed) & slow_process_scope) {
        spin_guard g(g_process_scopes_lock);
        for (budget_shared* b = g_process_scopes; b != nullptr; b = b->next_process) {
            charge_shared(*b, size, allocation);
            if (!allocation) end_peak_crossing(b->over, b->live.load(), b->lim.peak_bytes());
        }
    }
}

inline void budget_allocated(thread_state* s, void* p, std::size_t size) { budget_count(s, p, size, true); }
inline void budget_freed(thread_state* s, void* p, std::size_t size) { budget_count(s, p, size, false); }

/// Fork child, process-scope lock held: budgets opened by threads that do not
/// exist in the child end there. Their process-wide budgets leave the list
/// (their scope_link lived on a stack the child may reuse, and they must not
/// charge or throw in the child); the calling thread's joins of them close.
inline void budget_fork_child() noexcept {
    const void* const self = this_thread_tag();
    for (budget_shared** p = &g_process_scopes; *p != nullptr;) {
        budget_shared* b = *p;
        if (b->owner_thread != self) {
            // Its owner's reference is never dropped (that scope never ends in
            // the child): the few bytes stay, so a stale budget_handle or the
            // budget object on the dead thread's stack still reads valid memory.
            *p = b->next_process;
            b->owner = nullptr;
            b->closed.store(true);
        } else {
            p = &b->next_process;
        }
    }
    if (g_process_scopes == nullptr) g_registry.global_slow.fetch_and(~slow_process_scope);
    if (thread_state* s = tls_head.state) {
        for (scope_link* l = s->scopes; l != nullptr; l = l->outer)
            if (l->joined && l->shared != nullptr && l->shared->owner_thread != self) l->shared->closed.store(true);
    }
    g_process_scopes_lock.unlock();
}

/// The budget layer's part in fork handling (fork.hpp).
inline constexpr fork_participant budget_fork_participant{
    +[]() noexcept { g_process_scopes_lock.lock(); }, +[]() noexcept { g_process_scopes_lock.unlock(); },
    &budget_fork_child};

inline void ensure_budget_fork_handlers() noexcept {
    join_fork_handling(fork_layer_budget, &budget_fork_participant);
}

/// Installs the budget handlers into the event path (idempotent).
inline void install_budget_handlers() noexcept {
    ensure_budget_fork_handlers();
    g_handlers.budget_admit.store(&budget_admit, std::memory_order_release);
    g_handlers.budget_allocated.store(&budget_allocated, std::memory_order_release);
    g_handlers.budget_freed.store(&budget_freed, std::memory_order_release);
}

}  // namespace detail
}  // namespace memdiag
