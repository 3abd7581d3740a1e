// Another operator new, preloaded (LD_PRELOAD) by the lifetime_hook_bypassed
// test: what valgrind or heaptrack's preload do to memdiag's hook.
#include <cstdlib>
#include <new>

void* operator new(std::size_t n) {
    if (void* p = std::malloc(n != 0 ? n : 1)) return p;
    throw std::bad_alloc();
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return std::malloc(n != 0 ? n : 1); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
