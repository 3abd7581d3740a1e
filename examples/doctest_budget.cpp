// examples/doctest_budget.cpp - memory assertions and a budget in a doctest suite.
//
//   MEMDIAG_SNAPSHOT_DIR=snapshots ./doctest_budget
#define MEMDIAG_REPLACE_GLOBAL_NEW  // count every operator new of this program
#include <memdiag/global_new.hpp>

#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#define MEMDIAG_DOCTEST_LISTENER  // snapshots on failure, per-scope baselines
#include <memdiag/testing/doctest.hpp>

#include <memory>
#include <vector>

TEST_CASE("a reserved vector grows without allocating") {
    std::vector<int> v;
    v.reserve(64);
    MEMDIAG_REQUIRE_NO_ALLOC(v.push_back(1), v.push_back(2));
    MEMDIAG_CHECK_ALLOCS_AT_MOST(1, std::make_unique<int>(3));
}

TEST_CASE("building a table stays within budget") {
    MEMDIAG_BUDGET_SECTION(memdiag::limits{}.max_allocations(2).max_bytes(8192));
    std::vector<int> table(1000, 7);
    CHECK(table.size() == 1000);
}
