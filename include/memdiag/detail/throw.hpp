// memdiag/detail/throw.hpp - throwing that degrades to abort under -fno-exceptions.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <new>

#include "../config.hpp"

namespace memdiag {
namespace detail {

/// Throws std::bad_alloc; without exceptions, prints why and aborts.
[[noreturn]] inline void throw_bad_alloc() {
#if MEMDIAG_HAS_EXCEPTIONS
    throw std::bad_alloc();
#else
    std::fputs("memdiag: out of memory (std::bad_alloc) and exceptions are disabled\n", stderr);
    std::abort();
#endif
}

/// Throws std::bad_array_new_length (an array size overflowed); aborts without exceptions.
[[noreturn]] inline void throw_bad_array_new_length() {
#if MEMDIAG_HAS_EXCEPTIONS
    throw std::bad_array_new_length();
#else
    std::fputs("memdiag: array size overflow (std::bad_array_new_length) and exceptions are disabled\n",
               stderr);
    std::abort();
#endif
}

}  // namespace detail
}  // namespace memdiag
