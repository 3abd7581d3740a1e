// memdiag/detail/env_parse.hpp - pure parsers for the files env reads.
//
// Every file under /proc and /sys may be missing, truncated or hold garbage
// (containers, qemu-user, odd kernels). These parsers take the text as a
// string_view and return a value or "unknown" with a reason; they never throw
// on bad input, never read out of bounds, and use 64-bit integers even in
// 32-bit builds (memory sizes exceed 4 GiB there too).
//
// The value types (fact, limit, address_sizes, cpu_quota) are public: the env
// report is made of them. The parsers live in memdiag::detail::env_parse.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../config.hpp"

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

using env::address_sizes;
using env::cpu_quota;
using env::fact;
using env::limit;

/// Returns s without leading and trailing spaces, tabs, CR and LF.
inline std::string_view trim(std::string_view s) noexcept {
    auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
    while (!s.empty() && space(s.front())) s.remove_prefix(1);
    while (!s.empty() && space(s.back())) s.remove_suffix(1);
    return s;
}

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

// ---- /proc/self/cgroup and /proc/self/mountinfo ------------------------------

/// One line of /proc/self/cgroup: "id:controllers:path".
struct cgroup_entry {
    std::uint64_t hierarchy_id = 0;
    std::vector<std::string> controllers;  ///< empty for the v2 line "0::/path"
    std::string path;                      ///< path inside the hierarchy, starts with '/'
    /// Returns true for the cgroup v2 (unified) line.
    bool is_v2() const { return hierarchy_id == 0 && controllers.empty(); }
    /// Returns true when this v1 hierarchy carries controller name.
    bool has(std::string_view name) const {
        for (const std::string& c : controllers)
            if (c == name) return true;
        return false;
    }
};

/// Parses /proc/self/cgroup. Malformed lines are skipped; the result is unknown
/// only when no line parses.
inline fact<std::vector<cgroup_entry>> parse_proc_cgroup(std::string_view text) {
    std::vector<cgroup_entry> out;
    std::size_t bad = 0;
    for (std::string_view line : lines(text)) {
        if (trim(line).empty()) continue;
        std::size_t c1 = line.find(':');
        std::size_t c2 = c1 == std::string_view::npos ? c1 : line.find(':', c1 + 1);
        if (c2 == std::string_view::npos) {
            ++bad;
            continue;
        }
        fact<std::uint64_t> id = parse_u64(line.substr(0, c1));
        std::string_view path = line.substr(c2 + 1);  // a path may itself contain ':'
        if (!id || path.empty() || path.front() != '/') {
            ++bad;
            continue;
        }
        cgroup_entry e;
        e.hierarchy_id = id.value;
        std::string_view names = line.substr(c1 + 1, c2 - c1 - 1);
        if (!names.empty())
            for (std::string_view n : split(names, ',')) e.controllers.emplace_back(n);
        e.path = std::string(path);
        out.push_back(std::move(e));
    }
    if (out.empty())
        return fact<std::vector<cgroup_entry>>::unknown(
            bad ? "no well-formed \"id:controllers:/path\" line" : "empty file");
    return fact<std::vector<cgroup_entry>>::of(std::move(out));
}

/// Undoes the octal escapes mountinfo uses for space, tab, newline and
/// backslash ("\040", "\011", "\012", "\134"). Other text is copied as is.
inline std::string unescape_mountinfo(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 3 < s.size()) {
            char a = s[i + 1], b = s[i + 2], c = s[i + 3];
            if (a >= '0' && a <= '3' && b >= '0' && b <= '7' && c >= '0' && c <= '7') {
                out += char(((a - '0') << 6) | ((b - '0') << 3) | (c - '0'));
                i += 3;
                continue;
            }
        }
        out += s[i];
    }
    return out;
}

