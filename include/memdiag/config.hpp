// memdiag/config.hpp - version, user switches and platform detection.
//
// Every user switch has an #ifndef default here and a 0/1 value tested with
// #if. Define them before including any memdiag header (or on the command
// line) to change them.
#pragma once

#define MEMDIAG_VERSION_MAJOR 0
#define MEMDIAG_VERSION_MINOR 1
#define MEMDIAG_VERSION_PATCH 0
#define MEMDIAG_VERSION_STRING "0.1.0"

// ---- user switches ---------------------------------------------------------

/// MEMDIAG_DISABLE: when defined, every facility compiles to a no-op with the
/// same API, so guards can stay in production code.
#if defined(MEMDIAG_DISABLE)
#define MEMDIAG_ENABLED 0
#else
#define MEMDIAG_ENABLED 1
#endif

/// MEMDIAG_MAX_TRACKERS: trackers that count through thread-local shards. Further
/// trackers still count exactly, through shared atomics (slower).
#ifndef MEMDIAG_MAX_TRACKERS
#define MEMDIAG_MAX_TRACKERS 32
#endif

/// MEMDIAG_PEAK_PUBLISH_BYTES: how far one thread's live-byte balance may drift
/// before it is published to the tracker's shared live counter. Bounds the error
/// of peak_live_bytes when several threads allocate at once (see tracker.hpp).
#ifndef MEMDIAG_PEAK_PUBLISH_BYTES
#define MEMDIAG_PEAK_PUBLISH_BYTES (64 * 1024)
#endif

/// MEMDIAG_DEBUG: 0..3, internal consistency checks; defaults from NDEBUG.
#ifndef MEMDIAG_DEBUG
#ifdef NDEBUG
#define MEMDIAG_DEBUG 0
#else
#define MEMDIAG_DEBUG 1
#endif
#endif

/// MEMDIAG_SEPARATE_IMPLEMENTATION: defined project-wide (every translation unit,
/// e.g. -DMEMDIAG_SEPARATE_IMPLEMENTATION), the headers that have an
/// implementation split only declare their heavy non-template parts, and
/// exactly one translation unit defines them by including
/// <memdiag/implementation.hpp> (global_new.hpp does so in the unit that defines
/// MEMDIAG_REPLACE_GLOBAL_NEW). Saves compile time in every other file: see the
/// README's Performance section for which headers and how much. Not defined
/// (the default): header-only, nothing to do. Forgetting the implementation
/// unit shows as undefined references to the functions it defines.
#if defined(MEMDIAG_SEPARATE_IMPLEMENTATION)
#define MEMDIAG_HEADER_ONLY 0
#else
#define MEMDIAG_HEADER_ONLY 1
#endif

/// MEMDIAG_IMPL: starts the declaration and the definition of a split part's
/// function: `inline` when header-only (defined in every unit that includes
/// it), nothing under MEMDIAG_SEPARATE_IMPLEMENTATION (defined once).
#if MEMDIAG_HEADER_ONLY
#define MEMDIAG_IMPL inline
#else
#define MEMDIAG_IMPL
#endif

// ---- language and compiler -------------------------------------------------

#if defined(__cpp_exceptions) || defined(__EXCEPTIONS) || defined(_CPPUNWIND)
#define MEMDIAG_HAS_EXCEPTIONS 1
#else
#define MEMDIAG_HAS_EXCEPTIONS 0
#endif

#if defined(__cpp_rtti) || defined(__GXX_RTTI) || defined(_CPPRTTI)
#define MEMDIAG_HAS_RTTI 1
#else
#define MEMDIAG_HAS_RTTI 0
#endif

#if defined(__GNUC__) || defined(__clang__)
#define MEMDIAG_LIKELY(x) __builtin_expect(!!(x), 1)
#define MEMDIAG_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define MEMDIAG_NOINLINE __attribute__((noinline))
#define MEMDIAG_ALWAYS_INLINE inline __attribute__((always_inline))
#define MEMDIAG_COLD __attribute__((cold, noinline))
#else
#define MEMDIAG_LIKELY(x) (x)
#define MEMDIAG_UNLIKELY(x) (x)
#define MEMDIAG_NOINLINE __declspec(noinline)
#define MEMDIAG_ALWAYS_INLINE __forceinline
#define MEMDIAG_COLD __declspec(noinline)
#endif

// Initial-exec TLS keeps the hot path free of __tls_get_addr calls. It is only
// applied to small trivially-constructed pointers, so a memdiag-using shared
// library loaded with dlopen fits in glibc's static TLS surplus.
#if defined(__ELF__) && (defined(__GNUC__) || defined(__clang__))
#define MEMDIAG_TLS_FAST __attribute__((tls_model("initial-exec")))
#else
#define MEMDIAG_TLS_FAST
#endif

