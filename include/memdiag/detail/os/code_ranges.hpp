// memdiag/detail/os/code_ranges.hpp - which addresses are code: the loaded
// objects' executable segments, as a table the stack walk can read anywhere.
//
// A frame-pointer walk through code built without frame pointers reads data
// words as return addresses. A word that is not inside an executable segment
// of a loaded object (the executable, a shared library, the vDSO) cannot be a
// return address. The table answers that test inside allocation hooks:
//  - readers take no lock and never call out: a sequence counter (odd while
//    the table is rewritten) tells them when what they read may be torn;
//  - the table is rebuilt from dl_iterate_phdr when an address misses it and
//    the loader's add/remove counters moved (a dlopen or dlclose since the last
//    build). The rebuild collects the segments with no memdiag lock held and
//    publishes them under a try-lock nobody waits on, so a thread holding the
//    loader lock and allocating can never wait for one that calls the loader.
//  - its storage is a fixed static array: no allocation, nothing to reclaim.
//
// Exports: MEMDIAG_HAS_CODE_RANGES (0/1), code_range_table, g_code_ranges,
// code_check.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "../../config.hpp"

#if defined(__has_include)
#if defined(__ELF__) && __has_include(<link.h>) && __has_include(<sys/mman.h>) && \
    (MEMDIAG_OS_LINUX || defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__))
#define MEMDIAG_HAS_CODE_RANGES 1
#include <dlfcn.h>
#include <link.h>
#include <sys/mman.h>
#include <unistd.h>
#endif
#endif  // __has_include
#ifndef MEMDIAG_HAS_CODE_RANGES
#define MEMDIAG_HAS_CODE_RANGES 0
#endif

namespace memdiag {
namespace detail {

#if MEMDIAG_HAS_CODE_RANGES

/// The published table of executable segments, sorted by start address.
struct code_range_table {
    /// Segments kept. A process with more executable segments gets its last
    /// entry widened to cover the rest (coarser, never missing code).
    static constexpr std::uint32_t capacity = 1024;
    /// Bit 0 of a start address (segments are page-aligned): the segment is
    /// readable, so the bytes before a return address may be checked.
    static constexpr std::uintptr_t readable_bit = 1;

    std::atomic<std::uint32_t> seq{0};       ///< even: stable; odd: being rewritten
    std::atomic<std::uint32_t> count{0};     ///< entries in use
    std::atomic<bool> built{false};          ///< a build has been published
    /// Try-lock of the publisher, never waited on: 0 free, else the process id
    /// of the holder, so a child forked while a parent thread published (the
    /// lock copied held) takes it over instead of never rebuilding again.
    std::atomic<long> publishing{0};
    std::atomic<unsigned long long> generation{0};  ///< the loader's counters at the last build
    std::atomic<std::uintptr_t> start[capacity];    ///< page-aligned start | readable_bit
    std::atomic<std::uintptr_t> limit[capacity];    ///< exclusive end
};

/// The process's (this shared object's) table; filled on first use.
inline code_range_table g_code_ranges;

/// Scratch space for one rebuild: anonymous pages, never the heap.
struct code_range_scratch {
    std::uintptr_t* start = nullptr;
    std::uintptr_t* limit = nullptr;
    std::uint32_t count = 0;
    std::uint32_t capacity = 0;
    std::uintptr_t page = 4096;
    unsigned long long generation = 0;
    bool generation_known = false;
};

inline int collect_code_range(struct dl_phdr_info* info, std::size_t size, void* arg) noexcept {
    auto& s = *static_cast<code_range_scratch*>(arg);
    if (!s.generation_known && size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs)) {
        s.generation = static_cast<unsigned long long>(info->dlpi_adds) * 0x100000001ull + info->dlpi_subs;
        s.generation_known = true;
    }
    for (int i = 0; i < info->dlpi_phnum; ++i) {
        const ElfW(Phdr)& ph = info->dlpi_phdr[i];
        if (ph.p_type != PT_LOAD || (ph.p_flags & PF_X) == 0 || ph.p_memsz == 0) continue;
        const std::uintptr_t at = static_cast<std::uintptr_t>(info->dlpi_addr) + static_cast<std::uintptr_t>(ph.p_vaddr);
        const std::uintptr_t lo = at & ~(s.page - 1);
        const std::uintptr_t hi = at + static_cast<std::uintptr_t>(ph.p_memsz);
        if (s.count == s.capacity) {  // over capacity: widen the last entry (coarser, never missing)
            if (hi > s.limit[s.count - 1]) s.limit[s.count - 1] = hi;
            if (lo < s.start[s.count - 1]) s.start[s.count - 1] = lo;
            continue;
        }
        s.start[s.count] = lo | ((ph.p_flags & PF_R) != 0 ? code_range_table::readable_bit : 0);
        s.limit[s.count] = hi;
        ++s.count;
    }
    return 0;
}

inline int read_loader_generation(struct dl_phdr_info* info, std::size_t size, void* arg) noexcept {
    auto* gen = static_cast<unsigned long long*>(arg);
    if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs))
        *gen = static_cast<unsigned long long>(info->dlpi_adds) * 0x100000001ull + info->dlpi_subs;
    return 1;  // the same counters in every entry
}

