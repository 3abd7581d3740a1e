// memdiag/env.hpp - the program's memory world, as a report and as checks.
//
//   memdiag::env::report r = memdiag::env::collect();
//   std::cout << r.to_text();                      // key=value  # detail; source
//   std::cout << r.to_json();                      // the same, as JSON
//   memdiag::env::check c = memdiag::env::require_memory(8ull << 30);
//   if (!c.passed()) std::cerr << c.to_text();
//
// Every item says where it came from; an item that could not be learned says
// "unknown" and why. Nothing here throws on a missing or malformed file.
// MEMDIAG_STATIC_REQUIRE_64BIT() (config.hpp) is the compile-time check.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#if __has_include(<version>)
#include <version>  // standard library identification macros
#endif

#include "config.hpp"
#include "detail/arch/cpu.hpp"
#include "detail/env_parse.hpp"
#include "detail/format_bytes.hpp"
#include "detail/os.hpp"
#include "detail/parse_size.hpp"

namespace memdiag {
namespace env {

// ---- formatting helpers ----------------------------------------------------

/// Returns bytes in binary units, e.g. "512 MiB", "23.5 GiB", "4 KiB", "100 B"
/// (memdiag::detail::format_bytes, compact style).
inline std::string format_bytes(std::uint64_t bytes) { return memdiag::detail::format_bytes(bytes).c_str(); }

/// Parses a size such as "4096", "512M", "8G", "1.5GiB" (binary units, case
/// ignored; the grammar is memdiag::detail::parse_size's). Returns unknown with
/// the reason and the text on anything else, never a wrapped value.
inline fact<std::uint64_t> parse_size(std::string_view text) {
    const memdiag::detail::size_parse r = memdiag::detail::parse_size(text);
    if (r.ok) return fact<std::uint64_t>::of(r.value);
    return fact<std::uint64_t>::unknown(std::string(r.error) + ": \"" +
                                        memdiag::detail::env_parse::excerpt(memdiag::detail::env_parse::trim(text)) +
                                        "\"");
}

/// Returns text as the body of a JSON string: quotes, backslashes and control
/// characters escaped, invalid UTF-8 replaced by U+FFFD (files may hold any bytes).
inline std::string json_escape(std::string_view text) {
    std::string out;
    out.reserve(text.size() + 8);
    std::size_t i = 0;
    while (i < text.size()) {
        auto c = static_cast<unsigned char>(text[i]);
        if (c < 0x80) {
            switch (c) {
                case '"': out += "\\\""; break;
                case '\\': out += "\\\\"; break;
                case '\n': out += "\\n"; break;
                case '\r': out += "\\r"; break;
                case '\t': out += "\\t"; break;
                default:
                    if (c < 0x20 || c == 0x7f) {
                        char buf[8];
                        std::snprintf(buf, sizeof buf, "\\u%04x", unsigned(c));
                        out += buf;
                    } else {
                        out += char(c);
                    }
            }
            ++i;
            continue;
        }
        // Validate one UTF-8 sequence (no overlongs, no surrogates, <= U+10FFFF).
        std::size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
        bool ok = len != 0 && i + len <= text.size() && c >= 0xC2 && c <= 0xF4;
        if (ok) {
            auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[i + k]); };
            for (std::size_t k = 1; k < len && ok; ++k) ok = (byte(k) & 0xC0) == 0x80;
            if (ok && c == 0xE0) ok = byte(1) >= 0xA0;
            if (ok && c == 0xED) ok = byte(1) < 0xA0;
            if (ok && c == 0xF0) ok = byte(1) >= 0x90;
            if (ok && c == 0xF4) ok = byte(1) < 0x90;
        }
        if (ok) {
            out.append(text.data() + i, len);
            i += len;
        } else {
            out += "\xEF\xBF\xBD";
            ++i;
        }
    }
    return out;
}

// ---- report ----------------------------------------------------------------

/// One line of the report: a key, its value as text, and where it came from.
struct item {
    std::string key;             ///< e.g. "page_size"
    std::string value;           ///< e.g. "4096", "unlimited", "unknown"
    bool known = false;          ///< false when value is "unknown"
    std::string detail;          ///< a readable gloss, e.g. "4 KiB"; may be empty
    std::string source;          ///< where it was read, e.g. "sysconf(_SC_PAGESIZE)"
    std::string reason;          ///< why it is unknown; empty when known
    bool has_bytes = false;      ///< true when bytes holds the value as a number
    std::uint64_t bytes = 0;     ///< the value in bytes (when has_bytes)
};

/// The smallest memory limit that applies to this process, and which one.
struct effective_limit_info {
    fact<limit> value;  ///< the limit; source names where it was read
    std::string key;    ///< the report key of the winning limit, e.g. "rlimit_as"
};

/// How serious a check result is.
enum class severity {
    ok,       ///< nothing to do
    warning,  ///< works, but a person should look (the advice says what to do)
    failure   ///< the requirement is not met
};

/// Returns "ok", "warning" or "failure".
inline const char* to_string(severity s) noexcept {
    return s == severity::ok ? "ok" : s == severity::warning ? "warning" : "failure";
}

/// The result of one check: severity, what was found, and what to do about it.
struct check {
    std::string name;               ///< e.g. "require_memory"
    severity level = severity::ok;  ///< ok, warning or failure
    std::string message;            ///< what was found, with the figures
    std::string advice;             ///< what a person can do; empty when ok

