// memdiag/watermark.hpp - heap snapshots written as the live heap approaches
// the memory limit, so something is left when the kernel's OOM killer strikes
// (SIGKILL: nothing in-process runs then).
//
//     heap_profiler::start(profile_options{}.dump_at_fractions({0.8, 0.9, 0.95}).dump_dir("/tmp/snaps"));
//     // or, with default options:  MEMDIAG_DUMP_AT=80%,90%,95% MEMDIAG_DUMP_DIR=/tmp/snaps ./program
//
// Each time the live heap first crosses a level, the profiler writes
// DIR/heap.<pid>.<percent>.pb.gz (atomically: temporary file + rename, so a
// kill during the write leaves the previous file intact); the highest percent
// on disk is the last state before death. A level re-arms once the live heap
// falls below 90% of its threshold (hysteresis, as set_soft_limit), and a new
// crossing replaces its file. When one step jumps over several levels only
// the highest is written. The thread whose allocation crossed writes the
// snapshot, inside that allocation: tens of milliseconds for 100k samples
// (bench/oom_snapshot_cost), once per level; other threads carry on.
//
// The limit. An explicit byte count (profile_options::dump_limit, or
// MEMDIAG_DUMP_LIMIT=64MiB), else env::collect().effective_limit(): the
// smallest of cgroup v2 memory.max, cgroup v1 memory.limit_in_bytes,
// RLIMIT_AS, RLIMIT_DATA, the job limit and physical memory.
//
// "Live heap" is the process tracker's live bytes (process_stats().live_bytes):
// the usable size of every block from the global hook (global_new.hpp;
// operator new, and malloc with MEMDIAG_REPLACE_MALLOC) not yet freed. Threads
// publish it every 64 KiB, so a crossing is seen within threads x 64 KiB.
// It is less than what the kernel counts against a cgroup (RSS plus page
// cache: code, stacks, allocator overhead and fragmentation, memory freed but
// kept by malloc, direct mmaps, memdiag's own tables) and than RLIMIT_AS
// (address space, including untouched reservations). So pick levels with room
// for the rest: in the 64 MiB cgroup of tests/oom_kill_check.sh the kernel
// kills at about 61 MiB of live heap, after the 95% snapshot (60.8 MiB).
//
// Bad configuration (MEMDIAG_DUMP_AT=abc, 150%, 0%; no directory; a missing or
// unwritable directory; an unknown limit; no global hook) prints one line on
// stderr at start() and leaves watermarks off; the program runs on. A good
// one prints one line saying where the snapshots will go.
#pragma once

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "config.hpp"
#include "env.hpp"
#include "global_new.hpp"
#include "result.hpp"
#include "tracker.hpp"

#if MEMDIAG_POSIX
#include <sys/stat.h>
#include <unistd.h>
#endif

