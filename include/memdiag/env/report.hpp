// memdiag/env/report.hpp - the env report's types and their text and JSON:
// fact rows (item), check results (check, severity), the report itself and
// the byte and size helpers its figures use. Filled by env/collect.hpp, judged
// by env/checks.hpp; <memdiag/env.hpp> gives all three.
//
// The bodies of the functions declared MEMDIAG_IMPL here are in
// detail/env_report_impl.hpp: included at the end of this header, or, with
// MEMDIAG_SEPARATE_IMPLEMENTATION (config.hpp), by memdiag/implementation.hpp only.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "../config.hpp"
#include "../detail/env_types.hpp"

namespace memdiag {
namespace env {

// ---- formatting helpers ----------------------------------------------------

/// Returns bytes in binary units, e.g. "512 MiB", "23.5 GiB", "4 KiB", "100 B"
/// (memdiag::detail::format_bytes, compact style).
MEMDIAG_IMPL std::string format_bytes(std::uint64_t bytes);

/// Parses a size such as "4096", "512M", "8G", "1.5GiB" (binary units, case
/// ignored; the grammar is memdiag::detail::parse_size's). Returns unknown with
/// the reason and the text on anything else, never a wrapped value.
MEMDIAG_IMPL fact<std::uint64_t> parse_size(std::string_view text);

/// Returns text as the body of a JSON string: quotes, backslashes and control
/// characters escaped, invalid UTF-8 replaced by U+FFFD (files may hold any bytes).
MEMDIAG_IMPL std::string json_escape(std::string_view text);

// ---- report ----------------------------------------------------------------

/// One line of the report: a key, its value as text, and where it came from.
struct item {
    std::string key;             ///< e.g. "page_size"
    std::string value;           ///< e.g. "4096", "unlimited", "unknown"
    bool known = false;          ///< false when value is "unknown"
    std::string detail;          ///< a readable gloss, e.g. "4 KiB"; may be empty
    std::string source;          ///< where it was read, e.g. "sysconf(_SC_PAGESIZE)"
    std::string reason;          ///< why it is unknown; empty when known
    bool has_bytes = false;      ///< true when bytes holds the value as a number
    std::uint64_t bytes = 0;     ///< the value in bytes (when has_bytes)
};

/// The smallest memory limit that applies to this process, and which one.
struct effective_limit_info {
    fact<limit> value;  ///< the limit; source names where it was read
    std::string key;    ///< the report key of the winning limit, e.g. "rlimit_as"
};

/// How serious a check result is.
enum class severity {
    ok,       ///< nothing to do
    warning,  ///< works, but a person should look (the advice says what to do)
    failure   ///< the requirement is not met
};

/// Returns "ok", "warning" or "failure".
inline const char* to_string(severity s) noexcept {
    return s == severity::ok ? "ok" : s == severity::warning ? "warning" : "failure";
}

/// The result of one check: severity, what was found, and what to do about it.
struct check {
    std::string name;               ///< e.g. "require_memory"
    severity level = severity::ok;  ///< ok, warning or failure
    std::string message;            ///< what was found, with the figures
    std::string advice;             ///< what a person can do; empty when ok

