// memdiag/testing/common.hpp - what the test-framework adapters share.
//
// The Catch2, GoogleTest and doctest headers (testing/catch2.hpp, gtest.hpp,
// doctest.hpp) are thin: they turn the results computed here into their
// framework's failures. Everything else lives here, written once:
//
//   - memory checks on an expression: allocations, bytes, peak, none, no leak,
//     with a failure message that shows the figures, the top allocating sites
//     (heap profiler) and the environment facts that explain memory;
//   - budget sections: a scoped_budget whose breach becomes a test failure;
//   - the per-test scope: a default budget for every test (MEMDIAG_TEST_BUDGET
//     or set_default_test_budget), overridable per test (test_budget), with
//     setup code left out (setup_scope);
//   - regression baselines: per-test and per-scope allocation counts and peak
//     bytes, recorded to a text file and checked against it with a tolerance;
//   - heap snapshot and text report of a failing test, written into a directory.
//
// Configuration, by environment variable or by command-line option (see
// parse_args; the option wins):
//
//   MEMDIAG_SNAPSHOT_DIR=dir        --memdiag-snapshot-dir=dir   snapshots of failing tests
//   MEMDIAG_TOP_SITES=n             --memdiag-top-sites=n        sites in failure messages (10)
//   MEMDIAG_SAMPLE_INTERVAL=bytes   --memdiag-sample-interval=b  profiler interval in tests (1)
//   MEMDIAG_TEST_BUDGET=spec        --memdiag-test-budget=spec   default budget of every test
//   MEMDIAG_BASELINE=record:path    --memdiag-baseline=...       record a baseline
//   MEMDIAG_BASELINE=check:path                                  check against a baseline
//   MEMDIAG_BASELINE_TOLERANCE=10%  --memdiag-baseline-tolerance=10%
//
// A budget spec is a comma-separated list of limits: `allocations=1000,
// bytes=16M,peak=64M,live=0` (sizes as env::parse_size reads them).
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#if __has_include(<filesystem>)
#include <filesystem>
#endif

#include "../budget.hpp"
#include "../config.hpp"
#include "../detail/os/atomic_file.hpp"
#include "../env.hpp"
#include "../hook_status.hpp"
#include "../result.hpp"
#include "../sampler.hpp"
#include "../stats.hpp"

// MEMDIAG_TESTING_NO_HEAP_PROFILE: leave the heap profiler out of the test
// integration (no snapshots, no top sites), e.g. to keep test binaries lean.
#if __has_include("../heap_profile.hpp") && !defined(MEMDIAG_TESTING_NO_HEAP_PROFILE)
#include "../heap_profile.hpp"
#include "../heap_flamegraph.hpp"
/// 1 when the heap profiler (heap_profile.hpp) is part of this memdiag.
#define MEMDIAG_TESTING_HEAP_PROFILE 1
#else
#define MEMDIAG_TESTING_HEAP_PROFILE 0
#endif  // __has_include("../heap_profile.hpp") && !MEMDIAG_TESTING_NO_HEAP_PROFILE

