// memdiag/snapshot/pprof.hpp - heap snapshots as pprof profiles (profile.proto,
// gzip-compressed), the format `go tool pprof`, the standalone pprof and
// speedscope read.
//
// The profile follows Go's heap profiles: sample types alloc_objects/count,
// alloc_space/bytes, inuse_objects/count, inuse_space/bytes (readers default to
// the last); period type space/bytes with period = sampling interval; values
// scaled to unsampled estimates with Go's formula; a numeric label `bytes` with
// the block size; mappings copied from the executable rows of /proc/self/maps
// with GNU build ids; function names written in-process where known, because
// go tool pprof cannot symbolize C++ binaries itself.
//
// Encoding never allocates through the observed heap (internal containers
// only), so a snapshot can be written right after a budget breach.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "../config.hpp"
#include "../detail/deflate.hpp"
#include "../detail/internal_alloc.hpp"
#include "../detail/internal_vector.hpp"
#include "../detail/internal_section.hpp"
#include "../detail/os/atomic_file.hpp"
#include "../detail/protobuf.hpp"
#include "../detail/symbols.hpp"
#include "../result.hpp"

namespace memdiag {
namespace snapshot {

/// One allocation site (a distinct stack) with its recorded, unscaled figures.
struct heap_sample {
    const std::uintptr_t* stack;  ///< return addresses as captured, leaf first
    std::size_t depth;            ///< number of entries in stack
    std::int64_t alloc_objects;   ///< allocations recorded at this site
    std::int64_t alloc_bytes;     ///< bytes of those allocations
    std::int64_t inuse_objects;   ///< recorded allocations still live
    std::int64_t inuse_bytes;     ///< bytes of those still live
};

/// A snapshot of the heap table: the input of every writer in this namespace.
struct heap_view {
    const heap_sample* samples;    ///< count samples
    std::size_t count;             ///< number of samples
    std::uint64_t sample_interval; ///< mean bytes between samples; 1 = every allocation
    std::int64_t time_nanos;       ///< wall clock of the snapshot (ns since the epoch)
    /// Samples the profiler could not record (its tables were full): when not
    /// 0, every writer says so (a pprof comment, the report's first line).
    std::uint64_t dropped_samples = 0;
};

/// The one-line notice of dropped samples that the writers show (no newline):
/// "memdiag: N samples dropped, tables full (...)". Empty when n is 0.
inline detail::internal_string dropped_notice(std::uint64_t n) {
    detail::internal_string out;
    if (n == 0) return out;
    char line[200];
    const int len = std::snprintf(line, sizeof line,
                                  "memdiag: %llu samples dropped, tables full (raise profile_options::"
                                  "max_table_bytes); the figures undercount",
                                  static_cast<unsigned long long>(n));
    if (len > 0) out.assign(line, static_cast<std::size_t>(len) < sizeof line ? static_cast<std::size_t>(len)
                                                                               : sizeof line - 1);
    return out;
}

/// Objects and bytes of one sample after scaling.
struct scaled_figures {
    std::int64_t objects;  ///< estimated objects
    std::int64_t bytes;    ///< estimated bytes
};

/// Go's scaleHeapSample: turns sampled (count, size) into unbiased estimates for a
/// byte-based Poisson sampler with mean interval `rate`. An allocation of S bytes
/// is sampled with probability 1 - exp(-S/rate), so each recorded one stands for
/// 1 / (1 - exp(-avg/rate)) allocations of the site's average size avg.
inline scaled_figures scale_heap_sample(std::int64_t count, std::int64_t size, std::uint64_t rate) noexcept {
    if (count == 0 || size == 0) return {0, 0};
    if (rate <= 1) return {count, size};
    double avg = static_cast<double>(size) / static_cast<double>(count);
    double scale = 1.0 / (1.0 - std::exp(-avg / static_cast<double>(rate)));
    return {static_cast<std::int64_t>(static_cast<double>(count) * scale),
            static_cast<std::int64_t>(static_cast<double>(size) * scale)};
}

/// The four values of a sample as written to the profile (alloc_objects,
/// alloc_space, inuse_objects, inuse_space), scaled by the view's interval.
inline void scaled_values(const heap_sample& s, std::uint64_t interval, std::int64_t out[4]) noexcept {
    scaled_figures a = scale_heap_sample(s.alloc_objects, s.alloc_bytes, interval);
    scaled_figures u = scale_heap_sample(s.inuse_objects, s.inuse_bytes, interval);
    out[0] = a.objects, out[1] = a.bytes, out[2] = u.objects, out[3] = u.bytes;
}

namespace pprof_impl {

inline std::uint64_t hash_bytes(const char* p, std::size_t n) noexcept {
    std::uint64_t h = 14695981039346656037ull;  // FNV-1a
    for (std::size_t i = 0; i < n; ++i) h = (h ^ static_cast<unsigned char>(p[i])) * 1099511628211ull;
    return h;
}

inline std::uint64_t hash_word(std::uint64_t v) noexcept {
    v ^= v >> 33;
    v *= 0xff51afd7ed558ccdull;
    v ^= v >> 33;
    return v;
}

/// Open-addressing map from an address to a 1-based id (0 marks a free slot).
class address_map {
public:
    /// The id stored for key, or 0.
    std::uint32_t find(std::uintptr_t key) const noexcept {
        if (ids_.empty()) return 0;
        std::size_t mask = ids_.size() - 1;
        for (std::size_t i = hash_word(key) & mask;; i = (i + 1) & mask) {
            if (ids_[i] == 0) return 0;
            if (keys_[i] == key) return ids_[i];
        }
    }
    /// Stores id (nonzero) for a key not yet present.
    void insert(std::uintptr_t key, std::uint32_t id) {
        if (2 * (size_ + 1) > ids_.size()) grow();
        std::size_t mask = ids_.size() - 1;
        std::size_t i = hash_word(key) & mask;
        while (ids_[i] != 0) i = (i + 1) & mask;
        keys_[i] = key;
        ids_[i] = id;
        ++size_;
    }

private:
    void grow() {
        detail::internal_vector<std::uintptr_t> old_keys;
        detail::internal_vector<std::uint32_t> old_ids;
        old_keys.swap(keys_);
        old_ids.swap(ids_);
        std::size_t cap = old_ids.empty() ? 1024 : 2 * old_ids.size();
        keys_.assign(cap, 0);
        ids_.assign(cap, 0);
        size_ = 0;
        for (std::size_t i = 0; i < old_ids.size(); ++i)
            if (old_ids[i] != 0) insert(old_keys[i], old_ids[i]);
    }
    detail::internal_vector<std::uintptr_t> keys_;
    detail::internal_vector<std::uint32_t> ids_;
    std::size_t size_ = 0;
};

/// The profile's string table: each distinct string once, "" at index 0.
class string_table {
public:
    string_table() { intern("", 0); }

