// memdiag/detail/heap_tables.hpp - the heap profiler's tables: live sampled
// blocks by address, distinct stacks with their figures, the frame arena and
// the free filter, plus the lock that guards them. Part of heap_profile.hpp;
// the memory they take is stated there.
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
/// The live table's first size: 4096 slots (64 KiB on 64-bit).
inline constexpr unsigned initial_live_bits = 12;
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
    std::int64_t alloc_objects, alloc_bytes, inuse_objects, inuse_bytes;
};
static_assert(max_capture <= 0xffff, "stack_entry::depth is 16 bits");

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

/// Multiplicative hash of an address: its top bits index the tables.
MEMDIAG_ALWAYS_INLINE std::uint64_t address_hash(const void* p) noexcept {
    return static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(p)) * 0x9e3779b97f4a7c15ull;
}

/// Hash of a stack, one frame at a time (record_sample hashes while it walks).
struct frames_hasher {
    std::uint64_t h = 0x84222325cbf29ce4ull;
    MEMDIAG_ALWAYS_INLINE void add(std::uintptr_t f) noexcept {
        h = (h ^ static_cast<std::uint64_t>(f)) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    /// The hash of the n frames added.
    std::uint64_t done(std::size_t n) const noexcept { return (h ^ n) * 0x9e3779b97f4a7c15ull; }
};

inline std::uint64_t frames_hash(const std::uintptr_t* f, std::size_t n) noexcept {
    frames_hasher hs;
    for (std::size_t i = 0; i < n; ++i) hs.add(f[i]);
    return hs.done(n);
}

/// The profiler's tables. They start small and grow on demand (memory from
/// beneath the hooks, never the observed heap) until their bytes() would pass
/// max_bytes, or a count limit set in profile_options is reached; only then
/// are new samples dropped (counted in `dropped`). Mutated under
/// g_profiler.lock; the filter is also read lock-free by frees, and
/// max_depth by record_sample.
///
/// Memory (64-bit; 32-bit in brackets): a live sample takes one 16 [12] byte
/// slot in a table kept between 3/8 and 3/4 full, so 21 to 43 [16 to 32]
/// bytes; a stack takes a 48-byte entry, 8 to 16 bytes of index and its
/// frames at 8 [4] bytes each, the entry array and the frame arena having up
/// to as much again free after a doubling. Fixed: the 64 KiB filter. While
/// the live table doubles, the old one is held too for the rehash.
struct tables {
    std::uint64_t interval = 0;
    std::atomic<std::size_t> max_depth{0};  ///< frames kept per stack
    std::size_t max_live = 0, max_stacks = 0;  ///< count limits; 0: none (the default)
    std::size_t max_bytes = 0;                 ///< cap on bytes()
    unsigned live_bits = 0;
    std::size_t stack_index_cap = 0, stacks_cap = 0, frames_cap = 0;

    live_entry* live = nullptr;
    std::uint32_t* stack_index = nullptr;  // slot -> stack id + 1, 0 = free
    stack_entry* stacks = nullptr;
    std::uintptr_t* frames = nullptr;
    filter_cell* filter = nullptr;

    std::size_t live_count = 0, stack_count = 0, frames_used = 0;
    std::uint64_t samples = 0, dropped = 0;
    /// The code table's sequence number (detail/os/code_ranges.hpp) the
    /// stacks' `checked` flags refer to: when the code table is rebuilt (a
    /// dlopen or dlclose), every flag is cleared and stacks are checked again.
    std::uint32_t checked_seq = 0;
    /// Samples whose unchecked walk matched a checked stack (insert_known):
    /// how often the checked capture was saved.
    std::uint64_t known_hits = 0;
    /// The live table as last published, read without the lock to prefetch
    /// a slot before the lock is taken (a stale pair only wastes a prefetch,
    /// which never faults).
    std::atomic<std::uintptr_t> live_hint{0};
    std::atomic<unsigned> live_hint_bits{0};

