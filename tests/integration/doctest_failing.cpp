// tests/integration/doctest_failing.cpp - doctest cases that fail on purpose
// (and a passing one), run one test-case filter at a time by
// tests/integration_check.sh.
#define MEMDIAG_REPLACE_GLOBAL_NEW
#include <memdiag/global_new.hpp>

#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#define MEMDIAG_DOCTEST_LISTENER
#include <memdiag/testing/doctest.hpp>

#include "workload.hpp"

using namespace memdiag_it;

TEST_CASE("allocs over the limit") {
    MEMDIAG_CHECK_ALLOCS_AT_MOST(2, allocate_three());
    MEMDIAG_REQUIRE_ALLOCS_AT_MOST(3, allocate_three());
}

TEST_CASE("leak") { MEMDIAG_REQUIRE_NO_LEAK(memdiag_it_leaky_function()); }

TEST_CASE("budget section") {
    MEMDIAG_BUDGET_SECTION(memdiag::limits{}.max_allocations(2));
    allocate_n(5);
}

TEST_CASE("every assertion passes") {
    std::vector<int> v;
    v.reserve(8);
    MEMDIAG_CHECK_ALLOCS_AT_MOST(3, allocate_three());
    MEMDIAG_REQUIRE_ALLOCS_AT_MOST(3, allocate_three());
    MEMDIAG_CHECK_BYTES_AT_MOST(4096, allocate_kilobyte());
    MEMDIAG_REQUIRE_BYTES_AT_MOST(4096, allocate_kilobyte());
    MEMDIAG_CHECK_PEAK_AT_MOST(4096, allocate_kilobyte());
    MEMDIAG_REQUIRE_PEAK_AT_MOST(4096, allocate_kilobyte());
    MEMDIAG_CHECK_NO_ALLOC(v.push_back(1));
    MEMDIAG_REQUIRE_NO_ALLOC(v.push_back(2));
    MEMDIAG_CHECK_NO_LEAK(allocate_three());
    MEMDIAG_REQUIRE_NO_LEAK(allocate_three());
}

TEST_CASE("baseline workload") {
    MEMDIAG_BASELINE_SCOPE("inner");
    hold_n(work_size());
}
