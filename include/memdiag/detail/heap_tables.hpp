// memdiag/detail/heap_tables.hpp - the heap profiler's tables: live sampled
// blocks by address (in shards, each with its own lock), distinct stacks with
// their figures, the frame arena and the free filter. Part of
// heap_profile.hpp; the memory they take is stated there.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "../config.hpp"
#include "internal_alloc.hpp"
#include "spin_lock.hpp"
#include "thread_state.hpp"

#if MEMDIAG_HAS_LIBC_MALLOC
extern "C" void* __libc_calloc(std::size_t, std::size_t);
#endif

namespace memdiag {
namespace detail {
namespace heapprof {

/// Frames captured beyond max_depth, for memdiag's own (removed at snapshot).
inline constexpr std::size_t internal_frames = 12;
/// Largest capture: max_depth 128 plus memdiag's frames.
inline constexpr std::size_t max_capture = 128 + internal_frames;
/// The live table is split in live_shards shards by address, each with its
/// own lock and table that grows on its own: a free of a sampled block takes
/// only its shard's lock, so threads freeing blocks of different shards never
/// wait for each other, nor for a thread interning a stack.
inline constexpr unsigned shard_bits = 4;
inline constexpr std::size_t live_shards = std::size_t{1} << shard_bits;
/// A shard's first size: 256 slots (4 KiB on 64-bit; 64 KiB for all shards).
inline constexpr unsigned initial_live_bits = 8;
/// The stack table's first capacity; its index starts at twice that.
inline constexpr std::size_t initial_stacks = 1024;
/// Average frames per stack the frame arena first holds room for.
inline constexpr std::size_t arena_frames_per_stack = 24;
/// The free filter: one byte per cell, 64 KiB. A free of an unsampled block
/// costs one load from it, so it must stay in cache: at 64 KiB a 2 MiB
/// filter's misses (+4 ns per free, measured) are gone, and at the default
/// interval (a live sample per 512 KiB of heap) false hits stay rare up to
/// gigabytes of heap: with L live samples a free takes the lock with
/// probability about L / 65536. Its size never changes (frees read it
/// without the lock).
inline constexpr unsigned filter_bits = 16;
inline constexpr std::size_t filter_cells = std::size_t{1} << filter_bits;
/// Stack ids share a word with the block size in live_entry.
inline constexpr unsigned stack_id_bits = 24;
inline constexpr std::size_t max_stack_ids = std::size_t{1} << stack_id_bits;
/// Recorded sizes are clamped here (1 TiB - 1): a bigger block is never live.
inline constexpr std::uint64_t max_recorded_size = (std::uint64_t{1} << (64 - stack_id_bits)) - 1;

/// A live sampled block: 16 bytes on 64-bit targets, 12 on 32-bit. The size
/// and the stack id share one word so the entry stays small (issue 15: at
/// most 48 bytes per live sample, the table's load included).
struct live_entry {
    std::uintptr_t addr;   ///< 0 marks a free slot
    std::uint64_t packed;  ///< requested size << stack_id_bits | stack id

