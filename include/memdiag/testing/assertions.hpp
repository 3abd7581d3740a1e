// memdiag/testing/assertions.hpp - memory checks on an expression and budget
// sections, with failure messages that show the figures, the top allocating
// sites (heap profiler, when present) and the environment facts.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "../budget.hpp"
#include "../config.hpp"
#include "../env.hpp"
#include "../hook_status.hpp"
#include "../result.hpp"
#include "../stats.hpp"
#include "options.hpp"

// MEMDIAG_TESTING_NO_HEAP_PROFILE: leave the heap profiler out of the test
// integration (no snapshots, no top sites), e.g. to keep test binaries lean.
#if __has_include("../heap_profile.hpp") && !defined(MEMDIAG_TESTING_NO_HEAP_PROFILE)
#include "../heap_profile.hpp"
#if MEMDIAG_HEADER_ONLY  // else only detail/testing_impl.hpp needs it
#include "../heap_flamegraph.hpp"
#endif
/// 1 when the heap profiler (heap_profile.hpp) is part of this memdiag.
#define MEMDIAG_TESTING_HEAP_PROFILE 1
#else
#define MEMDIAG_TESTING_HEAP_PROFILE 0
#endif  // __has_include("../heap_profile.hpp") && !MEMDIAG_TESTING_NO_HEAP_PROFILE