namespace memdiag {
namespace testing {

// ---- configuration ---------------------------------------------------------

/// What a baseline file is used for in this run.
enum class baseline_mode {
    off,     ///< no baseline
    record,  ///< write this run's figures to the file at the end of the run
    check    ///< fail tests and scopes whose figures exceed the file's by more than the tolerance
};

/// Settings of the test integration. Read from the environment on first use
/// (config()); command-line options (parse_args) and code may change them.
struct settings {
    std::size_t top_sites = 10;          ///< allocation sites shown in failure messages
    std::string snapshot_dir;            ///< where failing tests' snapshots go; empty: none
    std::uint64_t sample_interval = 1;   ///< heap profiler interval when the adapters start it
    bool has_default_budget = false;     ///< a default budget applies to every test
    limits default_budget;               ///< the default budget (when has_default_budget)
    baseline_mode baseline = baseline_mode::off;  ///< what the baseline file is for
    std::string baseline_path;           ///< the baseline file
    double tolerance_percent = 10.0;     ///< allowed growth over the baseline, percent
    std::vector<std::string> errors;     ///< configuration errors (reported by the first test)
};

namespace detail {

/// Parses a non-negative count ("12"); false on anything else.
inline bool parse_count(std::string_view s, std::uint64_t& out) {
    s = memdiag::detail::env_parse::trim(s);
    if (s.empty() || s.size() > 19) return false;
    std::uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + static_cast<std::uint64_t>(c - '0');
    }
    out = v;
    return true;
}

/// Parses a percentage ("10", "10%", "2.5%"); false on anything else.
inline bool parse_percent(std::string_view s, double& out) {
    s = memdiag::detail::env_parse::trim(s);
    if (!s.empty() && s.back() == '%') s.remove_suffix(1);
    if (s.empty() || s.size() > 32) return false;
    double v = 0, scale = 0;
    for (char c : s) {
        if (c == '.' && scale == 0) {
            scale = 1;
        } else if (c >= '0' && c <= '9') {
            if (scale == 0) {
                v = v * 10 + (c - '0');
            } else {
                scale /= 10;
                v += (c - '0') * scale;
            }
        } else {
            return false;
        }
    }
    out = v;
    return true;
}

}  // namespace detail

/// Parses a budget spec such as "allocations=1000,bytes=16M,peak=64M,live=0"
/// into lim. Keys: allocations, bytes, peak, live. Returns the error, if any.
inline result parse_budget_spec(std::string_view spec, limits& lim) {
    limits out;
    bool any = false;
    while (!spec.empty()) {
        const std::size_t comma = spec.find(',');
        std::string_view part = memdiag::detail::env_parse::trim(spec.substr(0, comma));
        spec = comma == std::string_view::npos ? std::string_view{} : spec.substr(comma + 1);
        if (part.empty()) continue;
        const std::size_t eq = part.find('=');
        if (eq == std::string_view::npos)
            return result::failuref("budget spec: '%.*s' is not key=value", int(part.size()), part.data());
        const std::string_view key = memdiag::detail::env_parse::trim(part.substr(0, eq));
        const std::string_view value = part.substr(eq + 1);
        std::uint64_t n = 0;
        if (key == "allocations") {
            if (!detail::parse_count(value, n))
                return result::failuref("budget spec: allocations='%.*s' is not a count", int(value.size()), value.data());
            out.max_allocations(n);
        } else if (key == "bytes" || key == "peak" || key == "live") {
            const auto size = env::parse_size(value);
            if (!size)
                return result::failuref("budget spec: %.*s='%.*s': %s", int(key.size()), key.data(), int(value.size()),
                                        value.data(), size.reason.c_str());
            if (key == "bytes") out.max_bytes(size.value);
            else if (key == "peak") out.max_peak_bytes(size.value);
            else out.max_live_bytes(size.value);
        } else {
            return result::failuref("budget spec: unknown limit '%.*s' (allocations, bytes, peak, live)",
                                    int(key.size()), key.data());
        }
        any = true;
    }
    if (!any) return result::failure("budget spec: no limit given");
    lim = out;
    return result::success();
}

namespace detail {

/// Applies one setting by name ("snapshot-dir", "baseline" ...); records errors.
inline bool apply_setting(settings& s, std::string_view name, std::string_view value, const char* origin) {
    auto error = [&](const std::string& what) { s.errors.push_back(std::string(origin) + ": " + what); };
    if (name == "snapshot-dir") {
        s.snapshot_dir = std::string(value);
    } else if (name == "top-sites") {
        std::uint64_t n = 0;
        if (detail::parse_count(value, n)) s.top_sites = static_cast<std::size_t>(n);
        else error("'" + std::string(value) + "' is not a count");
    } else if (name == "sample-interval") {
        // The same grammar and bounds as MEMDIAG_SAMPLE_INTERVAL read by the profiler.
        const sample_interval_parse size = parse_sample_interval(value);
        if (size.ok) s.sample_interval = size.value;
        else error("'" + std::string(value) + "': " + size.error);
    } else if (name == "test-budget") {
        limits lim;
        const result r = parse_budget_spec(value, lim);
        if (r) {
            s.default_budget = lim;
            s.has_default_budget = true;
        } else {
            error(r.message());
        }
    } else if (name == "baseline") {
        const std::size_t colon = value.find(':');
        const std::string_view mode = value.substr(0, colon);
        const std::string_view path = colon == std::string_view::npos ? std::string_view{} : value.substr(colon + 1);
        if ((mode != "record" && mode != "check") || path.empty()) {
            error("'" + std::string(value) + "' is not record:PATH or check:PATH");
        } else {
            s.baseline = mode == "record" ? baseline_mode::record : baseline_mode::check;
            s.baseline_path = std::string(path);
        }
    } else if (name == "baseline-tolerance") {
        double p = 0;
        if (detail::parse_percent(value, p)) s.tolerance_percent = p;
        else error("'" + std::string(value) + "' is not a percentage");
    } else {
        return false;
    }
    return true;
}

/// Reads the MEMDIAG_* environment variables into s.
inline void read_environment(settings& s) {
    static const struct {
        const char* var;
        const char* name;
    } vars[] = {{"MEMDIAG_SNAPSHOT_DIR", "snapshot-dir"},       {"MEMDIAG_TOP_SITES", "top-sites"},
                {"MEMDIAG_SAMPLE_INTERVAL", "sample-interval"}, {"MEMDIAG_TEST_BUDGET", "test-budget"},
                {"MEMDIAG_BASELINE", "baseline"},               {"MEMDIAG_BASELINE_TOLERANCE", "baseline-tolerance"}};
    for (const auto& v : vars) {
        const char* value = std::getenv(v.var);
        if (value != nullptr && value[0] != '\0') apply_setting(s, v.name, value, v.var);
    }
}

}  // namespace detail

/// The settings of this process's test integration (read from the
/// environment on first use). Not thread-safe to modify while tests run.
inline settings& config() {
    static settings s = [] {
        settings fresh;
        detail::read_environment(fresh);
        return fresh;
    }();
    return s;
}

/// Applies one command-line option of the form --memdiag-NAME=VALUE (see the
/// file comment). Returns false when arg is not a memdiag option.
inline bool parse_option(const char* arg) {
    if (arg == nullptr) return false;
    std::string_view a = arg;
    constexpr std::string_view prefix = "--memdiag-";
    if (a.substr(0, prefix.size()) != prefix) return false;
    a.remove_prefix(prefix.size());
    const std::size_t eq = a.find('=');
    if (eq == std::string_view::npos) {
        config().errors.push_back(std::string(arg) + ": expected --memdiag-NAME=VALUE");
        return true;
    }
    if (!detail::apply_setting(config(), a.substr(0, eq), a.substr(eq + 1), arg))
        config().errors.push_back(std::string(arg) + ": unknown memdiag option");
    return true;
}

/// Applies and removes every --memdiag-* option from argv, so the test
/// framework's own parser never sees them. Call it first thing in main().
inline void parse_args(int& argc, char** argv) {
    int out = 1;
    for (int i = 1; i < argc; ++i)
        if (!parse_option(argv[i])) argv[out++] = argv[i];
    if (argc > 0) {
        argv[out] = nullptr;
        argc = out;
    }
}

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

// ---- regression baselines --------------------------------------------------------

/// The recorded figures of one test or scope.
struct baseline_entry {
    std::uint64_t allocations = 0;  ///< allocations made
    std::uint64_t peak_bytes = 0;   ///< highest growth of live bytes
};

/// A baseline file: figures by name ("test case" or "test case/scope").
///
/// Format (text, one entry a line; '#' starts a comment line):
///
///     memdiag-baseline 1
///     <allocations> <peak_bytes> <name to the end of the line>
struct baseline {
    std::map<std::string, baseline_entry> entries;  ///< by name

