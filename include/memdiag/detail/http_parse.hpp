// memdiag/detail/http_parse.hpp - pure functions on the bytes of a request,
// for the pprof endpoint's server (detail/http_server.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace memdiag {
namespace detail {
namespace http {

/// True when a and b (lengths na, nb) are equal, in time that depends only on
/// na (the expected token's length), never on where they differ.
inline bool same_secret(const char* expected, std::size_t ne, const char* given, std::size_t ng) noexcept {
    unsigned diff = ne != ng ? 1u : 0u;
    for (std::size_t i = 0; i < ne; ++i) {
        const unsigned char g = i < ng ? static_cast<unsigned char>(given[i]) : 0;
        diff |= static_cast<unsigned>(static_cast<unsigned char>(expected[i]) ^ g);
    }
    // Keep the compiler from turning the loop into an early-exit comparison.
    volatile unsigned sink = diff;
    return sink == 0;
}

/// Case-insensitive prefix test.
inline bool starts_with_nocase(const char* p, std::size_t n, const char* prefix) noexcept {
    const std::size_t k = std::strlen(prefix);
    if (n < k) return false;
    for (std::size_t i = 0; i < k; ++i) {
        char a = p[i], b = prefix[i];
        if (a >= 'A' && a <= 'Z') a = static_cast<char>(a - 'A' + 'a');
        if (b >= 'A' && b <= 'Z') b = static_cast<char>(b - 'A' + 'a');
        if (a != b) return false;
    }
    return true;
}

/// Finds the blank line ending the headers; its end offset, or 0.
inline std::size_t header_end(const char* in, std::size_t n) noexcept {
    for (std::size_t i = 0; i + 1 < n; ++i) {
        if (in[i] != '\n') continue;
        if (in[i + 1] == '\n') return i + 2;
        if (i + 2 < n && in[i + 1] == '\r' && in[i + 2] == '\n') return i + 3;
    }
    return 0;
}

/// Finds header `name` (with its colon, e.g. "content-length:") in the header
/// lines [p, end): its value with surrounding blanks trimmed, or false.
inline bool find_header(const char* p, const char* end, const char* name, const char*& value,
                        std::size_t& value_len) noexcept {
    const std::size_t k = std::strlen(name);
    for (const char* h = p; h < end;) {
        const char* e = static_cast<const char*>(std::memchr(h, '\n', static_cast<std::size_t>(end - h)));
        if (e == nullptr) e = end;
        std::size_t n = static_cast<std::size_t>(e - h);
        if (n != 0 && h[n - 1] == '\r') --n;
        if (starts_with_nocase(h, n, name)) {
            const char* v = h + k;
            const char* ve = h + n;
            while (v < ve && (*v == ' ' || *v == '\t')) ++v;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) --ve;
            value = v;
            value_len = static_cast<std::size_t>(ve - v);
            return true;
        }
        h = e + 1;
    }
    return false;
}

/// What a Content-Length value says: a length, not a number (answered 400),
/// or a number over the cap (413).
enum class content_length { ok, malformed, too_large };

/// A Content-Length value: decimal digits only (not empty, no sign, no blanks
/// inside, not a list), at most `cap`; `out` is set only when ok.
inline content_length parse_content_length(const char* v, std::size_t n, std::size_t cap, std::size_t& out) noexcept {
    if (n == 0) return content_length::malformed;
    for (std::size_t i = 0; i < n; ++i)
        if (v[i] < '0' || v[i] > '9') return content_length::malformed;
    std::size_t x = 0;
    for (std::size_t i = 0; i < n; ++i) {
        x = x * 10 + static_cast<std::size_t>(v[i] - '0');
        if (x > cap) return content_length::too_large;  // before x * 10 can wrap
    }
    out = x;
    return content_length::ok;
}

/// One word of a symbol request: "0x" and hex digits, or decimal digits (as
/// Go's strconv.ParseUint with base 0 reads the addresses pprof sends). 0 for
/// anything else, an overflow included: such a word is skipped, as Go does.
inline std::uint64_t parse_symbol_address(const char* w, std::size_t n) noexcept {
    std::uint64_t x = 0;
    if (n > 2 && w[0] == '0' && (w[1] == 'x' || w[1] == 'X')) {
        if (n - 2 > 16) return 0;
        for (std::size_t i = 2; i < n; ++i) {
            const char c = w[i];
            unsigned d;
            if (c >= '0' && c <= '9') d = static_cast<unsigned>(c - '0');
            else if (c >= 'a' && c <= 'f') d = static_cast<unsigned>(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F') d = static_cast<unsigned>(c - 'A' + 10);
            else return 0;
            x = x << 4 | d;
        }
        return x;
    }
    if (n == 0 || n > 20) return 0;
    for (std::size_t i = 0; i < n; ++i) {
        if (w[i] < '0' || w[i] > '9') return 0;
        const std::uint64_t d = static_cast<std::uint64_t>(w[i] - '0');
        if (x > (UINT64_MAX - d) / 10) return 0;
        x = x * 10 + d;
    }
    return x;
}

/// Calls f(address) for each nonzero address of a symbol request body or
/// query, "0x4005d0+0x4005f2+...": words split on '+', bad words skipped.
template <class F>
void for_each_symbol_address(const char* p, std::size_t n, F&& f) {
    const char* end = p + n;
    while (p < end) {
        const char* plus = static_cast<const char*>(std::memchr(p, '+', static_cast<std::size_t>(end - p)));
        const char* we = plus ? plus : end;
        const char* w = p;
        while (w < we && (*w == ' ' || *w == '\t' || *w == '\r' || *w == '\n')) ++w;
        const char* wend = we;
        while (wend > w && (wend[-1] == ' ' || wend[-1] == '\t' || wend[-1] == '\r' || wend[-1] == '\n')) --wend;
        if (const std::uint64_t a = parse_symbol_address(w, static_cast<std::size_t>(wend - w))) f(a);
        p = plus ? plus + 1 : end;
    }
}

}  // namespace http
}  // namespace detail
}  // namespace memdiag
