// tests/integration/catch2_failing.cpp - Catch2 cases that fail on purpose (and
// a few that must pass under a setting), run one tag at a time by
// tests/integration_check.sh, which checks the exit status, the messages, the
// snapshot files and the baseline round trip.
#define MEMDIAG_REPLACE_GLOBAL_NEW
#include <memdiag/global_new.hpp>

// Catch2's main: tests/main.cpp, compiled once for every Catch2 program.
#define MEMDIAG_CATCH2_LISTENER
#include <memdiag/testing/catch2.hpp>

#include "workload.hpp"

using namespace memdiag_it;

TEST_CASE("allocation count over the limit", "[allocs]") {
    MEMDIAG_CHECK_ALLOCS_AT_MOST(2, allocate_three());
    MEMDIAG_REQUIRE_ALLOCS_AT_MOST(3, allocate_three());  // passes: the test goes on after CHECK
}

TEST_CASE("bytes over the limit", "[bytes]") { MEMDIAG_REQUIRE_BYTES_AT_MOST(100, allocate_kilobyte()); }

TEST_CASE("peak over the limit", "[peak]") { MEMDIAG_CHECK_PEAK_AT_MOST(100, allocate_kilobyte()); }

TEST_CASE("allocation where none is allowed", "[no_alloc]") { MEMDIAG_REQUIRE_NO_ALLOC(allocate_n(1)); }

TEST_CASE("leak: memory left allocated", "[leak]") {
    MEMDIAG_REQUIRE_NO_LEAK(memdiag_it_leaky_function());
    FAIL("not reached: REQUIRE stops the test");
}

TEST_CASE("budget section breached", "[section]") {
    MEMDIAG_BUDGET_SECTION(memdiag::limits{}.max_allocations(2));
    allocate_n(5);
}

TEST_CASE("default budget breached", "[default_budget]") { allocate_n(50); }

TEST_CASE("setup code is left out of the default budget", "[setup]") {
    std::vector<std::unique_ptr<int>> fixture;
    {
        memdiag::testing::setup_scope setup;
        for (int i = 0; i < 500; ++i) fixture.push_back(std::make_unique<int>(i));
    }
    allocate_n(5);
}

TEST_CASE("per-test override of the default budget", "[override]") {
    memdiag::testing::test_budget(memdiag::limits{}.max_allocations(1000));
    allocate_n(50);
}

TEST_CASE("baseline workload", "[baseline]") {
    hold_n(work_size());
    MEMDIAG_BASELINE_SCOPE("inner");
    hold_n(work_size());
}
