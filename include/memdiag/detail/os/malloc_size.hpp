// memdiag/detail/os/malloc_size.hpp - the usable size of a C-allocator block.
//
// The global hook counts a block by the size the C allocator reserved for it,
// read again when it is freed, so allocation and free always balance without
// a side table (unsized operator delete does not say the size).
#pragma once

#include <cstddef>

#include "../../config.hpp"

#if MEMDIAG_OS_LINUX || defined(__FreeBSD__)
#include <malloc.h>
#define MEMDIAG_HAS_USABLE_SIZE 1
#elif MEMDIAG_OS_DARWIN
#include <malloc/malloc.h>
#define MEMDIAG_HAS_USABLE_SIZE 1
#elif MEMDIAG_OS_WINDOWS
#include <malloc.h>
#define MEMDIAG_HAS_USABLE_SIZE 1
#else
#define MEMDIAG_HAS_USABLE_SIZE 0
#endif

namespace memdiag {
namespace detail {

/// Bytes usable in a block from malloc/aligned allocation; `fallback` where the
/// platform cannot tell.
inline std::size_t usable_size(void* p, std::size_t fallback) noexcept {
#if MEMDIAG_OS_LINUX || defined(__FreeBSD__)
    (void)fallback;
    return ::malloc_usable_size(p);
#elif MEMDIAG_OS_DARWIN
    (void)fallback;
    return ::malloc_size(p);
#elif MEMDIAG_OS_WINDOWS
    (void)p;
    return fallback;  // _msize does not apply to _aligned_malloc blocks; requested size instead
#else
    (void)p;
    return fallback;
#endif
}

}  // namespace detail
}  // namespace memdiag
