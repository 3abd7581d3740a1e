// memdiag/detail/http_parse.hpp - pure functions on the bytes of a request,
// for the pprof endpoint's server (detail/http_server.hpp).
#pragma once

#include <cstddef>
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

}  // namespace http
}  // namespace detail
}  // namespace memdiag
