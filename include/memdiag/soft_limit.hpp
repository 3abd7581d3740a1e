// memdiag/soft_limit.hpp - a soft process limit on the live heap, like Go's GOMEMLIMIT.
#pragma once

#include <atomic>
#include <cstdint>

#include "stats.hpp"
#include "tracker.hpp"

namespace memdiag {

/// Called when the process crosses its soft limit, with the process figures.
using soft_limit_callback = void (*)(const allocation_stats& process);

namespace detail {
inline std::atomic<soft_limit_callback> g_soft_limit_user{nullptr};
inline void soft_limit_trampoline(std::int64_t) {
    if (auto f = g_soft_limit_user.load(std::memory_order_acquire)) f(process_stats());
}
}  // namespace detail

/// A soft process limit, like Go's GOMEMLIMIT: when the live bytes counted by
/// the global hook (global_new.hpp) cross `bytes`, `on_cross` is called once, on
/// the allocating thread, so the program can shed caches before the hard wall.
/// It fires again only after live bytes fell below `rearm_fraction` of the
/// limit (hysteresis). Threads publish their balance every 64 KiB, so the
/// crossing is seen within (threads x 64 KiB). bytes = 0 or on_cross = nullptr
/// removes the limit. Memory freed by the callback counts as usual.
/// Exception safety: noexcept; on_cross runs inside the allocation that
/// crossed, so it must not throw. A limit derived from the container's:
/// set_soft_limit(auto_limit(0.9), on_cross) (auto_limit.hpp).
inline void set_soft_limit(std::uint64_t bytes, soft_limit_callback on_cross, double rearm_fraction = 0.9) noexcept {
    auto& st = detail::g_soft_limit;
    if (bytes == 0 || on_cross == nullptr) {
        st.threshold.store(-1);
        detail::g_soft_limit_user.store(nullptr);
        return;
    }
    if (!(rearm_fraction > 0.0 && rearm_fraction <= 1.0)) rearm_fraction = 0.9;  // NaN and nonsense too
    const std::uint64_t capped = bytes > static_cast<std::uint64_t>(INT64_MAX) ? static_cast<std::uint64_t>(INT64_MAX) : bytes;
    detail::g_soft_limit_user.store(on_cross, std::memory_order_release);
    st.notify.store(&detail::soft_limit_trampoline, std::memory_order_release);
    st.rearm_below.store(static_cast<std::int64_t>(static_cast<double>(capped) * rearm_fraction));
    st.tripped.store(false);
    st.threshold.store(static_cast<std::int64_t>(capped));
}

}  // namespace memdiag
