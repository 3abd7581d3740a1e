// memdiag/budget.hpp - scoped memory budgets, measurement, fault injection, leak checks.
//
// A scoped_budget limits what a block of code may allocate. It sees every
// allocation memdiag sees (the global hook, tracking_allocator, tracking_resource):
//
//     memdiag::scoped_budget guard{memdiag::limits{}.max_allocations(10).max_bytes(4096)};
//     parse(input);   // the 11th allocation throws memdiag::budget_exceeded (a std::bad_alloc)
//
// Scope: the current thread by default (other threads' allocations never count);
// scope_kind::process counts every thread. Nested budgets compose: an allocation
// counts against every enclosing budget of its thread. Work handed to another
// thread joins the budget through a budget_handle (see budget_join).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <utility>

#include "detail/frame_filter.hpp"
#include "detail/internal_section.hpp"
#include "detail/symbols.hpp"
#include "detail/throw.hpp"
#include "global_new.hpp"  // malloc_hook_installed() (declarations only without MEMDIAG_REPLACE_GLOBAL_NEW)
#include "stack.hpp"
#include "stats.hpp"
#include "tracker.hpp"

namespace memdiag {

/// What a budget does when an allocation would cross one of its limits.
///
/// Without exceptions (-fno-exceptions) throw_exception cannot throw: the
/// allocation fails instead (nothrow forms and the C functions return null;
/// throwing forms and tracking allocators abort as on exhaustion), and a
/// max_live_bytes breach at scope end is counted in breaches() only.
enum class breach_policy {
    throw_exception,   ///< the allocation throws budget_exceeded (a std::bad_alloc); nothrow forms return null
    report,            ///< print the breach report to stderr once per crossing, let the allocation proceed
    report_and_abort,  ///< print the report and std::abort()
    callback           ///< call the limits' on_breach function once per crossing, let the allocation proceed
};
// A crossing: an allocation takes a figure over its limit. The allocations
// after it that keep the figure over belong to the same crossing (no second
// report, callback or count); max_peak_bytes crosses again once live bytes
// fell back under it. An allocation refused by throw_exception leaves the
// figure under the limit, so each refusal is a crossing.

/// Which limit a breach crossed.
enum class limit_kind {
    bytes,        ///< total bytes allocated inside the scope
    allocations,  ///< number of allocations inside the scope
    peak_bytes,   ///< live bytes grown inside the scope, at any moment
    live_bytes    ///< bytes allocated inside the scope and still held when it ends (see limits::max_live_bytes)
};

/// Name of a limit, as used in reports ("max_bytes" ...).
constexpr const char* to_string(limit_kind k) noexcept {
    return k == limit_kind::bytes         ? "max_bytes"
           : k == limit_kind::allocations ? "max_allocations"
           : k == limit_kind::peak_bytes  ? "max_peak_bytes"
                                          : "max_live_bytes";
}

/// Where a scope was opened: file and line (use MEMDIAG_HERE).
struct source_place {
    const char* file = nullptr;
    int line = 0;
    /// As a default argument, the place of the call: budgets opened without
    /// MEMDIAG_HERE still say where they were opened. {nullptr, 0} on compilers
    /// without __builtin_FILE.
#if defined(__GNUC__) || defined(__clang__) || (defined(_MSC_VER) && _MSC_VER >= 1926)
    static constexpr source_place caller(const char* f = __builtin_FILE(), int l = __builtin_LINE()) noexcept {
        return source_place{f, l};
    }
#else
    static constexpr source_place caller() noexcept { return source_place{}; }
#endif
};

/// The place of the expression it is written in.
#define MEMDIAG_HERE (::memdiag::source_place{__FILE__, __LINE__})

/// Everything known about a breach; handed to callbacks and formatted in reports.
struct breach_info {
    limit_kind which = limit_kind::bytes;
    std::uint64_t limit = 0;            ///< the limit crossed
    std::uint64_t attempted = 0;        ///< the figure the allocation would have made it
    std::size_t allocation_size = 0;    ///< size of the allocation that crossed it (0 at scope end)
    const char* budget_name = "budget";
    source_place where;                 ///< where the budget was opened
    bool process_wide = false;
    bool joined_thread = false;         ///< crossed by a thread joined to the budget (budget_join)
    bool at_scope_end = false;          ///< found when the scope ended (live_bytes)
    std::uint64_t live_allocations = 0;  ///< at scope end: allocations still held
    /// Return addresses of the allocation that crossed the limit, its caller
    /// first (memdiag's and operator new's frames removed); depth 0 at scope end.
    std::uintptr_t stack[16] = {};
    std::size_t stack_depth = 0;
};

namespace detail {
/// The symbolizer of breach reports, built once and shared: a report reads
/// the ELF symbol tables once per process, not once per breach. It is never
/// waited for: a thread that finds it in use (another thread's report, or a
/// report from inside a report) builds its own for that report, so holding it
/// cannot deadlock anything, the loader lock included. Never destroyed (breaches
/// may happen during static destruction).
struct breach_symbolizer {
    std::atomic<bool> busy{false};
    bool built = false;
    alignas(symbolizer) unsigned char storage[sizeof(symbolizer)] = {};  // = {}: constant-initialized
};
inline breach_symbolizer g_breach_symbolizer;

/// A lease of the shared breach symbolizer, or a private one when it is busy.
class breach_symbols {
public:
    breach_symbols() {
        breach_symbolizer& g = g_breach_symbolizer;
        if (!g.busy.exchange(true, std::memory_order_acquire)) {
            leased_ = true;
            if (!g.built) {
                new (g.storage) symbolizer();
                g.built = true;
            }
            names_ = reinterpret_cast<symbolizer*>(g.storage);
        } else {
            names_ = new (own_) symbolizer();
        }
    }
    ~breach_symbols() {
        if (leased_) g_breach_symbolizer.busy.store(false, std::memory_order_release);
        else names_->~symbolizer();
    }
    breach_symbols(const breach_symbols&) = delete;
    breach_symbols& operator=(const breach_symbols&) = delete;
    /// The symbolizer to use.
    symbolizer& get() noexcept { return *names_; }

private:
    bool leased_ = false;
    symbolizer* names_ = nullptr;
    alignas(symbolizer) unsigned char own_[sizeof(symbolizer)];
};

/// Appends "  stack:" and one line per frame of b.stack, symbolized in-process.
inline std::size_t format_breach_stack(const breach_info& b, char* buf, std::size_t size) noexcept {
    std::size_t used = 0;
    if (b.stack_depth == 0 || size == 0) return 0;
    internal_section quiet;
    breach_symbols names;
    auto put = [&](const char* text) {
        const int n = std::snprintf(buf + used, size - used, "%s", text);
        if (n > 0) used += static_cast<std::size_t>(n) < size - used ? static_cast<std::size_t>(n) : size - used - 1;
    };
    put("  stack:\n");
    for (std::size_t i = 0; i < b.stack_depth && used + 1 < size; ++i) {
        const internal_string name = names.get().function_name(b.stack[i] - 1);
        char line[200];  // long template names are cut, the line always ends
        std::snprintf(line, sizeof line, "    #%zu 0x%llx %.160s\n", i, static_cast<unsigned long long>(b.stack[i]),
                      name.empty() ? "?" : name.c_str());
        put(line);
    }
    return used;
}

/// Captures the stack of the allocation that crossed a limit, without the
/// hook's frames. Calls out (unwinder, symbol tables, dladdr): never call it
/// with a memdiag lock held.
inline void capture_breach_stack(breach_info& info) noexcept {
    info.stack_depth = 0;
#if MEMDIAG_ENABLED  // disabled builds capture nothing (and g++ saw `frames` never written)
    std::uintptr_t frames[48];
    const std::size_t n = capture_stack(frames, 48, 0);
    internal_section quiet;
    breach_symbols names;
    std::size_t first = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const internal_string name = names.get().function_name(frames[i] - 1);
        if (is_allocation_frame(name.data(), name.size())) first = i + 1;
    }
    if (first >= n) first = 0;  // nothing but hook frames: keep everything
    for (std::size_t i = first; i < n && info.stack_depth < 16; ++i) info.stack[info.stack_depth++] = frames[i];
#endif
}
}  // namespace detail

