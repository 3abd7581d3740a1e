// memdiag/detail/env_values.hpp - the parsers of one-value files (numbers,
// sizes, /proc/meminfo, cpuinfo, os-release ...); detail/env_cgroup.hpp parses
// the cgroup files. detail/env_parse.hpp gives both.
//
// Every file under /proc and /sys may be missing, truncated or hold garbage
// (containers, qemu-user, odd kernels). These parsers take the text as a
// string_view and return a value or "unknown" with a reason; they never throw
// on bad input, never read out of bounds, and use 64-bit integers even in
// 32-bit builds (memory sizes exceed 4 GiB there too).
//
// The value types (fact, limit, address_sizes, cpu_quota, detail/env_types.hpp)
// are public: the env report is made of them. The parsers live in
// memdiag::detail::env_parse.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../config.hpp"
#include "env_types.hpp"

namespace memdiag {
namespace detail {
namespace env_parse {

using env::address_sizes;
using env::cpu_quota;
using env::fact;
using env::limit;

/// Returns a printable excerpt of untrusted text for a reason message: at most
/// 40 bytes, control and non-ASCII bytes shown as '?'.
inline std::string excerpt(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, 40)) {
        auto u = static_cast<unsigned char>(c);
        out += (u < 0x20 || u >= 0x7f) ? '?' : c;
    }
    if (s.size() > 40) out += "...";
    return out;
}

/// Splits text into lines (without '\n'); the last line may lack a newline.
inline std::vector<std::string_view> lines(std::string_view text) {
    std::vector<std::string_view> out;
    while (!text.empty()) {
        std::size_t nl = text.find('\n');
        if (nl == std::string_view::npos) {
            out.push_back(text);
            break;
        }
        out.push_back(text.substr(0, nl));
        text.remove_prefix(nl + 1);
    }
    return out;
}

/// Splits s on any run of spaces or tabs; empty fields are dropped.
inline std::vector<std::string_view> fields(std::string_view s) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
        std::size_t start = i;
        while (i < s.size() && s[i] != ' ' && s[i] != '\t') ++i;
        if (i > start) out.push_back(s.substr(start, i - start));
    }
    return out;
}

/// Splits s on sep, keeping empty parts.
inline std::vector<std::string_view> split(std::string_view s, char sep) {
    std::vector<std::string_view> out;
    for (;;) {
        std::size_t at = s.find(sep);
        out.push_back(s.substr(0, at));
        if (at == std::string_view::npos) break;
        s.remove_prefix(at + 1);
    }
    return out;
}

/// Parses the whole of text (surrounding whitespace ignored) as a decimal
/// unsigned 64-bit number. Returns unknown on empty text, a sign, other
/// characters or overflow.
inline fact<std::uint64_t> parse_u64(std::string_view text) {
    std::string_view s = trim(text);
    if (s.empty()) return fact<std::uint64_t>::unknown("empty value");
    std::uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return fact<std::uint64_t>::unknown("not a number: \"" + excerpt(s) + "\"");
        unsigned digit = unsigned(c - '0');
        if (v > (UINT64_MAX - digit) / 10) return fact<std::uint64_t>::unknown("number overflows 64 bits");
        v = v * 10 + digit;
    }
    return fact<std::uint64_t>::of(v);
}

/// Parses a signed decimal 64-bit number (cgroup v1 uses -1 for "no quota").
inline fact<std::int64_t> parse_i64(std::string_view text) {
    std::string_view s = trim(text);
    bool negative = !s.empty() && s.front() == '-';
    if (negative) s.remove_prefix(1);
    fact<std::uint64_t> magnitude = parse_u64(s);
    if (!magnitude) return fact<std::int64_t>::unknown(magnitude.reason);
    if (magnitude.value > std::uint64_t(INT64_MAX) + (negative ? 1u : 0u))
        return fact<std::int64_t>::unknown("number overflows 64 bits");
    if (negative) {
        // -(2^63) is representable, so negate in unsigned arithmetic.
        return fact<std::int64_t>::of(magnitude.value == std::uint64_t(INT64_MAX) + 1
                                          ? INT64_MIN
                                          : -std::int64_t(magnitude.value));
    }
    return fact<std::int64_t>::of(std::int64_t(magnitude.value));
}

/// The value from which cgroup v1 numbers mean "unlimited". The kernel prints
/// LONG_MAX rounded down to a page (9223372036854771712), some kernels and
/// tools print 2^64-1; anything this large cannot be a real limit.
constexpr std::uint64_t cgroup_v1_unlimited_from = 0x7FFFFFFF00000000ull;

