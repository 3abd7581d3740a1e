// memdiag/detail/heap_snapshot.hpp - taking a heap snapshot (the tables
// copied under their lock, memdiag's frames trimmed, equal stacks merged) and
// the paths that write one: write_heap_profile, the dump on an allocation
// failure or budget breach, the fatal-signal hooks, the text report. Part of
// heap_profile.hpp.
#pragma once

/// Defined while this header is part of the unit: tests/compile/separate_impl_main.cpp
/// checks that heap_profile.hpp leaves it out under MEMDIAG_SEPARATE_IMPLEMENTATION.
#define MEMDIAG_DETAIL_HEAP_SNAPSHOT_INCLUDED 1

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "../config.hpp"
#include "../fatal_signal.hpp"
#include "../profile_options.hpp"
#include "../result.hpp"
#include "../snapshot/pprof.hpp"
#include "../snapshot/report.hpp"
#include "emergency_reserve.hpp"
#include "frame_filter.hpp"
#include "heap_sampling.hpp"
#include "heap_tables.hpp"
#include "internal_alloc.hpp"
#include "internal_vector.hpp"
#include "internal_section.hpp"
#include "symbols.hpp"

#if MEMDIAG_POSIX
#include <unistd.h>
#elif MEMDIAG_OS_WINDOWS
#include <process.h>
#endif

namespace memdiag {
namespace detail {
namespace heapprof {

/// A copy of the tables, trimmed and merged, ready for the writers.
struct snapshot_data {
    internal_vector<std::uintptr_t> frames;
    internal_vector<snapshot::heap_sample> samples;
    module_list modules;
    symbolizer names;
    heap_profile_stats stats;
    std::int64_t time_nanos = 0;

    snapshot::heap_view view() const noexcept {
        return snapshot::heap_view{samples.data(), samples.size(), stats.sample_interval, time_nanos,
                                  stats.dropped_samples};
    }
};

/// True for frames of the allocation machinery, by the rule budget reports
/// use too (detail/frame_filter.hpp). Leading runs of these are removed from stacks.
inline bool is_allocator_frame(const char* name, std::size_t n) noexcept {
    return detail::is_allocation_frame(name, n);
}

/// A stack as a snapshot copies it: where its frames are, and its figures.
struct stack_row {
    std::uint32_t frames_at;
    std::uint16_t depth;
    std::int64_t alloc_objects, alloc_bytes, inuse_objects, inuse_bytes;
};

/// Holds the stack lock and then every live shard's lock (in index order):
/// the whole tables stand still, so the copy is consistent across shards.
class all_tables_guard {
public:
    explicit all_tables_guard(tables& t) noexcept : stacks_(g_profiler.lock), t_(t) { t_.lock_shards(); }
    ~all_tables_guard() { t_.unlock_shards(); }
    all_tables_guard(const all_tables_guard&) = delete;
    all_tables_guard& operator=(const all_tables_guard&) = delete;

private:
    table_guard stacks_;
    tables& t_;
};

/// Copies the tables and builds the trimmed, merged samples. False when the
/// profiler never started. May throw std::bad_alloc (internal memory exhausted).
inline bool take_snapshot(snapshot_data& out) {
    internal_section quiet;
    tables* t = g_profiler.current.load(std::memory_order_acquire);
    if (t == nullptr) return false;
    internal_vector<stack_row> stacks;
    std::size_t max_depth = 0;
    // Copy under the locks, quickly; everything slow happens after. The copies
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
        stacks.reserve(want_stacks);
        out.frames.reserve(want_frames);
        all_tables_guard g(*t);
        t->fold_all();  // the threads' pending figures (stack caches), under the same locks as the live entries
        if (attempt < 3 && (t->stack_count > want_stacks || t->frames_used > want_frames)) continue;
        std::size_t n = t->stack_count < want_stacks ? t->stack_count : want_stacks;
        while (n != 0 && t->stacks[n - 1].frames_at + t->stacks[n - 1].depth > want_frames) --n;
        const std::size_t nf = n == 0 ? 0 : t->stacks[n - 1].frames_at + t->stacks[n - 1].depth;
        stacks.clear();
        for (std::size_t k = 0; k < n; ++k) {
            const stack_figures& fig = t->figures_of(static_cast<std::uint32_t>(k));
            stacks.push_back(stack_row{t->stacks[k].frames_at, t->stacks[k].depth,
                                       fig.alloc_objects.load(std::memory_order_relaxed),
                                       fig.alloc_bytes.load(std::memory_order_relaxed), 0, 0});
        }
        // In use: the live entries added up (samples of stacks past n are dropped below).
        t->for_each_live([&stacks, n](std::uint32_t id, std::size_t size) {
            if (id >= n) return;
            ++stacks[id].inuse_objects;
            stacks[id].inuse_bytes += static_cast<std::int64_t>(size);
        });
        out.frames.assign(t->frames, t->frames + nf);
        out.stats.running = g_profiler.running.load(std::memory_order_relaxed);
        out.stats.sample_interval = t->interval;
        out.stats.samples = t->samples_total();
        out.stats.dropped_samples = t->dropped_total();
        for (std::size_t k = n; k < t->stack_count; ++k)
            out.stats.dropped_samples += static_cast<std::uint64_t>(
                t->figures_of(static_cast<std::uint32_t>(k)).alloc_objects.load(std::memory_order_relaxed));
        out.stats.reentrant_events = g_reentrant_events.load(std::memory_order_relaxed);
        out.stats.live_samples = t->live_total();
        out.stats.stacks = t->stack_count;
        out.stats.max_live_samples = t->max_live;
        out.stats.max_stacks = t->max_stacks;
        out.stats.table_bytes = t->bytes();
        out.stats.max_table_bytes = t->max_bytes;
        max_depth = t->max_depth.load(std::memory_order_relaxed);
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
    for (const stack_row& e : stacks) {
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
        if (depth > max_depth) depth = max_depth;
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
    tables* t = g_profiler.current.load(std::memory_order_acquire);
    for (int i = 0; i < 200; ++i) {  // 200 x 1 ms
        if (g_profiler.lock.try_lock()) {
            const bool shards = t == nullptr || t->try_lock_shards();
            if (shards && t != nullptr) t->unlock_shards_untracked();
            g_profiler.lock.unlock();
            if (shards) return true;
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
                          "  profiler: %s, %llu samples recorded, %llu live, %llu stacks, tables %llu KiB "
                          "(cap %llu KiB), dropped_samples: %llu%s\n",
                          st.running ? "running" : "stopped", static_cast<unsigned long long>(st.samples),
                          static_cast<unsigned long long>(st.live_samples),
                          static_cast<unsigned long long>(st.stacks),
                          static_cast<unsigned long long>(st.table_bytes / 1024),
                          static_cast<unsigned long long>(st.max_table_bytes / 1024),
                          static_cast<unsigned long long>(st.dropped_samples),
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
}  // namespace memdiag
