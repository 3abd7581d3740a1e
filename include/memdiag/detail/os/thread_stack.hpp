// memdiag/detail/os/thread_stack.hpp - the calling thread's stack bounds.
//
// Used by the frame-pointer walk, which runs inside operator new: the bounds are
// computed once per thread and cached in a trivially constructible thread_local
// (no TLS wrapper, no guard, no allocation). The first lookup on a thread may
// allocate inside the C library (glibc's pthread_getattr_np reads
// /proc/self/maps for the main thread), so it runs in an internal_section.
#pragma once

#include <cstdint>

#include "../../config.hpp"
#include "../internal_section.hpp"

#if MEMDIAG_OS_LINUX || defined(__FreeBSD__) || defined(__NetBSD__) || MEMDIAG_OS_DARWIN
#include <pthread.h>
#endif
#if defined(__FreeBSD__)
#include <pthread_np.h>
#endif

namespace memdiag {
namespace detail {

/// A thread's stack as [low, high); empty (low == high == 0) when unknown.
struct stack_bounds {
    std::uintptr_t low;   ///< lowest usable address
    std::uintptr_t high;  ///< one past the highest address (the stack's base)
};

/// Asks the OS for the calling thread's stack; {0, 0} when it cannot tell.
/// May allocate inside the C library; callers use current_stack_bounds().
inline stack_bounds query_thread_stack() noexcept {
    stack_bounds b{0, 0};
#if MEMDIAG_OS_LINUX || defined(__FreeBSD__) || defined(__NetBSD__)
    internal_section quiet;
    pthread_attr_t attr;
#if MEMDIAG_OS_LINUX || defined(__NetBSD__)
    if (pthread_getattr_np(pthread_self(), &attr) != 0) return b;
#else
    if (pthread_attr_init(&attr) != 0) return b;
    if (pthread_attr_get_np(pthread_self(), &attr) != 0) {
        pthread_attr_destroy(&attr);
        return b;
    }
#endif
    void* addr = nullptr;
    std::size_t size = 0;
    if (pthread_attr_getstack(&attr, &addr, &size) == 0 && addr != nullptr && size != 0) {
        b.low = reinterpret_cast<std::uintptr_t>(addr);
        b.high = b.low + size;
    }
    pthread_attr_destroy(&attr);
#elif MEMDIAG_OS_DARWIN
    // Darwin reports the stack's top (its highest address) and size; no allocation.
    const std::uintptr_t top = reinterpret_cast<std::uintptr_t>(pthread_get_stackaddr_np(pthread_self()));
    const std::size_t size = pthread_get_stacksize_np(pthread_self());
    if (top != 0 && size != 0 && size <= top) b = stack_bounds{top - size, top};
#endif  // MEMDIAG_OS_LINUX || BSD / MEMDIAG_OS_DARWIN
    return b;
}

/// Per-thread cache of the stack bounds. Zero-initialized: state 0 = not looked up.
struct thread_stack_cache {
    std::uintptr_t low;
    std::uintptr_t high;
    unsigned char state;  ///< 0: unknown yet, 1: looked up (bounds may be empty)
};

/// The calling thread's stack bounds, cached after the first call on each
/// thread. Never calls operator new; safe inside allocation hooks.
inline stack_bounds current_stack_bounds() noexcept {
    static thread_local thread_stack_cache cache MEMDIAG_TLS_FAST;
    if (MEMDIAG_LIKELY(cache.state != 0)) return stack_bounds{cache.low, cache.high};
    const stack_bounds b = query_thread_stack();
    cache.low = b.low;
    cache.high = b.high;
    cache.state = 1;
    return b;
}

}  // namespace detail
}  // namespace memdiag
