// memdiag/detail/scope_link.hpp - a budget's state and who owns it.
//
// Each open budget has a scope_link. A thread budget's link lives in the
// scoped_budget (or budget_join) object and is linked into its thread's chain,
// which the thread's state owns: the state is not retired while a link is in
// it (thread_exit.hpp, thread_exiting), and links are unlinked only here
// (push_scope / pop_scope). Counters other threads share (process-wide
// budgets, budgets with a budget_handle) live in a reference-counted
// budget_shared in memdiag's internal memory, so a handle or a joined thread
// never reads the budget object itself. Process-wide budgets are listed under
// g_process_scopes_lock. Leak-checking scopes also keep the thread's birth
// table (birth_table.hpp) here.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <new>

#include "../limits.hpp"
#include "../stats.hpp"
#include "../tracker.hpp"
#include "internal_section.hpp"

namespace memdiag {
namespace detail {

/// Who the calling thread is, as the address of its memdiag thread head: unique
/// among running threads and kept by the forking thread in its child, as
/// std::thread::id is, without <thread> in every unit that includes memdiag.
inline const void* this_thread_tag() noexcept { return &tls_head; }

/// Counters shared between threads: process-wide budgets, and thread budgets
/// that other threads joined. Allocated beneath the hooks; reference-counted.
struct budget_shared {
    std::atomic<std::uint64_t> allocations{0}, bytes{0}, deallocations{0}, freed{0};
    std::atomic<std::int64_t> live{0};
    std::atomic<std::uint64_t> peak{0};
    std::atomic<int> refs{1};
    std::atomic<bool> closed{false};
    std::atomic<std::uint64_t> joined_breaches{0};  ///< breaches seen on joined threads
    std::atomic<unsigned> over{0};  ///< limits crossed and still over (one bit per limit_kind)
    /// Blocks born in the budget on any of its threads and not freed (leak checks).
    std::atomic<std::int64_t> born_bytes{0}, born_allocations{0};
    struct scope_link* owner = nullptr;  ///< the budget; valid while listed as a process scope
    const void* owner_thread = nullptr;  ///< this_thread_tag() of the thread that opened it (fork drops others')
    budget_shared* next_process = nullptr;
    // The budget's configuration, copied so joined threads never read the budget itself.
    memdiag::limits lim;
    breach_policy policy = breach_policy::throw_exception;
    const char* name = "budget";
    source_place where;
};

/// Selects scoped_budget's internal constructor for scopes that count births
/// without a live limit (fault injection's runs).
struct births_tag {};

/// A budget's state, linked into its thread's chain (or the process list).
struct scope_link {
    scope_link* outer = nullptr;  ///< enclosing scope of the same thread
    memdiag::limits lim;
    breach_policy policy = breach_policy::throw_exception;
    const char* name = "budget";
    source_place where;
    bool process_wide = false;
    bool joined = false;  ///< a budget_join: counts into `shared`, reports through its owner
    /// Limits crossed and still over, one bit per limit_kind: a breach is acted
    /// on once per crossing (scopes with `shared` use shared->over).
    std::atomic<unsigned> over{0};
    std::atomic<std::uint64_t> breaches{0};
    // Thread counters when the scope opened (thread scopes without `shared`).
    std::uint64_t start_allocations = 0, start_deallocations = 0, start_bytes = 0, start_freed = 0;
    std::uint64_t peak_growth = 0;
    /// A leak check (max_live_bytes set): its live figures are the blocks born
    /// in it and not freed, counted here (or in `shared`), not a net balance.
    bool births = false;
    /// Owns the blocks whose birth tag is above this: the thread's allocation
    /// count at the link's first push. Kept when the link is unlinked and
    /// pushed again (a test scope paused for setup code, testing/common.hpp).
    std::uint64_t birth_floor = 0;
    bool births_started = false;
    std::int64_t born_bytes = 0, born_allocations = 0;
    budget_shared* shared = nullptr;
};

inline spinlock g_process_scopes_lock;
inline budget_shared* g_process_scopes = nullptr;

/// What this scope has counted so far.
inline allocation_stats scope_figures(const scope_link& l, const thread_state* s) noexcept {
    allocation_stats st;
    if (l.shared != nullptr) {
        const auto r = std::memory_order_relaxed;
        st.allocations = l.shared->allocations.load(r);
        st.deallocations = l.shared->deallocations.load(r);
        st.bytes_allocated = l.shared->bytes.load(r);
        st.bytes_freed = l.shared->freed.load(r);
        st.peak_live_bytes = l.shared->peak.load(r);
    } else if (s != nullptr) {
        st.allocations = s->allocations - l.start_allocations;
        st.deallocations = s->deallocations - l.start_deallocations;
        st.bytes_allocated = s->bytes_allocated - l.start_bytes;
        st.bytes_freed = s->bytes_freed - l.start_freed;
        st.peak_live_bytes = l.peak_growth;
    }
    st.update_live();
    if (l.births) {
        // What the scope allocated and did not free: frees of older blocks do
        // not lower it (they are not the scope's).
        if (l.shared != nullptr) {
            st.live_bytes = l.shared->born_bytes.load(std::memory_order_relaxed);
            st.live_allocations = l.shared->born_allocations.load(std::memory_order_relaxed);
        } else {
            st.live_bytes = l.born_bytes;
            st.live_allocations = l.born_allocations;
        }
    }
    return st;
}

/// The crossing state of a scope's limits: the budget's own when threads share it.
inline std::atomic<unsigned>& crossing_bits(scope_link& l) noexcept {
    return l.shared != nullptr ? l.shared->over : l.over;
}

/// Adds (or takes back) a block in the born figures of leak-checking scope l.
inline void count_birth(scope_link& l, std::int64_t bytes, std::int64_t blocks) noexcept {
    if (l.shared != nullptr) {
        if (l.shared->closed.load(std::memory_order_relaxed)) return;
        l.shared->born_bytes.fetch_add(bytes, std::memory_order_relaxed);
        l.shared->born_allocations.fetch_add(blocks, std::memory_order_relaxed);
    } else {
        l.born_bytes += bytes;
        l.born_allocations += blocks;
    }
}

/// Says once per process that a leak check lost track of a block.
MEMDIAG_COLD inline void say_birth_lost() noexcept {
    static std::atomic<bool> said{false};
    if (said.exchange(true)) return;
    internal_section quiet;
    static const char msg[] =
        "memdiag: warning: out of memory for leak-check bookkeeping: a block allocated inside a leak check "
        "will be reported as leaked even when it is freed\n";
    std::fwrite(msg, 1, sizeof msg - 1, stderr);
}

/// Leak-checking scopes are open on s's thread: note the block born at p, or
/// take a freed block out of the figures of the scopes it was born in.
inline void count_births(thread_state* s, void* p, std::size_t size, bool allocation) noexcept {
    const auto n = static_cast<std::int64_t>(size);
    if (allocation) {
        // The birth tag: s->allocations already counts this allocation, and a
        // scope opened when it was N owns the blocks tagged above N.
        if (!s->births.insert(p, size, s->allocations)) say_birth_lost();
        for (scope_link* l = s->scopes; l != nullptr; l = l->outer)
            if (l->births) count_birth(*l, n, 1);
        return;
    }
    birth_entry e;
    if (!s->births.take(p, e)) return;  // born before every open leak check, or on another thread
    const auto born = static_cast<std::int64_t>(e.size);
    for (scope_link* l = s->scopes; l != nullptr; l = l->outer)
        if (l->births && e.birth > l->birth_floor) count_birth(*l, -born, -1);
}

inline budget_shared* new_shared(scope_link* owner) noexcept {
    void* mem = internal_malloc(sizeof(budget_shared));
    if (mem == nullptr) return nullptr;
    auto* b = new (mem) budget_shared();
    b->owner = owner;
    b->owner_thread = this_thread_tag();
    b->lim = owner->lim;
    b->policy = owner->policy;
    b->name = owner->name;
    b->where = owner->where;
    return b;
}

inline void release_shared(budget_shared* b) noexcept {
    if (b != nullptr && b->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        b->~budget_shared();
        internal_free(b);
    }
}

/// Pushes a scope onto the calling thread's chain.
inline thread_state* push_scope(scope_link& l) noexcept {
    thread_state* s = current_thread_state();
    if (s == nullptr) return nullptr;
    l.start_allocations = s->allocations;
    l.start_deallocations = s->deallocations;
    l.start_bytes = s->bytes_allocated;
    l.start_freed = s->bytes_freed;
    l.outer = s->scopes;
    l.births = l.births || l.lim.live_bytes() != limits::unlimited;  // set already: births_tag
    if (l.births) {
        if (!l.births_started) {
            l.births_started = true;
            l.birth_floor = s->allocations;
            // A new leak check and none open: the blocks noted belong to scopes
            // that ended, and no later scope owns them. (A scope paused now
            // loses its older blocks: their frees will not lower its figure.)
            if (s->birth_scopes == 0) s->births.clear();
        }
        ++s->birth_scopes;
    }
    s->scopes = &l;
    arm_thread();
    return s;
}

inline void pop_scope(thread_state* s, scope_link& l) noexcept {
    if (s == nullptr) return;
    // Scopes end in reverse order of opening; unlink wherever it is, to stay safe
    // when a user ends them out of order (e.g. with std::optional).
    for (scope_link** p = &s->scopes; *p != nullptr; p = &(*p)->outer) {
        if (*p == &l) {
            *p = l.outer;
            // The table stays until the next new leak check: this link may be
            // pushed again (paused, not ended) and still own its blocks.
            if (l.births) --s->birth_scopes;
            disarm_thread();
            scope_closed(s);  // the thread may have exited while this scope was open
            return;
        }
    }
}

}  // namespace detail
}  // namespace memdiag
