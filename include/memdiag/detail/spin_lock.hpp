// memdiag/detail/spin_lock.hpp - memdiag's one lock.
//
// Constant-initialized and trivially destructible, so it works before main
// and after static destructors have run; nothing in it allocates. Critical
// sections are short (a few hundred nanoseconds), so a waiter spins on a plain
// load for a while before yielding: yielding at once turns contention between
// two threads into mostly sched_yield system time.
#pragma once

#include <atomic>
#if defined(_WIN32)
#include <thread>
#else
#include <sched.h>  // sched_yield: <thread> would cost every user of memdiag's headers
#endif

#include "thread_head.hpp"

namespace memdiag {
namespace detail {

/// A spinlock (BasicLockable plus try_lock). Use spin_guard to hold it: the
/// guard also marks the thread as holding a memdiag lock.
class spinlock {
    static void yield_cpu() noexcept {
#if defined(_WIN32)
        std::this_thread::yield();
#else
        ::sched_yield();
#endif
    }

public:
    /// Takes the lock, spinning and then yielding while another thread holds it.
    void lock() noexcept {
        for (;;) {
            if (!flag_.exchange(true, std::memory_order_acquire)) return;
            for (int i = 0; flag_.load(std::memory_order_relaxed); ++i)
                if (i >= spins_before_yield) yield_cpu();
        }
    }
    /// Releases the lock.
    void unlock() noexcept { flag_.store(false, std::memory_order_release); }
    /// Takes the lock if it is free now; never waits (a fatal-signal handler
    /// must not wait on a lock its interrupted thread may hold).
    bool try_lock() noexcept {
        return !flag_.load(std::memory_order_relaxed) && !flag_.exchange(true, std::memory_order_acquire);
    }

private:
    static constexpr int spins_before_yield = 2048;
    std::atomic<bool> flag_{false};
};

/// RAII holder of a spinlock. Marks the thread as holding a memdiag lock
/// (guard_lock), so that an allocation by a signal handler interrupting it is
/// counted without taking a lock again instead of spinning forever. The
/// uncontended take is inline; only a held lock calls spinlock::lock (its
/// spin loop is not inlined): the heap profiler takes a shard lock twice per
/// allocation and free in exact mode.
class spin_guard {
public:
    /// Takes l.
    MEMDIAG_ALWAYS_INLINE explicit spin_guard(spinlock& l) noexcept : lock_(l) {
        tls_head.guards += guard_lock;
        if (MEMDIAG_UNLIKELY(!lock_.try_lock())) lock_.lock();
    }
    MEMDIAG_ALWAYS_INLINE ~spin_guard() {
        lock_.unlock();
        tls_head.guards -= guard_lock;
    }
    spin_guard(const spin_guard&) = delete;
    spin_guard& operator=(const spin_guard&) = delete;

private:
    spinlock& lock_;
};

}  // namespace detail
}  // namespace memdiag
