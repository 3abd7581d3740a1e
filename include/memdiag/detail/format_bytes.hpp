// memdiag/detail/format_bytes.hpp - the one writer of byte counts for people:
// "512 MiB", "23.5 GiB" (env reports and checks, the test integrations) and
// "4.0 MiB" (heap snapshot reports, which add the exact count beside it).
//
// Allocation-free and noexcept (a fixed buffer): snapshot reports are written
// while the observed heap must not be touched.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>

namespace memdiag {
namespace detail {

/// How byte_text writes a count of 1 KiB or more.
enum class byte_style {
    /// "4 KiB" when the count is a whole number of the unit, else "23.5 GiB".
    compact,
    /// Always one decimal: "4.0 MiB" (columns line up in snapshot reports).
    one_decimal,
};

/// A byte count as text in a fixed buffer ("16.0 EiB" is the longest unit form).
struct byte_text {
    char text[32] = {};     ///< NUL-terminated text
    std::size_t size = 0;   ///< its length

    /// The text, NUL-terminated.
    const char* c_str() const noexcept { return text; }
};

/// Writes `bytes` in binary units: "100 B" below 1 KiB, else the largest unit
/// (KiB ... EiB) that leaves at least 1, with one decimal as `style` says. A
/// value that rounds up to 1024.0 of a unit is written as 1.0 of the next one.
inline byte_text format_bytes(std::uint64_t bytes, byte_style style = byte_style::compact) noexcept {
    static const char* const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    unsigned u = 0;
    for (std::uint64_t whole = bytes; whole >= 1024 && u < 6; whole /= 1024) ++u;
    double scaled = static_cast<double>(bytes);
    for (unsigned i = 0; i < u; ++i) scaled /= 1024.0;
    // One decimal rounds 1023.96 up to "1024.0": say "1.0" of the next unit.
    if (u > 0 && u < 6 && scaled >= 1023.95) {
        scaled /= 1024.0;
        ++u;
    }
    byte_text out;
    int n = 0;
    const bool exact = u == 0 || (style == byte_style::compact && bytes % (std::uint64_t{1} << (10 * u)) == 0);
    if (u == 0)
        n = std::snprintf(out.text, sizeof out.text, "%llu B", static_cast<unsigned long long>(bytes));
    else if (exact)
        n = std::snprintf(out.text, sizeof out.text, "%llu %s", static_cast<unsigned long long>(bytes >> (10 * u)),
                          units[u]);
    else
        n = std::snprintf(out.text, sizeof out.text, "%.1f %s", scaled, units[u]);
    out.size = n > 0 ? static_cast<std::size_t>(n) : 0;
    return out;
}

}  // namespace detail
}  // namespace memdiag
