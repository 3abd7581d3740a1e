// examples/catch2_budget.cpp - memory assertions and a budget in a Catch2 suite.
//
//   MEMDIAG_SNAPSHOT_DIR=snapshots ./catch2_budget      # failing tests leave a heap snapshot
//   MEMDIAG_TEST_BUDGET=peak=64M ./catch2_budget        # a default budget for every test
//   MEMDIAG_BASELINE=record:mem.baseline ./catch2_budget  # then check:mem.baseline
#define MEMDIAG_REPLACE_GLOBAL_NEW  // count every operator new of this program
#include <memdiag/global_new.hpp>

// Catch2's main is in a file of its own, compiled once for the whole suite
// (Catch2 v2's takes about 20 s): here tests/main.cpp, which is
//     #define CATCH_CONFIG_MAIN
//     #include <catch2/catch.hpp>
// (Catch2 v3: link Catch2::Catch2WithMain instead).
#define MEMDIAG_CATCH2_LISTENER  // snapshots, default budget, baselines
#include <memdiag/testing/catch2.hpp>

#include <string>
#include <unordered_map>
#include <vector>

namespace {
std::vector<std::string> split(const std::string& text, char sep) {
    std::vector<std::string> out;
    std::string::size_type start = 0, end;
    while ((end = text.find(sep, start)) != std::string::npos) {
        out.push_back(text.substr(start, end - start));
        start = end + 1;
    }
    out.push_back(text.substr(start));
    return out;
}
}  // namespace

TEST_CASE("split allocates once per field plus the vector's growth") {
    const std::string line = "alpha,beta,gamma,a-rather-long-field-that-leaves-the-small-string-buffer";
    // 1 long field + 3 vector growths (1, 2, 4 slots); short fields stay in SSO buffers.
    MEMDIAG_REQUIRE_ALLOCS_AT_MOST(4, split(line, ','));
    MEMDIAG_CHECK_BYTES_AT_MOST(1024, split(line, ','));
    MEMDIAG_CHECK_NO_LEAK(split(line, ','));
}

TEST_CASE("lookups in a warmed-up table do not allocate") {
    std::unordered_map<int, int> table;
    {
        memdiag::testing::setup_scope setup;  // not counted against the test's default budget
        for (int i = 0; i < 1000; ++i) table[i] = i * i;
    }
    MEMDIAG_REQUIRE_NO_ALLOC(table.find(500));
}

TEST_CASE("a request stays within its budget") {
    MEMDIAG_BUDGET_SECTION(memdiag::limits{}.max_allocations(100).max_peak_bytes(64 * 1024));
    std::vector<std::string> fields = split("a,b,c,d", ',');
    CHECK(fields.size() == 4);
}