/// Writes the breach report, one readable block, into buf (never allocates).
/// Returns the number of characters written (truncated to size - 1).
inline std::size_t format_breach(const breach_info& b, char* buf, std::size_t size) noexcept {
    if (size == 0) return 0;
    const unsigned long long over = b.attempted > b.limit ? b.attempted - b.limit : 0;
    const char* name = b.budget_name != nullptr ? b.budget_name : "budget";
    const char* scope = b.process_wide    ? "process"
                        : b.joined_thread ? "a thread joined to the budget's thread (budget_join)"
                                          : "this thread";
    int n;
    if (b.at_scope_end && b.limit == 0) {
        n = std::snprintf(buf, size,
                          "memdiag: leak in '%s': %llu bytes in %llu allocation(s) made inside the scope "
                          "were not freed\n"
                          "  scope:     %s, opened at %s:%d\n",
                          name, static_cast<unsigned long long>(b.attempted),
                          static_cast<unsigned long long>(b.live_allocations),
                          scope, b.where.file ? b.where.file : "?",
                          b.where.line);
    } else if (b.at_scope_end) {
        n = std::snprintf(buf, size,
                          "memdiag: budget '%s' exceeded: %s\n"
                          "  limit:     %llu bytes may stay allocated when the scope ends\n"
                          "  held:      %llu bytes in %llu allocation(s) (%llu over)\n"
                          "  scope:     %s, opened at %s:%d\n",
                          name, to_string(b.which), static_cast<unsigned long long>(b.limit),
                          static_cast<unsigned long long>(b.attempted),
                          static_cast<unsigned long long>(b.live_allocations), over,
                          scope, b.where.file ? b.where.file : "?",
                          b.where.line);
    } else {
        const char* unit = b.which == limit_kind::allocations ? "allocations" : "bytes";
        n = std::snprintf(buf, size,
                          "memdiag: budget '%s' exceeded: %s\n"
                          "  limit:     %llu %s\n"
                          "  attempted: %llu %s (%llu over)\n"
                          "  by:        an allocation of %llu bytes\n"
                          "  scope:     %s, opened at %s:%d\n",
                          name, to_string(b.which), static_cast<unsigned long long>(b.limit), unit,
                          static_cast<unsigned long long>(b.attempted), unit, over,
                          static_cast<unsigned long long>(b.allocation_size),
                          scope, b.where.file ? b.where.file : "?",
                          b.where.line);
    }
    if (n < 0) {
        buf[0] = '\0';
        return 0;
    }
    std::size_t used = static_cast<std::size_t>(n) < size ? static_cast<std::size_t>(n) : size - 1;
    return used + detail::format_breach_stack(b, buf + used, size - used);
}

namespace detail {
/// Set by the budget layer just before it throws budget_exceeded: the object
/// being built is memdiag's own, allocated without charging budgets.
inline thread_local bool t_throwing_budget_exceeded = false;
/// Set when such an object is destroyed: its memory is freed right after (by
/// the C++ runtime, through free when memdiag replaces it); budget_freed does
/// not charge that free to budgets.
inline thread_local bool t_uncharged_free_pending = false;

/// Whether this budget_exceeded is the one memdiag threw; copies are not.
class thrown_by_memdiag {
public:
    thrown_by_memdiag() noexcept : on_(t_throwing_budget_exceeded) { t_throwing_budget_exceeded = false; }
    thrown_by_memdiag(const thrown_by_memdiag&) noexcept {}
    thrown_by_memdiag& operator=(const thrown_by_memdiag&) noexcept { return *this; }
    ~thrown_by_memdiag() {
        // Only when the free will reach the budget layer: memdiag replaces the
        // C functions and the thread has scopes open (otherwise the free takes
        // the fast path and charges nothing anyway).
        if (!on_ || !malloc_hook_installed()) return;
        const thread_state* s = tls_head.state;
        if ((s != nullptr && s->scopes != nullptr) ||
            (g_registry.global_slow.load(std::memory_order_relaxed) & slow_process_scope) != 0)
            t_uncharged_free_pending = true;
    }

private:
    bool on_ = false;
};
}  // namespace detail

/// Thrown by an allocation that would cross a budget with breach_policy::throw_exception.
/// A std::bad_alloc, so code that handles running out of memory handles it too.
/// Exception safety: construction, copies and every accessor are noexcept
/// (the message lives in a fixed buffer).
class budget_exceeded : public std::bad_alloc {
public:
    /// Records the breach and formats the message (no allocation).
    explicit budget_exceeded(const breach_info& info) noexcept : info_(info) {
        format_breach(info_, message_, sizeof message_);
        std::strncpy(name_, info.budget_name ? info.budget_name : "", sizeof name_ - 1);
        info_.budget_name = name_;
    }
    /// The breach report (which limit, the limit, the attempted total, where).
    const char* what() const noexcept override { return message_; }
    /// Everything known about the breach.
    const breach_info& info() const noexcept { return info_; }
    /// The limit crossed.
    limit_kind which() const noexcept { return info_.which; }

private:
    breach_info info_;
    char name_[64] = {};
    char message_[2048] = {};
    detail::thrown_by_memdiag origin_;  // last member: destroyed first
};