    /// Parses text; on a bad line returns "origin:line: what is wrong" and leaves
    /// entries as they were.
    result parse(std::string_view text, const char* origin = "baseline") {
        std::map<std::string, baseline_entry> out;
        std::size_t line_no = 0;
        bool header = false;
        while (!text.empty()) {
            const std::size_t nl = text.find('\n');
            std::string_view line = text.substr(0, nl);
            text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
            ++line_no;
            if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
            const std::string_view t = memdiag::detail::env_parse::trim(line);
            if (t.empty() || t[0] == '#') continue;
            if (!header) {
                if (t != "memdiag-baseline 1")
                    return result::failuref("%s:%zu: expected the header 'memdiag-baseline 1'", origin, line_no);
                header = true;
                continue;
            }
            std::uint64_t fields[2] = {0, 0};
            std::string_view rest = t;
            for (std::uint64_t& f : fields) {
                const std::size_t sp = rest.find_first_of(" \t");
                if (sp == std::string_view::npos || !detail::parse_count(rest.substr(0, sp), f))
                    return result::failuref("%s:%zu: expected '<allocations> <peak_bytes> <name>'", origin, line_no);
                rest = memdiag::detail::env_parse::trim(rest.substr(sp));
            }
            if (rest.empty()) return result::failuref("%s:%zu: entry has no name", origin, line_no);
            const std::string name(rest);
            if (out.count(name) != 0)
                return result::failuref("%s:%zu: '%.120s' appears twice", origin, line_no, name.c_str());
            out[name] = baseline_entry{fields[0], fields[1]};
        }
        if (!header) return result::failuref("%s: empty (no 'memdiag-baseline 1' header)", origin);
        entries = std::move(out);
        return result::success();
    }