    std::size_t live_cap() const noexcept { return std::size_t{1} << live_bits; }

    /// Publishes the live table for prefetch_slot. Lock held.
    void publish_live() noexcept {
        live_hint.store(reinterpret_cast<std::uintptr_t>(live), std::memory_order_relaxed);
        live_hint_bits.store(live_bits, std::memory_order_relaxed);
    }

    /// Starts loading p's home slot into the cache. perf showed the table's
    /// first probe (a cache miss) as most of insert and remove; recording
    /// prefetches before capturing the stack, a free before taking the lock.
    void prefetch_slot(const void* p) const noexcept {
#if defined(__GNUC__) || defined(__clang__)
        const std::uintptr_t base = live_hint.load(std::memory_order_relaxed);
        const unsigned bits = live_hint_bits.load(std::memory_order_relaxed);
        if (base == 0 || bits == 0) return;
        const auto slot = static_cast<std::uintptr_t>(address_hash(p) >> (64 - bits));
        __builtin_prefetch(reinterpret_cast<const void*>(base + slot * sizeof(live_entry)), 1);
#else
        (void)p;
#endif
    }

    /// The memory the tables take now, in bytes.
    std::size_t bytes() const noexcept {
        return live_cap() * sizeof(live_entry) + stack_index_cap * sizeof(std::uint32_t) +
               stacks_cap * sizeof(stack_entry) + frames_cap * sizeof(std::uintptr_t) + filter_cells;
    }
    /// True when `more` bytes fit under the cap.
    bool fits(std::size_t more) const noexcept {
        const std::size_t now = bytes();
        return now <= max_bytes && more <= max_bytes - now;
    }

    /// The filter cell of an address (never 0 while the address is in the table).
    /// Neighbouring blocks share a cache line of the filter, so a program's
    /// frees touch a few lines of it rather than a random line each (one
    /// L1 miss per free, measured); the higher bits fold in so that blocks
    /// a multiple of 1 MiB apart do not all share a cell.
    filter_cell& cell(const void* p) noexcept {
        const auto a = reinterpret_cast<std::uintptr_t>(p);
        return filter[((a >> 4) ^ (a >> 20)) & (filter_cells - 1)];
    }

    /// Sets the limits of a run. Lock held (or the tables not yet published).
    void configure(std::size_t depth, std::size_t live_max, std::size_t stacks_max, std::size_t bytes_max) noexcept {
        max_depth.store(depth, std::memory_order_relaxed);
        max_live = live_max;
        max_stacks = stacks_max;
        max_bytes = bytes_max;
    }

    /// Allocates the first, small tables. False when memory is short.
    bool allocate() noexcept {
        live_bits = initial_live_bits;
        stacks_cap = initial_stacks;
        stack_index_cap = 2 * initial_stacks;
        frames_cap = initial_stacks * arena_frames_per_stack;
        live = static_cast<live_entry*>(zeroed(live_cap() * sizeof(live_entry)));
        stack_index = static_cast<std::uint32_t*>(zeroed(stack_index_cap * sizeof(std::uint32_t)));
        stacks = static_cast<stack_entry*>(zeroed(stacks_cap * sizeof(stack_entry)));
        frames = static_cast<std::uintptr_t*>(zeroed(frames_cap * sizeof(std::uintptr_t)));
        filter = static_cast<filter_cell*>(zeroed(filter_cells));
        if (live && stack_index && stacks && frames && filter) {
            publish_live();
            return true;
        }
        internal_free(live);
        internal_free(stack_index);
        internal_free(stacks);
        internal_free(frames);
        internal_free(filter);
        live = nullptr, stack_index = nullptr, stacks = nullptr, frames = nullptr, filter = nullptr;
        return false;
    }

