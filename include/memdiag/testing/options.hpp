// memdiag/testing/options.hpp - the test integration's settings: environment
// variables and --memdiag-* options (the table is in testing/common.hpp),
// budget specs, and config(), read once per process.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../budget.hpp"
#include "../config.hpp"
#include "../detail/env_types.hpp"  // env_parse::trim
#include "../env.hpp"
#include "../result.hpp"
#include "../sampler.hpp"

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

}  // namespace testing
}  // namespace memdiag
