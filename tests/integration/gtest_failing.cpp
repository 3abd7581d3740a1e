// tests/integration/gtest_failing.cpp - GoogleTest cases that fail on purpose
// (and must-pass cases), run one filter at a time by tests/integration_check.sh.
// Linked with gtest_main: the listener registers itself (MEMDIAG_GTEST_LISTENER).
#define MEMDIAG_REPLACE_GLOBAL_NEW
#include <memdiag/global_new.hpp>

#define MEMDIAG_GTEST_LISTENER
#include <memdiag/testing/gtest.hpp>

#include "workload.hpp"

using namespace memdiag_it;

TEST(Failing, AllocsOverLimit) {
    MEMDIAG_EXPECT_ALLOCS_AT_MOST(2, allocate_three()) << "extra context streams in";
    MEMDIAG_ASSERT_ALLOCS_AT_MOST(3, allocate_three());
}

TEST(Failing, BytesOverLimit) { MEMDIAG_EXPECT_BYTES_AT_MOST(100, allocate_kilobyte()); }

TEST(Failing, PeakOverLimit) { MEMDIAG_ASSERT_PEAK_AT_MOST(100, allocate_kilobyte()); }

TEST(Failing, NoAlloc) { MEMDIAG_EXPECT_NO_ALLOC(allocate_n(1)); }

TEST(Failing, Leak) {
    MEMDIAG_ASSERT_NO_LEAK(memdiag_it_leaky_function());
    ADD_FAILURE() << "not reached: ASSERT returns";
}

TEST(Failing, BudgetSection) {
    MEMDIAG_BUDGET_SECTION(memdiag::limits{}.max_allocations(2));
    allocate_n(5);
}

TEST(Failing, DefaultBudget) { allocate_n(50); }

TEST(Passing, SetupExcluded) {
    std::vector<std::unique_ptr<int>> fixture;
    {
        memdiag::testing::setup_scope setup;
        for (int i = 0; i < 500; ++i) fixture.push_back(std::make_unique<int>(i));
    }
    allocate_n(5);
}

TEST(Passing, EveryAssertion) {
    std::vector<int> v;
    v.reserve(8);
    MEMDIAG_EXPECT_ALLOCS_AT_MOST(3, allocate_three());
    MEMDIAG_ASSERT_ALLOCS_AT_MOST(3, allocate_three());
    MEMDIAG_EXPECT_BYTES_AT_MOST(4096, allocate_kilobyte());
    MEMDIAG_ASSERT_BYTES_AT_MOST(4096, allocate_kilobyte());
    MEMDIAG_EXPECT_PEAK_AT_MOST(4096, allocate_kilobyte());
    MEMDIAG_ASSERT_PEAK_AT_MOST(4096, allocate_kilobyte());
    MEMDIAG_EXPECT_NO_ALLOC(v.push_back(1));
    MEMDIAG_ASSERT_NO_ALLOC(v.push_back(2));
    MEMDIAG_EXPECT_NO_LEAK(allocate_three());
    MEMDIAG_ASSERT_NO_LEAK(allocate_three());
    MEMDIAG_BUDGET_SECTION(memdiag::limits{}.max_allocations(10));
    allocate_three();
}

TEST(Baseline, Workload) {
    hold_n(work_size());
    MEMDIAG_BASELINE_SCOPE("inner");
    hold_n(work_size());
}