    /// Returns true unless the check failed (warnings pass).
    bool passed() const noexcept { return level != severity::failure; }
    /// Returns "OK   name: message" (plus an advice line), newline-terminated.
    std::string to_text() const {
        std::string out = level == severity::ok ? "OK   " : level == severity::warning ? "WARN " : "FAIL ";
        out += name + ": " + message + "\n";
        if (!advice.empty()) out += "     advice: " + advice + "\n";
        return out;
    }
    /// Returns the check as a JSON object.
    std::string to_json() const {
        return "{\"name\": \"" + json_escape(name) + "\", \"severity\": \"" + to_string(level) +
               "\", \"message\": \"" + json_escape(message) + "\", \"advice\": \"" + json_escape(advice) + "\"}";
    }
};

/// Returns the most serious severity among checks (ok for none).
inline severity worst(const std::vector<check>& checks) noexcept {
    severity s = severity::ok;
    for (const check& c : checks)
        if (int(c.level) > int(s)) s = c.level;
    return s;
}

/// Everything env knows about the process's memory world. collect() fills it;
/// the fields can also be set by hand (e.g. to test checks).
struct report {
    // The build.
    fact<std::string> arch;              ///< the build's architecture (x86_64, aarch64, i386, ...)
    fact<std::uint64_t> pointer_bits;    ///< 32 or 64
    fact<std::string> endianness;        ///< "little" or "big"
    fact<std::string> compiler;          ///< e.g. "gcc 12.2.0"
    fact<std::string> stdlib;            ///< e.g. "libstdc++ 12 (20220819)"
    fact<std::string> cxx_standard;      ///< e.g. "C++17 (201703L)"
    fact<std::string> ndebug;            ///< "on" when NDEBUG is defined
    fact<std::string> optimized;         ///< "on" for -O1 and above
    fact<std::string> sanitizers;        ///< e.g. "address", "none"
    fact<std::string> frame_pointers;    ///< "on" when known to be kept
    fact<std::string> exceptions;        ///< "on" or "off"
    fact<std::string> rtti;              ///< "on" or "off"
    // The machine.
    fact<std::string> os;                ///< e.g. "Debian GNU/Linux 12 (bookworm)"
    fact<std::string> kernel;            ///< e.g. "Linux 6.1.0"
    fact<std::string> kernel_machine;    ///< uname machine: "x86_64" under a 32-bit build too
    fact<std::uint64_t> virtual_address_bits;   ///< the CPU's linear address width
    fact<std::uint64_t> physical_address_bits;  ///< the CPU's physical address width
    fact<std::uint64_t> address_space;   ///< user address space this process can map
    fact<std::uint64_t> page_size;       ///< bytes
    fact<std::uint64_t> huge_page_size;  ///< bytes (THP / large page size)
    fact<std::string> thp_mode;          ///< transparent huge pages: always, madvise, never
    fact<std::string> thp_defrag;        ///< THP defrag mode
    fact<std::uint64_t> physical_memory; ///< installed RAM, bytes (host-wide in a container)
    fact<std::uint64_t> available_memory;///< RAM obtainable now, bytes
    fact<std::uint64_t> process_memory;  ///< this process's resident memory / footprint now
    fact<std::uint64_t> cpu_count;       ///< CPUs this process may use
    // Limits.
    fact<limit> rlimit_as;               ///< RLIMIT_AS (ulimit -v)
    fact<limit> rlimit_data;             ///< RLIMIT_DATA (ulimit -d)
    fact<limit> rlimit_stack;            ///< RLIMIT_STACK (ulimit -s)
    fact<std::string> cgroup_layout;     ///< "v1", "v2" or "hybrid"
    fact<std::string> cgroup_memory_path;///< the cgroup directory whose memory limit applies
    fact<limit> cgroup_v1_memory_limit;  ///< smallest memory.limit_in_bytes on the path
    fact<limit> cgroup_v2_memory_max;    ///< smallest memory.max on the path
    fact<cpu_quota> cgroup_cpu_quota;    ///< CFS quota or cpu.max
    fact<limit> job_memory_limit;        ///< Windows job object limit
    fact<int> overcommit_memory;         ///< vm.overcommit_memory (0, 1, 2)
    fact<std::uint64_t> overcommit_ratio;///< vm.overcommit_ratio, percent
    fact<std::string> malloc_implementation;  ///< the malloc in use (glibc, jemalloc, ...)

    // Which facts apply on this OS (the others are left out of the output).
    bool show_rlimits = true;            ///< rlimit_* apply
    bool show_cgroups = true;            ///< cgroup_* apply
    bool show_job = false;               ///< job_memory_limit applies
    bool show_overcommit = true;         ///< overcommit_* apply
    bool show_thp = true;                ///< thp_* apply

    /// Returns the smallest limit among physical memory, address space,
    /// RLIMIT_AS, RLIMIT_DATA, the cgroup limits and the job limit.
    effective_limit_info effective_limit() const;
    /// Returns the report as rows, in display order.
    std::vector<item> items() const;
    /// Returns the report as aligned "key=value  # detail; source" lines.
    std::string to_text() const;
    /// Returns the report as a JSON object; checks, when given, are included.
    std::string to_json(const std::vector<check>& checks = {}) const;
};

