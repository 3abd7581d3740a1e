// bench/bench_containers.cpp - tracking_allocator and tracking_resource against
// the untracked versions on allocation-heavy container work.
//
// Each pair takes its memory from the same place, so the difference is
// memdiag's work: tracking_allocator<T> forwards to std::allocator<T> (rows
// "plain"), tracking_resource to new_delete_resource() (pmr_map_insert<plain>).
// A stateful allocator also changes the container's code (std::string with a
// custom allocator is compiled here instead of coming from libstdc++, and it
// grows by the allocator's pointer): the rows "stateful" forward to
// std::allocator through an allocator holding a pointer and counting nothing,
// which separates that from memdiag's own cost. For pmr the same role is
// played by pmr_map_insert<pass_through>: an adaptor resource that forwards
// to new_delete_resource() and counts nothing. The tracker is sharded (the
// fast path); no global hook is linked in, so std::allocator is plain malloc.
//
// Quote ratios from one run on a loaded machine as
//   bench_containers --benchmark_repetitions=9 --benchmark_enable_random_interleaving=true
// medians of CPU time (wall time follows the machine's load, CPU time less so).
// Instructions per iteration: MEMDIAG_BENCH_ITERATIONS (fixed_iterations.hpp).
#include <benchmark/benchmark.h>
#include <memdiag/memdiag.hpp>
#include <memdiag/resource.hpp>

#include "fixed_iterations.hpp"

#include <map>
#include <memory_resource>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace {

memdiag::tracker bench_tracker{"bench"};

/// An allocator with a tracking_allocator's state (one pointer) and no work:
/// forwards to std::allocator. The baseline that isolates memdiag's counting.
template <class T>
struct stateful {
    using value_type = T;
    using propagate_on_container_copy_assignment = std::true_type;
    using propagate_on_container_move_assignment = std::true_type;
    using propagate_on_container_swap = std::true_type;
    using is_always_equal = std::false_type;
    const void* tag = &bench_tracker;

    stateful() = default;
    template <class U>
    stateful(const stateful<U>& other) noexcept : tag(other.tag) {}  // NOLINT(google-explicit-constructor)
    T* allocate(std::size_t n) { return std::allocator<T>{}.allocate(n); }
    void deallocate(T* p, std::size_t n) noexcept { std::allocator<T>{}.deallocate(p, n); }
    template <class U>
    friend bool operator==(const stateful& a, const stateful<U>& b) noexcept { return a.tag == b.tag; }
    template <class U>
    friend bool operator!=(const stateful& a, const stateful<U>& b) noexcept { return a.tag != b.tag; }
};

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

/// A memory_resource adaptor that forwards to its upstream and does nothing
/// else: what any pmr adaptor pays (its own virtual call, then the upstream's).
class pass_through final : public std::pmr::memory_resource {
public:
    explicit pass_through(std::pmr::memory_resource* upstream) noexcept : upstream_(upstream) {}

private:
    void* do_allocate(std::size_t bytes, std::size_t alignment) override {
        return upstream_->allocate(bytes, alignment);
    }
    void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
        upstream_->deallocate(p, bytes, alignment);
    }
    bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override { return this == &other; }
    std::pmr::memory_resource* upstream_;
};

enum class pmr_kind { plain, pass_through, tracked };

// plain: new_delete_resource() itself; pass_through: the adaptor above over it;
// tracked: a tracking_resource over it.
template <pmr_kind Kind>
void pmr_map_insert(benchmark::State& state) {
    std::pmr::memory_resource* res = std::pmr::new_delete_resource();
    std::optional<memdiag::tracking_resource> tracked;
    std::optional<pass_through> forwarding;
    if (Kind == pmr_kind::tracked) res = &tracked.emplace(bench_tracker, res);
    if (Kind == pmr_kind::pass_through) res = &forwarding.emplace(res);
    for (auto _ : state) {
        std::pmr::map<int, std::pmr::string> m{res};
        for (int i = 0; i < 1000; ++i) m.emplace(i * 7919 % 1000, "a string long enough to allocate");
        benchmark::DoNotOptimize(m.size());
    }
}

using plain = std::allocator<int>;
using tracked = memdiag::tracking_allocator<int>;
using node = std::pair<const int, int>;

}  // namespace

BENCHMARK_TEMPLATE(vector_push_back, plain)->Apply(memdiag_bench::fixed_iterations);
BENCHMARK_TEMPLATE(vector_push_back, stateful<int>)->Apply(memdiag_bench::fixed_iterations);
BENCHMARK_TEMPLATE(vector_push_back, tracked)->Apply(memdiag_bench::fixed_iterations);
BENCHMARK_TEMPLATE(map_insert, std::allocator<node>)->Apply(memdiag_bench::fixed_iterations);
BENCHMARK_TEMPLATE(map_insert, stateful<node>)->Apply(memdiag_bench::fixed_iterations);
BENCHMARK_TEMPLATE(map_insert, memdiag::tracking_allocator<node>)->Apply(memdiag_bench::fixed_iterations);
BENCHMARK_TEMPLATE(unordered_string_fill, plain)->Apply(memdiag_bench::fixed_iterations);
BENCHMARK_TEMPLATE(unordered_string_fill, stateful<int>)->Apply(memdiag_bench::fixed_iterations);
BENCHMARK_TEMPLATE(unordered_string_fill, tracked)->Apply(memdiag_bench::fixed_iterations);
BENCHMARK_TEMPLATE(pmr_map_insert, pmr_kind::plain)->Apply(memdiag_bench::fixed_iterations);
BENCHMARK_TEMPLATE(pmr_map_insert, pmr_kind::pass_through)->Apply(memdiag_bench::fixed_iterations);
BENCHMARK_TEMPLATE(pmr_map_insert, pmr_kind::tracked)->Apply(memdiag_bench::fixed_iterations);

BENCHMARK_MAIN();
