// memdiag/detail/budget_impl.hpp - the definitions of breach.hpp's report path:
// the shared breach symbolizer, the breach stack (captured and symbolized) and
// format_breach. Header-only, breach.hpp includes this at its end; with
// MEMDIAG_SEPARATE_IMPLEMENTATION only memdiag/implementation.hpp does
// (config.hpp), which keeps detail/symbols.hpp out of budget.hpp's users.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <new>

#include "../breach.hpp"
#include "../config.hpp"
#include "../stack.hpp"
#include "frame_filter.hpp"
#include "internal_section.hpp"
#include "symbols.hpp"

namespace memdiag {

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

MEMDIAG_IMPL std::size_t format_breach_stack(const breach_info& b, char* buf, std::size_t size) noexcept {
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

MEMDIAG_IMPL void capture_breach_stack(breach_info& info) noexcept {
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

MEMDIAG_IMPL std::size_t format_breach(const breach_info& b, char* buf, std::size_t size) noexcept {
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

}  // namespace memdiag