/// Parses cgroup v2 memory.max / memory.high: "max" means unlimited, otherwise
/// bytes ("0" is a real limit of zero).
inline fact<limit> parse_cgroup_v2_memory_max(std::string_view text) {
    std::string_view s = trim(text);
    if (s == "max") return fact<limit>::of(limit::none());
    fact<std::uint64_t> n = parse_u64(s);
    if (!n) return fact<limit>::unknown("memory.max: " + n.reason);
    return fact<limit>::of(limit::of(n.value));
}

/// Parses cgroup v1 memory.limit_in_bytes (or a memory.stat value): huge
/// values and -1 mean unlimited.
inline fact<limit> parse_cgroup_v1_memory_limit(std::string_view text) {
    std::string_view s = trim(text);
    if (s == "-1") return fact<limit>::of(limit::none());
    fact<std::uint64_t> n = parse_u64(s);
    if (!n) return fact<limit>::unknown("memory.limit_in_bytes: " + n.reason);
    if (n.value >= cgroup_v1_unlimited_from) return fact<limit>::of(limit::none());
    return fact<limit>::of(limit::of(n.value));
}

/// Finds the line "key value" (memory.stat, cpu.stat) and parses value.
inline fact<std::uint64_t> find_key_u64(std::string_view text, std::string_view key) {
    for (std::string_view line : lines(text)) {
        std::vector<std::string_view> f = fields(line);
        if (f.size() >= 2 && f[0] == key) return parse_u64(f[1]);
    }
    return fact<std::uint64_t>::unknown("no \"" + std::string(key) + "\" line");
}

/// Parses a /proc/meminfo line "Key:  123 kB" and returns bytes. A value
/// without a unit (HugePages_Total) is returned as is.
inline fact<std::uint64_t> parse_meminfo(std::string_view text, std::string_view key) {
    for (std::string_view line : lines(text)) {
        std::size_t colon = line.find(':');
        if (colon == std::string_view::npos || line.substr(0, colon) != key) continue;
        std::vector<std::string_view> f = fields(line.substr(colon + 1));
        if (f.empty()) return fact<std::uint64_t>::unknown(std::string(key) + ": no value");
        fact<std::uint64_t> n = parse_u64(f[0]);
        if (!n) return fact<std::uint64_t>::unknown(std::string(key) + ": " + n.reason);
        if (f.size() == 1) return n;
        if (f[1] != "kB") return fact<std::uint64_t>::unknown(std::string(key) + ": unknown unit \"" + excerpt(f[1]) + "\"");
        if (n.value > UINT64_MAX / 1024) return fact<std::uint64_t>::unknown(std::string(key) + ": overflows 64 bits");
        return fact<std::uint64_t>::of(n.value * 1024);
    }
    return fact<std::uint64_t>::unknown("no \"" + std::string(key) + ":\" line");
}

/// Parses "address sizes : 48 bits physical, 48 bits virtual" from /proc/cpuinfo
/// (x86 and a few others print it; aarch64 does not).
inline fact<address_sizes> parse_cpuinfo_address_sizes(std::string_view text) {
    for (std::string_view line : lines(text)) {
        std::size_t colon = line.find(':');
        if (colon == std::string_view::npos || trim(line.substr(0, colon)) != "address sizes") continue;
        std::vector<std::string_view> f = fields(line.substr(colon + 1));
        // Expected: 48 bits physical, 48 bits virtual
        if (f.size() < 6 || f[1] != "bits" || f[2] != "physical," || f[4] != "bits" || f[5] != "virtual")
            return fact<address_sizes>::unknown("unexpected \"address sizes\" line: \"" + excerpt(line) + "\"");
        fact<std::uint64_t> phys = parse_u64(f[0]);
        fact<std::uint64_t> virt = parse_u64(f[3]);
        if (!phys || !virt || phys.value == 0 || virt.value == 0 || phys.value > 64 || virt.value > 64)
            return fact<address_sizes>::unknown("bad numbers in \"address sizes\": \"" + excerpt(line) + "\"");
        return fact<address_sizes>::of(address_sizes{unsigned(phys.value), unsigned(virt.value)});
    }
    return fact<address_sizes>::unknown("no \"address sizes\" line (not printed on this architecture)");
}

/// Parses a sysfs choice list such as "always [madvise] never" and returns the
/// bracketed (selected) token.
inline fact<std::string> parse_bracketed_choice(std::string_view text) {
    std::string_view s = trim(text);
    std::size_t open = s.find('[');
    std::size_t close = open == std::string_view::npos ? open : s.find(']', open);
    if (open == std::string_view::npos || close == std::string_view::npos || close == open + 1)
        return fact<std::string>::unknown("no [selected] token in \"" + excerpt(s) + "\"");
    std::string_view token = s.substr(open + 1, close - open - 1);
    for (char c : token) {
        if (c == ' ' || c == '[' || static_cast<unsigned char>(c) < 0x20)
            return fact<std::string>::unknown("malformed [selected] token in \"" + excerpt(s) + "\"");
    }
    return fact<std::string>::of(std::string(token));
}