#if defined(__SANITIZE_ADDRESS__)
#define MEMDIAG_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEMDIAG_ASAN 1
#endif
#endif
#ifndef MEMDIAG_ASAN
#define MEMDIAG_ASAN 0
#endif

#if defined(__SANITIZE_THREAD__)
#define MEMDIAG_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MEMDIAG_TSAN 1
#endif
#endif
#ifndef MEMDIAG_TSAN
#define MEMDIAG_TSAN 0
#endif

// ---- operating system (one of these is 1) ------------------------------------

#if defined(__linux__)
#define MEMDIAG_OS_LINUX 1
#elif defined(__APPLE__) && defined(__MACH__)
#define MEMDIAG_OS_DARWIN 1
#elif defined(_WIN32)
#define MEMDIAG_OS_WINDOWS 1
#else
#define MEMDIAG_OS_UNKNOWN 1
#endif
#ifndef MEMDIAG_OS_LINUX
#define MEMDIAG_OS_LINUX 0
#endif
#ifndef MEMDIAG_OS_DARWIN
#define MEMDIAG_OS_DARWIN 0
#endif
#ifndef MEMDIAG_OS_WINDOWS
#define MEMDIAG_OS_WINDOWS 0
#endif
#ifndef MEMDIAG_OS_UNKNOWN
#define MEMDIAG_OS_UNKNOWN 0
#endif

#if defined(__unix__) || defined(__APPLE__)
#define MEMDIAG_POSIX 1
#else
#define MEMDIAG_POSIX 0
#endif

// ---- architecture ------------------------------------------------------------
// The 64-bit fast paths test the pointer width too: x32 and aarch64 ILP32 define
// the 64-bit arch macro with 4-byte pointers.

#if defined(__x86_64__) || defined(_M_X64)
#define MEMDIAG_ARCH_NAME "x86_64"
#if !defined(__ILP32__)
#define MEMDIAG_ARCH_X86_64 1
#endif
#elif defined(__aarch64__) || defined(_M_ARM64)
#define MEMDIAG_ARCH_NAME "aarch64"
#if !defined(__ILP32__)
#define MEMDIAG_ARCH_AARCH64 1
#endif
#elif defined(__i386__) || defined(_M_IX86)
#define MEMDIAG_ARCH_NAME "i386"
#define MEMDIAG_ARCH_X86_32 1
#elif defined(__arm__) || defined(_M_ARM)
#define MEMDIAG_ARCH_NAME "arm"
#elif defined(__riscv) && __riscv_xlen == 64
#define MEMDIAG_ARCH_NAME "riscv64"
#elif defined(__riscv)
#define MEMDIAG_ARCH_NAME "riscv32"
#elif defined(__powerpc64__)
#define MEMDIAG_ARCH_NAME "ppc64"
#elif defined(__s390x__)
#define MEMDIAG_ARCH_NAME "s390x"
#elif defined(__loongarch64)
#define MEMDIAG_ARCH_NAME "loongarch64"
#else
#define MEMDIAG_ARCH_NAME "unknown"
#endif
#ifndef MEMDIAG_ARCH_X86_64
#define MEMDIAG_ARCH_X86_64 0
#endif
#ifndef MEMDIAG_ARCH_AARCH64
#define MEMDIAG_ARCH_AARCH64 0
#endif
#ifndef MEMDIAG_ARCH_X86_32
#define MEMDIAG_ARCH_X86_32 0
#endif

/// MEMDIAG_PORTABLE: force the portable fallback of every per-arch fast path
/// (used to benchmark and test the fallbacks on x86_64 and aarch64).
#ifndef MEMDIAG_PORTABLE
#define MEMDIAG_PORTABLE 0
#endif

#if defined(__SIZEOF_POINTER__)
#define MEMDIAG_POINTER_BITS (__SIZEOF_POINTER__ * 8)
#elif defined(_WIN64)
#define MEMDIAG_POINTER_BITS 64
#else
#define MEMDIAG_POINTER_BITS 32
#endif

/// Fails compilation unless this is a 64-bit build (pointer width, not arch).
#define MEMDIAG_STATIC_REQUIRE_64BIT()                                                 \
    static_assert(sizeof(void*) == 8,                                                  \
                  "memdiag: this program requires a 64-bit build (8-byte pointers); " \
                  "build without -m32 / use a 64-bit toolchain")