/// A breach callback: receives the breach and the context given with it.
using breach_callback = void (*)(const breach_info&, void* context);

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

namespace detail {

/// Counters shared between threads: process-wide budgets, and thread budgets
/// that other threads joined. Allocated beneath the hooks; reference-counted.
struct budget_shared {
    std::atomic<std::uint64_t> allocations{0}, bytes{0}, deallocations{0}, freed{0};
    std::atomic<std::int64_t> live{0};
    std::atomic<std::uint64_t> peak{0};
    std::atomic<int> refs{1};
    std::atomic<bool> closed{false};
    std::atomic<std::uint64_t> joined_breaches{0};  ///< breaches seen on joined threads
    std::atomic<unsigned> over{0};  ///< limits crossed and still over (one bit per limit_kind)
    /// Blocks born in the budget on any of its threads and not freed (leak checks).
    std::atomic<std::int64_t> born_bytes{0}, born_allocations{0};
    struct scope_link* owner = nullptr;  ///< the budget; valid while listed as a process scope
    std::thread::id owner_thread;        ///< the thread that opened the budget (fork drops others')
    budget_shared* next_process = nullptr;
    // The budget's configuration, copied so joined threads never read the budget itself.
    memdiag::limits lim;
    breach_policy policy = breach_policy::throw_exception;
    const char* name = "budget";
    source_place where;
};

/// A budget's state, linked into its thread's chain (or the process list).
struct scope_link {
    scope_link* outer = nullptr;  ///< enclosing scope of the same thread
    memdiag::limits lim;
    breach_policy policy = breach_policy::throw_exception;
    const char* name = "budget";
    source_place where;
    bool process_wide = false;
    bool joined = false;  ///< a budget_join: counts into `shared`, reports through its owner
    /// Limits crossed and still over, one bit per limit_kind: a breach is acted
    /// on once per crossing (scopes with `shared` use shared->over).
    std::atomic<unsigned> over{0};
    std::atomic<std::uint64_t> breaches{0};
    // Thread counters when the scope opened (thread scopes without `shared`).
    std::uint64_t start_allocations = 0, start_deallocations = 0, start_bytes = 0, start_freed = 0;
    std::uint64_t peak_growth = 0;
    /// A leak check (max_live_bytes set): its live figures are the blocks born
    /// in it and not freed, counted here (or in `shared`), not a net balance.
    bool births = false;
    std::int64_t born_bytes = 0, born_allocations = 0;
    budget_shared* shared = nullptr;
};

inline spinlock g_process_scopes_lock;
inline budget_shared* g_process_scopes = nullptr;

/// What this scope has counted so far.
inline allocation_stats scope_figures(const scope_link& l, const thread_state* s) noexcept {
    allocation_stats st;
    if (l.shared != nullptr) {
        const auto r = std::memory_order_relaxed;
        st.allocations = l.shared->allocations.load(r);
        st.deallocations = l.shared->deallocations.load(r);
        st.bytes_allocated = l.shared->bytes.load(r);
        st.bytes_freed = l.shared->freed.load(r);
        st.peak_live_bytes = l.shared->peak.load(r);
    } else if (s != nullptr) {
        st.allocations = s->allocations - l.start_allocations;
        st.deallocations = s->deallocations - l.start_deallocations;
        st.bytes_allocated = s->bytes_allocated - l.start_bytes;
        st.bytes_freed = s->bytes_freed - l.start_freed;
        st.peak_live_bytes = l.peak_growth;
    }
    st.update_live();
    if (l.births) {
        // What the scope allocated and did not free: frees of older blocks do
        // not lower it (they are not the scope's).
        if (l.shared != nullptr) {
            st.live_bytes = l.shared->born_bytes.load(std::memory_order_relaxed);
            st.live_allocations = l.shared->born_allocations.load(std::memory_order_relaxed);
        } else {
            st.live_bytes = l.born_bytes;
            st.live_allocations = l.born_allocations;
        }
    }
    return st;
}

/// The crossing state of a scope's limits: the budget's own when threads share it.
inline std::atomic<unsigned>& crossing_bits(scope_link& l) noexcept {
    return l.shared != nullptr ? l.shared->over : l.over;
}

/// An allocation would go over l's limit info.which. Returns true when that
/// starts a new crossing (counted in breaches(), to be acted on), false when
/// the figure is already over since an earlier allocation that was let through.
/// A refused allocation (throw_exception) leaves the figure under the limit, so
/// each refusal is a crossing of its own. Touches only the scope's counters:
/// safe under the process-scope lock.
inline bool note_crossing(scope_link& l, breach_info& info) noexcept {
    const unsigned bit = 1u << static_cast<unsigned>(info.which);
    const bool refused = l.policy == breach_policy::throw_exception;
    if (!refused && !info.at_scope_end && (crossing_bits(l).fetch_or(bit) & bit) != 0) return false;
    if (l.joined) ++l.shared->joined_breaches;
    else ++l.breaches;
    info.budget_name = l.name;
    info.where = l.where;
    info.process_wide = l.process_wide;
    info.joined_thread = l.joined;
    return true;
}

/// Acts on a breach noted by note_crossing, by the budget's policy. Returns
/// whether the allocation may proceed. Captures the stack, symbolizes, writes
/// reports and calls the callback: it calls out, so it runs with no memdiag
/// lock held (process scopes are noted under their lock and acted on after).
MEMDIAG_COLD inline bool act_on_breach(breach_policy policy, const limits& lim, breach_info& info, bool may_throw) {
    if (!info.at_scope_end) {
        internal_section quiet;
        capture_breach_stack(info);
    }
    auto dump_if_asked = [&] {
        if (!lim.dumps_on_breach()) return;
        auto dump = g_handlers.breach_dump.load(std::memory_order_acquire);
        if (dump == nullptr) return;
        char reason[160];
        std::snprintf(reason, sizeof reason, "budget '%s' exceeded: %s",
                      info.budget_name ? info.budget_name : "budget", to_string(info.which));
        dump(reason);
    };
    if (policy == breach_policy::throw_exception) {
        if (!may_throw || !MEMDIAG_HAS_EXCEPTIONS) {
            // A C function, a nothrow form or a build without exceptions: the
            // caller only sees null. Say which allocation was refused, or the
            // next allocation that can throw gets the blame.
            internal_section quiet;
            char buf[2048];
            std::size_t n = format_breach(info, buf, sizeof buf);
            const char note[] = "  refused:   the allocation returned null (it cannot throw)\n";
            if (n + sizeof note < sizeof buf) {
                std::memcpy(buf + n, note, sizeof note);
                n += sizeof note - 1;
            }
            std::fwrite(buf, 1, n, stderr);
            dump_if_asked();
            return false;
        }
        {
            internal_section quiet;
            dump_if_asked();
        }
#if MEMDIAG_HAS_EXCEPTIONS
        // The exception object comes from malloc and is freed by whoever catches
        // it. Its allocation is counted as a nested event: trackers count it,
        // budgets are not charged (which would breach again, or use up the
        // budget of code that catches and goes on) and fault injection does not
        // fail it. Its free is then not charged to budgets either (see
        // ~budget_exceeded), or an enclosing leak_check would go negative.
        nested_event counted_not_charged;
        t_throwing_budget_exceeded = true;
        throw budget_exceeded(info);
#else
        return false;
#endif
    }
    internal_section quiet;  // reporting must not count, nor recurse into the budget
    switch (policy) {
        case breach_policy::throw_exception:
            return false;  // handled above
        case breach_policy::report: {
            char buf[2048];
            const std::size_t n = format_breach(info, buf, sizeof buf);
            std::fwrite(buf, 1, n, stderr);
            dump_if_asked();
            return true;
        }
        case breach_policy::report_and_abort: {
            char buf[2048];
            const std::size_t n = format_breach(info, buf, sizeof buf);
            std::fwrite(buf, 1, n, stderr);
            dump_if_asked();
            std::fflush(stderr);
            std::abort();
        }
        case breach_policy::callback:
            dump_if_asked();
            if (auto f = lim.callback()) f(info, lim.callback_context());
            return true;
    }
    return true;
}

/// Notes and acts on a breach of a scope of this thread (no lock held).
MEMDIAG_COLD inline bool on_breach(scope_link& l, breach_info& info, bool may_throw) {
    if (!note_crossing(l, info)) return true;  // already over: acted on at the crossing
    return act_on_breach(l.policy, l.lim, info, may_throw);
}

/// A process-scope breach noted under the lock, acted on once it is released.
struct pending_breach {
    breach_info info;
    breach_policy policy = breach_policy::throw_exception;
    memdiag::limits lim;  ///< a copy: the budget may end once the lock is released
};

/// Where check_scope puts the breaches it finds when acting must wait.
struct pending_breaches {
    static constexpr std::size_t capacity = 8;
    pending_breach items[capacity];
    std::size_t count = 0;
    std::uint64_t not_acted = 0;  ///< noted beyond capacity (said on stderr)
    bool refuses = false;         ///< a throw_exception breach: the allocation fails
};

/// Checks one scope's per-allocation limits against an allocation of `size`.
/// With `defer`, breaches are only noted (under the process-scope lock) and
/// queued there; otherwise they are acted on at once.
inline bool check_scope(scope_link& l, const allocation_stats& now, std::size_t size, bool may_throw,
                        pending_breaches* defer = nullptr) {
    // Saturating: a huge request (new of SIZE_MAX - 10) must read as huge, not wrap.
    constexpr std::uint64_t u64_max = ~std::uint64_t{0};
    constexpr std::int64_t i64_max = static_cast<std::int64_t>(u64_max >> 1);
    const std::uint64_t size64 = size;  // 32-bit targets: one width for the comparisons
    const std::uint64_t allocs = now.allocations + 1;
    const std::uint64_t bytes = now.bytes_allocated > u64_max - size64 ? u64_max : now.bytes_allocated + size64;
    const std::int64_t isize =
        size64 > static_cast<std::uint64_t>(i64_max) ? i64_max : static_cast<std::int64_t>(size64);
    const std::int64_t growth = now.live_bytes > i64_max - isize ? i64_max : now.live_bytes + isize;
    const std::uint64_t figures[3] = {allocs, bytes, growth > 0 ? static_cast<std::uint64_t>(growth) : 0};
    const limit_kind kinds[3] = {limit_kind::allocations, limit_kind::bytes, limit_kind::peak_bytes};
    const std::uint64_t limit_of[3] = {l.lim.allocations(), l.lim.bytes(), l.lim.peak_bytes()};
    for (int k = 0; k < 3; ++k) {
        if (figures[k] <= limit_of[k]) continue;
        breach_info info;
        info.allocation_size = size;
        info.which = kinds[k];
        info.limit = limit_of[k];
        info.attempted = figures[k];
        if (defer == nullptr) {
            if (!on_breach(l, info, may_throw)) return false;
            continue;
        }
        if (!note_crossing(l, info)) continue;
        if (defer->count == pending_breaches::capacity) {
            ++defer->not_acted;
        } else {
            pending_breach& p = defer->items[defer->count++];
            p.info = info;
            p.policy = l.policy;
            p.lim = l.lim;
        }
        if (l.policy == breach_policy::throw_exception) {
            defer->refuses = true;
            return false;
        }
    }
    return true;
}

/// Fault injection state of a thread (fail_each_allocation / fail_after_bytes).
struct injection {
    std::uint64_t fail_at = 0;         ///< fail the allocation with this 1-based number (0: none)
    std::uint64_t byte_threshold = ~std::uint64_t{0};  ///< fail every allocation past this many bytes
    std::uint64_t seen = 0, bytes = 0;
    bool fired = false;
};

/// Acts on the process-scope breaches noted under the lock; false when the allocation is refused.
MEMDIAG_COLD inline bool act_on_pending(pending_breaches& found, bool may_throw) {
    if (found.not_acted > 0) {
        internal_section quiet;
        std::fprintf(stderr, "memdiag: %llu more process-budget breach(es) by one allocation, not reported\n",
                     static_cast<unsigned long long>(found.not_acted));
    }
    bool ok = true;
    for (std::size_t i = 0; i < found.count; ++i) {
        pending_breach& p = found.items[i];
        ok = act_on_breach(p.policy, p.lim, p.info, may_throw) && ok;
    }
    return ok && !found.refuses;
}

/// The budget layer's admit handler (see tracker.hpp).
inline bool budget_admit(thread_state* s, tracker_slot&, std::size_t size, bool may_throw) {
    if (s != nullptr) {
        if (auto* inj = static_cast<injection*>(s->injection)) {
            ++inj->seen;
            inj->bytes += size;
            if (inj->seen == inj->fail_at || inj->bytes > inj->byte_threshold) {
                inj->fired = true;
                return false;
            }
        }
        for (scope_link* l = s->scopes; l != nullptr; l = l->outer) {
            if (!l->lim.any_per_allocation()) continue;
            if (l->joined && l->shared->closed.load(std::memory_order_relaxed)) continue;  // budget ended
            if (!check_scope(*l, scope_figures(*l, s), size, may_throw)) return false;
        }
    }
    if (g_registry.global_slow.load(std::memory_order_relaxed) & slow_process_scope) {
        // Only counters are read and written under the lock; the breaches found
        // are acted on (stack, symbols, report, callback, throw) after releasing
        // it: a symbolizer or callback waiting for the loader lock while another
        // thread's dlclose waits for this one would deadlock.
        pending_breaches found;
        {
            spin_guard g(g_process_scopes_lock);
            for (budget_shared* p = g_process_scopes; p != nullptr && !found.refuses; p = p->next_process) {
                scope_link& l = *p->owner;
                if (l.lim.any_per_allocation()) check_scope(l, scope_figures(l, s), size, may_throw, &found);
            }
        }
        if (found.count > 0 || found.not_acted > 0) return act_on_pending(found, may_throw);
    }
    return true;
}

/// Charges an event to a budget whose counters threads share.
inline void charge_shared(budget_shared& b, std::size_t size, bool allocation) noexcept {
    const auto r = std::memory_order_relaxed;
    const auto n = static_cast<std::int64_t>(size);
    if (allocation) {
        b.allocations.fetch_add(1, r);
        b.bytes.fetch_add(size, r);
        const std::int64_t now = b.live.fetch_add(n, r) + n;
        if (now > 0) atomic_max(b.peak, static_cast<std::uint64_t>(now));
    } else {
        b.deallocations.fetch_add(1, r);
        b.freed.fetch_add(size, r);
        b.live.fetch_sub(n, r);
    }
}

/// After a free: a max_peak_bytes crossing ends once live growth is back under the limit.
inline void end_peak_crossing(std::atomic<unsigned>& over, std::int64_t growth, std::uint64_t limit) noexcept {
    constexpr unsigned bit = 1u << static_cast<unsigned>(limit_kind::peak_bytes);
    if ((over.load(std::memory_order_relaxed) & bit) != 0 && (growth <= 0 || static_cast<std::uint64_t>(growth) <= limit))
        over.fetch_and(~bit);
}

/// Adds (or takes back) a block in the born figures of leak-checking scope l.
inline void count_birth(scope_link& l, std::int64_t bytes, std::int64_t blocks) noexcept {
    if (l.shared != nullptr) {
        if (l.shared->closed.load(std::memory_order_relaxed)) return;
        l.shared->born_bytes.fetch_add(bytes, std::memory_order_relaxed);
        l.shared->born_allocations.fetch_add(blocks, std::memory_order_relaxed);
    } else {
        l.born_bytes += bytes;
        l.born_allocations += blocks;
    }
}

/// Says once per process that a leak check lost track of a block.
MEMDIAG_COLD inline void say_birth_lost() noexcept {
    static std::atomic<bool> said{false};
    if (said.exchange(true)) return;
    internal_section quiet;
    static const char msg[] =
        "memdiag: warning: out of memory for leak-check bookkeeping: a block allocated inside a leak check "
        "will be reported as leaked even when it is freed\n";
    std::fwrite(msg, 1, sizeof msg - 1, stderr);
}

/// Leak-checking scopes are open on s's thread: note the block born at p, or
/// take a freed block out of the figures of the scopes it was born in.
inline void count_births(thread_state* s, void* p, std::size_t size, bool allocation) noexcept {
    const auto n = static_cast<std::int64_t>(size);
    if (allocation) {
        // The birth tag: s->allocations already counts this allocation, and a
        // scope opened when it was N owns the blocks tagged above N.
        if (!s->births.insert(p, size, s->allocations)) say_birth_lost();
        for (scope_link* l = s->scopes; l != nullptr; l = l->outer)
            if (l->births) count_birth(*l, n, 1);
        return;
    }
    birth_entry e;
    if (!s->births.take(p, e)) return;  // born before every open leak check, or on another thread
    const auto born = static_cast<std::int64_t>(e.size);
    for (scope_link* l = s->scopes; l != nullptr; l = l->outer)
        if (l->births && e.birth > l->start_allocations) count_birth(*l, -born, -1);
}

inline void budget_count(thread_state* s, void* p, std::size_t size, bool allocation) noexcept {
    if (s != nullptr && s->birth_scopes > 0) count_births(s, p, size, allocation);
    if (!allocation && t_uncharged_free_pending) {
        // The free of a budget_exceeded memdiag threw, whose allocation no
        // budget was charged for: thread scopes leave it out of their figures,
        // shared and process scopes do not count it.
        t_uncharged_free_pending = false;
        if (s != nullptr) {
            for (scope_link* l = s->scopes; l != nullptr; l = l->outer) {
                ++l->start_deallocations;
                l->start_freed += size;
            }
        }
        return;
    }
    if (s != nullptr) {
        for (scope_link* l = s->scopes; l != nullptr; l = l->outer) {
            if (l->shared != nullptr) {
                if (!l->shared->closed.load(std::memory_order_relaxed)) {
                    charge_shared(*l->shared, size, allocation);
                    if (!allocation) end_peak_crossing(l->shared->over, l->shared->live.load(), l->lim.peak_bytes());
                }
                continue;
            }
            if (!allocation && l->over.load(std::memory_order_relaxed) == 0) continue;  // the common free
            const std::int64_t growth = static_cast<std::int64_t>(s->bytes_allocated - s->bytes_freed) -
                                        static_cast<std::int64_t>(l->start_bytes - l->start_freed);
            if (!allocation) end_peak_crossing(l->over, growth, l->lim.peak_bytes());
            else if (growth > 0 && static_cast<std::uint64_t>(growth) > l->peak_growth)
                l->peak_growth = static_cast<std::uint64_t>(growth);
        }
    }
    if (g_registry.global_slow.load(std::memory_order_relaxed) & slow_process_scope) {
        spin_guard g(g_process_scopes_lock);
        for (budget_shared* b = g_process_scopes; b != nullptr; b = b->next_process) {
            charge_shared(*b, size, allocation);
            if (!allocation) end_peak_crossing(b->over, b->live.load(), b->lim.peak_bytes());
        }
    }
}

inline void budget_allocated(thread_state* s, void* p, std::size_t size) { budget_count(s, p, size, true); }
inline void budget_freed(thread_state* s, void* p, std::size_t size) { budget_count(s, p, size, false); }

/// Fork child, process-scope lock held: budgets opened by threads that do not
/// exist in the child end there. Their process-wide budgets leave the list
/// (their scope_link lived on a stack the child may reuse, and they must not
/// charge or throw in the child); the calling thread's joins of them close.
inline void budget_fork_child() noexcept {
    const std::thread::id self = std::this_thread::get_id();
    for (budget_shared** p = &g_process_scopes; *p != nullptr;) {
        budget_shared* b = *p;
        if (b->owner_thread != self) {
            // Its owner's reference is never dropped (that scope never ends in
            // the child): the few bytes stay, so a stale budget_handle or the
            // budget object on the dead thread's stack still reads valid memory.
            *p = b->next_process;
            b->owner = nullptr;
            b->closed.store(true);
        } else {
            p = &b->next_process;
        }
    }
    if (g_process_scopes == nullptr) g_registry.global_slow.fetch_and(~slow_process_scope);
    if (thread_state* s = tls_head.state) {
        for (scope_link* l = s->scopes; l != nullptr; l = l->outer)
            if (l->joined && l->shared != nullptr && l->shared->owner_thread != self) l->shared->closed.store(true);
    }
    g_process_scopes_lock.unlock();
}

/// The budget layer's part in fork handling (thread_state.hpp).
inline constexpr fork_participant budget_fork_participant{
    +[]() noexcept { g_process_scopes_lock.lock(); }, +[]() noexcept { g_process_scopes_lock.unlock(); },
    &budget_fork_child};

inline void ensure_budget_fork_handlers() noexcept {
    join_fork_handling(fork_layer_budget, &budget_fork_participant);
}

/// Installs the budget handlers into the event path (idempotent).
inline void install_budget_handlers() noexcept {
    ensure_budget_fork_handlers();
    g_handlers.budget_admit.store(&budget_admit, std::memory_order_release);
    g_handlers.budget_allocated.store(&budget_allocated, std::memory_order_release);
    g_handlers.budget_freed.store(&budget_freed, std::memory_order_release);
}

inline budget_shared* new_shared(scope_link* owner) noexcept {
    void* mem = internal_malloc(sizeof(budget_shared));
    if (mem == nullptr) return nullptr;
    auto* b = new (mem) budget_shared();
    b->owner = owner;
    b->owner_thread = std::this_thread::get_id();
    b->lim = owner->lim;
    b->policy = owner->policy;
    b->name = owner->name;
    b->where = owner->where;
    return b;
}

inline void release_shared(budget_shared* b) noexcept {
    if (b != nullptr && b->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        b->~budget_shared();
        internal_free(b);
    }
}

/// Pushes a scope onto the calling thread's chain.
inline thread_state* push_scope(scope_link& l) noexcept {
    thread_state* s = current_thread_state();
    if (s == nullptr) return nullptr;
    l.start_allocations = s->allocations;
    l.start_deallocations = s->deallocations;
    l.start_bytes = s->bytes_allocated;
    l.start_freed = s->bytes_freed;
    l.outer = s->scopes;
    l.births = l.lim.live_bytes() != limits::unlimited;
    if (l.births) ++s->birth_scopes;
    s->scopes = &l;
    arm_thread();
    return s;
}

inline void pop_scope(thread_state* s, scope_link& l) noexcept {
    if (s == nullptr) return;
    // Scopes end in reverse order of opening; unlink wherever it is, to stay safe
    // when a user ends them out of order (e.g. with std::optional).
    for (scope_link** p = &s->scopes; *p != nullptr; p = &(*p)->outer) {
        if (*p == &l) {
            *p = l.outer;
            // The last leak check ended: no later scope can own the blocks noted.
            if (l.births && --s->birth_scopes == 0) s->births.clear();
            disarm_thread();
            scope_closed(s);  // the thread may have exited while this scope was open
            return;
        }
    }
}

}  // namespace detail

