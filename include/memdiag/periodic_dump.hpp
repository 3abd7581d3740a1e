// memdiag/periodic_dump.hpp - heap profiles written every N seconds, for
// machines without a scraper.
//
//     memdiag::heap_profiler::start();
//     memdiag::periodic_dump d = memdiag::dump_every(60, "/var/tmp/myapp", 24);
//     if (!d) std::fprintf(stderr, "%s\n", d.status().message());
//
// or `memdiag::dump_every_from_env()` with MEMDIAG_DUMP_EVERY=60s (units ms,
// s, m, h; a bare number is seconds), MEMDIAG_DUMP_DIR (default ".") and
// MEMDIAG_DUMP_KEEP (default 10).
//
// Every period one background thread writes
// `<dir>/heap.<pid>.<UTC time>.pb.gz` (e.g. heap.4242.20261201T125800.123Z.pb.gz;
// names sort by time) through memdiag::write_heap_profile: 0600, a temporary
// name then rename, so a reader never sees half a file. After each dump only
// the newest `keep` files of this process (same pid) are kept; other files in
// the directory are never touched. A failed dump prints one line to stderr
// and is counted (failures(), last_error()); the next period tries again.
// The thread's own work is inside an internal_section: not counted, not
// sampled. stop() (or the destructor) wakes and joins it. POSIX only.
#pragma once

#include <cstddef>
#include <cstdint>

#include "config.hpp"
#include "detail/background_handle.hpp"
#include "result.hpp"

namespace memdiag {
namespace detail {
namespace dumps {
struct dumper;  // detail/periodic_dump_impl.hpp
/// For background_handle::stop(): wakes the dumping thread, joins it (a dump in
/// progress is finished first), destroys and frees its state.
MEMDIAG_IMPL void destroy_worker(dumper* d) noexcept;
}  // namespace dumps
}  // namespace detail

/// A running periodic dump (or the reason there is none): running(), status()
/// and stop() (wakes the thread and joins it; a dump in progress is finished
/// first) are detail::background_handle's. Move-only; the destructor stops it.
/// Every operation is noexcept.
class periodic_dump : public detail::background_handle<detail::dumps::dumper> {
public:
    /// Dumps written so far.
    MEMDIAG_IMPL std::uint64_t dumps_written() const noexcept;
    /// Dumps that failed (each also printed to stderr).
    MEMDIAG_IMPL std::uint64_t dumps_failed() const noexcept;
    /// The newest dump's path ("" before the first), copied into buf.
    MEMDIAG_IMPL const char* last_path(char* buf, std::size_t size) const noexcept;
private:
    friend periodic_dump dump_every(double, const char*, unsigned) noexcept;
    friend periodic_dump dump_every_from_env() noexcept;
};

/// Writes the heap profile to `dir` every `seconds` (at least 0.001), keeping
/// the newest `keep` files of this process (at least 1). The directory must
/// exist. The heap profiler should be running; while it is not, each dump
/// fails and says so on stderr.
MEMDIAG_IMPL periodic_dump dump_every(double seconds, const char* dir, unsigned keep = 10) noexcept;

/// dump_every from the environment: MEMDIAG_DUMP_EVERY ("60s", "500ms",
/// "5m", "1h"), MEMDIAG_DUMP_DIR (default "."), MEMDIAG_DUMP_KEEP (default
/// 10). Not running, with a status saying so, when MEMDIAG_DUMP_EVERY is unset
/// or malformed.
MEMDIAG_IMPL periodic_dump dump_every_from_env() noexcept;

}  // namespace memdiag

// Header-only: the definitions (the thread, the heap profiler) come along; with
// MEMDIAG_SEPARATE_IMPLEMENTATION, memdiag/implementation.hpp has them.
#if MEMDIAG_HEADER_ONLY
#include "detail/periodic_dump_impl.hpp"
#endif
