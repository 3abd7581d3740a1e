// memdiag/detail/os/linux.hpp - the OS primitives on Linux.
//
// Facts come from system calls where one exists and from /proc and /sys
// otherwise; every file may be missing (containers, chroots), so each
// primitive returns "unknown" with the reason instead of failing.
#pragma once

#include <cstdint>
#include <string>

#include <sched.h>
#include <unistd.h>

#include "../../config.hpp"
#include "../env_parse.hpp"
#include "posix.hpp"

namespace memdiag {
namespace detail {
namespace os {

using env::cpu_quota;
using env::fact;
using env::limit;

/// The OS name env reports.
constexpr const char* name = "linux";
/// /proc exists (cpuinfo, meminfo, self/cgroup).
constexpr bool has_procfs = true;
/// Facts that apply on this OS (others are left out of the report).
constexpr bool has_rlimits = true;
constexpr bool has_cgroups = true;
constexpr bool has_job_objects = false;
constexpr bool has_overcommit_setting = true;
constexpr bool has_transparent_huge_pages = true;

using posix::kernel_machine;
using posix::kernel_version;
using posix::malloc_implementation;
using posix::page_size;
using posix::read_file;
using posix::rlimit_address_space;
using posix::rlimit_data;
using posix::rlimit_stack;

/// Returns total RAM (host-wide, even in a container): MemTotal from /proc/meminfo,
/// else sysconf(_SC_PHYS_PAGES) * page size. MemTotal comes first because it is
/// exact for any ABI: sysconf goes through sysinfo(), whose 32-bit fields wrap
/// above 4 GiB where the kernel interface does not scale them (qemu-i386 does not).
inline fact<std::uint64_t> physical_memory() {
    const std::string file = "/proc/meminfo";
    fact<std::string> text = read_file(file);
    if (text) {
        fact<std::uint64_t> v = env_parse::parse_meminfo(text.value, "MemTotal");
        if (v) {
            v.source = file + " MemTotal";
            return v;
        }
    }
    const char* source = "sysconf(_SC_PHYS_PAGES) * sysconf(_SC_PAGESIZE)";
    long pages = ::sysconf(_SC_PHYS_PAGES);
    fact<std::uint64_t> page = page_size();
    if (pages <= 0 || !page) return fact<std::uint64_t>::unknown("sysconf failed", source);
    return fact<std::uint64_t>::of(std::uint64_t(pages) * page.value, source);
}

/// Returns MemAvailable from /proc/meminfo: what can be allocated without swapping.
inline fact<std::uint64_t> available_memory() {
    const std::string file = "/proc/meminfo";
    fact<std::string> text = read_file(file);
    if (!text) return fact<std::uint64_t>::unknown(text.reason, file);
    fact<std::uint64_t> v = env_parse::parse_meminfo(text.value, "MemAvailable");
    v.source = file + " MemAvailable";
    return v;
}

/// Returns this process's resident memory (VmRSS in /proc/self/status).
inline fact<std::uint64_t> process_memory() {
    const std::string file = "/proc/self/status";
    fact<std::string> text = read_file(file);
    if (!text) return fact<std::uint64_t>::unknown(text.reason, file);
    fact<std::uint64_t> v = env_parse::parse_meminfo(text.value, "VmRSS");
    v.source = file + " VmRSS";
    return v;
}

/// Returns the user address-space size when the OS states it (Windows does); unknown here.
inline fact<std::uint64_t> address_space_size() {
    return fact<std::uint64_t>::unknown("Linux does not state it; derived from the address bits");
}

/// Returns the distribution's name from os-release (PRETTY_NAME).
inline fact<std::string> os_version() {
    for (const char* file : {"/etc/os-release", "/usr/lib/os-release"}) {
        fact<std::string> text = read_file(file);
        if (!text) continue;
        fact<std::string> v = env_parse::parse_os_release(text.value);
        v.source = std::string(file) + " PRETTY_NAME";
        return v;
    }
    return fact<std::string>::unknown("no /etc/os-release or /usr/lib/os-release", "os-release");
}

/// Returns the CPUs this process may run on (sched_getaffinity), else the online CPUs.
inline fact<std::uint64_t> cpu_count() {
#if defined(CPU_COUNT)
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return fact<std::uint64_t>::of(std::uint64_t(CPU_COUNT(&set)), "sched_getaffinity()");
#endif
    long n = ::sysconf(_SC_NPROCESSORS_ONLN);
    if (n <= 0) return fact<std::uint64_t>::unknown("sysconf failed", "sysconf(_SC_NPROCESSORS_ONLN)");
    return fact<std::uint64_t>::of(std::uint64_t(n), "sysconf(_SC_NPROCESSORS_ONLN)");
}

/// Returns the cgroup memory limits and CPU quota of this process.
inline env_parse::cgroup_facts cgroups() {
    return env_parse::read_cgroup_facts([](const std::string& path) { return read_file(path); });
}

/// Windows job objects do not exist here.
inline fact<limit> job_memory_limit() { return fact<limit>::unknown("no job objects on Linux"); }

/// Returns the transparent-huge-page size (hpage_pmd_size), else meminfo Hugepagesize.
inline fact<std::uint64_t> huge_page_size() {
    const std::string pmd = "/sys/kernel/mm/transparent_hugepage/hpage_pmd_size";
    fact<std::string> text = read_file(pmd);
    if (text) {
        fact<std::uint64_t> v = env_parse::parse_u64(text.value);
        v.source = pmd;
        return v;
    }
    fact<std::string> meminfo = read_file("/proc/meminfo");
    if (!meminfo) return fact<std::uint64_t>::unknown(pmd + ": " + text.reason, pmd);
    fact<std::uint64_t> v = env_parse::parse_meminfo(meminfo.value, "Hugepagesize");
    v.source = "/proc/meminfo Hugepagesize";
    return v;
}

/// Returns the bracketed mode of a transparent_hugepage file ("enabled" or "defrag").
inline fact<std::string> thp_setting(const char* which) {
    const std::string file = std::string("/sys/kernel/mm/transparent_hugepage/") + which;
    fact<std::string> text = read_file(file);
    if (!text) return fact<std::string>::unknown(text.reason, file);
    fact<std::string> v = env_parse::parse_bracketed_choice(text.value);
    v.source = file;
    return v;
}

/// Returns vm.overcommit_memory: 0 heuristic, 1 always, 2 strict accounting.
inline fact<int> overcommit_mode() {
    const std::string file = "/proc/sys/vm/overcommit_memory";
    fact<std::string> text = read_file(file);
    if (!text) return fact<int>::unknown(text.reason, file);
    fact<int> v = env_parse::parse_overcommit_mode(text.value);
    v.source = file;
    return v;
}

/// Returns vm.overcommit_ratio (percent of RAM counted in mode 2).
inline fact<std::uint64_t> overcommit_ratio() {
    const std::string file = "/proc/sys/vm/overcommit_ratio";
    fact<std::string> text = read_file(file);
    if (!text) return fact<std::uint64_t>::unknown(text.reason, file);
    fact<std::uint64_t> v = env_parse::parse_u64(text.value);
    v.source = file;
    return v;
}

}  // namespace os
}  // namespace detail
}  // namespace memdiag
