// memdiag/heap_profile.hpp - the in-process heap profiler: live sampled
// allocations with their stacks, written as pprof profiles, text reports and
// collapsed stacks, and dumped when memory runs out.
//
//     memdiag::heap_profiler::start(memdiag::profile_options{}.sample_interval(512 * 1024));
//     ...
//     memdiag::result r = memdiag::write_heap_profile("heap.pb.gz");  // go tool pprof heap.pb.gz
//     std::string top = memdiag::heap_report(10);
//     std::string folded = memdiag::collapsed_heap_stacks();
//
// What is recorded. Every outermost allocation event (global operator new,
// the malloc hook, tracking_allocator, tracking_resource) passes the sampler
// (sampler.hpp): at the default interval one allocation per 512 KiB allocated
// on average, with interval 1 every allocation. A recorded allocation keeps its
// stack (leaf first, memdiag's own frames removed when the snapshot is made)
// and its requested size; its stack's alloc_objects/alloc_bytes and
// inuse_objects/inuse_bytes grow, and the in-use pair shrinks when the block is
// freed. The tables hold raw counts; the writers scale them to unbiased
// estimates with Go's formula, so the report, the collapsed stacks and
// `go tool pprof` agree.
//
// Bounded memory. start() reserves fixed-capacity tables (zero-filled pages
// from the C allocator, so untouched capacity costs address space, not RAM):
//   live table   24 bytes a slot (16 on 32-bit targets), 4096 slots at first,
//                doubled as live samples grow, up to 2 x max_live_samples
//   stack table  max_stacks x 48 bytes + 2 x max_stacks x 4 bytes index
//   frame arena  max_stacks x 24 frames x pointer size (the average depth)
//   free filter  8 x max_live_samples one-byte cells, 4 KiB to 64 KiB
// Defaults (262144 live samples, 65536 stacks): about 18 MiB of address space
// at start on 64-bit, up to 30 MiB with the live table at full size. When the live table or the stack table is full, new samples are
// dropped, counted in dropped_samples (heap_profiler::stats(), and the text
// report says so); recorded ones keep being updated. Raise the limits with
// profile_options when that happens. Restarting with other limits allocates
// new tables; the old ones are kept (never freed) because a thread may still
// be reading them, and reused by a later restart with the same limits, so the
// address space grows with the number of distinct shapes, not of restarts.
//
// When memory runs out. With a dump destination set (dump_on_bad_alloc,
// set_dump_path or $MEMDIAG_DUMP_DIR) the profiler keeps an emergency reserve
// of address space, mapped but untouched (no RAM), and gives it back when
// operator new fails or a budget is breached, just before writing. The writer
// copies only what the tables hold (never sizes by max_stacks) and allocates
// beneath the hooks; its memory is bounded by
//   12 MiB + 256 bytes per recorded stack + 48 bytes per stored frame
// (see reserve_fixed_bytes), and the reserve is sized for twice what the
// tables hold, resized when they outgrow it: 13.4 MiB for a small program,
// 21 MiB for 100k live samples over 8192 stacks (bench/oom_snapshot_cost).
//
// Cost. Frees of blocks that were never sampled stay on the fast path: one
// lock-free load from a small counting filter indexed by the address hash
// (saturating 8-bit counters); only filter hits take the table lock. Recording
// a sample captures the stack (stack.hpp; build with -fno-omit-frame-pointer
// for the fast walk) and takes a spinlock. Nothing here allocates through the
// observed heap: tables come from internal_malloc, snapshots use internal
// containers inside an internal_section, so a snapshot can be written right
// after a budget breach or an allocation failure.
//
// Limits. Events of threads that have no memdiag thread state (while they are
// created or after they exit) are not sampled, and frees there are not seen;
// stop() freezes the tables (frees after it are not seen). The profiler's
// locks are held across fork. An allocation or free made while its thread
// holds a memdiag lock (a signal handler interrupting memdiag) is counted by
// its tracker but not sampled; heap_profile_stats::reentrant_events says how many.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <new>
#include <string>
#include <thread>

#include "config.hpp"
#include "detail/emergency_reserve.hpp"
#include "detail/internal_alloc.hpp"
#include "detail/internal_section.hpp"
#include "detail/symbols.hpp"
#include "detail/thread_state.hpp"
#include "result.hpp"
#include "sampler.hpp"
#include "snapshot/pprof.hpp"
#include "snapshot/report.hpp"
#include "stack.hpp"
#include "fatal_signal.hpp"
#include "tracker.hpp"
#include "watermark.hpp"

#if MEMDIAG_POSIX
#include <unistd.h>
#elif MEMDIAG_OS_WINDOWS
#include <process.h>
#endif

#if MEMDIAG_HAS_LIBC_MALLOC
extern "C" void* __libc_calloc(std::size_t, std::size_t);
#endif

namespace memdiag {

/// Settings of heap_profiler::start, built fluently:
/// `profile_options{}.sample_interval(1).max_depth(32)`.
class profile_options {
public:
    /// Mean bytes between samples; 1 records every allocation. 0 (the default)
    /// means MEMDIAG_SAMPLE_INTERVAL, else 524288. Values above 1 TiB are clamped.
    profile_options& sample_interval(std::uint64_t bytes) noexcept {
        interval_ = bytes > max_sample_interval ? max_sample_interval : bytes;
        return *this;
    }
    /// Frames kept per stack, memdiag's own excluded (1..128, default 64).
    profile_options& max_depth(std::size_t frames) noexcept {
        depth_ = frames < 1 ? 1 : frames > 128 ? 128 : frames;
        return *this;
    }
    /// Sampled allocations that can be live at once (default 262144, at least 16).
    profile_options& max_live_samples(std::size_t n) noexcept {
        live_ = n < 16 ? 16 : n > (std::size_t{1} << 28) ? (std::size_t{1} << 28) : n;
        return *this;
    }
    /// Distinct stacks that can be recorded (default 65536, at least 16).
    profile_options& max_stacks(std::size_t n) noexcept {
        stacks_ = n < 16 ? 16 : n > (std::size_t{1} << 24) ? (std::size_t{1} << 24) : n;
        return *this;
    }
    /// Writes a snapshot to `path` when the global operator new is about to
    /// throw std::bad_alloc (same as heap_profiler::set_dump_path). The text is
    /// copied by start(); nullptr or "" keeps the current setting.
    profile_options& dump_on_bad_alloc(const char* path) noexcept {
        dump_path_ = path;
        return *this;
    }

