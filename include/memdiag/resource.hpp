// memdiag/resource.hpp - tracking_resource: a std::pmr::memory_resource that counts.
#pragma once

#include <cstddef>
#include <memory_resource>
#include <new>

#include "detail/throw.hpp"
#include "tracker.hpp"

namespace memdiag {

/// A std::pmr::memory_resource adaptor: forwards to an upstream resource
/// (default std::pmr::new_delete_resource()) and counts every allocation into a
/// tracker, so any std::pmr container can be measured, budgeted and profiled.
///
/// Given no tracker, a resource counts into a tracker of its own, so `stats()`
/// describes exactly what went through it. Two tracking_resources compare equal
/// only when they are the same object: memory must come back the way it went out.
///
/// Over new_delete_resource() with libstdc++ the resource calls the aligned
/// ::operator new / delete itself, which is what that resource does: the same
/// memory, one virtual call fewer per event. Any other upstream is called.
///
/// Exception safety: allocate() is strong (when the upstream throws or a budget
/// refuses, nothing was counted); deallocate() and every other operation are
/// noexcept, provided the upstream's deallocate does not throw.
class tracking_resource : public std::pmr::memory_resource {
public:
    /// Own tracker, upstream new_delete_resource().
    tracking_resource() noexcept : tracking_resource(std::pmr::new_delete_resource()) {}
    /// Own tracker, the given upstream (which must outlive this resource;
    /// nullptr means new_delete_resource()).
    explicit tracking_resource(std::pmr::memory_resource* upstream) noexcept
        : tracker_(make_own()), upstream_(or_default(upstream)), direct_(is_new_delete(upstream_)) {}
    /// Counts into `t`, allocating from `upstream` (nullptr: new_delete_resource()).
    /// Builds no tracker of its own, so it takes none of the tracker shards.
    explicit tracking_resource(tracker_ref t,
                               std::pmr::memory_resource* upstream = std::pmr::new_delete_resource()) noexcept
        : tracker_(t), upstream_(or_default(upstream)), direct_(is_new_delete(upstream_)) {}
    ~tracking_resource() override {
        if (owns_) own_.t.~tracker();
    }
    tracking_resource(const tracking_resource&) = delete;
    tracking_resource& operator=(const tracking_resource&) = delete;

    /// The tracker this resource counts into.
    tracker_ref tracker() const noexcept { return tracker_; }
    /// Figures of that tracker.
    allocation_stats stats() const noexcept { return tracker_.stats(); }
    /// The resource memory comes from.
    std::pmr::memory_resource* upstream_resource() const noexcept { return upstream_; }

protected:
    void* do_allocate(std::size_t bytes, std::size_t alignment) override {
        return detail::allocate_counted(
            tracker_.slot(), bytes,
            [this](std::size_t n, std::size_t align) {
                return direct_ ? new_delete_allocate(n, align) : upstream_->allocate(n, align);
            },
            bytes, alignment);
    }

    void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
        detail::deallocate_counted(
            tracker_.slot(), p, bytes,
            [this](void* block, std::size_t n, std::size_t align) noexcept {
                if (direct_) new_delete_deallocate(block, n, align);
                else upstream_->deallocate(block, n, align);
            },
            p, bytes, alignment);
    }

    bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override { return this == &other; }

private:
    static std::pmr::memory_resource* or_default(std::pmr::memory_resource* r) noexcept {
        return r != nullptr ? r : std::pmr::new_delete_resource();
    }

#if defined(__GLIBCXX__)
    // libstdc++'s new_delete_resource() is ::operator new / delete with the
    // alignment passed on (src/c++17/memory_resource.cc, GCC 9 and later).
    // Calling those directly saves a second virtual call per event and takes
    // memory from exactly where the upstream would.
    static bool is_new_delete(std::pmr::memory_resource* r) noexcept { return r == std::pmr::new_delete_resource(); }
    static void* new_delete_allocate(std::size_t bytes, std::size_t alignment) {
        return ::operator new(bytes, std::align_val_t(alignment));
    }
    static void new_delete_deallocate(void* p, std::size_t bytes, std::size_t alignment) noexcept {
#if defined(__cpp_sized_deallocation)
        ::operator delete(p, bytes, std::align_val_t(alignment));
#else  // clang before 19 leaves sized deallocation off: the unsized form, which the sized one calls
        (void)bytes;
        ::operator delete(p, std::align_val_t(alignment));
#endif
    }
#else
    // Other libraries choose the overload by alignment: always ask the upstream.
    static bool is_new_delete(std::pmr::memory_resource*) noexcept { return false; }
    static void* new_delete_allocate(std::size_t, std::size_t) { return nullptr; }
    static void new_delete_deallocate(void*, std::size_t, std::size_t) noexcept {}
#endif

    /// Builds the resource's own tracker (constructors given none).
    tracker_ref make_own() noexcept {
        new (&own_.t) memdiag::tracker("tracking_resource");
        owns_ = true;
        return tracker_ref(own_.t);
    }

    /// Storage for a tracker of its own, built only when given none: every
    /// tracker holds one of the MEMDIAG_MAX_TRACKERS shards while it lives.
    union own_storage {
        own_storage() noexcept {}
        ~own_storage() {}
        memdiag::tracker t;
    } own_;
    bool owns_ = false;  // before tracker_: make_own() sets it while tracker_ is built
    tracker_ref tracker_;
    std::pmr::memory_resource* upstream_;
    bool direct_;  // upstream_ is new_delete_resource(): call ::operator new / delete directly
};

}  // namespace memdiag
