// memdiag/env/collect.hpp - env::collect(): the report's facts, one collector
// per source: the build (compiler macros), the machine (OS and CPU), and the
// limits (rlimits, cgroups, job objects, overcommit). The OS side is
// detail/os.hpp, the parsers detail/env_parse.hpp.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#if __has_include(<version>)
#include <version>  // standard library identification macros
#endif

#include "../config.hpp"
#include "../detail/arch/cpu.hpp"
#include "../detail/env_parse.hpp"
#include "../detail/os.hpp"
#include "report.hpp"

namespace memdiag {
namespace env {

namespace detail {

/// Returns "on" or "off".
inline std::string on_off(bool b) { return b ? "on" : "off"; }

/// Returns the compiler name and version this code was built with.
inline fact<std::string> compiler() {
#if defined(__clang__) && defined(__apple_build_version__)
    return built("Apple clang " + std::string(memdiag::detail::env_parse::trim(__clang_version__)), "__clang_version__");
#elif defined(__clang__)
    return built("clang " + std::string(memdiag::detail::env_parse::trim(__clang_version__)), "__clang_version__");
#elif defined(__GNUC__)
    std::string v = "gcc " + std::to_string(__GNUC__) + "." + std::to_string(__GNUC_MINOR__) + "." +
                    std::to_string(__GNUC_PATCHLEVEL__);
#if defined(__MINGW32__)
    v += " (mingw-w64)";
#endif
    return built(v, "__GNUC__.__GNUC_MINOR__.__GNUC_PATCHLEVEL__");
#elif defined(_MSC_VER)
    return built("msvc " + std::to_string(_MSC_FULL_VER), "_MSC_FULL_VER");
#else
    return fact<std::string>::unknown("unrecognised compiler");
#endif  // compiler
}

/// Returns the C++ standard library and its version.
inline fact<std::string> stdlib() {
#if defined(_LIBCPP_VERSION)
    return built("libc++ " + std::to_string(_LIBCPP_VERSION), "_LIBCPP_VERSION");
#elif defined(__GLIBCXX__)
#if defined(_GLIBCXX_RELEASE)
    return built("libstdc++ " + std::to_string(_GLIBCXX_RELEASE) + " (" + std::to_string(__GLIBCXX__) + ")",
                 "_GLIBCXX_RELEASE, __GLIBCXX__");
#else
    return built("libstdc++ (" + std::to_string(__GLIBCXX__) + ")", "__GLIBCXX__");
#endif
#elif defined(_MSVC_STL_VERSION)
    return built("MSVC STL " + std::to_string(_MSVC_STL_VERSION), "_MSVC_STL_VERSION");
#else
    return fact<std::string>::unknown("unrecognised standard library");
#endif  // standard library
}

/// Returns the C++ standard this translation unit is compiled as.
inline fact<std::string> cxx_standard() {
#if defined(_MSVC_LANG)
    long v = _MSVC_LANG;
    const char* source = "_MSVC_LANG";
#else
    long v = __cplusplus;
    const char* source = "__cplusplus";
#endif
    std::string name = v > 202002L ? "C++23" : v >= 202002L ? "C++20" : v >= 201703L ? "C++17" : "C++14 or older";
    if (v > 202002L && v < 202302L) name = "C++2b";
    return built(name + " (" + std::to_string(v) + "L)", source);
}

/// Returns the sanitizers compiled in. gcc defines no macro for UBSan.
inline fact<std::string> sanitizers() {
    std::string list;
    auto add = [&](const char* s) { list += (list.empty() ? "" : ",") + std::string(s); };
    (void)add;  // unused when no sanitizer is on
#if MEMDIAG_ASAN
    add("address");
#endif
#if MEMDIAG_TSAN
    add("thread");
#endif
#if defined(__has_feature)
#if __has_feature(memory_sanitizer)
    add("memory");
#endif
#if __has_feature(undefined_behavior_sanitizer)
    add("undefined");
#endif
#endif  // __has_feature
#if defined(__clang__)
    const char* source = "__has_feature(*_sanitizer)";
#else
    const char* source = "__SANITIZE_ADDRESS__, __SANITIZE_THREAD__ (UBSan has no macro)";
#endif
    return built(list.empty() ? "none" : list, source);
}

/// Returns whether frame pointers are kept, when the build says so.
inline fact<std::string> frame_pointers() {
#if !defined(__OPTIMIZE__) && (defined(__GNUC__) || defined(__clang__))
    return built("on", "no __OPTIMIZE__: unoptimized builds keep frame pointers");
#else
    return fact<std::string>::unknown("compilers define no macro for -fno-omit-frame-pointer; check the build flags",
                                      "compiler macros");
#endif
}

/// Returns the byte order of this build.
inline fact<std::string> endianness() {
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__)
    return built(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? "little" : "big", "__BYTE_ORDER__");
#else
    std::uint32_t probe = 1;
    unsigned char first;
    std::memcpy(&first, &probe, 1);
    return built(first == 1 ? "little" : "big", "byte order of a uint32_t at run time");
#endif
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

/// Fills the build's facts: architecture, pointer width, compiler, library,
/// standard and build switches, all from compiler macros.
inline void collect_build(report& r) {
    r.arch = built(MEMDIAG_ARCH_NAME, "compiler macros (MEMDIAG_ARCH_NAME)");
    r.pointer_bits = fact<std::uint64_t>::of(sizeof(void*) * 8, "sizeof(void*) * 8");
    r.endianness = endianness();
    r.compiler = compiler();
    r.stdlib = stdlib();
    r.cxx_standard = cxx_standard();
#if defined(NDEBUG)
    r.ndebug = built("on", "NDEBUG");
#else
    r.ndebug = built("off", "NDEBUG");
#endif
#if defined(__OPTIMIZE__)
    r.optimized = built("on", "__OPTIMIZE__");
#elif defined(__GNUC__) || defined(__clang__)
    r.optimized = built("off", "__OPTIMIZE__");
#else
    r.optimized = fact<std::string>::unknown("compiler defines no optimization macro");
#endif
    r.sanitizers = sanitizers();
    r.frame_pointers = frame_pointers();
    r.exceptions = built(on_off(MEMDIAG_HAS_EXCEPTIONS), "MEMDIAG_HAS_EXCEPTIONS");
    r.rtti = built(on_off(MEMDIAG_HAS_RTTI), "MEMDIAG_HAS_RTTI");
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

}  // namespace detail

/// Learns the process's memory world: build facts from compiler macros, the
/// rest from the OS (see detail/os.hpp). Reads a few small files; never throws
/// on missing or malformed ones, which become "unknown" items.
inline report collect() {
    report r;
    detail::collect_build(r);
    detail::collect_machine(r);
    detail::collect_limits(r);
    return r;
}

}  // namespace env
}  // namespace memdiag
