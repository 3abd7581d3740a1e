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
// Memory. The tables start small (360 KiB: a live table of 16 shards of 256
// slots, room for 1024 stacks of 24 frames, the 64 KiB free filter) and grow on
// demand, from beneath the hooks (never the observed heap), until they would
// pass profile_options::max_table_bytes (default 1 GiB on 64-bit targets,
// 256 MiB on 32-bit). So exact mode (sample_interval(1)) with default options
// records every allocation of programs with tens of millions of live blocks.
// Cost on 64-bit targets (32-bit in brackets):
//   per live sampled allocation  a 16 [12] byte slot, each shard 3/8 to 3/4
//                                full: 21 to 43 [16 to 32] bytes
//   per distinct stack           32 bytes + 8 to 16 bytes of index + 8 [4]
//                                bytes per frame; the entry array, figures and
//                                frame arena double, so up to as much again is free
//   fixed                        the 64 KiB free filter
//   per thread that samples      its stack cache, 1.5 KiB [1.4 KiB] of TLS
//                                (recent stacks and their pending figures)
// While a live shard doubles, its old table is held too for the rehash. Only a
// sample that would take the tables past the cap (or past a count limit set
// with max_live_samples / max_stacks, or whose memory is refused) is dropped,
// counted in dropped_samples (heap_profiler::stats()); then the text report
// starts with "memdiag: N samples dropped, tables full ..." and the pprof file
// carries the same line as a comment (`go tool pprof -comments FILE`).
// Recorded samples keep being updated. start() reuses the one set of tables,
// cleared and shrunk back to their first sizes (never freed: a thread may
// still hold a pointer to them).
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
// (saturating 8-bit counters); only filter hits take a lock: the lock of the
// block's live shard (one of 16, by address). Recording a sample captures the
// stack (stack.hpp; build with -fno-omit-frame-pointer for the fast walk) and
// takes its shard's spinlock; the stack table's lock only for a stack the
// thread has not recorded lately. A snapshot holds every lock while it copies
// the stacks and adds up the live entries (about 0.1 s for 10 million).
// Nothing here allocates through the observed heap: tables come from
// internal_malloc, snapshots use internal containers inside an
// internal_section, so a snapshot can be written right after a budget breach
// or an allocation failure.
//
// Limits. Events of threads that have no memdiag thread state (while they are
// created or after they exit) are not sampled, and frees there are not seen;
// stop() freezes the tables (frees after it are not seen). The profiler's
// locks are held across fork. An allocation or free made while its thread
// holds a memdiag lock (a signal handler interrupting memdiag) is counted by
// its tracker but not sampled; heap_profile_stats::reentrant_events says how many.
#pragma once

// The parts, one concept each (this header includes them all):
//   profile_options.hpp         profile_options, heap_profile_stats
//   detail/heap_tables.hpp      the live/stack tables, the free filter, table_lock
//   detail/heap_sampling.hpp    process state, sampling and free handlers, the reserve
//   detail/heap_snapshot.hpp    snapshot taking, the writers and dump paths
//   detail/heap_profile_impl.hpp  the bodies of start/stop/dump paths and the writers
//   heap_profile.hpp            heap_profiler and the public writers (this file)
// With MEMDIAG_SEPARATE_IMPLEMENTATION (config.hpp) this header only declares
// what symbolizes, serializes or writes (the pprof writer, the report, the
// symbolizer, watermarks and fatal-signal handling stay out of the unit); the
// sampling hot path is inline either way.
#include <cstddef>
#include <cstdint>
#include <string>

#include "config.hpp"
#include "detail/heap_sampling.hpp"
#include "detail/heap_tables.hpp"
#include "detail/internal_section.hpp"
#include "detail/thread_state.hpp"
#include "profile_options.hpp"
#include "result.hpp"
#include "tracker.hpp"

namespace memdiag {

/// The process's heap profiler (one per process; all members static).
class heap_profiler {
public:
    /// Starts (or restarts, discarding what was recorded) sampling every
    /// thread's allocations with the given options. Fails only when the tables
    /// cannot be allocated. Thread-safe.
    MEMDIAG_IMPL static result start(const profile_options& options = profile_options{}) noexcept;

    /// Stops sampling (and watermark snapshots). What was recorded stays
    /// available to the writers until the next start(); frees after stop()
    /// are no longer seen.
    MEMDIAG_IMPL static void stop() noexcept;

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
    MEMDIAG_IMPL static void set_dump_path(const char* path) noexcept;

    /// Writes a snapshot to `path` when the program crashes (SIGSEGV, SIGBUS,
    /// SIGILL, SIGFPE, SIGABRT), then lets the previous handler or the default
    /// action proceed (fatal_signal.hpp). Installs the handlers and the calling
    /// thread's alternate signal stack, and keeps the emergency reserve the
    /// handler writes with. nullptr or "" removes the handlers. Fails (as a
    /// value) when the handlers cannot be installed. Not signal-safe.
    MEMDIAG_IMPL static result dump_on_fatal_signal(const char* path) noexcept;

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
        // The stack lock, then every shard's: figures consistent across shards.
        detail::heapprof::table_guard g(g_profiler.lock);
        t->lock_shards();
        st.sample_interval = t->interval;
        st.samples = t->samples_total();
        st.dropped_samples = t->dropped_total();
        st.reentrant_events = detail::g_reentrant_events.load(std::memory_order_relaxed);
        st.live_samples = t->live_total();
        st.stacks = t->stack_count;
        st.max_live_samples = t->max_live;
        st.max_stacks = t->max_stacks;
        st.table_bytes = t->bytes();
        st.max_table_bytes = t->max_bytes;
        t->unlock_shards();
#endif
        return st;
    }

private:
    /// Watermarks (watermark.hpp), after start_tables released its lock:
    /// reading the limit reads files and allocates. A bad configuration is
    /// reported on stderr and leaves the profiler running without them.
    MEMDIAG_IMPL static void arm_watermarks(const profile_options& options) noexcept;
    /// MEMDIAG_DUMP_ON_SIGNAL=1: dump_on_fatal_signal($MEMDIAG_DUMP_DIR/heap.<pid>.signal.pb.gz).
    MEMDIAG_IMPL static void arm_signal_from_env() noexcept;
    /// The tables (allocated or reset) and the handlers, under the control lock.
    MEMDIAG_IMPL static result start_tables(const profile_options& options) noexcept;
};

/// Writes the recorded heap as a gzipped pprof profile (`go tool pprof FILE`):
/// sample types alloc_objects, alloc_space, inuse_objects, inuse_space (the
/// default), scaled estimates, function names included. The file is created
/// 0600, never through a symlink, via a temporary name and rename. Works while
/// running or after stop(); fails (as a value) before any start() or on IO errors.
MEMDIAG_IMPL result write_heap_profile(const char* path) noexcept;

/// Text report: totals, the profiler's own figures (dropped_samples among
/// them), then the top `top` sites by in-use bytes and by allocated bytes,
/// symbolized. Empty before any start().
MEMDIAG_IMPL std::string heap_report(std::size_t top = 10);

/// The recorded in-use bytes as collapsed stacks ("root;...;leaf bytes" per
/// line) for flamegraph.pl, speedscope or inferno. Empty before any start().
MEMDIAG_IMPL std::string collapsed_heap_stacks();

}  // namespace memdiag

#if MEMDIAG_HEADER_ONLY
#include "detail/heap_profile_impl.hpp"
#endif
