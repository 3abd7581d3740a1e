// memdiag/result.hpp - outcome of an operation at the edge (files, IO).
//
// Errors are values at the edges: a result is either success or a failure that
// carries a message saying what failed. The message lives in a fixed buffer, so
// a result can be made right after a budget breach or in an out-of-memory path.
#pragma once

#include <cstdarg>
#include <cstddef>
#include <cstdio>
#include <cstring>

#include "config.hpp"

namespace memdiag {

/// Outcome of an operation at the edge (IO): ok, or a message saying what failed.
///
/// Never allocates; the message is truncated to fit `message_capacity - 1` bytes.
class result {
public:
    /// Size of the fixed message buffer, terminating NUL included.
    static constexpr std::size_t message_capacity = 256;

    /// A default-constructed result is a success.
    result() noexcept { message_[0] = '\0'; }

    /// Returns a successful result (empty message).
    static result success() noexcept { return result(); }

    /// Returns a failed result carrying `message` (nullptr or "" becomes "failed").
    static result failure(const char* message) noexcept {
        result r;
        r.ok_ = false;
        const char* m = (message != nullptr && message[0] != '\0') ? message : "failed";
        std::size_t n = std::strlen(m);
        if (n >= message_capacity) n = message_capacity - 1;
        std::memcpy(r.message_, m, n);
        r.message_[n] = '\0';
        return r;
    }

    /// Returns a failed result whose message is formatted like printf.
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 1, 2)))
#endif
    static result failuref(const char* format, ...) noexcept {
        result r;
        r.ok_ = false;
        va_list args;
        va_start(args, format);
        int n = std::vsnprintf(r.message_, message_capacity, format, args);
        va_end(args);
        if (n <= 0) return failure(format);
        return r;
    }

    /// True when the operation succeeded.
    bool ok() const noexcept { return ok_; }

    /// Same as ok().
    explicit operator bool() const noexcept { return ok_; }

    /// What failed ("" on success). Valid as long as this result.
    const char* message() const noexcept { return message_; }

private:
    bool ok_ = true;
    char message_[message_capacity];
};

}  // namespace memdiag