namespace detail {

using memdiag::detail::env_parse::excerpt;

/// Returns a known string fact from a compile-time source.
inline fact<std::string> built(std::string value, std::string source) {
    return fact<std::string>::of(std::move(value), std::move(source));
}

/// Returns "on" or "off".
inline std::string on_off(bool b) { return b ? "on" : "off"; }

/// Returns the compiler name and version this code was built with.
inline fact<std::string> compiler() {
#if defined(__clang__) && defined(__apple_build_version__)
    return built("Apple clang " + std::string(memdiag::detail::env_parse::trim(__clang_version__)), "__clang_version__");
#elif defined(__clang__)
    return built("clang " + std::string(memdiag::detail::env_parse::trim(__clang_version__)), "__clang_version__");
#elif defined(__GNUC__)
    std::string v = "gcc " + std::to_string(__GNUC__) + "." + std::to_string(__GNUC_MINOR__) + "." +
                    std::to_string(__GNUC_PATCHLEVEL__);
#if defined(__MINGW32__)
    v += " (mingw-w64)";
#endif
    return built(v, "__GNUC__.__GNUC_MINOR__.__GNUC_PATCHLEVEL__");
#elif defined(_MSC_VER)
    return built("msvc " + std::to_string(_MSC_FULL_VER), "_MSC_FULL_VER");
#else
    return fact<std::string>::unknown("unrecognised compiler");
#endif  // compiler
}

/// Returns the C++ standard library and its version.
inline fact<std::string> stdlib() {
#if defined(_LIBCPP_VERSION)
    return built("libc++ " + std::to_string(_LIBCPP_VERSION), "_LIBCPP_VERSION");
#elif defined(__GLIBCXX__)
#if defined(_GLIBCXX_RELEASE)
    return built("libstdc++ " + std::to_string(_GLIBCXX_RELEASE) + " (" + std::to_string(__GLIBCXX__) + ")",
                 "_GLIBCXX_RELEASE, __GLIBCXX__");
#else
    return built("libstdc++ (" + std::to_string(__GLIBCXX__) + ")", "__GLIBCXX__");
#endif
#elif defined(_MSVC_STL_VERSION)
    return built("MSVC STL " + std::to_string(_MSVC_STL_VERSION), "_MSVC_STL_VERSION");
#else
    return fact<std::string>::unknown("unrecognised standard library");
#endif  // standard library
}

/// Returns the C++ standard this translation unit is compiled as.
inline fact<std::string> cxx_standard() {
#if defined(_MSVC_LANG)
    long v = _MSVC_LANG;
    const char* source = "_MSVC_LANG";
#else
    long v = __cplusplus;
    const char* source = "__cplusplus";
#endif
    std::string name = v > 202002L ? "C++23" : v >= 202002L ? "C++20" : v >= 201703L ? "C++17" : "C++14 or older";
    if (v > 202002L && v < 202302L) name = "C++2b";
    return built(name + " (" + std::to_string(v) + "L)", source);
}

/// Returns the sanitizers compiled in. gcc defines no macro for UBSan.
inline fact<std::string> sanitizers() {
    std::string list;
    auto add = [&](const char* s) { list += (list.empty() ? "" : ",") + std::string(s); };
    (void)add;  // unused when no sanitizer is on
#if MEMDIAG_ASAN
    add("address");
#endif
#if MEMDIAG_TSAN
    add("thread");
#endif
#if defined(__has_feature)
#if __has_feature(memory_sanitizer)
    add("memory");
#endif
#if __has_feature(undefined_behavior_sanitizer)
    add("undefined");
#endif
#endif  // __has_feature
#if defined(__clang__)
    const char* source = "__has_feature(*_sanitizer)";
#else
    const char* source = "__SANITIZE_ADDRESS__, __SANITIZE_THREAD__ (UBSan has no macro)";
#endif
    return built(list.empty() ? "none" : list, source);
}

/// Returns whether frame pointers are kept, when the build says so.
inline fact<std::string> frame_pointers() {
#if !defined(__OPTIMIZE__) && (defined(__GNUC__) || defined(__clang__))
    return built("on", "no __OPTIMIZE__: unoptimized builds keep frame pointers");
#else
    return fact<std::string>::unknown("compilers define no macro for -fno-omit-frame-pointer; check the build flags",
                                      "compiler macros");
#endif
}

/// Returns the byte order of this build.
inline fact<std::string> endianness() {
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__)
    return built(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? "little" : "big", "__BYTE_ORDER__");
#else
    std::uint32_t probe = 1;
    unsigned char first;
    std::memcpy(&first, &probe, 1);
    return built(first == 1 ? "little" : "big", "byte order of a uint32_t at run time");
#endif
}

/// Returns 2^bits as a size, saturating at 2^63.
inline std::uint64_t pow2(unsigned bits) noexcept { return std::uint64_t(1) << (bits > 63 ? 63 : bits); }

/// Returns true when a kernel architecture name is a 64-bit one.
inline bool is_64bit_machine(std::string_view m) noexcept {
    return m.find("64") != std::string_view::npos || m == "s390x";
}