    std::size_t size() const noexcept { return static_cast<std::size_t>(packed >> stack_id_bits); }
    std::uint32_t stack() const noexcept { return static_cast<std::uint32_t>(packed & (max_stack_ids - 1)); }
    /// Takes the size as 64 bits, so 32-bit targets compare without a warning.
    static std::uint64_t pack(std::uint64_t size, std::uint32_t stack) noexcept {
        return (size > max_recorded_size ? max_recorded_size : size) << stack_id_bits | stack;
    }
    /// The size as recorded (clamped), for a stack's figures.
    static std::int64_t recorded(std::uint64_t size) noexcept {
        return static_cast<std::int64_t>(size > max_recorded_size ? max_recorded_size : size);
    }
};

/// A distinct stack with its raw (unscaled) figures: 48 bytes.
struct stack_entry {
    std::uint64_t hash;
    std::uint32_t frames_at;  ///< index of the first frame in the arena
    std::uint16_t depth;      ///< at most max_capture
    /// 1: its frames came from a checked capture (every one in loaded code)
    /// under the code table version tables::checked_seq, so an unchecked walk
    /// that finds exactly these frames needs no check (record_sample).
    std::uint16_t checked;
};
static_assert(max_capture <= 0xffff, "stack_entry::depth is 16 bits");

/// A stack's allocated figures (raw, unscaled): 16 bytes. Kept apart from
/// stack_entry, in chunks that never move (figures_place), because they are
/// updated under a live shard's lock, not the stack lock: shards update one
/// stack's figures concurrently, hence atomics (relaxed: a snapshot holds
/// every shard lock while it reads them). The in-use figures are not kept:
/// a snapshot adds up the live entries (for_each_live), so a free updates no
/// figure at all. A sample of a stack in its thread's cache adds to the
/// cache entry's pending figures (stack_cache_entry), folded in later; only
/// a sample that refills an entry, or has no cache, adds here.
struct stack_figures {
    std::atomic<std::int64_t> alloc_objects, alloc_bytes;
};

/// Figures chunk k holds figures_chunk0 << k stacks, so 15 chunks cover every
/// stack id and a chunk is added (never moved) as stacks arrive.
inline constexpr std::size_t figures_chunk0 = 1024;
inline constexpr std::size_t figures_chunks = 15;
static_assert((figures_chunk0 << figures_chunks) - figures_chunk0 >= max_stack_ids, "figures chunks cover every id");

/// The chunk of stack id (first) and the index in it (second).
inline void figures_place(std::uint32_t id, std::size_t& chunk, std::size_t& at) noexcept {
    const std::size_t v = std::size_t{id} + figures_chunk0;  // at least 1024: its top bit is bit 10 or above
#if defined(__GNUC__) || defined(__clang__)
    const auto top = static_cast<std::size_t>(63 - __builtin_clzll(static_cast<unsigned long long>(v)));
#else
    std::size_t top = 10;
    while ((v >> (top + 1)) != 0) ++top;
#endif
    chunk = top - 10;
    at = v - (figures_chunk0 << chunk);
}

/// A thread's recently recorded stacks (record_sample, heap_sampling.hpp):
/// frame hash -> stack id, plus the thread's pending figures for that stack.
/// The key fields (hash to depth) are written only by the owning thread, under
/// a shard lock; the pending figures are read and written only under a shard
/// lock (the owner's sample holds one, a fold holds all), so a snapshot, which
/// holds every shard lock, folds them consistently with the live entries.
struct stack_cache_entry {
    std::uint64_t hash;
    std::uintptr_t sum;
    std::uint32_t id, seq, gen, depth;
    /// Samples this thread added to stack `id` of generation `gen` that the
    /// stack's figures do not hold yet (tables::fold): per-thread deltas, so a
    /// sample writes no cache line another CPU writes (perf, issue 15).
    std::int64_t objects, bytes;
};
inline constexpr std::size_t stack_cache_size = 32;
/// A thread's stack cache and its link in tables::caches (1.5 KiB on 64-bit).
struct stack_cache {
    stack_cache_entry e[stack_cache_size];
    stack_cache* next;
    stack_cache* prev;
    /// 0: not registered yet; 1: in tables::caches; 2: retired (its thread is
    /// exiting, or in a fork child, another thread's): samples bypass it.
    std::uint8_t state;
};

using filter_cell = std::atomic<std::uint8_t>;
static_assert(sizeof(filter_cell) == 1, "the free filter is an array of one-byte atomics");

/// Zero-filled memory from beneath the hooks (lazily committed when large).
inline void* zeroed(std::size_t n) noexcept {
#if MEMDIAG_HAS_LIBC_MALLOC
    return __libc_calloc(n, 1);
#else
    return std::calloc(n, 1);
#endif
}

inline std::size_t pow2_at_least(std::size_t n) noexcept {
    std::size_t p = 1;
    while (p < n) p <<= 1;
    return p;
}

/// Multiplicative hash of an address: its top bits index a shard's table.
MEMDIAG_ALWAYS_INLINE std::uint64_t address_hash(const void* p) noexcept {
    return static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(p)) * 0x9e3779b97f4a7c15ull;
}

/// The free filter's cell of an address. Neighbouring blocks share a cache
/// line of the filter, so a program's frees touch a few lines of it rather
/// than a random line each (one L1 miss per free, measured); the higher bits
/// fold in so that blocks a multiple of 1 MiB apart do not all share a cell.
MEMDIAG_ALWAYS_INLINE std::size_t filter_index(const void* p) noexcept {
    const auto a = reinterpret_cast<std::uintptr_t>(p);
    return static_cast<std::size_t>((a >> 4) ^ (a >> 20)) & (filter_cells - 1);
}

/// The live shard of an address: a function of its filter cell, so that every
/// cell belongs to one shard and is only written under that shard's lock. The
/// cell is mixed (Fibonacci hashing of its 16 bits) rather than its low bits
/// taken: blocks 64 or 256 bytes apart (size classes, ASan's redzones) would
/// otherwise fill only a quarter or one of the shards.
MEMDIAG_ALWAYS_INLINE std::size_t shard_of_cell(std::size_t cell) noexcept {
    return ((cell * std::size_t{40503}) & (filter_cells - 1)) >> (filter_bits - shard_bits);
}
MEMDIAG_ALWAYS_INLINE std::size_t shard_index(const void* p) noexcept { return shard_of_cell(filter_index(p)); }

/// Hash of a stack, one frame at a time (record_sample hashes while it walks).
struct frames_hasher {
    std::uint64_t h = 0x84222325cbf29ce4ull;
    /// Three instructions a frame in the walk's loop (xor, multiply by an
    /// immediate, rotate): the multiply carries each bit upwards, the rotate
    /// brings the high bits down, and every step is a bijection of h.
    MEMDIAG_ALWAYS_INLINE void add(std::uintptr_t f) noexcept {
        const std::uint64_t x = (h ^ static_cast<std::uint64_t>(f)) * 0x5bd1e995ull;
        h = x << 29 | x >> 35;
    }
    /// The hash of the n frames added.
    std::uint64_t done(std::size_t n) const noexcept { return (h ^ n) * 0x9e3779b97f4a7c15ull; }
};

inline std::uint64_t frames_hash(const std::uintptr_t* f, std::size_t n) noexcept {
    frames_hasher hs;
    for (std::size_t i = 0; i < n; ++i) hs.add(f[i]);
    return hs.done(n);
}

/// The tables' locks: memdiag's one spinlock (detail/spin_lock.hpp), whose
/// guard marks the thread as holding a memdiag lock, so that an allocation or
/// free by a signal handler that interrupts it is counted without the tables.
using table_lock = detail::spinlock;
using table_guard = detail::spin_guard;

/// One shard of the live table: an open-addressing table of the live sampled
/// blocks whose address falls in it, kept between 3/8 and 3/4 full, with its
/// lock and figures. On its own cache lines: shards do not share a line.
/// Mutated under `lock`; `count` and the hint are also read without it.
struct alignas(64) live_shard {
    table_lock lock;
    unsigned bits = 0;
    live_entry* live = nullptr;
    std::atomic<std::size_t> count{0};  ///< live samples; written under lock, summed without
    std::uint64_t samples = 0, dropped = 0;
    std::uint64_t known = 0;  ///< samples of a stack found in a thread's stack cache
    /// Times the lock was taken for a block (record or free): a test sees
    /// which shards a free touched.
    std::uint64_t takes = 0;
    /// The table as last published, read without the lock to prefetch a slot
    /// before the lock is taken (a stale pair only wastes a prefetch, which
    /// never faults).
    std::atomic<std::uintptr_t> hint{0};
    std::atomic<unsigned> hint_bits{0};