namespace memdiag {
namespace testing {

// ---- the facts that explain memory ------------------------------------------

/// One line of environment facts for failure messages: pointer width, the
/// effective memory limit and whether the global hook counts std containers.
/// Collected once per process (the first failure pays for it).
inline const std::string& environment_facts() {
    static const std::string facts = [] {
        std::string out = "environment: ";
        const env::report r = env::collect();
        out += r.pointer_bits ? std::to_string(r.pointer_bits.value) + "-bit pointers" : "pointer width unknown";
        const env::effective_limit_info e = r.effective_limit();
        if (!e.value.known) out += ", effective memory limit unknown";
        else if (e.value.value.unlimited) out += ", no memory limit";
        else out += ", effective memory limit " + env::format_bytes(e.value.value.bytes) + " (" + e.key + ")";
        out += global_hook_installed() ? ", global operator new counted"
                                       : ", global operator new NOT counted (define MEMDIAG_REPLACE_GLOBAL_NEW in one file)";
        return out;
    }();
    return facts;
}

// ---- the heap profiler, when memdiag has it -----------------------------------

namespace detail {

/// Whatever heap_report() returns (std::string or an internal string), as std::string.
template <class Text>
std::string to_std_string(const Text& t) {
    if constexpr (std::is_convertible_v<const Text&, std::string>) return std::string(t);
    else return std::string(t.data(), t.size());
}

inline bool& profiler_started_here() {
    static bool started = false;
    return started;
}

}  // namespace detail

/// Starts the heap profiler for the test run (at config().sample_interval)
/// unless this integration already did. Returns false when memdiag has no
/// heap profiler. The adapters call it when a snapshot directory is set.
inline bool start_test_profiler() {
#if MEMDIAG_TESTING_HEAP_PROFILE && MEMDIAG_ENABLED
    if (!detail::profiler_started_here() && !heap_profiler::running()) {  // never restart the user's profiler
        detail::profiler_started_here() = true;
        const result r = heap_profiler::start(profile_options{}.sample_interval(config().sample_interval));
        if (!r) std::fprintf(stderr, "memdiag: heap profiler not started: %s\n", r.message());
        return static_cast<bool>(r);
    }
    return true;
#else
    return false;
#endif
}

/// The top `n` allocation sites of the sampled heap, as text; empty when the
/// heap profiler is not part of memdiag or was not started.
inline std::string top_sites_report(std::size_t n) {
#if MEMDIAG_TESTING_HEAP_PROFILE && MEMDIAG_ENABLED
    if (n == 0 || !heap_profiler::running()) return {};
    return detail::to_std_string(heap_report(n));
#else
    (void)n;
    return {};
#endif
}

// ---- checks on an expression ---------------------------------------------------

/// Which figure a memory check bounds.
enum class check_kind {
    allocations,  ///< number of allocations
    bytes,        ///< total bytes allocated
    peak_bytes,   ///< growth of live bytes at its highest
    no_alloc,     ///< no allocation at all
    no_leak       ///< nothing allocated left allocated
};

/// Name of a check, for messages ("allocations" ...).
constexpr const char* to_string(check_kind k) noexcept {
    return k == check_kind::allocations  ? "allocations"
           : k == check_kind::bytes      ? "bytes"
           : k == check_kind::peak_bytes ? "peak bytes"
           : k == check_kind::no_alloc   ? "no allocation"
                                         : "no leak";
}

/// The outcome of a memory check: passed or not, what was measured, and the
/// message a failure shows (or the one-line summary a success shows).
struct check_result {
    bool ok = true;              ///< the check passed
    allocation_stats used;       ///< what the expression did
    std::string message;         ///< failure report (empty when ok)
    std::string summary;         ///< one line: the figure against the limit
    /// True when the check passed.
    explicit operator bool() const noexcept { return ok; }
};

namespace detail {

/// The figure a check bounds, from the measured stats.
inline std::uint64_t figure(check_kind k, const allocation_stats& u) noexcept {
    switch (k) {
        case check_kind::allocations:
        case check_kind::no_alloc: return u.allocations;
        case check_kind::bytes: return u.bytes_allocated;
        case check_kind::peak_bytes: return u.peak_live_bytes;
        case check_kind::no_leak: return u.live_bytes > 0 ? static_cast<std::uint64_t>(u.live_bytes) : 0;
    }
    return 0;
}

/// True for frames of the standard library's plumbing (allocators,
/// containers' internals), which say little about who allocated.
inline bool plumbing_frame(std::string_view f) {
    f = memdiag::detail::env_parse::trim(f);
    for (std::string_view p : {"std::", "void std::", "__gnu_cxx::", "operator new", "__libc_", "_start"})
        if (f.substr(0, p.size()) == p) return true;
    return f.find("std::__") != std::string_view::npos || f.find("std::_") == 0;
}

/// Shortens the heap report for a failure message: the summary lines, and
/// for each site its figures and its first two frames outside the standard
/// library's plumbing (the snapshot's text report keeps the full stacks).
inline std::string compact_sites(const std::string& report) {
    std::string out;
    int frames_kept = 0;
    bool in_site = false;
    std::size_t start = 0;
    while (start < report.size()) {
        std::size_t end = report.find('\n', start);
        if (end == std::string::npos) end = report.size();
        const std::string line = report.substr(start, end - start);
        start = end + 1;
        const std::string_view t = memdiag::detail::env_parse::trim(line);
        const std::size_t dot = t.find(". ");
        const bool site_head = dot != std::string_view::npos && dot > 0 && dot <= 3 &&
                               t.find_first_not_of("0123456789") == dot;
        if (site_head) {
            in_site = true;
            frames_kept = 0;
            out += "    " + line + "\n";
        } else if (in_site && line.size() > 5 && line.compare(0, 5, "     ") == 0) {
            if (frames_kept < 2 && !plumbing_frame(t)) {
                out += "    " + line + "\n";
                ++frames_kept;
            }
        } else if (!t.empty()) {
            in_site = false;
            out += "    " + line + "\n";
        }
    }
    return out;
}

/// The failure report's tail: top sites (when profiled) and environment facts.
inline std::string report_tail() {
    std::string out;
    const std::size_t top = config().top_sites;
    if (top > 0) {
        const std::string sites = top_sites_report(top);
        if (!sites.empty()) {
            out += "  top allocation sites (sampled heap, whole process; full stacks in the snapshot's report):\n";
            out += compact_sites(sites);
        } else {
            out += MEMDIAG_TESTING_HEAP_PROFILE
                       ? "  top allocation sites: heap profiler not running (set MEMDIAG_SNAPSHOT_DIR or start it)\n"
                       : "  top allocation sites: unavailable (no heap profiler in this memdiag)\n";
        }
    }
    out += "  " + environment_facts() + "\n";
    return out;
}

}  // namespace detail

/// Formats the failure report of a check (what the failure message shows).
inline std::string format_check_failure(check_kind k, std::uint64_t limit, const char* expression,
                                        const allocation_stats& used) {
    const std::uint64_t got = detail::figure(k, used);
    char head[512];
    const char* expr = expression != nullptr ? expression : "?";
    const auto g = static_cast<unsigned long long>(got), l = static_cast<unsigned long long>(limit);
    switch (k) {
        case check_kind::allocations:
            std::snprintf(head, sizeof head, "memdiag: `%s` made %llu allocation(s), at most %llu allowed (%llu over)",
                          expr, g, l, g - l);
            break;
        case check_kind::bytes:
            std::snprintf(head, sizeof head, "memdiag: `%s` allocated %llu bytes, at most %llu allowed (%llu over)",
                          expr, g, l, g - l);
            break;
        case check_kind::peak_bytes:
            std::snprintf(head, sizeof head, "memdiag: `%s` peaked at %llu live bytes, at most %llu allowed (%llu over)",
                          expr, g, l, g - l);
            break;
        case check_kind::no_alloc:
            std::snprintf(head, sizeof head, "memdiag: `%s` allocated %llu time(s) (%llu bytes), none allowed", expr, g,
                          static_cast<unsigned long long>(used.bytes_allocated));
            break;
        case check_kind::no_leak:
            std::snprintf(head, sizeof head, "memdiag: `%s` leaked %llu bytes in %lld allocation(s)", expr, g,
                          static_cast<long long>(used.live_allocations));
            break;
    }
    return std::string(head) + "\n  measured: " + used.to_string() + "\n" + detail::report_tail();
}

/// Runs f (this thread's allocations counted) and checks the figure of kind
/// k against limit (ignored for no_alloc and no_leak). expression is the text
/// shown in messages.
template <class F>
check_result check_memory(check_kind k, std::uint64_t limit, const char* expression, F&& f) {
    check_result r;
    r.used = measure(std::forward<F>(f));
    if (k == check_kind::no_alloc || k == check_kind::no_leak) limit = 0;
    const std::uint64_t got = detail::figure(k, r.used);
    r.ok = got <= limit;
    if (global_hook_installed() && !global_hook_active()) {
        // Bypassed (valgrind, a preload): the figure says nothing, never pass vacuously.
        r.ok = false;
        r.summary = "global operator new hook bypassed";
        r.message = std::string(expression != nullptr ? expression : "?") +
                    ": memdiag's global operator new hook is linked in but not called (valgrind, heaptrack, an "
                    "LD_PRELOAD or another library replaced operator new), so this check cannot see allocations";
        return r;
    }
    char line[160];
    std::snprintf(line, sizeof line, "%s: %llu (limit %llu)", to_string(k), static_cast<unsigned long long>(got),
                  static_cast<unsigned long long>(limit));
    r.summary = line;
    if (!r.ok) r.message = format_check_failure(k, limit, expression, r.used);
    return r;
}

/// Where an adapter sends a failure found outside an assertion macro (budget
/// sections, baseline scopes, the per-test scope): the framework's
/// "add a non-fatal failure at file:line".
using failure_sink = void (*)(const std::string& message, source_place where);

// ---- budget sections -----------------------------------------------------------

/// A scoped budget whose breach becomes a test failure (through sink) with the
/// full report, when the section ends. Allocations are never refused: the test
/// runs to the end of the section and the figures show how far over it went.
/// Use the adapters' MEMDIAG_BUDGET_SECTION(limits) macro.
class budget_section {
public:
    /// Opens the section with lim on this thread; failures go to sink.
    budget_section(const limits& lim, failure_sink sink, source_place where, const char* name = "budget section")
        : sink_(sink),
          where_(where),
          budget_(limits(lim).on_breach(&budget_section::record, this), breach_policy::callback,
                  scope_kind::this_thread, name, where) {}
    ~budget_section() { finish(); }
    budget_section(const budget_section&) = delete;
    budget_section& operator=(const budget_section&) = delete;

