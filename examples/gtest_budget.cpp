// examples/gtest_budget.cpp - memory assertions and a budget in a GoogleTest suite.
//
//   MEMDIAG_SNAPSHOT_DIR=snapshots ./gtest_budget
//   ./gtest_budget --memdiag-test-budget=allocations=10000 --memdiag-baseline=record:mem.baseline
#define MEMDIAG_REPLACE_GLOBAL_NEW  // count every operator new of this program
#include <memdiag/global_new.hpp>

#define MEMDIAG_GTEST_LISTENER  // one line: snapshots, default budget, baselines
#include <memdiag/testing/gtest.hpp>

#include <map>
#include <string>

namespace {
std::map<std::string, int> count_words(const std::string& text) {
    std::map<std::string, int> counts;
    std::string word;
    for (char c : text) {
        if (c == ' ') {
            if (!word.empty()) ++counts[word];
            word.clear();
        } else {
            word += c;
        }
    }
    if (!word.empty()) ++counts[word];
    return counts;
}
}  // namespace

TEST(CountWords, OneNodePerDistinctWord) {
    // Three distinct short words: three map nodes, no string buffers.
    MEMDIAG_EXPECT_ALLOCS_AT_MOST(3, count_words("to be or to be")) << "one node per distinct word";
    MEMDIAG_ASSERT_NO_LEAK(count_words("to be or not to be"));
}

TEST(CountWords, EmptyInputDoesNotAllocate) { MEMDIAG_EXPECT_NO_ALLOC(count_words("")); }

TEST(CountWords, StaysWithinBudget) {
    MEMDIAG_BUDGET_SECTION(memdiag::limits{}.max_peak_bytes(16 * 1024));
    EXPECT_EQ(count_words("a b a").at("a"), 2);
}
