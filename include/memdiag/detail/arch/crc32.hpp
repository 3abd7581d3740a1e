// memdiag/detail/arch/crc32.hpp - CRC-32 as gzip uses it (ISO-HDLC, reflected
// polynomial 0xEDB88320), with a fast path per architecture.
//
// Every implementation is exposed by name so tests and benchmarks can compare
// them; crc32() dispatches to the best one this build and CPU offer:
//   MEMDIAG_PORTABLE      bytewise table lookup (the reference)
//   aarch64               ARMv8 CRC32 instructions (checked at run time on Linux
//                         unless the compiler already targets +crc), else slicing-by-8
//   everything else       slicing-by-8 (portable C++, 8 KiB of tables)
// Note the x86 SSE4.2 `crc32` instruction computes CRC-32C (Castagnoli), a
// different polynomial, so it cannot serve gzip.
//
// Convention (zlib's): the running value starts at 0 and the pre/post inversion
// happens inside, so crc32(crc32(0, a), b) == crc32(0, a + b).
#pragma once

#include <cstddef>
#include <cstdint>

#include "../../config.hpp"

// ---- the one platform choice -------------------------------------------------
#if MEMDIAG_PORTABLE
#define MEMDIAG_CRC32_BYTEWISE 1
#elif MEMDIAG_ARCH_AARCH64 && defined(__ARM_FEATURE_CRC32)
#define MEMDIAG_CRC32_ARMV8 1  // the compiler targets +crc: always present
#include <arm_acle.h>
#elif MEMDIAG_ARCH_AARCH64 && MEMDIAG_OS_LINUX && (defined(__GNUC__) || defined(__clang__))
#define MEMDIAG_CRC32_ARMV8 1
#define MEMDIAG_CRC32_ARMV8_RUNTIME 1  // ask the kernel (HWCAP_CRC32) once
#include <sys/auxv.h>
#if !defined(__clang__)
#include <arm_acle.h>  // GCC declares the intrinsics under its own target pragma
#endif
#else
#define MEMDIAG_CRC32_SLICING8 1
#endif  // MEMDIAG_PORTABLE / aarch64 / other
#ifndef MEMDIAG_CRC32_BYTEWISE
#define MEMDIAG_CRC32_BYTEWISE 0
#endif
#ifndef MEMDIAG_CRC32_ARMV8
#define MEMDIAG_CRC32_ARMV8 0
#endif
#ifndef MEMDIAG_CRC32_ARMV8_RUNTIME
#define MEMDIAG_CRC32_ARMV8_RUNTIME 0
#endif
#ifndef MEMDIAG_CRC32_SLICING8
#define MEMDIAG_CRC32_SLICING8 0
#endif