    /// What the section has counted so far.
    allocation_stats used() const noexcept { return budget_.used(); }
    /// True once a limit was crossed.
    bool breached() const noexcept { return breached_; }
    /// Ends the section now and reports a breach; later calls do nothing.
    void finish() {
        if (done_) return;
        done_ = true;
        const allocation_stats u = budget_.used();
        budget_.finish();  // callback policy: reports max_live_bytes through record(), never throws
        if (!breached_ || sink_ == nullptr) return;
        char head[2048];  // room for the allocation's stack
        format_breach(first_, head, sizeof head);
        sink_(std::string(head) + "  measured: " + u.to_string() + "\n" + detail::report_tail(), where_);
    }

private:
    static void record(const breach_info& info, void* self) {
        auto* s = static_cast<budget_section*>(self);
        if (s->breached_) return;  // the first breach tells where it went wrong
        s->breached_ = true;
        s->first_ = info;
        std::strncpy(s->name_, info.budget_name != nullptr ? info.budget_name : "", sizeof s->name_ - 1);
        s->first_.budget_name = s->name_;
    }

    failure_sink sink_;
    source_place where_;
    bool breached_ = false, done_ = false;
    breach_info first_;
    char name_[64] = {};
    scoped_budget budget_;
};

}  // namespace testing
}  // namespace memdiag
