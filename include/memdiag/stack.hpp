// memdiag/stack.hpp - capture the calling thread's stack (return addresses).
//
// Two methods:
//  - frame-pointer walk (x86_64, aarch64): follows the chain of frame records,
//    about 1.3 ns per frame (21 ns for 16 frames on a 2026 x86_64 VM), safe on a
//    broken chain (every record is checked against the thread's stack bounds
//    before it is read);
//  - unwinder (_Unwind_Backtrace, every platform that has <unwind.h>): reads the
//    unwind tables, needs no frame pointers, about 160 ns per frame (the same
//    as glibc's backtrace()). It trusts the stack it reads: a corrupted stack
//    can crash it, as it can crash backtrace().
//
// Compiler flags for a complete fast path
// ---------------------------------------
// The walk sees a function only if it keeps a frame record. Build the program
// (and any library whose frames should appear) with
//     -fno-omit-frame-pointer
// GCC and Clang omit frame pointers at -O1 and above otherwise. On aarch64 (and
// with clang on some targets) leaf functions still drop their record unless
//     -mno-omit-leaf-frame-pointer
// is also given; a function that allocates is never a leaf, so this only matters
// for code that reaches capture_stack through hand-written or signal frames,
// but it is cheap and keeps other profilers complete too.
// Without these flags: a function without a record is missing from the stack
// (its callee's record links straight to an outer frame), and if it reuses the
// frame-pointer register for data the chain breaks there and the walk stops. In
// stack_method::automatic a walk that ends within the first two frames is
// redone with the unwinder, so a program built entirely without frame pointers
// still gets full stacks, at the unwinder's price. Libraries built without
// frame pointers (Debian's libc and libstdc++) cost the frames inside them.
// Tail calls (-foptimize-sibling-calls, on at -O2) remove the calling frame
// with either method; -fno-optimize-sibling-calls keeps it.
//
// Never an impossible frame (ELF platforms): every address either method
// returns lies in an executable segment of a loaded object, and the walk's
// also follows a call instruction (detail/os/code_ranges.hpp). A walk that
// meets any other word (code without frame pointers left data where a frame
// record should be) ends there, and automatic redoes the stack with the
// unwinder. A stale return address of an earlier call passes every check.
#pragma once

#include <cstddef>
#include <cstdint>

#include "config.hpp"
#include "detail/arch/frames.hpp"
#include "detail/os/code_ranges.hpp"
#include "detail/os/thread_stack.hpp"
#include "detail/os/unwinder.hpp"

namespace memdiag {

/// How capture_stack walks the stack.
enum class stack_method {
    /// The frame-pointer walk where the platform has one, redone with the
    /// unwinder when the chain ends within the first two frames (code built
    /// without frame pointers). Elsewhere the unwinder.
    automatic,
    /// The frame-pointer walk only; where the platform has none, the unwinder.
    frame_pointers,
    /// The unwinder (_Unwind_Backtrace) only; 0 frames where there is none.
    unwinder
};

/// True when this build has a frame-pointer walk (x86_64 or aarch64, GCC or
/// Clang, not MEMDIAG_PORTABLE); otherwise every method uses the unwinder.
inline constexpr bool has_frame_pointer_walk = MEMDIAG_HAS_FRAME_WALK != 0;

/// True when this build has an unwinder (<unwind.h>).
inline constexpr bool has_unwinder = MEMDIAG_HAS_UNWINDER != 0;

/// Captures up to max_frames return addresses of the caller's stack, leaf first,
/// skipping `skip` innermost frames (of the caller). Returns the count.
///
/// out[0] is the return address of this call, i.e. an address inside the
/// function that called capture_stack; out[1] is inside its caller, and so on.
/// With skip = 1 a hook (say operator new) starts the stack at its own caller.
/// The entries are return addresses: the call instruction ends just before
/// each one, so symbolize `address - 1` (pprof's Location.address).
/// max_frames is the depth limit: the walk stops there.
///
/// Never allocates through the observed heap and never calls operator new, so
/// it may be called from allocation hooks; the first call on each thread looks
/// up the thread's stack bounds (inside an internal_section). Stacks other than
/// the thread's own (signal alternate stacks, coroutines with their own stacks)
/// fail the bounds check: frame_pointers then captures nothing and automatic
/// uses the unwinder. The first call in the process, and a call that meets an
/// address outside the known code after objects were loaded or unloaded,
/// list the loaded objects (dl_iterate_phdr, which takes the loader's lock):
/// like the unwinder, never call it while holding a lock that code running
/// under the loader's lock (dlopen, dlclose, static constructors) may wait for.
/// Under MEMDIAG_DISABLE it captures nothing.
MEMDIAG_NOINLINE MEMDIAG_NO_SANITIZE_ADDRESS inline std::size_t capture_stack(
    std::uintptr_t* out, std::size_t max_frames, std::size_t skip = 0,
    stack_method method = stack_method::automatic) noexcept {
#if MEMDIAG_ENABLED
    if (out == nullptr || max_frames == 0) return 0;
#if MEMDIAG_HAS_CODE_RANGES
    detail::code_check code;
    detail::code_check* const check = code.usable() ? &code : nullptr;
#else
    detail::code_check* const check = nullptr;
#endif
#if MEMDIAG_HAS_FRAME_WALK
    if (method != stack_method::unwinder) {
        const detail::stack_bounds b = detail::current_stack_bounds();
        // This function's own record comes first: its return address is out[0].
        const auto first = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
        detail::walk_result r = detail::walk_frame_chain(first, b.low, b.high, out, max_frames, skip, check);
#if MEMDIAG_HAS_CODE_RANGES
        if (check != nullptr && !code.stable()) {  // the table was rebuilt meanwhile (a dlopen): once more
            detail::code_check again;
            r = detail::walk_frame_chain(first, b.low, b.high, out, max_frames, skip, &again);
        }
#endif
        if (method == stack_method::frame_pointers || !detail::walk_needs_unwinder(r)) return r.count;
    }
#else
    (void)method;
#endif  // MEMDIAG_HAS_FRAME_WALK
#if MEMDIAG_HAS_UNWINDER
    auto anchor = reinterpret_cast<std::uintptr_t>(__builtin_return_address(0));
#if MEMDIAG_HAS_FRAME_WALK
    anchor = detail::strip_return_address(anchor);
#endif
    std::size_t n = detail::unwind_frames(out, max_frames, skip, anchor);
#if MEMDIAG_HAS_CODE_RANGES
    // The unwinder reports the frame it could not unwind further too; its
    // address may be anything (a corrupted return address): end before it.
    if (check != nullptr) {
        for (std::size_t i = 0; i < n; ++i) {
            if (code.contains(out[i]) == detail::code_check::verdict::not_code) {
                n = i;
                break;
            }
        }
    }
#else
    (void)check;
#endif
    return n;
#else
    (void)check;
    return 0;
#endif  // MEMDIAG_HAS_UNWINDER
#else
    (void)out;
    (void)max_frames;
    (void)skip;
    (void)method;
    return 0;
#endif  // MEMDIAG_ENABLED
}

}  // namespace memdiag
