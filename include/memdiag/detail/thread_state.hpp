// memdiag/detail/thread_state.hpp - the calling thread's state, created on first use.
//
// The state and the registry: thread_registry.hpp. Thread exit: thread_exit.hpp.
// Fork: fork.hpp. Scope links into a thread's state: scope_link.hpp.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "../config.hpp"
#include "fork.hpp"
#include "internal_alloc.hpp"
#include "spin_lock.hpp"
#include "thread_exit.hpp"
#include "thread_head.hpp"
#include "thread_registry.hpp"

#if MEMDIAG_POSIX
#include <unistd.h>
#endif
#if defined(__linux__)
#include <sys/auxv.h>
#endif

namespace memdiag {
namespace detail {

#if MEMDIAG_POSIX
/// memdiag's state is made of inline variables, one copy per executable or
/// shared object unless their symbols are shared (-rdynamic). A plugin loaded
/// with dlopen whose copy is separate counts into it alone: the executable's
/// hook, trackers and budgets never see its events, nor it theirs. The first
/// copy in a process writes "<pid>:<address of its registry>" to the
/// environment; a later copy that finds another address says so, once, on
/// stderr. The variable is set only from a process's first thread states.
inline void check_single_copy() noexcept {
    static std::atomic<bool> checked{false};
    if (checked.exchange(true)) return;
    // The process image: its pid, and on Linux the kernel's per-exec random
    // bytes (a program that re-executes itself keeps its pid).
    unsigned long long image = 0;
#if defined(__linux__)
    if (const auto* r = reinterpret_cast<const unsigned char*>(::getauxval(AT_RANDOM)))
        std::memcpy(&image, r, sizeof image);
#endif
    char mine[96];
    std::snprintf(mine, sizeof mine, "%ld.%llx:%p", static_cast<long>(::getpid()), image,
                  static_cast<void*>(&g_registry));
    const char* seen = std::getenv("MEMDIAG_STATE_COPY");
    const std::size_t pid_len = static_cast<std::size_t>(std::strchr(mine, ':') - mine) + 1;
    if (seen != nullptr && std::strncmp(seen, mine, pid_len) == 0) {
        if (std::strcmp(seen, mine) != 0) {
            static const char msg[] =
                "memdiag: warning: a second copy of memdiag's state in this process (a shared library loaded "
                "with dlopen, linked against an executable that does not export memdiag's symbols): its "
                "allocations, trackers and budgets are separate from the executable's. Link the executable "
                "with -rdynamic (CMake: ENABLE_EXPORTS) to share one state.\n";
            std::fwrite(msg, 1, sizeof msg - 1, stderr);
        }
        return;
    }
    tls_head.guards += guard_internal;  // setenv copies the string with malloc
    ::setenv("MEMDIAG_STATE_COPY", mine, 1);
    tls_head.guards -= guard_internal;
}
#endif

/// Creates the calling thread's state. Returns nullptr while that is impossible
/// (during creation itself, after thread exit, out of memory): the caller then
/// counts through the tracker's atomics.
MEMDIAG_COLD inline thread_state* create_thread_state() noexcept {
    thread_head& head = tls_head;
    if (head.phase != phase_fresh) return nullptr;
    head.phase = phase_initializing;  // registering the reaper may allocate: those events use atomics
    void* mem = internal_malloc_aligned(sizeof(thread_state), alignof(thread_state));
    if (mem == nullptr) {
        head.phase = phase_fresh;
        return nullptr;
    }
    auto* s = new (mem) thread_state();
    ensure_fork_handlers();
#if MEMDIAG_POSIX
    check_single_copy();
#endif
    {
        spin_guard g(g_registry.lock);
        s->next = g_registry.threads;
        if (s->next) s->next->prev = s;
        g_registry.threads = s;
    }
    register_reaper(s);
    head.state = s;
    head.guards &= ~guard_no_state;  // the fast paths may use s from now on
    head.phase = phase_active;
    return s;
}


/// The calling thread's state, or nullptr when events must use atomics.
MEMDIAG_ALWAYS_INLINE thread_state* current_thread_state() noexcept {
    thread_state* s = tls_head.state;
    if (MEMDIAG_LIKELY(s != nullptr)) return s;
    return create_thread_state();
}

}  // namespace detail
}  // namespace memdiag
