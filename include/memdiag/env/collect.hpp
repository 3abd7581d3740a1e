// memdiag/env/collect.hpp - env::collect(): the report's facts, one collector
// per source: the build (compiler macros), the machine (OS and CPU), and the
// limits (rlimits, cgroups, job objects, overcommit). The OS side is
// detail/os.hpp, the parsers detail/env_parse.hpp.
//
// The build's facts are read here, inline, from the macros of the unit that
// calls collect() (its -std, -m32, -O, sanitizers, standard library); the
// collectors are in detail/env_collect_impl.hpp: included at the end of this
// header, or, with MEMDIAG_SEPARATE_IMPLEMENTATION (config.hpp), by
// memdiag/implementation.hpp only.
#pragma once

#if __has_include(<version>)
#include <version>  // standard library identification macros
#endif

#include "../config.hpp"
#include "report.hpp"

namespace memdiag {
namespace env {

namespace detail {

/// What the compiler macros of one translation unit say about its build, as
/// plain values: filled inline by this_build() in the unit that calls
/// collect(), so the report describes that unit whichever unit compiled the
/// collectors.
struct build_macros {
    const char* arch = MEMDIAG_ARCH_NAME;  ///< MEMDIAG_ARCH_NAME
    unsigned pointer_bits = 0;             ///< sizeof(void*) * 8
    int byte_order = 0;                    ///< 1 little, 2 big, 0 no macro (probed at run time)
    int compiler = 0;                      ///< 0 unknown, 1 gcc, 2 clang, 3 Apple clang, 4 msvc
    const char* clang_version = "";        ///< __clang_version__ (clang)
    long compiler_version[3] = {0, 0, 0};  ///< gcc major, minor, patch; msvc: _MSC_FULL_VER first
    bool mingw = false;                    ///< __MINGW32__
    int stdlib = 0;                        ///< 0 unknown, 1 libc++, 2 libstdc++, 3 MSVC STL
    long stdlib_version = 0;               ///< _LIBCPP_VERSION, _GLIBCXX_RELEASE (0: not defined), _MSVC_STL_VERSION
    long stdlib_date = 0;                  ///< __GLIBCXX__
    long cplusplus = 0;                    ///< __cplusplus, or _MSVC_LANG
    bool msvc_lang = false;                ///< cplusplus came from _MSVC_LANG
    bool ndebug = false;                   ///< NDEBUG defined
    int optimized = -1;                    ///< 1 __OPTIMIZE__, 0 gcc/clang without it, -1 no such macro
    bool asan = false;                     ///< address sanitizer
    bool tsan = false;                     ///< thread sanitizer
    bool msan = false;                     ///< memory sanitizer (clang)
    bool ubsan = false;                    ///< undefined behaviour sanitizer (clang only says)
    bool clang = false;                    ///< __clang__: sanitizers come from __has_feature
    bool unoptimized_gnu = false;          ///< gcc or clang without __OPTIMIZE__ (frame pointers kept)
    bool exceptions = false;               ///< MEMDIAG_HAS_EXCEPTIONS
    bool rtti = false;                     ///< MEMDIAG_HAS_RTTI
};

/// Returns this translation unit's build_macros.
inline build_macros this_build() noexcept {
    build_macros b;
    b.pointer_bits = unsigned(sizeof(void*) * 8);
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__)
    b.byte_order = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? 1 : 2;
#endif
#if defined(__clang__)
    b.compiler = 2;
#if defined(__apple_build_version__)
    b.compiler = 3;
#endif
    b.clang_version = __clang_version__;
#elif defined(__GNUC__)
    b.compiler = 1;
    b.compiler_version[0] = __GNUC__;
    b.compiler_version[1] = __GNUC_MINOR__;
    b.compiler_version[2] = __GNUC_PATCHLEVEL__;
#elif defined(_MSC_VER)
    b.compiler = 4;
    b.compiler_version[0] = long(_MSC_FULL_VER);
#endif  // compiler
#if defined(__MINGW32__)
    b.mingw = true;
#endif
#if defined(_LIBCPP_VERSION)
    b.stdlib = 1;
    b.stdlib_version = long(_LIBCPP_VERSION);
#elif defined(__GLIBCXX__)
    b.stdlib = 2;
    b.stdlib_date = long(__GLIBCXX__);
#if defined(_GLIBCXX_RELEASE)
    b.stdlib_version = long(_GLIBCXX_RELEASE);
#endif
#elif defined(_MSVC_STL_VERSION)
    b.stdlib = 3;
    b.stdlib_version = long(_MSVC_STL_VERSION);
#endif  // standard library
#if defined(_MSVC_LANG)
    b.cplusplus = long(_MSVC_LANG);
    b.msvc_lang = true;
#else
    b.cplusplus = long(__cplusplus);
#endif
#if defined(NDEBUG)
    b.ndebug = true;
#endif
#if defined(__OPTIMIZE__)
    b.optimized = 1;
#elif defined(__GNUC__) || defined(__clang__)
    b.optimized = 0;
    b.unoptimized_gnu = true;
#endif
    b.asan = MEMDIAG_ASAN != 0;
    b.tsan = MEMDIAG_TSAN != 0;
#if defined(__has_feature)
#if __has_feature(memory_sanitizer)
    b.msan = true;
#endif
#if __has_feature(undefined_behavior_sanitizer)
    b.ubsan = true;
#endif
#endif  // __has_feature
#if defined(__clang__)
    b.clang = true;
#endif
    b.exceptions = MEMDIAG_HAS_EXCEPTIONS != 0;
    b.rtti = MEMDIAG_HAS_RTTI != 0;
    return b;
}

/// Returns the report of the build described by `build` and of the machine
/// and limits this process sees (what collect() returns).
MEMDIAG_IMPL report collect_report(const build_macros& build);

}  // namespace detail

/// Learns the process's memory world: build facts from the compiler macros of
/// the calling unit, the rest from the OS (see detail/os.hpp). Reads a few
/// small files; never throws on missing or malformed ones, which become
/// "unknown" items.
inline report collect() { return detail::collect_report(detail::this_build()); }

}  // namespace env
}  // namespace memdiag

#if MEMDIAG_HEADER_ONLY
#include "../detail/env_collect_impl.hpp"
#endif
