// memdiag/detail/deflate.hpp - gzip members (RFC 1952) around a small deflate
// encoder (RFC 1951): fixed-Huffman blocks fed by a hash-chain LZ77 matcher,
// with stored blocks as the fallback for incompressible input.
//
// Profiles are full of repeated varints (location ids, sample values), so even
// fixed Huffman codes with greedy matching shrink them several times. All memory
// comes from internal_malloc: compressing never touches the observed heap.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "arch/crc32.hpp"
#include "internal_alloc.hpp"
#include "internal_vector.hpp"

namespace memdiag {
namespace detail {

/// How a gzip member's deflate stream is produced.
enum class gzip_level {
    stored,      ///< no compression: stored blocks only (fastest, largest)
    compressed,  ///< LZ77 + fixed Huffman codes; stored when that would be larger
};

/// Tuning of the LZ77 matcher behind gzip_level::compressed.
struct deflate_tuning {
    unsigned max_chain = 8;     ///< candidates tried per position (more: smaller, slower)
    unsigned good_length = 32;  ///< stop searching once a match this long is found
};

namespace deflate_impl {

constexpr std::size_t window_size = 32768;  // largest distance deflate can encode
constexpr std::size_t min_match = 3;
constexpr std::size_t max_match = 258;
constexpr unsigned hash_bits = 15;

/// A Huffman code ready for an LSB-first bit stream: bits reversed, with length.
struct code {
    std::uint16_t bits;
    std::uint8_t length;
};

/// Fixed literal/length codes (RFC 1951 3.2.6) for symbols 0..287 and the 5-bit
/// distance codes 0..29, bit-reversed at compile time.
struct fixed_codes {
    code litlen[288];
    code dist[30];
};

constexpr std::uint16_t reverse_bits(unsigned v, unsigned length) noexcept {
    unsigned r = 0;
    for (unsigned i = 0; i < length; ++i) r |= ((v >> i) & 1u) << (length - 1 - i);
    return static_cast<std::uint16_t>(r);
}

constexpr fixed_codes make_fixed_codes() noexcept {
    fixed_codes f{};
    for (unsigned s = 0; s < 288; ++s) {
        unsigned base = 0, length = 0, first = 0;
        if (s < 144) {
            base = 0x30, length = 8, first = 0;
        } else if (s < 256) {
            base = 0x190, length = 9, first = 144;
        } else if (s < 280) {
            base = 0x00, length = 7, first = 256;
        } else {
            base = 0xC0, length = 8, first = 280;
        }
        f.litlen[s] = code{reverse_bits(base + (s - first), length), static_cast<std::uint8_t>(length)};
    }
    for (unsigned d = 0; d < 30; ++d) f.dist[d] = code{reverse_bits(d, 5), 5};
    return f;
}

inline constexpr fixed_codes fixed = make_fixed_codes();

/// Index of the highest set bit of v (v > 0).
inline unsigned floor_log2(std::uint32_t v) noexcept {
    unsigned l = 0;
    while (v >>= 1) ++l;
    return l;
}

/// Writes bits LSB first into a buffer the caller sized for the worst case.
class bit_writer {
public:
    explicit bit_writer(unsigned char* dst) noexcept : dst_(dst) {}

    /// Appends the low `count` bits of `bits` (count <= 32).
    void put(std::uint32_t bits, unsigned count) noexcept {
        acc_ |= static_cast<std::uint64_t>(bits) << fill_;
        fill_ += count;
        if (fill_ >= 32) {
            for (int i = 0; i < 4; ++i) *dst_++ = static_cast<unsigned char>(acc_ >> (8 * i));
            acc_ >>= 32;
            fill_ -= 32;
        }
    }