    /// Writes DIR/heap.<pid>.<percent>.pb.gz each time the live heap first
    /// crosses one of these fractions of the memory limit (watermark.hpp): at
    /// most 8, each in (0, 1]. Empty (the default): from MEMDIAG_DUMP_AT, if set.
    profile_options& dump_at_fractions(std::initializer_list<double> fractions) noexcept {
        fractions_count_ = 0;
        for (double f : fractions)
            if (fractions_count_ < max_fractions + 1) fractions_[fractions_count_++] = f;  // 9: "too many"
        return *this;
    }
    /// The limit the fractions apply to, in bytes; 0 (the default):
    /// MEMDIAG_DUMP_LIMIT, else env::collect().effective_limit().
    profile_options& dump_limit(std::uint64_t bytes) noexcept {
        limit_ = bytes;
        return *this;
    }
    /// Directory of the watermark snapshots (copied by start()); nullptr (the
    /// default): MEMDIAG_DUMP_DIR.
    profile_options& dump_dir(const char* dir) noexcept {
        dump_dir_ = dir;
        return *this;
    }

    std::uint64_t sample_interval() const noexcept { return interval_; }   ///< 0: environment/default
    std::size_t max_depth() const noexcept { return depth_; }              ///< frames per stack
    std::size_t max_live_samples() const noexcept { return live_; }        ///< live-table capacity
    std::size_t max_stacks() const noexcept { return stacks_; }            ///< stack-table capacity
    const char* dump_on_bad_alloc() const noexcept { return dump_path_; }  ///< nullptr: unchanged
    const double* dump_at_fractions() const noexcept { return fractions_; }  ///< see dump_at_fractions_count
    std::size_t dump_at_fractions_count() const noexcept { return fractions_count_; }  ///< 0: environment
    std::uint64_t dump_limit() const noexcept { return limit_; }            ///< 0: environment/effective limit
    const char* dump_dir() const noexcept { return dump_dir_; }             ///< nullptr: MEMDIAG_DUMP_DIR

private:
    static constexpr std::size_t max_fractions = 8;
    double fractions_[max_fractions + 1] = {};
    std::size_t fractions_count_ = 0;
    std::uint64_t limit_ = 0;
    const char* dump_dir_ = nullptr;
    std::uint64_t interval_ = 0;
    std::size_t depth_ = 64;
    std::size_t live_ = std::size_t{1} << 18;
    std::size_t stacks_ = std::size_t{1} << 16;
    const char* dump_path_ = nullptr;
};

/// Figures about the profiler itself (not about the program's heap).
struct heap_profile_stats {
    bool running = false;              ///< between start() and stop()
    std::uint64_t sample_interval = 0; ///< mean bytes between samples of the current tables
    std::uint64_t samples = 0;         ///< allocations recorded since start()
    std::uint64_t dropped_samples = 0; ///< samples lost because a table was full
    /// Allocations and frees made while their thread held a memdiag lock (a
    /// signal handler interrupting memdiag): counted by the trackers, but not
    /// sampled, and a sampled block freed there stays in use in the profile.
    std::uint64_t reentrant_events = 0;
    std::uint64_t live_samples = 0;    ///< recorded allocations not yet freed
    std::uint64_t stacks = 0;          ///< distinct stacks recorded
    std::size_t max_live_samples = 0;  ///< live-table capacity
    std::size_t max_stacks = 0;        ///< stack-table capacity
};

namespace detail {
namespace heapprof {

/// Frames captured beyond max_depth, for memdiag's own (removed at snapshot).
inline constexpr std::size_t internal_frames = 12;
/// Largest capture: max_depth 128 plus memdiag's frames.
inline constexpr std::size_t max_capture = 128 + internal_frames;
/// The live table's first size: 4096 slots (96 KiB on 64-bit).
inline constexpr unsigned initial_live_bits = 12;
/// Average frames per stack the frame arena is sized for.
inline constexpr std::size_t arena_frames_per_stack = 24;
/// The free filter's size bounds: one byte per cell. A free of an unsampled
/// block costs one load from it, so it must stay in cache: at 64 KiB a 2 MiB
/// filter's misses (+4 ns per free, measured) are gone, and at the default
/// interval (a live sample per 512 KiB of heap) false hits stay rare up to
/// gigabytes of heap: with L live samples a free takes the lock with
/// probability about L / 65536.
inline constexpr std::size_t min_filter_cells = 4096;
inline constexpr std::size_t max_filter_cells = 65536;

/// A live sampled block. addr 0 marks a free slot.
struct live_entry {
    std::uintptr_t addr;
    std::size_t size;
    std::uint32_t stack;
};

/// A distinct stack with its raw (unscaled) figures.
struct stack_entry {
    std::uint64_t hash;
    std::uint32_t frames_at;  ///< index of the first frame in the arena
    std::uint32_t depth;
    std::int64_t alloc_objects, alloc_bytes, inuse_objects, inuse_bytes;
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

inline unsigned log2_of(std::size_t pow2) noexcept {
    unsigned b = 0;
    while ((std::size_t{1} << b) < pow2) ++b;
    return b;
}

/// Multiplicative hash of an address: its top bits index the tables.
MEMDIAG_ALWAYS_INLINE std::uint64_t address_hash(const void* p) noexcept {
    return static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(p)) * 0x9e3779b97f4a7c15ull;
}

inline std::uint64_t frames_hash(const std::uintptr_t* f, std::size_t n) noexcept {
    std::uint64_t h = 0x84222325cbf29ce4ull ^ n;
    for (std::size_t i = 0; i < n; ++i) {
        h = (h ^ static_cast<std::uint64_t>(f[i])) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    return h;
}

/// The profiler's fixed-capacity tables. Mutated under g_profiler.lock; the
/// filter is also read lock-free by frees.
struct tables {
    std::uint64_t interval = 0;
    std::size_t max_depth = 0, max_live = 0, max_stacks = 0;
    unsigned live_bits = 0, max_live_bits = 0, filter_bits = 0;
    std::size_t stack_index_cap = 0, frames_cap = 0;

    live_entry* live = nullptr;
    std::uint32_t* stack_index = nullptr;  // slot -> stack id + 1, 0 = free
    stack_entry* stacks = nullptr;
    std::uintptr_t* frames = nullptr;
    filter_cell* filter = nullptr;

    std::size_t live_count = 0, stack_count = 0, frames_used = 0;
    std::uint64_t samples = 0, dropped = 0;
    tables* retired_next = nullptr;

    std::size_t live_cap() const noexcept { return std::size_t{1} << live_bits; }
    std::size_t filter_cap() const noexcept { return std::size_t{1} << filter_bits; }

    /// The filter cell of an address (never 0 while the address is in the table).
    filter_cell& cell(const void* p) noexcept {
        return filter[address_hash(p) >> (64 - filter_bits)];
    }

    bool allocate(std::size_t depth, std::size_t live_max, std::size_t stacks_max) noexcept {
        max_depth = depth;
        max_live = live_max;
        max_stacks = stacks_max;
        // The live table starts small and doubles as samples accumulate: its
        // size follows the live samples, so its lines stay in cache.
        max_live_bits = log2_of(pow2_at_least(2 * live_max));
        live_bits = max_live_bits < initial_live_bits ? max_live_bits : initial_live_bits;
        // Every free reads the filter: it must stay in cache, so it is capped at
        // 64 KiB (see max_filter_cells) rather than grown with max_live.
        std::size_t cells = pow2_at_least(8 * live_max);
        cells = cells < min_filter_cells ? min_filter_cells : cells > max_filter_cells ? max_filter_cells : cells;
        filter_bits = log2_of(cells);
        stack_index_cap = pow2_at_least(2 * stacks_max);
        frames_cap = stacks_max * arena_frames_per_stack;
        if (frames_cap < max_capture) frames_cap = max_capture;
        live = static_cast<live_entry*>(zeroed(live_cap() * sizeof(live_entry)));
        stack_index = static_cast<std::uint32_t*>(zeroed(stack_index_cap * sizeof(std::uint32_t)));
        stacks = static_cast<stack_entry*>(zeroed(stacks_max * sizeof(stack_entry)));
        frames = static_cast<std::uintptr_t*>(zeroed(frames_cap * sizeof(std::uintptr_t)));
        filter = static_cast<filter_cell*>(zeroed(filter_cap()));
        if (live && stack_index && stacks && frames && filter) return true;
        release();
        return false;
    }

    void release() noexcept {
        internal_free(live);
        internal_free(stack_index);
        internal_free(stacks);
        internal_free(frames);
        internal_free(filter);
        live = nullptr, stack_index = nullptr, stacks = nullptr, frames = nullptr, filter = nullptr;
    }

    bool same_shape(std::size_t depth, std::size_t live_max, std::size_t stacks_max) const noexcept {
        return depth == max_depth && live_max == max_live && stacks_max == max_stacks;
    }

    /// Empties the tables for a new run. Lock held.
    void clear() noexcept {
        std::memset(static_cast<void*>(live), 0, live_cap() * sizeof(live_entry));
        std::memset(stack_index, 0, stack_index_cap * sizeof(std::uint32_t));
        std::memset(static_cast<void*>(stacks), 0, stack_count * sizeof(stack_entry));
        // Frees read the filter without the lock: atomic stores, only where set.
        for (std::size_t i = 0; i < filter_cap(); ++i)
            if (filter[i].load(std::memory_order_relaxed) != 0) filter[i].store(0, std::memory_order_relaxed);
        live_count = stack_count = frames_used = 0;
        samples = dropped = 0;
    }

    /// The stack id of frames[0, n), added when new; -1 when the table is full.
    long intern_stack(const std::uintptr_t* f, std::size_t n, std::uint64_t h) noexcept {
        const std::size_t mask = stack_index_cap - 1;
        std::size_t i = static_cast<std::size_t>(h) & mask;
        for (; stack_index[i] != 0; i = (i + 1) & mask) {
            const std::uint32_t id = stack_index[i] - 1;
            const stack_entry& e = stacks[id];
            if (e.hash == h && e.depth == n &&
                (n == 0 || std::memcmp(frames + e.frames_at, f, n * sizeof(std::uintptr_t)) == 0))
                return static_cast<long>(id);
        }
        if (stack_count >= max_stacks || frames_cap - frames_used < n) return -1;
        const auto id = static_cast<std::uint32_t>(stack_count++);
        stack_entry& e = stacks[id];
        e = stack_entry{h, static_cast<std::uint32_t>(frames_used), static_cast<std::uint32_t>(n), 0, 0, 0, 0};
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

    /// Doubles the live table (rehashing). False when memory is short. Lock held.
    bool grow_live() noexcept {
        const unsigned bits = live_bits + 1;
        auto* bigger = static_cast<live_entry*>(zeroed((std::size_t{1} << bits) * sizeof(live_entry)));
        if (bigger == nullptr) return false;
        live_entry* old = live;
        const std::size_t old_cap = live_cap();
        live = bigger;
        live_bits = bits;
        for (std::size_t k = 0; k < old_cap; ++k)
            if (old[k].addr != 0) live[probe(old[k].addr)] = old[k];
        internal_free(old);
        return true;
    }

    /// Records a sampled allocation. Lock held.
    void insert(void* ptr, std::size_t size, const std::uintptr_t* f, std::size_t n, std::uint64_t h) noexcept {
        const auto p = reinterpret_cast<std::uintptr_t>(ptr);
        // Keep the load at most 1/2; the last slots are never filled (probes end).
        if (2 * (live_count + 1) > live_cap() && (live_bits >= max_live_bits || !grow_live()) &&
            live_count + 2 > live_cap()) {
            ++dropped;
            return;
        }
        const std::size_t i = probe(p);
        const bool replacing = live[i].addr == p;  // freed where we could not see it
        if (!replacing && live_count >= max_live) {
            ++dropped;
            return;
        }
        const long id = intern_stack(f, n, h);
        if (id < 0) {
            ++dropped;
            return;
        }
        if (replacing) {
            stack_entry& old = stacks[live[i].stack];
            --old.inuse_objects;
            old.inuse_bytes -= static_cast<std::int64_t>(live[i].size);
        } else {
            ++live_count;
            filter_cell& c = cell(ptr);
            const std::uint8_t v = c.load(std::memory_order_relaxed);
            if (v != 0xff) c.store(static_cast<std::uint8_t>(v + 1), std::memory_order_relaxed);
        }
        live[i] = live_entry{p, size, static_cast<std::uint32_t>(id)};
        stack_entry& e = stacks[id];
        ++e.alloc_objects;
        e.alloc_bytes += static_cast<std::int64_t>(size);
        ++e.inuse_objects;
        e.inuse_bytes += static_cast<std::int64_t>(size);
        ++samples;
    }

    /// Forgets a freed block if it was sampled. Lock held.
    void remove(void* ptr) noexcept {
        const auto p = reinterpret_cast<std::uintptr_t>(ptr);
        std::size_t i = probe(p);
        if (live[i].addr != p) return;  // a filter false positive
        stack_entry& e = stacks[live[i].stack];
        --e.inuse_objects;
        e.inuse_bytes -= static_cast<std::int64_t>(live[i].size);
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

/// The table lock. Critical sections are a few hundred nanoseconds, so a
/// waiter spins on a plain load for a while before yielding: yielding at once
/// (as the registry's spinlock does) turned exact-mode contention between two
/// threads into mostly sched_yield system time.
class table_lock {
public:
    void lock() noexcept {
        for (;;) {
            if (!flag_.exchange(true, std::memory_order_acquire)) return;
            for (int i = 0; flag_.load(std::memory_order_relaxed); ++i)
                if (i >= 2048) std::this_thread::yield();
        }
    }
    void unlock() noexcept { flag_.store(false, std::memory_order_release); }
    /// Takes the lock if it is free now (the fatal-signal handler never waits on it).
    bool try_lock() noexcept {
        return !flag_.load(std::memory_order_relaxed) && !flag_.exchange(true, std::memory_order_acquire);
    }

private:
    std::atomic<bool> flag_{false};
};

/// RAII holder of a table_lock. Marks the thread as holding a memdiag lock
/// (guard_lock): an allocation or free by a signal handler that interrupts it
/// is counted without the tables (tracker.hpp) instead of waiting forever.
class table_guard {
public:
    explicit table_guard(table_lock& l) noexcept : lock_(l) {
        tls_head.guards += guard_lock;
        lock_.lock();
    }
    ~table_guard() {
        lock_.unlock();
        tls_head.guards -= guard_lock;
    }
    table_guard(const table_guard&) = delete;
    table_guard& operator=(const table_guard&) = delete;

private:
    table_lock& lock_;
};

/// Process-wide profiler state; constant-initialized.
struct profiler_state {
    table_lock lock;   ///< guards the tables' contents
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
    tables* retired = nullptr;            ///< earlier tables, kept alive (see file comment)
};
inline profiler_state g_profiler;

/// The profiler's part in fork handling (thread_state.hpp): its locks are held
/// across fork, so the child never finds one held by a thread it does not have.
inline void fork_lock() noexcept {
    g_profiler.control.lock();
    g_profiler.lock.lock();
}
inline void fork_unlock() noexcept {
    g_profiler.lock.unlock();
    g_profiler.control.unlock();
}
inline constexpr fork_participant profiler_fork_participant{&fork_lock, &fork_unlock, &fork_unlock};

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

/// Captures the stack and enters a sampled allocation in the tables.
MEMDIAG_NOINLINE inline void record_sample(void* p, std::size_t size) noexcept {
    tables* t = g_profiler.current.load(std::memory_order_acquire);
    if (t == nullptr) return;
    internal_section quiet;  // first capture on a thread may look up its stack bounds
    std::uintptr_t f[max_capture];
    // skip 1: this function; memdiag's other frames are removed by name at snapshot.
    const std::size_t n = capture_stack(f, t->max_depth + internal_frames, 1);
    const std::uint64_t h = frames_hash(f, n);
    bool outgrown;
    {
        table_guard g(g_profiler.lock);
        t->insert(p, size, f, n, h);
        outgrown = t->stack_count > g_profiler.reserve_stacks.load(std::memory_order_relaxed) ||
                   t->frames_used > g_profiler.reserve_frames.load(std::memory_order_relaxed);
    }
    if (MEMDIAG_UNLIKELY(outgrown)) resize_reserve(t);
}

/// profile_allocated handler: count down the thread's bytes, record when due.
/// The event path calls it only when the countdown may run out (or belongs to
/// an earlier run); other allocations it counts down inline (tracker.hpp).
inline void on_allocated(thread_state* s, void* p, std::size_t size) noexcept {
    const std::uint32_t epoch = g_registry.global_slow.load(std::memory_order_relaxed) >> slow_epoch_shift;
    if (epoch == 0) return;  // stopped meanwhile
    if (MEMDIAG_UNLIKELY(s->sample_epoch != epoch)) {
        // First event of this thread in this run: seed, start a countdown.
        s->sample_epoch = epoch;
        if (s->rng == 0) {
            const auto seed = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(s)) ^
                              static_cast<std::uint64_t>(
                                  std::chrono::steady_clock::now().time_since_epoch().count()) *
                                  0x9e3779b97f4a7c15ull;
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

MEMDIAG_COLD inline void forget_block(tables* t, void* p) noexcept {
    table_guard g(g_profiler.lock);
    t->remove(p);
}

/// profile_freed handler: a lock-free filter test; only possible hits lock.
inline void on_freed(void* p) noexcept {
    tables* t = g_profiler.current.load(std::memory_order_acquire);
    if (t == nullptr || MEMDIAG_LIKELY(t->cell(p).load(std::memory_order_relaxed) == 0)) return;
    forget_block(t, p);
}

/// A copy of the tables, trimmed and merged, ready for the writers.
struct snapshot_data {
    internal_vector<std::uintptr_t> frames;
    internal_vector<snapshot::heap_sample> samples;
    module_list modules;
    symbolizer names;
    heap_profile_stats stats;
    std::int64_t time_nanos = 0;

    snapshot::heap_view view() const noexcept {
        return snapshot::heap_view{samples.data(), samples.size(), stats.sample_interval, time_nanos};
    }
};

/// True for frames of the allocation machinery: memdiag's own functions, the
/// replaced operator new and C allocation functions. Leading runs of these are
/// removed from stacks.
inline bool is_allocator_frame(const char* name, std::size_t n) noexcept {
    if (n == 0) return false;
    auto starts = [&](std::size_t at, const char* prefix) {
        const std::size_t k = std::strlen(prefix);
        return n - at >= k && std::memcmp(name + at, prefix, k) == 0;
    };
    static const char* const c_functions[] = {"malloc", "calloc", "realloc", "free", "posix_memalign",
                                              "aligned_alloc", "memalign", "valloc", "pvalloc"};
    for (const char* c : c_functions)
        if (std::strlen(c) == n && std::memcmp(name, c, n) == 0) return true;
    if (starts(0, "operator new") || starts(0, "operator delete")) return true;
    // Mangled names (the fatal-signal handler does not demangle): operator
    // new/new[]/delete/delete[], and anything in namespace memdiag.
    if (starts(0, "_Znw") || starts(0, "_Zna") || starts(0, "_Zdl") || starts(0, "_Zda") ||
        starts(0, "_ZN7memdiag") || starts(0, "_ZNK7memdiag"))
        return true;
    // A qualified name in namespace memdiag, possibly after a return type: look
    // at every token outside template arguments, before the parameter list.
    int depth = 0;
    bool token_start = true;
    for (std::size_t i = 0; i < n; ++i) {
        const char c = name[i];
        if (c == '<') ++depth;
        else if (c == '>') --depth;
        else if (c == '(' && depth == 0) break;
        if (depth == 0 && token_start && starts(i, "memdiag::")) return true;
        token_start = c == ' ' || c == '*' || c == '&';
    }
    return false;
}

/// Copies the tables and builds the trimmed, merged samples. False when the
/// profiler never started. May throw std::bad_alloc (internal memory exhausted).
inline bool take_snapshot(snapshot_data& out) {
    internal_section quiet;
    tables* t = g_profiler.current.load(std::memory_order_acquire);
    if (t == nullptr) return false;
    internal_vector<stack_entry> stacks;
    // Copy under the lock, quickly; everything slow happens after. The copies
    // are sized from what the tables hold now, not from their capacity
    // (max_stacks): after an allocation failure only the reserve is left.
    // Stacks and frames are append-only, so when more arrived between sizing
    // and locking, a retry sizes again; after a few, the stacks that fit are
    // copied and the samples of the newest ones are counted as dropped.
    for (int attempt = 0;; ++attempt) {
        std::size_t want_stacks = 0, want_frames = 0;
        {
            table_guard g(g_profiler.lock);
            want_stacks = t->stack_count;
            want_frames = t->frames_used;
        }
        // Slack for what arrives meanwhile: 1/8 more, at least 64 stacks.
        want_stacks += want_stacks / 8 + 64;
        want_frames += want_frames / 8 + 64 * max_capture;
        if (want_stacks > t->max_stacks) want_stacks = t->max_stacks;
        if (want_frames > t->frames_cap) want_frames = t->frames_cap;
        stacks.reserve(want_stacks);
        out.frames.reserve(want_frames);
        table_guard g(g_profiler.lock);
        if (attempt < 3 && (t->stack_count > want_stacks || t->frames_used > want_frames)) continue;
        std::size_t n = t->stack_count < want_stacks ? t->stack_count : want_stacks;
        while (n != 0 && t->stacks[n - 1].frames_at + t->stacks[n - 1].depth > want_frames) --n;
        const std::size_t nf = n == 0 ? 0 : t->stacks[n - 1].frames_at + t->stacks[n - 1].depth;
        stacks.assign(t->stacks, t->stacks + n);
        out.frames.assign(t->frames, t->frames + nf);
        out.stats.running = g_profiler.running.load(std::memory_order_relaxed);
        out.stats.sample_interval = t->interval;
        out.stats.samples = t->samples;
        out.stats.dropped_samples = t->dropped;
        for (std::size_t k = n; k < t->stack_count; ++k)
            out.stats.dropped_samples += static_cast<std::uint64_t>(t->stacks[k].alloc_objects);
        out.stats.reentrant_events = g_reentrant_events.load(std::memory_order_relaxed);
        out.stats.live_samples = t->live_count;
        out.stats.stacks = t->stack_count;
        out.stats.max_live_samples = t->max_live;
        out.stats.max_stacks = t->max_stacks;
        break;
    }
    out.time_nanos = static_cast<std::int64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count());
    out.modules = list_loaded_modules();

    // Remove memdiag's leading frames (decided once per address), cap the depth,
    // merge stacks that became equal.
    snapshot::pprof_impl::address_map verdict;  // address -> 1 allocator frame, 2 program frame
    const std::size_t cap = pow2_at_least(2 * stacks.size() + 2);
    internal_vector<std::uint32_t> merged(cap, 0);  // slot -> sample index + 1
    internal_vector<std::uint64_t> merged_hash;
    out.samples.reserve(stacks.size());
    for (const stack_entry& e : stacks) {
        if (e.alloc_objects == 0) continue;
        const std::uintptr_t* f = out.frames.data() + e.frames_at;
        std::size_t begin = 0;
        while (begin < e.depth) {
            const std::uintptr_t address = f[begin] - 1;  // the call site
            std::uint32_t v = verdict.find(address);
            if (v == 0) {
                const internal_string name = out.names.function_name(address);
                v = is_allocator_frame(name.data(), name.size()) ? 1 : 2;
                verdict.insert(address, v);
            }
            if (v == 2) break;
            ++begin;
        }
        std::size_t depth = e.depth - begin;
        if (depth > t->max_depth) depth = t->max_depth;
        const std::uint64_t h = frames_hash(f + begin, depth);
        std::size_t i = static_cast<std::size_t>(h) & (cap - 1);
        for (; merged[i] != 0; i = (i + 1) & (cap - 1)) {
            snapshot::heap_sample& s = out.samples[merged[i] - 1];
            if (merged_hash[merged[i] - 1] == h && s.depth == depth &&
                (depth == 0 || std::memcmp(s.stack, f + begin, depth * sizeof(std::uintptr_t)) == 0))
                break;
        }
        if (merged[i] != 0) {
            snapshot::heap_sample& s = out.samples[merged[i] - 1];
            s.alloc_objects += e.alloc_objects;
            s.alloc_bytes += e.alloc_bytes;
            s.inuse_objects += e.inuse_objects;
            s.inuse_bytes += e.inuse_bytes;
            continue;
        }
        out.samples.push_back(snapshot::heap_sample{f + begin, depth, e.alloc_objects, e.alloc_bytes,
                                                    e.inuse_objects, e.inuse_bytes});
        merged_hash.push_back(h);
        merged[i] = static_cast<std::uint32_t>(out.samples.size());
    }
    return true;
}

/// Encodes and writes a snapshot as a gzipped pprof profile.
inline result write_snapshot_file(const char* path) noexcept {
#if MEMDIAG_ENABLED
    if (path == nullptr || path[0] == '\0') return result::failure("cannot write heap profile: empty path");
    internal_section quiet;
#if MEMDIAG_HAS_EXCEPTIONS
    try {
#endif
        snapshot_data snap;
        if (!take_snapshot(snap))
            return result::failuref("cannot write '%s': the heap profiler was never started", path);
        internal_vector<unsigned char> bytes;
        snapshot::encode_pprof(snap.view(), bytes, snap.modules, &snap.names);
        return snapshot::write_text_file(path, reinterpret_cast<const char*>(bytes.data()), bytes.size());
#if MEMDIAG_HAS_EXCEPTIONS
    } catch (const std::bad_alloc&) {
        return result::failuref("cannot write '%s': out of memory while encoding the heap profile", path);
    }
#endif
#else
    (void)path;
    return result::failure("heap profiling is disabled (MEMDIAG_DISABLE)");
#endif
}

inline long current_pid() noexcept {
#if MEMDIAG_POSIX
    return static_cast<long>(::getpid());
#elif MEMDIAG_OS_WINDOWS
    return static_cast<long>(::_getpid());
#else
    return 0;
#endif
}

/// Writes a heap snapshot because something failed (`reason`: "budget 'x'
/// exceeded", "operator new of N bytes failed"): to the configured dump path
/// (heap_profiler::set_dump_path / profile_options::dump_on_bad_alloc), else
/// to $MEMDIAG_DUMP_DIR/memdiag-heap-<pid>-<n>.pb.gz, and prints one line to
/// stderr saying where. Does nothing (returns a failure) when neither is set
/// or the profiler never started. Never allocates through the observed heap,
/// never throws; concurrent calls write once. Budget layers call this on a
/// breach; the global hook's out_of_memory handler calls it too.
inline result dump_heap_on_failure(const char* reason) noexcept {
#if MEMDIAG_ENABLED
    if (reason == nullptr) reason = "failure";
    if (g_profiler.current.load(std::memory_order_acquire) == nullptr)
        return result::failure("no heap snapshot: the heap profiler was never started");
    char path[1100];
    {
        spin_guard g(g_profiler.control);
        std::snprintf(path, sizeof path, "%s", g_profiler.dump_path);
    }
    if (path[0] == '\0') {
        const char* dir = std::getenv("MEMDIAG_DUMP_DIR");
        if (dir == nullptr || dir[0] == '\0')
            return result::failure("no heap snapshot: no dump path set and MEMDIAG_DUMP_DIR is unset");
        const unsigned n = g_profiler.dump_serial.fetch_add(1, std::memory_order_relaxed) + 1;
        const int len = std::snprintf(path, sizeof path, "%s/memdiag-heap-%ld-%u.pb.gz", dir, current_pid(), n);
        if (len < 0 || static_cast<std::size_t>(len) >= sizeof path)
            return result::failure("no heap snapshot: MEMDIAG_DUMP_DIR is too long");
    }
    if (g_profiler.dumping.exchange(true, std::memory_order_acquire))
        return result::failure("no heap snapshot: another one is being written");
    // Memory may be exhausted: give the writer the reserve set aside.
    drop_reserve(g_profiler.reserve.exchange(nullptr));
    const result res = write_snapshot_file(path);
    g_profiler.dumping.store(false, std::memory_order_release);
    // Set it aside again for the next failure, if the program freed memory.
    resize_reserve(g_profiler.current.load(std::memory_order_acquire));
    if (res) std::fprintf(stderr, "memdiag: %s: heap snapshot written to %s\n", reason, path);
    else std::fprintf(stderr, "memdiag: %s: heap snapshot failed: %s\n", reason, res.message());
    return res;
#else
    (void)reason;
    return result::failure("heap profiling is disabled (MEMDIAG_DISABLE)");
#endif
}

/// out_of_memory handler: the global hook is about to throw std::bad_alloc.
inline void on_out_of_memory(std::size_t size) noexcept {
    if (!g_profiler.running.load(std::memory_order_relaxed)) return;
    bool configured;
    {
        spin_guard g(g_profiler.control);
        configured = g_profiler.dump_path[0] != '\0';
    }
    if (!configured && std::getenv("MEMDIAG_DUMP_DIR") == nullptr) return;
    char reason[96];
    std::snprintf(reason, sizeof reason, "std::bad_alloc: operator new of %zu bytes failed", size);
    dump_heap_on_failure(reason);
}

/// breach_dump handler: a budget with dump_on_breach() was breached.
inline void on_breach_dump(const char* reason) noexcept {
    if (g_profiler.running.load(std::memory_order_relaxed)) dump_heap_on_failure(reason);
}

/// Sets aside the reserve when a dump destination is known. control held.
inline void update_reserve() noexcept {
    const bool want = g_profiler.dump_path[0] != '\0' || std::getenv("MEMDIAG_DUMP_DIR") != nullptr ||
                      g_profiler.signal_dump.load(std::memory_order_relaxed);
    g_profiler.reserve_wanted.store(want, std::memory_order_release);
    if (want) {
        resize_reserve(g_profiler.current.load(std::memory_order_acquire));
    } else {
        // No destination left: give the address space back, stop resizing.
        g_profiler.reserve_stacks.store(~std::size_t{0}, std::memory_order_relaxed);
        g_profiler.reserve_frames.store(~std::size_t{0}, std::memory_order_relaxed);
        drop_reserve(g_profiler.reserve.exchange(nullptr, std::memory_order_acq_rel));
    }
}

/// fatal_signal.hpp's view of the profiler; these run in a signal handler.
inline bool signal_tables_lockable() noexcept {
    for (int i = 0; i < 200; ++i) {  // 200 x 1 ms
        if (g_profiler.lock.try_lock()) {
            g_profiler.lock.unlock();
            return true;
        }
#if MEMDIAG_POSIX
        struct timespec ms = {0, 1000000};
        ::nanosleep(&ms, nullptr);
#endif
    }
    return false;
}
inline bool signal_begin_dump() noexcept { return !g_profiler.dumping.exchange(true, std::memory_order_acquire); }
inline void signal_end_dump() noexcept { g_profiler.dumping.store(false, std::memory_order_release); }
inline void* signal_take_reserve(std::size_t* size) noexcept {
    void* r = g_profiler.reserve.exchange(nullptr, std::memory_order_acq_rel);
    if (r == nullptr) {
        // Spent on an earlier dump: map one now (mmap does not take malloc's locks).
        tables* t = g_profiler.current.load(std::memory_order_acquire);
        const std::size_t need =
            t == nullptr ? writer_bytes_for(reserve_min_stacks, 0) : writer_bytes_for(t->stack_count, t->frames_used);
        r = map_reserve(need);
        if (r == nullptr) return nullptr;
        *static_cast<std::size_t*>(r) = need;
    }
    *size = *static_cast<std::size_t*>(r);
    return r;
}
inline fatal::hooks signal_hooks() noexcept {
    fatal::hooks h;
    h.tables_lockable = &signal_tables_lockable;
    h.begin_dump = &signal_begin_dump;
    h.end_dump = &signal_end_dump;
    h.take_reserve = &signal_take_reserve;
    h.write = &write_snapshot_file;
    return h;
}

/// The text report of a snapshot plus the profiler's own figures.
inline internal_string report_text(snapshot_data& snap, std::size_t top) {
    internal_string text = snapshot::text_report_with(snap.view(), top, snap.modules, &snap.names);
    char line[320];
    const heap_profile_stats& st = snap.stats;
    int n = std::snprintf(line, sizeof line,
                          "  profiler: %s, %llu samples recorded, %llu live, %llu stacks, "
                          "dropped_samples: %llu%s%s\n",
                          st.running ? "running" : "stopped", static_cast<unsigned long long>(st.samples),
                          static_cast<unsigned long long>(st.live_samples),
                          static_cast<unsigned long long>(st.stacks),
                          static_cast<unsigned long long>(st.dropped_samples),
                          st.dropped_samples != 0 ? " (tables full: raise max_live_samples / max_stacks; "
                                                    "figures undercount)"
                                                  : "",
                          st.reentrant_events != 0 ? "; events inside a memdiag lock (signal handlers) not sampled"
                                                   : "");
    if (n < 0) n = 0;
    if (static_cast<std::size_t>(n) >= sizeof line) n = static_cast<int>(sizeof line - 1);
    // After the header, before the first "top" list.
    std::size_t at = text.find("\ntop ");
    if (at == internal_string::npos) at = text.size();
    else at += 1;
    text.insert(at, line, static_cast<std::size_t>(n));
    return text;
}

}  // namespace heapprof

/// See heapprof::dump_heap_on_failure.
inline result dump_heap_on_failure(const char* reason) noexcept { return heapprof::dump_heap_on_failure(reason); }

}  // namespace detail

/// The process's heap profiler (one per process; all members static).
class heap_profiler {
public:
    /// Starts (or restarts, discarding what was recorded) sampling every
    /// thread's allocations with the given options. Fails only when the tables
    /// cannot be allocated. Thread-safe.
    static result start(const profile_options& options = profile_options{}) noexcept {
#if MEMDIAG_ENABLED
        const result r = start_tables(options);
        if (!r) return r;
        arm_watermarks(options);
        return r;
#else
        (void)options;
        return result::success();
#endif
    }

private:
    /// Watermarks (watermark.hpp), after start_tables released its lock:
    /// reading the limit reads files and allocates. A bad configuration is
    /// reported on stderr and leaves the profiler running without them.
    static void arm_watermarks(const profile_options& options) noexcept {
#if MEMDIAG_ENABLED && MEMDIAG_HAS_EXCEPTIONS
        try {
#endif
#if MEMDIAG_ENABLED
            detail::watermark::request req;
            req.fractions = options.dump_at_fractions();
            req.count = options.dump_at_fractions_count();
            req.limit = options.dump_limit();
            req.dir = options.dump_dir();
            req.write = &detail::heapprof::write_snapshot_file;
            const result r = detail::watermark::arm(req);
            if (!r) std::fprintf(stderr, "%s\n", r.message());
            arm_signal_from_env();
#else
        (void)options;
#endif
#if MEMDIAG_ENABLED && MEMDIAG_HAS_EXCEPTIONS
        } catch (const std::bad_alloc&) {
            std::fprintf(stderr, "memdiag: out of memory while setting up watermark snapshots; they are off\n");
        }
#endif
    }

    /// MEMDIAG_DUMP_ON_SIGNAL=1: dump_on_fatal_signal($MEMDIAG_DUMP_DIR/heap.<pid>.signal.pb.gz).
    static void arm_signal_from_env() noexcept {
#if MEMDIAG_ENABLED
        const char* v = std::getenv("MEMDIAG_DUMP_ON_SIGNAL");
        if (v == nullptr || std::strcmp(v, "0") == 0 || v[0] == '\0') return;
        if (std::strcmp(v, "1") != 0) {
            std::fprintf(stderr, "memdiag: MEMDIAG_DUMP_ON_SIGNAL=\"%.100s\": want 1 or 0; fatal-signal snapshots are off\n", v);
            return;
        }
        const char* dir = std::getenv("MEMDIAG_DUMP_DIR");
        if (dir == nullptr || dir[0] == '\0') {
            std::fprintf(stderr, "memdiag: MEMDIAG_DUMP_ON_SIGNAL=1 needs MEMDIAG_DUMP_DIR; fatal-signal snapshots are off\n");
            return;
        }
        char path[1024];
        const int n = std::snprintf(path, sizeof path, "%s/heap.%ld.signal.pb.gz", dir, detail::heapprof::current_pid());
        if (n < 0 || static_cast<std::size_t>(n) >= sizeof path) {
            std::fprintf(stderr, "memdiag: MEMDIAG_DUMP_DIR is too long; fatal-signal snapshots are off\n");
            return;
        }
        const result r = dump_on_fatal_signal(path);
        if (!r) std::fprintf(stderr, "%s\n", r.message());
#endif
    }

    static result start_tables(const profile_options& options) noexcept {
#if MEMDIAG_ENABLED
        using namespace detail;
        using namespace detail::heapprof;
        const std::uint64_t interval =
            options.sample_interval() != 0 ? options.sample_interval() : sample_interval_from_env();
        join_fork_handling(fork_layer_profiler, &profiler_fork_participant);
        spin_guard c(g_profiler.control);
        g_registry.global_slow.fetch_and(~(slow_profiler | (epoch_mask << slow_epoch_shift)));
        g_profiler.running.store(false);
        tables* t = g_profiler.current.load(std::memory_order_acquire);
        if (t != nullptr && t->same_shape(options.max_depth(), options.max_live_samples(), options.max_stacks())) {
            table_guard g(g_profiler.lock);
            t->clear();
            t->interval = interval;
        } else {
            // Retired tables are never freed (a thread may still hold one), so
            // one of the same shape is reused: restarts with alternating
            // options keep one table per shape, not one per restart.
            tables* fresh = nullptr;
            for (tables** r = &g_profiler.retired; *r != nullptr; r = &(*r)->retired_next) {
                if ((*r)->same_shape(options.max_depth(), options.max_live_samples(), options.max_stacks())) {
                    fresh = *r;
                    *r = fresh->retired_next;
                    fresh->retired_next = nullptr;
                    table_guard g(g_profiler.lock);  // a late free or sample may still touch it
                    fresh->clear();
                    break;
                }
            }
            if (fresh == nullptr) {
                void* mem = internal_malloc(sizeof(tables));
                if (mem == nullptr) return result::failure("cannot start the heap profiler: out of memory");
                fresh = new (mem) tables();
                if (!fresh->allocate(options.max_depth(), options.max_live_samples(), options.max_stacks())) {
                    internal_free(mem);
                    return result::failure("cannot start the heap profiler: out of memory for its tables");
                }
            }
            fresh->interval = interval;
            if (t != nullptr) {
                t->retired_next = g_profiler.retired;  // a free may still be reading it
                g_profiler.retired = t;
            }
            g_profiler.current.store(fresh, std::memory_order_release);
        }
        if (const char* p = options.dump_on_bad_alloc(); p != nullptr && p[0] != '\0')
            std::snprintf(g_profiler.dump_path, sizeof g_profiler.dump_path, "%s", p);
        update_reserve();
        g_profiler.interval.store(interval, std::memory_order_relaxed);
        // A new run number: every thread redraws its countdown with this interval.
        unsigned epoch = (g_profiler.epoch + 1) & epoch_mask;
        if (epoch == 0) epoch = 1;
        g_profiler.epoch = epoch;
        g_handlers.profile_allocated.store(&on_allocated, std::memory_order_release);
        g_handlers.profile_freed.store(&on_freed, std::memory_order_release);
        g_handlers.out_of_memory.store(&on_out_of_memory, std::memory_order_release);
        g_handlers.breach_dump.store(&on_breach_dump, std::memory_order_release);
        g_profiler.running.store(true);
        g_registry.global_slow.fetch_or(slow_profiler | (epoch << slow_epoch_shift));
        return result::success();
#else
        (void)options;
        return result::success();
#endif
    }

public:
    /// Stops sampling (and watermark snapshots). What was recorded stays
    /// available to the writers until the next start(); frees after stop()
    /// are no longer seen.
    static void stop() noexcept {
#if MEMDIAG_ENABLED
        using namespace detail;
        watermark::disarm();
        spin_guard c(heapprof::g_profiler.control);
        g_registry.global_slow.fetch_and(~(slow_profiler | (heapprof::epoch_mask << slow_epoch_shift)));
        detail::heapprof::g_profiler.running.store(false);
#endif
    }

    /// True between start() and stop().
    static bool running() noexcept {
#if MEMDIAG_ENABLED
        return detail::heapprof::g_profiler.running.load(std::memory_order_relaxed);
#else
        return false;
#endif
    }

    /// Where a snapshot goes when the global operator new is about to throw
    /// std::bad_alloc or a budget layer calls detail::dump_heap_on_failure
    /// (copied; nullptr or "" clears it, then $MEMDIAG_DUMP_DIR is used if set).
    static void set_dump_path(const char* path) noexcept {
#if MEMDIAG_ENABLED
        using detail::heapprof::g_profiler;
        detail::spin_guard c(g_profiler.control);
        std::snprintf(g_profiler.dump_path, sizeof g_profiler.dump_path, "%s", path != nullptr ? path : "");
        if (g_profiler.running.load()) detail::heapprof::update_reserve();
#else
        (void)path;
#endif
    }

    /// Writes a snapshot to `path` when the program crashes (SIGSEGV, SIGBUS,
    /// SIGILL, SIGFPE, SIGABRT), then lets the previous handler or the default
    /// action proceed (fatal_signal.hpp). Installs the handlers and the calling
    /// thread's alternate signal stack, and keeps the emergency reserve the
    /// handler writes with. nullptr or "" removes the handlers. Fails (as a
    /// value) when the handlers cannot be installed. Not signal-safe.
    static result dump_on_fatal_signal(const char* path) noexcept {
#if MEMDIAG_ENABLED
        using detail::heapprof::g_profiler;
        const bool on = path != nullptr && path[0] != '\0';
        const result r = detail::fatal::install(path, detail::heapprof::signal_hooks());
        detail::spin_guard c(g_profiler.control);
        g_profiler.signal_dump.store(on && r, std::memory_order_relaxed);
        detail::heapprof::update_reserve();
        return r;
#else
        (void)path;
        return result::success();
#endif
    }

    /// The mean sampling interval of the current (or last) run; 0 before any.
    static std::uint64_t sample_interval() noexcept {
#if MEMDIAG_ENABLED
        auto* t = detail::heapprof::g_profiler.current.load(std::memory_order_acquire);
        return t != nullptr ? t->interval : 0;
#else
        return 0;
#endif
    }

    /// The profiler's own figures: samples recorded, dropped, live, stacks.
    static heap_profile_stats stats() noexcept {
        heap_profile_stats st;
#if MEMDIAG_ENABLED
        using detail::heapprof::g_profiler;
        detail::heapprof::tables* t = g_profiler.current.load(std::memory_order_acquire);
        st.running = g_profiler.running.load(std::memory_order_relaxed);
        if (t == nullptr) return st;
        detail::heapprof::table_guard g(g_profiler.lock);
        st.sample_interval = t->interval;
        st.samples = t->samples;
        st.dropped_samples = t->dropped;
        st.reentrant_events = detail::g_reentrant_events.load(std::memory_order_relaxed);
        st.live_samples = t->live_count;
        st.stacks = t->stack_count;
        st.max_live_samples = t->max_live;
        st.max_stacks = t->max_stacks;
#endif
        return st;
    }
};

/// Writes the recorded heap as a gzipped pprof profile (`go tool pprof FILE`):
/// sample types alloc_objects, alloc_space, inuse_objects, inuse_space (the
/// default), scaled estimates, function names included. The file is created
/// 0600, never through a symlink, via a temporary name and rename. Works while
/// running or after stop(); fails (as a value) before any start() or on IO errors.
inline result write_heap_profile(const char* path) noexcept { return detail::heapprof::write_snapshot_file(path); }

/// Text report: totals, the profiler's own figures (dropped_samples among
/// them), then the top `top` sites by in-use bytes and by allocated bytes,
/// symbolized. Empty before any start().
inline std::string heap_report(std::size_t top = 10) {
#if MEMDIAG_ENABLED
    detail::internal_string text;
    {
        detail::internal_section quiet;  // listing objects and symbolizing may call malloc
        detail::heapprof::snapshot_data snap;
        if (!detail::heapprof::take_snapshot(snap)) return std::string();
        text = detail::heapprof::report_text(snap, top);
    }
    return std::string(text.data(), text.size());
#else
    (void)top;
    return std::string();
#endif
}

/// The recorded in-use bytes as collapsed stacks ("root;...;leaf bytes" per
/// line) for flamegraph.pl, speedscope or inferno. Empty before any start().
inline std::string collapsed_heap_stacks() {
#if MEMDIAG_ENABLED
    detail::internal_string text;
    {
        detail::internal_section quiet;  // listing objects and symbolizing may call malloc
        detail::heapprof::snapshot_data snap;
        if (!detail::heapprof::take_snapshot(snap)) return std::string();
        text = snapshot::collapsed_stacks_with(snap.view(), snap.modules, &snap.names);
    }
    return std::string(text.data(), text.size());
#else
    return std::string();
#endif
}

}  // namespace memdiag
