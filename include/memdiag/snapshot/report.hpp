// memdiag/snapshot/report.hpp - heap snapshots as text: a terminal report of
// the top allocation sites, and Brendan Gregg's collapsed stacks for flame-graph
// tools (flamegraph.pl, speedscope, inferno).
//
// Figures are scaled exactly as in the pprof file, so the report, the collapsed
// stacks and `go tool pprof` agree. Output strings are internal_strings: making
// a report never allocates through the observed heap.
#pragma once

#include <algorithm>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "../config.hpp"
#include "../detail/format_bytes.hpp"
#include "../detail/internal_alloc.hpp"
#include "../detail/internal_vector.hpp"
#include "../detail/internal_section.hpp"
#include "../detail/symbols.hpp"
#include "pprof.hpp"

namespace memdiag {
namespace snapshot {

namespace report_impl {

/// Names frames once per distinct address: the symbolizer's name, or
/// "module+0xoffset" / "0xaddress" when it has none.
template <class Modules, class Names>
class frame_namer {
public:
    frame_namer(const Modules& modules, Names* names) : modules_(modules), names_(names) {}

    /// Index into strings() of the label for the frame at return address pc.
    std::uint32_t label(std::uintptr_t pc) {
        std::uintptr_t address = pc - 1;  // the call site, as in the pprof file
        std::uint32_t cached = cache_.find(address);
        if (cached != 0) return cached - 1;
        std::uint32_t idx = 0;
        bool named = false;
        if (names_ != nullptr) {
            detail::internal_section guard;
            const auto& name = names_->function_name(address);
            if (name.size() != 0) {
                idx = strings_.intern(name.data(), name.size());
                named = true;
            }
        }
        if (!named) {
            char buf[512];
            long mod = pprof_impl::find_module(modules_, address);
            if (mod >= 0) {
                const auto& m = modules_[static_cast<std::size_t>(mod)];
                const char* path = m.path.data();
                const char* slash = std::strrchr(path, '/');
                std::snprintf(buf, sizeof buf, "%s+0x%llx", slash != nullptr ? slash + 1 : path,
                              static_cast<unsigned long long>(address - m.start + m.file_offset));
            } else {
                std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(address));
            }
            idx = strings_.intern(buf);
        }
        cache_.insert(address, idx + 1);
        return idx;
    }

