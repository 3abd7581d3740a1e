// memdiag/detail/arch/frames.hpp - the frame-pointer walk, per architecture.
//
// On x86_64 and aarch64 a function built with frame pointers stores a frame
// record {caller's frame pointer, return address} at the address held in its
// frame-pointer register (rbp / x29), so the records form a linked list up the
// stack. Walking it costs two loads per frame. Every record is checked against
// the thread's stack bounds before it is read, so a broken chain (code without
// frame pointers, a corrupted stack) ends the walk instead of faulting.
//
// With a code_check (detail/os/code_ranges.hpp) the walk also requires each
// return address to lie in a loaded object's executable segment and to follow
// a call instruction, so a data word read from a record that is not a frame
// record (code without frame pointers reuses the register) ends the walk.
//
// Exports: MEMDIAG_HAS_FRAME_WALK (0/1), MEMDIAG_NO_SANITIZE_ADDRESS,
// strip_return_address(), follows_call(), walk_frame_chain(),
// walk_needs_unwinder().
#pragma once

#include <cstddef>
#include <cstdint>

#include "../../config.hpp"
#include "../os/code_ranges.hpp"

// The walker reads saved registers in other functions' frames: ASan must not
// instrument those reads (they are bounds-checked by the walker itself).
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 8)
#define MEMDIAG_NO_SANITIZE_ADDRESS __attribute__((no_sanitize_address))
#else
#define MEMDIAG_NO_SANITIZE_ADDRESS
#endif

#if MEMDIAG_PORTABLE
#define MEMDIAG_HAS_FRAME_WALK 0
#elif MEMDIAG_ARCH_X86_64 && (defined(__GNUC__) || defined(__clang__)) && !defined(_WIN32)
#define MEMDIAG_HAS_FRAME_WALK 1
namespace memdiag {
namespace detail {
/// A saved return address as a plain code address (x86_64 stores it as is).
MEMDIAG_ALWAYS_INLINE std::uintptr_t strip_return_address(std::uintptr_t ra) noexcept { return ra; }

/// True when the bytes before ra end a call instruction: `call rel32` (E8) or
/// an indirect `call r/m` (FF /2, 2 to 7 bytes by its ModRM, SIB and
/// displacement; prefixes such as REX come before and do not matter). Reads at
/// most `avail` (>= 0) bytes below ra, which the caller knows are mapped.
MEMDIAG_NO_SANITIZE_ADDRESS inline bool follows_call(std::uintptr_t ra, std::uintptr_t avail) noexcept {
    const auto* p = reinterpret_cast<const unsigned char*>(ra);
    if (avail >= 5 && p[-5] == 0xE8) return true;
    for (unsigned len = 2; len <= 7 && len <= avail; ++len) {
        if (p[-static_cast<int>(len)] != 0xFF) continue;
        const unsigned m = p[1 - static_cast<int>(len)];
        if (((m >> 3) & 7) != 2) continue;  // FF /2 is call; /4 jmp, /6 push...
        const unsigned mod = m >> 6, rm = m & 7;
        unsigned n = 1;  // ModRM
        if (mod != 3 && rm == 4) {
            ++n;  // SIB
            if (mod == 0 && len >= 3 && (p[2 - static_cast<int>(len)] & 7) == 5) n += 4;  // SIB without base: disp32
        }
        if (mod == 1) n += 1;
        else if (mod == 2 || (mod == 0 && rm == 5)) n += 4;  // disp32, or RIP-relative
        if (1 + n == len) return true;
    }
    return false;
}
}  // namespace detail
}  // namespace memdiag
#elif MEMDIAG_ARCH_AARCH64 && (defined(__GNUC__) || defined(__clang__)) && !defined(_WIN32)
#define MEMDIAG_HAS_FRAME_WALK 1
namespace memdiag {
namespace detail {
/// A saved return address as a plain code address: with pointer authentication
/// (-mbranch-protection) the saved x30 carries a signature in its top bits.
/// XPACLRI strips it; it sits in the hint space, so older cores run it as a NOP.
MEMDIAG_ALWAYS_INLINE std::uintptr_t strip_return_address(std::uintptr_t ra) noexcept {
    register std::uintptr_t x30 __asm__("x30") = ra;
    __asm__("hint #7" : "+r"(x30));
    return x30;
}

/// True when the instruction before ra is a call: BL, BLR, or a pointer-
/// authenticating BLRAA/BLRAB(Z). `avail` bytes below ra are mapped.
MEMDIAG_NO_SANITIZE_ADDRESS inline bool follows_call(std::uintptr_t ra, std::uintptr_t avail) noexcept {
    if (avail < 4 || (ra & 3) != 0) return false;
    const std::uint32_t insn = *reinterpret_cast<const std::uint32_t*>(ra - 4);
    return (insn & 0xFC000000u) == 0x94000000u ||  // BL imm26
           (insn & 0xFFFFFC1Fu) == 0xD63F0000u ||  // BLR Xn
           (insn & 0xFEFFF800u) == 0xD63F0800u;    // BLRAA, BLRAB, BLRAAZ, BLRABZ
}
}  // namespace detail
}  // namespace memdiag
#else  // i386, x32, arm, riscv, ppc, MSVC...: the unwinder does the work
#define MEMDIAG_HAS_FRAME_WALK 0
#endif  // MEMDIAG_PORTABLE / MEMDIAG_ARCH_X86_64 / MEMDIAG_ARCH_AARCH64

