// memdiag/global_new.hpp - opt-in replacement of the global operator new/delete.
//
// In exactly one .cpp file of the program:
//
//     #define MEMDIAG_REPLACE_GLOBAL_NEW
//     #include <memdiag/global_new.hpp>
//
// Every replaceable form of operator new and delete (single and array, nothrow,
// sized, C++17 aligned) then counts into the "process" tracker
// (memdiag::process_stats()) and feeds budgets, fault injection and the heap
// profiler. Memory comes from the C allocator (malloc / aligned allocation).
//
// Bytes: the hook counts the usable size the C allocator reserved for a block
// (malloc_usable_size on Linux, malloc_size on macOS), read again at delete, so
// counts balance without a side table: `new char` counts 24 bytes with glibc.
// tracking_allocator and tracking_resource count requested sizes exactly.
//
// The C allocation functions (glibc only, opt-in): also define
// MEMDIAG_REPLACE_MALLOC in the same file, and malloc, calloc, realloc, free,
// posix_memalign, aligned_alloc, memalign, valloc and pvalloc are replaced too,
// so allocations by C code (strdup, fopen buffers, C libraries) are seen.
// What it cannot see: memory from mmap/sbrk directly, allocations made inside
// the dynamic loader before the program's symbols are bound, custom allocators
// that never call malloc (jemalloc/tcmalloc linked in replace glibc's malloc
// and conflict: do not combine), and code linked statically with its own
// malloc. malloc_usable_size keeps working unchanged. Not available under
// AddressSanitizer or ThreadSanitizer, which own malloc (the define is ignored).
//
// Allocations before main and after it (static constructors and destructors of
// any translation unit) are counted: the hook only touches constant-initialized
// state. It never recurses (memdiag's own bookkeeping allocates beneath it) and
// never locks on the common path.
//
// Include order does not matter: another memdiag header (testing/common.hpp
// among them) may include this one first, without the macro; the definitions
// come with the first inclusion that has MEMDIAG_REPLACE_GLOBAL_NEW defined.
// Hence two guards instead of #pragma once.
#ifndef MEMDIAG_GLOBAL_NEW_HPP_DECLARATIONS
#define MEMDIAG_GLOBAL_NEW_HPP_DECLARATIONS

#include <cstddef>
#include <cstdlib>
#include <new>

#include "config.hpp"
#include "detail/internal_alloc.hpp"
#include "detail/os/malloc_size.hpp"
#include "detail/throw.hpp"
#include "tracker.hpp"

#include "hook_status.hpp"  // global_hook_installed(), malloc_hook_installed()

#endif  // MEMDIAG_GLOBAL_NEW_HPP_DECLARATIONS

// The definitions: once per translation unit, from the first inclusion with
// MEMDIAG_REPLACE_GLOBAL_NEW defined.
#if defined(MEMDIAG_REPLACE_GLOBAL_NEW) && !defined(MEMDIAG_GLOBAL_NEW_HPP_DEFINITIONS)
#define MEMDIAG_GLOBAL_NEW_HPP_DEFINITIONS
#if !MEMDIAG_HEADER_ONLY
#include "implementation.hpp"  // MEMDIAG_SEPARATE_IMPLEMENTATION: the split parts are defined here
#endif
// ThreadSanitizer's runtime defines operator new itself (linked whole), so the
// hook cannot be installed under it: global_hook_installed() is then false.
#if defined(MEMDIAG_REPLACE_GLOBAL_NEW) && MEMDIAG_ENABLED && !MEMDIAG_TSAN
#define MEMDIAG_GLOBAL_NEW_ACTIVE 1
// The heap profiler's tables: operator delete tests their free filter inline.
// Only the defining unit pays for it (memdiag.hpp includes it anyway). Not on
// Windows, where the heap profiler is not built (memdiag.hpp).
#if !MEMDIAG_OS_WINDOWS
#include "detail/heap_sampling.hpp"
#endif

