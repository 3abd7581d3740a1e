// memdiag/detail/env_collect_impl.hpp - the definitions behind env/collect.hpp:
// the build's facts formatted from the caller's build_macros, the machine's
// from the OS and the CPU, the limits. Header-only, env/collect.hpp includes
// this at its end; with MEMDIAG_SEPARATE_IMPLEMENTATION only
// memdiag/implementation.hpp does (which keeps detail/os.hpp and its system
// headers out of the users of env.hpp).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "../config.hpp"
#include "../env/collect.hpp"
#include "arch/cpu.hpp"
#include "env_parse.hpp"
#include "env_report_impl.hpp"
#include "os.hpp"

namespace memdiag {
namespace env {

namespace detail {

/// Returns "on" or "off".
inline std::string on_off(bool b) { return b ? "on" : "off"; }

/// Returns the compiler name and version the unit was built with.
inline fact<std::string> compiler(const build_macros& b) {
    const auto n = [](long v) { return std::to_string(v); };
    switch (b.compiler) {
        case 3:
            return built("Apple clang " + std::string(memdiag::detail::env_parse::trim(b.clang_version)),
                         "__clang_version__");
        case 2:
            return built("clang " + std::string(memdiag::detail::env_parse::trim(b.clang_version)),
                         "__clang_version__");
        case 1:
            return built("gcc " + n(b.compiler_version[0]) + "." + n(b.compiler_version[1]) + "." +
                             n(b.compiler_version[2]) + (b.mingw ? " (mingw-w64)" : ""),
                         "__GNUC__.__GNUC_MINOR__.__GNUC_PATCHLEVEL__");
        case 4:
            return built("msvc " + n(b.compiler_version[0]), "_MSC_FULL_VER");
        default:
            return fact<std::string>::unknown("unrecognised compiler");
    }
}

/// Returns the C++ standard library and its version.
inline fact<std::string> stdlib(const build_macros& b) {
    switch (b.stdlib) {
        case 1:
            return built("libc++ " + std::to_string(b.stdlib_version), "_LIBCPP_VERSION");
        case 2:
            if (b.stdlib_version != 0)
                return built("libstdc++ " + std::to_string(b.stdlib_version) + " (" + std::to_string(b.stdlib_date) +
                                 ")",
                             "_GLIBCXX_RELEASE, __GLIBCXX__");
            return built("libstdc++ (" + std::to_string(b.stdlib_date) + ")", "__GLIBCXX__");
        case 3:
            return built("MSVC STL " + std::to_string(b.stdlib_version), "_MSVC_STL_VERSION");
        default:
            return fact<std::string>::unknown("unrecognised standard library");
    }
}

/// Returns the C++ standard the unit is compiled as.
inline fact<std::string> cxx_standard(const build_macros& b) {
    const long v = b.cplusplus;
    std::string name = v > 202002L ? "C++23" : v >= 202002L ? "C++20" : v >= 201703L ? "C++17" : "C++14 or older";
    if (v > 202002L && v < 202302L) name = "C++2b";
    return built(name + " (" + std::to_string(v) + "L)", b.msvc_lang ? "_MSVC_LANG" : "__cplusplus");
}

/// Returns the sanitizers compiled in. gcc defines no macro for UBSan.
inline fact<std::string> sanitizers(const build_macros& b) {
    std::string list;
    auto add = [&](const char* s) {
        if (!list.empty()) list += ',';
        list += s;
    };
    if (b.asan) add("address");
    if (b.tsan) add("thread");
    if (b.msan) add("memory");
    if (b.ubsan) add("undefined");
    return built(list.empty() ? "none" : list,
                 b.clang ? "__has_feature(*_sanitizer)" : "__SANITIZE_ADDRESS__, __SANITIZE_THREAD__ (UBSan has no macro)");
}

/// Returns whether frame pointers are kept, when the build says so.
inline fact<std::string> frame_pointers(const build_macros& b) {
    if (b.unoptimized_gnu) return built("on", "no __OPTIMIZE__: unoptimized builds keep frame pointers");
    return fact<std::string>::unknown("compilers define no macro for -fno-omit-frame-pointer; check the build flags",
                                      "compiler macros");
}

/// Returns the byte order of the build.
inline fact<std::string> endianness(const build_macros& b) {
    if (b.byte_order != 0) return built(b.byte_order == 1 ? "little" : "big", "__BYTE_ORDER__");
    std::uint32_t probe = 1;
    unsigned char first;
    std::memcpy(&first, &probe, 1);
    return built(first == 1 ? "little" : "big", "byte order of a uint32_t at run time");
}

/// Returns 2^bits as a size, saturating at 2^63.
inline std::uint64_t pow2(unsigned bits) noexcept { return std::uint64_t(1) << (bits > 63 ? 63 : bits); }

/// Returns true when a kernel architecture name is a 64-bit one.
inline bool is_64bit_machine(std::string_view m) noexcept {
    return m.find("64") != std::string_view::npos || m == "s390x";
}

/// Returns the user address space this process can map: what the OS states,
/// else derived from the pointer width (32-bit) or the CPU's address bits.
inline fact<std::uint64_t> address_space(const report& r) {
    fact<std::uint64_t> stated = memdiag::detail::os::address_space_size();
    if (stated) return stated;
    if (r.pointer_bits && r.pointer_bits.value < 64) {
        if (r.kernel_machine && !is_64bit_machine(r.kernel_machine.value))
            return fact<std::uint64_t>::of(3ull << 30, "32-bit pointers on a 32-bit kernel (" + r.kernel_machine.value +
                                                           "): 3 GiB with the usual split");
        return fact<std::uint64_t>::of(pow2(unsigned(r.pointer_bits.value)),
                                       std::to_string(r.pointer_bits.value) + "-bit pointers" +
                                           (r.kernel_machine ? " on a 64-bit kernel (" + r.kernel_machine.value + ")" : ""));
    }
    if (r.virtual_address_bits) {
        unsigned bits = memdiag::detail::arch::user_address_bits(unsigned(r.virtual_address_bits.value));
        return fact<std::uint64_t>::of(pow2(bits), std::to_string(bits) + " bits of user space for a " +
                                                        std::to_string(r.virtual_address_bits.value) +
                                                        "-bit virtual address (" + r.virtual_address_bits.source + ")");
    }
    return fact<std::uint64_t>::unknown("virtual address bits unknown: " + r.virtual_address_bits.reason);
}

/// Fills the machine's facts from the OS and the CPU: system, address widths
/// and space, pages, memory and CPUs. Needs collect_build's pointer width.
inline void collect_machine(report& r) {
    namespace os = memdiag::detail::os;
    r.os = os::os_version();
    r.kernel = os::kernel_version();
    r.kernel_machine = os::kernel_machine();
    fact<address_sizes> bits = memdiag::detail::arch::cpu_address_sizes();
    r.virtual_address_bits = fact<std::uint64_t>{bits.known, bits.value.virtual_bits, bits.source, bits.reason};
    r.physical_address_bits = fact<std::uint64_t>{bits.known, bits.value.physical_bits, bits.source, bits.reason};
    r.address_space = address_space(r);
    r.page_size = os::page_size();
    r.huge_page_size = os::huge_page_size();
    r.thp_mode = os::thp_setting("enabled");
    r.thp_defrag = os::thp_setting("defrag");
    r.show_thp = os::has_transparent_huge_pages;
    r.physical_memory = os::physical_memory();
    r.available_memory = os::available_memory();
    r.process_memory = os::process_memory();
    r.cpu_count = os::cpu_count();
    r.malloc_implementation = os::malloc_implementation();
}

/// Fills the limits: rlimits, the cgroup (walked up to its mount point), the
/// job object and overcommit, each shown only where the OS has it.
inline void collect_limits(report& r) {
    namespace os = memdiag::detail::os;
    r.rlimit_as = os::rlimit_address_space();
    r.rlimit_data = os::rlimit_data();
    r.rlimit_stack = os::rlimit_stack();
    r.show_rlimits = os::has_rlimits;
    memdiag::detail::env_parse::cgroup_facts cg = os::cgroups();
    r.cgroup_layout = cg.layout;
    r.cgroup_memory_path = cg.memory_path;
    r.cgroup_v1_memory_limit = cg.v1_memory_limit;
    r.cgroup_v2_memory_max = cg.v2_memory_max;
    r.cgroup_cpu_quota = cg.cpu_limit;
    r.show_cgroups = os::has_cgroups;
    r.job_memory_limit = os::job_memory_limit();
    r.show_job = os::has_job_objects;
    r.overcommit_memory = os::overcommit_mode();
    r.overcommit_ratio = os::overcommit_ratio();
    r.show_overcommit = os::has_overcommit_setting;
}

/// Fills the build's facts: architecture, pointer width, compiler, library,
/// standard and build switches, all from the unit's compiler macros.
inline void collect_build(report& r, const build_macros& b) {
    r.arch = built(b.arch, "compiler macros (MEMDIAG_ARCH_NAME)");
    r.pointer_bits = fact<std::uint64_t>::of(b.pointer_bits, "sizeof(void*) * 8");
    r.endianness = endianness(b);
    r.compiler = compiler(b);
    r.stdlib = stdlib(b);
    r.cxx_standard = cxx_standard(b);
    r.ndebug = built(b.ndebug ? "on" : "off", "NDEBUG");
    if (b.optimized >= 0)
        r.optimized = built(b.optimized == 1 ? "on" : "off", "__OPTIMIZE__");
    else
        r.optimized = fact<std::string>::unknown("compiler defines no optimization macro");
    r.sanitizers = sanitizers(b);
    r.frame_pointers = frame_pointers(b);
    r.exceptions = built(on_off(b.exceptions), "MEMDIAG_HAS_EXCEPTIONS");
    r.rtti = built(on_off(b.rtti), "MEMDIAG_HAS_RTTI");
}

MEMDIAG_IMPL report collect_report(const build_macros& build) {
    report r;
    collect_build(r, build);
    collect_machine(r);
    collect_limits(r);
    return r;
}

}  // namespace detail

}  // namespace env
}  // namespace memdiag
