// memdiag/detail/os/unwinder.hpp - stack capture through the platform unwinder.
//
// _Unwind_Backtrace (libgcc_s, LLVM libunwind) follows the unwind tables
// (.eh_frame), so it needs no frame pointers and works on every arch that has
// them. It costs about 160 ns per frame, over 100x the frame-pointer walk.
//
// Exports: MEMDIAG_HAS_UNWINDER (0/1), unwind_frames().
#pragma once

#include <cstddef>
#include <cstdint>

#include "../../config.hpp"
#include "../internal_section.hpp"

#if defined(__has_include)
#if __has_include(<unwind.h>) && (defined(__GNUC__) || defined(__clang__)) && !defined(_MSC_VER)
#define MEMDIAG_HAS_UNWINDER 1
#include <unwind.h>
#endif
#endif
#ifndef MEMDIAG_HAS_UNWINDER
#define MEMDIAG_HAS_UNWINDER 0
#endif

namespace memdiag {
namespace detail {

#if MEMDIAG_HAS_UNWINDER
/// State of one unwind: where to store, and how to find the first wanted frame.
struct unwind_state {
    std::uintptr_t* out;
    std::size_t max_frames;
    std::size_t skip;
    std::uintptr_t anchor;  ///< return address of the frame reported first
    std::size_t count;      ///< addresses stored
    std::size_t depth;      ///< frames seen since the anchor, anchor included
    std::size_t prelude;    ///< frames seen before the anchor (the unwinder's and ours)
    bool anchored;
};

/// _Unwind_Backtrace callback: one call per frame, innermost first.
inline _Unwind_Reason_Code unwind_one_frame(struct _Unwind_Context* ctx, void* arg) {
    auto* s = static_cast<unwind_state*>(arg);
    const std::uintptr_t ip = static_cast<std::uintptr_t>(_Unwind_GetIP(ctx));
    if (!s->anchored) {
        // The innermost frames belong to memdiag; they differ with inlining, so
        // find the caller's frame by its return address instead of counting.
        if (ip != s->anchor) return ++s->prelude > 16 ? _URC_END_OF_STACK : _URC_NO_REASON;
        s->anchored = true;
    }
    if (ip == 0) return _URC_END_OF_STACK;
    if (s->depth++ >= s->skip) s->out[s->count++] = ip;
    return s->count < s->max_frames ? _URC_NO_REASON : _URC_END_OF_STACK;
}

/// Stores up to max_frames return addresses, leaf first, starting with the frame
/// whose return address is `anchor` and dropping `skip` frames from there.
/// Returns the count; 0 if the anchor frame was not found.
MEMDIAG_NOINLINE inline std::size_t unwind_frames(std::uintptr_t* out, std::size_t max_frames, std::size_t skip,
                                                  std::uintptr_t anchor) noexcept {
    if (max_frames == 0) return 0;
    unwind_state s{out, max_frames, skip, anchor, 0, 0, 0, false};
    // The first unwind in a process may allocate (FDE caches in some unwinders).
    internal_section quiet;
    _Unwind_Backtrace(&unwind_one_frame, &s);
    return s.count;
}
#else
/// No unwinder on this platform: captures nothing.
inline std::size_t unwind_frames(std::uintptr_t*, std::size_t, std::size_t, std::uintptr_t) noexcept {
    return 0;
}
#endif  // MEMDIAG_HAS_UNWINDER

}  // namespace detail
}  // namespace memdiag
