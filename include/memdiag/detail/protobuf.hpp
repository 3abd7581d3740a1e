// memdiag/detail/protobuf.hpp - the few protobuf wire-format pieces profile.proto
// needs: varints, length-delimited fields and packed repeated varints.
//
// profile.proto uses plain (not zigzag) varints for int64 and uint64, so a
// negative int64 takes 10 bytes. Output goes into an internal_vector: encoding
// never allocates through the observed heap.
#pragma once

#include <cstddef>
#include <cstdint>

#include "internal_alloc.hpp"

namespace memdiag {
namespace detail {

/// Wire types used by profile.proto.
enum class wire_type : std::uint32_t {
    varint = 0,            ///< int64, uint64, bool
    length_delimited = 2,  ///< string, bytes, sub-message, packed repeated
};

/// Number of bytes the varint encoding of v takes (1..10).
inline std::size_t varint_size(std::uint64_t v) noexcept {
    std::size_t n = 1;
    while (v >= 0x80u) {
        v >>= 7;
        ++n;
    }
    return n;
}

/// Appends protobuf fields to a byte buffer.
class proto_writer {
public:
    /// Writes into `out`, appending after what it already holds.
    explicit proto_writer(internal_vector<unsigned char>& out) noexcept : out_(&out) {}

    /// The buffer written to.
    internal_vector<unsigned char>& buffer() const noexcept { return *out_; }

    /// Appends the varint encoding of v.
    void varint(std::uint64_t v) {
        unsigned char tmp[10];
        std::size_t n = 0;
        while (v >= 0x80u) {
            tmp[n++] = static_cast<unsigned char>(v | 0x80u);
            v >>= 7;
        }
        tmp[n++] = static_cast<unsigned char>(v);
        raw(tmp, n);
    }

    /// Appends a field key (field number and wire type).
    void tag(std::uint32_t field, wire_type type) {
        varint((static_cast<std::uint64_t>(field) << 3) | static_cast<std::uint32_t>(type));
    }

    /// Appends a varint field; int64 values are cast, as the wire format says.
    void field_uint(std::uint32_t field, std::uint64_t v) {
        tag(field, wire_type::varint);
        varint(v);
    }

    /// Appends an int64 field (two's complement varint, 10 bytes when negative).
    void field_int(std::uint32_t field, std::int64_t v) { field_uint(field, static_cast<std::uint64_t>(v)); }

    /// Appends a bool field (always written, even when false).
    void field_bool(std::uint32_t field, bool v) { field_uint(field, v ? 1u : 0u); }

    /// Appends a varint field only when v is not 0 (proto3 default omitted).
    void field_uint_nonzero(std::uint32_t field, std::uint64_t v) {
        if (v != 0) field_uint(field, v);
    }

    /// Appends a length-delimited field holding n bytes (a string or a sub-message).
    void field_bytes(std::uint32_t field, const void* data, std::size_t n) {
        tag(field, wire_type::length_delimited);
        varint(n);
        raw(data, n);
    }

    /// Appends a packed repeated varint field; nothing when n == 0.
    template <class Int>
    void field_packed(std::uint32_t field, const Int* values, std::size_t n) {
        if (n == 0) return;
        std::size_t payload = 0;
        for (std::size_t i = 0; i < n; ++i) payload += varint_size(static_cast<std::uint64_t>(values[i]));
        tag(field, wire_type::length_delimited);
        varint(payload);
        for (std::size_t i = 0; i < n; ++i) varint(static_cast<std::uint64_t>(values[i]));
    }

    /// Appends n raw bytes.
    void raw(const void* data, std::size_t n) {
        const unsigned char* p = static_cast<const unsigned char*>(data);
        out_->insert(out_->end(), p, p + n);
    }

private:
    internal_vector<unsigned char>* out_;
};

}  // namespace detail
}  // namespace memdiag
