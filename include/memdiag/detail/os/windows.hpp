// memdiag/detail/os/windows.hpp - the OS primitives on Windows.
//
// GlobalMemoryStatusEx for RAM and the user address space, job objects for the
// container-style limit (IsProcessInJob + QueryInformationJobObject). Windows
// has no rlimits and no overcommit: memory is committed strictly against
// RAM + page file, and job limits count committed memory, not touched pages.
// Functions newer than the oldest supported Windows are looked up at run time
// so that nothing extra needs linking.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include <windows.h>
#include <psapi.h>

#include "../../config.hpp"
#include "../env_parse.hpp"

namespace memdiag {
namespace detail {
namespace os {

using env::fact;
using env::limit;

/// The OS name env reports.
constexpr const char* name = "windows";
/// No /proc on Windows.
constexpr bool has_procfs = false;
/// Facts that apply on this OS (others are left out of the report).
constexpr bool has_rlimits = false;
constexpr bool has_cgroups = false;
constexpr bool has_job_objects = true;
constexpr bool has_overcommit_setting = false;
constexpr bool has_transparent_huge_pages = false;

/// Reads at most max_bytes of a small file through stdio.
inline fact<std::string> read_file(const std::string& path, std::size_t max_bytes = 1u << 20) {
    std::FILE* f = nullptr;
#if defined(_MSC_VER)
    if (::fopen_s(&f, path.c_str(), "rb") != 0) f = nullptr;
#else
    f = std::fopen(path.c_str(), "rb");
#endif
    if (!f) return fact<std::string>::unknown("cannot open", path);
    std::string text;
    char buf[4096];
    std::size_t n;
    while (text.size() < max_bytes && (n = std::fread(buf, 1, sizeof buf, f)) > 0)
        text.append(buf, n < max_bytes - text.size() ? n : max_bytes - text.size());
    std::fclose(f);
    return fact<std::string>::of(std::move(text), path);
}

/// Looks up a kernel32/ntdll export at run time; nullptr when absent.
inline void* find_export(const wchar_t* module, const char* symbol) noexcept {
    HMODULE m = ::GetModuleHandleW(module);
    // Through void*: GetProcAddress's FARPROC is not the real function type.
    return m ? reinterpret_cast<void*>(::GetProcAddress(m, symbol)) : nullptr;
}

/// Returns GetSystemInfo().dwPageSize.
inline fact<std::uint64_t> page_size() {
    SYSTEM_INFO si;
    ::GetSystemInfo(&si);
    return fact<std::uint64_t>::of(si.dwPageSize, "GetSystemInfo().dwPageSize");
}

/// Calls GlobalMemoryStatusEx; false on failure.
inline bool memory_status(MEMORYSTATUSEX& ms) noexcept {
    ms = MEMORYSTATUSEX{};
    ms.dwLength = sizeof ms;
    return ::GlobalMemoryStatusEx(&ms) != 0;
}

/// Returns the installed RAM the OS uses (ullTotalPhys).
inline fact<std::uint64_t> physical_memory() {
    MEMORYSTATUSEX ms;
    if (!memory_status(ms)) return fact<std::uint64_t>::unknown("call failed", "GlobalMemoryStatusEx");
    return fact<std::uint64_t>::of(ms.ullTotalPhys, "GlobalMemoryStatusEx().ullTotalPhys");
}

/// Returns the RAM available now (ullAvailPhys).
inline fact<std::uint64_t> available_memory() {
    MEMORYSTATUSEX ms;
    if (!memory_status(ms)) return fact<std::uint64_t>::unknown("call failed", "GlobalMemoryStatusEx");
    return fact<std::uint64_t>::of(ms.ullAvailPhys, "GlobalMemoryStatusEx().ullAvailPhys");
}

/// Returns the user address-space size of this process (ullTotalVirtual:
/// 2 or 4 GiB for 32-bit programs, 128 TiB for 64-bit ones).
inline fact<std::uint64_t> address_space_size() {
    MEMORYSTATUSEX ms;
    if (!memory_status(ms)) return fact<std::uint64_t>::unknown("call failed", "GlobalMemoryStatusEx");
    return fact<std::uint64_t>::of(ms.ullTotalVirtual, "GlobalMemoryStatusEx().ullTotalVirtual");
}

/// Returns this process's commit charge (PrivateUsage).
inline fact<std::uint64_t> process_memory() {
    const char* source = "K32GetProcessMemoryInfo().PagefileUsage";
    using fn = BOOL(WINAPI*)(HANDLE, PPROCESS_MEMORY_COUNTERS, DWORD);
    void* p = find_export(L"kernel32.dll", "K32GetProcessMemoryInfo");
    if (!p) return fact<std::uint64_t>::unknown("not available before Windows 7", source);
    PROCESS_MEMORY_COUNTERS pmc{};
    pmc.cb = sizeof pmc;
    if (!reinterpret_cast<fn>(p)(::GetCurrentProcess(), &pmc, sizeof pmc))
        return fact<std::uint64_t>::unknown("call failed", source);
    return fact<std::uint64_t>::of(std::uint64_t(pmc.PagefileUsage), source);
}

/// Windows has no rlimits.
inline fact<limit> rlimit_address_space() { return fact<limit>::unknown("no rlimits on Windows"); }
/// Windows has no rlimits.
inline fact<limit> rlimit_data() { return fact<limit>::unknown("no rlimits on Windows"); }
/// Windows has no rlimits (the stack size is in the executable's header).
inline fact<limit> rlimit_stack() { return fact<limit>::unknown("no rlimits on Windows"); }

/// Returns "Windows <major>.<minor>.<build>" from RtlGetVersion (GetVersionEx lies
/// to programs without a compatibility manifest).
inline fact<std::string> os_version() {
    const char* source = "RtlGetVersion()";
    using fn = LONG(WINAPI*)(PRTL_OSVERSIONINFOW);
    void* p = find_export(L"ntdll.dll", "RtlGetVersion");
    if (!p) return fact<std::string>::unknown("ntdll!RtlGetVersion not found", source);
    RTL_OSVERSIONINFOW v{};
    v.dwOSVersionInfoSize = sizeof v;
    if (reinterpret_cast<fn>(p)(&v) != 0) return fact<std::string>::unknown("call failed", source);
    return fact<std::string>::of("Windows " + std::to_string(v.dwMajorVersion) + "." + std::to_string(v.dwMinorVersion) +
                                     "." + std::to_string(v.dwBuildNumber),
                                 source);
}

/// Returns the kernel version (the same numbers as os_version on Windows).
inline fact<std::string> kernel_version() {
    fact<std::string> v = os_version();
    if (v) v.value = "Windows NT " + v.value.substr(8);
    return v;
}

/// Returns the native processor architecture (differs from the build's under WOW64).
inline fact<std::string> kernel_machine() {
    SYSTEM_INFO si;
    ::GetNativeSystemInfo(&si);
    const char* source = "GetNativeSystemInfo().wProcessorArchitecture";
    switch (si.wProcessorArchitecture) {
        case PROCESSOR_ARCHITECTURE_AMD64: return fact<std::string>::of("x86_64", source);
        case PROCESSOR_ARCHITECTURE_INTEL: return fact<std::string>::of("x86", source);
        case PROCESSOR_ARCHITECTURE_ARM: return fact<std::string>::of("arm", source);
#if defined(PROCESSOR_ARCHITECTURE_ARM64)
        case PROCESSOR_ARCHITECTURE_ARM64: return fact<std::string>::of("aarch64", source);
#endif
        default: return fact<std::string>::unknown("unrecognised architecture " + std::to_string(si.wProcessorArchitecture), source);
    }
}

/// Returns the active processors in all processor groups.
inline fact<std::uint64_t> cpu_count() {
    DWORD n = ::GetActiveProcessorCount(ALL_PROCESSOR_GROUPS);
    if (n == 0) return fact<std::uint64_t>::unknown("call failed", "GetActiveProcessorCount");
    return fact<std::uint64_t>::of(n, "GetActiveProcessorCount(ALL_PROCESSOR_GROUPS)");
}

/// Windows has no cgroups.
inline env_parse::cgroup_facts cgroups() {
    env_parse::cgroup_facts c;
    c.layout = fact<std::string>::unknown("no cgroups on Windows");
    c.memory_path = c.layout;
    c.v1_memory_limit = fact<limit>::unknown("no cgroups on Windows");
    c.v2_memory_max = c.v1_memory_limit;
    c.cpu_limit = fact<env::cpu_quota>::unknown("no cgroups on Windows");
    return c;
}

/// Returns the smallest memory limit of the job object this process runs in
/// (per-process or per-job committed memory), or "none" outside a job.
inline fact<limit> job_memory_limit() {
    BOOL in_job = FALSE;
    if (!::IsProcessInJob(::GetCurrentProcess(), nullptr, &in_job))
        return fact<limit>::unknown("IsProcessInJob failed", "IsProcessInJob");
    if (!in_job) return fact<limit>::of(limit::none(), "IsProcessInJob(): not in a job");
    const char* source = "QueryInformationJobObject(JobObjectExtendedLimitInformation)";
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION info{};
    if (!::QueryInformationJobObject(nullptr, JobObjectExtendedLimitInformation, &info, sizeof info, nullptr))
        return fact<limit>::unknown("query failed (no access to the job?)", source);
    limit best = limit::none();
    if (info.BasicLimitInformation.LimitFlags & JOB_OBJECT_LIMIT_PROCESS_MEMORY)
        best = limit::of(info.ProcessMemoryLimit);
    if ((info.BasicLimitInformation.LimitFlags & JOB_OBJECT_LIMIT_JOB_MEMORY) &&
        limit::of(info.JobMemoryLimit).below(best))
        best = limit::of(info.JobMemoryLimit);
    return fact<limit>::of(best, source);
}

/// Windows has no transparent huge pages (large pages need SeLockMemoryPrivilege).
inline fact<std::uint64_t> huge_page_size() {
    const char* source = "GetLargePageMinimum()";
    SIZE_T n = ::GetLargePageMinimum();
    if (n == 0) return fact<std::uint64_t>::unknown("large pages not supported", source);
    return fact<std::uint64_t>::of(std::uint64_t(n), source);
}

/// No transparent huge pages on Windows.
inline fact<std::string> thp_setting(const char*) {
    return fact<std::string>::unknown("no transparent huge pages on Windows");
}

/// Windows commits strictly; there is no overcommit switch.
inline fact<int> overcommit_mode() {
    return fact<int>::unknown("Windows never overcommits (commit limit = RAM + page file)");
}

/// No overcommit ratio on Windows.
inline fact<std::uint64_t> overcommit_ratio() {
    return fact<std::uint64_t>::unknown("Windows never overcommits");
}

/// Names the C runtime heap (malloc goes to HeapAlloc on the process heap).
inline fact<std::string> malloc_implementation() {
#if defined(_UCRT)
    return fact<std::string>::of("UCRT malloc (HeapAlloc, process heap)", "_UCRT");
#else
    return fact<std::string>::of("MSVCRT malloc (HeapAlloc, process heap)", "C runtime headers");
#endif
}

}  // namespace os
}  // namespace detail
}  // namespace memdiag