/// Rebuilds the table when the loaded objects changed since the last build.
/// Returns true when a new table was published. Calls the loader
/// (dl_iterate_phdr) and mmap: never call it while holding a memdiag lock.
/// A rebuild that finds another one publishing gives up (returns false).
inline bool refresh_code_ranges(code_range_table& t = g_code_ranges) noexcept {
    unsigned long long gen = 0;
    ::dl_iterate_phdr(&read_loader_generation, &gen);
    if (t.built.load(std::memory_order_acquire) && gen != 0 &&
        gen == t.generation.load(std::memory_order_relaxed))
        return false;
    const std::size_t bytes = 2 * sizeof(std::uintptr_t) * code_range_table::capacity;
    void* mem = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return false;
    code_range_scratch s;
    s.start = static_cast<std::uintptr_t*>(mem);
    s.limit = s.start + code_range_table::capacity;
    s.capacity = code_range_table::capacity;
    ::dl_iterate_phdr(&collect_code_range, &s);
    // Insertion sort by start: a few dozen entries, already mostly in order.
    for (std::uint32_t i = 1; i < s.count; ++i) {
        const std::uintptr_t a = s.start[i], b = s.limit[i];
        std::uint32_t j = i;
        for (; j > 0 && (s.start[j - 1] & ~code_range_table::readable_bit) > (a & ~code_range_table::readable_bit); --j) {
            s.start[j] = s.start[j - 1];
            s.limit[j] = s.limit[j - 1];
        }
        s.start[j] = a;
        s.limit[j] = b;
    }
    bool published = false;
    const long self = static_cast<long>(::getpid());
    long holder = 0;
    bool locked = t.publishing.compare_exchange_strong(holder, self, std::memory_order_acquire);
    if (!locked && holder != self)  // held in the parent before a fork: nobody here holds it
        locked = t.publishing.compare_exchange_strong(holder, self, std::memory_order_acquire);
    if (locked) {
        const std::uint32_t q = t.seq.load(std::memory_order_relaxed);
        t.seq.store(q + 1, std::memory_order_relaxed);  // odd: readers distrust what they read
        std::atomic_thread_fence(std::memory_order_release);
        for (std::uint32_t i = 0; i < s.count; ++i) {
            t.start[i].store(s.start[i], std::memory_order_relaxed);
            t.limit[i].store(s.limit[i], std::memory_order_relaxed);
        }
        t.count.store(s.count, std::memory_order_relaxed);
        t.generation.store(s.generation_known ? s.generation : gen, std::memory_order_relaxed);
        t.seq.store(q + 2, std::memory_order_release);
        t.built.store(true, std::memory_order_release);
        t.publishing.store(0, std::memory_order_release);
        published = true;
    }
    ::munmap(mem, bytes);
    return published;
}

