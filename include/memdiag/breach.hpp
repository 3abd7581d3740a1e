// memdiag/breach.hpp - what a budget breach is and how it is reported.
//
// The policies (throw, report, abort, callback), the limit kinds, breach_info
// with the stack of the allocation that crossed, the report text
// (format_breach) and the exception (budget_exceeded). Scoped budgets that
// produce breaches: budget.hpp.
//
// The report's symbolizing and formatting (format_breach, the breach stack)
// are defined in detail/budget_impl.hpp: included at the end of this header,
// or, with MEMDIAG_SEPARATE_IMPLEMENTATION (config.hpp), only by
// memdiag/implementation.hpp, so detail/symbols.hpp stays out of user units.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>

#include "detail/frame_filter.hpp"
#include "detail/internal_section.hpp"
#include "global_new.hpp"  // malloc_hook_installed() (declarations only without MEMDIAG_REPLACE_GLOBAL_NEW)
#include "stack.hpp"
#include "tracker.hpp"

namespace memdiag {

/// What a budget does when an allocation would cross one of its limits.
///
/// Without exceptions (-fno-exceptions) throw_exception cannot throw: the
/// allocation fails instead (nothrow forms and the C functions return null;
/// throwing forms and tracking allocators abort as on exhaustion), and a
/// max_live_bytes breach at scope end is counted in breaches() only.
enum class breach_policy {
    throw_exception,   ///< the allocation throws budget_exceeded (a std::bad_alloc); nothrow forms return null
    report,            ///< print the breach report to stderr once per crossing, let the allocation proceed
    report_and_abort,  ///< print the report and std::abort()
    callback           ///< call the limits' on_breach function once per crossing, let the allocation proceed
};
// A crossing: an allocation takes a figure over its limit. The allocations
// after it that keep the figure over belong to the same crossing (no second
// report, callback or count); max_peak_bytes crosses again once live bytes
// fell back under it. An allocation refused by throw_exception leaves the
// figure under the limit, so each refusal is a crossing.

/// Which limit a breach crossed.
enum class limit_kind {
    bytes,        ///< total bytes allocated inside the scope
    allocations,  ///< number of allocations inside the scope
    peak_bytes,   ///< live bytes grown inside the scope, at any moment
    live_bytes    ///< bytes allocated inside the scope and still held when it ends (see limits::max_live_bytes)
};

/// Name of a limit, as used in reports ("max_bytes" ...).
constexpr const char* to_string(limit_kind k) noexcept {
    return k == limit_kind::bytes         ? "max_bytes"
           : k == limit_kind::allocations ? "max_allocations"
           : k == limit_kind::peak_bytes  ? "max_peak_bytes"
                                          : "max_live_bytes";
}

/// Where a scope was opened: file and line (use MEMDIAG_HERE).
struct source_place {
    const char* file = nullptr;
    int line = 0;
    /// As a default argument, the place of the call: budgets opened without
    /// MEMDIAG_HERE still say where they were opened. {nullptr, 0} on compilers
    /// without __builtin_FILE.
#if defined(__GNUC__) || defined(__clang__) || (defined(_MSC_VER) && _MSC_VER >= 1926)
    static constexpr source_place caller(const char* f = __builtin_FILE(), int l = __builtin_LINE()) noexcept {
        return source_place{f, l};
    }
#else
    static constexpr source_place caller() noexcept { return source_place{}; }
#endif
};

/// The place of the expression it is written in.
#define MEMDIAG_HERE (::memdiag::source_place{__FILE__, __LINE__})

/// Everything known about a breach; handed to callbacks and formatted in reports.
struct breach_info {
    limit_kind which = limit_kind::bytes;
    std::uint64_t limit = 0;            ///< the limit crossed
    std::uint64_t attempted = 0;        ///< the figure the allocation would have made it
    std::size_t allocation_size = 0;    ///< size of the allocation that crossed it (0 at scope end)
    const char* budget_name = "budget";
    source_place where;                 ///< where the budget was opened
    bool process_wide = false;
    bool joined_thread = false;         ///< crossed by a thread joined to the budget (budget_join)
    bool at_scope_end = false;          ///< found when the scope ended (live_bytes)
    std::uint64_t live_allocations = 0;  ///< at scope end: allocations still held
    /// Return addresses of the allocation that crossed the limit, its caller
    /// first (memdiag's and operator new's frames removed); depth 0 at scope end.
    std::uintptr_t stack[16] = {};
    std::size_t stack_depth = 0;
};

namespace detail {
/// Appends "  stack:" and one line per frame of b.stack, symbolized in-process.
MEMDIAG_IMPL std::size_t format_breach_stack(const breach_info& b, char* buf, std::size_t size) noexcept;

/// Captures the stack of the allocation that crossed a limit, without the
/// hook's frames. Calls out (unwinder, symbol tables, dladdr): never call it
/// with a memdiag lock held.
MEMDIAG_IMPL void capture_breach_stack(breach_info& info) noexcept;
}  // namespace detail

/// Writes the breach report, one readable block, into buf (never allocates).
/// Returns the number of characters written (truncated to size - 1).
MEMDIAG_IMPL std::size_t format_breach(const breach_info& b, char* buf, std::size_t size) noexcept;

namespace detail {
/// Set by the budget layer just before it throws budget_exceeded: the object
/// being built is memdiag's own, allocated without charging budgets.
inline thread_local bool t_throwing_budget_exceeded = false;
/// Set when such an object is destroyed: its memory is freed right after (by
/// the C++ runtime, through free when memdiag replaces it); budget_freed does
/// not charge that free to budgets.
inline thread_local bool t_uncharged_free_pending = false;

/// Whether this budget_exceeded is the one memdiag threw; copies are not.
class thrown_by_memdiag {
public:
    thrown_by_memdiag() noexcept : on_(t_throwing_budget_exceeded) { t_throwing_budget_exceeded = false; }
    thrown_by_memdiag(const thrown_by_memdiag&) noexcept {}
    thrown_by_memdiag& operator=(const thrown_by_memdiag&) noexcept { return *this; }
    ~thrown_by_memdiag() {
        // Only when the free will reach the budget layer: memdiag replaces the
        // C functions and the thread has scopes open (otherwise the free takes
        // the fast path and charges nothing anyway).
        if (!on_ || !malloc_hook_installed()) return;
        const thread_state* s = tls_head.state;
        if ((s != nullptr && s->scopes != nullptr) ||
            (g_registry.global_slow.load(std::memory_order_relaxed) & slow_process_scope) != 0)
            t_uncharged_free_pending = true;
    }

private:
    bool on_ = false;
};
}  // namespace detail

/// Thrown by an allocation that would cross a budget with breach_policy::throw_exception.
/// A std::bad_alloc, so code that handles running out of memory handles it too.
/// Exception safety: construction, copies and every accessor are noexcept
/// (the message lives in a fixed buffer).
class budget_exceeded : public std::bad_alloc {
public:
    /// Records the breach and formats the message (no allocation).
    explicit budget_exceeded(const breach_info& info) noexcept : info_(info) {
        format_breach(info_, message_, sizeof message_);
        std::strncpy(name_, info.budget_name ? info.budget_name : "", sizeof name_ - 1);
        info_.budget_name = name_;
    }
    /// The breach report (which limit, the limit, the attempted total, where).
    const char* what() const noexcept override { return message_; }
    /// Everything known about the breach.
    const breach_info& info() const noexcept { return info_; }
    /// The limit crossed.
    limit_kind which() const noexcept { return info_.which; }

private:
    breach_info info_;
    char name_[64] = {};
    char message_[2048] = {};
    detail::thrown_by_memdiag origin_;  // last member: destroyed first
};

/// A breach callback: receives the breach and the context given with it.
using breach_callback = void (*)(const breach_info&, void* context);

}  // namespace memdiag

#if MEMDIAG_HEADER_ONLY
#include "detail/budget_impl.hpp"
#endif
