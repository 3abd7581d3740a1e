// memdiag/detail/emergency_reserve.hpp - address space set aside for writing a
// snapshot when memory runs out, and given back at that moment.
//
// The block is mapped straight from the OS (mmap / VirtualAlloc), not taken
// from malloc: unmapping it really returns the address space (a malloc'd block
// may sit inside the heap and stay mapped when freed), and glibc's mmap
// threshold, which grows when a large malloc'd block is freed, stays as the
// program left it. It is never touched: what runs out under RLIMIT_AS (and what
// strict overcommit charges) is address space and commit, not resident pages,
// so the reserve costs no RAM. Under a cgroup memory limit the kernel kills
// instead of failing allocations; the watermark dumps cover that case.
#pragma once

#include <cstddef>

#include "../config.hpp"
#include "internal_alloc.hpp"

#if MEMDIAG_POSIX
#include <sys/mman.h>
#elif MEMDIAG_OS_WINDOWS
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>
#endif  // MEMDIAG_POSIX / MEMDIAG_OS_WINDOWS

namespace memdiag {
namespace detail {

/// Maps n bytes of private, writable, untouched memory; nullptr on failure.
inline void* map_reserve(std::size_t n) noexcept {
#if MEMDIAG_POSIX
    void* p = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? nullptr : p;
#elif MEMDIAG_OS_WINDOWS
    return VirtualAlloc(nullptr, n, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
#else
    return internal_malloc(n);
#endif
}

/// Gives back a block of n bytes from map_reserve (nullptr: nothing).
inline void unmap_reserve(void* p, std::size_t n) noexcept {
    if (p == nullptr) return;
#if MEMDIAG_POSIX
    ::munmap(p, n);
#elif MEMDIAG_OS_WINDOWS
    (void)n;
    VirtualFree(p, 0, MEM_RELEASE);
#else
    (void)n;
    internal_free(p);
#endif
}

}  // namespace detail
}  // namespace memdiag
