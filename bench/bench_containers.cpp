// bench/bench_containers.cpp - tracking_allocator and tracking_resource against
// the untracked versions on allocation-heavy container work.
#include <benchmark/benchmark.h>
#include <memdiag/memdiag.hpp>

#include <map>
#include <memory_resource>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace {

memdiag::tracker bench_tracker{"bench"};

template <class Alloc>
Alloc make_alloc() {
    if constexpr (std::is_constructible<Alloc, memdiag::tracker_ref>::value) return Alloc{bench_tracker};
    else return Alloc{};
}

template <class Alloc>
void vector_push_back(benchmark::State& state) {
    for (auto _ : state) {
        std::vector<int, Alloc> v{make_alloc<Alloc>()};
        for (int i = 0; i < 1000; ++i) v.push_back(i);
        benchmark::DoNotOptimize(v.data());
    }
}

template <class Alloc>
void map_insert(benchmark::State& state) {
    for (auto _ : state) {
        std::map<int, int, std::less<int>, Alloc> m{make_alloc<Alloc>()};
        for (int i = 0; i < 1000; ++i) m.emplace(i * 7919 % 1000, i);
        benchmark::DoNotOptimize(m.size());
    }
}

// std::hash covers only std::allocator strings before C++20: hash the characters.
struct chars_hash {
    template <class S>
    std::size_t operator()(const S& s) const noexcept {
        return std::hash<std::string_view>{}(std::string_view(s.data(), s.size()));
    }
};

template <class Alloc>
void unordered_string_fill(benchmark::State& state) {
    using str = std::basic_string<char, std::char_traits<char>,
                                  typename std::allocator_traits<Alloc>::template rebind_alloc<char>>;
    using pair_alloc = typename std::allocator_traits<Alloc>::template rebind_alloc<std::pair<const str, int>>;
    for (auto _ : state) {
        std::unordered_map<str, int, chars_hash, std::equal_to<str>, pair_alloc> m{make_alloc<pair_alloc>()};
        for (int i = 0; i < 1000; ++i) {
            str key(make_alloc<typename std::allocator_traits<Alloc>::template rebind_alloc<char>>());
            key.assign("key-with-a-long-prefix-so-it-allocates-");
            key += static_cast<char>('a' + i % 26);
            key += static_cast<char>('a' + i / 26 % 26);
            m.emplace(std::move(key), i);
        }
        benchmark::DoNotOptimize(m.size());
    }
}

template <bool Tracked>
void pmr_map_insert(benchmark::State& state) {
    memdiag::tracking_resource tracked{bench_tracker};
    std::pmr::memory_resource* res = Tracked ? static_cast<std::pmr::memory_resource*>(&tracked)
                                             : std::pmr::new_delete_resource();
    for (auto _ : state) {
        std::pmr::map<int, std::pmr::string> m{res};
        for (int i = 0; i < 1000; ++i) m.emplace(i * 7919 % 1000, "a string long enough to allocate");
        benchmark::DoNotOptimize(m.size());
    }
}

using plain = std::allocator<int>;
using tracked = memdiag::tracking_allocator<int>;

}  // namespace

BENCHMARK_TEMPLATE(vector_push_back, plain);
BENCHMARK_TEMPLATE(vector_push_back, tracked);
BENCHMARK_TEMPLATE(map_insert, std::allocator<std::pair<const int, int>>);
BENCHMARK_TEMPLATE(map_insert, memdiag::tracking_allocator<std::pair<const int, int>>);
BENCHMARK_TEMPLATE(unordered_string_fill, plain);
BENCHMARK_TEMPLATE(unordered_string_fill, tracked);
BENCHMARK_TEMPLATE(pmr_map_insert, false);
BENCHMARK_TEMPLATE(pmr_map_insert, true);

BENCHMARK_MAIN();