/// One line of /proc/self/mountinfo (only the fields env needs).
struct mount_entry {
    std::string root;           ///< the mounted directory inside the filesystem
    std::string mount_point;    ///< where it is mounted, unescaped
    std::string fs_type;        ///< e.g. "cgroup", "cgroup2", "tmpfs"
    std::string super_options;  ///< e.g. "rw,memory" for a v1 memory hierarchy
    /// Returns true when the comma-separated super options contain name.
    bool has_option(std::string_view name) const {
        for (std::string_view o : split(super_options, ','))
            if (o == name) return true;
        return false;
    }
};

/// Parses /proc/self/mountinfo:
/// "id parent maj:min root mount_point opts [optional...] - fstype source superopts".
/// Malformed lines (a truncated last line, garbage) are skipped.
inline fact<std::vector<mount_entry>> parse_mountinfo(std::string_view text) {
    std::vector<mount_entry> out;
    for (std::string_view line : lines(text)) {
        std::vector<std::string_view> f = fields(line);
        std::size_t dash = 0;
        for (std::size_t i = 6; i < f.size(); ++i) {
            if (f[i] == "-") {
                dash = i;
                break;
            }
        }
        if (dash == 0 || f.size() < dash + 3) continue;  // needs fstype and source
        if (f[3].empty() || f[3].front() != '/' || f[4].empty() || f[4].front() != '/') continue;
        mount_entry m;
        m.root = unescape_mountinfo(f[3]);
        m.mount_point = unescape_mountinfo(f[4]);
        m.fs_type = std::string(f[dash + 1]);
        m.super_options = dash + 3 < f.size() ? std::string(f[dash + 3]) : std::string();
        out.push_back(std::move(m));
    }
    if (out.empty()) return fact<std::vector<mount_entry>>::unknown("no well-formed mountinfo line");
    return fact<std::vector<mount_entry>>::of(std::move(out));
}

/// Where a process's cgroup lives on disk for one hierarchy.
struct cgroup_location {
    std::string mount_point;  ///< the hierarchy's mount point (walks stop here)
    std::string directory;    ///< the process's cgroup directory under it
    std::string note;         ///< set when the path could not be placed exactly
};

/// Joins a mount and a cgroup path into the process's cgroup directory. The
/// path is relative to the hierarchy root; the mount may show only a subtree
/// (mount root "/docker/<id>" inside a container). A path outside the mounted
/// subtree or with ".." (a foreign cgroup namespace) maps to the mount point.
inline cgroup_location locate_cgroup(const mount_entry& mount, std::string_view path) {
    cgroup_location loc;
    loc.mount_point = mount.mount_point;
    std::string_view root = mount.root;
    if (root.size() > 1 && root.back() == '/') root.remove_suffix(1);
    std::string_view rest;
    if (path.find("/..") != std::string_view::npos) {
        loc.note = "cgroup path \"" + excerpt(path) + "\" leaves the mounted hierarchy; using the mount point";
        loc.directory = mount.mount_point;
        return loc;
    }
    if (root == "/") {
        rest = path;
    } else if (path == root) {
        rest = {};
    } else if (path.size() > root.size() && path.substr(0, root.size()) == root && path[root.size()] == '/') {
        rest = path.substr(root.size());
    } else {
        loc.note = "cgroup path \"" + excerpt(path) + "\" is not under mount root \"" + excerpt(root) +
                   "\"; using the mount point";
        rest = {};
    }
    if (rest == "/") rest = {};
    std::string dir = mount.mount_point;
    if (!dir.empty() && dir.back() == '/' && !rest.empty()) dir.pop_back();
    dir += std::string(rest);
    loc.directory = std::move(dir);
    return loc;
}

/// Returns the directories from dir up to and including stop (dir must be
/// under stop): "/a/b/c", "/a/b", "/a" for dir "/a/b/c" and stop "/a".
inline std::vector<std::string> walk_up(const std::string& dir, const std::string& stop) {
    std::vector<std::string> out;
    std::string d = dir;
    for (int guard = 0; guard < 256; ++guard) {
        out.push_back(d);
        if (d.size() <= stop.size()) break;
        std::size_t slash = d.rfind('/');
        if (slash == std::string::npos || slash < stop.size()) {
            if (d != stop) out.push_back(stop);
            break;
        }
        d.erase(slash == 0 ? 1 : slash);
    }
    return out;
}

