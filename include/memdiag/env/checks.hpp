// memdiag/env/checks.hpp - checks on an env report: 64-bit build, address
// space, memory, rlimits, container limit, overcommit. Each takes a report
// (to test with a synthetic one) or collects a fresh one.
//
// The checks on a report are defined in detail/env_checks_impl.hpp: included at
// the end of this header, or, with MEMDIAG_SEPARATE_IMPLEMENTATION (config.hpp),
// by memdiag/implementation.hpp only. The forms without a report stay inline:
// collect() reads the calling unit's build.
#pragma once

#include <cstdint>
#include <vector>

#include "../config.hpp"
#include "collect.hpp"
#include "report.hpp"

namespace memdiag {
namespace env {

// ---- checks ----------------------------------------------------------------

/// Checks that this is a 64-bit build. Returns failure for a 32-bit one.
/// The compile-time form is MEMDIAG_STATIC_REQUIRE_64BIT().
MEMDIAG_IMPL check require_64bit(const report& r);
/// Same as require_64bit(collect()).
inline check require_64bit() { return require_64bit(collect()); }

/// Warns when this is a 32-bit build. Returns ok for a 64-bit one.
MEMDIAG_IMPL check warn_32bit(const report& r);
/// Same as warn_32bit(collect()).
inline check warn_32bit() { return warn_32bit(collect()); }

/// Checks that bytes of address space can be mapped: the smaller of the user
/// address space and RLIMIT_AS. Returns failure when it is smaller than bytes,
/// warning when neither is known.
MEMDIAG_IMPL check require_address_space(std::uint64_t bytes, const report& r);
/// Same as require_address_space(bytes, collect()).
inline check require_address_space(std::uint64_t bytes) { return require_address_space(bytes, collect()); }

/// Checks that bytes of memory can be used: failure when the effective limit
/// (smallest of RAM, address space, rlimits, cgroup and job limits) is below
/// bytes; warning when less than bytes is available right now or nothing is known.
MEMDIAG_IMPL check require_memory(std::uint64_t bytes, const report& r);
/// Same as require_memory(bytes, collect()).
inline check require_memory(std::uint64_t bytes) { return require_memory(bytes, collect()); }

/// Warns when RLIMIT_AS or RLIMIT_DATA is below physical memory: allocation
/// then fails while RAM is free, and allocators or sanitizers that reserve
/// large address ranges fail at start-up.
MEMDIAG_IMPL check check_rlimits(const report& r);
/// Same as check_rlimits(collect()).
inline check check_rlimits() { return check_rlimits(collect()); }

/// Warns when a container limit (cgroup v1 or v2, Windows job) is below
/// physical memory: RAM-based sizing then overshoots and the OOM killer stops
/// the process at the limit.
MEMDIAG_IMPL check check_container_limit(const report& r);
/// Same as check_container_limit(collect()).
inline check check_container_limit() { return check_container_limit(collect()); }

/// Warns when overcommit is disabled (vm.overcommit_memory=2): reservations
/// are charged in full, so large untouched mappings fail.
MEMDIAG_IMPL check check_overcommit(const report& r);
/// Same as check_overcommit(collect()).
inline check check_overcommit() { return check_overcommit(collect()); }

/// Runs the checks that need no argument: warn_32bit, check_rlimits,
/// check_container_limit, check_overcommit. Returns their results in order.
MEMDIAG_IMPL std::vector<check> run_default_checks(const report& r);
/// Same as run_default_checks(collect()).
inline std::vector<check> run_default_checks() { return run_default_checks(collect()); }
}  // namespace env
}  // namespace memdiag

#if MEMDIAG_HEADER_ONLY
#include "../detail/env_checks_impl.hpp"
#endif