    /// The file text, entries sorted by name.
    std::string to_text() const {
        std::string out = "memdiag-baseline 1\n# <allocations> <peak_bytes> <name>\n";
        for (const auto& [name, e] : entries) {
            std::string clean = name;
            std::replace(clean.begin(), clean.end(), '\n', ' ');  // one entry, one line
            out += std::to_string(e.allocations) + " " + std::to_string(e.peak_bytes) + " " + clean + "\n";
        }
        return out;
    }

    /// Reads and parses the file at path.
    result load(const std::string& path) {
        std::FILE* f = std::fopen(path.c_str(), "rb");
        if (f == nullptr) return result::failuref("%s: cannot open (%s)", path.c_str(), std::strerror(errno));
        std::string text;
        char buf[4096];
        std::size_t n;
        while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
        const bool failed = std::ferror(f) != 0;
        std::fclose(f);
        if (failed) return result::failuref("%s: read error", path.c_str());
        return parse(text, path.c_str());
    }

    /// Writes the file at path (whole or not at all).
    result save(const std::string& path) const {
        const std::string text = to_text();
        return memdiag::detail::write_file_atomically(path.c_str(), text.data(), text.size());
    }
};

/// Compares measured figures against a recorded entry. Returns the regression
/// message, or "" when both figures are within baseline * (1 + tolerance%).
inline std::string compare_to_baseline(const std::string& name, const baseline_entry& recorded,
                                       const baseline_entry& measured, double tolerance_percent) {
    std::string out;
    auto check = [&](const char* what, std::uint64_t was, std::uint64_t now) {
        const double allowed = static_cast<double>(was) * (1.0 + tolerance_percent / 100.0);
        if (static_cast<double>(now) <= allowed) return;
        char line[320];
        const double growth = was == 0 ? 0.0 : (static_cast<double>(now) / static_cast<double>(was) - 1.0) * 100.0;
        if (was == 0)
            std::snprintf(line, sizeof line, "  %s: %llu, baseline 0 (tolerance %.4g%%)\n", what,
                          static_cast<unsigned long long>(now), tolerance_percent);
        else
            std::snprintf(line, sizeof line, "  %s: %llu, baseline %llu (+%.1f%%, tolerance %.4g%%)\n", what,
                          static_cast<unsigned long long>(now), static_cast<unsigned long long>(was), growth,
                          tolerance_percent);
        out += line;
    };
    check("allocations", recorded.allocations, measured.allocations);
    check("peak bytes", recorded.peak_bytes, measured.peak_bytes);
    if (!out.empty()) out = "memdiag: memory regression in '" + name + "' against the baseline\n" + out;
    return out;
}

// ---- the per-test scope and the run's bookkeeping --------------------------------

namespace detail {

/// A pausable this-thread scope: the per-test measurement and default budget.
/// Built on the budget layer's scope links so that setup_scope can take it off
/// the thread's chain and put it back with the setup's allocations left out.
class test_scope {
public:
    test_scope() = default;
    test_scope(const test_scope&) = delete;
    test_scope& operator=(const test_scope&) = delete;
    ~test_scope() { close(); }

    void open(const limits* budget, source_place where = {}) {
        close();
        breached_ = false;
        has_budget_ = budget != nullptr;
        link_.emplace();  // links hold atomics: built afresh, never assigned
        if (budget != nullptr) link_->lim = *budget;
        link_->lim.on_breach(&test_scope::record, this);
        link_->policy = breach_policy::callback;
        link_->name = "default test budget";
        link_->where = where;  // the test's own place, from the framework
        link_->process_wide = false;
#if MEMDIAG_ENABLED
        memdiag::detail::install_budget_handlers();
        state_ = memdiag::detail::push_scope(*link_);
#endif
        open_ = true;
        paused_ = 0;
    }
    /// Replaces the limits (a per-test override); counting goes on.
    void set_budget(const limits* budget) {
        if (!link_) return;
        has_budget_ = budget != nullptr;
        link_->lim = budget != nullptr ? *budget : limits{};
        link_->lim.on_breach(&test_scope::record, this);
    }
    bool is_open() const noexcept { return open_; }
    bool has_budget() const noexcept { return has_budget_; }
    limits budget() const noexcept { return link_ ? link_->lim : limits{}; }

