// memdiag/detail/env_checks_impl.hpp - the definitions behind env/checks.hpp:
// each check on a report, its message and advice. Header-only, env/checks.hpp
// includes this at its end; with MEMDIAG_SEPARATE_IMPLEMENTATION only
// memdiag/implementation.hpp does.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "../config.hpp"
#include "../env/checks.hpp"
#include "env_collect_impl.hpp"
#include "env_report_impl.hpp"

namespace memdiag {
namespace env {

namespace detail {

/// Returns a check with the given outcome.
inline check make_check(const char* name, severity level, std::string message, std::string advice = {}) {
    check c;
    c.name = name;
    c.level = level;
    c.message = std::move(message);
    c.advice = std::move(advice);
    return c;
}

/// Returns what to do when the limit named key is too small.
inline std::string advice_for_limit(const std::string& key) {
    if (key == "rlimit_as")
        return "raise the address-space limit: `ulimit -v unlimited` in the shell that starts the program, "
               "`prlimit --as=unlimited --pid <pid>`, or LimitAS=infinity in a systemd unit";
    if (key == "rlimit_data")
        return "raise the data-segment limit: `ulimit -d unlimited`, `prlimit --data=unlimited --pid <pid>`, "
               "or LimitDATA=infinity in a systemd unit";
    if (key == "cgroup_v1_memory_limit" || key == "cgroup_v2_memory_max")
        return "raise the container memory limit (docker run --memory=..., Kubernetes resources.limits.memory, "
               "systemd MemoryMax=)";
    if (key == "job_memory_limit") return "raise the memory limit of the job object this process runs in";
    if (key == "address_space") return "use a 64-bit build: 32-bit pointers cap the address space at 4 GiB";
    if (key == "physical_memory") return "run on a machine with more RAM, or reduce the memory the program needs";
    return "raise the limit named above";
}

/// Returns a figure followed by its source, for messages.
inline std::string figure(std::uint64_t bytes, const std::string& source) {
    return format_bytes(bytes) + (source.empty() ? "" : " (" + source + ")");
}

}  // namespace detail

MEMDIAG_IMPL check require_64bit(const report& r) {
    if (!r.pointer_bits)
        return detail::make_check("require_64bit", severity::warning, "pointer width unknown: " + r.pointer_bits.reason);
    if (r.pointer_bits.value >= 64)
        return detail::make_check("require_64bit", severity::ok, "64-bit build (" + r.arch.value + ")");
    return detail::make_check(
        "require_64bit", severity::failure,
        std::to_string(r.pointer_bits.value) + "-bit build (" + r.arch.value + "): the address space is at most " +
            format_bytes(r.address_space ? r.address_space.value : detail::pow2(unsigned(r.pointer_bits.value))),
        "rebuild as a 64-bit program: drop -m32, use a 64-bit toolchain (x86_64, aarch64)");
}

MEMDIAG_IMPL check warn_32bit(const report& r) {
    check c = require_64bit(r);
    c.name = "warn_32bit";
    if (c.level == severity::failure) {
        c.level = severity::warning;
        c.advice = "build for 64 bits unless 32 is intended (drop -m32); to make it a build error, add "
                   "MEMDIAG_STATIC_REQUIRE_64BIT()";
    }
    return c;
}

MEMDIAG_IMPL check require_address_space(std::uint64_t bytes, const report& r) {
    const char* name = "require_address_space";
    fact<limit> space{r.address_space.known, limit::of(r.address_space.value), r.address_space.source,
                      r.address_space.reason};
    std::string key = "address_space";
    if (r.show_rlimits && r.rlimit_as && r.rlimit_as.value.below(space.known ? space.value : limit::none())) {
        space = r.rlimit_as;
        key = "rlimit_as";
    }
    if (!space.known)
        return detail::make_check(name, severity::warning,
                                  "needs " + format_bytes(bytes) + "; address space unknown: " + space.reason,
                                  "check `ulimit -v` and that the build is 64-bit");
    if (space.value.unlimited || space.value.bytes >= bytes)
        return detail::make_check(name, severity::ok,
                                  "needs " + format_bytes(bytes) + ", " + key + " allows " +
                                      (space.value.unlimited ? std::string("unlimited")
                                                             : detail::figure(space.value.bytes, space.source)));
    return detail::make_check(name, severity::failure,
                              "needs " + format_bytes(bytes) + " of address space but " + key + " allows only " +
                                  detail::figure(space.value.bytes, space.source),
                              detail::advice_for_limit(key));
}

MEMDIAG_IMPL check require_memory(std::uint64_t bytes, const report& r) {
    const char* name = "require_memory";
    effective_limit_info e = r.effective_limit();
    if (!e.value.known)
        return detail::make_check(name, severity::warning,
                                  "needs " + format_bytes(bytes) + "; no limit known: " + e.value.reason,
                                  "check the machine's RAM and the process limits by hand");
    if (e.value.value.bytes < bytes)
        return detail::make_check(name, severity::failure,
                                  "needs " + format_bytes(bytes) + " but the effective limit is " +
                                      detail::figure(e.value.value.bytes, e.value.source) + " from " + e.key,
                                  detail::advice_for_limit(e.key));
    if (r.available_memory && r.available_memory.value < bytes)
        return detail::make_check(name, severity::warning,
                                  "needs " + format_bytes(bytes) + "; the limit allows it but only " +
                                      detail::figure(r.available_memory.value, r.available_memory.source) +
                                      " is available now",
                                  "free memory (stop other programs, drop caches) or expect swapping");
    return detail::make_check(name, severity::ok,
                              "needs " + format_bytes(bytes) + ", effective limit " +
                                  format_bytes(e.value.value.bytes) + " from " + e.key);
}

MEMDIAG_IMPL check check_rlimits(const report& r) {
    const char* name = "check_rlimits";
    if (!r.show_rlimits) return detail::make_check(name, severity::ok, "no rlimits on this OS");
    limit ram = r.physical_memory ? limit::of(r.physical_memory.value) : limit::none();
    const std::pair<const char*, const fact<limit>*> limits[] = {{"rlimit_as", &r.rlimit_as},
                                                                 {"rlimit_data", &r.rlimit_data}};
    for (const auto& l : limits) {
        const fact<limit>& f = *l.second;
        if (!f.known || f.value.unlimited) continue;
        if (!r.physical_memory || f.value.below(ram))
            return detail::make_check(
                name, severity::warning,
                std::string(l.first) + " is " + detail::figure(f.value.bytes, f.source) +
                    (r.physical_memory ? ", below physical memory " + format_bytes(r.physical_memory.value) : "") +
                    ": allocations fail there even with free RAM; ASan and allocators that reserve address "
                    "space may fail at start",
                detail::advice_for_limit(l.first));
    }
    return detail::make_check(name, severity::ok, "RLIMIT_AS and RLIMIT_DATA do not bind below physical memory");
}

MEMDIAG_IMPL check check_container_limit(const report& r) {
    const char* name = "check_container_limit";
    limit ram = r.physical_memory ? limit::of(r.physical_memory.value) : limit::none();
    const std::pair<const char*, fact<limit>> limits[] = {
        {"cgroup_v1_memory_limit", r.show_cgroups ? r.cgroup_v1_memory_limit : fact<limit>{}},
        {"cgroup_v2_memory_max", r.show_cgroups ? r.cgroup_v2_memory_max : fact<limit>{}},
        {"job_memory_limit", r.show_job ? r.job_memory_limit : fact<limit>{}}};
    for (const auto& l : limits) {
        const fact<limit>& f = l.second;
        if (!f.known || f.value.unlimited || !f.value.below(ram)) continue;
        return detail::make_check(name, severity::warning,
                                  std::string(l.first) + " is " + detail::figure(f.value.bytes, f.source) +
                                      (r.physical_memory ? ", below physical memory " + format_bytes(r.physical_memory.value)
                                                         : "") +
                                      ": the process is killed at the limit, not when RAM runs out",
                                  "size heaps and caches from the effective limit (e.g. 75-90% of it), not from RAM; "
                                  "or " + detail::advice_for_limit(l.first));
    }
    return detail::make_check(name, severity::ok, "no container limit below physical memory");
}

MEMDIAG_IMPL check check_overcommit(const report& r) {
    const char* name = "check_overcommit";
    if (!r.show_overcommit) return detail::make_check(name, severity::ok, "no overcommit setting on this OS");
    if (!r.overcommit_memory)
        return detail::make_check(name, severity::ok, "overcommit mode unknown: " + r.overcommit_memory.reason);
    if (r.overcommit_memory.value == 2)
        return detail::make_check(
            name, severity::warning,
            "overcommit disabled (vm.overcommit_memory=2, ratio " +
                (r.overcommit_ratio ? std::to_string(r.overcommit_ratio.value) + "%" : std::string("unknown")) +
                "): every reservation is charged in full, so large mappings fail even when untouched",
            "sysctl vm.overcommit_memory=0, or raise vm.overcommit_ratio / vm.overcommit_kbytes");
    return detail::make_check(name, severity::ok,
                              r.overcommit_memory.value == 1
                                  ? "overcommit always (mode 1): allocation succeeds, the OOM killer acts instead"
                                  : "heuristic overcommit (mode 0)");
}

MEMDIAG_IMPL std::vector<check> run_default_checks(const report& r) {
    return {warn_32bit(r), check_rlimits(r), check_container_limit(r), check_overcommit(r)};
}
}  // namespace env
}  // namespace memdiag