    std::size_t cap() const noexcept { return std::size_t{1} << bits; }
    void publish() noexcept {
        hint.store(reinterpret_cast<std::uintptr_t>(live), std::memory_order_relaxed);
        hint_bits.store(bits, std::memory_order_relaxed);
    }
    /// Home slot of p in a table of 2^b slots: the address hash's bits below
    /// the top shard_bits (those are not the shard's, but keep them apart).
    static std::size_t home(std::uintptr_t p, unsigned b) noexcept {
        return static_cast<std::size_t>((address_hash(reinterpret_cast<void*>(p)) << shard_bits) >> (64 - b));
    }
    /// Slot holding p, or the free slot where it would go.
    std::size_t probe(std::uintptr_t p) const noexcept {
        const std::size_t mask = cap() - 1;
        std::size_t i = home(p, bits);
        while (live[i].addr != 0 && live[i].addr != p) i = (i + 1) & mask;
        return i;
    }
    /// Starts loading p's home slot into the cache. perf showed the table's
    /// first probe (a cache miss) as most of insert and remove; recording
    /// prefetches before capturing the stack, a free before taking the lock.
    void prefetch(const void* p) const noexcept {
#if defined(__GNUC__) || defined(__clang__)
        const std::uintptr_t base = hint.load(std::memory_order_relaxed);
        const unsigned b = hint_bits.load(std::memory_order_relaxed);
        if (base == 0 || b == 0) return;
        __builtin_prefetch(
            reinterpret_cast<const void*>(base + home(reinterpret_cast<std::uintptr_t>(p), b) * sizeof(live_entry)),
            1);
#else
        (void)p;
#endif
    }
};

/// The profiler's tables. They start small and grow on demand (memory from
/// beneath the hooks, never the observed heap) until their bytes() would pass
/// max_bytes, or a count limit set in profile_options is reached; only then
/// are new samples dropped (counted in a shard's or the stacks' `dropped`).
///
/// Locks: the stacks (index, entries, arena, checked flags, stack_count,
/// frames_used, known_hits, stack_dropped) are guarded by the stack lock
/// (g_profiler.lock); each live shard by its own lock, which also guards the
/// stack figures it changes, its filter cells and the pending figures of the
/// cache entry its sampling thread uses; the list of caches is changed with
/// every shard lock held. A thread takes at most one
/// of them at a time, except a snapshot, stats(), clear and fork, which take
/// the stack lock and then every shard lock in index order, and a thread
/// linking or retiring its cache, which takes every shard lock in index order
/// (without the stack lock: never held while waiting for it). The filter is
/// also read lock-free by frees, max_depth by record_sample.
///
/// Memory (64-bit; 32-bit in brackets): a live sample takes one 16 [12] byte
/// slot in a shard kept between 3/8 and 3/4 full, so 21 to 43 [16 to 32]
/// bytes; a stack takes a 16-byte entry, 16 bytes of figures, 8 to 16 bytes
/// of index and its frames at 8 [4] bytes each, the entry array, the figures
/// and the frame arena having up to as much again free after a doubling.
/// Fixed: the 64 KiB filter. While a shard doubles, its old table is held too
/// for the rehash.
struct tables {
    std::uint64_t interval = 0;
    std::atomic<std::size_t> max_depth{0};  ///< frames kept per stack
    std::size_t max_live = 0, max_stacks = 0;  ///< count limits; 0: none (the default)
    std::size_t max_bytes = 0;                 ///< cap on bytes()
    std::size_t stack_index_cap = 0, stacks_cap = 0, frames_cap = 0;

    live_shard shards[live_shards];
    std::uint32_t* stack_index = nullptr;  // slot -> stack id + 1, 0 = free
    stack_entry* stacks = nullptr;
    std::uintptr_t* frames = nullptr;
    filter_cell* filter = nullptr;
    /// Figures chunks (figures_place); a chunk is published before any id in
    /// it is handed out, and never freed while the tables exist.
    std::atomic<stack_figures*> figures[figures_chunks] = {};
    std::size_t figures_cap = 0;  ///< stacks the chunks cover; stack lock

