// memdiag/detail/os/malloc_size.hpp - the usable size of a C-allocator block.
//
// The global hook counts a block by the size the C allocator reserved for it,
// read again when it is freed, so allocation and free always balance without
// a side table (unsized operator delete does not say the size).
//
// With glibc's malloc in use, the size is read from the block's own chunk
// header: malloc_usable_size also inspects the next chunk (another cache line)
// and costs about as much as the rest of the hook. The header layout is
// checked against malloc_usable_size once before it is trusted; any other
// malloc (an LD_PRELOADed jemalloc, a sanitizer) uses the library call.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "../../config.hpp"
#include "../../hook_status.hpp"  // malloc_hook_installed()
#include "../internal_alloc.hpp"

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

#if MEMDIAG_HAS_LIBC_MALLOC
// glibc chunk header: the size word just before the block; low 3 bits are
// flags (bit 1: mmapped). Usable bytes are the chunk size minus the header
// words the block does not own: one for heap chunks, two for mmapped ones.
// The header is malloc's memory, outside the block the caller owns: it is
// addressed from the integer address so the compiler does not treat the read
// as indexing the block (g++ -O3 -Warray-bounds, "subscript -1"), and taken
// as an integer so passing a fresh block does not read as passing memory not
// yet written (g++ 12 -Os -Wmaybe-uninitialized on a `const void*` argument).
inline std::size_t glibc_chunk_usable(std::uintptr_t block) noexcept {
    const std::uintptr_t header = block - sizeof(std::size_t);
    const std::size_t word = *reinterpret_cast<const std::size_t*>(header);
    // (word & 2) * (word size / 2) is the second header word of an mmapped
    // chunk: no branch, no select (with the first word, one x86-64 lea).
    static_assert(sizeof(std::size_t) == 8 || sizeof(std::size_t) == 4, "a chunk header word is 4 or 8 bytes");
    return (word & ~std::size_t{7}) - ((word & 2) * (sizeof(std::size_t) / 2) + sizeof(std::size_t));
}

/// How operator new and delete read a block's usable size. 0 is the common
/// case so that the hook folds this test into its other zero tests (one OR).
enum : unsigned { chunks_read_header = 0, chunks_unchecked = 1, chunks_use_library = 2 };

/// chunks_unchecked until check_glibc_chunks ran, then one of the other two.
inline std::atomic<unsigned> g_glibc_chunks{chunks_unchecked};

MEMDIAG_COLD inline bool check_glibc_chunks() noexcept {
    // Only glibc's own malloc has this layout: `malloc` must resolve to it, or
    // to memdiag's own (MEMDIAG_REPLACE_MALLOC), which allocates from
    // __libc_malloc as the hook's operator new does. The sizes below are the
    // check that __libc_malloc is glibc's.
    bool ok = reinterpret_cast<void*>(&::malloc) == reinterpret_cast<void*>(&__libc_malloc) ||
              malloc_hook_installed();
    static const std::size_t sizes[] = {1, 24, 100, 1000, 5000, 200000};  // 200000: mmapped
    for (std::size_t n : sizes) {
        if (!ok) break;
        void* p = __libc_malloc(n);
        if (p == nullptr) return false;
        ok = glibc_chunk_usable(reinterpret_cast<std::uintptr_t>(p)) == ::malloc_usable_size(p);
        __libc_free(p);
    }
    g_glibc_chunks.store(ok ? chunks_read_header : chunks_use_library, std::memory_order_relaxed);
    return ok;
}

/// The layout word the hook ORs into its fast-path test: 0 when chunk headers
/// are read inline.
MEMDIAG_ALWAYS_INLINE unsigned chunk_layout_unread() noexcept { return g_glibc_chunks.load(std::memory_order_relaxed); }
#else
/// No inline header read on this C library: nothing to fold into the hook's test.
MEMDIAG_ALWAYS_INLINE unsigned chunk_layout_unread() noexcept { return 0; }
#endif

/// Bytes usable in a block from malloc/aligned allocation; `fallback` where the
/// platform cannot tell.
/// Always inlined: it is on the global hook's fast path.
MEMDIAG_ALWAYS_INLINE std::size_t usable_size(void* p, std::size_t fallback) noexcept {
#if MEMDIAG_HAS_LIBC_MALLOC
    (void)fallback;
    const unsigned mode = g_glibc_chunks.load(std::memory_order_relaxed);
    if (MEMDIAG_LIKELY(mode == chunks_read_header) || (mode == chunks_unchecked && check_glibc_chunks()))
        return glibc_chunk_usable(reinterpret_cast<std::uintptr_t>(p));
    return ::malloc_usable_size(p);
#elif MEMDIAG_OS_LINUX || defined(__FreeBSD__)
    (void)fallback;
    return ::malloc_usable_size(p);
#elif MEMDIAG_OS_DARWIN
    (void)fallback;
    return ::malloc_size(p);
#else
    (void)p;
    return fallback;  // Windows: _msize does not apply to _aligned_malloc blocks
#endif
}

}  // namespace detail
}  // namespace memdiag