/// The memory (and CPU) limits cgroups put on this process.
struct cgroup_facts {
    fact<std::string> layout;       ///< "v1", "v2", "hybrid" (v1 controllers plus a unified hierarchy)
    fact<std::string> memory_path;  ///< directory of the cgroup whose memory limit applies
    fact<limit> v1_memory_limit;    ///< smallest v1 memory limit on the path
    fact<limit> v2_memory_max;      ///< smallest v2 memory.max on the path
    fact<env::cpu_quota> cpu_limit; ///< smallest CPU quota (v1 CFS or v2 cpu.max)
};

/// Picks the mount for a hierarchy: v2 (cgroup2) or the v1 mount carrying
/// controller. Prefers a mount whose root contains path (bind mounts).
inline const mount_entry* find_cgroup_mount(const std::vector<mount_entry>& mounts, bool v2,
                                            std::string_view controller, std::string_view path) {
    const mount_entry* first = nullptr;
    for (const mount_entry& m : mounts) {
        bool match = v2 ? m.fs_type == "cgroup2" : (m.fs_type == "cgroup" && m.has_option(controller));
        if (!match) continue;
        if (!first) first = &m;
        if (m.root == "/" || path.substr(0, m.root.size()) == m.root) return &m;
    }
    return first;
}

/// Walks from loc.directory up to the mount point (included when
/// include_mount_point) reading file_name at each level, and returns the
/// smallest limit with the file that set it. A level without the file sets no
/// limit; a file that does not parse makes the result unknown, because the
/// limit it hides may be the one that binds.
template <class Reader, class Parse>
fact<limit> smallest_limit_on_path(Reader& read, const cgroup_location& loc, bool include_mount_point,
                                   const char* file_name, Parse parse) {
    limit best = limit::none();
    std::string best_source, missing;
    bool any = false;
    for (const std::string& dir : walk_up(loc.directory, loc.mount_point)) {
        if (dir == loc.mount_point && !include_mount_point) break;
        std::string file = dir + "/" + file_name;
        fact<std::string> text = read(file);
        if (!text) {
            if (missing.empty()) missing = file + ": " + text.reason;
            continue;
        }
        fact<limit> l = parse(text.value);
        if (!l) return fact<limit>::unknown(l.reason, file);
        if (!any) best_source = file;  // the leaf-most file, when nothing is set
        any = true;
        if (l.value.below(best)) {
            best = l.value;
            best_source = file;
        }
    }
    if (any) return fact<limit>::of(best, best_source);
    if (!include_mount_point && loc.directory == loc.mount_point)
        return fact<limit>::of(limit::none(), loc.mount_point + " (root cgroup: no " + file_name + ")");
    return fact<limit>::unknown(missing.empty() ? std::string("no ") + file_name + " on the path" : missing,
                                loc.directory);
}