    std::size_t stack_count = 0, frames_used = 0;
    std::uint64_t stack_dropped = 0;  ///< samples dropped for want of a stack; stack lock
    /// The code table's sequence number (detail/os/code_ranges.hpp) the
    /// stacks' `checked` flags refer to: when the code table is rebuilt (a
    /// dlopen or dlclose), every flag is cleared and stacks are checked again.
    std::uint32_t checked_seq = 0;
    /// Samples whose unchecked walk matched a checked stack (known_stack):
    /// how often the checked capture was saved (with the shards' `known`).
    std::uint64_t known_hits = 0;
    /// Bumped by clear (every lock held): a thread's stack cache entry
    /// (heap_sampling.hpp) names a stack id of one generation only.
    std::atomic<std::uint32_t> generation{1};
    /// The registered threads' stack caches (their pending figures): linked
    /// and unlinked with every shard lock held, so a holder of every shard
    /// lock may walk the list and fold.
    stack_cache* caches = nullptr;
    /// Bytes the tables take (bytes()): reserved before memory is taken, so
    /// that shards growing at once never pass max_bytes together.
    std::atomic<std::size_t> used{0};

    /// The shard of an address.
    live_shard& shard_of(const void* p) noexcept { return shards[shard_index(p)]; }

    /// The memory the tables take now, in bytes.
    std::size_t bytes() const noexcept { return used.load(std::memory_order_relaxed); }
    /// Reserves `more` bytes under the cap; false (nothing reserved) past it.
    bool take_bytes(std::size_t more) noexcept {
        std::size_t now = used.load(std::memory_order_relaxed);
        do {
            if (now > max_bytes || more > max_bytes - now) return false;
        } while (!used.compare_exchange_weak(now, now + more, std::memory_order_relaxed));
        return true;
    }
    void give_bytes(std::size_t n) noexcept { used.fetch_sub(n, std::memory_order_relaxed); }

    /// Live samples over all shards (each shard's count read without its lock:
    /// exact when every shard lock is held).
    std::size_t live_total() const noexcept {
        std::size_t n = 0;
        for (const live_shard& s : shards) n += s.count.load(std::memory_order_relaxed);
        return n;
    }
    /// Bytes of the live tables over all shards. Every shard lock held.
    std::size_t live_bytes() const noexcept {
        std::size_t n = 0;
        for (const live_shard& s : shards) n += s.cap() * sizeof(live_entry);
        return n;
    }
    /// Samples recorded and dropped, over all shards and the stacks. Every lock held.
    std::uint64_t samples_total() const noexcept {
        std::uint64_t n = 0;
        for (const live_shard& s : shards) n += s.samples;
        return n;
    }
    std::uint64_t known_total() const noexcept {
        std::uint64_t n = known_hits;
        for (const live_shard& s : shards) n += s.known;
        return n;
    }
    std::uint64_t dropped_total() const noexcept {
        std::uint64_t n = stack_dropped;
        for (const live_shard& s : shards) n += s.dropped;
        return n;
    }

    /// Takes every shard lock in index order (after the stack lock), for a
    /// consistent view of all shards: snapshot, stats, clear, fork.
    void lock_shards() noexcept {
        for (live_shard& s : shards) {
            tls_head.guards += guard_lock;
            s.lock.lock();
        }
    }
    /// Releases what lock_shards took.
    void unlock_shards() noexcept {
        for (std::size_t k = live_shards; k-- != 0;) {
            shards[k].lock.unlock();
            tls_head.guards -= guard_lock;
        }
    }
    /// Takes every shard lock if each is free now (never waits); false, none
    /// held, when one is taken. For a fatal-signal handler.
    bool try_lock_shards() noexcept {
        for (std::size_t k = 0; k < live_shards; ++k) {
            if (!shards[k].lock.try_lock()) {
                while (k-- != 0) shards[k].lock.unlock();
                return false;
            }
        }
        return true;
    }
    void unlock_shards_untracked() noexcept {
        for (std::size_t k = live_shards; k-- != 0;) shards[k].lock.unlock();
    }

    /// The figures of stack id (its chunk is published).
    stack_figures& figures_of(std::uint32_t id) noexcept {
        std::size_t c = 0, at = 0;
        figures_place(id, c, at);
        return figures[c].load(std::memory_order_acquire)[at];
    }

