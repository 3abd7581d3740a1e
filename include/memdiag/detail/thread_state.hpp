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
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>

#include "../config.hpp"
#include "birth_table.hpp"
#include "internal_alloc.hpp"
#include "spin_lock.hpp"
#include "thread_head.hpp"

#if MEMDIAG_POSIX
#include <pthread.h>
#include <unistd.h>
#endif
#if defined(__linux__)
#include <sys/auxv.h>
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

    /// Innermost budget scope of this thread. The state owns the chain: it is
    /// not retired while a scope is linked (see thread_exiting), so a scope that
    /// outlives the thread's reaper still unlinks from live memory.
    scope_link* scopes = nullptr;
    bool exit_pending = false;  ///< the reaper ran while scopes were open: retire at the last pop
    /// Live blocks allocated while a leak-checking scope is open (see
    /// birth_table.hpp); kept only while birth_scopes > 0.
    birth_table births;
    unsigned birth_scopes = 0;  ///< open scopes of this thread that need births
    void* injection = nullptr;     ///< active fault injection (budget.hpp)
    std::int64_t sample_countdown = 0;  ///< bytes until the next heap-profile sample
    std::uint32_t sample_epoch = 0;     ///< profiler generation this countdown belongs to
    std::uint64_t rng = 0;              ///< sampler random state

    thread_state* prev = nullptr;
    thread_state* next = nullptr;
};


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

/// Folds a thread's counts into the trackers and unlinks its state from the
/// registry. Registry lock held.
inline void unlink_thread_locked(thread_state* s) noexcept {
    for (int i = 0; i < MEMDIAG_MAX_TRACKERS; ++i) {
        if (tracker_slot* owner = shard_owner(g_registry, i)) fold_shard(s->shards[i], *owner);
    }
    if (s->prev) s->prev->next = s->next;
    else g_registry.threads = s->next;
    if (s->next) s->next->prev = s->prev;
    s->prev = s->next = nullptr;
}

/// Retires the calling thread's state: fold its counts into the trackers,
/// unlink and free it. Later events of the thread count through atomics.
inline void retire_thread(thread_state* s) noexcept {
    if (s == nullptr) return;
    tls_head.phase = phase_exited;
    tls_head.state = nullptr;
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
/// before, until the last of them ends (pop_scope in budget.hpp retires it).
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

/// A layer's part in fork handling (budget.hpp, heap_profile.hpp). Called by
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
    head.phase = phase_active;
    return s;
}

/// Number of thread states in the registry (threads that allocated or opened
/// a scope and have not been retired). For tests and diagnostics.
inline std::size_t registered_threads() noexcept {
    spin_guard g(g_registry.lock);
    std::size_t n = 0;
    for (thread_state* s = g_registry.threads; s != nullptr; s = s->next) ++n;
    return n;
}

/// The calling thread's state, or nullptr when events must use atomics.
MEMDIAG_ALWAYS_INLINE thread_state* current_thread_state() noexcept {
    thread_state* s = tls_head.state;
    if (MEMDIAG_LIKELY(s != nullptr)) return s;
    return create_thread_state();
}

}  // namespace detail
}  // namespace memdiag