    /// Empties the tables for a new run and gives grown memory back (back to
    /// the first sizes; where that memory is refused, the bigger arrays are
    /// kept and zeroed). Lock held.
    void clear() noexcept {
        if (live_bits != initial_live_bits) {
            if (void* z = zeroed((std::size_t{1} << initial_live_bits) * sizeof(live_entry))) {
                internal_free(live);
                live = static_cast<live_entry*>(z);
                live_bits = initial_live_bits;
                publish_live();
            }
        }
        if (stack_index_cap != 2 * initial_stacks) {
            if (void* z = zeroed(2 * initial_stacks * sizeof(std::uint32_t))) {
                internal_free(stack_index);
                stack_index = static_cast<std::uint32_t*>(z);
                stack_index_cap = 2 * initial_stacks;
            }
        }
        if (stacks_cap != initial_stacks) {
            if (void* q = internal_realloc(stacks, initial_stacks * sizeof(stack_entry))) {
                stacks = static_cast<stack_entry*>(q);
                stacks_cap = initial_stacks;
                if (stack_count > stacks_cap) stack_count = stacks_cap;
            }
        }
        if (frames_cap != initial_stacks * arena_frames_per_stack) {
            if (void* q = internal_realloc(frames, initial_stacks * arena_frames_per_stack * sizeof(std::uintptr_t))) {
                frames = static_cast<std::uintptr_t*>(q);
                frames_cap = initial_stacks * arena_frames_per_stack;
            }
        }
        std::memset(static_cast<void*>(live), 0, live_cap() * sizeof(live_entry));
        std::memset(stack_index, 0, stack_index_cap * sizeof(std::uint32_t));
        std::memset(static_cast<void*>(stacks), 0, stack_count * sizeof(stack_entry));
        // Frees read the filter without the lock: atomic stores, only where set.
        for (std::size_t i = 0; i < filter_cells; ++i)
            if (filter[i].load(std::memory_order_relaxed) != 0) filter[i].store(0, std::memory_order_relaxed);
        live_count = stack_count = frames_used = 0;
        samples = dropped = 0;
        checked_seq = 0;
        known_hits = 0;
    }

    /// Doubles the stack entries (realloc keeps them). Lock held.
    bool grow_stacks() noexcept {
        if (!fits(stacks_cap * sizeof(stack_entry))) return false;
        void* q = internal_realloc(stacks, 2 * stacks_cap * sizeof(stack_entry));
        if (q == nullptr) return false;
        stacks = static_cast<stack_entry*>(q);
        stacks_cap *= 2;
        return true;
    }