    /// Adds an entry's pending figures to its stack's figures and zeroes them;
    /// figures of an earlier generation are dropped with their run. The
    /// entry's shard lock, or every shard lock, held.
    void fold(stack_cache_entry& c) noexcept {
        if (c.objects == 0) return;
        if (c.gen == generation.load(std::memory_order_relaxed)) {
            stack_figures& fig = figures_of(c.id);
            fig.alloc_objects.fetch_add(c.objects, std::memory_order_relaxed);
            fig.alloc_bytes.fetch_add(c.bytes, std::memory_order_relaxed);
        }
        c.objects = c.bytes = 0;
    }
    /// Folds every registered thread's pending figures (snapshot, fork).
    /// Every shard lock held.
    void fold_all() noexcept {
        for (stack_cache* c = caches; c != nullptr; c = c->next)
            for (stack_cache_entry& e : c->e) fold(e);
    }
    /// Links a thread's cache into `caches`. Every shard lock held.
    void link_cache(stack_cache& c) noexcept {
        c.prev = nullptr;
        c.next = caches;
        if (caches != nullptr) caches->prev = &c;
        caches = &c;
        c.state = 1;
    }
    /// Folds a cache's figures and unlinks it: its thread is exiting (or,
    /// in a fork child, gone). Every shard lock held.
    void retire_cache(stack_cache& c) noexcept {
        if (c.state != 1) return;
        for (stack_cache_entry& e : c.e) fold(e);
        if (c.prev != nullptr) c.prev->next = c.next;
        else caches = c.next;
        if (c.next != nullptr) c.next->prev = c.prev;
        c.next = c.prev = nullptr;
        c.state = 2;
    }

    /// The filter cell of an address (never 0 while the address is in the table).
    filter_cell& cell(const void* p) noexcept { return filter[filter_index(p)]; }

    /// Sets the limits of a run. Locks held (or the tables not yet published).
    void configure(std::size_t depth, std::size_t live_max, std::size_t stacks_max, std::size_t bytes_max) noexcept {
        max_depth.store(depth, std::memory_order_relaxed);
        max_live = live_max;
        max_stacks = stacks_max;
        max_bytes = bytes_max;
    }

    /// Allocates the first, small tables. False when memory is short (then
    /// nothing is kept).
    bool allocate() noexcept {
        stacks_cap = initial_stacks;
        stack_index_cap = 2 * initial_stacks;
        frames_cap = initial_stacks * arena_frames_per_stack;
        figures_cap = figures_chunk0;
        bool ok = true;
        for (live_shard& s : shards) {
            s.bits = initial_live_bits;
            s.live = static_cast<live_entry*>(zeroed(s.cap() * sizeof(live_entry)));
            ok = ok && s.live != nullptr;
        }
        stack_index = static_cast<std::uint32_t*>(zeroed(stack_index_cap * sizeof(std::uint32_t)));
        stacks = static_cast<stack_entry*>(zeroed(stacks_cap * sizeof(stack_entry)));
        frames = static_cast<std::uintptr_t*>(zeroed(frames_cap * sizeof(std::uintptr_t)));
        filter = static_cast<filter_cell*>(zeroed(filter_cells));
        auto* fig0 = static_cast<stack_figures*>(zeroed(figures_chunk0 * sizeof(stack_figures)));
        figures[0].store(fig0, std::memory_order_release);
        if (ok && stack_index && stacks && frames && filter && fig0) {
            for (live_shard& s : shards) s.publish();
            used.store(live_shards * (std::size_t{1} << initial_live_bits) * sizeof(live_entry) +
                           stack_index_cap * sizeof(std::uint32_t) + stacks_cap * sizeof(stack_entry) +
                           frames_cap * sizeof(std::uintptr_t) + filter_cells +
                           figures_chunk0 * sizeof(stack_figures),
                       std::memory_order_relaxed);
            return true;
        }
        release();
        return false;
    }

    /// Frees every table (the tables' owner is done with them: tests).
    void release() noexcept {
        for (live_shard& s : shards) {
            internal_free(s.live);
            s.live = nullptr;
            s.hint.store(0, std::memory_order_relaxed);
        }
        internal_free(stack_index);
        internal_free(stacks);
        internal_free(frames);
        internal_free(filter);
        for (auto& c : figures) internal_free(c.exchange(nullptr, std::memory_order_relaxed));
        stack_index = nullptr, stacks = nullptr, frames = nullptr, filter = nullptr;
        used.store(0, std::memory_order_relaxed);
    }

