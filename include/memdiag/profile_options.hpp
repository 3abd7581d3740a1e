// memdiag/profile_options.hpp - the heap profiler's settings (profile_options)
// and its own figures (heap_profile_stats). Part of heap_profile.hpp, which
// includes it; see that file for what the profiler records and costs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>

#include "sampler.hpp"

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
    /// At most this many sampled allocations live at once; 0 (the default):
    /// no count limit, the live table grows until max_table_bytes. Else at least 16.
    profile_options& max_live_samples(std::size_t n) noexcept {
        live_ = n == 0 ? 0 : n < 16 ? 16 : n > (std::size_t{1} << 28) ? (std::size_t{1} << 28) : n;
        return *this;
    }
    /// At most this many distinct stacks; 0 (the default): no count limit
    /// (up to 16,777,216, and max_table_bytes). Else at least 16.
    profile_options& max_stacks(std::size_t n) noexcept {
        stacks_ = n == 0 ? 0 : n < 16 ? 16 : n > (std::size_t{1} << 24) ? (std::size_t{1} << 24) : n;
        return *this;
    }
    /// Cap on the memory of the profiler's tables, in bytes (default 1 GiB on
    /// 64-bit targets, 256 MiB on 32-bit; at least 1 MiB). The tables start
    /// at about 330 KiB and grow on demand; only a sample that would take
    /// them past the cap (or past a count limit above) is dropped, and
    /// dropped samples are reported (heap_profile_stats::dropped_samples, the
    /// first line of heap_report, a comment in the pprof file). Cost per live
    /// sample and per stack: see heap_profile.hpp.
    profile_options& max_table_bytes(std::size_t bytes) noexcept {
        bytes_ = bytes < (std::size_t{1} << 20) ? (std::size_t{1} << 20) : bytes;
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
    std::size_t max_live_samples() const noexcept { return live_; }        ///< 0: no count limit
    std::size_t max_stacks() const noexcept { return stacks_; }            ///< 0: no count limit
    std::size_t max_table_bytes() const noexcept { return bytes_; }        ///< cap on the tables' memory
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
    std::size_t live_ = 0;
    std::size_t stacks_ = 0;
    std::size_t bytes_ = sizeof(void*) >= 8 ? std::size_t{1} << 30 : std::size_t{1} << 28;
    const char* dump_path_ = nullptr;
};

/// Figures about the profiler itself (not about the program's heap).
struct heap_profile_stats {
    bool running = false;              ///< between start() and stop()
    std::uint64_t sample_interval = 0; ///< mean bytes between samples of the current tables
    std::uint64_t samples = 0;         ///< allocations recorded since start()
    /// Samples lost because the tables reached max_table_bytes or a count
    /// limit (or their memory was refused): the figures undercount by these.
    std::uint64_t dropped_samples = 0;
    /// Allocations and frees made while their thread held a memdiag lock (a
    /// signal handler interrupting memdiag): counted by the trackers, but not
    /// sampled, and a sampled block freed there stays in use in the profile.
    std::uint64_t reentrant_events = 0;
    std::uint64_t live_samples = 0;    ///< recorded allocations not yet freed
    std::uint64_t stacks = 0;          ///< distinct stacks recorded
    std::size_t max_live_samples = 0;  ///< count limit on live samples; 0: none
    std::size_t max_stacks = 0;        ///< count limit on stacks; 0: none
    std::size_t table_bytes = 0;       ///< memory the tables take now
    std::size_t max_table_bytes = 0;   ///< their cap (profile_options::max_table_bytes)
};
}  // namespace memdiag
