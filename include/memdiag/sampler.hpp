// memdiag/sampler.hpp - byte-based Poisson sampling of allocations.
//
// The heap profiler records an allocation with a probability that grows with
// its size, as Go's runtime and tcmalloc do: the allocated bytes are a Poisson
// process with mean interval R between samples, so each thread keeps a byte
// countdown drawn from an exponential distribution with mean R and records the
// allocation that takes the countdown to zero or below. Because the exponential
// distribution is memoryless, an allocation of S bytes is recorded with
// probability 1 - exp(-S/R) regardless of what came before it, which is what
// the writers' unbiased scaling (snapshot::scale_heap_sample) assumes.
//
// R = 1 records every allocation (exact mode).
//
// The interval comes from profile_options::sample_interval, else from the
// environment variable MEMDIAG_SAMPLE_INTERVAL, else 524288 (512 KiB, Go's and
// tcmalloc's default). The variable takes a positive integer with an optional
// binary suffix: "1", "4096", "64k", "512KiB", "1M", "2MiB", "1G". A bad value is
// rejected with a message on stderr and the default is kept.
//
// Everything here runs inside operator new: no allocation, no locks, no throw.
#pragma once

#if !defined(__GNUC__) && !defined(__clang__)
#include <cmath>  // g++ and clang++ use their built-ins: <cmath> is heavy for every user
#endif
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "config.hpp"
#include "detail/parse_size.hpp"

namespace memdiag {
namespace detail {
// log and expm1 without <cmath> where the compiler has them built in.
#if defined(__GNUC__) || defined(__clang__)
inline double log_of(double x) noexcept { return __builtin_log(x); }
inline double expm1_of(double x) noexcept { return __builtin_expm1(x); }
#else
inline double log_of(double x) noexcept { return std::log(x); }
inline double expm1_of(double x) noexcept { return std::expm1(x); }
#endif
}  // namespace detail

/// The default mean sampling interval in bytes (512 KiB, as Go and tcmalloc).
inline constexpr std::uint64_t default_sample_interval = 524288;

/// The largest accepted mean sampling interval (1 TiB): larger values would
/// make every snapshot empty and are surely a typo.
inline constexpr std::uint64_t max_sample_interval = std::uint64_t{1} << 40;

/// Outcome of parse_sample_interval: a value, or why the text was rejected.
struct sample_interval_parse {
    bool ok = false;            ///< true when value holds the parsed interval
    std::uint64_t value = 0;    ///< the interval in bytes (>= 1) when ok
    const char* error = "";     ///< static text saying what is wrong when !ok
};

/// Parses a sampling interval as MEMDIAG_SAMPLE_INTERVAL spells it: decimal
/// digits, optionally followed by K, M or G (powers of 1024, case ignored),
/// optionally followed by "iB" or "B" ("64k", "512KiB", "2MB"); surrounding
/// spaces are allowed. The grammar is detail::parse_size's without fractions
/// and units above G. Rejects empty text, signs, zero, overflow, anything else
/// trailing, and values above max_sample_interval. A pure function: no
/// environment, no allocation.
inline sample_interval_parse parse_sample_interval(std::string_view text) noexcept {
    sample_interval_parse r;
    detail::size_syntax syntax;
    syntax.max_shift = 30;
    syntax.fractions = false;
    const detail::size_parse size = detail::parse_size(text, syntax);
    if (!size.ok) {
        r.error = size.error;
        return r;
    }
    if (size.value == 0) {
        r.error = "must be at least 1 (1 records every allocation)";
        return r;
    }
    if (size.value > max_sample_interval) {
        r.error = "value too large (at most 1 TiB)";
        return r;
    }
    r.ok = true;
    r.value = size.value;
    return r;
}

/// parse_sample_interval for a C string (an environment value); null is "no value".
inline sample_interval_parse parse_sample_interval(const char* text) noexcept {
    if (text != nullptr) return parse_sample_interval(std::string_view(text));
    sample_interval_parse r;
    r.error = "no value";
    return r;
}

/// The interval MEMDIAG_SAMPLE_INTERVAL asks for, or `fallback` when it is
/// unset. A bad value prints "memdiag: ignoring MEMDIAG_SAMPLE_INTERVAL=...: why"
/// to stderr and returns `fallback`. Allocation-free (getenv and stdio only).
inline std::uint64_t sample_interval_from_env(std::uint64_t fallback = default_sample_interval) noexcept {
    const char* text = std::getenv("MEMDIAG_SAMPLE_INTERVAL");
    if (text == nullptr) return fallback;
    const sample_interval_parse r = parse_sample_interval(text);
    if (r.ok) return r.value;
    std::fprintf(stderr, "memdiag: ignoring MEMDIAG_SAMPLE_INTERVAL='%.64s': %s; using %llu\n", text, r.error,
                 static_cast<unsigned long long>(fallback));
    return fallback;
}

/// One thread's sampling decisions: a fast random generator and the byte
/// countdown to the next sample. Plain data, owned by one thread (the heap
/// profiler keeps its fields in detail::thread_state); usable standalone.
struct poisson_sampler {
    std::uint64_t rng = 0;           ///< xorshift64* state; 0 = not seeded yet
    std::int64_t countdown = 0;      ///< bytes left before the next sample

    /// Seeds the generator (any value; 0 is replaced by a fixed odd constant).
    void seed(std::uint64_t s) noexcept { rng = s != 0 ? s : 0x9e3779b97f4a7c15ull; }

    /// Next 64 random bits (xorshift64*: period 2^64 - 1, fine for sampling).
    std::uint64_t next_random() noexcept {
        if (rng == 0) seed(0);
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        return rng * 0x2545f4914f6cdd1dull;
    }

    /// A uniform double in (0, 1]: never 0, so -log(u) is finite.
    double next_uniform() noexcept {
        return static_cast<double>((next_random() >> 11) + 1) * (1.0 / 9007199254740992.0);
    }

    /// Draws the bytes to the next sample: exponential with mean `interval`
    /// (inverse transform, -log(u) * mean); 0 when interval <= 1, so every
    /// allocation is recorded.
    std::int64_t draw(std::uint64_t interval) noexcept {
        if (interval <= 1) return 0;
        // -log(u) <= 36.8 for u >= 2^-53, so this fits in int64 for any interval <= 2^40.
        return static_cast<std::int64_t>(-detail::log_of(next_uniform()) * static_cast<double>(interval));
    }

    /// Starts a new countdown with the given mean interval.
    void reset(std::uint64_t interval) noexcept { countdown = draw(interval); }

    /// Counts an allocation of `size` bytes; true when it is to be recorded
    /// (then a new countdown starts). P(true) = 1 - exp(-size/interval).
    bool should_sample(std::size_t size, std::uint64_t interval) noexcept {
        countdown -= static_cast<std::int64_t>(size);
        if (MEMDIAG_LIKELY(countdown > 0)) return false;
        countdown = draw(interval);
        return true;
    }
};

/// Probability that byte-based Poisson sampling with mean `interval` records
/// an allocation of `size` bytes: 1 - exp(-size/interval); 1 when interval <= 1.
inline double sample_probability(std::uint64_t size, std::uint64_t interval) noexcept {
    if (interval <= 1) return 1.0;
    return -detail::expm1_of(-static_cast<double>(size) / static_cast<double>(interval));
}

}  // namespace memdiag