    /// Empties the tables for a new run and gives grown memory back (back to
    /// the first sizes; where that memory is refused, the bigger arrays are
    /// kept and zeroed). The stack lock and every shard lock held.
    void clear() noexcept {
        for (live_shard& s : shards) {
            if (s.bits != initial_live_bits) {
                if (void* z = zeroed((std::size_t{1} << initial_live_bits) * sizeof(live_entry))) {
                    give_bytes(s.cap() * sizeof(live_entry));
                    used.fetch_add((std::size_t{1} << initial_live_bits) * sizeof(live_entry));
                    internal_free(s.live);
                    s.live = static_cast<live_entry*>(z);
                    s.bits = initial_live_bits;
                    s.publish();
                }
            }
            std::memset(static_cast<void*>(s.live), 0, s.cap() * sizeof(live_entry));
            s.count.store(0, std::memory_order_relaxed);
            s.samples = s.dropped = s.known = 0;
        }
        if (stack_index_cap != 2 * initial_stacks) {
            if (void* z = zeroed(2 * initial_stacks * sizeof(std::uint32_t))) {
                internal_free(stack_index);
                give_bytes((stack_index_cap - 2 * initial_stacks) * sizeof(std::uint32_t));
                stack_index = static_cast<std::uint32_t*>(z);
                stack_index_cap = 2 * initial_stacks;
            }
        }
        if (stacks_cap != initial_stacks) {
            if (void* q = internal_realloc(stacks, initial_stacks * sizeof(stack_entry))) {
                stacks = static_cast<stack_entry*>(q);
                give_bytes((stacks_cap - initial_stacks) * sizeof(stack_entry));
                stacks_cap = initial_stacks;
                if (stack_count > stacks_cap) stack_count = stacks_cap;
            }
        }
        if (frames_cap != initial_stacks * arena_frames_per_stack) {
            if (void* q = internal_realloc(frames, initial_stacks * arena_frames_per_stack * sizeof(std::uintptr_t))) {
                frames = static_cast<std::uintptr_t*>(q);
                give_bytes((frames_cap - initial_stacks * arena_frames_per_stack) * sizeof(std::uintptr_t));
                frames_cap = initial_stacks * arena_frames_per_stack;
            }
        }
        // Figures beyond the first chunk go; the first is zeroed where used.
        for (std::size_t c = 1; c < figures_chunks; ++c) {
            if (stack_figures* q = figures[c].exchange(nullptr, std::memory_order_relaxed)) {
                internal_free(q);
                give_bytes((figures_chunk0 << c) * sizeof(stack_figures));
            }
        }
        figures_cap = figures_chunk0;
        std::memset(static_cast<void*>(figures[0].load(std::memory_order_relaxed)), 0,
                    figures_chunk0 * sizeof(stack_figures));
        std::memset(stack_index, 0, stack_index_cap * sizeof(std::uint32_t));
        std::memset(static_cast<void*>(stacks), 0, stack_count * sizeof(stack_entry));
        // Frees read the filter without the lock: atomic stores, only where set.
        for (std::size_t i = 0; i < filter_cells; ++i)
            if (filter[i].load(std::memory_order_relaxed) != 0) filter[i].store(0, std::memory_order_relaxed);
        stack_count = frames_used = 0;
        stack_dropped = 0;
        checked_seq = 0;
        known_hits = 0;
        std::uint32_t g = generation.load(std::memory_order_relaxed) + 1;
        generation.store(g != 0 ? g : 1, std::memory_order_relaxed);
    }

    /// Doubles the stack entries (realloc keeps them). Stack lock held.
    bool grow_stacks() noexcept {
        if (!take_bytes(stacks_cap * sizeof(stack_entry))) return false;
        void* q = internal_realloc(stacks, 2 * stacks_cap * sizeof(stack_entry));
        if (q == nullptr) {
            give_bytes(stacks_cap * sizeof(stack_entry));
            return false;
        }
        stacks = static_cast<stack_entry*>(q);
        stacks_cap *= 2;
        return true;
    }

    /// Adds the next figures chunk. Stack lock held.
    bool grow_figures() noexcept {
        std::size_t c = 0, at = 0;
        figures_place(static_cast<std::uint32_t>(figures_cap), c, at);
        const std::size_t n = figures_chunk0 << c;
        if (!take_bytes(n * sizeof(stack_figures))) return false;
        auto* q = static_cast<stack_figures*>(zeroed(n * sizeof(stack_figures)));
        if (q == nullptr) {
            give_bytes(n * sizeof(stack_figures));
            return false;
        }
        figures[c].store(q, std::memory_order_release);
        figures_cap += n;
        return true;
    }

    /// Doubles the stack index, re-entering every stack by its hash. Stack lock held.
    bool grow_index() noexcept {
        if (!take_bytes(stack_index_cap * sizeof(std::uint32_t))) return false;
        const std::size_t cap = 2 * stack_index_cap;
        auto* bigger = static_cast<std::uint32_t*>(zeroed(cap * sizeof(std::uint32_t)));
        if (bigger == nullptr) {
            give_bytes(stack_index_cap * sizeof(std::uint32_t));
            return false;
        }
        for (std::size_t id = 0; id < stack_count; ++id) {
            std::size_t i = static_cast<std::size_t>(stacks[id].hash) & (cap - 1);
            while (bigger[i] != 0) i = (i + 1) & (cap - 1);
            bigger[i] = static_cast<std::uint32_t>(id + 1);
        }
        internal_free(stack_index);
        stack_index = bigger;
        stack_index_cap = cap;
        return true;
    }

    /// Makes room for n more frames in the arena (doubling). Stack lock held.
    bool grow_frames(std::size_t n) noexcept {
        std::size_t cap = 2 * frames_cap;
        if (cap - frames_used < n) cap = frames_used + n;
        // frames_at is 32 bits (the shifts avoid an always-false compare on 32-bit).
        if (((cap >> 16) >> 16) != 0 || !take_bytes((cap - frames_cap) * sizeof(std::uintptr_t))) return false;
        void* q = internal_realloc(frames, cap * sizeof(std::uintptr_t));
        if (q == nullptr) {
            give_bytes((cap - frames_cap) * sizeof(std::uintptr_t));
            return false;
        }
        frames = static_cast<std::uintptr_t*>(q);
        frames_cap = cap;
        return true;
    }

    /// Index slot of the stack frames[0, n) with hash h: the slot holding its
    /// id + 1, or the free slot where it would go.
    std::size_t find_stack(const std::uintptr_t* f, std::size_t n, std::uint64_t h) const noexcept {
        const std::size_t mask = stack_index_cap - 1;
        std::size_t i = static_cast<std::size_t>(h) & mask;
        for (; stack_index[i] != 0; i = (i + 1) & mask) {
            const stack_entry& e = stacks[stack_index[i] - 1];
            if (e.hash == h && e.depth == n &&
                (n == 0 || std::memcmp(frames + e.frames_at, f, n * sizeof(std::uintptr_t)) == 0))
                return i;
        }
        return i;
    }

