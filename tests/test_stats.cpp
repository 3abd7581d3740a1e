// Tests for allocation_stats arithmetic and formatting.
#include <memdiag/stats.hpp>

#include <sstream>

#include "catch.hpp"

using memdiag::allocation_stats;

static allocation_stats make(std::uint64_t a, std::uint64_t d, std::uint64_t ba, std::uint64_t bf,
                             std::uint64_t peak) {
    allocation_stats s;
    s.allocations = a;
    s.deallocations = d;
    s.bytes_allocated = ba;
    s.bytes_freed = bf;
    s.peak_live_bytes = peak;
    return s.update_live();
}

TEST_CASE("live figures derive from the counters", "[stats]") {
    auto s = make(5, 2, 500, 120, 400);
    CHECK(s.live_bytes == 380);
    CHECK(s.live_allocations == 3);
}

TEST_CASE("difference of two readings", "[stats]") {
    auto before = make(10, 4, 1000, 400, 700);
    auto after = make(15, 10, 1800, 1300, 900);
    auto d = after - before;
    CHECK(d.allocations == 5);
    CHECK(d.deallocations == 6);
    CHECK(d.bytes_allocated == 800);
    CHECK(d.bytes_freed == 900);
    CHECK(d.live_bytes == -100);  // the scope freed more than it allocated
    CHECK(d.live_allocations == -1);
    CHECK(d.peak_live_bytes == 300);  // 900 over the 600 live at the start
}

TEST_CASE("peak below the starting live bytes gives zero growth", "[stats]") {
    auto before = make(10, 0, 1000, 0, 1000);
    auto after = make(10, 5, 1000, 500, 1000);
    CHECK((after - before).peak_live_bytes == 0);
}

TEST_CASE("sum of two trackers", "[stats]") {
    auto s = make(1, 1, 10, 10, 10) + make(2, 0, 20, 0, 20);
    CHECK(s.allocations == 3);
    CHECK(s.live_bytes == 20);
    CHECK(s.peak_live_bytes == 30);
    CHECK(s == make(3, 1, 30, 10, 30));
    CHECK(s != make(3, 1, 30, 10, 31));
}

TEST_CASE("formatting names every field", "[stats]") {
    auto s = make(3, 1, 96, 32, 64);
    std::ostringstream os;
    os << s;
    CHECK(os.str() ==
          "allocations=3 deallocations=1 bytes_allocated=96 bytes_freed=32 live_bytes=64 "
          "live_allocations=2 peak_live_bytes=64");
    CHECK(s.to_string() == os.str());
    char tiny[8];
    volatile std::size_t tiny_size = sizeof tiny;  // opaque, so the compiler does not warn at build time
    CHECK(s.format(tiny, tiny_size) > 8);  // truncated safely, full length reported
    CHECK(std::string(tiny) == "allocat");
}
