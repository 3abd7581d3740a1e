// memdiag/tracker.hpp - where counts go, and the one event path every source feeds.
//
// A tracker attributes memory to a subsystem ("cache", "parser"). Every source
// of allocations (global new/delete, the malloc family where covered,
// tracking_allocator, tracking_resource) reports through admit_allocation /
// record_allocation / record_deallocation below, so budgets, fault injection and
// the heap profiler work for every source and none is written twice.
//
// Precision: allocation and byte counts are exact, also under concurrency and
// across thread exit. peak_live_bytes is exact while a single thread allocates
// and frees a tracker's memory; when several threads do, each thread publishes
// its live-byte balance every MEMDIAG_PEAK_PUBLISH_BYTES (64 KiB), so the peak
// is within threads x 64 KiB of the true one. That keeps a shared cache line
// off the hot path.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>

#include "config.hpp"
#include "detail/internal_section.hpp"
#include "detail/thread_state.hpp"
#include "detail/throw.hpp"
#include "hook_status.hpp"
#include "stats.hpp"

namespace memdiag {

namespace detail {

/// Slow-path handlers installed by higher layers (detail/budget_events.hpp, heap_profile.hpp).
/// Events reach them only while the thread is armed (guards) or a global_slow bit is set.
struct event_handlers {
    /// May the allocation proceed? May throw when may_throw (a budget's throw policy).
    std::atomic<bool (*)(thread_state*, tracker_slot&, std::size_t, bool)> budget_admit{nullptr};
    /// After a successful allocation / before a deallocation (scope accounting;
    /// the address tells leak checks whether a freed block was born in a scope).
    std::atomic<void (*)(thread_state*, void*, std::size_t)> budget_allocated{nullptr};
    std::atomic<void (*)(thread_state*, void*, std::size_t)> budget_freed{nullptr};
    /// Heap profiler: sample an allocation, forget a freed sampled block.
    std::atomic<void (*)(thread_state*, void*, std::size_t)> profile_allocated{nullptr};
    std::atomic<void (*)(void*)> profile_freed{nullptr};
    /// The global hook is about to throw std::bad_alloc (heap snapshot on failure).
    std::atomic<void (*)(std::size_t)> out_of_memory{nullptr};
    /// A budget was breached and asked for a heap snapshot (set by the heap profiler).
    std::atomic<void (*)(const char* reason)> breach_dump{nullptr};
};
inline event_handlers g_handlers;

/// True when some facility needs every thread's events on the slow path.
MEMDIAG_ALWAYS_INLINE bool global_slow_path() noexcept {
    return g_registry.global_slow.load(std::memory_order_relaxed) != 0;
}

/// Only the heap profiler needs the slow path (no process-wide scope): it
/// admits every allocation, and counts frees with one filter test.
MEMDIAG_ALWAYS_INLINE bool profiler_only(unsigned global_slow) noexcept {
    return (global_slow & ((1u << slow_epoch_shift) - 1)) == slow_profiler;
}

/// True when no process-wide facility checks allocations before they are made:
/// global_slow is 0 or has the profiler's bit alone (the profiler admits every
/// allocation). One test for both.
MEMDIAG_ALWAYS_INLINE bool nothing_to_admit(unsigned global_slow) noexcept {
    return (global_slow & ((1u << slow_epoch_shift) - 1) & ~slow_profiler) == 0;
}

MEMDIAG_COLD inline bool admit_slow(tracker_slot& t, std::size_t size, bool may_throw) {
    auto admit = g_handlers.budget_admit.load(std::memory_order_acquire);
    if (admit == nullptr) return true;
    return admit(current_thread_state(), t, size, may_throw);
}

// requested: the size the program asked for (the heap profiler records it);
// size: what is counted (the global hook counts usable sizes).
MEMDIAG_COLD inline void allocated_slow(thread_state* s, void* p, std::size_t size, std::size_t requested) noexcept {
    if (auto f = g_handlers.budget_allocated.load(std::memory_order_acquire)) f(s, p, size);
    if (g_registry.global_slow.load(std::memory_order_relaxed) & slow_profiler) {
        if (auto f = g_handlers.profile_allocated.load(std::memory_order_acquire)) f(s, p, requested);
    }
}

MEMDIAG_COLD inline void freed_slow(thread_state* s, void* p, std::size_t size) noexcept {
    if (auto f = g_handlers.budget_freed.load(std::memory_order_acquire)) f(s, p, size);
    if (g_registry.global_slow.load(std::memory_order_relaxed) & slow_profiler) {
        if (auto f = g_handlers.profile_freed.load(std::memory_order_acquire)) f(p);
    }
}

/// A soft limit on the process tracker's live bytes (set_soft_limit, soft_limit.hpp).
struct soft_limit_state {
    std::atomic<std::int64_t> threshold{-1};  ///< -1: none
    std::atomic<std::int64_t> rearm_below{0};
    std::atomic<bool> tripped{false};
    std::atomic<bool> running{false};
    std::atomic<void (*)(std::int64_t live)> notify{nullptr};
};
inline soft_limit_state g_soft_limit;

/// A watch on the process tracker's live bytes: notify runs when a published
/// value reaches `up` or falls below `down` (the heap profiler's watermarks,
/// watermark.hpp; the owner moves the marks as levels fire and re-arm).
struct live_watch_state {
    std::atomic<std::int64_t> up{INT64_MAX};
    std::atomic<std::int64_t> down{INT64_MIN};
    std::atomic<void (*)(std::int64_t live)> notify{nullptr};
};
inline live_watch_state g_live_watch;

/// Called with the process tracker's live bytes each time a thread publishes.
/// Fires once per crossing; re-arms when live falls below the hysteresis mark.
MEMDIAG_COLD inline void check_soft_limit(std::int64_t live) noexcept {
    if (MEMDIAG_UNLIKELY(live >= g_live_watch.up.load(std::memory_order_relaxed) ||
                         live < g_live_watch.down.load(std::memory_order_relaxed))) {
        if (auto f = g_live_watch.notify.load(std::memory_order_acquire)) f(live);
    }
    const std::int64_t threshold = g_soft_limit.threshold.load(std::memory_order_relaxed);
    if (threshold < 0) return;
    if (live >= threshold) {
        if (g_soft_limit.tripped.exchange(true)) return;
        if (g_soft_limit.running.exchange(true)) return;  // no recursion from inside the callback
        if (auto f = g_soft_limit.notify.load(std::memory_order_acquire)) f(live);
        g_soft_limit.running.store(false);
    } else if (live < g_soft_limit.rearm_below.load(std::memory_order_relaxed)) {
        g_soft_limit.tripped.store(false, std::memory_order_relaxed);
    }
}

/// The out-of-line part of a shard count, called when an event left the view
/// beyond one of its marks (shard_count_allocation / shard_count_free returned
/// true); harmless at any other time. Ends a rise: the peak, the view before
/// this free, is stored now. Publishes the drift to the tracker when the view
/// left its publish band (see the file comment); else starts a rise when an
/// allocation took the view above the peak; else only resets the marks.
// Not cold: g++ would then move the hot path that may call it to the cold section.
MEMDIAG_NOINLINE inline void publish_drift(shard& sh, tracker_slot& t) noexcept {
    std::int64_t published = sh.published();
    std::uint64_t peak = sh.peak_seen();  // ends a rise: bytes_allocated has not moved since the view was highest
    const std::int64_t view = sh.view;
    const std::int64_t drift = view - published;
    if (drift > shard::publish_step || drift < -shard::publish_step) {
        const std::int64_t now = t.live_published.fetch_add(drift, std::memory_order_relaxed) + drift;
        sh.view = published = now;
        if (view > static_cast<std::int64_t>(peak)) peak = static_cast<std::uint64_t>(view);
        if (now > static_cast<std::int64_t>(peak)) peak = static_cast<std::uint64_t>(now);
        if (now > 0) atomic_max(t.peak, static_cast<std::uint64_t>(now));
        sh.settle(peak, published);
        if (&t == &g_process_slot) check_soft_limit(now);
        return;
    }
    if (view > static_cast<std::int64_t>(peak)) return sh.start_rising(published);
    sh.settle(peak, published);
}

/// Counting without a shard: trackers beyond MEMDIAG_MAX_TRACKERS, threads
/// that are starting or have exited.
MEMDIAG_COLD inline void count_unsharded(tracker_slot& t, std::size_t size, bool allocation) noexcept {
    const std::int64_t now =
        allocation ? count_atomically(t.allocations, t.bytes_allocated, t.live_published, t.peak, size, true)
                   : count_atomically(t.deallocations, t.bytes_freed, t.live_published, t.peak, size, false);
    if (&t == &g_process_slot) check_soft_limit(now);
}

/// Step 1 of an allocation, before memory is obtained: budgets and fault
/// injection. Returns false when the allocation must fail (the caller reports
/// it as its contract says); with may_throw, a budget may throw instead.
MEMDIAG_ALWAYS_INLINE bool admit_allocation(tracker_slot& t, std::size_t size, bool may_throw) {
#if MEMDIAG_ENABLED
    const std::uint64_t guards = tls_head.guards;
    if (MEMDIAG_LIKELY(guards == 0 && nothing_to_admit(g_registry.global_slow.load(std::memory_order_relaxed))))
        return true;
    if (in_internal_section(guards) || in_nested_event(guards) || holding_lock(guards)) return true;
    return admit_slow(t, size, may_throw);
#else
    (void)t, (void)size, (void)may_throw;
    return true;
#endif
}

/// Counts an allocation in the calling thread's shard. Plain arithmetic first,
/// then the owner-only atomic stores, so nothing is reloaded from memory.
/// True when the view rose above its allocation mark (the peak or the publish
/// mark): the caller calls publish_drift.
MEMDIAG_ALWAYS_INLINE bool shard_count_allocation(shard& sh, std::size_t size) noexcept {
    const std::int64_t view = sh.view + static_cast<std::int64_t>(size);
    const bool marked = view > sh.alloc_mark;
    sh.view = view;
    owner_bump(sh.allocations, 1);
    owner_bump(sh.bytes_allocated, size);
    return marked;
}

/// Counts a deallocation in the calling thread's shard. True when the view
/// fell below its free mark (the publish mark, or any free after a rise):
/// the caller calls publish_drift.
MEMDIAG_ALWAYS_INLINE bool shard_count_free(shard& sh, std::size_t size) noexcept {
    const std::int64_t view = sh.view - static_cast<std::int64_t>(size);
    sh.view = view;
    owner_bump(sh.deallocations, 1);
    owner_bump(sh.bytes_freed, size);
    return view < sh.free_mark;
}

/// Counts an allocation in the calling thread's shard and publishes when due.
MEMDIAG_ALWAYS_INLINE void shard_allocated(shard& sh, tracker_slot& t, std::size_t size) noexcept {
    if (MEMDIAG_UNLIKELY(shard_count_allocation(sh, size))) publish_drift(sh, t);
}

/// Counts a deallocation in the calling thread's shard and publishes when due.
MEMDIAG_ALWAYS_INLINE void shard_freed(shard& sh, tracker_slot& t, std::size_t size) noexcept {
    if (MEMDIAG_UNLIKELY(shard_count_free(sh, size))) publish_drift(sh, t);
}

/// Events seen while their thread held a memdiag lock: a signal handler that
/// interrupted memdiag allocated or freed. They are counted in their tracker
/// (atomics) but not charged to budgets nor seen by the heap profiler, which
/// would take the held lock again. heap_profiler::stats() reports the number.
inline std::atomic<std::uint64_t> g_reentrant_events{0};

/// An event on a thread holding a memdiag lock (see g_reentrant_events).
MEMDIAG_COLD inline void count_reentrant(tracker_slot& t, std::size_t size, bool allocation) noexcept {
    count_unsharded(t, size, allocation);
    g_reentrant_events.fetch_add(1, std::memory_order_relaxed);
}

/// Everything record_allocation does off the fast path.
MEMDIAG_COLD inline void record_allocation_slow(tracker_slot& t, void* p, std::size_t size,
                                               std::size_t requested) noexcept {
    const std::uint64_t guards = tls_head.guards;
    if (in_internal_section(guards)) return;
    if (MEMDIAG_UNLIKELY(holding_lock(guards))) return count_reentrant(t, size, true);
    thread_state* s = current_thread_state();
    if (s != nullptr && t.shard_index >= 0) shard_allocated(s->shards[t.shard_index], t, size);
    else count_unsharded(t, size, true);
    if (in_nested_event(guards) || s == nullptr) return;
    ++s->allocations;
    s->bytes_allocated += size;
    allocated_slow(s, p, size, requested);
}

/// Everything record_deallocation does off the fast path.
MEMDIAG_COLD inline void record_deallocation_slow(tracker_slot& t, void* p, std::size_t size) noexcept {
    const std::uint64_t guards = tls_head.guards;
    if (in_internal_section(guards)) return;
    if (MEMDIAG_UNLIKELY(holding_lock(guards))) return count_reentrant(t, size, false);
    thread_state* s = current_thread_state();
    if (s != nullptr && t.shard_index >= 0) shard_freed(s->shards[t.shard_index], t, size);
    else count_unsharded(t, size, false);
    if (in_nested_event(guards) || s == nullptr) return;
    ++s->deallocations;
    s->bytes_freed += size;
    freed_slow(s, p, size);
}

/// The shard index of t: the process tracker's is always 0, which the global
/// hook's calls fold to a constant (no load, no test); -1: atomics only.
MEMDIAG_ALWAYS_INLINE int shard_of(const tracker_slot& t) noexcept {
    return &t == &g_process_slot ? 0 : t.shard_index;
}

// The hot path below touches only the calling thread's memory plus one load of
// the read-mostly global_slow word. The thread totals (thread_state::
// allocations ...) are left to the slow path: only scopes read them, and a
// thread with a scope open is armed, so its events never come here.

/// The fast part of record_allocation: counts the event and returns true when
/// nothing else is needed (no scope, no injection, no sample due); false
/// leaves the event uncounted for record_allocation_slow.
MEMDIAG_ALWAYS_INLINE bool count_allocation_fast(tracker_slot& t, std::size_t size, std::size_t requested) noexcept {
#if MEMDIAG_ENABLED
    const thread_head& h = tls_head;
    thread_state* s = h.state;
    const int index = shard_of(t);
    if (MEMDIAG_UNLIKELY(s == nullptr)) return false;
    if (MEMDIAG_UNLIKELY(h.guards != 0)) return false;
    if (MEMDIAG_UNLIKELY(index < 0)) return false;
    const unsigned g = g_registry.global_slow.load(std::memory_order_relaxed);
    if (MEMDIAG_UNLIKELY(g != 0)) {
        // Heap profiling alone: an allocation that leaves the sample countdown
        // of this run positive is not sampled, so it is counted right here
        // (what the profiler's handler would do) without the slow path.
        const auto bytes = static_cast<std::int64_t>(requested);
        if (s->sample_key != g || s->sample_countdown <= bytes)  // the key: profiler alone, this run
            return false;
        s->sample_countdown -= bytes;
    }
    shard_allocated(s->shards[index], t, size);
    return true;
#else
    (void)t, (void)size, (void)requested;
    return true;
#endif
}

/// Step 2 of an allocation, after it succeeded: count it. `requested` (0: same
/// as size) is the size the program asked for, when size is a usable size.
MEMDIAG_ALWAYS_INLINE void record_allocation(tracker_slot& t, void* p, std::size_t size,
                                             std::size_t requested = 0) noexcept {
#if MEMDIAG_ENABLED
    if (requested == 0) requested = size;
    if (count_allocation_fast(t, size, requested)) return;
    record_allocation_slow(t, p, size, requested);
#else
    (void)t, (void)p, (void)size, (void)requested;
#endif
}

/// What count_deallocation_fast did with a free.
enum class free_path {
    counted,   ///< counted; nothing else watches frees
    profiled,  ///< counted; the heap profiler (alone) must be told: profile_free
    slow       ///< not counted: record_deallocation_slow
};

/// The fast part of record_deallocation: counts the event unless a scope,
/// injection or process scope needs the slow path.
MEMDIAG_ALWAYS_INLINE free_path count_deallocation_fast(tracker_slot& t, std::size_t size) noexcept {
#if MEMDIAG_ENABLED
    const thread_head& h = tls_head;
    thread_state* s = h.state;
    const int index = shard_of(t);
    // One test per branch: g++ mispredicts a __builtin_expect around a && chain.
    if (MEMDIAG_UNLIKELY(s == nullptr)) return free_path::slow;
    if (MEMDIAG_UNLIKELY(h.guards != 0)) return free_path::slow;
    if (MEMDIAG_UNLIKELY(index < 0)) return free_path::slow;
    const unsigned g = g_registry.global_slow.load(std::memory_order_relaxed);
    if (MEMDIAG_UNLIKELY(g != 0) && !profiler_only(g)) return free_path::slow;
    shard_freed(s->shards[index], t, size);
    return MEMDIAG_LIKELY(g == 0) ? free_path::counted : free_path::profiled;
#else
    (void)t, (void)size;
    return free_path::counted;
#endif
}

/// Tells the heap profiler that p is freed (its filter test; only possible
/// hits lock). Not cold: while a profiler runs, every free comes here.
MEMDIAG_NOINLINE inline void profile_free(void* p) noexcept {
    if (auto f = g_handlers.profile_freed.load(std::memory_order_acquire)) f(p);
}

/// A deallocation: count it. size must be what record_allocation was given.
MEMDIAG_ALWAYS_INLINE void record_deallocation(tracker_slot& t, void* p, std::size_t size) noexcept {
#if MEMDIAG_ENABLED
    const free_path path = count_deallocation_fast(t, size);
    if (MEMDIAG_LIKELY(path == free_path::counted)) return;
    if (path == free_path::profiled) return profile_free(p);
    record_deallocation_slow(t, p, size);
#else
    (void)t, (void)p, (void)size;
#endif
}

/// Marks the calling thread as inside an outer event (a tracking allocator
/// calling its upstream): nested events are counted by their own tracker but
/// are not charged to budgets or sampled a second time.
class nested_event {
public:
    nested_event() noexcept { tls_head.guards += guard_event; }
    ~nested_event() { tls_head.guards -= guard_event; }
    nested_event(const nested_event&) = delete;
    nested_event& operator=(const nested_event&) = delete;
};

// The fused event path of tracking_allocator and tracking_resource: one test
// before the upstream call decides that the event needs nothing but counting
// (a thread state, no guard, nothing process-wide, a sharded tracker); the
// upstream call is then made bare (no nested_event around it). An allocation
// that moves no mark is counted before the call and taken back if the call
// throws, so only the shard and the size live across it; one that raises the
// shard's peak or is due to publish is counted after it (counted_after). A
// deallocation is counted first and its upstream call is a tail call.
// Anything else (budgets, fault injection, the heap profiler, a signal inside
// memdiag) takes allocate_counted_slow, which is the general path: admit,
// nested upstream call, record_allocation. The slow parts take the upstream call and its
// arguments by value: by reference, they would be stored to the stack on the
// fast path too.

/// The calling thread's state when its events need nothing but counting (a
/// state exists, no guard, nothing process-wide); nullptr otherwise. The
/// global hook's test: its tracker's shard is always 0.
MEMDIAG_ALWAYS_INLINE thread_state* quiet_thread_state() noexcept {
    thread_state* const s = tls_head.state;
    // One branch for the common case: the conditions folded into one word
    // (guard_no_state stands for s == nullptr).
    const std::uint64_t rare = tls_head.guards | g_registry.global_slow.load(std::memory_order_relaxed);
    return MEMDIAG_LIKELY(rare == 0) ? s : nullptr;
}

/// The calling thread's shard for t when an event of t needs nothing but
/// counting there; nullptr when it must take the general path.
MEMDIAG_ALWAYS_INLINE shard* quiet_shard(const tracker_slot& t) noexcept {
    // Two tests, each a load and a jump (folding them into one word costs
    // more instructions than the branch it saves). A thread without a state
    // has guard_no_state in its guards: the first test covers it.
    if (MEMDIAG_UNLIKELY((tls_head.guards | g_registry.global_slow.load(std::memory_order_relaxed)) != 0))
        return nullptr;
    thread_state* const s = tls_head.state;
#if defined(__GNUC__)
    // No guards means a state (guard_no_state): saying so lets the caller's
    // null test of the result fold away.
    if (s == nullptr) __builtin_unreachable();
#endif
    const std::ptrdiff_t offset = t.shard_offset;  // pre-scaled: one add finds the shard
    if (MEMDIAG_UNLIKELY(offset < 0)) return nullptr;
    return reinterpret_cast<shard*>(reinterpret_cast<char*>(s->shards) + offset);
}

/// deallocate_counted's publish, then the upstream call: out of line and
/// reached by a tail call so the fast path keeps nothing across it.
template <class Upstream, class... Args>
MEMDIAG_NOINLINE void published_before(shard& sh, tracker_slot& t, Upstream upstream, Args... args) noexcept {
    publish_drift(sh, t);
    upstream(args...);
}

/// Counts an allocation whose new view (`view`) is not above the shard's
/// allocation mark (allocate_counted checked): no stored mark moves (while
/// rising, the peak is the view, which shard_uncount_allocation takes back too).
MEMDIAG_ALWAYS_INLINE void shard_count_below_marks(shard& sh, std::size_t size, std::int64_t view) noexcept {
    sh.view = view;
    owner_bump(sh.allocations, 1);
    owner_bump(sh.bytes_allocated, size);
}

/// Takes back shard_count_below_marks when the upstream failed. The shard's
/// figures are exact again even when an upstream counting into the same
/// tracker on this thread changed them in between; a publish it made may
/// have raised the tracker's peak by `size` (a bound, as with several threads).
MEMDIAG_NOINLINE inline void shard_uncount_allocation(shard& sh, std::size_t size) noexcept {
    const auto r = std::memory_order_relaxed;
    sh.view -= static_cast<std::int64_t>(size);
    sh.allocations.store(sh.allocations.load(r) - 1, r);
    sh.bytes_allocated.store(sh.bytes_allocated.load(r) - size, r);
}

/// allocate_counted on a quiet thread when the event takes the view above the
/// shard's allocation mark (a new peak, or a publish due): the upstream call
/// first, then the count (these marks cannot be taken back if the upstream throws).
template <class Result, class Upstream, class... Args>
MEMDIAG_NOINLINE Result counted_after(shard& sh, tracker_slot& t, std::size_t size, Upstream upstream,
                                      Args... args) {
    Result p = upstream(args...);
    if (shard_count_allocation(sh, size)) publish_drift(sh, t);
    return p;
}

/// allocate_counted off the fast path: budgets and injection admit, the upstream
/// call is a nested event, record_allocation counts and samples. The result
/// type is spelled out, not decltype: stack reports drop this frame by its
/// name, which must start with the type (frame_filter.hpp).
template <class Result, class Upstream, class... Args>
MEMDIAG_NOINLINE Result allocate_counted_slow(tracker_slot& t, std::size_t size, Upstream upstream, Args... args) {
    if (!admit_allocation(t, size, true)) throw_bad_alloc();
    Result p;
    {
        nested_event nested;
        p = upstream(args...);
    }
    record_allocation(t, p, size);
    return p;
}

/// An allocation of `size` bytes counted into t, its memory from
/// `upstream(args...)` (which returns the block or throws). Throws
/// std::bad_alloc when a budget or fault injection refuses (nothing is
/// allocated then), or what upstream throws (nothing is counted then). Keep
/// upstream's captures small and pass the rest as args: the slow part takes
/// both by value, in registers.
template <class Upstream, class... Args>
MEMDIAG_ALWAYS_INLINE auto allocate_counted(tracker_slot& t, std::size_t size, Upstream upstream, Args... args) {
#if MEMDIAG_ENABLED
    using result = decltype(upstream(args...));
    if (shard* sh = quiet_shard(t)) {
        // Counted before the call, so that nothing but the shard and the size
        // is kept across it. Only when the event moves no stored mark (the
        // view stays at or below alloc_mark): a rise's start or a publish
        // cannot be taken back exactly, so such an event, the rare one,
        // counts after the call instead.
        const std::int64_t view = sh->view + static_cast<std::int64_t>(size);
        if (MEMDIAG_LIKELY(view <= sh->alloc_mark)) {
            shard_count_below_marks(*sh, size, view);
#if MEMDIAG_HAS_EXCEPTIONS
            try {
                return upstream(args...);
            } catch (...) {
                shard_uncount_allocation(*sh, size);  // strong guarantee: the failed event was never counted
                throw;
            }
#else
            return upstream(args...);  // nothing can throw: a tail call
#endif
        }
        return counted_after<result>(*sh, t, size, upstream, args...);
    }
    return allocate_counted_slow<result>(t, size, upstream, args...);
#else
    (void)t, (void)size;
    return upstream(args...);
#endif
}

/// deallocate_counted off the fast path: record_deallocation, then the upstream
/// call as a nested event.
template <class Upstream, class... Args>
MEMDIAG_NOINLINE void deallocate_counted_slow(tracker_slot& t, void* p, std::size_t size, Upstream upstream,
                                              Args... args) noexcept {
    record_deallocation(t, p, size);
    nested_event nested;
    upstream(args...);
}

/// A deallocation of p (`size` bytes, as allocate_counted was given) counted
/// into t, then returned by `upstream(args...)`, which must not throw.
template <class Upstream, class... Args>
MEMDIAG_ALWAYS_INLINE void deallocate_counted(tracker_slot& t, void* p, std::size_t size, Upstream upstream,
                                              Args... args) noexcept {
#if MEMDIAG_ENABLED
    if (shard* sh = quiet_shard(t)) {
        if (MEMDIAG_UNLIKELY(shard_count_free(*sh, size))) return published_before(*sh, t, upstream, args...);
        return upstream(args...);
    }
    deallocate_counted_slow(t, p, size, upstream, args...);
#else
    (void)t, (void)p, (void)size;
    upstream(args...);
#endif
}

/// Merges a tracker's shards with its shared totals.
inline allocation_stats read_stats(const tracker_slot& t) noexcept {
    const auto r = std::memory_order_relaxed;
    allocation_stats st;
    std::uint64_t peak = 0;
    {
        spin_guard g(g_registry.lock);
        st.allocations = t.allocations.load(r);
        st.deallocations = t.deallocations.load(r);
        st.bytes_allocated = t.bytes_allocated.load(r);
        st.bytes_freed = t.bytes_freed.load(r);
        peak = t.peak.load(r);
        if (t.shard_index >= 0) {
            for (thread_state* s = g_registry.threads; s != nullptr; s = s->next) {
                const shard& sh = s->shards[t.shard_index];
                st.allocations += sh.allocations.load(r);
                st.deallocations += sh.deallocations.load(r);
                st.bytes_allocated += sh.bytes_allocated.load(r);
                st.bytes_freed += sh.bytes_freed.load(r);
                const std::uint64_t p = sh.peak_seen();
                if (p > peak) peak = p;
            }
        }
    }
    st.update_live();
    if (st.live_bytes > 0 && static_cast<std::uint64_t>(st.live_bytes) > peak)
        peak = static_cast<std::uint64_t>(st.live_bytes);
    st.peak_live_bytes = peak;
    return st;
}

/// Whether the global operator new hook is the one this process calls:
/// 0 not known yet, 1 yes, 2 no (see verify_global_hook).
inline std::atomic<int> g_hook_verdict{0};

/// Allocates one byte through ::operator new and reports whether the calling
/// thread's process shard counted it, then takes the count back (owner-only
/// fields: exact). The event is a nested one, so no budget is charged and the
/// profiler does not sample it. Returns -1 when the thread cannot tell now.
inline int probe_global_hook() noexcept {
    const std::uint64_t guards = tls_head.guards;
    if (in_internal_section(guards) || in_nested_event(guards) || holding_lock(guards)) return -1;
    thread_state* s = current_thread_state();
    if (s == nullptr) return -1;
    shard& sh = s->shards[0];
    const auto r = std::memory_order_relaxed;
    const std::uint64_t a = sh.allocations.load(r), d = sh.deallocations.load(r);
    const std::uint64_t ba = sh.bytes_allocated.load(r), bf = sh.bytes_freed.load(r);
    const std::int64_t view = sh.view, mark = sh.published();
    {
        nested_event probe;
        void* volatile p = ::operator new(1, std::nothrow);
        ::operator delete(p);
    }
    const bool counted = sh.allocations.load(r) != a;
    if (sh.view == view && sh.published() == mark) {  // no publish in between: undo exactly
        sh.allocations.store(a, r);
        sh.deallocations.store(d, r);
        sh.bytes_allocated.store(ba, r);
        sh.bytes_freed.store(bf, r);
    }
    return counted ? 1 : 0;
}

#if defined(__GNUC__) && defined(__ELF__)
}  // namespace detail
}  // namespace memdiag
extern "C" __attribute__((weak)) const int memdiag_global_new_installed;
namespace memdiag {
namespace detail {
/// True when a translation unit of the program replaced operator new.
inline bool hook_linked() noexcept { return &memdiag_global_new_installed != nullptr; }
#else
inline bool hook_linked() noexcept { return false; }  // no weak symbols: nothing to verify
#endif

/// Checks once that the global hook, where linked in, is the operator new
/// actually called: under valgrind, heaptrack's preload or another library
/// replacing operator new it is bypassed and every figure from the global heap
/// stays 0. Says so once on stderr. Returns false when bypassed or not
/// installed (`installed`: the caller knows whether the hook is linked in).
inline bool verify_global_hook(bool installed) noexcept {
    if (!installed) return false;
    const int v = g_hook_verdict.load(std::memory_order_acquire);
    if (v != 0) return v == 1;
    const int probe = probe_global_hook();
    if (probe < 0) return true;  // cannot tell on this thread now: assume, ask again later
    int expected = 0;
    if (g_hook_verdict.compare_exchange_strong(expected, probe == 1 ? 1 : 2) && probe == 0) {
        static const char msg[] =
            "memdiag: warning: the global operator new hook is linked in but not called (valgrind, heaptrack, "
            "an LD_PRELOAD or another library replaced operator new): process figures, budgets and memory "
            "assertions see nothing from the global heap\n";
        std::fwrite(msg, 1, sizeof msg - 1, stderr);
    }
    return probe == 1;
}

}  // namespace detail

/// True when the hook is installed and is the operator new this process
/// actually calls. False when not installed, and when something replaced
/// operator new over it (valgrind, heaptrack's preload, another library): the
/// first call then says so once on stderr. Checked once, with one probe
/// allocation that is taken back from the figures.
inline bool global_hook_active() noexcept {
    return detail::verify_global_hook(global_hook_installed());
}

class tracker;

/// A non-owning reference to a tracker; what allocators store. Cheap to copy.
/// Default-constructed, it refers to the "default" tracker.
/// Exception safety: every operation is noexcept.
class tracker_ref {
public:
    /// Refers to the "default" tracker (tracking allocators given no tracker).
    constexpr tracker_ref() noexcept : slot_(&detail::g_default_slot) {}
    /// Refers to t; t must outlive every use of this reference.
    tracker_ref(tracker& t) noexcept;  // NOLINT(google-explicit-constructor): as natural as T& -> T*