    /// The label with index idx.
    const char* text(std::uint32_t idx, std::size_t* length) const noexcept {
        return strings_.at(idx, length);
    }

private:
    const Modules& modules_;
    Names* names_;
    pprof_impl::address_map cache_;
    pprof_impl::string_table strings_;
};

/// Appends a printf-formatted piece to s (pieces are short: one figure or header).
#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 2, 3)))
#endif
inline void appendf(detail::internal_string& s, const char* format, ...) {
    char buf[256];
    va_list args;
    va_start(args, format);
    int n = std::vsnprintf(buf, sizeof buf, format, args);
    va_end(args);
    if (n > 0) s.append(buf, static_cast<std::size_t>(n) < sizeof buf ? static_cast<std::size_t>(n) : sizeof buf - 1);
}

/// Appends "<n> B" below 1 KiB, else "<human> (<n> B)" (detail::format_bytes).
inline void append_bytes(detail::internal_string& s, std::int64_t n) {
    const std::uint64_t magnitude = n < 0 ? 0 - static_cast<std::uint64_t>(n) : static_cast<std::uint64_t>(n);
    if (magnitude < 1024) {
        appendf(s, "%lld B", static_cast<long long>(n));
        return;
    }
    const detail::byte_text human = detail::format_bytes(magnitude, detail::byte_style::one_decimal);
    appendf(s, "%s%s (%lld B)", n < 0 ? "-" : "", human.c_str(), static_cast<long long>(n));
}

}  // namespace report_impl

/// Text report with any module range and symbolizer (see encode_profile_proto):
/// totals, then the top `top_n` sites by in-use bytes and by allocated bytes,
/// each with its frames leaf first. A site is a stack of frame names: stacks
/// that differ only in return addresses within the same functions (a loop the
/// compiler unrolled leaves one call site per copy) are one site, as in
/// `go tool pprof -top`.
template <class Modules, class Names>
detail::internal_string text_report_with(const heap_view& view, std::size_t top_n, const Modules& modules,
                                         Names* names) {
    using report_impl::append_bytes;
    using report_impl::appendf;
    detail::internal_string out;
    detail::internal_vector<std::int64_t> values(4 * view.count);
    std::int64_t total[4] = {0, 0, 0, 0};
    for (std::size_t i = 0; i < view.count; ++i) {
        scaled_values(view.samples[i], view.sample_interval, &values[4 * i]);
        for (int k = 0; k < 4; ++k) total[k] += values[4 * i + static_cast<std::size_t>(k)];
    }

    if (view.dropped_samples != 0) {  // first, where it cannot be missed
        out += dropped_notice(view.dropped_samples);
        out += '\n';
    }
    // Sites: the samples grouped by their frames' names.
    report_impl::frame_namer<Modules, Names> namer(modules, names);
    detail::internal_vector<std::uint32_t> labels;
    detail::internal_vector<std::size_t> labels_at(view.count + 1, 0);
    for (std::size_t i = 0; i < view.count; ++i) {
        labels_at[i] = labels.size();
        for (std::size_t f = 0; f < view.samples[i].depth; ++f) labels.push_back(namer.label(view.samples[i].stack[f]));
    }
    labels_at[view.count] = labels.size();
    const auto names_less = [&](std::size_t x, std::size_t y) {
        const std::uint32_t* l = labels.data();
        return std::lexicographical_compare(l + labels_at[x], l + labels_at[x + 1], l + labels_at[y], l + labels_at[y + 1]);
    };
    detail::internal_vector<std::size_t> by_names(view.count);
    for (std::size_t i = 0; i < view.count; ++i) by_names[i] = i;
    std::stable_sort(by_names.begin(), by_names.end(), names_less);
    struct site {
        std::size_t sample;  ///< the first sample with these names: its frames are printed
        std::int64_t v[4];
    };
    detail::internal_vector<site> sites;
    for (std::size_t k = 0; k < by_names.size(); ++k) {
        const std::size_t i = by_names[k];
        if (k == 0 || names_less(by_names[k - 1], i)) sites.push_back(site{i, {0, 0, 0, 0}});
        for (int c = 0; c < 4; ++c) sites.back().v[c] += values[4 * i + static_cast<std::size_t>(c)];
    }

    appendf(out, "memdiag heap snapshot: %zu allocation sites", sites.size());
    if (sites.size() != view.count) appendf(out, " (%zu distinct stacks of return addresses)", view.count);
    out += "\n  in use:    ";
    append_bytes(out, total[3]);
    appendf(out, " in %lld objects\n  allocated: ", static_cast<long long>(total[2]));
    append_bytes(out, total[1]);
    appendf(out, " in %lld objects\n", static_cast<long long>(total[0]));
    if (view.sample_interval <= 1)
        out += "  every allocation recorded (sample interval 1)\n";
    else
        appendf(out, "  sampled every %llu bytes on average; figures are scaled estimates\n",
                static_cast<unsigned long long>(view.sample_interval));

    detail::internal_vector<std::size_t> order;
    const int bytes_col[2] = {3, 1}, objects_col[2] = {2, 0};
    const char* const title[2] = {"in-use bytes", "allocated bytes"};
    const char* const verb[2] = {"in use", "allocated"};
    for (int pass = 0; pass < 2; ++pass) {
        const std::size_t b = static_cast<std::size_t>(bytes_col[pass]);
        const std::size_t o = static_cast<std::size_t>(objects_col[pass]);
        const std::size_t other = static_cast<std::size_t>(bytes_col[1 - pass]);
        order.clear();
        for (std::size_t i = 0; i < sites.size(); ++i)
            if (sites[i].v[b] > 0) order.push_back(i);
        std::sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) {
            if (sites[x].v[b] != sites[y].v[b]) return sites[x].v[b] > sites[y].v[b];
            return sites[x].sample < sites[y].sample;
        });
        std::size_t shown = order.size() < top_n ? order.size() : top_n;
        appendf(out, "\ntop %zu of %zu sites by %s:\n", shown, order.size(), title[pass]);
        for (std::size_t r = 0; r < shown; ++r) {
            const site& st = sites[order[r]];
            const std::int64_t* v = st.v;
            double pct = total[b] > 0 ? 100.0 * static_cast<double>(v[b]) / static_cast<double>(total[b]) : 0.0;
            appendf(out, "%3zu. ", r + 1);
            append_bytes(out, v[b]);
            appendf(out, "  %.1f%%  %lld objects %s; %s ", pct, static_cast<long long>(v[o]), verb[pass],
                    verb[1 - pass]);
            append_bytes(out, v[other]);
            out += '\n';
            for (std::size_t at = labels_at[st.sample]; at < labels_at[st.sample + 1]; ++at) {
                std::size_t len = 0;
                const char* name = namer.text(labels[at], &len);
                out += "       ";
                // One line per frame even if a name holds control characters.
                for (std::size_t k = 0; k < len; ++k)
                    out += static_cast<unsigned char>(name[k]) < 0x20 ? ' ' : name[k];
                out += '\n';
            }
            if (labels_at[st.sample] == labels_at[st.sample + 1]) out += "       (no stack)\n";
        }
    }
    return out;
}

