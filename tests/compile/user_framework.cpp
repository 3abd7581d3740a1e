// tests/compile/user_framework.cpp - one test-framework integration in user code,
// for tests/compile/warnings.sh: memdiag's macros and listener expanded in a
// test file compiled with the user's warning set (-I, not -isystem).
// Select the framework with -DUSER_CATCH2, -DUSER_GTEST, -DUSER_DOCTEST or
// -DUSER_BENCHMARK. Compiled with -c only: no framework main is built.
#include <memory>
#include <vector>

#if defined(USER_CATCH2)
#define MEMDIAG_CATCH2_LISTENER
#include <memdiag/testing/catch2.hpp>

TEST_CASE("user code with memdiag's Catch2 macros") {
    std::vector<int> v;
    v.reserve(8);
    MEMDIAG_REQUIRE_NO_ALLOC(v.push_back(1));
    MEMDIAG_CHECK_ALLOCS_AT_MOST(1, std::make_unique<int>(2));
    MEMDIAG_CHECK_BYTES_AT_MOST(64, std::make_unique<int>(3));
    MEMDIAG_CHECK_PEAK_AT_MOST(64, std::make_unique<int>(4));
    MEMDIAG_CHECK_NO_LEAK(std::make_unique<int>(5));
    MEMDIAG_BASELINE_SCOPE("scope");
}

#elif defined(USER_GTEST)
#define MEMDIAG_GTEST_LISTENER
#include <memdiag/testing/gtest.hpp>

TEST(User, MemdiagMacros) {
    std::vector<int> v;
    v.reserve(8);
    MEMDIAG_ASSERT_NO_ALLOC(v.push_back(1));
    MEMDIAG_EXPECT_ALLOCS_AT_MOST(1, std::make_unique<int>(2));
    MEMDIAG_EXPECT_BYTES_AT_MOST(64, std::make_unique<int>(3));
    MEMDIAG_EXPECT_PEAK_AT_MOST(64, std::make_unique<int>(4));
    MEMDIAG_EXPECT_NO_LEAK(std::make_unique<int>(5));
    MEMDIAG_BASELINE_SCOPE("scope");
}

#elif defined(USER_DOCTEST)
#define MEMDIAG_DOCTEST_LISTENER
#include <memdiag/testing/doctest.hpp>

TEST_CASE("user code with memdiag's doctest macros") {
    std::vector<int> v;
    v.reserve(8);
    MEMDIAG_REQUIRE_NO_ALLOC(v.push_back(1));
    MEMDIAG_CHECK_ALLOCS_AT_MOST(1, std::make_unique<int>(2));
    MEMDIAG_CHECK_BYTES_AT_MOST(64, std::make_unique<int>(3));
    MEMDIAG_CHECK_PEAK_AT_MOST(64, std::make_unique<int>(4));
    MEMDIAG_CHECK_NO_LEAK(std::make_unique<int>(5));
    MEMDIAG_BASELINE_SCOPE("scope");
}

#elif defined(USER_BENCHMARK)
#include <memdiag/benchmark.hpp>

static void BM_user(benchmark::State& state) {
    for (auto _ : state) {
        auto p = std::make_unique<int>(1);
        benchmark::DoNotOptimize(p.get());
    }
}
BENCHMARK(BM_user);
MEMDIAG_BENCHMARK_MAIN();

#else
#error "define one of USER_CATCH2, USER_GTEST, USER_DOCTEST, USER_BENCHMARK"
#endif
