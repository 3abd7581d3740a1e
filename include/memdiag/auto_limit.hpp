// memdiag/auto_limit.hpp - a soft limit derived from the container's memory
// limit, as GOMEMLIMIT plus automemlimit do for Go programs:
//
//     memdiag::result r = memdiag::set_soft_limit(memdiag::auto_limit(0.9), shed_caches);
//     if (!r) std::fprintf(stderr, "%s\n", r.message());   // e.g. no limit could be read
//
// The limit is env::collect().effective_limit(): the smallest of cgroup v2
// memory.max, cgroup v1 memory.limit_in_bytes, RLIMIT_AS, RLIMIT_DATA, the
// job limit and physical memory (the last resort). The soft limit applies to
// the process tracker's live heap (set_soft_limit, budget.hpp), which is less
// than what the kernel charges to a cgroup (see watermark.hpp): leave room.
#pragma once

#include <cstdint>
#include <string>

#include "budget.hpp"
#include "env.hpp"
#include "result.hpp"

namespace memdiag {

/// A byte count derived from the effective memory limit; false when unknown.
struct derived_limit {
    std::uint64_t bytes = 0;  ///< fraction x limit; 0 when unknown
    std::uint64_t limit = 0;  ///< the effective limit it came from
    std::string source;       ///< which limit and where it was read
    std::string reason;       ///< why there is no value; empty when known
    /// True when bytes holds a limit.
    explicit operator bool() const noexcept { return bytes != 0; }
};

/// `fraction` (in (0, 1]) of the effective memory limit, for set_soft_limit.
/// Reads the limit now (files under /proc and /sys; allocates).
inline derived_limit auto_limit(double fraction = 0.9) {
    derived_limit d;
    if (!(fraction > 0.0 && fraction <= 1.0)) {
        d.reason = "fraction " + std::to_string(fraction) + " is outside (0, 1]";
        return d;
    }
    const env::effective_limit_info e = env::collect().effective_limit();
    if (!e.value.known || e.value.value.unlimited || e.value.value.bytes == 0) {
        d.reason = "the memory limit is unknown: " + (e.value.reason.empty() ? std::string("no limit") : e.value.reason);
        return d;
    }
    d.limit = e.value.value.bytes;
    d.bytes = static_cast<std::uint64_t>(fraction * static_cast<double>(d.limit));
    if (d.bytes == 0) d.reason = "the limit is too small for that fraction";
    d.source = e.key + (e.value.source.empty() ? "" : " (" + e.value.source + ")");
    return d;
}

/// set_soft_limit with a derived limit: a failure naming the reason (and the
/// current soft limit unchanged) when the limit is unknown, else the limit is
/// set and the result says what it was derived from.
inline result set_soft_limit(const derived_limit& limit, soft_limit_callback on_cross, double rearm_fraction = 0.9) {
    if (!limit) return result::failuref("no soft limit set: %s", limit.reason.c_str());
    if (on_cross == nullptr) return result::failure("no soft limit set: no callback");
    set_soft_limit(limit.bytes, on_cross, rearm_fraction);
    return result::success();
}

}  // namespace memdiag