namespace memdiag {
namespace detail {

/// Lookup tables for the table-driven CRC-32 paths: t[0] is the classic bytewise
/// table, t[k][b] advances t[k-1][b] by one more zero byte (slicing-by-8).
struct crc32_tables {
    std::uint32_t t[8][256];
};

/// Builds crc32_tables at compile time.
constexpr crc32_tables make_crc32_tables() noexcept {
    crc32_tables tab{};
    for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t c = i;
        for (int bit = 0; bit < 8; ++bit) c = (c & 1u) ? (c >> 1) ^ 0xEDB88320u : (c >> 1);
        tab.t[0][i] = c;
    }
    for (int k = 1; k < 8; ++k)
        for (int i = 0; i < 256; ++i) {
            std::uint32_t prev = tab.t[k - 1][i];
            tab.t[k][i] = (prev >> 8) ^ tab.t[0][prev & 0xFFu];
        }
    return tab;
}

/// The CRC-32 tables (one copy per program: an inline variable).
inline constexpr crc32_tables crc32_table = make_crc32_tables();

/// CRC-32, one table lookup per byte: the portable reference implementation.
inline std::uint32_t crc32_bytewise(std::uint32_t crc, const void* data, std::size_t n) noexcept {
    const unsigned char* p = static_cast<const unsigned char*>(data);
    std::uint32_t c = ~crc;
    for (std::size_t i = 0; i < n; ++i) c = (c >> 8) ^ crc32_table.t[0][(c ^ p[i]) & 0xFFu];
    return ~c;
}

/// Reads 4 bytes as a little-endian value whatever the host byte order (one load
/// on little-endian targets).
inline std::uint32_t crc32_load_le32(const unsigned char* p) noexcept {
    return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
           (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}

/// CRC-32, eight bytes per step through eight tables (slicing-by-8): portable C++.
inline std::uint32_t crc32_slicing8(std::uint32_t crc, const void* data, std::size_t n) noexcept {
    const unsigned char* p = static_cast<const unsigned char*>(data);
    const auto& t = crc32_table.t;
    std::uint32_t c = ~crc;
    while (n >= 8) {
        std::uint32_t lo = crc32_load_le32(p) ^ c;
        std::uint32_t hi = crc32_load_le32(p + 4);
        c = t[7][lo & 0xFFu] ^ t[6][(lo >> 8) & 0xFFu] ^ t[5][(lo >> 16) & 0xFFu] ^ t[4][lo >> 24] ^
            t[3][hi & 0xFFu] ^ t[2][(hi >> 8) & 0xFFu] ^ t[1][(hi >> 16) & 0xFFu] ^ t[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n-- != 0) c = (c >> 8) ^ t[0][(c ^ *p++) & 0xFFu];
    return ~c;
}

#if MEMDIAG_CRC32_ARMV8

/// True when this CPU has the ARMv8 CRC32 instructions.
inline bool crc32_armv8_available() noexcept {
#if MEMDIAG_CRC32_ARMV8_RUNTIME
    // HWCAP_CRC32 is bit 7 of AT_HWCAP on arm64 Linux (asm/hwcap.h); spelled out
    // so the check does not depend on the kernel headers installed.
    static const bool available = (getauxval(AT_HWCAP) & (1ul << 7)) != 0;
    return available;
#else
    return true;
#endif  // MEMDIAG_CRC32_ARMV8_RUNTIME
}

#if MEMDIAG_CRC32_ARMV8_RUNTIME && defined(__clang__)
#define MEMDIAG_CRC32_TARGET __attribute__((target("crc")))
#define MEMDIAG_CRC32_D(c, v) __builtin_arm_crc32d(c, v)
#define MEMDIAG_CRC32_B(c, v) __builtin_arm_crc32b(c, v)
#elif MEMDIAG_CRC32_ARMV8_RUNTIME
#define MEMDIAG_CRC32_TARGET __attribute__((target("+crc")))
#define MEMDIAG_CRC32_D(c, v) __crc32d(c, v)
#define MEMDIAG_CRC32_B(c, v) __crc32b(c, v)
#else
#define MEMDIAG_CRC32_TARGET
#define MEMDIAG_CRC32_D(c, v) __crc32d(c, v)
#define MEMDIAG_CRC32_B(c, v) __crc32b(c, v)
#endif  // clang / gcc / compiler already targets +crc

/// CRC-32 with the ARMv8 CRC32X/CRC32B instructions (gzip polynomial, unlike the
/// CRC32C* ones). Precondition: crc32_armv8_available().
MEMDIAG_CRC32_TARGET inline std::uint32_t crc32_armv8(std::uint32_t crc, const void* data,
                                                      std::size_t n) noexcept {
    const unsigned char* p = static_cast<const unsigned char*>(data);
    std::uint32_t c = ~crc;
    while (n != 0 && (reinterpret_cast<std::uintptr_t>(p) & 7u) != 0) {
        c = MEMDIAG_CRC32_B(c, *p++);
        --n;
    }
    while (n >= 8) {
        std::uint64_t v;
        __builtin_memcpy(&v, p, 8);
        c = MEMDIAG_CRC32_D(c, v);
        p += 8;
        n -= 8;
    }
    while (n-- != 0) c = MEMDIAG_CRC32_B(c, *p++);
    return ~c;
}
#undef MEMDIAG_CRC32_TARGET
#undef MEMDIAG_CRC32_D
#undef MEMDIAG_CRC32_B

#endif  // MEMDIAG_CRC32_ARMV8

/// Name of the implementation crc32() uses in this build on this CPU.
inline const char* crc32_implementation() noexcept {
#if MEMDIAG_CRC32_BYTEWISE
    return "bytewise";
#elif MEMDIAG_CRC32_ARMV8
    return crc32_armv8_available() ? "armv8-crc" : "slicing-by-8";
#else
    return "slicing-by-8";
#endif
}

/// Updates the running CRC-32 `crc` (0 to start) with n bytes at data.
inline std::uint32_t crc32(std::uint32_t crc, const void* data, std::size_t n) noexcept {
#if MEMDIAG_CRC32_BYTEWISE
    return crc32_bytewise(crc, data, n);
#elif MEMDIAG_CRC32_ARMV8
    return crc32_armv8_available() ? crc32_armv8(crc, data, n) : crc32_slicing8(crc, data, n);
#else
    return crc32_slicing8(crc, data, n);
#endif
}

}  // namespace detail
}  // namespace memdiag
