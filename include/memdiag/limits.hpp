// memdiag/limits.hpp - the limits of a budget, and whose allocations it counts.
#pragma once

#include <cstdint>

#include "breach.hpp"

namespace memdiag {

/// The limits of a budget; unset limits do not apply. Chainable:
/// `limits{}.max_allocations(10).max_bytes(4096)`. Every operation is noexcept.
class limits {
public:
    static constexpr std::uint64_t unlimited = ~std::uint64_t{0};

    /// At most n bytes allocated in total inside the scope.
    limits& max_bytes(std::uint64_t n) noexcept { return set(bytes_, n); }
    /// At most n allocations inside the scope.
    limits& max_allocations(std::uint64_t n) noexcept { return set(allocations_, n); }
    /// Live bytes may grow by at most n inside the scope, at any moment.
    limits& max_peak_bytes(std::uint64_t n) noexcept { return set(peak_, n); }
    /// At most n bytes allocated inside the scope may still be held when it ends.
    /// Counted per block: the budget's used().live_bytes is what blocks born
    /// in the scope (on its thread, or a joined one) still hold. Freeing a
    /// block allocated before the scope does not lower it (it is not the
    /// scope's), so a scope that frees old memory and leaks as much new memory
    /// still reports the leak; a block realloc'd inside the scope is born
    /// there. A block freed by a thread that does not count into the scope
    /// stays counted. Process-wide budgets (scope_kind::process) keep the net
    /// figure: bytes allocated minus bytes freed by every thread.
    limits& max_live_bytes(std::uint64_t n) noexcept { return set(live_, n); }
    /// The function breach_policy::callback calls (from the allocating thread;
    /// inside operator new, so it must not throw unless the policy allows it).
    limits& on_breach(breach_callback f, void* context = nullptr) noexcept {
        callback_ = f;
        context_ = context;
        return *this;
    }

    /// On a breach, also write a heap snapshot (needs the heap profiler running
    /// and a dump path or MEMDIAG_DUMP_DIR; see heap_profile.hpp).
    limits& dump_on_breach(bool on = true) noexcept {
        dump_ = on;
        return *this;
    }

    std::uint64_t bytes() const noexcept { return bytes_; }              ///< max_bytes, or unlimited
    std::uint64_t allocations() const noexcept { return allocations_; }  ///< max_allocations, or unlimited
    std::uint64_t peak_bytes() const noexcept { return peak_; }          ///< max_peak_bytes, or unlimited
    std::uint64_t live_bytes() const noexcept { return live_; }          ///< max_live_bytes, or unlimited
    breach_callback callback() const noexcept { return callback_; }      ///< on_breach function
    void* callback_context() const noexcept { return context_; }         ///< on_breach context
    bool dumps_on_breach() const noexcept { return dump_; }              ///< dump_on_breach setting
    /// True when some per-allocation limit applies.
    bool any_per_allocation() const noexcept {
        return bytes_ != unlimited || allocations_ != unlimited || peak_ != unlimited;
    }

private:
    limits& set(std::uint64_t& field, std::uint64_t n) noexcept {
        field = n;
        return *this;
    }
    std::uint64_t bytes_ = unlimited, allocations_ = unlimited, peak_ = unlimited, live_ = unlimited;
    breach_callback callback_ = nullptr;
    void* context_ = nullptr;
    bool dump_ = false;
};

/// Whose allocations a budget counts.
enum class scope_kind {
    this_thread,  ///< the thread that opened it (plus threads joined by a budget_handle)
    process       ///< every thread of the process
};

}  // namespace memdiag