    allocation_stats used() const noexcept {
#if MEMDIAG_ENABLED
        if (!open_) return {};
        if (paused_ > 0) return saved_;
        return memdiag::detail::scope_figures(*link_, state_);
#else
        return {};
#endif
    }
    void pause() noexcept {
        if (!open_ || paused_++ > 0) return;
#if MEMDIAG_ENABLED
        saved_ = memdiag::detail::scope_figures(*link_, state_);
        memdiag::detail::pop_scope(state_, *link_);
#endif
    }
    void resume() noexcept {
        if (!open_ || paused_ == 0 || --paused_ > 0) return;
#if MEMDIAG_ENABLED
        state_ = memdiag::detail::push_scope(*link_);
        // Counting restarts from the figures held before the pause.
        link_->start_allocations -= saved_.allocations;
        link_->start_deallocations -= saved_.deallocations;
        link_->start_bytes -= saved_.bytes_allocated;
        link_->start_freed -= saved_.bytes_freed;
#endif
    }
    /// Ends the scope: returns the figures and, when the budget was crossed
    /// (max_live_bytes included), the breach.
    allocation_stats close() noexcept {
        if (!open_) return {};
        const allocation_stats u = used();
#if MEMDIAG_ENABLED
        if (paused_ == 0) memdiag::detail::pop_scope(state_, *link_);
#endif
        open_ = false;
        paused_ = 0;
        if (has_budget_ && u.live_bytes > 0 && static_cast<std::uint64_t>(u.live_bytes) > link_->lim.live_bytes() &&
            !breached_) {
            breached_ = true;
            first_ = breach_info{};
            first_.which = limit_kind::live_bytes;
            first_.limit = link_->lim.live_bytes();
            first_.attempted = static_cast<std::uint64_t>(u.live_bytes);
            first_.at_scope_end = true;
            first_.live_allocations = u.live_allocations > 0 ? static_cast<std::uint64_t>(u.live_allocations) : 0;
            first_.budget_name = link_->name;
        }
        return u;
    }
    bool breached() const noexcept { return breached_; }
    const breach_info& breach() const noexcept { return first_; }

private:
    static void record(const breach_info& info, void* self) {
        auto* s = static_cast<test_scope*>(self);
        if (s->breached_ || !s->has_budget_) return;
        s->breached_ = true;
        s->first_ = info;
    }

    std::optional<memdiag::detail::scope_link> link_;
    memdiag::detail::thread_state* state_ = nullptr;
    allocation_stats saved_;
    bool open_ = false, has_budget_ = false, breached_ = false;
    int paused_ = 0;
    breach_info first_;
};

}  // namespace detail

/// Where a snapshot of a failing test went.
struct snapshot_files {
    std::string profile;  ///< the pprof file (.pb.gz); empty when not written
    std::string report;   ///< the text report (.txt); empty when not written
    std::string flamegraph;  ///< the flame graph page (.html); empty when not written
    std::string error;    ///< why something was not written; empty when all went well
};

/// A file name made of name: letters, digits, '.', '-' and '_' kept, runs of
/// anything else one '_', at most 120 characters, never empty nor hidden.
inline std::string sanitize_file_name(std::string_view name) {
    std::string out;
    for (char c : name) {
        const bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                          c == '_' || c == '.';
        if (keep) out += c;
        else if (out.empty() || out.back() != '_') out += '_';
    }
    while (!out.empty() && (out.front() == '.' || out.front() == '_')) out.erase(out.begin());
    while (!out.empty() && (out.back() == '.' || out.back() == '_')) out.pop_back();
    if (out.size() > 120) out.resize(120);
    if (out.empty()) out = "test";
    return out;
}

/// The run's memory bookkeeping, shared by the adapters: the per-test scope,
/// baselines and snapshots. One per process (session()).
class test_session {
public:
    /// A test (one run of its body) starts: opens the per-test scope. `where`
    /// is the test's place (file and line of its definition, a string the
    /// framework keeps for the whole run), named in reports.
    void test_started(const std::string& name, source_place where = {}) {
        std::lock_guard<std::mutex> lock(mutex_);
        current_ = name;
        const settings& s = config();
        scope_.open(s.has_default_budget ? &s.default_budget : nullptr, where);
        snapshot_written_ = false;
    }