/// Reads the cgroup limits of this process through read, a callable taking a
/// path (std::string) and returning fact<std::string> with the file's text.
/// Reads /proc/self/cgroup and /proc/self/mountinfo, then walks from the
/// process's cgroup up to the mount point, because a parent may set the limit
/// while the leaf says "max". In a hybrid layout the v1 memory controller is
/// the one that applies.
template <class Reader>
cgroup_facts read_cgroup_facts(Reader&& read) {
    cgroup_facts out;
    const std::string cgroup_file = "/proc/self/cgroup";
    const std::string mountinfo_file = "/proc/self/mountinfo";
    auto unknown_all = [&](const std::string& why, const std::string& src) {
        out.layout = fact<std::string>::unknown(why, src);
        out.memory_path = fact<std::string>::unknown(why, src);
        out.v1_memory_limit = fact<limit>::unknown(why, src);
        out.v2_memory_max = fact<limit>::unknown(why, src);
        out.cpu_limit = fact<cpu_quota>::unknown(why, src);
        return out;
    };
    fact<std::string> cgroup_text = read(cgroup_file);
    if (!cgroup_text) return unknown_all("cannot read: " + cgroup_text.reason, cgroup_file);
    fact<std::vector<cgroup_entry>> entries = parse_proc_cgroup(cgroup_text.value);
    if (!entries) return unknown_all("cannot parse: " + entries.reason, cgroup_file);
    fact<std::string> mount_text = read(mountinfo_file);
    if (!mount_text) return unknown_all("cannot read: " + mount_text.reason, mountinfo_file);
    fact<std::vector<mount_entry>> mounts = parse_mountinfo(mount_text.value);
    if (!mounts) return unknown_all("cannot parse: " + mounts.reason, mountinfo_file);

    const cgroup_entry* v2 = nullptr;
    const cgroup_entry* v1_memory = nullptr;
    const cgroup_entry* v1_cpu = nullptr;
    bool any_v1 = false;
    for (const cgroup_entry& e : entries.value) {
        if (e.is_v2()) {
            v2 = &e;
            continue;
        }
        any_v1 = true;
        if (e.has("memory")) v1_memory = &e;
        if (e.has("cpu")) v1_cpu = &e;
    }
    const char* layout = any_v1 && v2 ? "hybrid" : any_v1 ? "v1" : "v2";
    out.layout = fact<std::string>::of(layout, cgroup_file);

    // v1: memory.limit_in_bytes at each level (the root has one too), plus
    // memory.stat's hierarchical_memory_limit (the effective limit with use_hierarchy).
    if (v1_memory) {
        const mount_entry* m = find_cgroup_mount(mounts.value, false, "memory", v1_memory->path);
        if (!m) {
            out.v1_memory_limit = fact<limit>::unknown("no cgroup v1 mount with the memory controller", mountinfo_file);
            out.memory_path = fact<std::string>::unknown("no cgroup v1 memory mount", mountinfo_file);
        } else {
            cgroup_location loc = locate_cgroup(*m, v1_memory->path);
            out.memory_path = fact<std::string>::of(loc.directory, cgroup_file + " + " + mountinfo_file);
            out.v1_memory_limit =
                smallest_limit_on_path(read, loc, true, "memory.limit_in_bytes", parse_cgroup_v1_memory_limit);
            fact<std::string> stat = read(loc.directory + "/memory.stat");
            fact<std::uint64_t> h = stat ? find_key_u64(stat.value, "hierarchical_memory_limit")
                                         : fact<std::uint64_t>::unknown(stat.reason);
            if (h && out.v1_memory_limit) {
                limit l = h.value >= cgroup_v1_unlimited_from ? limit::none() : limit::of(h.value);
                if (l.below(out.v1_memory_limit.value))
                    out.v1_memory_limit =
                        fact<limit>::of(l, loc.directory + "/memory.stat (hierarchical_memory_limit)");
            }
            if (!loc.note.empty()) out.v1_memory_limit.source += " (" + loc.note + ")";
        }
    } else {
        out.v1_memory_limit = fact<limit>::unknown(
            any_v1 ? "no cgroup v1 memory controller for this process" : "no cgroup v1 hierarchies (pure v2)",
            cgroup_file);
    }

    // v2: memory.max at each level. The true root cgroup has none (no limit);
    // a mount of a subtree (mount root not "/") shows a real cgroup at the
    // mount point, which has one.
    const mount_entry* m2 = v2 ? find_cgroup_mount(mounts.value, true, "", v2->path) : nullptr;
    if (!v2) {
        out.v2_memory_max = fact<limit>::unknown("no cgroup v2 line (\"0::/path\")", cgroup_file);
    } else if (!m2) {
        out.v2_memory_max = fact<limit>::unknown("no cgroup2 mount", mountinfo_file);
    } else {
        cgroup_location loc = locate_cgroup(*m2, v2->path);
        fact<std::string> controllers = read(m2->mount_point + "/cgroup.controllers");
        bool has_memory = false;
        if (controllers)
            for (std::string_view c : fields(trim(controllers.value)))
                if (c == "memory") has_memory = true;
        if (!has_memory) {
            std::string why = "cgroup2 hierarchy at " + m2->mount_point + " has no memory controller";
            if (v1_memory) why += " (hybrid layout: the v1 memory controller applies)";
            if (!controllers) why = "cannot read " + m2->mount_point + "/cgroup.controllers: " + controllers.reason;
            out.v2_memory_max = fact<limit>::unknown(why, m2->mount_point + "/cgroup.controllers");
        } else {
            if (!v1_memory) out.memory_path = fact<std::string>::of(loc.directory, cgroup_file + " + " + mountinfo_file);
            out.v2_memory_max =
                smallest_limit_on_path(read, loc, m2->root != "/", "memory.max", parse_cgroup_v2_memory_max);
            if (!loc.note.empty()) out.v2_memory_max.source += " (" + loc.note + ")";
        }
    }
    if (!out.memory_path.known && out.memory_path.reason.empty())
        out.memory_path = fact<std::string>::unknown("no memory controller in any cgroup hierarchy", cgroup_file);

    // CPU quota: v1 CFS files in the cpu hierarchy, else v2 cpu.max.
    cpu_quota best_cpu;
    std::string cpu_source, cpu_error;
    bool cpu_any = false;
    auto consider = [&](const fact<cpu_quota>& q, const std::string& file) {
        if (!q) {
            if (cpu_error.empty()) cpu_error = file + ": " + q.reason;
            return;
        }
        cpu_any = true;
        if (cpu_source.empty()) cpu_source = file;
        if (!q.value.unlimited && (best_cpu.unlimited || q.value.cpus() < best_cpu.cpus())) {
            best_cpu = q.value;
            cpu_source = file;
        }
    };
    if (v1_cpu) {
        if (const mount_entry* m = find_cgroup_mount(mounts.value, false, "cpu", v1_cpu->path)) {
            cgroup_location loc = locate_cgroup(*m, v1_cpu->path);
            for (const std::string& dir : walk_up(loc.directory, loc.mount_point)) {
                fact<std::string> q = read(dir + "/cpu.cfs_quota_us");
                fact<std::string> p = read(dir + "/cpu.cfs_period_us");
                if (!q || !p) {
                    if (cpu_error.empty()) cpu_error = dir + "/cpu.cfs_quota_us: " + (q ? p.reason : q.reason);
                    continue;
                }
                consider(parse_cgroup_v1_cfs(q.value, p.value), dir + "/cpu.cfs_quota_us");
            }
        } else {
            cpu_error = "no cgroup v1 mount with the cpu controller";
        }
    } else if (v2 && m2) {
        cgroup_location loc = locate_cgroup(*m2, v2->path);
        for (const std::string& dir : walk_up(loc.directory, loc.mount_point)) {
            if (dir == loc.mount_point && m2->root == "/") break;  // the root cgroup has no cpu.max
            fact<std::string> t = read(dir + "/cpu.max");
            if (!t) continue;  // absent when the cpu controller is not enabled here
            consider(parse_cgroup_v2_cpu_max(t.value), dir + "/cpu.max");
        }
        if (!cpu_any && cpu_error.empty()) {
            cpu_any = true;  // no cpu.max anywhere: no quota
            cpu_source = loc.directory + " (no cpu.max on the path)";
        }
    } else {
        cpu_error = "no cpu controller in any cgroup hierarchy";
    }
    out.cpu_limit = cpu_any ? fact<cpu_quota>::of(best_cpu, cpu_source) : fact<cpu_quota>::unknown(cpu_error);
    return out;
}

}  // namespace env_parse
}  // namespace detail
}  // namespace memdiag
