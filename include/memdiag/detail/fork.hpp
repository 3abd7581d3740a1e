// memdiag/detail/fork.hpp - the one place that handles fork.
//
// One pthread_atfork registration. Layers with locks (budgets, the heap
// profiler) join it with a fork_participant; the registry lock is taken last.
// The child keeps only the forking thread: the others' states are dropped.
#pragma once

#include <atomic>

#include "../config.hpp"
#include "internal_alloc.hpp"
#include "thread_registry.hpp"

#if MEMDIAG_POSIX
#include <pthread.h>
#endif

namespace memdiag {
namespace detail {

/// A layer's part in fork handling (detail/budget_events.hpp, heap_profile.hpp). Called by
/// the one pthread_atfork registration below, in lock order.
struct fork_participant {
    void (*prepare)() noexcept;  ///< takes the layer's locks
    void (*parent)() noexcept;   ///< releases them
    void (*child)() noexcept;    ///< repairs the layer for the child's only thread, releases the locks
};

/// Layers with locks, in the order their locks are taken (a breach inside the
/// process-scope lock may write a snapshot: profiler locks; anything may
/// create a thread state: the registry lock, always last).
enum fork_layer : int { fork_layer_budget = 0, fork_layer_profiler = 1, fork_layer_count = 2 };

/// What fork handling knows: each layer's participant, and the ones whose
/// prepare ran for the fork in progress (their parent/child handlers must run).
struct fork_state {
    std::atomic<const fork_participant*> layers[fork_layer_count] = {};
    const fork_participant* taken[fork_layer_count] = {};
};
inline fork_state g_fork;

/// In a forked child, the threads other than the caller do not exist: fold
/// their counts and free their states (their scope chains point into stacks
/// that the child may reuse). Registry lock held.
inline void drop_other_threads_locked() noexcept {
    thread_state* self = tls_head.state;
    for (thread_state* s = g_registry.threads; s != nullptr;) {
        thread_state* next = s->next;
        if (s != self) {
            unlink_thread_locked(s);
            s->~thread_state();
            internal_free_aligned(s);
        }
        s = next;
    }
}

#if MEMDIAG_POSIX
/// The one place that handles fork: every memdiag lock is held across fork()
/// (no thread that is gone in the child can hold one there), and the child
/// forgets the other threads and everything they owned.
inline void fork_prepare() noexcept {
    for (int i = 0; i < fork_layer_count; ++i) {
        const fork_participant* p = g_fork.layers[i].load(std::memory_order_acquire);
        g_fork.taken[i] = p;
        if (p != nullptr) p->prepare();
    }
    g_registry.lock.lock();
}
inline void fork_parent() noexcept {
    g_registry.lock.unlock();
    for (int i = fork_layer_count - 1; i >= 0; --i)
        if (g_fork.taken[i] != nullptr) g_fork.taken[i]->parent();
}
inline void fork_child() noexcept {
    drop_other_threads_locked();
    g_registry.lock.unlock();
    for (int i = fork_layer_count - 1; i >= 0; --i)
        if (g_fork.taken[i] != nullptr) g_fork.taken[i]->child();
}
#endif

/// Registers the fork handlers once (at the first thread state or layer).
inline void ensure_fork_handlers() noexcept {
#if MEMDIAG_POSIX
    static std::atomic<bool> registered{false};
    if (!registered.load(std::memory_order_acquire) && !registered.exchange(true))
        pthread_atfork(&fork_prepare, &fork_parent, &fork_child);
#endif
}

/// Makes a layer's participant part of fork handling.
inline void join_fork_handling(fork_layer layer, const fork_participant* p) noexcept {
    ensure_fork_handlers();
    g_fork.layers[layer].store(p, std::memory_order_release);
}

}  // namespace detail
}  // namespace memdiag