    /// The test's body has ended and it may still fail: closes the scope and
    /// returns the failures found (default budget crossed, regression against
    /// the baseline, configuration errors), one message each.
    std::vector<std::string> test_finishing() {
        std::vector<std::string> failures;
        if (!scope_.is_open()) return failures;
        const bool budgeted = scope_.has_budget();
        const limits lim = scope_.budget();
        const allocation_stats u = scope_.close();
        if (!config().errors.empty()) {
            for (const std::string& e : config().errors) failures.push_back("memdiag: configuration error: " + e);
            config().errors.clear();  // said once
        }
        if (budgeted && scope_.breached()) {
            char head[2048];  // room for the allocation's stack
            breach_info b = scope_.breach();
            b.budget_name = "test budget";
            format_breach(b, head, sizeof head);
            std::string m = head;
            m += "  test:      " + current_ + "\n";
            m += "  limits:    " + describe(lim) + "\n";
            m += "  measured:  " + u.to_string() + "\n";
            failures.push_back(m + detail::report_tail());
        }
        const std::string regression = baseline_figures(current_, baseline_entry{u.allocations, u.peak_live_bytes});
        if (!regression.empty()) failures.push_back(regression);
        return failures;
    }

    /// The run starts: loads the baseline file in check mode now, so no test
    /// pays for it (adapters call this from their run-start event).
    void run_started() {
        std::lock_guard<std::mutex> lock(baseline_mutex_);
        load_baseline();
    }

    /// Records or checks a named figure set against the baseline (per-test and
    /// per-scope). Returns a failure message, or "".
    std::string baseline_figures(const std::string& name, const baseline_entry& measured) {
        const settings& s = config();
        if (s.baseline == baseline_mode::off) return {};
        baseline_entry total, want;
        bool found = false;
        {
            std::lock_guard<std::mutex> lock(baseline_mutex_);
            // The bookkeeping lives until the end of the run: kept out of the
            // figures of the test that happens to run it, in record and check
            // mode alike, so both modes measure the same thing.
            memdiag::detail::internal_section quiet;
            if (s.baseline == baseline_mode::check) {
                load_baseline();
                if (!load_error_.empty()) {
                    if (load_error_reported_) return {};
                    load_error_reported_ = true;  // the first test that checks fails; so does the run
                }
            }
            baseline& into = s.baseline == baseline_mode::record ? recorded_ : seen_;
            auto [it, fresh] = into.entries.emplace(name, measured);
            if (!fresh) {  // a test body run again (sections): total allocations, highest peak
                it->second.allocations += measured.allocations;
                it->second.peak_bytes = std::max(it->second.peak_bytes, measured.peak_bytes);
            }
            total = it->second;
            if (s.baseline == baseline_mode::check && load_error_.empty()) {
                const auto w = expected_.entries.find(name);
                found = w != expected_.entries.end();
                if (found) want = w->second;
                else ++unrecorded_;
            }
        }
        if (!load_error_.empty()) return "memdiag: cannot check against the baseline: " + load_error_ + "\n";
        if (s.baseline == baseline_mode::record || !found) return {};
        return compare_to_baseline(name, want, total, s.tolerance_percent);
    }

    /// The test has ended (failed: by any assertion, ours included): writes
    /// its snapshot when it failed and snapshots are on, unless already written.
    void test_ended(bool failed) {
        if (failed) snapshot_now();
    }

