// memdiag/detail/env_types.hpp - the env report's value types (fact, limit,
// address_sizes, cpu_quota), apart from the parsers (detail/env_values.hpp) so
// that env/report.hpp declares the report with <string> alone; and trim(), which
// the test integrations' option parsers share with env's.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace memdiag {
namespace env {

/// One fact about the environment: a value, or "unknown" with the reason, and
/// where it came from (a file, a system call, a compiler macro).
template <class T>
struct fact {
    bool known = false;   ///< true when value holds the fact
    T value{};            ///< meaningful only when known
    std::string source;   ///< where the value was read, e.g. "sysconf(_SC_PAGESIZE)"
    std::string reason;   ///< why the fact is unknown; empty when known

    /// Returns a known fact holding v, read from source.
    static fact of(T v, std::string from = {}) {
        fact f;
        f.known = true;
        f.value = std::move(v);
        f.source = std::move(from);
        return f;
    }
    /// Returns an unknown fact with the reason it could not be learned.
    static fact unknown(std::string why, std::string from = {}) {
        fact f;
        f.reason = std::move(why);
        f.source = std::move(from);
        return f;
    }
    /// Returns known.
    explicit operator bool() const noexcept { return known; }
};

/// A memory limit in bytes, or no limit at all.
struct limit {
    bool unlimited = true;    ///< true when nothing is enforced
    std::uint64_t bytes = 0;  ///< the limit when !unlimited (0 is a real limit of zero)

    /// Returns "no limit".
    static limit none() noexcept { return limit{}; }
    /// Returns a limit of n bytes.
    static limit of(std::uint64_t n) noexcept { return limit{false, n}; }
    /// Returns true when this limit is tighter than other.
    bool below(const limit& other) const noexcept {
        return !unlimited && (other.unlimited || bytes < other.bytes);
    }
};

/// Address widths a CPU reports (as in /proc/cpuinfo "address sizes").
struct address_sizes {
    unsigned physical_bits = 0;  ///< physical address bits
    unsigned virtual_bits = 0;   ///< virtual (linear) address bits
};

/// A CPU bandwidth quota: quota_us of CPU time per period_us, or none.
struct cpu_quota {
    bool unlimited = true;        ///< true when no quota is set
    std::uint64_t quota_us = 0;   ///< CPU time allowed per period
    std::uint64_t period_us = 0;  ///< the period length

    /// Returns the quota as a number of CPUs (e.g. 1.5); 0 when unlimited.
    double cpus() const noexcept {
        return unlimited || period_us == 0 ? 0.0 : double(quota_us) / double(period_us);
    }
};

}  // namespace env

namespace detail {
namespace env_parse {

/// Returns s without leading and trailing spaces, tabs, CR and LF.
inline std::string_view trim(std::string_view s) noexcept {
    auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
    while (!s.empty() && space(s.front())) s.remove_prefix(1);
    while (!s.empty() && space(s.back())) s.remove_suffix(1);
    return s;
}

}  // namespace env_parse
}  // namespace detail
}  // namespace memdiag