class budget_handle;

/// An RAII memory budget. While it lives, allocations of its scope (this thread,
/// or the process) are counted against its limits and a breach is handled by its
/// policy. At its end, max_live_bytes is checked against what the scope still
/// holds.
///
/// The destructor may throw budget_exceeded (breach_policy::throw_exception,
/// max_live_bytes crossed, no exception in flight); to end the scope without
/// that, call finish() and handle the result.
///
/// Exception safety: construction, used(), breaches(), budget_limits() and
/// handle() never throw (when memdiag cannot get memory for its counters, a
/// process-wide budget or a handle counts nothing). finish() and the destructor
/// end the scope first and then apply the policy, so when they throw the scope
/// is already closed; the destructor never throws while an exception is in
/// flight. Allocations refused by the budget are not counted (strong).
class scoped_budget {
public:
    /// Opens a budget with the given limits and policy, counting this thread's
    /// allocations (or the process's, with scope_kind::process).
    explicit scoped_budget(const limits& lim, breach_policy policy = breach_policy::throw_exception,
                           scope_kind kind = scope_kind::this_thread, const char* name = "budget",
                           source_place where = source_place::caller()) noexcept {
#if MEMDIAG_ENABLED
        link_.lim = lim;
        link_.policy = policy;
        link_.name = name != nullptr ? name : "budget";
        link_.where = where;
        link_.process_wide = kind == scope_kind::process;
        (void)detail::verify_global_hook(detail::hook_linked());  // once: a bypassed hook is said, not silent
        detail::install_budget_handlers();
        if (link_.process_wide) {
            (void)detail::current_thread_state();  // registered: fork tells its scopes from others'

            link_.shared = detail::new_shared(&link_);
            if (link_.shared != nullptr) {
                detail::spin_guard g(detail::g_process_scopes_lock);
                link_.shared->next_process = detail::g_process_scopes;
                detail::g_process_scopes = link_.shared;
                detail::g_registry.global_slow.fetch_or(detail::slow_process_scope);
            }
        } else {
            state_ = detail::push_scope(link_);
        }
#else
        (void)lim, (void)policy, (void)kind, (void)name, (void)where;
#endif
    }