/// Returns the user address space this process can map: what the OS states,
/// else derived from the pointer width (32-bit) or the CPU's address bits.
inline fact<std::uint64_t> address_space(const report& r) {
    fact<std::uint64_t> stated = memdiag::detail::os::address_space_size();
    if (stated) return stated;
    if (r.pointer_bits && r.pointer_bits.value < 64) {
        if (r.kernel_machine && !is_64bit_machine(r.kernel_machine.value))
            return fact<std::uint64_t>::of(3ull << 30, "32-bit pointers on a 32-bit kernel (" + r.kernel_machine.value +
                                                           "): 3 GiB with the usual split");
        return fact<std::uint64_t>::of(pow2(unsigned(r.pointer_bits.value)),
                                       std::to_string(r.pointer_bits.value) + "-bit pointers" +
                                           (r.kernel_machine ? " on a 64-bit kernel (" + r.kernel_machine.value + ")" : ""));
    }
    if (r.virtual_address_bits) {
        unsigned bits = memdiag::detail::arch::user_address_bits(unsigned(r.virtual_address_bits.value));
        return fact<std::uint64_t>::of(pow2(bits), std::to_string(bits) + " bits of user space for a " +
                                                        std::to_string(r.virtual_address_bits.value) +
                                                        "-bit virtual address (" + r.virtual_address_bits.source + ")");
    }
    return fact<std::uint64_t>::unknown("virtual address bits unknown: " + r.virtual_address_bits.reason);
}

/// Returns a report row for a string fact.
inline item string_item(const char* key, const fact<std::string>& f) {
    item i;
    i.key = key;
    i.known = f.known;
    i.value = f.known ? f.value : "unknown";
    i.source = f.source;
    i.reason = f.known || !f.reason.empty() ? f.reason : "not collected";
    return i;
}

/// Returns a report row for a count.
inline item number_item(const char* key, const fact<std::uint64_t>& f) {
    item i = string_item(key, fact<std::string>{f.known, f.known ? std::to_string(f.value) : "", f.source, f.reason});
    return i;
}

/// Returns a report row for a size in bytes.
inline item bytes_item(const char* key, const fact<std::uint64_t>& f) {
    item i = number_item(key, f);
    if (f.known) {
        i.has_bytes = true;
        i.bytes = f.value;
        i.detail = format_bytes(f.value);
    }
    return i;
}

/// Returns a report row for a limit ("unlimited" or bytes).
inline item limit_item(const char* key, const fact<limit>& f) {
    if (f.known && f.value.unlimited)
        return string_item(key, fact<std::string>::of("unlimited", f.source));
    return bytes_item(key, fact<std::uint64_t>{f.known, f.value.bytes, f.source, f.reason});
}

/// Returns value quoted for a key=value line when it has spaces or quotes;
/// control bytes become '?', so one item is always one line.
inline std::string text_value(const std::string& value) {
    bool plain = !value.empty();
    std::string clean;
    for (char c : value) {
        auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f) c = '?';
        if (c == ' ' || c == '"' || c == '\'' || c == '\\' || c == '#' || c == '$' || c == '`') plain = false;
        clean += c;
    }
    if (plain) return clean;
    std::string out = "\"";
    for (char c : clean) {
        if (c == '"' || c == '\\' || c == '$' || c == '`') out += '\\';
        out += c;
    }
    return out + "\"";
}

/// Returns s with control bytes shown as '?' (for comments on one line).
inline std::string one_line(const std::string& s) {
    std::string out = s;
    for (char& c : out)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    return out;
}

}  // namespace detail

inline effective_limit_info report::effective_limit() const {
    struct candidate {
        const char* key;
        fact<limit> value;
    };
    auto bytes = [](const fact<std::uint64_t>& f) {
        return fact<limit>{f.known, limit::of(f.value), f.source, f.reason};
    };
    const candidate all[] = {
        {"physical_memory", bytes(physical_memory)},
        {"address_space", bytes(address_space)},
        {"rlimit_as", show_rlimits ? rlimit_as : fact<limit>{}},
        {"rlimit_data", show_rlimits ? rlimit_data : fact<limit>{}},
        {"cgroup_v1_memory_limit", show_cgroups ? cgroup_v1_memory_limit : fact<limit>{}},
        {"cgroup_v2_memory_max", show_cgroups ? cgroup_v2_memory_max : fact<limit>{}},
        {"job_memory_limit", show_job ? job_memory_limit : fact<limit>{}},
    };
    effective_limit_info best;
    best.value = fact<limit>::unknown("no limit could be read (physical memory unknown)");
    for (const candidate& c : all) {
        if (!c.value.known || c.value.value.unlimited) continue;
        if (!best.value.known || c.value.value.below(best.value.value)) {
            best.value = fact<limit>::of(c.value.value, c.value.source);
            best.key = c.key;
        }
    }
    return best;
}