    /// Makes the checked flags refer to code table version seq (clearing them
    /// all when it moved). Stack lock held.
    void check_against(std::uint32_t seq) noexcept {
        if (seq == checked_seq) return;
        for (std::size_t id = 0; id < stack_count; ++id) stacks[id].checked = 0;
        checked_seq = seq;
    }

    /// The id of frames[0, n) if it is interned and checked under code table
    /// version seq (counted in known_hits); -1 otherwise (then the caller
    /// captures with checks). Stack lock held.
    long known_stack(const std::uintptr_t* f, std::size_t n, std::uint64_t h, std::uint32_t seq) noexcept {
        check_against(seq);
        const std::uint32_t slot = stack_index[find_stack(f, n, h)];
        if (slot == 0 || stacks[slot - 1].checked == 0) return -1;
        ++known_hits;
        return static_cast<long>(slot - 1);
    }

    /// The stack id of frames[0, n), added when new; -1 when it cannot be
    /// added (a limit reached or memory short: the sample is counted as
    /// dropped). `checked`: the frames come from a checked capture under code
    /// table version seq. Stack lock held.
    long intern_stack(const std::uintptr_t* f, std::size_t n, std::uint64_t h, bool checked = false,
                      std::uint32_t seq = 0) noexcept {
        if (checked) check_against(seq);
        std::size_t i = find_stack(f, n, h);
        if (stack_index[i] != 0) {
            const std::uint32_t id = stack_index[i] - 1;
            if (checked) stacks[id].checked = 1;
            return static_cast<long>(id);
        }
        if ((max_stacks != 0 && stack_count >= max_stacks) || stack_count >= max_stack_ids ||
            (stack_count == stacks_cap && !grow_stacks()) || (stack_count == figures_cap && !grow_figures()) ||
            (frames_cap - frames_used < n && !grow_frames(n))) {
            ++stack_dropped;
            return -1;
        }
        if (2 * (stack_count + 1) > stack_index_cap) {  // keep the index at most half full
            if (!grow_index()) {
                ++stack_dropped;
                return -1;
            }
            const std::size_t mask = stack_index_cap - 1;
            for (i = static_cast<std::size_t>(h) & mask; stack_index[i] != 0;) i = (i + 1) & mask;
        }
        const auto id = static_cast<std::uint32_t>(stack_count++);
        stacks[id] = stack_entry{h, static_cast<std::uint32_t>(frames_used), static_cast<std::uint16_t>(n),
                                 static_cast<std::uint16_t>(checked ? 1 : 0)};
        if (n != 0) std::memcpy(frames + frames_used, f, n * sizeof(std::uintptr_t));
        frames_used += n;
        stack_index[i] = id + 1;
        return static_cast<long>(id);
    }

    /// Doubles shard s's table (rehashing). False at the cap or when memory is
    /// short. Its lock held.
    bool grow_live(live_shard& s) noexcept {
        if (s.bits >= 8 * sizeof(std::size_t) - 2 - shard_bits || !take_bytes(s.cap() * sizeof(live_entry)))
            return false;
        const unsigned bits = s.bits + 1;
        auto* bigger = static_cast<live_entry*>(zeroed((std::size_t{1} << bits) * sizeof(live_entry)));
        if (bigger == nullptr) {
            give_bytes(s.cap() * sizeof(live_entry));
            return false;
        }
        live_entry* old = s.live;
        const std::size_t old_cap = s.cap();
        s.live = bigger;
        s.bits = bits;
        for (std::size_t k = 0; k < old_cap; ++k)
            if (old[k].addr != 0) s.live[s.probe(old[k].addr)] = old[k];
        s.publish();
        internal_free(old);
        return true;
    }

    /// Enters a sampled block under stack id in shard s, whose lock is held
    /// (replacing an entry for the same address: that block was freed where
    /// we could not see it); false, counted as dropped, when the shard cannot
    /// grow or max_live is reached. The caller adds the stack's figures.
    /// `c`: the address's filter cell (its index computed once by the
    /// caller). Inline in the cached sample's path (add_live_cached, nearly
    /// every sample), out of line (insert_locked) in add_live's: inlined in
    /// both it cost 17 more instructions per sample (callgrind, workload
    /// --shape small).
    MEMDIAG_ALWAYS_INLINE bool insert_in(live_shard& s, std::uintptr_t p, std::size_t size, std::uint32_t id,
                                         filter_cell& c) noexcept {
        ++s.takes;
        const std::size_t n = s.count.load(std::memory_order_relaxed);
        // Keep the load at most 3/4 (linear probes stay short): grow, or drop.
        if (4 * (n + 1) > 3 * s.cap() && !grow_live(s)) {
            ++s.dropped;
            return false;
        }
        const std::size_t i = s.probe(p);
        if (s.live[i].addr != p) {
            if (max_live != 0 && live_total() >= max_live) {
                ++s.dropped;
                return false;
            }
            s.count.store(n + 1, std::memory_order_relaxed);
            const std::uint8_t v = c.load(std::memory_order_relaxed);
            if (v != 0xff) c.store(static_cast<std::uint8_t>(v + 1), std::memory_order_relaxed);
        }
        s.live[i] = live_entry{p, live_entry::pack(size, id)};
        ++s.samples;
        return true;
    }