    /// Opens a this-thread budget named `name`, opened at `where` (MEMDIAG_HERE).
    scoped_budget(const limits& lim, const char* name, source_place where = source_place::caller(),
                  breach_policy policy = breach_policy::throw_exception) noexcept
        : scoped_budget(lim, policy, scope_kind::this_thread, name, where) {}

    ~scoped_budget() noexcept(false) {
        if (finished_) return;
        const bool unwinding = std::uncaught_exceptions() > unwinding_at_start_;
        end(!unwinding);
    }
    scoped_budget(const scoped_budget&) = delete;
    scoped_budget& operator=(const scoped_budget&) = delete;

    /// What the scope has counted so far (allocations, bytes, live growth, peak
    /// growth); after it ended, what it had counted when it ended.
    allocation_stats used() const noexcept {
#if MEMDIAG_ENABLED
        if (finished_) return final_;
        return detail::scope_figures(link_, state_);
#else
        return {};
#endif
    }
    /// How many times a limit was crossed, on this thread and on joined ones
    /// (every policy; see breach_policy for what one crossing is): a loop of
    /// allocations past max_allocations is one, each allocation refused by
    /// throw_exception is one, max_live_bytes held at scope end is one.
    std::uint64_t breaches() const noexcept {
        return link_.breaches + (link_.shared != nullptr ? link_.shared->joined_breaches.load() : 0);
    }
    /// The limits this budget enforces.
    const limits& budget_limits() const noexcept { return link_.lim; }