inline std::vector<item> report::items() const {
    using namespace detail;
    std::vector<item> out;
    out.push_back(string_item("memdiag_version", built(MEMDIAG_VERSION_STRING, "MEMDIAG_VERSION_STRING")));
    out.push_back(string_item("arch", arch));
    out.push_back(number_item("pointer_bits", pointer_bits));
    out.push_back(string_item("endianness", endianness));
    out.push_back(string_item("kernel_machine", kernel_machine));
    out.push_back(number_item("virtual_address_bits", virtual_address_bits));
    out.push_back(number_item("physical_address_bits", physical_address_bits));
    out.push_back(bytes_item("address_space", address_space));
    out.push_back(string_item("os", os));
    out.push_back(string_item("kernel", kernel));
    out.push_back(string_item("compiler", compiler));
    out.push_back(string_item("stdlib", stdlib));
    out.push_back(string_item("cxx_standard", cxx_standard));
    out.push_back(string_item("ndebug", ndebug));
    out.push_back(string_item("optimized", optimized));
    out.push_back(string_item("sanitizers", sanitizers));
    out.push_back(string_item("frame_pointers", frame_pointers));
    out.push_back(string_item("exceptions", exceptions));
    out.push_back(string_item("rtti", rtti));
    out.push_back(bytes_item("page_size", page_size));
    out.push_back(bytes_item("huge_page_size", huge_page_size));
    if (show_thp) {
        out.push_back(string_item("thp_mode", thp_mode));
        out.push_back(string_item("thp_defrag", thp_defrag));
    }
    out.push_back(bytes_item("physical_memory", physical_memory));
    out.push_back(bytes_item("available_memory", available_memory));
    out.push_back(bytes_item("process_memory", process_memory));
    if (show_rlimits) {
        out.push_back(limit_item("rlimit_as", rlimit_as));
        out.push_back(limit_item("rlimit_data", rlimit_data));
        out.push_back(limit_item("rlimit_stack", rlimit_stack));
    }
    if (show_cgroups) {
        out.push_back(string_item("cgroup_layout", cgroup_layout));
        out.push_back(string_item("cgroup_memory_path", cgroup_memory_path));
        out.push_back(limit_item("cgroup_v1_memory_limit", cgroup_v1_memory_limit));
        out.push_back(limit_item("cgroup_v2_memory_max", cgroup_v2_memory_max));
    }
    if (show_job) out.push_back(limit_item("job_memory_limit", job_memory_limit));
    if (show_overcommit) {
        static const char* const modes[] = {"heuristic", "always", "strict (never overcommit)"};
        item mode = number_item("overcommit_memory", fact<std::uint64_t>{overcommit_memory.known,
                                                                        std::uint64_t(overcommit_memory.value),
                                                                        overcommit_memory.source,
                                                                        overcommit_memory.reason});
        if (overcommit_memory.known && overcommit_memory.value >= 0 && overcommit_memory.value <= 2)
            mode.detail = modes[overcommit_memory.value];
        out.push_back(mode);
        item ratio = number_item("overcommit_ratio", overcommit_ratio);
        if (ratio.known) ratio.detail = "percent of RAM, used in strict mode";
        out.push_back(ratio);
    }
    out.push_back(number_item("cpu_count", cpu_count));
    if (show_cgroups) {
        item q = string_item("cpu_quota", fact<std::string>{cgroup_cpu_quota.known, "", cgroup_cpu_quota.source,
                                                              cgroup_cpu_quota.reason});
        if (cgroup_cpu_quota.known) {
            const cpu_quota& c = cgroup_cpu_quota.value;
            if (c.unlimited) {
                q.value = "unlimited";
            } else {
                char buf[32];
                std::snprintf(buf, sizeof buf, "%.2f", c.cpus());
                q.value = buf;
                q.detail = "CPUs (" + std::to_string(c.quota_us) + " us per " + std::to_string(c.period_us) + " us)";
            }
        }
        out.push_back(q);
    }
    out.push_back(string_item("malloc", malloc_implementation));
    effective_limit_info e = effective_limit();
    item eff = limit_item("effective_limit", e.value);
    if (e.value.known) eff.detail = (eff.detail.empty() ? "" : eff.detail + ", ") + "from " + e.key;
    out.push_back(eff);
    return out;
}

inline std::string report::to_text() const {
    std::vector<item> rows = items();
    std::vector<std::string> heads;
    std::size_t width = 0;
    for (const item& i : rows) {
        heads.push_back(i.key + "=" + detail::text_value(i.value));
        if (heads.back().size() > width) width = heads.back().size();
    }
    if (width > 48) width = 48;  // a long value must not push every comment off screen
    std::string out;
    for (std::size_t n = 0; n < rows.size(); ++n) {
        const item& i = rows[n];
        out += heads[n];
        out.append(heads[n].size() < width ? width - heads[n].size() : 0, ' ');
        out += "  # ";
        std::string note = i.known ? i.detail : "unknown: " + i.reason;
        if (!i.source.empty()) note += (note.empty() ? "" : "; ") + std::string(i.known ? "" : "tried ") + i.source;
        out += detail::one_line(note) + "\n";
    }
    return out;
}