    /// Writes the heap snapshot and text report of the current test now (the
    /// first failure of a test calls it, while its memory is still live).
    /// At most once per test. Prints where the files went; returns whether
    /// both were written.
    bool snapshot_now() {
        const settings& s = config();
        if (s.snapshot_dir.empty() || snapshot_written_) return false;
        snapshot_written_ = true;
        // The snapshot is not the test's memory: everything it allocates is
        // freed inside this section, so no count is left unbalanced.
        memdiag::detail::internal_section quiet;
        const snapshot_files files = write_snapshot(s.snapshot_dir, current_.empty() ? "test" : current_);
        if (!files.profile.empty())
            std::fprintf(stderr, "memdiag: heap snapshot of failing test '%s': %s\n", current_.c_str(),
                         files.profile.c_str());
        if (!files.report.empty())
            std::fprintf(stderr, "memdiag: text report of failing test '%s': %s\n", current_.c_str(),
                         files.report.c_str());
        if (!files.flamegraph.empty())
            std::fprintf(stderr, "memdiag: flame graph of failing test '%s': %s\n", current_.c_str(),
                         files.flamegraph.c_str());
        if (!files.error.empty())
            std::fprintf(stderr, "memdiag: snapshot of failing test '%s': %s\n", current_.c_str(), files.error.c_str());
        std::fflush(stderr);
        return files.error.empty();
    }

    /// Writes <dir>/<sanitized name>.pb.gz, .html (flame graph) and .txt (the directory is created).
    static snapshot_files write_snapshot(const std::string& dir, const std::string& test_name) {
        snapshot_files files;
#if defined(__cpp_lib_filesystem) || __has_include(<filesystem>)
        std::error_code ec;
        std::filesystem::create_directories(dir, ec);
        if (ec) {
            files.error = "cannot create directory " + dir + ": " + ec.message();
            return files;
        }
#endif
        const std::string base = dir + "/" + sanitize_file_name(test_name);
        std::string text = "memdiag report of failing test: " + test_name + "\n" + environment_facts() + "\n";
        text += "process: " + process_stats().to_string() + "\n";
#if MEMDIAG_TESTING_HEAP_PROFILE && MEMDIAG_ENABLED
        const result r = write_heap_profile((base + ".pb.gz").c_str());
        if (r) files.profile = base + ".pb.gz";
        else files.error = std::string("heap profile not written: ") + r.message();
        if (r) {  // the same heap as a page to open in a browser
            const result f = write_heap_flamegraph((base + ".html").c_str());
            if (f) files.flamegraph = base + ".html";
            else files.error = std::string("flame graph not written: ") + f.message();
        }
        text += "\n" + detail::to_std_string(heap_report(config().top_sites > 0 ? config().top_sites : 10));
#else
        files.error = "heap profile not written: no heap profiler in this memdiag";
#endif
        const result t = memdiag::detail::write_file_atomically((base + ".txt").c_str(), text.data(), text.size());
        if (t) files.report = base + ".txt";
        else files.error += (files.error.empty() ? "" : "; ") + std::string("text report not written: ") + t.message();
        return files;
    }

    /// The run has ended: writes the baseline in record mode, prints notes.
    /// Returns an error message when the baseline could not be written.
    std::string run_ended() {
        const settings& s = config();
        std::string error;
        if (s.baseline == baseline_mode::record) {
            baseline merged;
            (void)merged.load(s.baseline_path);  // keep entries of tests that did not run; a missing file is fine
            for (const auto& [name, e] : recorded_.entries) merged.entries[name] = e;
            const result r = merged.save(s.baseline_path);
            if (r)
                std::fprintf(stderr, "memdiag: baseline of %zu entries recorded to %s\n", recorded_.entries.size(),
                             s.baseline_path.c_str());
            else
                error = std::string("memdiag: baseline not recorded: ") + r.message();
        } else if (s.baseline == baseline_mode::check && unrecorded_ > 0) {
            std::fprintf(stderr, "memdiag: %zu test(s)/scope(s) have no baseline entry in %s (record with MEMDIAG_BASELINE=record:PATH)\n",
                         unrecorded_, s.baseline_path.c_str());
        }
        if (!error.empty()) std::fprintf(stderr, "%s\n", error.c_str());
        return error;
    }

    /// Names the running test without opening its scope (adapters that cannot
    /// fail a test after its body: per-scope baselines still know the test).
    void set_current_test(const std::string& name) {
        std::lock_guard<std::mutex> lock(mutex_);
        current_ = name;
        snapshot_written_ = false;
    }

    /// The name of the running test ("" outside tests).
    const std::string& current_test() const noexcept { return current_; }
    /// The per-test scope (for setup_scope and test_budget).
    detail::test_scope& scope() noexcept { return scope_; }

    /// Loads the baseline file once (check mode). Lock held.
    void load_baseline() {
        if (loaded_ || config().baseline != baseline_mode::check) return;
        loaded_ = true;
        memdiag::detail::internal_section quiet;  // kept for the whole run
        const result r = expected_.load(config().baseline_path);
        if (!r) load_error_ = r.message();
    }

