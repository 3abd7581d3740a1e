// memdiag/detail/protobuf.hpp - the few protobuf wire-format pieces profile.proto
// needs: varints, length-delimited fields and packed repeated varints.
//
// profile.proto uses plain (not zigzag) varints for int64 and uint64, so a
// negative int64 takes 10 bytes. Output goes into an internal_vector: encoding
// never allocates through the observed heap. The buffer grows ahead of the
// writer; it holds exactly the written bytes after flush() or the writer's end.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "internal_alloc.hpp"
#include "internal_vector.hpp"

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

/// Writes the varint encoding of v at p; returns the end. p must have room for
/// varint_size(v) bytes.
inline unsigned char* put_varint(unsigned char* p, std::uint64_t v) noexcept {
    while (v >= 0x80u) {
        *p++ = static_cast<unsigned char>(v | 0x80u);
        v >>= 7;
    }
    *p++ = static_cast<unsigned char>(v);
    return p;
}

/// Writes a field key at p; returns the end.
inline unsigned char* put_key(unsigned char* p, std::uint32_t field, wire_type type) noexcept {
    return put_varint(p, (static_cast<std::uint64_t>(field) << 3) | static_cast<std::uint32_t>(type));
}

/// Encoded size of a varint field.
inline std::size_t varint_field_size(std::uint32_t field, std::uint64_t v) noexcept {
    return varint_size(static_cast<std::uint64_t>(field) << 3) + varint_size(v);
}

/// Encoded size of a length-delimited field with an n-byte payload.
inline std::size_t bytes_field_size(std::uint32_t field, std::size_t n) noexcept {
    return varint_size(static_cast<std::uint64_t>(field) << 3 | 2u) + varint_size(n) + n;
}

/// Appends protobuf fields to a byte buffer.
class proto_writer {
public:
    /// Writes into `out`, appending after what it already holds.
    explicit proto_writer(internal_vector<unsigned char>& out) noexcept : out_(&out), used_(out.size()) {}

    /// Trims the buffer to what was written.
    ~proto_writer() { flush(); }

    proto_writer(const proto_writer&) = delete;
    proto_writer& operator=(const proto_writer&) = delete;

    /// Bytes in the buffer once written out (the buffer grows ahead in steps).
    std::size_t size() const noexcept { return used_; }

    /// Trims the buffer to what was written so far; the writer stays usable.
    void flush() noexcept {
        if (out_->size() > used_) out_->resize(used_);
    }

    /// Appends the varint encoding of v.
    void varint(std::uint64_t v) {
        unsigned char tmp[10];
        raw(tmp, static_cast<std::size_t>(put_varint(tmp, v) - tmp));
    }

    /// Grows the buffer by n bytes and returns where they start, for callers that
    /// size a message first and then fill it with put_varint / put_key.
    unsigned char* extend(std::size_t n) {
        // Grow geometrically and track the written size ourselves: one resize per
        // doubling instead of one per field.
        if (out_->size() - used_ < n) {
            std::size_t want = 2 * out_->size() + 256;
            out_->resize(want > used_ + n ? want : used_ + n);
        }
        unsigned char* p = out_->data() + used_;
        used_ += n;
        return p;
    }

    /// Appends field `field` holding the sub-message that fill(proto_writer&)
    /// writes; the sub-message is built in `scratch` (its content is replaced).
    template <class Fill>
    void message(std::uint32_t field, internal_vector<unsigned char>& scratch, Fill&& fill) {
        scratch.clear();
        std::size_t n = 0;
        {
            proto_writer m(scratch);
            fill(m);
            n = m.size();
        }
        field_bytes(field, scratch.data(), n);
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
        unsigned char* p = extend(bytes_field_size(field, payload));
        p = put_key(p, field, wire_type::length_delimited);
        p = put_varint(p, payload);
        for (std::size_t i = 0; i < n; ++i) p = put_varint(p, static_cast<std::uint64_t>(values[i]));
    }

    /// Appends n raw bytes.
    void raw(const void* data, std::size_t n) {
        if (n != 0) std::memcpy(extend(n), data, n);
    }

private:
    internal_vector<unsigned char>* out_;
    std::size_t used_;
};

}  // namespace detail
}  // namespace memdiag
