// memdiag/detail/os/generic.hpp - the OS primitives on an unrecognised OS.
//
// Uses only standard C++: every fact the standard cannot learn is "unknown"
// with the reason, so env builds and runs everywhere.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "../../config.hpp"
#include "../env_parse.hpp"

namespace memdiag {
namespace detail {
namespace os {

using env::fact;
using env::limit;

/// The OS name env reports.
constexpr const char* name = "unknown";
/// No /proc assumed.
constexpr bool has_procfs = false;
/// Facts that apply on this OS (others are left out of the report).
constexpr bool has_rlimits = false;
constexpr bool has_cgroups = false;
constexpr bool has_job_objects = false;
constexpr bool has_overcommit_setting = false;
constexpr bool has_transparent_huge_pages = false;

/// The reason every OS-specific fact is unknown here.
inline std::string unsupported() { return "not implemented for this OS"; }

/// Reads at most max_bytes of a small file through stdio.
inline fact<std::string> read_file(const std::string& path, std::size_t max_bytes = 1u << 20) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return fact<std::string>::unknown("cannot open", path);
    std::string text;
    char buf[4096];
    std::size_t n;
    while (text.size() < max_bytes && (n = std::fread(buf, 1, sizeof buf, f)) > 0)
        text.append(buf, n < max_bytes - text.size() ? n : max_bytes - text.size());
    std::fclose(f);
    return fact<std::string>::of(std::move(text), path);
}

/// Unknown: no portable way to ask.
inline fact<std::uint64_t> page_size() { return fact<std::uint64_t>::unknown(unsupported()); }
/// Unknown: no portable way to ask.
inline fact<std::uint64_t> physical_memory() { return fact<std::uint64_t>::unknown(unsupported()); }
/// Unknown: no portable way to ask.
inline fact<std::uint64_t> available_memory() { return fact<std::uint64_t>::unknown(unsupported()); }
/// Unknown: no portable way to ask.
inline fact<std::uint64_t> process_memory() { return fact<std::uint64_t>::unknown(unsupported()); }
/// Unknown: no portable way to ask.
inline fact<std::uint64_t> address_space_size() { return fact<std::uint64_t>::unknown(unsupported()); }
/// Unknown: no portable way to ask.
inline fact<limit> rlimit_address_space() { return fact<limit>::unknown(unsupported()); }
/// Unknown: no portable way to ask.
inline fact<limit> rlimit_data() { return fact<limit>::unknown(unsupported()); }
/// Unknown: no portable way to ask.
inline fact<limit> rlimit_stack() { return fact<limit>::unknown(unsupported()); }
/// Unknown: no portable way to ask.
inline fact<std::string> os_version() { return fact<std::string>::unknown(unsupported()); }
/// Unknown: no portable way to ask.
inline fact<std::string> kernel_version() { return fact<std::string>::unknown(unsupported()); }
/// Unknown: no portable way to ask.
inline fact<std::string> kernel_machine() { return fact<std::string>::unknown(unsupported()); }
/// Unknown: no portable way to ask.
inline fact<std::uint64_t> cpu_count() { return fact<std::uint64_t>::unknown(unsupported()); }
/// Unknown: no cgroups known here.
inline env_parse::cgroup_facts cgroups() {
    env_parse::cgroup_facts c;
    c.layout = fact<std::string>::unknown(unsupported());
    c.memory_path = c.layout;
    c.v1_memory_limit = fact<limit>::unknown(unsupported());
    c.v2_memory_max = c.v1_memory_limit;
    c.cpu_limit = fact<env::cpu_quota>::unknown(unsupported());
    return c;
}
/// Unknown: no job objects known here.
inline fact<limit> job_memory_limit() { return fact<limit>::unknown(unsupported()); }
/// Unknown: no portable way to ask.
inline fact<std::uint64_t> huge_page_size() { return fact<std::uint64_t>::unknown(unsupported()); }
/// Unknown: no portable way to ask.
inline fact<std::string> thp_setting(const char*) { return fact<std::string>::unknown(unsupported()); }
/// Unknown: no portable way to ask.
inline fact<int> overcommit_mode() { return fact<int>::unknown(unsupported()); }
/// Unknown: no portable way to ask.
inline fact<std::uint64_t> overcommit_ratio() { return fact<std::uint64_t>::unknown(unsupported()); }
/// Unknown: no portable way to ask.
inline fact<std::string> malloc_implementation() { return fact<std::string>::unknown(unsupported()); }

}  // namespace os
}  // namespace detail
}  // namespace memdiag