    /// Doubles the stack index, re-entering every stack by its hash. Lock held.
    bool grow_index() noexcept {
        if (!fits(stack_index_cap * sizeof(std::uint32_t))) return false;
        const std::size_t cap = 2 * stack_index_cap;
        auto* bigger = static_cast<std::uint32_t*>(zeroed(cap * sizeof(std::uint32_t)));
        if (bigger == nullptr) return false;
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

    /// Makes room for n more frames in the arena (doubling). Lock held.
    bool grow_frames(std::size_t n) noexcept {
        std::size_t cap = 2 * frames_cap;
        if (cap - frames_used < n) cap = frames_used + n;
        // frames_at is 32 bits (the shifts avoid an always-false compare on 32-bit).
        if (((cap >> 16) >> 16) != 0 || !fits((cap - frames_cap) * sizeof(std::uintptr_t))) return false;
        void* q = internal_realloc(frames, cap * sizeof(std::uintptr_t));
        if (q == nullptr) return false;
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
    /// all when it moved). Lock held.
    void check_against(std::uint32_t seq) noexcept {
        if (seq == checked_seq) return;
        for (std::size_t id = 0; id < stack_count; ++id) stacks[id].checked = 0;
        checked_seq = seq;
    }

    /// The id of frames[0, n) if it is interned and checked under code table
    /// version seq; -1 otherwise (then the caller captures with checks).
    long find_checked(const std::uintptr_t* f, std::size_t n, std::uint64_t h, std::uint32_t seq) noexcept {
        check_against(seq);
        const std::uint32_t slot = stack_index[find_stack(f, n, h)];
        return slot != 0 && stacks[slot - 1].checked != 0 ? static_cast<long>(slot - 1) : -1;
    }

    /// The stack id of frames[0, n), added when new; -1 when it cannot be
    /// added (a limit reached or memory short). `checked`: the frames come
    /// from a checked capture under code table version seq.
    long intern_stack(const std::uintptr_t* f, std::size_t n, std::uint64_t h, bool checked = false,
                      std::uint32_t seq = 0) noexcept {
        if (checked) check_against(seq);
        std::size_t i = find_stack(f, n, h);
        if (stack_index[i] != 0) {
            const std::uint32_t id = stack_index[i] - 1;
            if (checked) stacks[id].checked = 1;
            return static_cast<long>(id);
        }
        if ((max_stacks != 0 && stack_count >= max_stacks) || stack_count >= max_stack_ids) return -1;
        if (stack_count == stacks_cap && !grow_stacks()) return -1;
        if (frames_cap - frames_used < n && !grow_frames(n)) return -1;
        if (2 * (stack_count + 1) > stack_index_cap) {  // keep the index at most half full
            if (!grow_index()) return -1;
            const std::size_t mask = stack_index_cap - 1;
            for (i = static_cast<std::size_t>(h) & mask; stack_index[i] != 0;) i = (i + 1) & mask;
        }
        const auto id = static_cast<std::uint32_t>(stack_count++);
        stack_entry& e = stacks[id];
        e = stack_entry{h, static_cast<std::uint32_t>(frames_used), static_cast<std::uint16_t>(n),
                        static_cast<std::uint16_t>(checked ? 1 : 0), 0, 0, 0, 0};
        if (n != 0) std::memcpy(frames + frames_used, f, n * sizeof(std::uintptr_t));
        frames_used += n;
        stack_index[i] = id + 1;
        return static_cast<long>(id);
    }

    /// Slot holding p, or the free slot where it would go.
    std::size_t probe(std::uintptr_t p) const noexcept {
        const std::size_t mask = live_cap() - 1;
        std::size_t i = static_cast<std::size_t>(address_hash(reinterpret_cast<void*>(p)) >> (64 - live_bits));
        while (live[i].addr != 0 && live[i].addr != p) i = (i + 1) & mask;
        return i;
    }

    /// Doubles the live table (rehashing). False at the cap or when memory is
    /// short. Lock held.
    bool grow_live() noexcept {
        if (live_bits >= 8 * sizeof(std::size_t) - 2 || !fits(live_cap() * sizeof(live_entry))) return false;
        const unsigned bits = live_bits + 1;
        auto* bigger = static_cast<live_entry*>(zeroed((std::size_t{1} << bits) * sizeof(live_entry)));
        if (bigger == nullptr) return false;
        live_entry* old = live;
        const std::size_t old_cap = live_cap();
        live = bigger;
        live_bits = bits;
        for (std::size_t k = 0; k < old_cap; ++k)
            if (old[k].addr != 0) live[probe(old[k].addr)] = old[k];
        publish_live();
        internal_free(old);
        return true;
    }

    /// The slot a new sample of p goes to (replacing: p is there already,
    /// freed where we could not see it); live_cap() when it is dropped
    /// (counted). Grows the live table when needed. Lock held.
    std::size_t slot_for(std::uintptr_t p, bool& replacing) noexcept {
        // Keep the load at most 3/4 (linear probes stay short): grow, or drop.
        if (4 * (live_count + 1) > 3 * live_cap() && !grow_live()) {
            ++dropped;
            return live_cap();
        }
        const std::size_t i = probe(p);
        replacing = live[i].addr == p;
        if (!replacing && max_live != 0 && live_count >= max_live) {
            ++dropped;
            return live_cap();
        }
        return i;
    }

    /// Enters p in slot i (from slot_for) under stack id. Lock held.
    void commit(std::size_t i, void* ptr, bool replacing, std::size_t size, std::uint32_t id) noexcept {
        if (replacing) {
            stack_entry& old = stacks[live[i].stack()];
            --old.inuse_objects;
            old.inuse_bytes -= static_cast<std::int64_t>(live[i].size());
        } else {
            ++live_count;
            filter_cell& c = cell(ptr);
            const std::uint8_t v = c.load(std::memory_order_relaxed);
            if (v != 0xff) c.store(static_cast<std::uint8_t>(v + 1), std::memory_order_relaxed);
        }
        live[i] = live_entry{reinterpret_cast<std::uintptr_t>(ptr), live_entry::pack(size, id)};
        const auto recorded = static_cast<std::int64_t>(live[i].size());
        stack_entry& e = stacks[id];
        ++e.alloc_objects;
        e.alloc_bytes += recorded;
        ++e.inuse_objects;
        e.inuse_bytes += recorded;
        ++samples;
    }

    /// Records a sampled allocation whose frames came from a capture (checked
    /// under code table version seq when `checked`). Lock held.
    void insert(void* ptr, std::size_t size, const std::uintptr_t* f, std::size_t n, std::uint64_t h,
                bool checked = false, std::uint32_t seq = 0) noexcept {
        bool replacing = false;
        const std::size_t i = slot_for(reinterpret_cast<std::uintptr_t>(ptr), replacing);
        if (i == live_cap()) return;
        const long id = intern_stack(f, n, h, checked, seq);
        if (id < 0) {
            ++dropped;
            return;
        }
        commit(i, ptr, replacing, size, static_cast<std::uint32_t>(id));
    }

    /// Records a sampled allocation whose frames came from an unchecked walk,
    /// if they are those of a stack already checked under code table version
    /// seq; false (nothing changed) otherwise. Lock held.
    bool insert_known(void* ptr, std::size_t size, const std::uintptr_t* f, std::size_t n, std::uint64_t h,
                      std::uint32_t seq) noexcept {
        const long id = find_checked(f, n, h, seq);
        if (id < 0) return false;
        ++known_hits;
        bool replacing = false;
        const std::size_t i = slot_for(reinterpret_cast<std::uintptr_t>(ptr), replacing);
        if (i != live_cap()) commit(i, ptr, replacing, size, static_cast<std::uint32_t>(id));
        return true;
    }

    /// Forgets a freed block if it was sampled. Lock held.
    void remove(void* ptr) noexcept {
        const auto p = reinterpret_cast<std::uintptr_t>(ptr);
        std::size_t i = probe(p);
        if (live[i].addr != p) return;  // a filter false positive
        stack_entry& e = stacks[live[i].stack()];
        --e.inuse_objects;
        e.inuse_bytes -= static_cast<std::int64_t>(live[i].size());
        --live_count;
        filter_cell& c = cell(ptr);
        const std::uint8_t v = c.load(std::memory_order_relaxed);
        if (v != 0xff) c.store(static_cast<std::uint8_t>(v - 1), std::memory_order_relaxed);  // 0xff: sticky
        // Backward-shift deletion keeps every probe chain unbroken (no tombstones).
        const std::size_t mask = live_cap() - 1;
        for (std::size_t j = (i + 1) & mask; live[j].addr != 0; j = (j + 1) & mask) {
            const auto home = static_cast<std::size_t>(
                address_hash(reinterpret_cast<void*>(live[j].addr)) >> (64 - live_bits));
            // Move j into the hole at i unless its home lies cyclically in (i, j].
            const bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
            if (!stays) {
                live[i] = live[j];
                i = j;
            }
        }
        live[i].addr = 0;
    }
};

/// The tables' lock: memdiag's one spinlock (detail/spin_lock.hpp), whose
/// guard marks the thread as holding a memdiag lock, so that an allocation or
/// free by a signal handler that interrupts it is counted without the tables.
using table_lock = detail::spinlock;
using table_guard = detail::spin_guard;
}  // namespace heapprof
}  // namespace detail
}  // namespace memdiag
