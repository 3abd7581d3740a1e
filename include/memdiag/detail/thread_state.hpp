// memdiag/detail/thread_state.hpp - per-thread counting state and its registry.
//
// The hot path is a handful of plain loads and stores into memory owned by the
// calling thread: each thread has a shard per tracker. Readers lock the registry
// and merge every live thread's shards with the totals of threads that exited.
//
// Shard fields that other threads read are std::atomic, but only their owner
// writes them (relaxed load + store, no read-modify-write): that is as cheap as
// a plain increment, race-free for readers, and exact once the owner is quiet.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <thread>

#include "../config.hpp"
#include "internal_alloc.hpp"

#if MEMDIAG_POSIX
#include <pthread.h>
#endif

namespace memdiag {
namespace detail {

using relaxed_u64 = std::atomic<std::uint64_t>;
using relaxed_i64 = std::atomic<std::int64_t>;

/// Adds to a counter that only the calling thread writes.
MEMDIAG_ALWAYS_INLINE void owner_add(relaxed_u64& c, std::uint64_t n) noexcept {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

/// Raises an atomic maximum.
inline void atomic_max(relaxed_u64& m, std::uint64_t v) noexcept {
    std::uint64_t cur = m.load(std::memory_order_relaxed);
    while (cur < v && !m.compare_exchange_weak(cur, v, std::memory_order_relaxed)) {
    }
}

/// A tiny lock for the registry: constant-initialized and trivially destructible,
/// so it works before main and after static destructors have run.
class spinlock {
public:
    void lock() noexcept {
        while (flag_.exchange(true, std::memory_order_acquire)) {
            while (flag_.load(std::memory_order_relaxed)) std::this_thread::yield();
        }
    }
    void unlock() noexcept { flag_.store(false, std::memory_order_release); }

private:
    std::atomic<bool> flag_{false};
};

/// RAII holder for a spinlock.
class spin_guard {
public:
    explicit spin_guard(spinlock& l) noexcept : lock_(l) { lock_.lock(); }
    ~spin_guard() { lock_.unlock(); }
    spin_guard(const spin_guard&) = delete;
    spin_guard& operator=(const spin_guard&) = delete;

private:
    spinlock& lock_;
};

/// The shared part of a tracker: totals of exited threads and of events counted
/// without a shard, the published live balance, and the peak.
struct tracker_slot {
    relaxed_u64 allocations{0};
    relaxed_u64 deallocations{0};
    relaxed_u64 bytes_allocated{0};
    relaxed_u64 bytes_freed{0};
    relaxed_i64 live_published{0};  ///< sum of the live-byte deltas threads have published
    relaxed_u64 peak{0};
    int shard_index = -1;  ///< index in every thread's shard array; -1: atomics only
    char name[64] = {};
};

/// One thread's counts for one tracker. Owner-written; see the file comment.
struct alignas(64) shard {
    relaxed_u64 allocations{0};
    relaxed_u64 deallocations{0};
    relaxed_u64 bytes_allocated{0};
    relaxed_u64 bytes_freed{0};
    relaxed_u64 peak{0};            ///< highest (published live + own drift) seen by this thread
    std::int64_t drift = 0;         ///< own live-byte change not yet published (owner only)
    std::int64_t published = 0;     ///< tracker live bytes after this thread's last publish (owner only)
};

struct scope_link;  // budget scopes, defined by budget.hpp

/// Everything memdiag keeps per thread. Allocated beneath the hooks, linked in
/// the registry for readers, retired when the thread exits.
struct thread_state {
    shard shards[MEMDIAG_MAX_TRACKERS];

    // Totals of this thread's outermost events, over all trackers: scopes on this
    // thread compare them against their starting values.
    std::uint64_t allocations = 0;
    std::uint64_t deallocations = 0;
    std::uint64_t bytes_allocated = 0;
    std::uint64_t bytes_freed = 0;

    scope_link* scopes = nullptr;  ///< innermost budget scope of this thread
    void* injection = nullptr;     ///< active fault injection (budget.hpp)
    std::int64_t sample_countdown = 0;  ///< bytes until the next heap-profile sample
    std::uint32_t sample_epoch = 0;     ///< profiler generation this countdown belongs to
    std::uint64_t rng = 0;              ///< sampler random state

    thread_state* prev = nullptr;
    thread_state* next = nullptr;
};

/// Lifecycle of a thread as the hooks see it.
enum thread_phase : unsigned char { phase_fresh = 0, phase_initializing, phase_active, phase_exited };

/// Units of thread_head::guards. One word, so the hot path tests one value:
/// zero means "count on the fast path".
enum : std::uint64_t {
    guard_internal = 1,                  ///< bits 0-15: memdiag's own work; events pass unobserved
    guard_event = std::uint64_t{1} << 16,  ///< bits 16-31: inside an outer event; nested events only count
    guard_armed = std::uint64_t{1} << 32   ///< bits 32-63: scopes / fault injection need the slow path
};

/// Trivially constructible per-thread head: initial-exec TLS, no TLS wrapper calls.
struct thread_head {
    thread_state* state;
    std::uint64_t guards;
    unsigned char phase;
};

inline thread_local thread_head tls_head MEMDIAG_TLS_FAST = {nullptr, 0, phase_fresh};

/// True inside an internal_section.
MEMDIAG_ALWAYS_INLINE bool in_internal_section(std::uint64_t guards) noexcept { return (guards & 0xffffu) != 0; }
/// True inside an outer event (nested_event).
MEMDIAG_ALWAYS_INLINE bool in_nested_event(std::uint64_t guards) noexcept { return (guards & 0xffff0000u) != 0; }
/// Makes this thread's events take the slow path (a scope or injection begins).
inline void arm_thread() noexcept { tls_head.guards += guard_armed; }
/// Undoes one arm_thread().
inline void disarm_thread() noexcept { tls_head.guards -= guard_armed; }

/// Process-wide bookkeeping, all constant-initialized so it works before main
/// and after static destruction.
struct registry {
    spinlock lock;
    thread_state* threads = nullptr;                    ///< live thread states
    tracker_slot* shard_owner[MEMDIAG_MAX_TRACKERS] = {};  ///< which tracker owns each shard index
    std::atomic<std::uint64_t> shard_in_use{0};         ///< bit per shard index
    /// Non-zero while some facility needs every thread's events on the slow
    /// path (process-wide scopes, heap profiler). Bits: see slow_* below.
    std::atomic<unsigned> global_slow{0};
};
static_assert(MEMDIAG_MAX_TRACKERS >= 2 && MEMDIAG_MAX_TRACKERS <= 64,
              "MEMDIAG_MAX_TRACKERS must be between 2 and 64");

inline registry g_registry;

/// Bits of registry::global_slow. While slow_profiler is set, the bits from
/// slow_epoch_shift up hold the heap profiler's run number (never 0), so the
/// hot path can tell with the same load whether a thread's sample countdown
/// belongs to the current run.
enum : unsigned { slow_process_scope = 1u, slow_profiler = 2u, slow_epoch_shift = 8u };

/// The trackers every program has: everything the global hook sees, and the
/// default for tracking allocators and resources given no tracker.
inline tracker_slot g_process_slot{{0}, {0}, {0}, {0}, {0}, {0}, 0, "process"};
inline tracker_slot g_default_slot{{0}, {0}, {0}, {0}, {0}, {0}, 1, "default"};

/// Folds a shard into its tracker (thread exit, tracker reuse). Registry lock held.
inline void fold_shard(shard& sh, tracker_slot& slot) noexcept {
    const auto r = std::memory_order_relaxed;
    slot.allocations.fetch_add(sh.allocations.load(r), r);
    slot.deallocations.fetch_add(sh.deallocations.load(r), r);
    slot.bytes_allocated.fetch_add(sh.bytes_allocated.load(r), r);
    slot.bytes_freed.fetch_add(sh.bytes_freed.load(r), r);
    if (sh.drift != 0) slot.live_published.fetch_add(sh.drift, r);
    atomic_max(slot.peak, sh.peak.load(r));
}

/// Zeroes a shard. Registry lock held, owner not running an event on it.
inline void clear_shard(shard& sh) noexcept {
    const auto r = std::memory_order_relaxed;
    sh.allocations.store(0, r);
    sh.deallocations.store(0, r);
    sh.bytes_allocated.store(0, r);
    sh.bytes_freed.store(0, r);
    sh.peak.store(0, r);
    sh.drift = 0;
    sh.published = 0;
}

inline tracker_slot* shard_owner(registry& reg, int index) noexcept {
    if (index == 0) return &g_process_slot;
    if (index == 1) return &g_default_slot;
    return reg.shard_owner[index];
}

/// Called once per thread when it exits: fold its counts into the trackers,
/// unlink and free its state. Later events of the thread count through atomics.
inline void retire_thread(thread_state* s) noexcept {
    if (s == nullptr) return;
    tls_head.phase = phase_exited;
    tls_head.state = nullptr;
    {
        spin_guard g(g_registry.lock);
        for (int i = 0; i < MEMDIAG_MAX_TRACKERS; ++i) {
            if (tracker_slot* owner = shard_owner(g_registry, i)) fold_shard(s->shards[i], *owner);
        }
        if (s->prev) s->prev->next = s->next;
        else g_registry.threads = s->next;
        if (s->next) s->next->prev = s->prev;
    }
    s->~thread_state();
    internal_free_aligned(s);
}

#if MEMDIAG_POSIX
/// The registry lock must not be held by a thread that does not exist in a
/// forked child: hold it across fork().
inline void register_fork_handlers() noexcept {
    pthread_atfork([] { g_registry.lock.lock(); }, [] { g_registry.lock.unlock(); },
                   [] { g_registry.lock.unlock(); });
}
#endif

/// Registers the fork handlers once. Higher layers with locks taken before the
/// registry's call this before registering their own, so that their prepare
/// handler runs first (pthread_atfork runs prepare handlers in reverse order).
inline void ensure_fork_handlers() noexcept {
#if MEMDIAG_POSIX
    static std::atomic<bool> registered{false};
    if (!registered.load(std::memory_order_acquire) && !registered.exchange(true)) register_fork_handlers();
#endif
}

/// Retires the thread's state at thread exit. A thread_local object's destructor
/// runs in every threading model C++ supports; events after it use atomics.
struct thread_reaper {
    ~thread_reaper() { retire_thread(tls_head.state); }
};

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
    {
        spin_guard g(g_registry.lock);
        s->next = g_registry.threads;
        if (s->next) s->next->prev = s;
        g_registry.threads = s;
    }
    static thread_local thread_reaper reaper;
    (void)&reaper;  // odr-use: constructs it, registering its destructor
    head.state = s;
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
