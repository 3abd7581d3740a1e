// memdiag/detail/parse_size.hpp - the one parser for sizes written by people:
// "4096", "512k", "1.5GiB", "8 " ... in environment variables, command-line
// options and budget specs (env::parse_size, parse_sample_interval and the test
// integrations' settings all call it).
//
// Allocation-free and noexcept: the sampler reads its variable from inside the
// allocation hook, before anything may allocate.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace memdiag {
namespace detail {

/// What a caller accepts beyond plain decimal bytes.
struct size_syntax {
    /// Largest unit accepted, as a power of two: 10 K, 20 M, 30 G, 40 T, 50 P.
    unsigned max_shift = 50;
    /// Whether "1.5G" is accepted (at most six digits after the point, and
    /// only with a unit: a fraction of one byte is refused).
    bool fractions = true;
};

/// Outcome of parse_size: the value, or a static text saying what is wrong.
struct size_parse {
    bool ok = false;          ///< true when value holds the size
    std::uint64_t value = 0;  ///< the size in bytes when ok
    const char* error = "";   ///< static text saying what is wrong when !ok (never null)
};

namespace parse_size_impl {

/// Spaces, tabs, CR and LF: what surrounds a value read from a file or a shell.
inline bool is_space(char c) noexcept { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
/// A decimal digit (no locale).
inline bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

/// A refusal carrying its reason.
inline size_parse fail(const char* why) noexcept {
    size_parse r;
    r.error = why;
    return r;
}

/// The unknown-unit message naming the units `max_shift` allows.
inline const char* unit_error(unsigned max_shift) noexcept {
    switch (max_shift / 10) {
        case 0: return "unknown unit (only bytes: a number, optionally followed by B)";
        case 1: return "unknown unit (use B or K, optionally followed by iB or B)";
        case 2: return "unknown unit (use B, K or M, optionally followed by iB or B)";
        case 3: return "unknown unit (use B, K, M or G, optionally followed by iB or B)";
        case 4: return "unknown unit (use B, K, M, G or T, optionally followed by iB or B)";
        default: return "unknown unit (use B, K, M, G, T or P, optionally followed by iB or B)";
    }
}

/// The power of two of a unit letter (case ignored), or -1.
inline int unit_shift(char c) noexcept {
    switch (c | 0x20) {
        case 'k': return 10;
        case 'm': return 20;
        case 'g': return 30;
        case 't': return 40;
        case 'p': return 50;
        default: return -1;
    }
}

}  // namespace parse_size_impl

/// Parses a size: decimal digits, optionally ".digits", optionally a unit K, M,
/// G, T or P (powers of 1024, case ignored) optionally followed by "iB" or "B"
/// ("ib", "b" too), or a lone "B"; spaces around the whole are ignored. Refuses
/// anything else, with a reason: empty text, signs, hex, exponents ("1e9"), a
/// space before the unit, units above syntax.max_shift, fractions when
/// syntax.fractions is false, and any value above 2^64 - 1 (never wraps).
inline size_parse parse_size(std::string_view text, size_syntax syntax = {}) noexcept {
    using namespace parse_size_impl;
    while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
    while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
    if (text.empty()) return fail("empty value");
    if (!is_digit(text.front())) return fail("expected a number of bytes (digits, e.g. 4096, 512K or 1.5G)");

    constexpr std::uint64_t max = ~std::uint64_t{0};
    std::size_t i = 0;
    std::uint64_t whole = 0;
    for (; i < text.size() && is_digit(text[i]); ++i) {
        const auto digit = static_cast<std::uint64_t>(text[i] - '0');
        if (whole > (max - digit) / 10) return fail("value too large (more than 64 bits)");
        whole = whole * 10 + digit;
    }

    std::uint64_t frac = 0, scale = 1;  // the fraction is frac / scale
    bool has_fraction = false;
    if (i < text.size() && text[i] == '.') {
        if (!syntax.fractions) return fail("fractions are not accepted here (use a smaller unit)");
        has_fraction = true;
        const std::size_t start = ++i;
        for (; i < text.size() && is_digit(text[i]); ++i) {
            if (i - start == 6) return fail("too many digits after the point (at most 6)");
            frac = frac * 10 + static_cast<std::uint64_t>(text[i] - '0');
            scale *= 10;
        }
        if (i == start) return fail("expected digits after the point");
    }

    unsigned shift = 0;
    std::string_view unit = text.substr(i);
    if (!unit.empty()) {
        const int s = unit_shift(unit[0]);
        if (s >= 0 && static_cast<unsigned>(s) <= syntax.max_shift) {
            shift = static_cast<unsigned>(s);
            unit.remove_prefix(1);
            if (unit == "iB" || unit == "ib") unit.remove_prefix(2);
        }
        if (unit == "B" || unit == "b") unit.remove_prefix(1);
        if (!unit.empty()) return fail(unit_error(syntax.max_shift));
    }
    if (has_fraction && shift == 0) return fail("a fraction of a byte (give a unit, e.g. 1.5K)");

    if (whole > (max >> shift)) return fail("value too large (more than 64 bits)");
    std::uint64_t bytes = whole << shift;
    if (has_fraction) {
        // frac * 2^shift / scale, split so that no product passes 64 bits:
        // frac < scale <= 10^6 < 2^20, and 2^shift = q * scale + r with r < scale.
        const std::uint64_t unit_bytes = std::uint64_t{1} << shift;
        const std::uint64_t q = unit_bytes / scale, r = unit_bytes % scale;
        const std::uint64_t part = frac * q + (frac * r) / scale;
        if (bytes > max - part) return fail("value too large (more than 64 bits)");
        bytes += part;
    }
    size_parse out;
    out.ok = true;
    out.value = bytes;
    return out;
}

}  // namespace detail
}  // namespace memdiag
