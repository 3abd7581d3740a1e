// memdiag/allocator.hpp - tracking_allocator: a std allocator that counts into a tracker.
#pragma once

#include <cstddef>
#include <limits>
#include <type_traits>
#include <utility>
// std::allocator and std::allocator_traits. libstdc++ has them in headers of
// their own; the rest of <memory> (smart pointers, the uninitialized
// algorithms) would cost every unit that includes memdiag.hpp about 0.15 s.
#if defined(__GLIBCXX__) && __has_include(<bits/allocator.h>) && __has_include(<bits/alloc_traits.h>)
#include <bits/allocator.h>
#include <bits/alloc_traits.h>
#else
#include <memory>
#endif

#include "detail/throw.hpp"
#include "tracker.hpp"

namespace memdiag {

namespace detail {
// Holds the upstream allocator as a base so an empty one (std::allocator) costs no space.
template <class Upstream, bool Empty = std::is_empty<Upstream>::value && !std::is_final<Upstream>::value>
struct upstream_holder : private Upstream {
    upstream_holder() = default;
    explicit upstream_holder(const Upstream& u) : Upstream(u) {}
    Upstream& get() noexcept { return *this; }
    const Upstream& get() const noexcept { return *this; }
};
template <class Upstream>
struct upstream_holder<Upstream, false> {
    upstream_holder() = default;
    explicit upstream_holder(const Upstream& u) : value(u) {}
    Upstream& get() noexcept { return value; }
    const Upstream& get() const noexcept { return value; }
    Upstream value;
};
}  // namespace detail

/// An Allocator that forwards to `Upstream` and counts every allocation and
/// deallocation (requested bytes, exact) into a tracker. Budgets, fault
/// injection and the heap profiler see its allocations like any other.
///
/// Copies and rebinds share the tracker. Allocators are equal when they count
/// into the same tracker and their upstreams are equal; the tracker propagates
/// with the container on copy, move and swap, so memory is always returned
/// through an allocator counting into the tracker that counted it.
///
/// Exception safety: allocate() is strong (when it throws, nothing was
/// allocated or counted and no budget figure moved); deallocate(), tracker(),
/// stats() and comparisons are noexcept; construction and copies throw only
/// what copying Upstream throws. Without exceptions (-fno-exceptions) a
/// refused or failed allocate() prints the reason and aborts.
template <class T, class Upstream = std::allocator<T>>
class tracking_allocator : private detail::upstream_holder<Upstream> {
    using holder = detail::upstream_holder<Upstream>;
    using upstream_traits = std::allocator_traits<Upstream>;
    static_assert(std::is_same<typename upstream_traits::value_type, T>::value,
                  "tracking_allocator<T, Upstream>: Upstream::value_type must be T");
    static_assert(std::is_same<typename upstream_traits::pointer, T*>::value,
                  "tracking_allocator: Upstream must use raw pointers");

public:
    using value_type = T;
    using size_type = typename upstream_traits::size_type;
    using difference_type = typename upstream_traits::difference_type;
    using upstream_type = Upstream;
    using propagate_on_container_copy_assignment = std::true_type;
    using propagate_on_container_move_assignment = std::true_type;
    using propagate_on_container_swap = std::true_type;
    using is_always_equal = std::false_type;

    /// The same allocator for another value type.
    template <class U>
    struct rebind {
        using other = tracking_allocator<U, typename upstream_traits::template rebind_alloc<U>>;
    };

    /// Counts into the "default" tracker.
    tracking_allocator() noexcept(std::is_nothrow_default_constructible<Upstream>::value) = default;
    /// Counts into `t`, which must outlive every allocation made through this allocator.
    tracking_allocator(tracker_ref t) noexcept(  // NOLINT(google-explicit-constructor)
        std::is_nothrow_default_constructible<Upstream>::value)
        : tracker_(t) {}
    /// Counts into `t`, allocating from `upstream`.
    tracking_allocator(tracker_ref t, const Upstream& upstream) : holder(upstream), tracker_(t) {}
    /// Rebinding copy: same tracker, upstream rebound.
    template <class U, class UpstreamU>
    tracking_allocator(const tracking_allocator<U, UpstreamU>& other)  // NOLINT(google-explicit-constructor)
        : holder(Upstream(other.upstream())), tracker_(other.tracker()) {}

    /// Allocates n objects' storage. Throws std::bad_array_new_length when
    /// n * sizeof(T) overflows, std::bad_alloc when n > max_size() or memory is
    /// exhausted, budget_exceeded (a std::bad_alloc) when a budget says so.
    /// Always inlined, as std::allocator's is: at -O2 GCC otherwise calls it,
    /// and the call's frame cost as much as the counting (rare work stays out of line).
    MEMDIAG_ALWAYS_INLINE T* allocate(size_type n) {
        if (n > max_size()) {
            if (n > std::numeric_limits<std::size_t>::max() / sizeof(T)) detail::throw_bad_array_new_length();
            detail::throw_bad_alloc();
        }
        return detail::allocate_counted(
            tracker_.slot(), static_cast<std::size_t>(n) * sizeof(T),
            [this](size_type count) { return upstream_traits::allocate(this->get(), count); }, n);
    }

    /// Returns storage from allocate(n) with the same n.
    MEMDIAG_ALWAYS_INLINE void deallocate(T* p, size_type n) noexcept {
        detail::deallocate_counted(
            tracker_.slot(), p, static_cast<std::size_t>(n) * sizeof(T),
            [this](T* block, size_type count) noexcept { upstream_traits::deallocate(this->get(), block, count); },
            p, n);
    }

    /// The largest n allocate() may succeed for: the upstream's limit.
    size_type max_size() const noexcept { return upstream_traits::max_size(this->get()); }

    /// The tracker this allocator counts into.
    tracker_ref tracker() const noexcept { return tracker_; }
    /// Figures of that tracker.
    allocation_stats stats() const noexcept { return tracker_.stats(); }
    /// The upstream allocator.
    const Upstream& upstream() const noexcept { return this->get(); }

    /// Same tracker and equal upstreams: each can free what the other allocated.
    template <class U, class UpstreamU>
    friend bool operator==(const tracking_allocator& a, const tracking_allocator<U, UpstreamU>& b) noexcept {
        return a.tracker() == b.tracker() && a.upstream() == b.upstream();
    }
    /// Not equal.
    template <class U, class UpstreamU>
    friend bool operator!=(const tracking_allocator& a, const tracking_allocator<U, UpstreamU>& b) noexcept {
        return !(a == b);
    }

private:
    tracker_ref tracker_;
};

}  // namespace memdiag
