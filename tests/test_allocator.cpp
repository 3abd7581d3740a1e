// Tests for tracking_allocator: standard containers, alignment, overflow, semantics.
#include <memdiag/allocator.hpp>

#include <cstdint>
#include <deque>
#include <limits>
#include <list>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

#include "catch.hpp"
#include "flaky_upstream.hpp"

template <class T>
using alloc = memdiag::tracking_allocator<T>;

TEST_CASE("vector counts requested bytes exactly", "[allocator]") {
    memdiag::tracker t{"vector"};
    {
        std::vector<std::uint32_t, alloc<std::uint32_t>> v{alloc<std::uint32_t>{t}};
        v.reserve(100);
        CHECK(t.stats().allocations == 1);
        CHECK(t.stats().bytes_allocated == 400);
        CHECK(t.stats().live_bytes == 400);
        v.reserve(300);
        CHECK(t.stats().allocations == 2);
        CHECK(t.stats().deallocations == 1);
        CHECK(t.stats().live_bytes == 1200);
        CHECK(t.stats().peak_live_bytes == 1600);
    }
    CHECK(t.stats().live_bytes == 0);
    CHECK(t.stats().live_allocations == 0);
}

TEST_CASE("every node container balances", "[allocator]") {
    memdiag::tracker t{"nodes"};
    {
        std::list<int, alloc<int>> l{alloc<int>{t}};
        for (int i = 0; i < 10; ++i) l.push_back(i);
        CHECK(t.stats().live_allocations == 10);

        std::map<int, int, std::less<int>, alloc<std::pair<const int, int>>> m{alloc<std::pair<const int, int>>{t}};
        for (int i = 0; i < 10; ++i) m[i] = i;
        CHECK(t.stats().live_allocations == 20);

        std::deque<int, alloc<int>> d{alloc<int>{t}};
        for (int i = 0; i < 5000; ++i) d.push_back(i);

        using umap = std::unordered_map<std::string, int, std::hash<std::string>, std::equal_to<std::string>,
                                        alloc<std::pair<const std::string, int>>>;
        umap u{alloc<std::pair<const std::string, int>>{t}};
        for (int i = 0; i < 100; ++i) u.emplace(std::to_string(i), i);
        CHECK(t.stats().live_allocations > 120);
    }
    auto s = t.stats();
    CHECK(s.live_bytes == 0);
    CHECK(s.live_allocations == 0);
    CHECK(s.allocations == s.deallocations);
}

TEST_CASE("basic_string beyond the small buffer", "[allocator]") {
    memdiag::tracker t{"string"};
    using tstring = std::basic_string<char, std::char_traits<char>, alloc<char>>;
    {
        tstring s{alloc<char>{t}};
        s.assign(200, 'x');
        CHECK(t.stats().allocations == 1);
        CHECK(t.stats().bytes_allocated >= 201);
    }
    CHECK(t.stats().live_bytes == 0);
}

TEST_CASE("allocate_shared counts the control block and object together", "[allocator]") {
    memdiag::tracker t{"shared"};
    {
        auto p = std::allocate_shared<std::uint64_t>(alloc<std::uint64_t>{t}, 42u);
        CHECK(*p == 42u);
        CHECK(t.stats().allocations == 1);
        CHECK(t.stats().bytes_allocated >= sizeof(std::uint64_t));
    }
    CHECK(t.stats().live_bytes == 0);
}

TEST_CASE("over-aligned types keep their alignment", "[allocator]") {
    struct alignas(64) line {
        char bytes[64];
    };
    memdiag::tracker t{"aligned"};
    std::vector<line, alloc<line>> v{alloc<line>{t}};
    for (int i = 0; i < 33; ++i) {
        v.emplace_back();
        CHECK(reinterpret_cast<std::uintptr_t>(v.data()) % 64 == 0);
    }
    CHECK(t.stats().live_bytes == static_cast<std::int64_t>(v.capacity() * 64));
}

TEST_CASE("zero-size allocations are counted and returned", "[allocator]") {
    memdiag::tracker t{"zero"};
    alloc<int> a{t};
    int* p = a.allocate(0);
    CHECK(t.stats().allocations == 1);
    CHECK(t.stats().bytes_allocated == 0);
    a.deallocate(p, 0);
    CHECK(t.stats().deallocations == 1);
}

TEST_CASE("overflowing sizes fail as the standard says", "[allocator]") {
    memdiag::tracker t{"overflow"};
    alloc<std::uint64_t> a{t};
    const std::size_t overflowing = std::numeric_limits<std::size_t>::max() / 4;
    CHECK_THROWS_AS(a.allocate(overflowing), std::bad_array_new_length);
    CHECK_THROWS_AS(a.allocate(a.max_size() + 1), std::bad_alloc);
    CHECK(t.stats().allocations == 0);
    CHECK(a.max_size() == std::allocator_traits<std::allocator<std::uint64_t>>::max_size({}));
}

