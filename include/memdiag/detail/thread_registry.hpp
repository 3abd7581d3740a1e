// memdiag/detail/thread_registry.hpp - per-thread counting state and the registry of threads.
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

#include "../config.hpp"
#include "birth_table.hpp"
#include "spin_lock.hpp"
#include "thread_head.hpp"

namespace memdiag {
namespace detail {

using relaxed_u64 = std::atomic<std::uint64_t>;
using relaxed_i64 = std::atomic<std::int64_t>;

/// Adds to a counter that only the calling thread writes.
MEMDIAG_ALWAYS_INLINE void owner_add(relaxed_u64& c, std::uint64_t n) noexcept {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

/// owner_add for the global hook's counters: one read-modify-write
/// instruction on memory on x86-64 (`add` without `lock`: only the owner
/// writes, and the aligned 8-byte store a reader may see is whole), where
/// relaxed atomics compile to a load, an add and a store. Elsewhere owner_add.
MEMDIAG_ALWAYS_INLINE void owner_bump(relaxed_u64& c, std::uint64_t n) noexcept {
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
    static_assert(sizeof(relaxed_u64) == sizeof(std::uint64_t), "a lock-free 8-byte counter");
    // The operand is c's 8 bytes; the asm is opaque to the compiler, so
    // no relaxed load of c is reordered or cached across it (it reads and writes c).
    // AT&T, or Intel under -masm=intel (g++ prints the operand's size itself, clang does not).
#if defined(__clang__)
    __asm__("add{q %1, %0| qword ptr %0, %1}" : "+m"(*reinterpret_cast<std::uint64_t*>(&c)) : "er"(n));
#else
    __asm__("add{q %1, %0| %0, %1}" : "+m"(*reinterpret_cast<std::uint64_t*>(&c)) : "er"(n));
#endif
#else
    owner_add(c, n);
#endif
}

/// Raises an atomic maximum.
inline void atomic_max(relaxed_u64& m, std::uint64_t v) noexcept {
    std::uint64_t cur = m.load(std::memory_order_relaxed);
    while (cur < v && !m.compare_exchange_weak(cur, v, std::memory_order_relaxed)) {
    }
}

/// Counts one event into counters that several threads write (read-modify-
/// write atomics): its kind's count and bytes (allocations or frees), the live
/// balance, and for an allocation the peak. Returns the live bytes after it.
inline std::int64_t count_atomically(relaxed_u64& events, relaxed_u64& bytes, relaxed_i64& live, relaxed_u64& peak,
                                     std::size_t size, bool allocation) noexcept {
    const auto r = std::memory_order_relaxed;
    const auto n = static_cast<std::int64_t>(size);
    events.fetch_add(1, r);
    bytes.fetch_add(size, r);
    if (!allocation) return live.fetch_sub(n, r) - n;
    const std::int64_t now = live.fetch_add(n, r) + n;
    if (now > 0) atomic_max(peak, static_cast<std::uint64_t>(now));
    return now;
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
    /// shard_index * sizeof(shard), or -1: the allocators' fast path finds
    /// the shard with one load and one add (no scaling of the index).
    std::ptrdiff_t shard_offset = -1;
};

/// One thread's counts for one tracker, one cache line. Owner-written; see the
/// file comment. The live-byte view is compared against one mark per side,
/// kept in memory so that an event needs no arithmetic for it:
///  - steady: alloc_mark = min(peak, published + step), free_mark = published - step;
///  - rising (the view went above the peak and no free came since): alloc_mark =
///    published + step, free_mark = rising_free_mark, so the first free goes out
///    of line and records the peak then (the view just before it). While rising,
///    `peak` holds the view less bytes_allocated, which no allocation changes,
///    tagged by its top bit, so other threads can read the peak (peak_seen).
/// An allocation therefore tests one mark instead of the peak and the publish
/// mark, and the peak is stored only when the view turns down.
struct alignas(64) shard {
    relaxed_u64 allocations{0};
    relaxed_u64 deallocations{0};
    relaxed_u64 bytes_allocated{0};
    relaxed_u64 bytes_freed{0};
    /// Highest view seen by this thread; while rising, rising_tag | (view - bytes_allocated).
    relaxed_u64 peak{0};
    /// Tracker live bytes as this thread sees them: the value at its last
    /// publish plus its own change since (owner only).
    std::int64_t view = 0;
    std::int64_t alloc_mark = 0;              ///< an allocation leaving the view above it goes out of line (owner only)
    std::int64_t free_mark = -publish_step;   ///< a free leaving the view below it goes out of line (owner only)

    /// How far the view may drift from the published value (config.hpp).
    static constexpr std::int64_t publish_step = MEMDIAG_PEAK_PUBLISH_BYTES;
    /// free_mark while rising: every free is below it.
    static constexpr std::int64_t rising_free_mark = INT64_MAX;
    /// Top bit of `peak` while rising; the other 63 bits hold a signed offset
    /// (|offset| < 2^62: 4 EiB, which no byte count reaches).
    static constexpr std::uint64_t rising_tag = std::uint64_t{1} << 63;

    /// True from an allocation above the peak to the next free or publish (owner only).
    bool rising() const noexcept { return free_mark == rising_free_mark; }
    /// The tracker's live bytes at this thread's last publish (owner only).
    std::int64_t published() const noexcept {
        return rising() ? alloc_mark - publish_step : free_mark + publish_step;
    }
    /// Own live-byte change not yet published (owner, or registry lock with the owner quiet).
    std::int64_t drift() const noexcept { return view - published(); }

    /// The peak as any thread may read it: while rising, the current view
    /// (exact once the owner is quiet).
    std::uint64_t peak_seen() const noexcept {
        const auto r = std::memory_order_relaxed;
        const std::uint64_t p = peak.load(r);
        if ((p & rising_tag) == 0) return p;
        const std::int64_t view_now = unrise(p) + static_cast<std::int64_t>(bytes_allocated.load(r));
        return view_now > 0 ? static_cast<std::uint64_t>(view_now) : 0;
    }

    /// Owner: the view went above alloc_mark without a publish being due and
    /// above the peak: rising until the next free or publish.
    void start_rising(std::int64_t published_value) noexcept {
        const std::int64_t offset = view - static_cast<std::int64_t>(bytes_allocated.load(std::memory_order_relaxed));
        peak.store(rising_tag | (static_cast<std::uint64_t>(offset) & ~rising_tag), std::memory_order_relaxed);
        alloc_mark = published_value + publish_step;
        free_mark = rising_free_mark;
    }
    /// Owner: steady marks for a peak and a published value; stores the peak.
    void settle(std::uint64_t peak_value, std::int64_t published_value) noexcept {
        peak.store(peak_value, std::memory_order_relaxed);
        const std::int64_t above = published_value + publish_step;
        alloc_mark = static_cast<std::int64_t>(peak_value) < above ? static_cast<std::int64_t>(peak_value) : above;
        free_mark = published_value - publish_step;
    }

private:
    static std::int64_t unrise(std::uint64_t p) noexcept {
        return static_cast<std::int64_t>(p << 1) >> 1;  // sign-extends the 63-bit offset
    }
};
static_assert(sizeof(shard) == 64, "a shard is one cache line");

struct scope_link;  // budget scopes, defined by scope_link.hpp

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
    /// birth_table.hpp); emptied when a new leak check starts with none open.
    birth_table births;
    unsigned birth_scopes = 0;  ///< open scopes of this thread that need births
    void* injection = nullptr;     ///< active fault injection (fault_injection.hpp)
    std::int64_t sample_countdown = 0;  ///< bytes until the next heap-profile sample
    /// The global_slow word of the profiler run this countdown belongs to
    /// (slow_profiler | run << slow_epoch_shift; 0: none): the hook tests
    /// "profiler alone, this run" as one compare with the word it loaded.
    unsigned sample_key = 0;
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
inline tracker_slot g_process_slot{{0}, {0}, {0}, {0}, {0}, {0}, 0, "process", 0};
inline tracker_slot g_default_slot{{0}, {0}, {0}, {0}, {0}, {0}, 1, "default", sizeof(shard)};

/// Folds a shard into its tracker (thread exit, tracker reuse). Registry lock held.
inline void fold_shard(shard& sh, tracker_slot& slot) noexcept {
    const auto r = std::memory_order_relaxed;
    slot.allocations.fetch_add(sh.allocations.load(r), r);
    slot.deallocations.fetch_add(sh.deallocations.load(r), r);
    slot.bytes_allocated.fetch_add(sh.bytes_allocated.load(r), r);
    slot.bytes_freed.fetch_add(sh.bytes_freed.load(r), r);
    if (sh.drift() != 0) slot.live_published.fetch_add(sh.drift(), r);
    atomic_max(slot.peak, sh.peak_seen());
}

/// Zeroes a shard. Registry lock held, owner not running an event on it.
inline void clear_shard(shard& sh) noexcept {
    const auto r = std::memory_order_relaxed;
    sh.allocations.store(0, r);
    sh.deallocations.store(0, r);
    sh.bytes_allocated.store(0, r);
    sh.bytes_freed.store(0, r);
    sh.view = 0;
    sh.settle(0, 0);
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

/// Number of thread states in the registry (threads that allocated or opened
/// a scope and have not been retired). For tests and diagnostics.
inline std::size_t registered_threads() noexcept {
    spin_guard g(g_registry.lock);
    std::size_t n = 0;
    for (thread_state* s = g_registry.threads; s != nullptr; s = s->next) ++n;
    return n;
}

}  // namespace detail
}  // namespace memdiag