/// Whether pc lies in some loaded object, asked without the loader's lock
/// where the C library can (glibc 2.35+: _dl_find_object is lock-free). A miss
/// in the table refreshes it only for an address inside an object, one loaded
/// since the last build: a walk that meets a garbage word then never calls
/// dl_iterate_phdr, whose lock a thread that forks meanwhile would leave held
/// in the child, and whose cost would be paid on every such walk.
inline bool in_loaded_object(std::uintptr_t pc) noexcept {
#if defined(__GLIBC__) && defined(DLFO_STRUCT_HAS_EH_DBASE)
    dl_find_object found;
    return ::_dl_find_object(reinterpret_cast<void*>(pc), &found) == 0;
#else
    (void)pc;
    return true;  // no lock-free lookup here: let the rebuild decide
#endif
}

/// One walk's view of the table: a snapshot of its sequence number, and the
/// segment of the last hit (consecutive frames are mostly in one object).
/// Lock-free and allocation-free except when an address misses: then the
/// table is rebuilt if objects were loaded or unloaded since (see
/// refresh_code_ranges: the caller must hold no memdiag lock).
class code_check {
public:
    /// What contains() found.
    enum class verdict : unsigned char {
        not_code,     ///< in no executable segment
        code,         ///< in a readable executable segment
        code_opaque   ///< in an executable segment that cannot be read (execute-only)
    };

    /// Takes the table's current sequence number; builds the table on first use.
    explicit code_check(code_range_table& t = g_code_ranges) noexcept : t_(t) {
        if (!t_.built.load(std::memory_order_acquire)) refresh_code_ranges(t_);
        seq_ = t_.seq.load(std::memory_order_acquire);
    }

    /// False when there is no table (the loader listed nothing): then every
    /// address is taken as code.
    bool usable() const noexcept {
        return t_.built.load(std::memory_order_acquire) && t_.count.load(std::memory_order_relaxed) > 0;
    }

    /// Whether pc lies in an executable segment of a loaded object.
    verdict contains(std::uintptr_t pc) noexcept {
        if (pc - lo_ < hi_ - lo_) return last_;
        if (!usable()) return verdict::code_opaque;
        verdict v = search(pc);
        if (v == verdict::not_code && in_loaded_object(pc) && refresh_code_ranges(t_)) {  // a dlopen since?
            seq_ = t_.seq.load(std::memory_order_acquire);
            v = search(pc);
        }
        return v;
    }

    /// Start of the segment of the last address found to be code: the bytes
    /// from there up to that address are mapped.
    std::uintptr_t segment_start() const noexcept { return lo_; }
    /// End (exclusive) of that segment.
    std::uintptr_t segment_limit() const noexcept { return hi_; }

    /// True when no rebuild overlapped this check's reads (a torn read could
    /// have accepted a wrong address): the verdicts can be trusted.
    bool stable() const noexcept {
        std::atomic_thread_fence(std::memory_order_acquire);
        return (seq_ & 1) == 0 && t_.seq.load(std::memory_order_relaxed) == seq_;
    }

private:
    verdict search(std::uintptr_t pc) noexcept {
        const std::uint32_t n = t_.count.load(std::memory_order_relaxed);
        std::uint32_t lo = 0, hi = n;  // first entry whose start is above pc
        while (lo < hi) {
            const std::uint32_t mid = lo + (hi - lo) / 2;
            if ((t_.start[mid].load(std::memory_order_relaxed) & ~code_range_table::readable_bit) <= pc)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo == 0) return verdict::not_code;
        const std::uintptr_t s = t_.start[lo - 1].load(std::memory_order_relaxed);
        const std::uintptr_t e = t_.limit[lo - 1].load(std::memory_order_relaxed);
        const std::uintptr_t b = s & ~code_range_table::readable_bit;
        if (pc >= e) return verdict::not_code;
        lo_ = b;
        hi_ = e;
        last_ = (s & code_range_table::readable_bit) != 0 ? verdict::code : verdict::code_opaque;
        return last_;
    }

    code_range_table& t_;
    std::uint32_t seq_ = 0;
    std::uintptr_t lo_ = 0, hi_ = 0;  // the last segment hit: [lo_, hi_)
    verdict last_ = verdict::not_code;
};

#else
class code_check;  // no table on this platform: walks check the stack bounds only
#endif  // MEMDIAG_HAS_CODE_RANGES

}  // namespace detail
}  // namespace memdiag