TEST_CASE("equality follows the tracker; rebinding keeps it", "[allocator]") {
    memdiag::tracker t1{"one"}, t2{"two"};
    alloc<int> a{t1}, b{t1}, c{t2};
    CHECK(a == b);
    CHECK(a != c);
    alloc<double> rebound{a};
    CHECK(rebound == a);
    CHECK(rebound.tracker() == memdiag::tracker_ref(t1));
    using rebind_t = std::allocator_traits<alloc<int>>::rebind_alloc<long>;
    CHECK(std::is_same<rebind_t, memdiag::tracking_allocator<long>>::value);
    CHECK(alloc<int>{} == alloc<int>{});
    CHECK(std::string(alloc<int>{}.tracker().name()) == "default");
}

TEST_CASE("the tracker propagates on copy, move and swap", "[allocator]") {
    using traits = std::allocator_traits<alloc<int>>;
    CHECK(traits::propagate_on_container_copy_assignment::value);
    CHECK(traits::propagate_on_container_move_assignment::value);
    CHECK(traits::propagate_on_container_swap::value);
    CHECK_FALSE(traits::is_always_equal::value);

    memdiag::tracker t1{"src"}, t2{"dst"};
    std::vector<int, alloc<int>> src({1, 2, 3}, alloc<int>{t1});
    std::vector<int, alloc<int>> dst(alloc<int>{t2});
    dst = std::move(src);  // memory and the tracker that counted it move together
    CHECK(dst.get_allocator().tracker() == memdiag::tracker_ref(t1));
    CHECK(t2.stats().allocations == 0);
    std::vector<int, alloc<int>> other(alloc<int>{t2});
    other.push_back(7);
    swap(dst, other);
    CHECK(dst.get_allocator().tracker() == memdiag::tracker_ref(t2));
    std::vector<int, alloc<int>> copy(alloc<int>{t2});
    copy = other;
    CHECK(copy.get_allocator().tracker() == memdiag::tracker_ref(t1));
}

TEST_CASE("an empty upstream costs no space", "[allocator]") {
    CHECK(sizeof(alloc<int>) == sizeof(void*));
}

// The common allocation is counted before the upstream call (it moves no
// peak or publish mark); a throwing upstream must find the count taken back.
TEST_CASE("allocator: an upstream throwing below the peak leaves every figure unchanged", "[allocator]") {
    memdiag::tracker t{"throw below peak"};
    bool fail = false;
    using flaky = memdiag_test::flaky_allocator<int>;
    memdiag::tracking_allocator<int, flaky> a{t, flaky{&fail}};
    a.deallocate(a.allocate(1000), 1000);  // the peak is now 4000 bytes, live 0
    int* kept = a.allocate(4);
    const memdiag::allocation_stats before = t.stats();
    REQUIRE(before.peak_live_bytes == 4000);
    fail = true;
    for (int i = 0; i < 3; ++i) CHECK_THROWS_AS(a.allocate(10), std::bad_alloc);
    fail = false;
    const memdiag::allocation_stats after = t.stats();
    CHECK(after.allocations == before.allocations);
    CHECK(after.bytes_allocated == before.bytes_allocated);
    CHECK(after.live_bytes == before.live_bytes);
    CHECK(after.peak_live_bytes == before.peak_live_bytes);
    CHECK(after == before);
    // And the shard still counts right afterwards.
    int* more = a.allocate(10);
    CHECK(t.stats().live_bytes == before.live_bytes + 40);
    a.deallocate(more, 10);
    a.deallocate(kept, 4);
    CHECK(t.stats().live_bytes == 0);
    CHECK(t.stats().allocations == t.stats().deallocations);
}

// While the shard's peak rises (no free since the view went above it) an
// allocation is counted before the upstream call too; a throwing upstream
// must leave the peak where the last successful allocation took it.
TEST_CASE("allocator: an upstream throwing while the peak rises leaves the peak", "[allocator]") {
    memdiag::tracker t{"throw while rising"};
    bool fail = false;
    using flaky = memdiag_test::flaky_allocator<int>;
    memdiag::tracking_allocator<int, flaky> a{t, flaky{&fail}};
    int* first = a.allocate(1000);  // 4000 bytes, above the peak (0): rising
    fail = true;
    CHECK_THROWS_AS(a.allocate(10), std::bad_alloc);
    fail = false;
    CHECK(t.stats().peak_live_bytes == 4000);
    CHECK(t.stats().live_bytes == 4000);
    a.deallocate(first, 1000);  // the view turns down: the peak is stored now
    const memdiag::allocation_stats s = t.stats();
    CHECK(s.peak_live_bytes == 4000);
    CHECK(s.live_bytes == 0);
    CHECK(s.allocations == 1);
    CHECK(s.bytes_allocated == 4000);
}
