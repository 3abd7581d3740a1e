// memdiag/stats.hpp - allocation_stats: what a tracker or a scope counted.
#pragma once

#include <cstdint>
#include <cstdio>
#include <iosfwd>  // not <ostream>: it is a fifth of the umbrella header's compile time
#include <string>

#include "config.hpp"

namespace memdiag {

/// Counts of allocation events and bytes, as seen by a tracker or a scope.
///
/// Counters only grow; `live_*` is what is still allocated (signed: a scope
/// that frees memory allocated before it started sees negative live figures).
/// Bytes are the sizes requested from the allocator, except for the global
/// hook, which counts the usable size the C allocator reserved (see global_new.hpp).
///
/// Exception safety: every operation is noexcept except to_string() (strong:
/// may throw std::bad_alloc, changes nothing) and operator<< (as the stream's
/// own insertion).
struct allocation_stats {
    std::uint64_t allocations = 0;      ///< successful allocations
    std::uint64_t deallocations = 0;    ///< deallocations
    std::uint64_t bytes_allocated = 0;  ///< total bytes of all allocations
    std::uint64_t bytes_freed = 0;      ///< total bytes of all deallocations
    std::int64_t live_bytes = 0;        ///< bytes_allocated - bytes_freed
    std::int64_t live_allocations = 0;  ///< allocations - deallocations
    std::uint64_t peak_live_bytes = 0;  ///< highest live_bytes seen (see tracker.hpp for its precision)

    /// Recomputes live_bytes and live_allocations from the four counters.
    constexpr allocation_stats& update_live() noexcept {
        live_bytes = static_cast<std::int64_t>(bytes_allocated - bytes_freed);
        live_allocations = static_cast<std::int64_t>(allocations - deallocations);
        return *this;
    }

    /// Sum of two disjoint sets of events (e.g. two trackers). The peak of a sum
    /// is not known from its parts; it is taken as the sum of the peaks (an upper bound).
    friend constexpr allocation_stats operator+(allocation_stats a, const allocation_stats& b) noexcept {
        a.allocations += b.allocations;
        a.deallocations += b.deallocations;
        a.bytes_allocated += b.bytes_allocated;
        a.bytes_freed += b.bytes_freed;
        a.peak_live_bytes += b.peak_live_bytes;
        return a.update_live();
    }

    /// Events between two readings of the same source (`after - before`). The
    /// peak becomes the growth of the peak over `before`'s live bytes (0 if none).
    friend constexpr allocation_stats operator-(allocation_stats after,
                                                const allocation_stats& before) noexcept {
        after.allocations -= before.allocations;
        after.deallocations -= before.deallocations;
        after.bytes_allocated -= before.bytes_allocated;
        after.bytes_freed -= before.bytes_freed;
        const std::int64_t base = before.live_bytes;
        const std::int64_t peak = static_cast<std::int64_t>(after.peak_live_bytes);
        after.peak_live_bytes = peak > base ? static_cast<std::uint64_t>(peak - base) : 0;
        return after.update_live();
    }

    /// Field-by-field equality.
    friend constexpr bool operator==(const allocation_stats& a, const allocation_stats& b) noexcept {
        return a.allocations == b.allocations && a.deallocations == b.deallocations &&
               a.bytes_allocated == b.bytes_allocated && a.bytes_freed == b.bytes_freed &&
               a.live_bytes == b.live_bytes && a.live_allocations == b.live_allocations &&
               a.peak_live_bytes == b.peak_live_bytes;
    }
    /// Field-by-field inequality.
    friend constexpr bool operator!=(const allocation_stats& a, const allocation_stats& b) noexcept {
        return !(a == b);
    }

    /// One line: "allocations=3 deallocations=1 bytes_allocated=96 ...".
    /// Writes into a caller buffer, so it works where allocating is not allowed.
    /// Returns the length snprintf reports.
    int format(char* buf, std::size_t size) const noexcept {
        return std::snprintf(buf, size,
                             "allocations=%llu deallocations=%llu bytes_allocated=%llu "
                             "bytes_freed=%llu live_bytes=%lld live_allocations=%lld "
                             "peak_live_bytes=%llu",
                             static_cast<unsigned long long>(allocations),
                             static_cast<unsigned long long>(deallocations),
                             static_cast<unsigned long long>(bytes_allocated),
                             static_cast<unsigned long long>(bytes_freed),
                             static_cast<long long>(live_bytes),
                             static_cast<long long>(live_allocations),
                             static_cast<unsigned long long>(peak_live_bytes));
    }

    /// The format() line as a std::string.
    std::string to_string() const {
        char buf[256];
        int n = format(buf, sizeof buf);
        const std::size_t len = n < 0 ? 0 : static_cast<std::size_t>(n);
        return std::string(buf, len < sizeof buf ? len : sizeof buf - 1);
    }

    /// Streams the format() line (any std::basic_ostream; a template, so that
    /// only callers, which include <ostream> themselves, pay for that header).
    template <class CharT, class Traits>
    friend std::basic_ostream<CharT, Traits>& operator<<(std::basic_ostream<CharT, Traits>& os,
                                                         const allocation_stats& s) {
        char buf[256];
        s.format(buf, sizeof buf);
        return os << buf;
    }
};

}  // namespace memdiag
