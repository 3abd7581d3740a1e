// memdiag/detail/thread_head.hpp - the per-thread word every event tests first.
//
// thread_head is trivially constructible (initial-exec TLS, no TLS wrapper
// call on the hot path). Its `guards` word says in one load whether an event
// may take the fast path; the helpers below read its bit fields.
#pragma once

#include <cstdint>

#include "../config.hpp"

namespace memdiag {
namespace detail {

struct thread_state;

/// Lifecycle of a thread as the hooks see it.
enum thread_phase : unsigned char { phase_fresh = 0, phase_initializing, phase_active, phase_exited };

/// Units of thread_head::guards. One word, so the hot path tests one value:
/// zero means "count on the fast path".
enum : std::uint64_t {
    guard_internal = 1,                  ///< bits 0-15: memdiag's own work; events pass unobserved
    guard_event = std::uint64_t{1} << 16,  ///< bits 16-23: inside an outer event; nested events only count
    guard_lock = std::uint64_t{1} << 24,   ///< bits 24-31: holding a memdiag lock (see spin_guard)
    guard_armed = std::uint64_t{1} << 32,  ///< bits 32-62: scopes / fault injection need the slow path
    /// Bit 63: the thread has no state (not created yet, or retired): set
    /// exactly while thread_head::state is null, so the hook's one test of the
    /// guards word covers the null test too.
    guard_no_state = std::uint64_t{1} << 63
};

/// Trivially constructible per-thread head: initial-exec TLS, no TLS wrapper calls.
/// `guards` has guard_no_state while `state` is null (create_thread_state
/// clears it, retire_thread sets it again).
struct thread_head {
    thread_state* state;
    std::uint64_t guards;
    unsigned char phase;
};

inline thread_local thread_head tls_head MEMDIAG_TLS_FAST = {nullptr, guard_no_state, phase_fresh};

/// True inside an internal_section.
MEMDIAG_ALWAYS_INLINE bool in_internal_section(std::uint64_t guards) noexcept { return (guards & 0xffffu) != 0; }
/// True inside an outer event (nested_event).
MEMDIAG_ALWAYS_INLINE bool in_nested_event(std::uint64_t guards) noexcept { return (guards & 0x00ff0000u) != 0; }
/// True while the thread holds a memdiag lock: an event now comes from a
/// signal handler that interrupted memdiag, and must not take a lock again.
MEMDIAG_ALWAYS_INLINE bool holding_lock(std::uint64_t guards) noexcept { return (guards & 0xff000000u) != 0; }
/// Makes this thread's events take the slow path (a scope or injection begins).
inline void arm_thread() noexcept { tls_head.guards += guard_armed; }
/// Undoes one arm_thread().
inline void disarm_thread() noexcept { tls_head.guards -= guard_armed; }

}  // namespace detail
}  // namespace memdiag