namespace memdiag {
namespace detail {
namespace watermark {

/// Most levels one configuration can have.
inline constexpr std::size_t max_levels = 8;
/// A fired level re-arms below this fraction of its threshold.
inline constexpr double rearm_fraction = 0.9;

/// Writes the current heap profile to a path (heap_profile.hpp's writer).
using writer_fn = result (*)(const char* path) noexcept;

/// One level: its threshold in live bytes and whether it fired.
struct level {
    std::int64_t threshold = 0;
    std::int64_t rearm_below = 0;
    std::atomic<bool> fired{false};
    char label[16] = {};  ///< the percent in file names: "80", "99.5"
};

/// The armed configuration. Written by arm()/disarm() (under the profiler's
/// start/stop serialization), read by on_live.
struct state {
    level levels[max_levels];
    std::size_t count = 0;
    std::atomic<bool> busy{false};  ///< a thread is updating levels or writing
    std::atomic<writer_fn> write{nullptr};
    std::uint64_t limit = 0;
    char dir[1024] = {};
};
inline state g_state;

/// Parses "80%,90%,95%" (or fractions "0.8,0.9"): 1 to max_levels values in
/// (0%, 100%]. Returns an empty string and fills out/n, or why it is bad.
inline std::string parse_levels(const char* text, double* out, std::size_t& n) {
    n = 0;
    if (text == nullptr || text[0] == '\0') return "empty list";
    const char* p = text;
    for (;;) {
        while (*p == ' ') ++p;
        char* end = nullptr;
        errno = 0;
        double v = std::strtod(p, &end);
        if (end == p || errno != 0 || !std::isfinite(v))
            return std::string("\"") + std::string(p, std::strcspn(p, ",")) + "\" is not a percentage";
        const char* q = end;
        const bool percent = *q == '%';
        if (percent) ++q;
        while (*q == ' ') ++q;
        if (*q != ',' && *q != '\0')
            return std::string("\"") + std::string(p, std::strcspn(p, ",")) + "\" is not a percentage";
        const double f = percent ? v / 100.0 : v;
        if (!(f > 0.0 && f <= 1.0))
            return std::string("\"") + std::string(p, static_cast<std::size_t>(q - p)) +
                   "\" is outside (0%, 100%]";
        if (n == max_levels) return "more than " + std::to_string(max_levels) + " levels";
        out[n++] = f;
        if (*q == '\0') break;
        p = q + 1;
    }
    return std::string();
}

/// Moves the watch marks to the next unfired level up and the highest
/// re-arm mark of the fired ones. busy held.
inline void update_marks() noexcept {
    std::int64_t up = INT64_MAX, down = INT64_MIN;
    for (std::size_t i = 0; i < g_state.count; ++i) {
        const level& l = g_state.levels[i];
        if (l.fired.load(std::memory_order_relaxed)) down = l.rearm_below > down ? l.rearm_below : down;
        else up = l.threshold < up ? l.threshold : up;
    }
    g_live_watch.down.store(down, std::memory_order_relaxed);
    g_live_watch.up.store(up, std::memory_order_relaxed);
}

inline long pid() noexcept {
#if MEMDIAG_POSIX
    return static_cast<long>(::getpid());
#else
    return 0;
#endif
}

/// live_watch notify: fires the highest level crossed, re-arms fallen ones.
/// Runs on the allocating thread inside the allocation path; holds no lock
/// while writing (busy only makes concurrent crossers skip: the marks stay, so
/// their next publish checks again).
inline void on_live(std::int64_t live) noexcept {
    if (g_state.busy.exchange(true, std::memory_order_acquire)) return;
    std::size_t fire = max_levels;
    for (std::size_t i = 0; i < g_state.count; ++i) {
        level& l = g_state.levels[i];
        const bool fired = l.fired.load(std::memory_order_relaxed);
        if (!fired && live >= l.threshold) fire = i;
        else if (fired && live < l.rearm_below) l.fired.store(false, std::memory_order_relaxed);
    }
    if (fire != max_levels)
        for (std::size_t i = 0; i <= fire; ++i) g_state.levels[i].fired.store(true, std::memory_order_relaxed);
    update_marks();
    writer_fn write = g_state.write.load(std::memory_order_acquire);
    if (fire != max_levels && write != nullptr) {
        char path[1100];
        const int len = std::snprintf(path, sizeof path, "%s/heap.%ld.%s.pb.gz", g_state.dir, pid(),
                                      g_state.levels[fire].label);
        const double mib = static_cast<double>(live) / 1048576.0, lim = static_cast<double>(g_state.limit) / 1048576.0;
        if (len < 0 || static_cast<std::size_t>(len) >= sizeof path) {
            std::fprintf(stderr, "memdiag: live heap %.1f MiB crossed %s%% of %.1f MiB: no snapshot, path too long\n",
                         mib, g_state.levels[fire].label, lim);
        } else {
            const result r = write(path);
            if (r)
                std::fprintf(stderr, "memdiag: live heap %.1f MiB crossed %s%% of %.1f MiB: heap snapshot written to %s\n",
                             mib, g_state.levels[fire].label, lim, path);
            else
                std::fprintf(stderr, "memdiag: live heap %.1f MiB crossed %s%% of %.1f MiB: heap snapshot failed: %s\n",
                             mib, g_state.levels[fire].label, lim, r.message());
        }
    }
    g_state.busy.store(false, std::memory_order_release);
}

/// Turns watermarks off (heap_profiler::stop, or a new start without them).
inline void disarm() noexcept {
    g_live_watch.notify.store(nullptr, std::memory_order_release);
    g_live_watch.up.store(INT64_MAX, std::memory_order_relaxed);
    g_live_watch.down.store(INT64_MIN, std::memory_order_relaxed);
}

/// What a start() asked for; fractions empty: from MEMDIAG_DUMP_AT, if set.
struct request {
    const double* fractions = nullptr;
    std::size_t count = 0;
    std::uint64_t limit = 0;      ///< 0: MEMDIAG_DUMP_LIMIT, else the effective limit
    const char* dir = nullptr;    ///< nullptr: MEMDIAG_DUMP_DIR
    writer_fn write = nullptr;
};

/// The outcome of arm(): success, or why watermarks stay off (also printed).
inline result arm(const request& req) {
    disarm();
    // Wait out a writer still running from the previous configuration.
    while (g_state.busy.exchange(true, std::memory_order_acquire)) {
    }
    struct release_busy {
        ~release_busy() { g_state.busy.store(false, std::memory_order_release); }
    } release;
    g_state.count = 0;

    double f[max_levels];
    std::size_t n = 0;
    const char* from = "dump_at_fractions";
    if (req.count != 0) {
        if (req.count > max_levels)
            return result::failuref("memdiag: dump_at_fractions: more than %zu levels; watermark snapshots are off",
                                    max_levels);
        for (std::size_t i = 0; i < req.count; ++i) {
            f[n++] = req.fractions[i];
            if (!(req.fractions[i] > 0.0 && req.fractions[i] <= 1.0))
                return result::failuref("memdiag: dump_at_fractions: %g is outside (0, 1]; watermark snapshots "
                                        "are off",
                                        req.fractions[i]);
        }
    } else {
        const char* text = std::getenv("MEMDIAG_DUMP_AT");
        if (text == nullptr) return result::success();  // not asked for
        from = "MEMDIAG_DUMP_AT";
        const std::string why = parse_levels(text, f, n);
        if (!why.empty())
            return result::failuref("memdiag: MEMDIAG_DUMP_AT=\"%.200s\": %s (want e.g. 80%%,90%%,95%%); watermark "
                                    "snapshots are off",
                                    text, why.c_str());
    }
    // Ascending, duplicates dropped (insertion sort: at most 8 values).
    std::size_t kept = 0;
    for (std::size_t i = 0; i < n; ++i) {
        std::size_t j = kept;
        while (j > 0 && f[j - 1] > f[i]) --j;
        if (j > 0 && f[j - 1] == f[i]) continue;
        const double v = f[i];
        for (std::size_t k = kept; k > j; --k) f[k] = f[k - 1];
        f[j] = v;
        ++kept;
    }
    n = kept;

    const char* dir = req.dir != nullptr && req.dir[0] != '\0' ? req.dir : std::getenv("MEMDIAG_DUMP_DIR");
    if (dir == nullptr || dir[0] == '\0')
        return result::failuref("memdiag: %s needs a directory (MEMDIAG_DUMP_DIR or profile_options::dump_dir); "
                                "watermark snapshots are off",
                                from);
    if (std::strlen(dir) >= sizeof g_state.dir - 64)
        return result::failuref("memdiag: dump directory is too long; watermark snapshots are off");
#if MEMDIAG_POSIX
    struct stat st;
    if (::stat(dir, &st) != 0)
        return result::failuref("memdiag: dump directory '%s': %s; watermark snapshots are off", dir,
                                std::strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return result::failuref("memdiag: dump directory '%s' is not a directory; watermark snapshots are off", dir);
    if (::access(dir, W_OK | X_OK) != 0)
        return result::failuref("memdiag: dump directory '%s' is not writable: %s; watermark snapshots are off",
                                dir, std::strerror(errno));
#endif

    std::uint64_t limit = req.limit;
    std::string source = "dump_limit";
    if (limit == 0) {
        if (const char* text = std::getenv("MEMDIAG_DUMP_LIMIT"); text != nullptr && text[0] != '\0') {
            const auto v = env::parse_size(text);
            if (!v || v.value == 0)
                return result::failuref("memdiag: MEMDIAG_DUMP_LIMIT=\"%.100s\": %s; watermark snapshots are off", text,
                                        v ? "zero" : v.reason.c_str());
            limit = v.value;
            source = "MEMDIAG_DUMP_LIMIT";
        } else {
            const env::effective_limit_info e = env::collect().effective_limit();
            if (!e.value.known || e.value.value.unlimited || e.value.value.bytes == 0)
                return result::failuref("memdiag: %s: the memory limit is unknown (%s); set MEMDIAG_DUMP_LIMIT or "
                                        "profile_options::dump_limit; watermark snapshots are off",
                                        from, e.value.reason.c_str());
            limit = e.value.value.bytes;
            source = e.key + (e.value.source.empty() ? "" : ", " + e.value.source);
        }
    }
    if (!global_hook_installed())
        return result::failuref("memdiag: %s: the live heap is not counted without the global hook "
                                "(MEMDIAG_REPLACE_GLOBAL_NEW, global_new.hpp); watermark snapshots are off",
                                from);

    std::snprintf(g_state.dir, sizeof g_state.dir, "%s", dir);
    g_state.limit = limit;
    std::string list;
    for (std::size_t i = 0; i < n; ++i) {
        level& l = g_state.levels[i];
        const double pct = f[i] * 100.0;
        if (std::fabs(pct - std::round(pct)) < 1e-9) std::snprintf(l.label, sizeof l.label, "%.0f", pct);
        else std::snprintf(l.label, sizeof l.label, "%.1f", pct);
        const double t = f[i] * static_cast<double>(limit);
        l.threshold = t >= 9.2e18 ? INT64_MAX : static_cast<std::int64_t>(t);
        l.rearm_below = static_cast<std::int64_t>(static_cast<double>(l.threshold) * rearm_fraction);
        l.fired.store(false, std::memory_order_relaxed);
        list += (i ? ", " : "") + std::string(l.label) + "%";
    }
    g_state.count = n;
    g_state.write.store(req.write, std::memory_order_release);
    update_marks();
    g_live_watch.notify.store(&on_live, std::memory_order_release);
    std::fprintf(stderr, "memdiag: heap snapshots at %s of %s (%s) go to %s/heap.%ld.<percent>.pb.gz\n",
                 list.c_str(), env::format_bytes(limit).c_str(), source.c_str(), dir, pid());
    return result::success();
}

}  // namespace watermark
}  // namespace detail
}  // namespace memdiag
