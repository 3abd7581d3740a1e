// memdiag/detail/thread_exit.hpp - the one place that handles thread exit.
//
// A thread's state is retired (counts folded into the trackers, memory freed)
// by a reaper that runs at thread exit, unless budget scopes are still linked
// into it: then the last scope to close retires it (scope_closed).
#pragma once

#include <new>

#include "../config.hpp"
#include "internal_alloc.hpp"
#include "spin_lock.hpp"
#include "thread_registry.hpp"

#if MEMDIAG_POSIX
#include <pthread.h>
#endif

namespace memdiag {
namespace detail {

/// Retires the calling thread's state: fold its counts into the trackers,
/// unlink and free it. Later events of the thread count through atomics.
inline void retire_thread(thread_state* s) noexcept {
    if (s == nullptr) return;
    tls_head.phase = phase_exited;
    tls_head.state = nullptr;
    tls_head.guards |= guard_no_state;  // later events: slow path (atomics), never the freed state
    {
        spin_guard g(g_registry.lock);
        unlink_thread_locked(s);
    }
    s->~thread_state();
    internal_free_aligned(s);
}

/// The one place that handles thread exit (the reaper calls it). A thread
/// whose budget scopes are still open (a static leak_check, a thread_local
/// budget_join destroyed after the reaper) keeps its state, counting as
/// before, until the last of them ends (pop_scope in scope_link.hpp retires it).
inline void thread_exiting() noexcept {
    thread_state* s = tls_head.state;
    if (s == nullptr) return;
    if (s->scopes != nullptr) {
        s->exit_pending = true;
        return;
    }
    retire_thread(s);
}

/// A scope was unlinked from the calling thread's state s: retire the state
/// if the thread exited while scopes were open and this was the last one.
inline void scope_closed(thread_state* s) noexcept {
    if (s->scopes == nullptr && s->exit_pending && s == tls_head.state) retire_thread(s);
}

/// Hands the thread's state to thread_exiting at thread exit. A thread_local
/// object's destructor runs in every threading model C++ supports; where
/// POSIX keys exist they are used instead (see register_reaper).
struct thread_reaper {
    ~thread_reaper() { thread_exiting(); }
};

#if MEMDIAG_POSIX
/// The key whose destructor retires a thread's state, or -1 if none could be
/// created. Key destructors run after every thread_local destructor of the
/// thread (so its last events still count in its state), and setting a key
/// below PTHREAD_KEYS_MAX's first block allocates nothing, where registering a
/// thread_local destructor allocates a list node (that memdiag would count as
/// the program's, and then its free at exit).
inline long reaper_key() noexcept {
    static const long key = [] {
        pthread_key_t k;
        if (pthread_key_create(&k, [](void*) { thread_exiting(); }) != 0) return -1L;
        return static_cast<long>(k);
    }();
    return key;
}
#endif

/// Arranges for the calling thread's state s to be retired when the thread exits.
inline void register_reaper(thread_state* s) noexcept {
#if MEMDIAG_POSIX
    const long key = reaper_key();
    if (key >= 0) {
        // Internal: beyond the first block of keys glibc allocates for the value.
        tls_head.guards += guard_internal;
        const int rc = pthread_setspecific(static_cast<pthread_key_t>(key), s);
        tls_head.guards -= guard_internal;
        if (rc == 0) return;
    }
#endif
    (void)s;
    static thread_local thread_reaper reaper;
    (void)&reaper;  // odr-use: constructs it, registering its destructor
}

}  // namespace detail
}  // namespace memdiag