    /// Index of the string (p, n), adding it when new.
    std::uint32_t intern(const char* p, std::size_t n) {
        if (2 * (count() + 1) > slots_.size()) grow();
        std::uint64_t h = hash_bytes(p, n);
        std::size_t mask = slots_.size() - 1;
        std::size_t i = h & mask;
        for (; slots_[i] != 0; i = (i + 1) & mask) {
            std::uint32_t idx = slots_[i] - 1;
            if (length(idx) == n && (n == 0 || std::memcmp(chars_.data() + offsets_[idx], p, n) == 0)) return idx;
        }
        std::uint32_t idx = static_cast<std::uint32_t>(count());
        offsets_.push_back(chars_.size());
        chars_.insert(chars_.end(), p, p + n);
        slots_[i] = idx + 1;
        return idx;
    }
    /// Index of a NUL-terminated string, adding it when new.
    std::uint32_t intern(const char* s) { return intern(s, std::strlen(s)); }

    /// Number of strings.
    std::size_t count() const noexcept { return offsets_.size(); }

    /// The string with index idx (not NUL-terminated); its length in *length.
    const char* at(std::size_t idx, std::size_t* length) const noexcept {
        *length = this->length(idx);
        return chars_.data() + offsets_[idx];
    }

    /// Writes every string as field `field` (repeated string) in index order.
    void write(detail::proto_writer& w, std::uint32_t field) const {
        for (std::size_t i = 0; i < count(); ++i) w.field_bytes(field, chars_.data() + offsets_[i], length(i));
    }

private:
    std::size_t length(std::size_t idx) const noexcept {
        std::size_t end = idx + 1 < offsets_.size() ? offsets_[idx + 1] : chars_.size();
        return end - offsets_[idx];
    }
    void grow() {
        std::size_t cap = slots_.empty() ? 256 : 2 * slots_.size();
        slots_.assign(cap, 0);
        std::size_t mask = cap - 1;
        for (std::size_t idx = 0; idx < count(); ++idx) {
            std::size_t i = hash_bytes(chars_.data() + offsets_[idx], length(idx)) & mask;
            while (slots_[i] != 0) i = (i + 1) & mask;
            slots_[i] = static_cast<std::uint32_t>(idx + 1);
        }
    }
    detail::internal_vector<char> chars_;
    detail::internal_vector<std::size_t> offsets_;
    detail::internal_vector<std::uint32_t> slots_;
};

/// Index of the module containing address in an address-ordered list, or -1.
template <class Modules>
long find_module(const Modules& modules, std::uintptr_t address) noexcept {
    std::size_t lo = 0, hi = modules.size();
    while (lo < hi) {
        std::size_t mid = lo + (hi - lo) / 2;
        if (modules[mid].limit <= address) lo = mid + 1;
        else hi = mid;
    }
    if (lo < modules.size() && modules[lo].start <= address && address < modules[lo].limit)
        return static_cast<long>(lo);
    return -1;
}

// profile.proto field numbers (google/pprof proto/profile.proto).
enum : std::uint32_t {
    profile_sample_type = 1, profile_sample = 2, profile_mapping = 3, profile_location = 4,
    profile_function = 5, profile_string_table = 6, profile_time_nanos = 9, profile_period_type = 11,
    profile_period = 12, profile_comment = 13,
    value_type_type = 1, value_type_unit = 2,
    sample_location_id = 1, sample_value = 2, sample_label = 3,
    label_key = 1, label_num = 3,
    mapping_id = 1, mapping_memory_start = 2, mapping_memory_limit = 3, mapping_file_offset = 4,
    mapping_filename = 5, mapping_build_id = 6, mapping_has_functions = 7,
    location_id = 1, location_mapping_id = 2, location_address = 3, location_line = 4,
    line_function_id = 1, line_line = 2,
    function_id = 1, function_name = 2, function_system_name = 3
};

inline void write_value_type(detail::proto_writer& w, detail::internal_vector<unsigned char>& scratch,
                             std::uint32_t field, std::uint32_t type, std::uint32_t unit) {
    w.message(field, scratch, [&](detail::proto_writer& m) {
        m.field_uint_nonzero(value_type_type, type);
        m.field_uint_nonzero(value_type_unit, unit);
    });
}

}  // namespace pprof_impl

/// Encodes view as an uncompressed profile.proto message appended to out.
///
/// `modules` is any address-ordered random-access range whose elements have
/// `start`, `limit`, `file_offset`, `path` and `build_id` (as detail::loaded_module);
/// `names` (nullptr: addresses only) has `function_name(address)` returning a
/// string-like value, empty when unknown. encode_pprof is this for the real
/// module list and symbolizer; tests pass their own.
template <class Modules, class Names>
void encode_profile_proto(const heap_view& view, detail::internal_vector<unsigned char>& out,
                          const Modules& modules, Names* names) {
    using namespace pprof_impl;
    detail::proto_writer w(out);
    detail::internal_vector<unsigned char> scratch, inner;
    string_table strings;

    const std::uint32_t s_bytes = strings.intern("bytes");
    write_value_type(w, scratch, profile_sample_type, strings.intern("alloc_objects"), strings.intern("count"));
    write_value_type(w, scratch, profile_sample_type, strings.intern("alloc_space"), s_bytes);
    write_value_type(w, scratch, profile_sample_type, strings.intern("inuse_objects"), strings.intern("count"));
    write_value_type(w, scratch, profile_sample_type, strings.intern("inuse_space"), s_bytes);

    // Samples; locations get ids in order of first use, one per distinct address.
    address_map location_of;
    detail::internal_vector<std::uintptr_t> addresses;  // location id - 1 -> address
    detail::internal_vector<std::uint64_t> ids;
    for (std::size_t si = 0; si < view.count; ++si) {
        const heap_sample& s = view.samples[si];
        if (ids.size() < s.depth) ids.resize(s.depth);
        std::size_t ids_len = 0;
        for (std::size_t f = 0; f < s.depth; ++f) {
            // The call instruction precedes the return address: pprof expects the
            // call site, and symbolizes it as such.
            std::uintptr_t address = s.stack[f] - 1;
            std::uint32_t id = location_of.find(address);
            if (id == 0) {
                addresses.push_back(address);
                id = static_cast<std::uint32_t>(addresses.size());
                location_of.insert(address, id);
            }
            ids[f] = id;
            ids_len += detail::varint_size(id);
        }
        std::int64_t values[4];
        scaled_values(s, view.sample_interval, values);
        // Block size from the recorded figures, as Go computes it.
        std::int64_t block = s.alloc_objects > 0 ? s.alloc_bytes / s.alloc_objects : 0;

        // Samples dominate the profile: size the message, then write it in place.
        std::size_t values_len = 0, label_len = 0;
        for (std::int64_t v : values) values_len += detail::varint_size(static_cast<std::uint64_t>(v));
        if (block != 0)
            label_len = detail::varint_field_size(label_key, s_bytes) +
                        detail::varint_field_size(label_num, static_cast<std::uint64_t>(block));
        std::size_t body = (ids_len != 0 ? detail::bytes_field_size(sample_location_id, ids_len) : 0) +
                           detail::bytes_field_size(sample_value, values_len) +
                           (block != 0 ? detail::bytes_field_size(sample_label, label_len) : 0);
        const std::size_t total = detail::bytes_field_size(profile_sample, body);
        unsigned char* p = w.extend(total);
        unsigned char* const end = p + total;
        p = detail::put_key(p, profile_sample, detail::wire_type::length_delimited);
        p = detail::put_varint(p, body);
        if (ids_len != 0) {
            p = detail::put_key(p, sample_location_id, detail::wire_type::length_delimited);
            p = detail::put_varint(p, ids_len);
            for (std::size_t f = 0; f < s.depth; ++f) p = detail::put_varint(p, ids[f]);
        }
        p = detail::put_key(p, sample_value, detail::wire_type::length_delimited);
        p = detail::put_varint(p, values_len);
        for (std::int64_t v : values) p = detail::put_varint(p, static_cast<std::uint64_t>(v));
        if (block != 0) {
            p = detail::put_key(p, sample_label, detail::wire_type::length_delimited);
            p = detail::put_varint(p, label_len);
            p = detail::put_key(p, label_key, detail::wire_type::varint);
            p = detail::put_varint(p, s_bytes);
            p = detail::put_key(p, label_num, detail::wire_type::varint);
            p = detail::put_varint(p, static_cast<std::uint64_t>(block));
        }
        if (p != end) std::abort();  // the sizes above and the writes disagree: a bug here
    }

    // Locations: mapping, address and, when the symbolizer knows it, the function.
    const std::size_t nmod = modules.size();
    detail::internal_vector<std::uint32_t> located(nmod, 0), named(nmod, 0);
    detail::internal_vector<std::uint32_t> function_of_string;  // string index -> function id
    detail::internal_vector<std::uint32_t> function_names;      // function id - 1 -> string index
    for (std::size_t li = 0; li < addresses.size(); ++li) {
        std::uintptr_t address = addresses[li];
        long mod = find_module(modules, address);
        std::uint32_t fid = 0;
        if (names != nullptr) {
            detail::internal_section guard;  // symbolizers call into libc and the demangler
            const auto& name = names->function_name(address);
            if (name.size() != 0) {
                std::uint32_t sidx = strings.intern(name.data(), name.size());
                if (function_of_string.size() <= sidx) function_of_string.resize(sidx + 1, 0);
                if (function_of_string[sidx] == 0) {
                    function_names.push_back(sidx);
                    function_of_string[sidx] = static_cast<std::uint32_t>(function_names.size());
                }
                fid = function_of_string[sidx];
            }
        }
        if (mod >= 0) {
            ++located[static_cast<std::size_t>(mod)];
            if (fid != 0) ++named[static_cast<std::size_t>(mod)];
        }
        w.message(profile_location, scratch, [&](detail::proto_writer& m) {
            m.field_uint(location_id, li + 1);
            if (mod >= 0) m.field_uint(location_mapping_id, static_cast<std::uint64_t>(mod) + 1);
            m.field_uint(location_address, address);
            if (fid != 0)
                m.message(location_line, inner, [&](detail::proto_writer& l) { l.field_uint(line_function_id, fid); });
        });
    }

    // Mappings, in the module list's order. has_functions only when every location
    // in the mapping has a name: pprof then leaves the mapping alone, and would
    // otherwise skip symbolizing the unnamed ones from the binary.
    for (std::size_t mi = 0; mi < nmod; ++mi) {
        const auto& mod = modules[mi];
        w.message(profile_mapping, scratch, [&](detail::proto_writer& m) {
            m.field_uint(mapping_id, mi + 1);
            m.field_uint_nonzero(mapping_memory_start, mod.start);
            m.field_uint_nonzero(mapping_memory_limit, mod.limit);
            m.field_uint_nonzero(mapping_file_offset, mod.file_offset);
            m.field_uint_nonzero(mapping_filename, strings.intern(mod.path.data(), mod.path.size()));
            m.field_uint_nonzero(mapping_build_id, strings.intern(mod.build_id.data(), mod.build_id.size()));
            if (located[mi] != 0 && named[mi] == located[mi]) m.field_bool(mapping_has_functions, true);
        });
    }

    for (std::size_t fi = 0; fi < function_names.size(); ++fi) {
        w.message(profile_function, scratch, [&](detail::proto_writer& m) {
            m.field_uint(function_id, fi + 1);
            m.field_uint(function_name, function_names[fi]);
            m.field_uint(function_system_name, function_names[fi]);
        });
    }

    const std::uint32_t s_space = strings.intern("space");
    // Dropped samples: a comment (go tool pprof -comments, and -raw's header).
    std::uint32_t s_dropped = 0;
    if (view.dropped_samples != 0) {
        const detail::internal_string note = dropped_notice(view.dropped_samples);
        s_dropped = strings.intern(note.data(), note.size());
    }
    strings.write(w, profile_string_table);
    if (s_dropped != 0) w.field_uint(profile_comment, s_dropped);
    if (view.time_nanos != 0) w.field_int(profile_time_nanos, view.time_nanos);
    write_value_type(w, scratch, profile_period_type, s_space, s_bytes);
    w.field_int(profile_period, static_cast<std::int64_t>(view.sample_interval));
}

/// Encodes view as gzip-compressed profile.proto bytes appended to out, with any
/// module range and symbolizer (see encode_profile_proto).
template <class Modules, class Names>
void encode_pprof_with(const heap_view& view, detail::internal_vector<unsigned char>& out, const Modules& modules,
                       Names* names, detail::gzip_level level = detail::gzip_level::compressed) {
    detail::internal_vector<unsigned char> raw;
    encode_profile_proto(view, raw, modules, names);
    detail::gzip_compress(raw.data(), raw.size(), out, level);
}

/// Encodes view as gzip-compressed profile.proto bytes (appends to out), with the
/// given modules as mappings and function names from `names` (nullptr: addresses only).
inline void encode_pprof(const heap_view& view, detail::internal_vector<unsigned char>& out,
                         const detail::module_list& modules, detail::symbolizer* names) {
    encode_pprof_with(view, out, modules, names);
}

/// Writes size bytes to path safely: mode 0600, never through a symlink, never
/// over a directory or device, temporary file + rename (no partial file on failure).
inline result write_text_file(const char* path, const char* data, std::size_t size) {
    return detail::write_file_atomically(path, data, size);
}

/// Writes the pprof file at path (0600, no symlink following, temp file + rename),
/// with the loaded modules as mappings and in-process function names.
inline result write_pprof(const heap_view& view, const char* path) {
#if MEMDIAG_HAS_EXCEPTIONS
    try {
#endif
        detail::internal_vector<unsigned char> bytes;
        {
            detail::internal_section guard;  // /proc/self/maps, ELF reading, demangling
            detail::module_list modules = detail::list_loaded_modules();
            detail::symbolizer names;
            encode_pprof(view, bytes, modules, &names);
        }
        return detail::write_file_atomically(path, bytes.data(), bytes.size());
#if MEMDIAG_HAS_EXCEPTIONS
    } catch (const std::bad_alloc&) {
        return result::failuref("cannot write '%s': out of memory while encoding the profile", path);
    }
#endif
}

}  // namespace snapshot
}  // namespace memdiag
