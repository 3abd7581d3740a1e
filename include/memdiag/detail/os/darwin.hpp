// memdiag/detail/os/darwin.hpp - the OS primitives on macOS.
//
// sysctl for machine-wide figures, Mach host/task statistics for available
// memory and this process's footprint, POSIX for the rest. macOS has no
// cgroups, no overcommit switch and no transparent huge pages.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

#include <mach/mach.h>
#include <sys/sysctl.h>
#include <unistd.h>

#include "../../config.hpp"
#include "../env_parse.hpp"
#include "posix.hpp"

namespace memdiag {
namespace detail {
namespace os {

using env::fact;
using env::limit;

/// The OS name env reports.
constexpr const char* name = "darwin";
/// /proc does not exist on macOS.
constexpr bool has_procfs = false;
/// Facts that apply on this OS (others are left out of the report).
constexpr bool has_rlimits = true;
constexpr bool has_cgroups = false;
constexpr bool has_job_objects = false;
constexpr bool has_overcommit_setting = false;
constexpr bool has_transparent_huge_pages = false;

using posix::kernel_machine;
using posix::kernel_version;
using posix::malloc_implementation;
using posix::page_size;
using posix::read_file;
using posix::rlimit_address_space;
using posix::rlimit_data;
using posix::rlimit_stack;

/// Reads an integer sysctl of 4 or 8 bytes.
inline fact<std::uint64_t> sysctl_u64(const char* key) {
    std::string source = std::string("sysctlbyname(\"") + key + "\")";
    std::uint64_t v64 = 0;
    std::size_t len = sizeof v64;
    if (::sysctlbyname(key, &v64, &len, nullptr, 0) != 0) return fact<std::uint64_t>::unknown("sysctl failed", source);
    if (len == sizeof(std::uint32_t)) {
        std::uint32_t v32;
        std::memcpy(&v32, &v64, sizeof v32);
        return fact<std::uint64_t>::of(v32, source);
    }
    if (len != sizeof v64) return fact<std::uint64_t>::unknown("unexpected sysctl size", source);
    return fact<std::uint64_t>::of(v64, source);
}

/// Returns hw.memsize, the installed RAM.
inline fact<std::uint64_t> physical_memory() { return sysctl_u64("hw.memsize"); }

/// Returns free + inactive + purgeable pages (memory obtainable without paging out).
inline fact<std::uint64_t> available_memory() {
    const char* source = "host_statistics64(HOST_VM_INFO64) free+inactive+purgeable";
    vm_statistics64_data_t vm;
    mach_msg_type_number_t count = HOST_VM_INFO64_COUNT;
    if (::host_statistics64(::mach_host_self(), HOST_VM_INFO64, reinterpret_cast<host_info64_t>(&vm), &count) !=
        KERN_SUCCESS)
        return fact<std::uint64_t>::unknown("host_statistics64 failed", source);
    fact<std::uint64_t> page = page_size();
    if (!page) return fact<std::uint64_t>::unknown("page size unknown", source);
    std::uint64_t pages = std::uint64_t(vm.free_count) + vm.inactive_count + vm.purgeable_count;
    return fact<std::uint64_t>::of(pages * page.value, source);
}

/// Returns this process's physical footprint (what Activity Monitor shows).
inline fact<std::uint64_t> process_memory() {
    const char* source = "task_info(TASK_VM_INFO).phys_footprint";
    task_vm_info_data_t info;
    mach_msg_type_number_t count = TASK_VM_INFO_COUNT;
    if (::task_info(::mach_task_self(), TASK_VM_INFO, reinterpret_cast<task_info_t>(&info), &count) != KERN_SUCCESS)
        return fact<std::uint64_t>::unknown("task_info failed", source);
    return fact<std::uint64_t>::of(std::uint64_t(info.phys_footprint), source);
}

/// macOS does not state the user address-space size; derived from the address bits.
inline fact<std::uint64_t> address_space_size() {
    return fact<std::uint64_t>::unknown("macOS does not state it; derived from the address bits");
}

/// Returns "macOS <kern.osproductversion>".
inline fact<std::string> os_version() {
    const char* source = "sysctlbyname(\"kern.osproductversion\")";
    char buf[64] = {};
    std::size_t len = sizeof buf - 1;
    if (::sysctlbyname("kern.osproductversion", buf, &len, nullptr, 0) != 0)
        return fact<std::string>::unknown("sysctl failed", source);
    return fact<std::string>::of(std::string("macOS ") + buf, source);
}

/// Returns hw.logicalcpu, else the online CPUs.
inline fact<std::uint64_t> cpu_count() {
    fact<std::uint64_t> n = sysctl_u64("hw.logicalcpu");
    if (n && n.value > 0) return n;
    long v = ::sysconf(_SC_NPROCESSORS_ONLN);
    if (v <= 0) return fact<std::uint64_t>::unknown("sysconf failed", "sysconf(_SC_NPROCESSORS_ONLN)");
    return fact<std::uint64_t>::of(std::uint64_t(v), "sysconf(_SC_NPROCESSORS_ONLN)");
}

/// macOS has no cgroups.
inline env_parse::cgroup_facts cgroups() {
    env_parse::cgroup_facts c;
    c.layout = fact<std::string>::unknown("no cgroups on macOS");
    c.memory_path = c.layout;
    c.v1_memory_limit = fact<limit>::unknown("no cgroups on macOS");
    c.v2_memory_max = c.v1_memory_limit;
    c.cpu_limit = fact<env::cpu_quota>::unknown("no cgroups on macOS");
    return c;
}

/// macOS has no job objects.
inline fact<limit> job_memory_limit() { return fact<limit>::unknown("no job objects on macOS"); }

/// macOS has no transparent huge pages (superpages only on explicit request).
inline fact<std::uint64_t> huge_page_size() {
    return fact<std::uint64_t>::unknown("no transparent huge pages on macOS");
}

/// No transparent huge pages on macOS.
inline fact<std::string> thp_setting(const char*) {
    return fact<std::string>::unknown("no transparent huge pages on macOS");
}

/// macOS always overcommits (compressed memory and swap); there is no switch.
inline fact<int> overcommit_mode() { return fact<int>::unknown("no overcommit setting on macOS"); }

/// No overcommit ratio on macOS.
inline fact<std::uint64_t> overcommit_ratio() {
    return fact<std::uint64_t>::unknown("no overcommit setting on macOS");
}

}  // namespace os
}  // namespace detail
}  // namespace memdiag
