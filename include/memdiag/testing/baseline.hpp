// memdiag/testing/baseline.hpp - regression baselines: per-test and per-scope
// allocation counts and peak bytes in a text file, and the comparison with a
// tolerance.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include "../config.hpp"
#include "../detail/os/atomic_file.hpp"
#include "../result.hpp"
#include "options.hpp"

namespace memdiag {
namespace testing {

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

}  // namespace testing
}  // namespace memdiag