    /// "max_allocations=10 max_bytes=4096" for the limits that are set.
    static std::string describe(const limits& lim) {
        std::string out;
        auto add = [&](const char* name, std::uint64_t v) {
            if (v == limits::unlimited) return;
            out += (out.empty() ? "" : " ") + std::string(name) + "=" + std::to_string(v);
        };
        add("max_allocations", lim.allocations());
        add("max_bytes", lim.bytes());
        add("max_peak_bytes", lim.peak_bytes());
        add("max_live_bytes", lim.live_bytes());
        return out.empty() ? "none" : out;
    }

private:
    std::mutex mutex_, baseline_mutex_;
    std::string current_;
    detail::test_scope scope_;
    bool snapshot_written_ = false;
    baseline recorded_, expected_, seen_;
    bool loaded_ = false, load_error_reported_ = false;
    std::string load_error_;
    std::size_t unrecorded_ = 0;
};

/// The process's test session.
inline test_session& session() {
    static test_session s;
    return s;
}

/// Marks setup code: while it lives, the running test's own scope (its
/// default budget and its baseline figures) does not count this thread's
/// allocations. Explicit measurements and budget sections still count them.
class setup_scope {
public:
    setup_scope() noexcept { session().scope().pause(); }
    ~setup_scope() { session().scope().resume(); }
    setup_scope(const setup_scope&) = delete;
    setup_scope& operator=(const setup_scope&) = delete;
};

/// Sets the default budget of every test from now on (replaces MEMDIAG_TEST_BUDGET).
inline void set_default_test_budget(const limits& lim) {
    config().default_budget = lim;
    config().has_default_budget = true;
}
/// Removes the default budget.
inline void clear_default_test_budget() { config().has_default_budget = false; }
/// Overrides the running test's budget (counted since the test started).
inline void test_budget(const limits& lim) { session().scope().set_budget(&lim); }
/// Lifts the running test's budget (its figures are still measured).
inline void no_test_budget() { session().scope().set_budget(nullptr); }

/// Checks (or records) the allocations and peak bytes of a block against the
/// baseline entry "<test name>/<name>", when a baseline is in use. A
/// regression becomes a test failure through sink when the scope ends. Use
/// the adapters' MEMDIAG_BASELINE_SCOPE(name) macro.
class baseline_scope {
public:
    /// Starts measuring this thread's allocations.
    baseline_scope(std::string name, failure_sink sink, source_place where)
        : name_(std::move(name)), sink_(sink), where_(where), budget_(limits{}, "baseline scope", where) {}
    ~baseline_scope() {
        const allocation_stats u = budget_.used();
        budget_.finish();
        const std::string& test = session().current_test();
        const std::string key = test.empty() ? name_ : test + "/" + name_;
        const std::string m = session().baseline_figures(key, baseline_entry{u.allocations, u.peak_live_bytes});
        if (!m.empty() && sink_ != nullptr) sink_(m + "  measured: " + u.to_string() + "\n", where_);
    }
    baseline_scope(const baseline_scope&) = delete;
    baseline_scope& operator=(const baseline_scope&) = delete;
    /// What the scope has counted so far.
    allocation_stats used() const noexcept { return budget_.used(); }

private:
    std::string name_;
    failure_sink sink_;
    source_place where_;
    scoped_budget budget_;
};

/// Prints a one-time warning when nothing counts std containers' memory.
inline void warn_if_unhooked() {
    static bool warned = false;
    if (warned || global_hook_installed()) return;
    warned = true;
    std::fprintf(stderr,
                 "memdiag: warning: the global operator new is not replaced in this test binary, so only\n"
                 "  tracking_allocator/tracking_resource memory is counted; define MEMDIAG_REPLACE_GLOBAL_NEW\n"
                 "  before including <memdiag/global_new.hpp> in one source file.\n");
}

}  // namespace testing
}  // namespace memdiag

/// A unique identifier for a macro-declared local.
#define MEMDIAG_TESTING_CAT2_(a, b) a##b
#define MEMDIAG_TESTING_CAT_(a, b) MEMDIAG_TESTING_CAT2_(a, b)
#define MEMDIAG_TESTING_UNIQUE_(base) MEMDIAG_TESTING_CAT_(base, __LINE__)
