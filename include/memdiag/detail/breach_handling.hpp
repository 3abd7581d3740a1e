// memdiag/detail/breach_handling.hpp - noting a crossing, and acting on it by policy.
//
// A crossing is noted under whatever lock protects the scope's counters
// (note_crossing touches only them); acting on it (stack capture, symbols,
// report, callback, throw) calls out, so it always runs with no memdiag lock
// held: process-scope breaches are queued in pending_breaches and acted on
// after the lock is released.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "../breach.hpp"
#include "../limits.hpp"
#include "../tracker.hpp"
#include "internal_section.hpp"
#include "scope_link.hpp"

namespace memdiag {
namespace detail {

/// An allocation would go over l's limit info.which. Returns true when that
/// starts a new crossing (counted in breaches(), to be acted on), false when
/// the figure is already over since an earlier allocation that was let through.
/// A refused allocation (throw_exception) leaves the figure under the limit, so
/// each refusal is a crossing of its own. Touches only the scope's counters:
/// safe under the process-scope lock.
inline bool note_crossing(scope_link& l, breach_info& info) noexcept {
    const unsigned bit = 1u << static_cast<unsigned>(info.which);
    const bool refused = l.policy == breach_policy::throw_exception;
    if (!refused && !info.at_scope_end && (crossing_bits(l).fetch_or(bit) & bit) != 0) return false;
    if (l.joined) ++l.shared->joined_breaches;
    else ++l.breaches;
    info.budget_name = l.name;
    info.where = l.where;
    info.process_wide = l.process_wide;
    info.joined_thread = l.joined;
    return true;
}

/// Acts on a breach noted by note_crossing, by the budget's policy. Returns
/// whether the allocation may proceed. Captures the stack, symbolizes, writes
/// reports and calls the callback: it calls out, so it runs with no memdiag
/// lock held (process scopes are noted under their lock and acted on after).
MEMDIAG_COLD inline bool act_on_breach(breach_policy policy, const limits& lim, breach_info& info, bool may_throw) {
    if (!info.at_scope_end) {
        internal_section quiet;
        capture_breach_stack(info);
    }
    auto dump_if_asked = [&] {
        if (!lim.dumps_on_breach()) return;
        auto dump = g_handlers.breach_dump.load(std::memory_order_acquire);
        if (dump == nullptr) return;
        char reason[160];
        std::snprintf(reason, sizeof reason, "budget '%s' exceeded: %s",
                      info.budget_name ? info.budget_name : "budget", to_string(info.which));
        dump(reason);
    };
    if (policy == breach_policy::throw_exception) {
        if (!may_throw || !MEMDIAG_HAS_EXCEPTIONS) {
            // A C function, a nothrow form or a build without exceptions: the
            // caller only sees null. Say which allocation was refused, or the
            // next allocation that can throw gets the blame.
            internal_section quiet;
            char buf[2048];
            std::size_t n = format_breach(info, buf, sizeof buf);
            const char note[] = "  refused:   the allocation returned null (it cannot throw)\n";
            if (n + sizeof note < sizeof buf) {
                std::memcpy(buf + n, note, sizeof note);
                n += sizeof note - 1;
            }
            std::fwrite(buf, 1, n, stderr);
            dump_if_asked();
            return false;
        }
        {
            internal_section quiet;
            dump_if_asked();
        }
#if MEMDIAG_HAS_EXCEPTIONS
        // The exception object comes from malloc and is freed by whoever catches
        // it. Its allocation is counted as a nested event: trackers count it,
        // budgets are not charged (which would breach again, or use up the
        // budget of code that catches and goes on) and fault injection does not
        // fail it. Its free is then not charged to budgets either (see
        // ~budget_exceeded), or an enclosing leak_check would go negative.
        nested_event counted_not_charged;
        t_throwing_budget_exceeded = true;
        throw budget_exceeded(info);
#else
        return false;
#endif
    }
    internal_section quiet;  // reporting must not count, nor recurse into the budget
    switch (policy) {
        case breach_policy::throw_exception:
            return false;  // handled above
        case breach_policy::report: {
            char buf[2048];
            const std::size_t n = format_breach(info, buf, sizeof buf);
            std::fwrite(buf, 1, n, stderr);
            dump_if_asked();
            return true;
        }
        case breach_policy::report_and_abort: {
            char buf[2048];
            const std::size_t n = format_breach(info, buf, sizeof buf);
            std::fwrite(buf, 1, n, stderr);
            dump_if_asked();
            std::fflush(stderr);
            std::abort();
        }
        case breach_policy::callback:
            dump_if_asked();
            if (auto f = lim.callback()) f(info, lim.callback_context());
            return true;
    }
    return true;
}

/// Notes and acts on a breach of a scope of this thread (no lock held).
MEMDIAG_COLD inline bool on_breach(scope_link& l, breach_info& info, bool may_throw) {
    if (!note_crossing(l, info)) return true;  // already over: acted on at the crossing
    return act_on_breach(l.policy, l.lim, info, may_throw);
}

/// A process-scope breach noted under the lock, acted on once it is released.
struct pending_breach {
    breach_info info;
    breach_policy policy = breach_policy::throw_exception;
    memdiag::limits lim;  ///< a copy: the budget may end once the lock is released
};

/// Where check_scope puts the breaches it finds when acting must wait.
struct pending_breaches {
    static constexpr std::size_t capacity = 8;
    pending_breach items[capacity];
    std::size_t count = 0;
    std::uint64_t not_acted = 0;  ///< noted beyond capacity (said on stderr)
    bool refuses = false;         ///< a throw_exception breach: the allocation fails
};

/// Checks one scope's per-allocation limits against an allocation of `size`.
/// With `defer`, breaches are only noted (under the process-scope lock) and
/// queued there; otherwise they are acted on at once.
inline bool check_scope(scope_link& l, const allocation_stats& now, std::size_t size, bool may_throw,
                        pending_breaches* defer = nullptr) {
    // Saturating: a huge request (new of SIZE_MAX - 10) must read as huge, not wrap.
    constexpr std::uint64_t u64_max = ~std::uint64_t{0};
    constexpr std::int64_t i64_max = static_cast<std::int64_t>(u64_max >> 1);
    const std::uint64_t size64 = size;  // 32-bit targets: one width for the comparisons
    const std::uint64_t allocs = now.allocations + 1;
    const std::uint64_t bytes = now.bytes_allocated > u64_max - size64 ? u64_max : now.bytes_allocated + size64;
    const std::int64_t isize =
        size64 > static_cast<std::uint64_t>(i64_max) ? i64_max : static_cast<std::int64_t>(size64);
    const std::int64_t growth = now.live_bytes > i64_max - isize ? i64_max : now.live_bytes + isize;
    const std::uint64_t figures[3] = {allocs, bytes, growth > 0 ? static_cast<std::uint64_t>(growth) : 0};
    const limit_kind kinds[3] = {limit_kind::allocations, limit_kind::bytes, limit_kind::peak_bytes};
    const std::uint64_t limit_of[3] = {l.lim.allocations(), l.lim.bytes(), l.lim.peak_bytes()};
    for (int k = 0; k < 3; ++k) {
        if (figures[k] <= limit_of[k]) continue;
        breach_info info;
        info.allocation_size = size;
        info.which = kinds[k];
        info.limit = limit_of[k];
        info.attempted = figures[k];
        if (defer == nullptr) {
            if (!on_breach(l, info, may_throw)) return false;
            continue;
        }
        if (!note_crossing(l, info)) continue;
        if (defer->count == pending_breaches::capacity) {
            ++defer->not_acted;
        } else {
            pending_breach& p = defer->items[defer->count++];
            p.info = info;
            p.policy = l.policy;
            p.lim = l.lim;
        }
        if (l.policy == breach_policy::throw_exception) {
            defer->refuses = true;
            return false;
        }
    }
    return true;
}

/// Acts on the process-scope breaches noted under the lock; false when the allocation is refused.
MEMDIAG_COLD inline bool act_on_pending(pending_breaches& found, bool may_throw) {
    if (found.not_acted > 0) {
        internal_section quiet;
        std::fprintf(stderr, "memdiag: %llu more process-budget breach(es) by one allocation, not reported\n",
                     static_cast<unsigned long long>(found.not_acted));
    }
    bool ok = true;
    for (std::size_t i = 0; i < found.count; ++i) {
        pending_breach& p = found.items[i];
        ok = act_on_breach(p.policy, p.lim, p.info, may_throw) && ok;
    }
    return ok && !found.refuses;
}

}  // namespace detail
}  // namespace memdiag