inline std::string report::to_json(const std::vector<check>& checks) const {
    std::vector<item> rows = items();
    std::string out = "{\n  \"memdiag_version\": \"" MEMDIAG_VERSION_STRING "\",\n  \"items\": {\n";
    for (std::size_t n = 0; n < rows.size(); ++n) {
        const item& i = rows[n];
        out += "    \"" + json_escape(i.key) + "\": {\"value\": \"" + json_escape(i.value) +
               "\", \"known\": " + (i.known ? "true" : "false");
        if (i.has_bytes) out += ", \"bytes\": " + std::to_string(i.bytes);
        if (!i.detail.empty()) out += ", \"detail\": \"" + json_escape(i.detail) + "\"";
        out += ", \"source\": \"" + json_escape(i.source) + "\"";
        if (!i.known) out += ", \"reason\": \"" + json_escape(i.reason) + "\"";
        out += n + 1 < rows.size() ? "},\n" : "}\n";
    }
    out += "  }";
    effective_limit_info e = effective_limit();
    out += ",\n  \"effective_limit\": {\"key\": \"" + json_escape(e.key) + "\", \"known\": " +
           (e.value.known ? "true" : "false");
    if (e.value.known) out += ", \"bytes\": " + std::to_string(e.value.value.bytes);
    out += ", \"source\": \"" + json_escape(e.value.source) + "\"";
    if (!e.value.known) out += ", \"reason\": \"" + json_escape(e.value.reason) + "\"";
    out += "}";
    if (!checks.empty()) {
        out += ",\n  \"checks\": [\n";
        for (std::size_t n = 0; n < checks.size(); ++n)
            out += "    " + checks[n].to_json() + (n + 1 < checks.size() ? ",\n" : "\n");
        out += "  ],\n  \"worst\": \"" + std::string(to_string(worst(checks))) + "\"";
    }
    return out + "\n}\n";
}

/// Learns the process's memory world: build facts from compiler macros, the
/// rest from the OS (see detail/os.hpp). Reads a few small files; never throws
/// on missing or malformed ones, which become "unknown" items.
inline report collect() {
    namespace os = memdiag::detail::os;
    report r;
    r.arch = detail::built(MEMDIAG_ARCH_NAME, "compiler macros (MEMDIAG_ARCH_NAME)");
    r.pointer_bits = fact<std::uint64_t>::of(sizeof(void*) * 8, "sizeof(void*) * 8");
    r.endianness = detail::endianness();
    r.compiler = detail::compiler();
    r.stdlib = detail::stdlib();
    r.cxx_standard = detail::cxx_standard();
#if defined(NDEBUG)
    r.ndebug = detail::built("on", "NDEBUG");
#else
    r.ndebug = detail::built("off", "NDEBUG");
#endif
#if defined(__OPTIMIZE__)
    r.optimized = detail::built("on", "__OPTIMIZE__");
#elif defined(__GNUC__) || defined(__clang__)
    r.optimized = detail::built("off", "__OPTIMIZE__");
#else
    r.optimized = fact<std::string>::unknown("compiler defines no optimization macro");
#endif
    r.sanitizers = detail::sanitizers();
    r.frame_pointers = detail::frame_pointers();
    r.exceptions = detail::built(detail::on_off(MEMDIAG_HAS_EXCEPTIONS), "MEMDIAG_HAS_EXCEPTIONS");
    r.rtti = detail::built(detail::on_off(MEMDIAG_HAS_RTTI), "MEMDIAG_HAS_RTTI");

    r.os = os::os_version();
    r.kernel = os::kernel_version();
    r.kernel_machine = os::kernel_machine();
    fact<address_sizes> bits = memdiag::detail::arch::cpu_address_sizes();
    r.virtual_address_bits = fact<std::uint64_t>{bits.known, bits.value.virtual_bits, bits.source, bits.reason};
    r.physical_address_bits = fact<std::uint64_t>{bits.known, bits.value.physical_bits, bits.source, bits.reason};
    r.address_space = detail::address_space(r);
    r.page_size = os::page_size();
    r.huge_page_size = os::huge_page_size();
    r.thp_mode = os::thp_setting("enabled");
    r.thp_defrag = os::thp_setting("defrag");
    r.physical_memory = os::physical_memory();
    r.available_memory = os::available_memory();
    r.process_memory = os::process_memory();
    r.cpu_count = os::cpu_count();

    r.rlimit_as = os::rlimit_address_space();
    r.rlimit_data = os::rlimit_data();
    r.rlimit_stack = os::rlimit_stack();
    memdiag::detail::env_parse::cgroup_facts cg = os::cgroups();
    r.cgroup_layout = cg.layout;
    r.cgroup_memory_path = cg.memory_path;
    r.cgroup_v1_memory_limit = cg.v1_memory_limit;
    r.cgroup_v2_memory_max = cg.v2_memory_max;
    r.cgroup_cpu_quota = cg.cpu_limit;
    r.job_memory_limit = os::job_memory_limit();
    r.overcommit_memory = os::overcommit_mode();
    r.overcommit_ratio = os::overcommit_ratio();
    r.malloc_implementation = os::malloc_implementation();

    r.show_rlimits = os::has_rlimits;
    r.show_cgroups = os::has_cgroups;
    r.show_job = os::has_job_objects;
    r.show_overcommit = os::has_overcommit_setting;
    r.show_thp = os::has_transparent_huge_pages;
    return r;
}

// ---- checks ----------------------------------------------------------------