    /// Ends the scope now: checks max_live_bytes, applies the policy (a
    /// throw_exception policy throws from here). Later calls do nothing.
    void finish() { end(true); }

    /// A handle that charges another thread's allocations to this budget while
    /// a budget_join holding it lives on that thread (see budget_join).
    budget_handle handle();

private:
    friend class budget_handle;
    void end(bool may_throw) {
        if (finished_) return;
#if MEMDIAG_ENABLED
        const allocation_stats u = used();
        final_ = u;
        finished_ = true;
        if (link_.process_wide) {
            if (link_.shared != nullptr) {
                detail::spin_guard g(detail::g_process_scopes_lock);
                for (detail::budget_shared** p = &detail::g_process_scopes; *p != nullptr; p = &(*p)->next_process) {
                    if (*p == link_.shared) {
                        *p = link_.shared->next_process;
                        break;
                    }
                }
                if (detail::g_process_scopes == nullptr)
                    detail::g_registry.global_slow.fetch_and(~detail::slow_process_scope);
            }
        } else {
            detail::pop_scope(state_, link_);
            state_ = nullptr;  // popping the last scope of an exited thread frees its state
        }
        if (link_.shared != nullptr) {
            link_.breaches += link_.shared->joined_breaches.load();
            link_.shared->closed.store(true);
            detail::release_shared(link_.shared);
            link_.shared = nullptr;
        }
        if (u.live_bytes > 0 && static_cast<std::uint64_t>(u.live_bytes) > link_.lim.live_bytes()) {
            breach_info info;
            info.which = limit_kind::live_bytes;
            info.limit = link_.lim.live_bytes();
            info.attempted = static_cast<std::uint64_t>(u.live_bytes);
            info.at_scope_end = true;
            info.live_allocations = u.live_allocations > 0 ? static_cast<std::uint64_t>(u.live_allocations) : 0;
            detail::on_breach(link_, info, may_throw);
        }
#else
        finished_ = true;
        (void)may_throw;
#endif
    }