    /// insert_in, out of line.
    MEMDIAG_NOINLINE bool insert_locked(live_shard& s, std::uintptr_t p, std::size_t size, std::uint32_t id,
                                        filter_cell& c) noexcept {
        return insert_in(s, p, size, id, c);
    }

    /// Enters a sampled block under stack id (insert_locked), taking its
    /// shard's lock (the caller holds no table lock). `gen`: the generation
    /// the id belongs to, read under the stack lock; false, nothing done,
    /// when the tables were cleared since. `c`: the thread's cache entry to
    /// fill with `key` (its earlier pending figures folded first), which then
    /// holds this sample's figures; nullptr: they go to the stack's figures.
    bool add_live(void* ptr, std::size_t size, std::uint32_t id, std::uint32_t gen, stack_cache_entry* c = nullptr,
                  const stack_cache_entry* key = nullptr) noexcept {
        const std::size_t fi = filter_index(ptr);  // once: it names the shard and the cell
        live_shard& s = shards[shard_of_cell(fi)];
        const auto p = reinterpret_cast<std::uintptr_t>(ptr);
        table_guard g(s.lock);
        // clear holds this lock: under it the generation stands still, and an
        // id of this generation has its figures chunk.
        if (gen != generation.load(std::memory_order_relaxed)) return false;
        if (c != nullptr) {
            fold(*c);
            *c = *key;
            c->objects = c->bytes = 0;
        }
        if (!insert_locked(s, p, size, id, filter[fi])) return true;
        const std::int64_t bytes = live_entry::recorded(size);
        if (c != nullptr) {
            c->objects = 1;
            c->bytes = bytes;
        } else {
            stack_figures& fig = figures_of(id);
            fig.alloc_objects.fetch_add(1, std::memory_order_relaxed);
            fig.alloc_bytes.fetch_add(bytes, std::memory_order_relaxed);
        }
        return true;
    }

    /// A sample of the stack a thread's cache entry c names (a hit: hash h):
    /// its figures go to c's pending figures, written by no other CPU. False,
    /// nothing done, when c no longer names that stack of this generation
    /// (cleared since, or refilled by a signal handler on this thread).
    /// `fi`: filter_index(ptr), computed once by the caller.
    bool add_live_cached(void* ptr, std::size_t fi, std::size_t size, stack_cache_entry& c, std::uint64_t h) noexcept {
        live_shard& s = shards[shard_of_cell(fi)];
        const auto p = reinterpret_cast<std::uintptr_t>(ptr);
        table_guard g(s.lock);
        if (c.hash != h || c.gen != generation.load(std::memory_order_relaxed)) return false;
        ++s.known;
        if (!insert_in(s, p, size, c.id, filter[fi])) return true;
        ++c.objects;
        c.bytes += live_entry::recorded(size);
        return true;
    }

    /// Forgets a freed block if it was sampled. Takes only its shard's lock.
    /// Inline in its one caller (forget_block).
    MEMDIAG_ALWAYS_INLINE void remove(void* ptr) noexcept {
        const std::size_t fi = filter_index(ptr);
        live_shard& s = shards[shard_of_cell(fi)];
        const auto p = reinterpret_cast<std::uintptr_t>(ptr);
        table_guard g(s.lock);
        ++s.takes;
        std::size_t i = s.probe(p);
        if (s.live[i].addr != p) return;  // a filter false positive
        s.count.store(s.count.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
        filter_cell& c = filter[fi];
        const std::uint8_t v = c.load(std::memory_order_relaxed);
        if (v != 0xff) c.store(static_cast<std::uint8_t>(v - 1), std::memory_order_relaxed);  // 0xff: sticky
        // Backward-shift deletion keeps every probe chain unbroken (no tombstones).
        const std::size_t mask = s.cap() - 1;
        for (std::size_t j = (i + 1) & mask; s.live[j].addr != 0; j = (j + 1) & mask) {
            const std::size_t home = live_shard::home(s.live[j].addr, s.bits);
            // Move j into the hole at i unless its home lies cyclically in (i, j].
            const bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
            if (!stays) {
                s.live[i] = s.live[j];
                i = j;
            }
        }
        s.live[i].addr = 0;
    }

    /// Calls fn(stack id, size) for every live sample. Every shard lock held.
    template <class Fn>
    void for_each_live(Fn&& fn) const {
        for (const live_shard& s : shards)
            for (std::size_t k = 0, cap = s.cap(); k < cap; ++k)
                if (s.live[k].addr != 0) fn(s.live[k].stack(), s.live[k].size());
    }

    /// True when the block at p is in the live table (a test's view). Takes its shard's lock.
    bool holds(const void* ptr) noexcept {
        live_shard& s = shard_of(ptr);
        const auto p = reinterpret_cast<std::uintptr_t>(ptr);
        table_guard g(s.lock);
        return s.live[s.probe(p)].addr == p;
    }
};
}  // namespace heapprof
}  // namespace detail
}  // namespace memdiag
