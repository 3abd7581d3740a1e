// memdiag/detail/heap_sampling.hpp - the heap profiler's process state and
// its event handlers: the per-thread countdown that picks samples, recording a
// sample (stack capture, then the tables under their lock), the lock-free
// free filter test, fork handling and the emergency reserve kept for dumps.
// Part of heap_profile.hpp.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <ctime>  // not <chrono>: every user of memdiag.hpp would pay for it

#include "../config.hpp"
#include "../profile_options.hpp"
#include "../sampler.hpp"
#include "../stack.hpp"
#include "../tracker.hpp"
#include "emergency_reserve.hpp"
#include "heap_tables.hpp"
#include "internal_section.hpp"
#include "thread_state.hpp"

#if MEMDIAG_POSIX
#include <pthread.h>
#endif

namespace memdiag {
namespace detail {
namespace heapprof {

/// Process-wide profiler state; constant-initialized.
struct profiler_state {
    table_lock lock;   ///< the stack lock: guards the tables' stacks (each live shard has its own)
    spinlock control;  ///< start/stop and the dump settings
    std::atomic<tables*> current{nullptr};
    std::uint32_t epoch = 0;  ///< the current (or last) run number; under control
    std::atomic<std::uint64_t> interval{default_sample_interval};
    std::atomic<bool> running{false};
    std::atomic<bool> dumping{false};
    std::atomic<unsigned> dump_serial{0};
    /// Given back to make room for an out-of-memory dump; its first word holds its size.
    std::atomic<void*> reserve{nullptr};
    std::atomic<bool> reserve_wanted{false};            ///< a dump destination is configured
    std::atomic<bool> signal_dump{false};               ///< dump_on_fatal_signal is on
    std::atomic<bool> reserve_busy{false};              ///< a thread is resizing the reserve
    std::atomic<std::size_t> reserve_stacks{~std::size_t{0}};  ///< stacks the reserve covers
    std::atomic<std::size_t> reserve_frames{~std::size_t{0}};  ///< frames the reserve covers
    char dump_path[1024] = {};            ///< under control
};
inline profiler_state g_profiler;
/// The thread's stack cache (record_sample); zero-initialized (generation 0
/// is never current; state 0: not registered).
inline thread_local stack_cache tls_stack_cache MEMDIAG_TLS_FAST = {};

/// The profiler's part in fork handling (thread_state.hpp): its locks are held
/// across fork, so the child never finds one held by a thread it does not have.
/// Order: control, the stack lock, the shards in index order (control keeps
/// `current` from changing in between).
inline void fork_lock() noexcept {
    g_profiler.control.lock();
    g_profiler.lock.lock();
    if (tables* t = g_profiler.current.load(std::memory_order_acquire))
        for (live_shard& s : t->shards) s.lock.lock();
}
inline void fork_unlock() noexcept {
    if (tables* t = g_profiler.current.load(std::memory_order_acquire))
        for (std::size_t k = live_shards; k-- != 0;) t->shards[k].lock.unlock();
    g_profiler.lock.unlock();
    g_profiler.control.unlock();
}
/// In the child: the other threads are gone, so their pending figures are
/// folded and their caches unlinked (their memory is reused by new threads).
inline void fork_child() noexcept {
    if (tables* t = g_profiler.current.load(std::memory_order_acquire)) {
        stack_cache* own = &tls_stack_cache;
        for (stack_cache* c = t->caches; c != nullptr;) {
            stack_cache* next = c->next;
            if (c != own) t->retire_cache(*c);
            c = next;
        }
    }
    fork_unlock();
}
inline constexpr fork_participant profiler_fork_participant{&fork_lock, &fork_unlock, &fork_child};

/// Run numbers live in global_slow above slow_epoch_shift (24 bits on 32-bit unsigned).
inline constexpr unsigned epoch_mask = ~0u >> slow_epoch_shift;

/// The emergency reserve: address space set aside while a dump destination is
/// configured and given back when an allocation fails, so the snapshot writer
/// has room (detail/emergency_reserve.hpp: mapped, untouched, so it costs no
/// RAM). The writer's needs grow with the tables' contents, never with their
/// capacity (max_stacks): a fixed part (module list, the loaded objects'
/// symbol tables read from file mappings, the gzip encoder's state) plus a
/// part per recorded stack and per stored frame (copies, merged samples,
/// location maps, the encoded profile while its buffer doubles, its gzip
/// form). bench/oom_snapshot_cost measured 8.5 MiB fixed and, for 8192 and
/// 32768 stacks of about 32 frames, 2.7 and 21 MiB more; the constants below
/// bound those figures with a factor of 3 to spare.
inline constexpr std::size_t reserve_fixed_bytes = std::size_t{12} << 20;
inline constexpr std::size_t reserve_bytes_per_stack = 256;
inline constexpr std::size_t reserve_bytes_per_frame = 48;
/// Smallest coverage the reserve is sized for (so small programs never resize).
inline constexpr std::size_t reserve_min_stacks = 1024;

/// Bytes the writer may need for `stacks` stacks holding `frames` frames.
inline std::size_t writer_bytes_for(std::size_t stacks, std::size_t frames) noexcept {
    return reserve_fixed_bytes + reserve_bytes_per_stack * stacks + reserve_bytes_per_frame * frames;
}

/// The current emergency reserve in bytes (0: none: no dump destination set,
/// or it was spent on a dump and could not be set aside again yet).
inline std::size_t reserve_size() noexcept {
    const void* r = g_profiler.reserve.load(std::memory_order_acquire);
    return r != nullptr ? *static_cast<const std::size_t*>(r) : 0;
}

/// Gives the reserve back to the OS (for the writer, or to replace it).
inline void drop_reserve(void* r) noexcept {
    if (r != nullptr) unmap_reserve(r, *static_cast<std::size_t*>(r));
}

/// Sizes the reserve for twice what the tables hold now, so it is resized a
/// logarithmic number of times. Called when a destination is set and when the
/// tables outgrow the coverage; never while the table lock is held. A thread
/// finding another one resizing leaves it to that one; when the memory cannot
/// be had, the smaller reserve stays (the dump will say if it fails).
inline void resize_reserve(tables* t) noexcept {
    if (!g_profiler.reserve_wanted.load(std::memory_order_acquire) ||
        g_profiler.dumping.load(std::memory_order_acquire) ||
        g_profiler.reserve_busy.exchange(true, std::memory_order_acquire))
        return;
    std::size_t stacks = 0, frames = 0;
    if (t != nullptr) {
        table_guard g(g_profiler.lock);
        stacks = t->stack_count;
        frames = t->frames_used;
    }
    stacks = 2 * stacks < reserve_min_stacks ? reserve_min_stacks : 2 * stacks;
    frames = 2 * frames < reserve_min_stacks * arena_frames_per_stack ? reserve_min_stacks * arena_frames_per_stack
                                                                        : 2 * frames;
    const std::size_t need = writer_bytes_for(stacks, frames);
    if (reserve_size() < need) {
        if (void* r = map_reserve(need)) {
            *static_cast<std::size_t*>(r) = need;  // the one page it touches
            drop_reserve(g_profiler.reserve.exchange(r, std::memory_order_acq_rel));
        }
    }
    // Covered up to the new sizes even when the memory was refused: retrying
    // on every sample would make a program short of memory slower still.
    g_profiler.reserve_frames.store(frames, std::memory_order_relaxed);
    g_profiler.reserve_stacks.store(stacks, std::memory_order_relaxed);
    g_profiler.reserve_busy.store(false, std::memory_order_release);
}

/// Whether the tables hold more stacks or frames than the emergency reserve
/// covers (resize_reserve then grows it, outside the lock). Stack lock held.
inline bool outgrows_reserve(const tables& t) noexcept {
    return t.stack_count > g_profiler.reserve_stacks.load(std::memory_order_relaxed) ||
           t.frames_used > g_profiler.reserve_frames.load(std::memory_order_relaxed);
}

/// The code table's sequence number when a checked capture can be trusted to
/// have used it (built, usable, not being rewritten); 0 otherwise. 0 is never
/// such a number: the first build publishes 2.
inline std::uint32_t code_table_seq() noexcept {
#if MEMDIAG_HAS_CODE_RANGES
    const code_range_table& c = g_code_ranges;
    if (!c.built.load(std::memory_order_acquire) || c.count.load(std::memory_order_relaxed) == 0) return 0;
    const std::uint32_t q = c.seq.load(std::memory_order_acquire);
    return (q & 1) == 0 ? q : 0;
#else
    return 0;
#endif
}

#if MEMDIAG_HAS_FRAME_WALK
/// walk_frame_chain without code checks and without skip, hashing the frames
/// as it stores them (frames_hash of the result): the hash's multiply chain
/// runs while the next record loads. Same result as walk_frame_chain for any
/// input, with fewer tests per frame (each frame is a sample's cost in exact
/// mode): the first record is checked whole; after it, a link is followed
/// only if it is aligned and leads strictly upwards to a record that lies
/// within the stack (two compares, which also catch the null link, and one
/// bit test), and a return address takes two compares; why the walk stopped is
/// worked out only when it stops. Inlined except under ASan, where a
/// function that is not instrumented must stay out of instrumented callers
/// (it reads other frames' records).
#if MEMDIAG_ASAN
#define MEMDIAG_WALK_INLINE MEMDIAG_NOINLINE inline
#else
#define MEMDIAG_WALK_INLINE MEMDIAG_ALWAYS_INLINE
#endif
MEMDIAG_NO_SANITIZE_ADDRESS MEMDIAG_WALK_INLINE walk_result walk_and_hash(std::uintptr_t frame, std::uintptr_t low,
                                                                          std::uintptr_t high, std::uintptr_t* out,
                                                                          std::size_t max_frames,
                                                                          std::uint64_t& hash,
                                                                          std::uintptr_t& sum) noexcept {
    constexpr std::uintptr_t record = 2 * sizeof(std::uintptr_t);
    constexpr std::uintptr_t misaligned = sizeof(std::uintptr_t) - 1;
    constexpr std::uintptr_t first_code = 4096;  // plausible_return_address's bounds
    walk_result r{0, 0, walk_end::full};
    frames_hasher hs;
    std::uintptr_t total = 0;
    std::uintptr_t* o = out;  // a pointer and an end, not a count: fewer registers in the loop
    if (max_frames != 0) {
        if ((frame & misaligned) != 0 || frame < low || high < record || frame > high - record) {
            r.end = walk_end::broken;
        } else {
            std::uintptr_t* const full = out + max_frames;
            const std::uintptr_t top = high - record;  // the highest address a whole record starts at
            const std::uintptr_t span = high - low;    // low <= frame <= top: not wrapped
            for (;;) {
                // Safe to read: frame is aligned and low <= frame <= top, so
                // its record lies inside the thread's stack (checked above for
                // the first record, below for every link followed).
                const auto* rec = reinterpret_cast<const std::uintptr_t*>(frame);
                const std::uintptr_t next = rec[0];
                const std::uintptr_t ra = strip_return_address(rec[1]);
                // plausible_return_address: ra in [4096, max) and not in
                // [low, high). A 0 fails the first: the chain's clean end.
                if (MEMDIAG_UNLIKELY(ra - first_code >= max_user_code_address - first_code || ra - low < span)) {
                    r.end = ra == 0 ? walk_end::outermost : walk_end::implausible;
                    break;
                }
                *o++ = ra;
                hs.add(ra);
                total += ra;
                // Followed only if frame < next <= top and aligned. A null
                // link ends the chain; one not strictly upwards is broken; one
                // out of the stack or misaligned is broken unless out is full
                // (walk_frame_chain stops before it checks that record).
                if (MEMDIAG_UNLIKELY(next <= frame)) {
                    r.end = next != 0 ? walk_end::broken : o != full ? walk_end::outermost : walk_end::full;
                    break;
                }
                if (MEMDIAG_UNLIKELY(next > top) || MEMDIAG_UNLIKELY((next & misaligned) != 0)) {
                    if (o != full) r.end = walk_end::broken;
                    break;
                }
                if (o == full) break;
                frame = next;
            }
        }
    }
    const auto n = static_cast<std::size_t>(o - out);
    r.count = r.walked = n;
    hash = hs.done(n);
    sum = total;
    return r;
}
#undef MEMDIAG_WALK_INLINE
#endif

/// A thread's recently recorded stacks (stack_cache, heap_tables.hpp): frame
/// hash -> stack id, so that a sample of a stack seen lately takes only its
/// live shard's lock, not the stack lock that every thread's samples would
/// otherwise meet at (perf, issue 15: with more threads than CPUs, its holder
/// descheduled, the others spun and yielded), and adds to the thread's own
/// pending figures for the stack rather than to figures every CPU writes.
/// An entry holds only for the code table version it was checked under and
/// the tables' generation (a restart clears them; the shard lock re-checks
/// it). It is filled from a stack table lookup that compared every frame; a
/// hit compares the 64-bit hash, the depth and the sum of the frames, so two
/// stacks of one thread agreeing on all three (about 2^-64 per pair) is the
/// only way to be wrong. Pending figures are folded into the stacks' figures
/// when the entry is refilled, at every snapshot and when the thread exits.
/// 0 turns the cache off (a measurement switch for A/B runs): every sample
/// then takes the stack lock and adds to the shared figures.
#ifndef MEMDIAG_PROFILE_STACK_CACHE
#define MEMDIAG_PROFILE_STACK_CACHE 1
#endif

/// Folds the thread's pending figures and unlinks its cache; later samples
/// of the thread bypass the cache. At thread exit (stack_cache_key, or
/// stack_cache_owner where there are no POSIX keys).
MEMDIAG_NOINLINE inline void retire_stack_cache() noexcept {
    stack_cache& c = tls_stack_cache;
    tables* t = g_profiler.current.load(std::memory_order_acquire);
    if (t == nullptr || c.state != 1) {
        c.state = 2;
        return;
    }
    internal_section quiet;
    t->lock_shards();
    t->retire_cache(c);
    t->unlock_shards();
}

/// Its destructor retires the thread's stack cache: a thread's pending
/// figures are never lost when it exits. Where POSIX keys exist, a key is
/// used instead (stack_cache_key).
struct stack_cache_owner {
    stack_cache_owner() noexcept {}  // user-provided: constructed (and its destructor registered) on first use
    ~stack_cache_owner() { retire_stack_cache(); }
    stack_cache_owner(const stack_cache_owner&) = delete;
    stack_cache_owner& operator=(const stack_cache_owner&) = delete;
};

#if MEMDIAG_POSIX
/// The key whose destructor retires a thread's stack cache, or -1 if none
/// could be created. Not a thread_local destructor: a thread's first sample
/// may come from a key destructor (a thread whose first memdiag event is
/// there), after the thread_local destructors ran, and a destructor
/// registered then never runs: the cache would stay linked after its
/// thread's memory is gone. A key set there runs in the next round.
inline long stack_cache_key() noexcept {
    static const long key = [] {
        pthread_key_t k;
        if (pthread_key_create(&k, [](void*) { retire_stack_cache(); }) != 0) return -1L;
        return static_cast<long>(k);
    }();
    return key;
}
#endif

/// Registers the thread's cache on its first sample: true when it may be
/// used. Its retirement at thread exit is arranged first, outside any table
/// lock (the C++ runtime may allocate to register a destructor); linking
/// takes every shard lock, once per thread. In an internal section.
MEMDIAG_NOINLINE inline bool register_stack_cache(tables* t) noexcept {
    stack_cache& c = tls_stack_cache;
    if (c.state != 0) return c.state == 1;
#if MEMDIAG_POSIX
    const long key = stack_cache_key();
    if (key < 0 || pthread_setspecific(static_cast<pthread_key_t>(key), &c) != 0)
#endif
    {
        static thread_local stack_cache_owner owner;
        (void)owner;
    }
    t->lock_shards();
    t->link_cache(c);
    t->unlock_shards();
    return true;
}

/// Captures the stack and enters a sampled allocation in the tables.
///
/// The checked capture (capture_stack: every return address looked up in the
/// code table and read for the call before it) was a third of exact mode's
/// time (perf, issue 15). Most samples repeat a stack already recorded, so
/// first a plain frame-pointer walk (bounds checks only) is looked up among
/// the stacks checked under the same code table version: frames identical to
/// checked ones are code too. Anything else (a new stack, a walk that would
/// need the unwinder, the code table rebuilt since) takes the checked capture.
MEMDIAG_NOINLINE inline void record_sample(void* p, std::size_t size) noexcept {
    tables* t = g_profiler.current.load(std::memory_order_acquire);
    if (t == nullptr) return;
    const std::size_t fi = filter_index(p);  // names the shard and the filter cell
    t->shards[shard_of_cell(fi)].prefetch(p);  // loads while the stack is captured
    internal_section quiet;      // first capture on a thread may look up its stack bounds
    std::uintptr_t f[max_capture];
    const std::size_t max_frames = t->max_depth.load(std::memory_order_relaxed) + internal_frames;
    bool outgrown = false;
    long id = -1;
    std::uint32_t seq = code_table_seq();
#if MEMDIAG_HAS_FRAME_WALK
    if (seq != 0) {
        const stack_bounds b = current_stack_bounds();
        // This function's record first: the frames capture_stack(.., skip 1) returns.
        std::uint64_t h = 0;
        std::uintptr_t sum = 0;
        const walk_result r = walk_and_hash(reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0)), b.low,
                                            b.high, f, max_frames, h, sum);
        if (!walk_needs_unwinder(r)) {
            stack_cache& cache = tls_stack_cache;
            const bool cached = MEMDIAG_PROFILE_STACK_CACHE != 0 &&
                                (cache.state == 1 || (cache.state == 0 && register_stack_cache(t)));
            stack_cache_entry& c = cache.e[static_cast<std::size_t>(h >> 32) & (stack_cache_size - 1)];
            if (cached && c.hash == h && c.sum == sum && c.depth == r.count && c.seq == seq &&
                t->add_live_cached(p, fi, size, c, h))
                return;  // refused: a stale generation, or refilled meanwhile: look it up
            std::uint32_t gen;
            {
                table_guard g(g_profiler.lock);
                id = t->known_stack(f, r.count, h, seq);
                gen = t->generation.load(std::memory_order_relaxed);
                outgrown = id >= 0 && outgrows_reserve(*t);
            }
            if (id >= 0) {
                // The entry is refilled under the shard lock: a signal handler
                // sampling on this thread meanwhile leaves the tables (and the
                // cache) alone. Refused only when a restart cleared the tables
                // meanwhile: the sample belonged to the run that ended.
                const stack_cache_entry key{h, sum, static_cast<std::uint32_t>(id), seq, gen,
                                            static_cast<std::uint32_t>(r.count), 0, 0};
                t->add_live(p, size, static_cast<std::uint32_t>(id), gen, cached ? &c : nullptr, &key);
                if (MEMDIAG_UNLIKELY(outgrown)) resize_reserve(t);
                return;
            }
            seq = code_table_seq();
        }
    }
#endif
    // skip 1: this function; memdiag's other frames are removed by name at snapshot.
    const std::size_t n = capture_stack(f, max_frames, 1);
    // Checked under version seq only if the table stayed the same throughout.
    const bool checked = seq != 0 && code_table_seq() == seq;
    const std::uint64_t h = frames_hash(f, n);
    std::uint32_t gen;
    {
        table_guard g(g_profiler.lock);
        id = t->intern_stack(f, n, h, checked, seq);
        gen = t->generation.load(std::memory_order_relaxed);
        outgrown = outgrows_reserve(*t);
    }
    // The stack lock is released first: a thread holds one table lock at a time.
    if (id >= 0) t->add_live(p, size, static_cast<std::uint32_t>(id), gen);
    if (MEMDIAG_UNLIKELY(outgrown)) resize_reserve(t);
}

/// A varying number for a thread's first sampling seed (the clock's
/// nanoseconds; only its variation matters).
inline std::uint64_t seed_clock() noexcept {
    std::timespec ts{};
    std::timespec_get(&ts, TIME_UTC);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

/// profile_allocated handler: count down the thread's bytes, record when due.
/// The event path calls it only when the countdown may run out (or belongs to
/// an earlier run); other allocations it counts down inline (tracker.hpp).
inline void on_allocated(thread_state* s, void* p, std::size_t size) noexcept {
    const std::uint32_t epoch = g_registry.global_slow.load(std::memory_order_relaxed) >> slow_epoch_shift;
    if (epoch == 0) return;  // stopped meanwhile
    const unsigned key = (epoch << slow_epoch_shift) | slow_profiler;
    if (MEMDIAG_UNLIKELY(s->sample_key != key)) {
        // First event of this thread in this run: seed, start a countdown.
        s->sample_key = key;
        if (s->rng == 0) {
            const std::uint64_t seed =
                static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(s)) ^ seed_clock() * 0x9e3779b97f4a7c15ull;
            s->rng = seed != 0 ? seed : 1;
        }
        poisson_sampler smp{s->rng, 0};
        s->sample_countdown = smp.draw(g_profiler.interval.load(std::memory_order_relaxed));
        s->rng = smp.rng;
    }
    s->sample_countdown -= static_cast<std::int64_t>(size);
    if (MEMDIAG_LIKELY(s->sample_countdown > 0)) return;
    poisson_sampler smp{s->rng, 0};
    s->sample_countdown = smp.draw(g_profiler.interval.load(std::memory_order_relaxed));
    s->rng = smp.rng;
    record_sample(p, size);
}

/// Out of on_freed's inline path, but not cold: in exact mode every free of
/// a sampled block comes here (cold code is optimized for size).
MEMDIAG_NOINLINE inline void forget_block(tables* t, void* p) noexcept { t->remove(p); }

/// The free filter's test, lock-free: the tables when p may be one of their
/// sampled blocks (its cell is set), nullptr when it surely is not. operator
/// delete inlines it (global_new.hpp) and calls on_freed only on a possible
/// hit. It reads `current` at every free: the one set of tables lives as long
/// as the process and keeps its filter (clear() zeroes the cells in place), so
/// the filter read is never one that was freed or replaced. No tables: no
/// sampled block (a block sampled by another thread reached this one after
/// `current` was published).
MEMDIAG_ALWAYS_INLINE tables* free_filter_hit(const void* p) noexcept {
    tables* t = g_profiler.current.load(std::memory_order_acquire);
    return t != nullptr && t->cell(p).load(std::memory_order_relaxed) != 0 ? t : nullptr;
}

/// profile_freed handler: the filter test; only possible hits lock, and only
/// the block's shard.
inline void on_freed(void* p) noexcept {
    tables* t = free_filter_hit(p);
    if (MEMDIAG_LIKELY(t == nullptr)) return;
    t->shard_of(p).prefetch(p);  // loads while the lock is taken
    forget_block(t, p);
}
}  // namespace heapprof
}  // namespace detail
}  // namespace memdiag
