// Tests for tracking_resource with std::pmr containers.
#include <memdiag/resource.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <memory_resource>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

#include "catch.hpp"
#include "flaky_upstream.hpp"

TEST_CASE("pmr containers are counted exactly", "[resource]") {
    memdiag::tracking_resource res;
    {
        std::pmr::vector<std::uint64_t> v{&res};
        v.reserve(10);
        CHECK(res.stats().allocations == 1);
        CHECK(res.stats().bytes_allocated == 80);

        std::pmr::map<int, std::pmr::string> m{&res};
        m[1] = std::pmr::string(100, 'x');  // node plus a string through the same resource
        CHECK(res.stats().allocations == 3);

        std::pmr::unordered_map<int, int> u{&res};
        for (int i = 0; i < 100; ++i) u[i] = i;
        CHECK(res.stats().live_allocations > 100);
    }
    CHECK(res.stats().live_bytes == 0);
    CHECK(res.stats().allocations == res.stats().deallocations);
}

TEST_CASE("alignment requests reach the upstream", "[resource]") {
    memdiag::tracking_resource res;
    void* p = res.allocate(256, 128);
    CHECK(reinterpret_cast<std::uintptr_t>(p) % 128 == 0);
    CHECK(res.stats().bytes_allocated == 256);
    res.deallocate(p, 256, 128);
    CHECK(res.stats().live_bytes == 0);
}

TEST_CASE("a resource can count into a named tracker over any upstream", "[resource]") {
    memdiag::tracker t{"arena"};
    std::pmr::monotonic_buffer_resource arena;
    memdiag::tracking_resource res{t, &arena};
    CHECK(res.upstream_resource() == &arena);
    std::pmr::vector<int> v{&res};
    v.assign(50, 1);
    CHECK(t.stats().bytes_allocated == 200);
    CHECK(res.tracker() == memdiag::tracker_ref(t));
}

TEST_CASE("a resource is equal only to itself", "[resource]") {
    memdiag::tracking_resource a, b;
    CHECK(a.is_equal(a));
    CHECK_FALSE(a.is_equal(b));
    CHECK_FALSE(a.is_equal(*std::pmr::new_delete_resource()));
}

TEST_CASE("zero-byte requests are counted", "[resource]") {
    memdiag::tracking_resource res;
    void* p = res.allocate(0);
    CHECK(res.stats().allocations == 1);
    res.deallocate(p, 0);
    CHECK(res.stats().deallocations == 1);
}

TEST_CASE("upstream failure is not counted", "[resource]") {
    memdiag::tracking_resource res{std::pmr::null_memory_resource()};
    CHECK_THROWS_AS(res.allocate(16), std::bad_alloc);
    CHECK(res.stats().allocations == 0);
}

// The common allocation is counted before the upstream call (it moves no
// peak or publish mark); a throwing upstream must find the count taken back.
TEST_CASE("resource: an upstream throwing below the peak leaves every figure unchanged", "[resource]") {
    memdiag_test::flaky_resource upstream;
    memdiag::tracking_resource res{&upstream};
    res.deallocate(res.allocate(4096), 4096);  // the peak is now 4096 bytes, live 0
    void* kept = res.allocate(32);
    const memdiag::allocation_stats before = res.stats();
    REQUIRE(before.peak_live_bytes == 4096);
    upstream.fail = true;
    for (int i = 0; i < 3; ++i) CHECK_THROWS_AS(res.allocate(64), std::bad_alloc);
    upstream.fail = false;
    const memdiag::allocation_stats after = res.stats();
    CHECK(after.allocations == before.allocations);
    CHECK(after.bytes_allocated == before.bytes_allocated);
    CHECK(after.live_bytes == before.live_bytes);
    CHECK(after == before);
    void* more = res.allocate(64);
    CHECK(res.stats().live_bytes == before.live_bytes + 64);
    res.deallocate(more, 64);
    res.deallocate(kept, 32);
    CHECK(res.stats().live_bytes == 0);
    CHECK(res.stats().allocations == res.stats().deallocations);
}

// Issue 17: a resource given a tracker built one of its own anyway, so after
// MEMDIAG_MAX_TRACKERS - 2 such resources new trackers lost their shard.
TEST_CASE("a resource given a tracker takes no tracker shard", "[resource]") {
    memdiag::tracker shared{"shared by resources"};
    std::vector<std::unique_ptr<memdiag::tracking_resource>> resources;
    for (int i = 0; i < MEMDIAG_MAX_TRACKERS; ++i)
        resources.push_back(std::make_unique<memdiag::tracking_resource>(memdiag::tracker_ref(shared)));
    memdiag::tracker later{"later"};
    CHECK(later.sharded());
    std::pmr::vector<int> v{resources.back().get()};
    v.resize(10);
    CHECK(shared.stats().bytes_allocated == 40);
    CHECK(resources.front()->stats().bytes_allocated == 40);  // the same tracker
    // A resource given none still counts into its own.
    memdiag::tracking_resource own;
    std::pmr::vector<int> w{&own};
    w.resize(3);
    CHECK(own.stats().bytes_allocated == 12);
    CHECK(std::string(own.tracker().name()) == "tracking_resource");
}

namespace {
// An upstream that counts the calls it gets, so a test sees which path ran.
class counting_upstream : public std::pmr::memory_resource {
public:
    int allocations = 0;
    int deallocations = 0;

private:
    void* do_allocate(std::size_t bytes, std::size_t alignment) override {
        ++allocations;
        return std::pmr::new_delete_resource()->allocate(bytes, alignment);
    }
    void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
        ++deallocations;
        std::pmr::new_delete_resource()->deallocate(p, bytes, alignment);
    }
    bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override { return this == &other; }
};
}  // namespace

// Over new_delete_resource() the resource calls ::operator new / delete itself
// (one virtual call fewer per event): any other upstream must still be asked.
TEST_CASE("an upstream other than new_delete_resource is asked for every event", "[resource]") {
    counting_upstream up;
    memdiag::tracking_resource res{&up};
    {
        std::pmr::vector<int> v{&res};
        for (int i = 0; i < 100; ++i) v.push_back(i);
        std::pmr::string s(200, 'x', &res);
    }
    CHECK(up.allocations > 1);
    CHECK(static_cast<std::uint64_t>(up.allocations) == res.stats().allocations);
    CHECK(up.deallocations == up.allocations);
    CHECK(res.stats().live_bytes == 0);
}

TEST_CASE("over new_delete_resource every alignment is honoured and counted", "[resource]") {
    memdiag::tracker t{"direct"};
    memdiag::tracking_resource res{t};  // default upstream: the direct path
    CHECK(res.upstream_resource() == std::pmr::new_delete_resource());
    for (std::size_t align = 1; align <= 8192; align *= 2) {
        void* p = res.allocate(align * 3, align);
        CHECK(reinterpret_cast<std::uintptr_t>(p) % align == 0);
        res.deallocate(p, align * 3, align);
    }
    CHECK(t.stats().allocations == 14);
    CHECK(t.stats().bytes_allocated == 3 * 16383);
    CHECK(t.stats().live_bytes == 0);
}