#if defined(MEMDIAG_REPLACE_MALLOC) && MEMDIAG_HAS_LIBC_MALLOC && !MEMDIAG_ASAN && !MEMDIAG_TSAN
#define MEMDIAG_MALLOC_HOOK 1
#else
#define MEMDIAG_MALLOC_HOOK 0
#endif

namespace memdiag {
namespace detail {

// The allocator beneath the hook: glibc's own entry points when malloc itself
// is replaced (so a block is counted once), the C library otherwise.
inline void* raw_alloc(std::size_t n, std::size_t align) noexcept {
    if (align <= alignof(std::max_align_t)) {
#if MEMDIAG_MALLOC_HOOK
        return __libc_malloc(n);
#else
        return std::malloc(n);
#endif
    }
#if MEMDIAG_MALLOC_HOOK
    return __libc_memalign(align, n);
#elif MEMDIAG_OS_WINDOWS
    return _aligned_malloc(n, align);
#else
    void* p = nullptr;
    return ::posix_memalign(&p, align, n) == 0 ? p : nullptr;
#endif
}

inline void raw_free(void* p, std::size_t align) noexcept {
    (void)align;
#if MEMDIAG_MALLOC_HOOK
    __libc_free(p);
#elif MEMDIAG_OS_WINDOWS
    if (align > alignof(std::max_align_t)) _aligned_free(p);
    else std::free(p);
#else
    std::free(p);
#endif
}

/// operator new off the fast path: admit, allocate (with the new_handler loop
/// the standard requires), count. nothrow forms return nullptr where others throw.
MEMDIAG_NOINLINE inline void* hooked_new_slow(std::size_t n, std::size_t align, bool nothrow) {
    if (n == 0) n = 1;
    tracker_slot& slot = g_process_slot;
    if (!admit_allocation(slot, n, !nothrow)) {
        if (nothrow) return nullptr;
        throw_bad_alloc();
    }
    for (;;) {
        if (void* p = raw_alloc(n, align)) {
            record_allocation(slot, p, usable_size(p, n), n);
            return p;
        }
        std::new_handler handler = std::get_new_handler();
        if (handler == nullptr) {
            if (nothrow) return nullptr;
            if (auto f = g_handlers.out_of_memory.load(std::memory_order_acquire)) f(n);
            throw_bad_alloc();
        }
#if MEMDIAG_HAS_EXCEPTIONS
        if (nothrow) {
            try {
                handler();
            } catch (const std::bad_alloc&) {
                return nullptr;
            }
            continue;
        }
#endif
        handler();
    }
}

// The fast paths below make no call but malloc's and free's and keep rare work
// (a publish, an unverified chunk layout, scopes, the profiler) in functions
// reached by tail calls, so operator delete saves no register and operator
// new only what lives across malloc.

/// The usable size of p once the caller has seen chunk_layout_unread() == 0:
/// its chunk header on glibc; `fallback` where the platform cannot tell.
MEMDIAG_ALWAYS_INLINE std::size_t read_usable_size(void* p, std::size_t fallback) noexcept {
#if MEMDIAG_HAS_LIBC_MALLOC
    (void)fallback;
    return glibc_chunk_usable(reinterpret_cast<std::uintptr_t>(p));
#else
    return usable_size(p, fallback);  // Windows: fallback, the requested size
#endif
}

/// The usable size of p when it can be read inline (on glibc: its chunk
/// header, once verified); false leaves it to usable_size on a slower path.
MEMDIAG_ALWAYS_INLINE bool inline_usable_size(void* p, std::size_t fallback, std::size_t& out) noexcept {
    if (MEMDIAG_UNLIKELY(chunk_layout_unread() != 0)) return false;
    out = read_usable_size(p, fallback);
    return true;
}

/// operator new after malloc, when the count crossed a publish mark.
MEMDIAG_NOINLINE inline void* hooked_new_publish(shard& sh, void* p) noexcept {
    publish_drift(sh, g_process_slot);
    return p;
}

/// hooked_new_count when the size cannot be read inline: out of line, so
/// operator new keeps no stack slot for p around the library call.
MEMDIAG_NOINLINE inline void* hooked_new_count_library(thread_state* s, void* p, std::size_t n) noexcept {
    shard& sh = s->shards[0];
    if (MEMDIAG_UNLIKELY(shard_count_allocation(sh, usable_size(p, n)))) publish_drift(sh, g_process_slot);
    return p;
}

/// Counts `size` bytes of p into the thread's process shard; returns p.
MEMDIAG_ALWAYS_INLINE void* hooked_new_count_size(thread_state* s, void* p, std::size_t size) noexcept {
    shard& sh = s->shards[0];
    if (MEMDIAG_UNLIKELY(shard_count_allocation(sh, size))) return hooked_new_publish(sh, p);
    return p;
}

/// Counts p into the thread's process shard; returns p.
MEMDIAG_ALWAYS_INLINE void* hooked_new_count(thread_state* s, void* p, std::size_t n) noexcept {
    std::size_t size;
    if (MEMDIAG_UNLIKELY(!inline_usable_size(p, n, size))) return hooked_new_count_library(s, p, n);
    return hooked_new_count_size(s, p, size);
}

/// operator new when the thread does more than count, malloc's alignment.
/// The heap profiler alone: an allocation that leaves the thread's sample
/// countdown positive is counted here (the countdown taken before malloc,
/// given back if it fails). Otherwise, while nothing admits allocations,
/// allocate, then count or sample; anything else (a failed malloc included)
/// goes to hooked_new_slow, which tries again as the standard's loop says.
MEMDIAG_NOINLINE inline void* hooked_new_watched(std::size_t n, bool nothrow) {
    const unsigned g = g_registry.global_slow.load(std::memory_order_relaxed);
    const std::uint64_t guards = tls_head.guards;
    thread_state* const s = tls_head.state;
    const auto bytes = static_cast<std::int64_t>(n);
    if (guards == 0 && s->sample_key == g && s->sample_countdown > bytes) {
        s->sample_countdown -= bytes;
        if (void* p = raw_alloc(n, 0)) return hooked_new_count(s, p, n);
        s->sample_countdown += bytes;
    } else if (guards == 0 && nothing_to_admit(g)) {
        if (void* p = raw_alloc(n, 0)) {
            const std::size_t usable = usable_size(p, n);
            if (count_allocation_fast(g_process_slot, usable, n)) return p;
            record_allocation_slow(g_process_slot, p, usable, n);
            return p;
        }
    }
    return hooked_new_slow(n, 0, nothrow);
}

/// operator new after a failed malloc whose countdown was taken: gives the
/// countdown back, then the slow path (out of line, so the fast path keeps
/// no register for the old countdown across malloc).
MEMDIAG_NOINLINE inline void* hooked_new_unsampled_failed(std::size_t n, bool nothrow) {
    tls_head.state->sample_countdown += static_cast<std::int64_t>(n);
    return hooked_new_slow(n, 0, nothrow);
}

/// operator new: when the thread only counts (quiet_thread_state) and the
/// alignment is malloc's, one test before malloc and the count after it.
MEMDIAG_ALWAYS_INLINE void* hooked_new(std::size_t n, std::size_t align, bool nothrow) {
#if !MEMDIAG_HAS_LIBC_MALLOC
    if (n == 0) n = 1;
#endif
    // glibc: malloc(0) gives a unique minimum chunk, as new(0) must; a C
    // library whose malloc(0) returns null goes to hooked_new_slow, which asks for 1.
    if (MEMDIAG_LIKELY(align <= alignof(std::max_align_t))) {
        thread_state* const s = tls_head.state;
        const std::uint64_t guards = tls_head.guards;
        const unsigned g = g_registry.global_slow.load(std::memory_order_relaxed);
        // One branch for state (guard_no_state), guards, globals and layout.
        if (MEMDIAG_LIKELY((guards | (g | chunk_layout_unread())) == 0)) {
            if (void* p = raw_alloc(n, 0)) return hooked_new_count_size(s, p, read_usable_size(p, n));
            return hooked_new_slow(n, align, nothrow);
        }
        // The heap profiler alone, no sample due: count as above, less the
        // countdown. sample_key == g: the profiler alone, and this countdown
        // is of its run. An unread layout goes to hooked_new_watched (read
        // again here: keeping it from the test above costs a register copy).
        const auto bytes = static_cast<std::int64_t>(n);
        if ((guards | chunk_layout_unread()) == 0 && s->sample_key == g && s->sample_countdown > bytes) {
            s->sample_countdown -= bytes;
            if (void* p = raw_alloc(n, 0)) return hooked_new_count_size(s, p, read_usable_size(p, n));
            return hooked_new_unsampled_failed(n, nothrow);
        }
        // A scope or injection open on this thread: straight to the slow path.
        if (guards != 0) return hooked_new_slow(n, align, nothrow);
        return hooked_new_watched(n, nothrow);
    }
    return hooked_new_slow(n, align, nothrow);
}

/// operator delete while the heap profiler runs alone, the free counted: the
/// publish when due, the profiler's filter test, then the free. Reached when
/// the inline filter test (hooked_delete) saw a possible hit, a publish is due,
/// or the size was not read inline.
MEMDIAG_NOINLINE inline void hooked_delete_profiled(void* p, std::size_t align, bool publish = false) noexcept {
    if (publish) publish_drift(tls_head.state->shards[0], g_process_slot);
    if (auto f = g_handlers.profile_freed.load(std::memory_order_acquire)) f(p);
    raw_free(p, align);
}

/// operator delete when the thread does more than count, or the count
/// crossed a publish mark (counted: then only publish), or the size cannot be
/// read inline: count, tell the heap profiler, free.
MEMDIAG_NOINLINE inline void hooked_delete_watched(void* p, std::size_t size_hint, std::size_t align,
                                                   bool counted) noexcept {
    if (counted) {
        publish_drift(tls_head.state->shards[0], g_process_slot);
        return raw_free(p, align);
    }
    const std::size_t size = usable_size(p, size_hint);
    const free_path path = count_deallocation_fast(g_process_slot, size);
    if (MEMDIAG_LIKELY(path == free_path::counted)) return raw_free(p, align);
    if (path == free_path::profiled) return hooked_delete_profiled(p, align);
    record_deallocation_slow(g_process_slot, p, size);
    raw_free(p, align);
}

/// operator delete while the heap profiler runs alone and the size is read
/// inline: count, then the free filter's test inline; only a possible sample
/// (or a publish) calls out. Out of line, so that operator delete stays small
/// enough to be inlined where its caller sees it. p first: operator delete's
/// fast path keeps p in the register it came in.
MEMDIAG_NOINLINE inline void hooked_delete_sampling(void* p, thread_state* s, std::size_t size_hint,
                                                    std::size_t align) noexcept {
    const bool publish = shard_count_free(s->shards[0], read_usable_size(p, size_hint));
#if !MEMDIAG_OS_WINDOWS
    if (MEMDIAG_LIKELY(!publish) && MEMDIAG_LIKELY(heapprof::free_filter_hit(p) == nullptr))
        return raw_free(p, align);
#endif
    hooked_delete_profiled(p, align, publish);
}

/// operator delete: count and free; no call but the free's on the fast path.
/// While the heap profiler runs alone, one call (hooked_delete_sampling)
/// counts, tests the free filter and frees: only a block that may be one of
/// its samples (heapprof::free_filter_hit) calls into the profiler.
MEMDIAG_ALWAYS_INLINE void hooked_delete(void* p, std::size_t size_hint, std::size_t align) noexcept {
    if (p == nullptr) return;
    thread_state* const s = tls_head.state;
    const std::uint64_t unready = tls_head.guards;  // guard_no_state: s is null
    const unsigned g = g_registry.global_slow.load(std::memory_order_relaxed);
    if (MEMDIAG_LIKELY((unready | (g | chunk_layout_unread())) == 0)) {
        const std::size_t size = read_usable_size(p, size_hint);
        if (MEMDIAG_UNLIKELY(shard_count_free(s->shards[0], size))) return hooked_delete_watched(p, size_hint, align, true);
        return raw_free(p, align);
    }
    // The heap profiler alone. The layout word is read again: keeping
    // `guards | layout` from the test above would cost a register copy.
    if ((unready | chunk_layout_unread()) == 0 && profiler_only(g))
        return hooked_delete_sampling(p, s, size_hint, align);
    hooked_delete_watched(p, size_hint, align, false);
}

}  // namespace detail
}  // namespace memdiag