    /// Returns true unless the check failed (warnings pass).
    bool passed() const noexcept { return level != severity::failure; }
    /// Returns "OK   name: message" (plus an advice line), newline-terminated.
    std::string to_text() const;
    /// Returns the check as a JSON object.
    std::string to_json() const;
};

/// Returns the most serious severity among checks (ok for none).
MEMDIAG_IMPL severity worst(const std::vector<check>& checks) noexcept;

/// Everything env knows about the process's memory world. collect() fills it;
/// the fields can also be set by hand (e.g. to test checks).
struct report {
    // The build.
    fact<std::string> arch;              ///< the build's architecture (x86_64, aarch64, i386, ...)
    fact<std::uint64_t> pointer_bits;    ///< 32 or 64
    fact<std::string> endianness;        ///< "little" or "big"
    fact<std::string> compiler;          ///< e.g. "gcc 12.2.0"
    fact<std::string> stdlib;            ///< e.g. "libstdc++ 12 (20220819)"
    fact<std::string> cxx_standard;      ///< e.g. "C++17 (201703L)"
    fact<std::string> ndebug;            ///< "on" when NDEBUG is defined
    fact<std::string> optimized;         ///< "on" for -O1 and above
    fact<std::string> sanitizers;        ///< e.g. "address", "none"
    fact<std::string> frame_pointers;    ///< "on" when known to be kept
    fact<std::string> exceptions;        ///< "on" or "off"
    fact<std::string> rtti;              ///< "on" or "off"
    // The machine.
    fact<std::string> os;                ///< e.g. "Debian GNU/Linux 12 (bookworm)"
    fact<std::string> kernel;            ///< e.g. "Linux 6.1.0"
    fact<std::string> kernel_machine;    ///< uname machine: "x86_64" under a 32-bit build too
    fact<std::uint64_t> virtual_address_bits;   ///< the CPU's linear address width
    fact<std::uint64_t> physical_address_bits;  ///< the CPU's physical address width
    fact<std::uint64_t> address_space;   ///< user address space this process can map
    fact<std::uint64_t> page_size;       ///< bytes
    fact<std::uint64_t> huge_page_size;  ///< bytes (THP / large page size)
    fact<std::string> thp_mode;          ///< transparent huge pages: always, madvise, never
    fact<std::string> thp_defrag;        ///< THP defrag mode
    fact<std::uint64_t> physical_memory; ///< installed RAM, bytes (host-wide in a container)
    fact<std::uint64_t> available_memory;///< RAM obtainable now, bytes
    fact<std::uint64_t> process_memory;  ///< this process's resident memory / footprint now
    fact<std::uint64_t> cpu_count;       ///< CPUs this process may use
    // Limits.
    fact<limit> rlimit_as;               ///< RLIMIT_AS (ulimit -v)
    fact<limit> rlimit_data;             ///< RLIMIT_DATA (ulimit -d)
    fact<limit> rlimit_stack;            ///< RLIMIT_STACK (ulimit -s)
    fact<std::string> cgroup_layout;     ///< "v1", "v2" or "hybrid"
    fact<std::string> cgroup_memory_path;///< the cgroup directory whose memory limit applies
    fact<limit> cgroup_v1_memory_limit;  ///< smallest memory.limit_in_bytes on the path
    fact<limit> cgroup_v2_memory_max;    ///< smallest memory.max on the path
    fact<cpu_quota> cgroup_cpu_quota;    ///< CFS quota or cpu.max
    fact<limit> job_memory_limit;        ///< Windows job object limit
    fact<int> overcommit_memory;         ///< vm.overcommit_memory (0, 1, 2)
    fact<std::uint64_t> overcommit_ratio;///< vm.overcommit_ratio, percent
    fact<std::string> malloc_implementation;  ///< the malloc in use (glibc, jemalloc, ...)

    // Which facts apply on this OS (the others are left out of the output).
    bool show_rlimits = true;            ///< rlimit_* apply
    bool show_cgroups = true;            ///< cgroup_* apply
    bool show_job = false;               ///< job_memory_limit applies
    bool show_overcommit = true;         ///< overcommit_* apply
    bool show_thp = true;                ///< thp_* apply

    /// Returns the smallest limit among physical memory, address space,
    /// RLIMIT_AS, RLIMIT_DATA, the cgroup limits and the job limit.
    effective_limit_info effective_limit() const;
    /// Returns the report as rows, in display order.
    std::vector<item> items() const;
    /// Returns the report as aligned "key=value  # detail; source" lines.
    std::string to_text() const;
    /// Returns the report as a JSON object; checks, when given, are included.
    std::string to_json(const std::vector<check>& checks = {}) const;
};

}  // namespace env
}  // namespace memdiag

#if MEMDIAG_HEADER_ONLY
#include "../detail/env_report_impl.hpp"
#endif
