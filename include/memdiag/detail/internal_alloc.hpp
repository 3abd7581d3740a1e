// memdiag/detail/internal_alloc.hpp - memory for memdiag's own bookkeeping.
//
// memdiag's internals (snapshot buffers, symbol tables, report strings) must not
// allocate through the heap they observe: that would count them, charge them to
// the user's budgets, trip fault injection, and recurse into the hook. They use
// the C allocator underneath the hook instead (glibc exports it as __libc_*).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "../config.hpp"
#include "throw.hpp"

// Sanitizers own malloc (and see allocations only through it), so under them
// internal memory goes through the intercepted C functions instead.
#if (defined(__GLIBC__) || (MEMDIAG_OS_LINUX && __has_include(<gnu/libc-version.h>))) && !MEMDIAG_ASAN && \
    !MEMDIAG_TSAN
#define MEMDIAG_HAS_LIBC_MALLOC 1
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
void __libc_free(void*);
}
#else
#define MEMDIAG_HAS_LIBC_MALLOC 0
#endif

namespace memdiag {
namespace detail {

/// A bump arena that stands in for the C allocator while a fatal-signal
/// snapshot is written (fatal_signal.hpp): malloc may be what crashed, holding
/// its locks. Lock-free; blocks carry their size for realloc; frees of its
/// blocks are ignored, before and after it is active.
struct emergency_arena_state {
    std::atomic<bool> active{false};
    char* base = nullptr;  ///< set before active, never cleared once set
    std::size_t size = 0;
    std::atomic<std::size_t> used{0};
};
inline emergency_arena_state g_emergency_arena;

/// True when p lies in the emergency arena.
inline bool in_emergency_arena(const void* p) noexcept {
    const char* b = g_emergency_arena.base;
    return b != nullptr && static_cast<const char*>(p) >= b && static_cast<const char*>(p) < b + g_emergency_arena.size;
}

/// n bytes (16-aligned) from the emergency arena; nullptr when it is spent.
inline void* emergency_alloc(std::size_t n) noexcept {
    if (n > g_emergency_arena.size) return nullptr;
    const std::size_t want = ((n + 15) & ~std::size_t{15}) + 16;
    const std::size_t at = g_emergency_arena.used.fetch_add(want, std::memory_order_relaxed);
    if (at > g_emergency_arena.size || g_emergency_arena.size - at < want) return nullptr;
    char* p = g_emergency_arena.base + at;
    *reinterpret_cast<std::size_t*>(p) = n;
    return p + 16;
}

/// Allocates n bytes from the allocator beneath memdiag's hooks; nullptr on failure.
inline void* internal_malloc(std::size_t n) noexcept {
    if (MEMDIAG_UNLIKELY(g_emergency_arena.active.load(std::memory_order_relaxed))) return emergency_alloc(n);
#if MEMDIAG_HAS_LIBC_MALLOC
    return __libc_malloc(n == 0 ? 1 : n);
#else
    return std::malloc(n == 0 ? 1 : n);
#endif
}

inline void internal_free(void* p) noexcept;

/// Resizes a block from internal_malloc; nullptr on failure (the block is kept).
inline void* internal_realloc(void* p, std::size_t n) noexcept {
    if (MEMDIAG_UNLIKELY(g_emergency_arena.active.load(std::memory_order_relaxed) ||
                         (p != nullptr && in_emergency_arena(p)))) {
        void* q = g_emergency_arena.active.load(std::memory_order_relaxed) ? emergency_alloc(n) : internal_malloc(n);
        if (q != nullptr && p != nullptr) {
            const std::size_t old = in_emergency_arena(p) ? *reinterpret_cast<std::size_t*>(static_cast<char*>(p) - 16) : n;
            std::memcpy(q, p, old < n ? old : n);
            if (!in_emergency_arena(p)) internal_free(p);
        }
        return q;
    }
#if MEMDIAG_HAS_LIBC_MALLOC
    return __libc_realloc(p, n == 0 ? 1 : n);
#else
    return std::realloc(p, n == 0 ? 1 : n);
#endif
}

/// Frees a block from internal_malloc / internal_realloc.
inline void internal_free(void* p) noexcept {
    if (MEMDIAG_UNLIKELY(in_emergency_arena(p))) return;
#if MEMDIAG_HAS_LIBC_MALLOC
    __libc_free(p);
#else
    std::free(p);
#endif
}

/// Allocates n bytes aligned to `align` (a power of two up to 4096) beneath the
/// hooks; free with internal_free_aligned. nullptr on failure.
inline void* internal_malloc_aligned(std::size_t n, std::size_t align) noexcept {
    if (align < sizeof(void*)) align = sizeof(void*);
    if (n > static_cast<std::size_t>(-1) - align - sizeof(void*)) return nullptr;
    void* raw = internal_malloc(n + align + sizeof(void*));
    if (raw == nullptr) return nullptr;
    // Room for the original pointer just below the aligned block.
    const auto base = reinterpret_cast<std::size_t>(raw) + sizeof(void*);
    void* aligned = reinterpret_cast<void*>((base + align - 1) & ~(align - 1));
    static_cast<void**>(aligned)[-1] = raw;
    return aligned;
}

/// Frees a block from internal_malloc_aligned.
inline void internal_free_aligned(void* p) noexcept {
    if (p != nullptr) internal_free(static_cast<void**>(p)[-1]);
}

/// A std allocator over internal_malloc, for memdiag's own containers.
/// Throws std::bad_alloc when exhausted (never a budget_exceeded).
template <class T>
struct internal_allocator {
    using value_type = T;
    internal_allocator() noexcept = default;
    template <class U>
    internal_allocator(const internal_allocator<U>&) noexcept {}
    T* allocate(std::size_t n) {
        if (n > static_cast<std::size_t>(-1) / sizeof(T)) throw_bad_alloc();
        void* p = internal_malloc(n * sizeof(T));
        if (p == nullptr) throw_bad_alloc();
        return static_cast<T*>(p);
    }
    void deallocate(T* p, std::size_t) noexcept { internal_free(p); }
    template <class U>
    bool operator==(const internal_allocator<U>&) const noexcept { return true; }
    template <class U>
    bool operator!=(const internal_allocator<U>&) const noexcept { return false; }
};

/// A string whose buffer never touches the observed heap.
using internal_string = std::basic_string<char, std::char_traits<char>, internal_allocator<char>>;

}  // namespace detail
}  // namespace memdiag
