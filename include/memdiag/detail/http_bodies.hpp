// memdiag/detail/http_bodies.hpp - what the pprof endpoint (http.hpp) sends:
// heap profiles (whole or as a delta between two snapshots), the flame graph
// page and the stats JSON. Called on the server thread inside an
// internal_section, so nothing here is counted, sampled or charged to a budget.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "../heap_profile.hpp"
#include "heap_snapshot.hpp"
#include "../snapshot/flamegraph.hpp"
#include "../snapshot/pprof.hpp"
#include "../stats.hpp"
#include "../tracker.hpp"
#include "internal_alloc.hpp"
#include "internal_vector.hpp"

namespace memdiag {
namespace detail {
namespace http {

/// profile.proto fields the snapshot encoder leaves out (google/pprof profile.proto).
enum : std::uint32_t { profile_duration_nanos = 10, profile_default_sample_type = 14 };

/// Index of "alloc_space" in the string table encode_profile_proto writes: it
/// interns "", "bytes", "alloc_objects", "count", "alloc_space" first, in that
/// order (test_http checks go tool pprof then defaults to alloc_space).
inline constexpr std::uint32_t alloc_space_string = 4;

/// A heap snapshot's samples with their own copy of the frames: the start of a
/// delta profile, kept while its window runs.
struct profile_copy {
    internal_vector<std::uintptr_t> frames;
    internal_vector<snapshot::heap_sample> samples;  ///< stack offsets into frames (as integers) until used
    internal_vector<std::uint64_t> hashes;           ///< per sample, of its frames
    std::uint64_t interval = 0;
    std::uint64_t samples_recorded = 0;  ///< heap_profile_stats::samples then: a restart shows as a drop
    std::int64_t time_nanos = 0;
};

inline std::uint64_t stack_hash(const std::uintptr_t* f, std::size_t n) noexcept {
    return heapprof::frames_hash(f, n);
}

/// Copies the current heap profile's samples. False before any start().
inline bool copy_profile(profile_copy& out) {
    heapprof::snapshot_data snap;
    if (!heapprof::take_snapshot(snap)) return false;
    out.frames.clear();
    out.samples.clear();
    out.hashes.clear();
    for (std::size_t i = 0; i < snap.samples.size(); ++i) {
        snapshot::heap_sample s = snap.samples[i];
        const std::size_t at = out.frames.size();
        out.frames.insert(out.frames.end(), s.stack, s.stack + s.depth);
        out.hashes.push_back(stack_hash(s.stack, s.depth));
        s.stack = reinterpret_cast<const std::uintptr_t*>(at);  // an offset until the frames stop moving
        out.samples.push_back(s);
    }
    for (snapshot::heap_sample& s : out.samples)
        s.stack = out.frames.data() + reinterpret_cast<std::uintptr_t>(s.stack);
    out.interval = snap.stats.sample_interval;
    out.samples_recorded = snap.stats.samples;
    out.time_nanos = snap.time_nanos;
    return true;
}

/// Subtracts base from samples (matched by stack), as Go's delta profiles do
/// for every value: allocations made in the window, and the change of what is
/// in use. Samples left all zero are dropped.
inline void subtract(internal_vector<snapshot::heap_sample>& samples, const profile_copy& base) {
    std::size_t cap = 16;
    while (cap < 2 * base.samples.size() + 2) cap <<= 1;
    internal_vector<std::uint32_t> slots(cap, 0);  // base index + 1
    for (std::size_t i = 0; i < base.samples.size(); ++i) {
        std::size_t k = static_cast<std::size_t>(base.hashes[i]) & (cap - 1);
        while (slots[k] != 0) k = (k + 1) & (cap - 1);
        slots[k] = static_cast<std::uint32_t>(i + 1);
    }
    std::size_t kept = 0;
    for (std::size_t i = 0; i < samples.size(); ++i) {
        snapshot::heap_sample s = samples[i];
        const std::uint64_t h = stack_hash(s.stack, s.depth);
        for (std::size_t k = static_cast<std::size_t>(h) & (cap - 1); slots[k] != 0; k = (k + 1) & (cap - 1)) {
            const std::size_t b = slots[k] - 1;
            const snapshot::heap_sample& o = base.samples[b];
            if (base.hashes[b] != h || o.depth != s.depth ||
                (s.depth != 0 && std::memcmp(o.stack, s.stack, s.depth * sizeof(std::uintptr_t)) != 0))
                continue;
            s.alloc_objects -= o.alloc_objects;
            s.alloc_bytes -= o.alloc_bytes;
            s.inuse_objects -= o.inuse_objects;
            s.inuse_bytes -= o.inuse_bytes;
            break;
        }
        if (s.alloc_objects != 0 || s.alloc_bytes != 0 || s.inuse_objects != 0 || s.inuse_bytes != 0)
            samples[kept++] = s;
    }
    samples.resize(kept);
}

/// Outcome of building a profile body.
enum class body_status { ok, not_started, restarted };

/// The current heap profile, gzipped pprof, appended to out. `allocs` makes
/// alloc_space the default sample type (/debug/pprof/allocs); with `base` the
/// profile is the delta since base was copied.
inline body_status heap_profile_body(internal_vector<unsigned char>& out, bool allocs, const profile_copy* base) {
    heapprof::snapshot_data snap;
    if (!heapprof::take_snapshot(snap)) return body_status::not_started;
    if (base != nullptr) {
        if (snap.stats.sample_interval != base->interval || snap.stats.samples < base->samples_recorded)
            return body_status::restarted;
        subtract(snap.samples, *base);
    }
    internal_vector<unsigned char> raw;
    snapshot::encode_profile_proto(snap.view(), raw, snap.modules, &snap.names);
    {
        proto_writer w(raw);  // trims raw to what was written when it goes
        if (allocs) w.field_uint(profile_default_sample_type, alloc_space_string);
        if (base != nullptr && snap.time_nanos > base->time_nanos)
            w.field_int(profile_duration_nanos, snap.time_nanos - base->time_nanos);
    }
    gzip_compress(raw.data(), raw.size(), out);
    return body_status::ok;
}

/// The flame-graph page of the current heap profile, appended to out.
inline body_status flame_body(internal_string& out) {
    heapprof::snapshot_data snap;
    if (!heapprof::take_snapshot(snap)) return body_status::not_started;
    snapshot::flamegraph_html_with(snap.view(), out, &snap.names, "memdiag heap");
    return body_status::ok;
}

/// Appends `"key": value` (unsigned) with a leading comma unless first.
inline void json_field(internal_string& out, const char* key, unsigned long long v, bool first = false) {
    char buf[96];
    const int n = std::snprintf(buf, sizeof buf, "%s\"%s\": %llu", first ? "" : ", ", key, v);
    out.append(buf, static_cast<std::size_t>(n > 0 ? n : 0));
}

/// Appends `"key": value` (signed).
inline void json_field_signed(internal_string& out, const char* key, long long v) {
    char buf[96];
    const int n = std::snprintf(buf, sizeof buf, ", \"%s\": %lld", key, v);
    out.append(buf, static_cast<std::size_t>(n > 0 ? n : 0));
}

inline void json_stats(internal_string& out, const allocation_stats& s) {
    out += '{';
    json_field(out, "allocations", s.allocations, true);
    json_field(out, "deallocations", s.deallocations);
    json_field(out, "bytes_allocated", s.bytes_allocated);
    json_field(out, "bytes_freed", s.bytes_freed);
    json_field_signed(out, "live_bytes", s.live_bytes);
    json_field_signed(out, "live_allocations", s.live_allocations);
    json_field(out, "peak_live_bytes", s.peak_live_bytes);
    out += '}';
}

/// The server's own figures, shown in the stats JSON.
struct server_figures {
    std::uint64_t requests = 0;      ///< requests answered (any status)
    std::uint64_t rejected = 0;      ///< connections refused because all slots were busy
    std::uint64_t timeouts = 0;      ///< connections closed by a read or write timeout
    std::uint64_t client_errors = 0; ///< 4xx answers
};

/// The stats JSON: the process tracker (global hook), the default tracker,
/// the heap profiler's own figures and the server's.
inline void stats_body(internal_string& out, bool hook_installed, const server_figures& server) {
    out += "{\"process\": ";
    json_stats(out, process_stats());
    out += ", \"global_hook_installed\": ";
    out += hook_installed ? "true" : "false";
    if (!hook_installed)
        out += ", \"process_note\": \"no translation unit defines MEMDIAG_REPLACE_GLOBAL_NEW: process figures stay 0\"";
    out += ", \"default_tracker\": ";
    json_stats(out, default_tracker_stats());
    const heap_profile_stats h = heap_profiler::stats();
    out += ", \"heap_profiler\": {\"running\": ";
    out += h.running ? "true" : "false";
    json_field(out, "sample_interval", h.sample_interval);
    json_field(out, "samples", h.samples);
    json_field(out, "dropped_samples", h.dropped_samples);
    json_field(out, "live_samples", h.live_samples);
    json_field(out, "stacks", h.stacks);
    json_field(out, "max_live_samples", h.max_live_samples);
    json_field(out, "max_stacks", h.max_stacks);
    json_field(out, "table_bytes", h.table_bytes);
    json_field(out, "max_table_bytes", h.max_table_bytes);
    out += "}, \"server\": {";
    json_field(out, "requests", server.requests, true);
    json_field(out, "rejected_connections", server.rejected);
    json_field(out, "timeouts", server.timeouts);
    json_field(out, "client_errors", server.client_errors);
    out += "}}\n";
}

}  // namespace http
}  // namespace detail
}  // namespace memdiag
