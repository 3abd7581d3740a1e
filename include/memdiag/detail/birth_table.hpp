// memdiag/detail/birth_table.hpp - which live blocks a thread allocated, and when.
//
// Leak checks (leak_check, max_live_bytes) report what a scope allocated and
// did not free. A free only lowers that figure when the block was born inside
// the scope, so at free time the thread must know when the block was born.
// While a scope that needs it is open, each allocation of the thread is noted
// here with its birth tag (the thread's allocation count after it); a scope
// opened when the count was N owns exactly the blocks tagged above N.
//
// One open-addressing table per thread, in memdiag's internal memory (never
// counted, never charged), used only by its own thread: no lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "internal_alloc.hpp"

namespace memdiag {
namespace detail {

/// A live block noted by a birth_table.
struct birth_entry {
    std::uintptr_t key = 0;   ///< the block's address; 0: empty slot
    std::size_t size = 0;     ///< the size counted for it
    std::uint64_t birth = 0;  ///< the thread's allocation count right after it
};

/// A hash set of a thread's live blocks, keyed by address (linear probing,
/// deletion by backward shift, so no tombstones pile up).
class birth_table {
public:
    birth_table() noexcept = default;
    ~birth_table() { clear(); }
    birth_table(const birth_table&) = delete;
    birth_table& operator=(const birth_table&) = delete;

    /// Notes a block. False when no memory could be had for it: the block's
    /// free will then not be recognized (the caller says so).
    bool insert(const void* p, std::size_t size, std::uint64_t birth) noexcept {
        if ((count_ + 1) * 2 > cap_ && !grow()) return false;
        if (place(birth_entry{reinterpret_cast<std::uintptr_t>(p), size, birth})) ++count_;
        return true;
    }

    /// Removes the block at p into `out`; false when it was not noted.
    bool take(const void* p, birth_entry& out) noexcept {
        if (count_ == 0) return false;
        const std::uintptr_t key = reinterpret_cast<std::uintptr_t>(p);
        const std::size_t mask = cap_ - 1;
        std::size_t i = slot_of(key);
        while (slots_[i].key != key) {
            if (slots_[i].key == 0) return false;
            i = (i + 1) & mask;
        }
        out = slots_[i];
        // Backward shift: move later entries of the run into the hole when
        // their home slot does not lie strictly between the hole and them.
        std::size_t hole = i;
        for (std::size_t j = (i + 1) & mask; slots_[j].key != 0; j = (j + 1) & mask) {
            const std::size_t home = slot_of(slots_[j].key);
            const bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
            if (stays) continue;
            slots_[hole] = slots_[j];
            hole = j;
        }
        slots_[hole] = birth_entry{};
        --count_;
        return true;
    }

    /// Forgets every block and returns the memory.
    void clear() noexcept {
        if (slots_ != nullptr) internal_free(slots_);
        slots_ = nullptr;
        cap_ = count_ = 0;
    }

    /// Blocks noted.
    std::size_t size() const noexcept { return count_; }

private:
    std::size_t slot_of(std::uintptr_t key) const noexcept {
        // Blocks are at least 8-aligned: drop the low bits, then mix.
        const std::uint64_t h = static_cast<std::uint64_t>(key >> 3) * 0x9E3779B97F4A7C15ull;
        return static_cast<std::size_t>(h >> 32) & (cap_ - 1);
    }
    /// Puts e in its slot; false when its address was there already (a free
    /// memdiag did not see): the newer birth replaces the older.
    bool place(const birth_entry& e) noexcept {
        std::size_t i = slot_of(e.key);
        while (slots_[i].key != 0 && slots_[i].key != e.key) i = (i + 1) & (cap_ - 1);
        const bool fresh = slots_[i].key == 0;
        slots_[i] = e;
        return fresh;
    }
    bool grow() noexcept {
        const std::size_t cap = cap_ == 0 ? 64 : cap_ * 2;
        auto* fresh = static_cast<birth_entry*>(internal_malloc(cap * sizeof(birth_entry)));
        if (fresh == nullptr) return false;
        std::memset(static_cast<void*>(fresh), 0, cap * sizeof(birth_entry));
        birth_entry* old = slots_;
        const std::size_t old_cap = cap_;
        slots_ = fresh;
        cap_ = cap;
        for (std::size_t i = 0; i < old_cap; ++i)
            if (old[i].key != 0) (void)place(old[i]);
        if (old != nullptr) internal_free(old);
        return true;
    }

    birth_entry* slots_ = nullptr;
    std::size_t cap_ = 0;  ///< a power of two, or 0
    std::size_t count_ = 0;
};

}  // namespace detail
}  // namespace memdiag
