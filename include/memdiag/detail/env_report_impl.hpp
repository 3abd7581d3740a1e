// memdiag/detail/env_report_impl.hpp - the definitions behind env/report.hpp:
// the formatting helpers, the report's rows, its text and JSON, and the
// effective limit. Header-only, env/report.hpp includes this at its end; with
// MEMDIAG_SEPARATE_IMPLEMENTATION only memdiag/implementation.hpp does.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../config.hpp"
#include "../env/report.hpp"
#include "env_parse.hpp"
#include "format_bytes.hpp"
#include "parse_size.hpp"

namespace memdiag {
namespace env {

/// Returns bytes in binary units, e.g. "512 MiB", "23.5 GiB", "4 KiB", "100 B"
/// (memdiag::detail::format_bytes, compact style).
MEMDIAG_IMPL std::string format_bytes(std::uint64_t bytes) { return memdiag::detail::format_bytes(bytes).c_str(); }

/// Parses a size such as "4096", "512M", "8G", "1.5GiB" (binary units, case
/// ignored; the grammar is memdiag::detail::parse_size's). Returns unknown with
/// the reason and the text on anything else, never a wrapped value.
MEMDIAG_IMPL fact<std::uint64_t> parse_size(std::string_view text) {
    const memdiag::detail::size_parse r = memdiag::detail::parse_size(text);
    if (r.ok) return fact<std::uint64_t>::of(r.value);
    return fact<std::uint64_t>::unknown(std::string(r.error) + ": \"" +
                                        memdiag::detail::env_parse::excerpt(memdiag::detail::env_parse::trim(text)) +
                                        "\"");
}

/// Returns text as the body of a JSON string: quotes, backslashes and control
/// characters escaped, invalid UTF-8 replaced by U+FFFD (files may hold any bytes).
MEMDIAG_IMPL std::string json_escape(std::string_view text) {
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

MEMDIAG_IMPL std::string check::to_text() const {
    std::string out = level == severity::ok ? "OK   " : level == severity::warning ? "WARN " : "FAIL ";
    out += name + ": " + message + "\n";
    if (!advice.empty()) out += "     advice: " + advice + "\n";
    return out;
}

MEMDIAG_IMPL std::string check::to_json() const {
    return "{\"name\": \"" + json_escape(name) + "\", \"severity\": \"" + to_string(level) +
           "\", \"message\": \"" + json_escape(message) + "\", \"advice\": \"" + json_escape(advice) + "\"}";
}

/// Returns the most serious severity among checks (ok for none).
MEMDIAG_IMPL severity worst(const std::vector<check>& checks) noexcept {
    severity s = severity::ok;
    for (const check& c : checks)
        if (int(c.level) > int(s)) s = c.level;
    return s;
}

namespace detail {

using memdiag::detail::env_parse::excerpt;

/// Returns a known string fact from a compile-time source.
inline fact<std::string> built(std::string value, std::string source) {
    return fact<std::string>::of(std::move(value), std::move(source));
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

MEMDIAG_IMPL effective_limit_info report::effective_limit() const {
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

MEMDIAG_IMPL std::vector<item> report::items() const {
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

MEMDIAG_IMPL std::string report::to_text() const {
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

MEMDIAG_IMPL std::string report::to_json(const std::vector<check>& checks) const {
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
}  // namespace env
}  // namespace memdiag