namespace detail {

/// Returns a check with the given outcome.
inline check make_check(const char* name, severity level, std::string message, std::string advice = {}) {
    check c;
    c.name = name;
    c.level = level;
    c.message = std::move(message);
    c.advice = std::move(advice);
    return c;
}

/// Returns what to do when the limit named key is too small.
inline std::string advice_for_limit(const std::string& key) {
    if (key == "rlimit_as")
        return "raise the address-space limit: `ulimit -v unlimited` in the shell that starts the program, "
               "`prlimit --as=unlimited --pid <pid>`, or LimitAS=infinity in a systemd unit";
    if (key == "rlimit_data")
        return "raise the data-segment limit: `ulimit -d unlimited`, `prlimit --data=unlimited --pid <pid>`, "
               "or LimitDATA=infinity in a systemd unit";
    if (key == "cgroup_v1_memory_limit" || key == "cgroup_v2_memory_max")
        return "raise the container memory limit (docker run --memory=..., Kubernetes resources.limits.memory, "
               "systemd MemoryMax=)";
    if (key == "job_memory_limit") return "raise the memory limit of the job object this process runs in";
    if (key == "address_space") return "use a 64-bit build: 32-bit pointers cap the address space at 4 GiB";
    if (key == "physical_memory") return "run on a machine with more RAM, or reduce the memory the program needs";
    return "raise the limit named above";
}

/// Returns a figure followed by its source, for messages.
inline std::string figure(std::uint64_t bytes, const std::string& source) {
    return format_bytes(bytes) + (source.empty() ? "" : " (" + source + ")");
}

}  // namespace detail

/// Checks that this is a 64-bit build. Returns failure for a 32-bit one.
/// The compile-time form is MEMDIAG_STATIC_REQUIRE_64BIT().
inline check require_64bit(const report& r) {
    if (!r.pointer_bits)
        return detail::make_check("require_64bit", severity::warning, "pointer width unknown: " + r.pointer_bits.reason);
    if (r.pointer_bits.value >= 64)
        return detail::make_check("require_64bit", severity::ok, "64-bit build (" + r.arch.value + ")");
    return detail::make_check(
        "require_64bit", severity::failure,
        std::to_string(r.pointer_bits.value) + "-bit build (" + r.arch.value + "): the address space is at most " +
            format_bytes(r.address_space ? r.address_space.value : detail::pow2(unsigned(r.pointer_bits.value))),
        "rebuild as a 64-bit program: drop -m32, use a 64-bit toolchain (x86_64, aarch64)");
}
/// Same as require_64bit(collect()).
inline check require_64bit() { return require_64bit(collect()); }

/// Warns when this is a 32-bit build. Returns ok for a 64-bit one.
inline check warn_32bit(const report& r) {
    check c = require_64bit(r);
    c.name = "warn_32bit";
    if (c.level == severity::failure) {
        c.level = severity::warning;
        c.advice = "build for 64 bits unless 32 is intended (drop -m32); to make it a build error, add "
                   "MEMDIAG_STATIC_REQUIRE_64BIT()";
    }
    return c;
}
/// Same as warn_32bit(collect()).
inline check warn_32bit() { return warn_32bit(collect()); }

/// Checks that bytes of address space can be mapped: the smaller of the user
/// address space and RLIMIT_AS. Returns failure when it is smaller than bytes,
/// warning when neither is known.
inline check require_address_space(std::uint64_t bytes, const report& r) {
    const char* name = "require_address_space";
    fact<limit> space{r.address_space.known, limit::of(r.address_space.value), r.address_space.source,
                      r.address_space.reason};
    std::string key = "address_space";
    if (r.show_rlimits && r.rlimit_as && r.rlimit_as.value.below(space.known ? space.value : limit::none())) {
        space = r.rlimit_as;
        key = "rlimit_as";
    }
    if (!space.known)
        return detail::make_check(name, severity::warning,
                                  "needs " + format_bytes(bytes) + "; address space unknown: " + space.reason,
                                  "check `ulimit -v` and that the build is 64-bit");
    if (space.value.unlimited || space.value.bytes >= bytes)
        return detail::make_check(name, severity::ok,
                                  "needs " + format_bytes(bytes) + ", " + key + " allows " +
                                      (space.value.unlimited ? std::string("unlimited")
                                                             : detail::figure(space.value.bytes, space.source)));
    return detail::make_check(name, severity::failure,
                              "needs " + format_bytes(bytes) + " of address space but " + key + " allows only " +
                                  detail::figure(space.value.bytes, space.source),
                              detail::advice_for_limit(key));
}
/// Same as require_address_space(bytes, collect()).
inline check require_address_space(std::uint64_t bytes) { return require_address_space(bytes, collect()); }

/// Checks that bytes of memory can be used: failure when the effective limit
/// (smallest of RAM, address space, rlimits, cgroup and job limits) is below
/// bytes; warning when less than bytes is available right now or nothing is known.
inline check require_memory(std::uint64_t bytes, const report& r) {
    const char* name = "require_memory";
    effective_limit_info e = r.effective_limit();
    if (!e.value.known)
        return detail::make_check(name, severity::warning,
                                  "needs " + format_bytes(bytes) + "; no limit known: " + e.value.reason,
                                  "check the machine's RAM and the process limits by hand");
    if (e.value.value.bytes < bytes)
        return detail::make_check(name, severity::failure,
                                  "needs " + format_bytes(bytes) + " but the effective limit is " +
                                      detail::figure(e.value.value.bytes, e.value.source) + " from " + e.key,
                                  detail::advice_for_limit(e.key));
    if (r.available_memory && r.available_memory.value < bytes)
        return detail::make_check(name, severity::warning,
                                  "needs " + format_bytes(bytes) + "; the limit allows it but only " +
                                      detail::figure(r.available_memory.value, r.available_memory.source) +
                                      " is available now",
                                  "free memory (stop other programs, drop caches) or expect swapping");
    return detail::make_check(name, severity::ok,
                              "needs " + format_bytes(bytes) + ", effective limit " +
                                  format_bytes(e.value.value.bytes) + " from " + e.key);
}
/// Same as require_memory(bytes, collect()).
inline check require_memory(std::uint64_t bytes) { return require_memory(bytes, collect()); }