#if defined(__GNUC__) && defined(__ELF__)
extern "C" __attribute__((used)) const int memdiag_global_new_installed = 1;
#endif

// Each replaceable form, [new.delete]. Defined here, once, by the including TU.
void* operator new(std::size_t n) { return memdiag::detail::hooked_new(n, 0, false); }
void* operator new[](std::size_t n) { return memdiag::detail::hooked_new(n, 0, false); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
    return memdiag::detail::hooked_new(n, 0, true);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
    return memdiag::detail::hooked_new(n, 0, true);
}
void operator delete(void* p) noexcept { memdiag::detail::hooked_delete(p, 0, 0); }
void operator delete[](void* p) noexcept { memdiag::detail::hooked_delete(p, 0, 0); }
void operator delete(void* p, const std::nothrow_t&) noexcept { memdiag::detail::hooked_delete(p, 0, 0); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { memdiag::detail::hooked_delete(p, 0, 0); }
void operator delete(void* p, std::size_t n) noexcept { memdiag::detail::hooked_delete(p, n, 0); }
void operator delete[](void* p, std::size_t n) noexcept { memdiag::detail::hooked_delete(p, n, 0); }

#if defined(__cpp_aligned_new)
void* operator new(std::size_t n, std::align_val_t a) {
    return memdiag::detail::hooked_new(n, static_cast<std::size_t>(a), false);
}
void* operator new[](std::size_t n, std::align_val_t a) {
    return memdiag::detail::hooked_new(n, static_cast<std::size_t>(a), false);
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
    return memdiag::detail::hooked_new(n, static_cast<std::size_t>(a), true);
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
    return memdiag::detail::hooked_new(n, static_cast<std::size_t>(a), true);
}
void operator delete(void* p, std::align_val_t a) noexcept {
    memdiag::detail::hooked_delete(p, 0, static_cast<std::size_t>(a));
}
void operator delete[](void* p, std::align_val_t a) noexcept {
    memdiag::detail::hooked_delete(p, 0, static_cast<std::size_t>(a));
}
void operator delete(void* p, std::align_val_t a, const std::nothrow_t&) noexcept {
    memdiag::detail::hooked_delete(p, 0, static_cast<std::size_t>(a));
}
void operator delete[](void* p, std::align_val_t a, const std::nothrow_t&) noexcept {
    memdiag::detail::hooked_delete(p, 0, static_cast<std::size_t>(a));
}
void operator delete(void* p, std::size_t n, std::align_val_t a) noexcept {
    memdiag::detail::hooked_delete(p, n, static_cast<std::size_t>(a));
}
void operator delete[](void* p, std::size_t n, std::align_val_t a) noexcept {
    memdiag::detail::hooked_delete(p, n, static_cast<std::size_t>(a));
}
#endif  // __cpp_aligned_new

#if MEMDIAG_MALLOC_HOOK
// The C allocation functions (glibc). Each counts like operator new; failures
// follow C: null and errno, never an exception.
#include <unistd.h>

#include <cerrno>

namespace memdiag {
namespace detail {
inline void* c_alloc(std::size_t n, std::size_t align) noexcept {
    tracker_slot& slot = g_process_slot;
    if (!admit_allocation(slot, n, false)) {
        errno = ENOMEM;
        return nullptr;
    }
    void* p = align == 0 ? __libc_malloc(n) : __libc_memalign(align, n);
    if (p != nullptr) record_allocation(slot, p, usable_size(p, n), n);
    return p;
}
inline void c_free(void* p) noexcept {
    if (p == nullptr) return;
    record_deallocation(g_process_slot, p, usable_size(p, 0));
    __libc_free(p);
}
}  // namespace detail
}  // namespace memdiag

extern "C" {
__attribute__((used)) const int memdiag_malloc_installed = 1;

void* malloc(std::size_t n) noexcept { return memdiag::detail::c_alloc(n, 0); }
void free(void* p) noexcept { memdiag::detail::c_free(p); }
void* calloc(std::size_t count, std::size_t size) noexcept {
    std::size_t n;
    if (__builtin_mul_overflow(count, size, &n)) {
        errno = ENOMEM;
        return nullptr;
    }
    void* p = memdiag::detail::c_alloc(n, 0);
    if (p != nullptr) __builtin_memset(p, 0, n);
    return p;
}
void* realloc(void* old, std::size_t n) noexcept {
    if (old == nullptr) return memdiag::detail::c_alloc(n, 0);
    if (n == 0) {
        memdiag::detail::c_free(old);
        return nullptr;
    }
    using namespace memdiag::detail;
    if (!admit_allocation(g_process_slot, n, false)) {
        errno = ENOMEM;
        return nullptr;
    }
    // The old block's free is recorded before __libc_realloc can free it: once
    // freed, another thread may get its address and record that allocation,
    // which a late record of this free would then erase.
    const std::size_t old_size = usable_size(old, 0);
    record_deallocation(g_process_slot, old, old_size);
    void* p = __libc_realloc(old, n);
    if (p == nullptr) {
        // The old block is untouched and still ours: count it again (one more
        // allocation/free pair in the figures; no other thread could see it).
        record_allocation(g_process_slot, old, old_size);
        return nullptr;
    }
    record_allocation(g_process_slot, p, usable_size(p, n), n);
    return p;
}
int posix_memalign(void** out, std::size_t align, std::size_t n) noexcept {
    if (align < sizeof(void*) || (align & (align - 1)) != 0) return EINVAL;
    void* p = memdiag::detail::c_alloc(n, align);
    if (p == nullptr) return ENOMEM;
    *out = p;
    return 0;
}
void* aligned_alloc(std::size_t align, std::size_t n) noexcept {
    if (align == 0 || (align & (align - 1)) != 0) {
        errno = EINVAL;
        return nullptr;
    }
    return memdiag::detail::c_alloc(n, align);
}
void* memalign(std::size_t align, std::size_t n) noexcept { return memdiag::detail::c_alloc(n, align); }
void* valloc(std::size_t n) noexcept {
    return memdiag::detail::c_alloc(n, static_cast<std::size_t>(sysconf(_SC_PAGESIZE)));
}
void* pvalloc(std::size_t n) noexcept {
    const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    std::size_t rounded;
    if (__builtin_add_overflow(n, page - 1, &rounded)) {  // as glibc: no wrap to a tiny block
        errno = ENOMEM;
        return nullptr;
    }
    return memdiag::detail::c_alloc(rounded & ~(page - 1), page);
}
}
#endif  // MEMDIAG_MALLOC_HOOK

#endif  // MEMDIAG_REPLACE_GLOBAL_NEW && MEMDIAG_ENABLED && !MEMDIAG_TSAN
#endif  // MEMDIAG_REPLACE_GLOBAL_NEW && !MEMDIAG_GLOBAL_NEW_HPP_DEFINITIONS