    detail::scope_link link_;
    [[maybe_unused]] detail::thread_state* state_ = nullptr;  // unused under MEMDIAG_DISABLE
    allocation_stats final_;  ///< figures when the scope ended
    bool finished_ = false;
    int unwinding_at_start_ = std::uncaught_exceptions();
};

/// Lets another thread's allocations count against a scoped_budget. Obtain it
/// with scoped_budget::handle(), pass it (by value) into the thread or task, and
/// hold a budget_join there. A handle may outlive its budget: once the budget
/// has ended, the handle is inert and joining it does nothing.
/// Exception safety: every operation is noexcept (budget_join too).
class budget_handle {
public:
    budget_handle() noexcept = default;
    budget_handle(const budget_handle& o) noexcept : shared_(o.shared_) { retain(); }
    budget_handle& operator=(const budget_handle& o) noexcept {
        if (this != &o) {
            detail::release_shared(shared_);
            shared_ = o.shared_;
            retain();
        }
        return *this;
    }
    ~budget_handle() { detail::release_shared(shared_); }
    /// True when it refers to a budget that has not ended.
    bool active() const noexcept { return shared_ != nullptr && !shared_->closed.load(); }

private:
    friend class scoped_budget;
    friend class budget_join;
    explicit budget_handle(detail::budget_shared* s) noexcept : shared_(s) { retain(); }
    void retain() noexcept {
        if (shared_ != nullptr) shared_->refs.fetch_add(1, std::memory_order_relaxed);
    }
    detail::budget_shared* shared_ = nullptr;
};

inline budget_handle scoped_budget::handle() {
#if MEMDIAG_ENABLED
    if (link_.process_wide || finished_) return budget_handle(link_.shared);
    if (link_.shared == nullptr) {
        // From now on this thread counts into shared counters too, starting from
        // what it has counted so far.
        const allocation_stats so_far = used();
        link_.shared = detail::new_shared(&link_);
        if (link_.shared == nullptr) return budget_handle();
        link_.shared->allocations.store(so_far.allocations);
        link_.shared->deallocations.store(so_far.deallocations);
        link_.shared->bytes.store(so_far.bytes_allocated);
        link_.shared->freed.store(so_far.bytes_freed);
        // Net growth (a leak check's used() gives its born figures instead).
        link_.shared->live.store(static_cast<std::int64_t>(so_far.bytes_allocated - so_far.bytes_freed));
        link_.shared->peak.store(so_far.peak_live_bytes);
        link_.shared->born_bytes.store(link_.born_bytes);
        link_.shared->born_allocations.store(link_.born_allocations);
    }
    return budget_handle(link_.shared);
#else
    return budget_handle();
#endif
}

/// Joins the calling thread to a budget for as long as it lives: its
/// allocations count against that budget (and breach it, by its policy).
/// On a thread that already counts into that budget (its own thread, or a
/// join already held) it does nothing: allocations count once.
class budget_join {
public:
    /// Joins h's budget; a default or ended handle joins nothing.
    explicit budget_join(const budget_handle& h) noexcept : handle_(h) {
#if MEMDIAG_ENABLED
        if (!handle_.active()) return;
        // Already counted here (the budget's own thread, or joined twice, e.g.
        // a task pool running the task inline): joining again would count
        // every allocation twice.
        if (detail::thread_state* s = detail::current_thread_state()) {
            for (const detail::scope_link* l = s->scopes; l != nullptr; l = l->outer)
                if (l->shared == handle_.shared_) return;
        }
        const detail::budget_shared& shared = *handle_.shared_;
        link_.joined = true;
        link_.shared = handle_.shared_;
        link_.lim = shared.lim;
        link_.policy = shared.policy;
        link_.name = shared.name;
        link_.where = shared.where;
        state_ = detail::push_scope(link_);
#endif
    }
    ~budget_join() {
#if MEMDIAG_ENABLED
        detail::pop_scope(state_, link_);
#endif
    }
    budget_join(const budget_join&) = delete;
    budget_join& operator=(const budget_join&) = delete;

private:
    budget_handle handle_;
    detail::scope_link link_;
    [[maybe_unused]] detail::thread_state* state_ = nullptr;  // unused under MEMDIAG_DISABLE
};