/// Text report: top `top_n` sites by in-use bytes and by allocated bytes,
/// symbolized frames.
inline detail::internal_string text_report(const heap_view& view, std::size_t top_n) {
    detail::internal_section guard;
    detail::module_list modules = detail::list_loaded_modules();
    detail::symbolizer names;
    return text_report_with(view, top_n, modules, &names);
}

/// Collapsed stacks with any module range and symbolizer (see encode_profile_proto).
template <class Modules, class Names>
detail::internal_string collapsed_stacks_with(const heap_view& view, const Modules& modules, Names* names) {
    report_impl::frame_namer<Modules, Names> namer(modules, names);
    // One line per distinct stack of names: different call sites in one function
    // share a name, so their lines are merged (summed) after sorting.
    struct line {
        detail::internal_string stack;
        std::int64_t count;
    };
    detail::internal_vector<line> lines;
    for (std::size_t i = 0; i < view.count; ++i) {
        const heap_sample& s = view.samples[i];
        std::int64_t v[4];
        scaled_values(s, view.sample_interval, v);
        if (v[3] <= 0) continue;
        line l{detail::internal_string(), v[3]};
        for (std::size_t f = s.depth; f-- > 0;) {  // root first
            std::size_t len = 0;
            const char* name = namer.text(namer.label(s.stack[f]), &len);
            if (!l.stack.empty()) l.stack += ';';
            std::size_t at = l.stack.size();
            l.stack.append(name, len);
            // ';' separates frames and a newline ends the line: neither may appear
            // inside a name.
            for (std::size_t k = at; k < l.stack.size(); ++k) {
                char& c = l.stack[k];
                if (c == ';') c = ':';
                else if (c == '\n' || c == '\r' || c == '\t') c = ' ';
            }
            // A name ending in " <digits>" would read as a second count
            // (a differential profile) in flamegraph.pl.
            std::size_t d = l.stack.size();
            while (d > at && l.stack[d - 1] >= '0' && l.stack[d - 1] <= '9') --d;
            if (d < l.stack.size() && d > at && l.stack[d - 1] == ' ') l.stack[d - 1] = '_';
        }
        if (l.stack.empty()) l.stack = "[no stack]";
        lines.push_back(std::move(l));
    }
    std::sort(lines.begin(), lines.end(), [](const line& a, const line& b) { return a.stack < b.stack; });
    std::size_t total = 0;
    for (const line& l : lines) total += l.stack.size() + 22;  // name, space, count, newline
    detail::internal_string out;
    out.reserve(total);
    for (std::size_t i = 0; i < lines.size();) {
        std::int64_t sum = 0;
        std::size_t j = i;
        for (; j < lines.size() && lines[j].stack == lines[i].stack; ++j) sum += lines[j].count;
        out += lines[i].stack;
        report_impl::appendf(out, " %lld\n", static_cast<long long>(sum));
        i = j;
    }
    return out;
}

/// Brendan Gregg collapsed stacks (root first, ';' separated, one integer count),
/// weighted by in-use bytes.
inline detail::internal_string collapsed_stacks(const heap_view& view) {
    detail::internal_section guard;
    detail::module_list modules = detail::list_loaded_modules();
    detail::symbolizer names;
    return collapsed_stacks_with(view, modules, &names);
}

}  // namespace snapshot
}  // namespace memdiag