/// Warns when RLIMIT_AS or RLIMIT_DATA is below physical memory: allocation
/// then fails while RAM is free, and allocators or sanitizers that reserve
/// large address ranges fail at start-up.
inline check check_rlimits(const report& r) {
    const char* name = "check_rlimits";
    if (!r.show_rlimits) return detail::make_check(name, severity::ok, "no rlimits on this OS");
    limit ram = r.physical_memory ? limit::of(r.physical_memory.value) : limit::none();
    const std::pair<const char*, const fact<limit>*> limits[] = {{"rlimit_as", &r.rlimit_as},
                                                                 {"rlimit_data", &r.rlimit_data}};
    for (const auto& l : limits) {
        const fact<limit>& f = *l.second;
        if (!f.known || f.value.unlimited) continue;
        if (!r.physical_memory || f.value.below(ram))
            return detail::make_check(
                name, severity::warning,
                std::string(l.first) + " is " + detail::figure(f.value.bytes, f.source) +
                    (r.physical_memory ? ", below physical memory " + format_bytes(r.physical_memory.value) : "") +
                    ": allocations fail there even with free RAM; ASan and allocators that reserve address "
                    "space may fail at start",
                detail::advice_for_limit(l.first));
    }
    return detail::make_check(name, severity::ok, "RLIMIT_AS and RLIMIT_DATA do not bind below physical memory");
}
/// Same as check_rlimits(collect()).
inline check check_rlimits() { return check_rlimits(collect()); }

/// Warns when a container limit (cgroup v1 or v2, Windows job) is below
/// physical memory: RAM-based sizing then overshoots and the OOM killer stops
/// the process at the limit.
inline check check_container_limit(const report& r) {
    const char* name = "check_container_limit";
    limit ram = r.physical_memory ? limit::of(r.physical_memory.value) : limit::none();
    const std::pair<const char*, fact<limit>> limits[] = {
        {"cgroup_v1_memory_limit", r.show_cgroups ? r.cgroup_v1_memory_limit : fact<limit>{}},
        {"cgroup_v2_memory_max", r.show_cgroups ? r.cgroup_v2_memory_max : fact<limit>{}},
        {"job_memory_limit", r.show_job ? r.job_memory_limit : fact<limit>{}}};
    for (const auto& l : limits) {
        const fact<limit>& f = l.second;
        if (!f.known || f.value.unlimited || !f.value.below(ram)) continue;
        return detail::make_check(name, severity::warning,
                                  std::string(l.first) + " is " + detail::figure(f.value.bytes, f.source) +
                                      (r.physical_memory ? ", below physical memory " + format_bytes(r.physical_memory.value)
                                                         : "") +
                                      ": the process is killed at the limit, not when RAM runs out",
                                  "size heaps and caches from the effective limit (e.g. 75-90% of it), not from RAM; "
                                  "or " + detail::advice_for_limit(l.first));
    }
    return detail::make_check(name, severity::ok, "no container limit below physical memory");
}
/// Same as check_container_limit(collect()).
inline check check_container_limit() { return check_container_limit(collect()); }

/// Warns when overcommit is disabled (vm.overcommit_memory=2): reservations
/// are charged in full, so large untouched mappings fail.
inline check check_overcommit(const report& r) {
    const char* name = "check_overcommit";
    if (!r.show_overcommit) return detail::make_check(name, severity::ok, "no overcommit setting on this OS");
    if (!r.overcommit_memory)
        return detail::make_check(name, severity::ok, "overcommit mode unknown: " + r.overcommit_memory.reason);
    if (r.overcommit_memory.value == 2)
        return detail::make_check(
            name, severity::warning,
            "overcommit disabled (vm.overcommit_memory=2, ratio " +
                (r.overcommit_ratio ? std::to_string(r.overcommit_ratio.value) + "%" : std::string("unknown")) +
                "): every reservation is charged in full, so large mappings fail even when untouched",
            "sysctl vm.overcommit_memory=0, or raise vm.overcommit_ratio / vm.overcommit_kbytes");
    return detail::make_check(name, severity::ok,
                              r.overcommit_memory.value == 1
                                  ? "overcommit always (mode 1): allocation succeeds, the OOM killer acts instead"
                                  : "heuristic overcommit (mode 0)");
}
/// Same as check_overcommit(collect()).
inline check check_overcommit() { return check_overcommit(collect()); }

/// Runs the checks that need no argument: warn_32bit, check_rlimits,
/// check_container_limit, check_overcommit. Returns their results in order.
inline std::vector<check> run_default_checks(const report& r) {
    return {warn_32bit(r), check_rlimits(r), check_container_limit(r), check_overcommit(r)};
}
/// Same as run_default_checks(collect()).
inline std::vector<check> run_default_checks() { return run_default_checks(collect()); }

}  // namespace env
}  // namespace memdiag