#if MEMDIAG_HAS_FRAME_WALK
namespace memdiag {
namespace detail {

/// Why a frame-chain walk stopped.
enum class walk_end : unsigned char {
    full,      ///< out was filled
    outermost, ///< the chain ended cleanly (a null frame pointer or return address)
    broken,    ///< a record failed the checks: not aligned, not above the last one, outside the stack
    implausible  ///< a return address that cannot be code: the chain left frame-pointer code
};

/// Highest user-space code address the walk accepts (57-bit x86_64 with
/// 5-level paging, 52-bit aarch64), above it kernel or non-canonical values.
inline constexpr std::uintptr_t max_user_code_address =
    sizeof(std::uintptr_t) == 8 ? static_cast<std::uintptr_t>(std::uint64_t{1} << 57) : ~std::uintptr_t{0};

/// True when ra may be a return address: not in the first page (0x17 and the
/// like), not on the thread's stack [low, high), not in the kernel half. A
/// chain through code built without frame pointers often yields such values;
/// a walk that meets one stops there instead of returning it.
MEMDIAG_ALWAYS_INLINE bool plausible_return_address(std::uintptr_t ra, std::uintptr_t low,
                                                    std::uintptr_t high) noexcept {
    return ra >= 4096 && !(low <= ra && ra < high) && ra < max_user_code_address;
}

#if MEMDIAG_HAS_CODE_RANGES
/// The walk's cache of the last readable code segment hit, in registers: most
/// frames of a stack are in one or two objects.
struct code_cache {
    std::uintptr_t lo = 0, hi = 0;
};

/// True when ra can be a return address in loaded code: inside an executable
/// segment and, where the segment is readable, right after a call instruction.
MEMDIAG_ALWAYS_INLINE bool is_code_return_address(code_check& code, code_cache& c, std::uintptr_t ra) noexcept {
    if (ra - c.lo >= c.hi - c.lo) {
        switch (code.contains(ra)) {
        case code_check::verdict::not_code: return false;
        case code_check::verdict::code_opaque: return true;  // cannot read the call: trust the segment
        case code_check::verdict::code: break;
        }
        c.lo = code.segment_start();
        c.hi = code.segment_limit();
    }
    return follows_call(ra, ra - c.lo);
}
#endif  // MEMDIAG_HAS_CODE_RANGES

/// Result of walk_frame_chain.
struct walk_result {
    std::size_t count;  ///< return addresses stored
    std::size_t walked; ///< records read, skipped ones included
    walk_end end;       ///< why the walk stopped
};

/// Walks the frame-record chain starting at the record `frame`, storing return
/// addresses (leaf first) after dropping the first `skip`. A record is read only
/// if it is pointer-aligned, above the previous one and wholly inside
/// [low, high), so any input is safe to pass; a bad record ends the walk.
/// With `code`, a return address that is not in loaded code after a call
/// instruction also ends it (walk_end::implausible), before it is stored.
MEMDIAG_NO_SANITIZE_ADDRESS inline walk_result walk_frame_chain(std::uintptr_t frame, std::uintptr_t low,
                                                                std::uintptr_t high, std::uintptr_t* out,
                                                                std::size_t max_frames, std::size_t skip,
                                                                code_check* code = nullptr) noexcept {
    constexpr std::uintptr_t record = 2 * sizeof(std::uintptr_t);
    walk_result r{0, 0, walk_end::full};
#if MEMDIAG_HAS_CODE_RANGES
    code_cache cache;
#endif
    while (r.count < max_frames) {
        if ((frame & (sizeof(std::uintptr_t) - 1)) != 0 || frame < low || high < record ||
            frame > high - record) {
            r.end = walk_end::broken;
            return r;
        }
        const auto* rec = reinterpret_cast<const std::uintptr_t*>(frame);
        const std::uintptr_t next = rec[0];
        const std::uintptr_t ra = strip_return_address(rec[1]);
        if (ra == 0) {
            r.end = walk_end::outermost;
            return r;
        }
        if (!plausible_return_address(ra, low, high)) {
            r.end = walk_end::implausible;
            return r;
        }
#if MEMDIAG_HAS_CODE_RANGES
        if (code != nullptr && !is_code_return_address(*code, cache, ra)) {
            r.end = walk_end::implausible;
            return r;
        }
#else
        (void)code;
#endif
        if (r.walked++ >= skip) out[r.count++] = ra;
        if (next == 0) {
            r.end = r.count < max_frames ? walk_end::outermost : walk_end::full;
            return r;
        }
        // Strictly upwards: the stack grows down, so callers' records sit higher.
        // This also makes the walk finite on a cyclic (corrupted) chain.
        if (next <= frame) {
            r.end = walk_end::broken;
            return r;
        }
        frame = next;
    }
    return r;
}

/// Whether a walk looks like code without frame pointers, so that the unwinder
/// should redo it: it met an impossible return address (it left frame-pointer
/// code), or the chain ended (cleanly or not) within two records. Such code
/// leaves data in the frame-pointer register, often 0; real stacks, even a
/// thread's first function called from its start routine, are deeper.
inline bool walk_needs_unwinder(const walk_result& r) noexcept {
    return r.end == walk_end::implausible || (r.end != walk_end::full && r.walked <= 2);
}

}  // namespace detail
}  // namespace memdiag
#endif  // MEMDIAG_HAS_FRAME_WALK