    /// The tracker that counts every allocation seen by the global hook.
    static tracker_ref process() noexcept { return tracker_ref(&detail::g_process_slot); }

    /// Merged figures; exact when no other thread is allocating at the moment.
    allocation_stats stats() const noexcept { return detail::read_stats(*slot_); }
    /// The tracker's name.
    const char* name() const noexcept { return slot_->name; }
    /// Same tracker.
    friend bool operator==(tracker_ref a, tracker_ref b) noexcept { return a.slot_ == b.slot_; }
    /// Different trackers.
    friend bool operator!=(tracker_ref a, tracker_ref b) noexcept { return a.slot_ != b.slot_; }

    /// The event-path target (internal).
    detail::tracker_slot& slot() const noexcept { return *slot_; }

private:
    constexpr explicit tracker_ref(detail::tracker_slot* s) noexcept : slot_(s) {}
    detail::tracker_slot* slot_;
};

/// A named place to attribute memory to, e.g. `memdiag::tracker cache{"cache"};`.
/// Neither copyable nor movable: allocators refer to it by address. The first
/// MEMDIAG_MAX_TRACKERS - 2 live trackers count through thread-local shards;
/// further ones count exactly through shared atomics (slower).
/// Exception safety: every operation is noexcept; construction never fails
/// (without a free shard the tracker counts through atomics).
class tracker {
public:
    /// A tracker named `name` (copied, up to 63 bytes).
    explicit tracker(const char* name = "tracker") noexcept {
        std::strncpy(slot_.name, name != nullptr ? name : "", sizeof slot_.name - 1);
        acquire_shard();
    }
    ~tracker() { release_shard(); }
    tracker(const tracker&) = delete;
    tracker& operator=(const tracker&) = delete;

