// bench/bench_snapshot.cpp - cost of writing heap snapshots: CRC-32 per
// implementation, gzip stored vs compressed, and encoding/writing a profile of
// 100,000 samples of depth 16 (target: a whole snapshot under 100 ms).
#include <memdiag/detail/arch/crc32.hpp>
#include <memdiag/detail/deflate.hpp>
#include <memdiag/snapshot/pprof.hpp>
#include <memdiag/snapshot/report.hpp>

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace mdd = memdiag::detail;
namespace snap = memdiag::snapshot;

namespace {

std::vector<unsigned char> random_bytes(std::size_t n) {
    std::vector<unsigned char> v(n);
    std::uint64_t x = 0x9E3779B97F4A7C15ull;
    for (auto& b : v) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        b = static_cast<unsigned char>(x >> 24);
    }
    return v;
}

template <std::uint32_t (*Fn)(std::uint32_t, const void*, std::size_t)>
void BM_crc32(benchmark::State& state) {
    std::vector<unsigned char> buf = random_bytes(static_cast<std::size_t>(state.range(0)));
    std::uint32_t c = 0;
    for (auto _ : state) {
        c = Fn(c, buf.data(), buf.size());
        benchmark::DoNotOptimize(c);
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK_TEMPLATE(BM_crc32, mdd::crc32_bytewise)->Arg(1 << 20);
BENCHMARK_TEMPLATE(BM_crc32, mdd::crc32_slicing8)->Arg(1 << 20);
#if MEMDIAG_CRC32_ARMV8
BENCHMARK_TEMPLATE(BM_crc32, mdd::crc32_armv8)->Arg(1 << 20);
#endif
BENCHMARK_TEMPLATE(BM_crc32, mdd::crc32)->Arg(1 << 20);

/// 100,000 samples of depth 16 whose frames come from a pool of 4,000 addresses
/// spread over this program's code, as a large real heap table would look.
struct big_snapshot {
    std::vector<std::uintptr_t> frames;
    std::vector<snap::heap_sample> samples;
    mdd::module_list modules = mdd::list_loaded_modules();

    explicit big_snapshot(std::size_t n = 100000, std::size_t depth = 16) {
        std::uintptr_t lo = reinterpret_cast<std::uintptr_t>(&random_bytes), hi = lo + 4096;
        for (const mdd::loaded_module& m : modules)
            if (m.start <= lo && lo < m.limit) lo = m.start, hi = m.limit;
        std::vector<std::uintptr_t> pool(4000);
        std::uint64_t x = 88172645463325252ull;
        auto next = [&] { return x ^= x << 13, x ^= x >> 7, x ^= x << 17; };
        for (auto& p : pool) p = lo + 1 + next() % (hi - lo - 1);
        frames.resize(n * depth);
        samples.resize(n);
        for (std::size_t i = 0; i < n; ++i) {
            for (std::size_t f = 0; f < depth; ++f) frames[i * depth + f] = pool[next() % pool.size()];
            std::int64_t size = 16 << (i % 12);
            samples[i] = {&frames[i * depth], depth, 3, 3 * size, 2, 2 * size};
        }
    }
    snap::heap_view view() const { return {samples.data(), samples.size(), 524288, 1700000000000000000}; }
};

const big_snapshot& snapshot() {
    static big_snapshot s;
    return s;
}

struct no_names {
    mdd::internal_string function_name(std::uintptr_t) { return mdd::internal_string(); }
};

void BM_encode_proto_only(benchmark::State& state) {
    const big_snapshot& s = snapshot();
    snap::heap_view v = s.view();
    std::size_t bytes = 0;
    for (auto _ : state) {
        mdd::internal_vector<unsigned char> out;
        snap::encode_profile_proto(v, out, s.modules, static_cast<no_names*>(nullptr));
        bytes = out.size();
        benchmark::DoNotOptimize(out.data());
    }
    state.counters["proto_bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_encode_proto_only)->Unit(benchmark::kMillisecond);

void BM_encode_pprof(benchmark::State& state) {
    const big_snapshot& s = snapshot();
    snap::heap_view v = s.view();
    const bool symbolize = state.range(0) != 0;
    const auto level = state.range(1) != 0 ? mdd::gzip_level::compressed : mdd::gzip_level::stored;
    std::size_t bytes = 0;
    for (auto _ : state) {
        mdd::internal_vector<unsigned char> out;
        if (symbolize) {
            mdd::symbolizer names;  // a fresh one per snapshot, as write_pprof does
            snap::encode_pprof_with(v, out, s.modules, &names, level);
        } else {
            snap::encode_pprof_with(v, out, s.modules, static_cast<no_names*>(nullptr), level);
        }
        bytes = out.size();
    }
    state.counters["file_bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_encode_pprof)
    ->ArgNames({"symbolize", "compress"})
    ->Args({0, 0})
    ->Args({0, 1})
    ->Args({1, 1})
    ->Unit(benchmark::kMillisecond);

// The whole job: modules, symbolizer, encode, gzip, write + fsync + rename.
void BM_write_pprof_100k(benchmark::State& state) {
    const big_snapshot& s = snapshot();
    snap::heap_view v = s.view();
    std::string path = "/tmp/memdiag-bench-snapshot.pb.gz";
    for (auto _ : state) {
        memdiag::result r = snap::write_pprof(v, path.c_str());
        if (!r) state.SkipWithError(r.message());
    }
    std::remove(path.c_str());
}
BENCHMARK(BM_write_pprof_100k)->Unit(benchmark::kMillisecond);

void BM_collapsed_100k(benchmark::State& state) {
    const big_snapshot& s = snapshot();
    snap::heap_view v = s.view();
    std::size_t bytes = 0;
    // Addresses only ("module+0xoffset" labels): with this benchmark's random
    // frames the names would be long template names, a gigabyte of text.
    for (auto _ : state) {
        mdd::internal_string c = snap::collapsed_stacks_with(v, s.modules, static_cast<no_names*>(nullptr));
        bytes = c.size();
        benchmark::DoNotOptimize(c.data());
    }
    state.counters["text_bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_collapsed_100k)->Unit(benchmark::kMillisecond);

// gzip on the encoded profile of the big snapshot (the data it will really see).
void BM_gzip(benchmark::State& state) {
    static mdd::internal_vector<unsigned char> raw = [] {
        mdd::internal_vector<unsigned char> out;
        snap::encode_profile_proto(snapshot().view(), out, snapshot().modules, static_cast<no_names*>(nullptr));
        return out;
    }();
    const auto level = state.range(0) != 0 ? mdd::gzip_level::compressed : mdd::gzip_level::stored;
    std::size_t bytes = 0;
    for (auto _ : state) {
        mdd::internal_vector<unsigned char> out;
        mdd::gzip_compress(raw.data(), raw.size(), out, level);
        bytes = out.size();
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * raw.size()));
    state.counters["ratio"] = static_cast<double>(raw.size()) / static_cast<double>(bytes);
}
BENCHMARK(BM_gzip)->ArgName("compress")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
