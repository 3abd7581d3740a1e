// memdiag/detail/heap_profile_impl.hpp - the definitions of heap_profile.hpp's
// parts that symbolize, serialize or write: heap_profiler::start (tables,
// watermarks, fatal-signal arming), stop, set_dump_path, dump_on_fatal_signal,
// write_heap_profile, heap_report, collapsed_heap_stacks. Header-only,
// heap_profile.hpp includes this at its end; with MEMDIAG_SEPARATE_IMPLEMENTATION
// only memdiag/implementation.hpp does (config.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "../config.hpp"
#include "../fatal_signal.hpp"
#include "../heap_profile.hpp"
#include "../profile_options.hpp"
#include "../result.hpp"
#include "../watermark.hpp"
#include "heap_sampling.hpp"
#include "heap_snapshot.hpp"
#include "heap_tables.hpp"
#include "internal_section.hpp"
#include "thread_state.hpp"

namespace memdiag {

MEMDIAG_IMPL result heap_profiler::start(const profile_options& options) noexcept {
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

MEMDIAG_IMPL void heap_profiler::arm_watermarks(const profile_options& options) noexcept {
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

MEMDIAG_IMPL void heap_profiler::arm_signal_from_env() noexcept {
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

MEMDIAG_IMPL result heap_profiler::start_tables(const profile_options& options) noexcept {
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
    const std::size_t depth = options.max_depth(), live = options.max_live_samples(),
                      stacks = options.max_stacks(), bytes = options.max_table_bytes();
    if (t != nullptr) {
        // One set of tables for the process, reconfigured: a thread may
        // still hold a pointer to it, so it is never freed.
        table_guard g(g_profiler.lock);
        t->lock_shards();
        t->configure(depth, live, stacks, bytes);
        t->clear();
        t->interval = interval;
        t->unlock_shards();
    } else {
        // The shards are cache-line aligned; internal_malloc gives less.
        void* mem = internal_malloc(sizeof(tables) + alignof(tables));
        if (mem == nullptr) return result::failure("cannot start the heap profiler: out of memory");
        const std::uintptr_t at = (reinterpret_cast<std::uintptr_t>(mem) + alignof(tables) - 1) &
                                  ~static_cast<std::uintptr_t>(alignof(tables) - 1);
        tables* fresh = new (reinterpret_cast<void*>(at)) tables();
        if (!fresh->allocate()) {
            fresh->~tables();
            internal_free(mem);
            return result::failure("cannot start the heap profiler: out of memory for its tables");
        }
        fresh->configure(depth, live, stacks, bytes);
        fresh->interval = interval;
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

MEMDIAG_IMPL void heap_profiler::stop() noexcept {
#if MEMDIAG_ENABLED
    using namespace detail;
    watermark::disarm();
    spin_guard c(heapprof::g_profiler.control);
    g_registry.global_slow.fetch_and(~(slow_profiler | (heapprof::epoch_mask << slow_epoch_shift)));
    detail::heapprof::g_profiler.running.store(false);
#endif
}

MEMDIAG_IMPL void heap_profiler::set_dump_path(const char* path) noexcept {
#if MEMDIAG_ENABLED
    using detail::heapprof::g_profiler;
    detail::spin_guard c(g_profiler.control);
    std::snprintf(g_profiler.dump_path, sizeof g_profiler.dump_path, "%s", path != nullptr ? path : "");
    if (g_profiler.running.load()) detail::heapprof::update_reserve();
#else
    (void)path;
#endif
}

MEMDIAG_IMPL result heap_profiler::dump_on_fatal_signal(const char* path) noexcept {
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

MEMDIAG_IMPL result write_heap_profile(const char* path) noexcept { return detail::heapprof::write_snapshot_file(path); }

MEMDIAG_IMPL std::string heap_report(std::size_t top) {
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

MEMDIAG_IMPL std::string collapsed_heap_stacks() {
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