    /// Merged figures; exact when no other thread is allocating at the moment.
    allocation_stats stats() const noexcept { return detail::read_stats(slot_); }
    /// The name given at construction.
    const char* name() const noexcept { return slot_.name; }
    /// True when this tracker counts through thread-local shards (the fast path).
    bool sharded() const noexcept { return slot_.shard_index >= 0; }

    /// The event-path target (internal).
    detail::tracker_slot& slot() noexcept { return slot_; }

private:
    void acquire_shard() noexcept {
        detail::registry& reg = detail::g_registry;
        std::uint64_t used = reg.shard_in_use.load(std::memory_order_relaxed);
        for (;;) {
            int index = -1;
            for (int i = 2; i < MEMDIAG_MAX_TRACKERS; ++i) {
                if ((used & (std::uint64_t{1} << i)) == 0) {
                    index = i;
                    break;
                }
            }
            if (index < 0) return;  // all shards taken: atomics only
            if (reg.shard_in_use.compare_exchange_weak(used, used | (std::uint64_t{1} << index))) {
                detail::spin_guard g(reg.lock);
                for (detail::thread_state* s = reg.threads; s != nullptr; s = s->next)
                    detail::clear_shard(s->shards[index]);
                reg.shard_owner[index] = &slot_;
                slot_.shard_index = index;
                slot_.shard_offset = static_cast<std::ptrdiff_t>(index) * static_cast<std::ptrdiff_t>(sizeof(detail::shard));
                return;
            }
        }
    }
    void release_shard() noexcept {
        const int index = slot_.shard_index;
        if (index < 0) return;
        detail::registry& reg = detail::g_registry;
        {
            detail::spin_guard g(reg.lock);
            reg.shard_owner[index] = nullptr;
            for (detail::thread_state* s = reg.threads; s != nullptr; s = s->next)
                detail::clear_shard(s->shards[index]);
        }
        reg.shard_in_use.fetch_and(~(std::uint64_t{1} << index));
    }

    detail::tracker_slot slot_;
};

inline tracker_ref::tracker_ref(tracker& t) noexcept : slot_(&t.slot()) {}

/// Everything the global hook has counted in this process (global_new.hpp).
/// All zero unless some translation unit replaced operator new.
inline allocation_stats process_stats() noexcept {
    (void)detail::verify_global_hook(detail::hook_linked());  // once: says so when the hook is bypassed
    return tracker_ref::process().stats();
}

/// Figures of the "default" tracker (tracking allocators and resources given none).
inline allocation_stats default_tracker_stats() noexcept { return tracker_ref().stats(); }

}  // namespace memdiag
