// tests/flaky_upstream.hpp - upstreams that fail on demand, for the tests of
// what a failed upstream call leaves counted (nothing: the strong guarantee).
#pragma once

#include <memory>
#include <memory_resource>
#include <new>

namespace memdiag_test {

/// An allocator over std::allocator that throws std::bad_alloc while *fail.
template <class T>
struct flaky_allocator {
    using value_type = T;
    bool* fail;
    explicit flaky_allocator(bool* f) noexcept : fail(f) {}
    template <class U>
    flaky_allocator(const flaky_allocator<U>& o) noexcept : fail(o.fail) {}  // NOLINT(google-explicit-constructor)
    T* allocate(std::size_t n) {
        if (*fail) throw std::bad_alloc();
        return std::allocator<T>().allocate(n);
    }
    void deallocate(T* p, std::size_t n) noexcept { std::allocator<T>().deallocate(p, n); }
    template <class U>
    bool operator==(const flaky_allocator<U>& o) const noexcept { return fail == o.fail; }
    template <class U>
    bool operator!=(const flaky_allocator<U>& o) const noexcept { return fail != o.fail; }
};

/// A resource forwarding to new_delete_resource() that throws std::bad_alloc while `fail`.
class flaky_resource : public std::pmr::memory_resource {
public:
    bool fail = false;

private:
    void* do_allocate(std::size_t bytes, std::size_t align) override {
        if (fail) throw std::bad_alloc();
        return std::pmr::new_delete_resource()->allocate(bytes, align);
    }
    void do_deallocate(void* p, std::size_t bytes, std::size_t align) override {
        std::pmr::new_delete_resource()->deallocate(p, bytes, align);
    }
    bool do_is_equal(const memory_resource& o) const noexcept override { return this == &o; }
};

}  // namespace memdiag_test