/// Parses cgroup v2 cpu.max: "max 100000" (no quota) or "150000 100000".
inline fact<cpu_quota> parse_cgroup_v2_cpu_max(std::string_view text) {
    std::vector<std::string_view> f = fields(trim(text));
    if (f.empty() || f.size() > 2) return fact<cpu_quota>::unknown("cpu.max: expected \"<quota|max> [period]\"");
    std::uint64_t period = 100000;  // the kernel default when only the quota is given
    if (f.size() == 2) {
        fact<std::uint64_t> p = parse_u64(f[1]);
        if (!p || p.value == 0) return fact<cpu_quota>::unknown("cpu.max: bad period \"" + excerpt(f[1]) + "\"");
        period = p.value;
    }
    if (f[0] == "max") return fact<cpu_quota>::of(cpu_quota{true, 0, period});
    fact<std::uint64_t> q = parse_u64(f[0]);
    if (!q) return fact<cpu_quota>::unknown("cpu.max: bad quota \"" + excerpt(f[0]) + "\"");
    return fact<cpu_quota>::of(cpu_quota{false, q.value, period});
}

/// Parses cgroup v1 cpu.cfs_quota_us (-1 = no quota) with cpu.cfs_period_us.
inline fact<cpu_quota> parse_cgroup_v1_cfs(std::string_view quota_text, std::string_view period_text) {
    fact<std::int64_t> q = parse_i64(quota_text);
    if (!q) return fact<cpu_quota>::unknown("cpu.cfs_quota_us: " + q.reason);
    fact<std::uint64_t> p = parse_u64(period_text);
    if (!p || p.value == 0) return fact<cpu_quota>::unknown("cpu.cfs_period_us: " + (p ? "zero" : p.reason));
    if (q.value < 0) return fact<cpu_quota>::of(cpu_quota{true, 0, p.value});
    return fact<cpu_quota>::of(cpu_quota{false, std::uint64_t(q.value), p.value});
}

/// Returns the value of key in an os-release file, unquoted ("" or '' quotes,
/// backslash escapes inside double quotes).
inline fact<std::string> parse_os_release(std::string_view text, std::string_view key = "PRETTY_NAME") {
    for (std::string_view line : lines(text)) {
        line = trim(line);
        std::size_t eq = line.find('=');
        if (eq == std::string_view::npos || line.substr(0, eq) != key) continue;
        std::string_view v = line.substr(eq + 1);
        std::string out;
        if (!v.empty() && (v.front() == '"' || v.front() == '\'')) {
            char quote = v.front();
            std::size_t i = 1;
            bool closed = false;
            for (; i < v.size(); ++i) {
                if (v[i] == quote) {
                    closed = true;
                    break;
                }
                if (quote == '"' && v[i] == '\\' && i + 1 < v.size()) ++i;
                out += v[i];
            }
            if (!closed) return fact<std::string>::unknown(std::string(key) + ": unterminated quote");
        } else {
            out = std::string(v);
        }
        return fact<std::string>::of(std::move(out));
    }
    return fact<std::string>::unknown("no " + std::string(key) + "= line");
}

/// Parses /proc/sys/vm/overcommit_memory: 0 heuristic, 1 always, 2 strict.
inline fact<int> parse_overcommit_mode(std::string_view text) {
    fact<std::uint64_t> n = parse_u64(text);
    if (!n) return fact<int>::unknown("overcommit_memory: " + n.reason);
    if (n.value > 2) return fact<int>::unknown("overcommit_memory: unknown mode " + std::to_string(n.value));
    return fact<int>::of(int(n.value));
}

/// Counts the CPUs in a list such as "0-3,8,10-11" (cpuset.cpus.effective).
inline fact<std::uint64_t> parse_cpu_list_count(std::string_view text) {
    std::string_view s = trim(text);
    if (s.empty()) return fact<std::uint64_t>::unknown("empty cpu list");
    std::uint64_t count = 0;
    for (std::string_view part : split(s, ',')) {
        std::size_t dash = part.find('-');
        fact<std::uint64_t> first = parse_u64(part.substr(0, dash));
        fact<std::uint64_t> last = dash == std::string_view::npos ? first : parse_u64(part.substr(dash + 1));
        if (!first || !last || last.value < first.value || last.value - first.value >= (1u << 20))
            return fact<std::uint64_t>::unknown("bad cpu list entry \"" + excerpt(part) + "\"");
        count += last.value - first.value + 1;
    }
    return fact<std::uint64_t>::of(count);
}

}  // namespace env_parse
}  // namespace detail
}  // namespace memdiag