    /// Pads to a byte boundary with zero bits and returns the end of the output.
    unsigned char* finish() noexcept {
        while (fill_ > 0) {
            *dst_++ = static_cast<unsigned char>(acc_);
            acc_ >>= 8;
            fill_ = fill_ > 8 ? fill_ - 8 : 0;
        }
        return dst_;
    }

private:
    unsigned char* dst_;
    std::uint64_t acc_ = 0;
    unsigned fill_ = 0;
};

inline void put_literal(bit_writer& w, unsigned char byte) noexcept {
    const code& c = fixed.litlen[byte];
    w.put(c.bits, c.length);
}

/// Emits a <length, distance> pair: length 3..258, distance 1..32768.
inline void put_match(bit_writer& w, unsigned length, unsigned distance) noexcept {
    // Length codes 257..284 come four to a power of two above 10; 285 is 258.
    unsigned x = length - 3;
    unsigned symbol = 0, extra_bits = 0, extra = 0;
    if (x < 8) {
        symbol = 257 + x;
    } else if (x == 255) {
        symbol = 285;
    } else {
        unsigned l = floor_log2(x);
        extra_bits = l - 2;
        symbol = 257 + 4 * (l - 1) + ((x >> extra_bits) & 3u);
        extra = x & ((1u << extra_bits) - 1u);
    }
    const code& lc = fixed.litlen[symbol];
    w.put(lc.bits | (extra << lc.length), lc.length + extra_bits);

    // Distance codes come two to a power of two above 4.
    unsigned y = distance - 1;
    unsigned dsym = 0, dextra_bits = 0, dextra = 0;
    if (y < 4) {
        dsym = y;
    } else {
        unsigned l = floor_log2(y);
        dextra_bits = l - 1;
        dsym = 2 * l + ((y >> dextra_bits) & 1u);
        dextra = y & ((1u << dextra_bits) - 1u);
    }
    const code& dc = fixed.dist[dsym];
    w.put(dc.bits | (dextra << dc.length), dc.length + dextra_bits);
}

inline std::uint32_t hash3(const unsigned char* p) noexcept {
    std::uint32_t v = static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
                      (static_cast<std::uint32_t>(p[2]) << 16);
    return (v * 2654435761u) >> (32 - hash_bits);
}

/// Length of the common prefix of a and b, at most limit.
inline std::size_t match_length(const unsigned char* a, const unsigned char* b, std::size_t limit) noexcept {
    std::size_t n = 0;
#if defined(__GNUC__) || defined(__clang__)
    while (n + 8 <= limit) {
        std::uint64_t x, y;
        std::memcpy(&x, a + n, 8);
        std::memcpy(&y, b + n, 8);
        std::uint64_t diff = x ^ y;
        if (diff != 0) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            return n + static_cast<std::size_t>(__builtin_ctzll(diff) / 8);
#else
            break;  // find the byte below
#endif
        }
        n += 8;
    }
#endif
    while (n < limit && a[n] == b[n]) ++n;
    return n;
}

/// Stored-block size of n bytes of input: 5 header bytes per 65535-byte block.
inline std::size_t stored_size(std::size_t n) noexcept {
    std::size_t blocks = n == 0 ? 1 : (n + 65534) / 65535;
    return n + 5 * blocks;
}

}  // namespace deflate_impl

/// Appends a raw deflate stream of stored (uncompressed) blocks.
inline void deflate_stored(const void* data, std::size_t n, internal_vector<unsigned char>& out) {
    const unsigned char* p = static_cast<const unsigned char*>(data);
    std::size_t old = out.size();
    out.resize(old + deflate_impl::stored_size(n));
    unsigned char* dst = out.data() + old;
    do {
        std::size_t chunk = n < 65535 ? n : 65535;
        bool last = chunk == n;
        *dst++ = last ? 1 : 0;  // BFINAL, BTYPE=00, then pad to the byte boundary
        *dst++ = static_cast<unsigned char>(chunk);
        *dst++ = static_cast<unsigned char>(chunk >> 8);
        *dst++ = static_cast<unsigned char>(~chunk);
        *dst++ = static_cast<unsigned char>(~chunk >> 8);
        if (chunk != 0) std::memcpy(dst, p, chunk);
        dst += chunk;
        p += chunk;
        n -= chunk;
    } while (n != 0);
}

/// Appends a raw deflate stream: one fixed-Huffman block fed by greedy LZ77
/// matching. Returns false, leaving `out` as it was, when the matcher's tables
/// (256 KiB) cannot be allocated or the result would not beat stored blocks.
inline bool deflate_fixed(const void* data, std::size_t n, internal_vector<unsigned char>& out,
                          const deflate_tuning& tuning = deflate_tuning{}) {
    using namespace deflate_impl;
    const unsigned char* src = static_cast<const unsigned char*>(data);
    // Positions are stored +1 so that 0 means "empty"; 32-bit positions limit
    // one stream to 4 GiB, far beyond any profile.
    if (n >= 0xFFFFFFF0u) return false;
    const std::size_t head_size = std::size_t(1) << hash_bits;
    auto* head = static_cast<std::uint32_t*>(internal_malloc((head_size + window_size) * sizeof(std::uint32_t)));
    if (head == nullptr) return false;
    std::uint32_t* prev = head + head_size;
    std::memset(head, 0, head_size * sizeof(std::uint32_t));

    std::size_t old = out.size();
    // Worst case: every byte a 9-bit literal, plus the block header and end code.
    out.resize(old + n + n / 8 + 16);
    bit_writer w(out.data() + old);
    w.put(1u | (1u << 1), 3);  // BFINAL=1, BTYPE=01 (fixed Huffman)

    const std::size_t wmask = window_size - 1;
    std::size_t i = 0;
    while (i + min_match <= n) {
        std::uint32_t h = hash3(src + i);
        std::uint32_t cand = head[h];
        prev[i & wmask] = cand;
        head[h] = static_cast<std::uint32_t>(i + 1);

        std::size_t limit = n - i < max_match ? n - i : max_match;
        std::size_t best_len = 0, best_dist = 0;
        unsigned chain = tuning.max_chain;
        while (cand != 0 && chain-- != 0) {
            std::size_t j = cand - 1;
            std::size_t dist = i - j;
            if (dist >= window_size) break;
            // Quick reject on the byte that would make this match longer.
            if (src[j + best_len] == src[i + best_len]) {
                std::size_t len = match_length(src + j, src + i, limit);
                if (len > best_len) {
                    best_len = len;
                    best_dist = dist;
                    if (len >= tuning.good_length || len == limit) break;
                }
            }
            std::uint32_t next = prev[j & wmask];
            if (next >= cand) break;  // slot reused by a newer position: chain ends
            cand = next;
        }

        if (best_len >= min_match) {
            put_match(w, static_cast<unsigned>(best_len), static_cast<unsigned>(best_dist));
            // Index the positions inside the match so later data can refer to them.
            std::size_t end = i + best_len;
            for (++i; i < end && i + min_match <= n; ++i) {
                std::uint32_t hh = hash3(src + i);
                prev[i & wmask] = head[hh];
                head[hh] = static_cast<std::uint32_t>(i + 1);
            }
            i = end;
        } else {
            put_literal(w, src[i]);
            ++i;
        }
    }
    for (; i < n; ++i) put_literal(w, src[i]);
    w.put(fixed.litlen[256].bits, fixed.litlen[256].length);  // end of block
    unsigned char* end = w.finish();
    internal_free(head);

    std::size_t produced = static_cast<std::size_t>(end - (out.data() + old));
    if (produced >= stored_size(n)) {
        out.resize(old);
        return false;
    }
    out.resize(old + produced);
    return true;
}

/// Appends one gzip member (RFC 1952: header, deflate stream, CRC-32, ISIZE)
/// holding the n bytes at data.
inline void gzip_compress(const void* data, std::size_t n, internal_vector<unsigned char>& out,
                          gzip_level level = gzip_level::compressed,
                          const deflate_tuning& tuning = deflate_tuning{}) {
    // ID1 ID2 CM=deflate FLG=0 MTIME=0 (4 bytes) XFL=0 OS=255 (unknown).
    static const unsigned char header[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255};
    out.insert(out.end(), header, header + sizeof header);
    if (level == gzip_level::stored || !deflate_fixed(data, n, out, tuning)) deflate_stored(data, n, out);
    std::uint32_t crc = crc32(0, data, n);
    std::uint32_t isize = static_cast<std::uint32_t>(n);  // size modulo 2^32
    unsigned char trailer[8];
    for (int i = 0; i < 4; ++i) {
        trailer[i] = static_cast<unsigned char>(crc >> (8 * i));
        trailer[4 + i] = static_cast<unsigned char>(isize >> (8 * i));
    }
    out.insert(out.end(), trailer, trailer + sizeof trailer);
}

}  // namespace detail
}  // namespace memdiag