/// Runs f() and returns what it allocated on this thread: allocations,
/// deallocations, bytes, live growth and peak growth.
/// Exception safety: what f throws propagates after the measurement scope
/// has ended; memdiag adds no exception of its own.
template <class F>
allocation_stats measure(F&& f) {
    scoped_budget scope{limits{}, "measure"};
    std::forward<F>(f)();
    return scope.used();
}

/// Average allocations per call of f over `runs` calls, after one warm-up call
/// (like Go's testing.AllocsPerRun), counting only the calling thread, so
/// background threads do not disturb it. Returns 0 when runs is 0.
template <class F>
double allocs_per_run(std::size_t runs, F&& f) {
    f();  // warm-up: first-time initialization is not the steady state
    if (runs == 0) return 0.0;
    scoped_budget scope{limits{}, "allocs_per_run"};
    for (std::size_t i = 0; i < runs; ++i) f();
    return static_cast<double>(scope.used().allocations) / static_cast<double>(runs);
}

/// A check at scope end that nothing allocated inside was left allocated.
/// With breach_policy::report (the default) it prints what leaked; with
/// throw_exception its destructor (or finish()) throws budget_exceeded.
/// A leak is a block allocated inside the scope (this thread, or threads
/// joined to it) and not freed when it ends; freeing memory allocated before
/// the scope neither hides a leak nor makes the figures negative (see
/// limits::max_live_bytes). Cost: while a leak_check is open, each allocation
/// and free of its thread also updates a per-thread table of live blocks.
/// Exception safety: as scoped_budget (construction and used() never throw;
/// the destructor does not throw while an exception is in flight).
class leak_check {
public:
    /// Starts watching this thread's allocations.
    explicit leak_check(breach_policy policy = breach_policy::report, const char* name = "leak_check",
                        source_place where = source_place::caller()) noexcept
        : scope_(limits{}.max_live_bytes(0), policy, scope_kind::this_thread, name, where) {}
    /// Bytes and allocations leaked so far: live_bytes and live_allocations
    /// are the blocks allocated inside the scope and still held (never negative);
    /// the other figures count every event of the scope.
    allocation_stats used() const noexcept { return scope_.used(); }
    /// True when something is still held.
    bool leaking() const noexcept { return used().live_bytes > 0; }
    /// Ends the check now (throws with throw_exception if something leaked).
    void finish() { scope_.finish(); }

private:
    scoped_budget scope_;
};

/// Outcome of a fault-injection run.
struct injection_result {
    std::size_t attempts = 0;           ///< runs made, the final successful one included
    std::size_t injected_failures = 0;  ///< runs that ended in an injected std::bad_alloc
    bool completed = false;             ///< a run finished without an injected failure
    std::size_t leaking_attempt = 0;    ///< first failed run (1-based) that left memory allocated; 0: none
    std::int64_t leaked_bytes = 0;      ///< what that run left allocated
    /// Completed, and no failed run leaked.
    bool ok() const noexcept { return completed && leaking_attempt == 0; }
};

namespace detail {
template <class F, class Check>
injection_result run_with_injection(F& f, Check& after_failure, std::uint64_t fail_at, std::uint64_t byte_threshold,
                                    injection_result& r) {
    injection inj;
    inj.fail_at = fail_at;
    inj.byte_threshold = byte_threshold;
    thread_state* s = current_thread_state();
    if (s == nullptr) return r;
    install_budget_handlers();
    ++r.attempts;
    bool failed = false;
    allocation_stats used;
    {
        scoped_budget scope{limits{}, "fault_injection"};
        // Restores the thread however the run ends: `inj` dies with this frame,
        // also when f throws something other than std::bad_alloc.
        struct armed_injection {
            thread_state* s;
            void* previous;
            armed_injection(thread_state* st, injection* i) noexcept : s(st), previous(st->injection) {
                s->injection = i;
                arm_thread();
            }
            ~armed_injection() {
                s->injection = previous;
                disarm_thread();
            }
            armed_injection(const armed_injection&) = delete;
            armed_injection& operator=(const armed_injection&) = delete;
        };
        {
            armed_injection armed{s, &inj};
#if MEMDIAG_HAS_EXCEPTIONS
            try {
                f();
            } catch (const std::bad_alloc&) {
                if (!inj.fired) throw;  // a real failure, not ours
                failed = true;
            }
#else
            f();
            failed = inj.fired;
#endif
        }
        used = scope.used();
    }
    if (failed) {
        ++r.injected_failures;
        if (used.live_bytes > 0 && r.leaking_attempt == 0) {
            r.leaking_attempt = r.attempts;
            r.leaked_bytes = used.live_bytes;
        }
        after_failure();
    } else {
        r.completed = true;
    }
    return r;
}
}  // namespace detail

/// Exception-safety test driver: runs f again and again, making its 1st, then
/// 2nd, 3rd ... allocation throw std::bad_alloc, through every path memdiag
/// sees, until a run completes without an injected failure. After each failed
/// run it calls after_failure() (check your invariants there) and checks that
/// the run left nothing allocated. `max_runs` bounds the work.
///
/// Exception safety: exceptions from f other than the injected std::bad_alloc
/// (a real std::bad_alloc included), and any from after_failure, propagate;
/// the thread's injection state and scopes are restored before they leave, so
/// later allocations behave normally. Without exceptions, a run counts as
/// failed when an injected allocation failed in it (f sees null or aborts,
/// depending on the allocation form).
template <class F, class Check>
injection_result fail_each_allocation(F&& f, Check&& after_failure, std::size_t max_runs = 100000) {
    injection_result r;
    for (std::uint64_t n = 1; n <= max_runs && !r.completed; ++n)
        detail::run_with_injection(f, after_failure, n, ~std::uint64_t{0}, r);
    return r;
}

/// Runs f once, making every allocation fail once more than `byte_threshold`
/// bytes have been allocated in the run; after a failure calls after_failure().
template <class F, class Check>
injection_result fail_after_bytes(std::uint64_t byte_threshold, F&& f, Check&& after_failure) {
    injection_result r;
    detail::run_with_injection(f, after_failure, 0, byte_threshold, r);
    return r;
}

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
