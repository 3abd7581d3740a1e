// memdiag/testing/gtest.hpp - memory assertions and dump-on-failure for GoogleTest.
//
//     #include <memdiag/testing/gtest.hpp>
//
//     TEST(Parser, IsLean) {
//         MEMDIAG_ASSERT_ALLOCS_AT_MOST(3, parse(input));
//         MEMDIAG_EXPECT_BYTES_AT_MOST(4096, parse(input)) << "for input " << input;
//         MEMDIAG_EXPECT_NO_ALLOC(lookup(table, key));
//         MEMDIAG_EXPECT_NO_LEAK(run_request(req));
//         MEMDIAG_BUDGET_SECTION(memdiag::limits{}.max_peak_bytes(1 << 20));  // the rest of the block
//         handle(big_request);
//     }
//
// Assertions: MEMDIAG_{ASSERT,EXPECT}_{ALLOCS,BYTES,PEAK}_AT_MOST(n, expr),
// MEMDIAG_{ASSERT,EXPECT}_NO_ALLOC(expr), MEMDIAG_{ASSERT,EXPECT}_NO_LEAK(expr).
// ASSERT returns from the test on failure, EXPECT goes on, as in GoogleTest;
// both take `<< extra message`. The failure shows the figures, the top
// allocation sites (when the heap profiler runs) and the environment facts.
//
// The listener (dump on failure, default budget, baselines), in one line:
// either `#define MEMDIAG_GTEST_LISTENER` before this include in one file
// (works with gtest_main), or call memdiag::testing::gtest::install_listener()
// in main(). Settings come from the MEMDIAG_* environment variables or the
// same --memdiag-* options on the test binary's command line (testing/common.hpp).
//
// The per-test scope covers the fixture's construction, SetUp, the body,
// TearDown and destruction, on the test's thread; wrap SetUp code in a
// memdiag::testing::setup_scope to leave it out.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common.hpp"

namespace memdiag {
namespace testing {
namespace gtest {

/// A failure_sink: a non-fatal GoogleTest failure at where.
inline void fail(const std::string& message, source_place where) {
    ADD_FAILURE_AT(where.file != nullptr ? where.file : "?", where.line) << message;
}

/// The GoogleTest event listener: per-test scope (default budget, baselines),
/// a heap snapshot and text report at a test's first failure, the baseline
/// written at the end of the program.
class listener : public ::testing::EmptyTestEventListener {
public:
    /// Applies --memdiag-* options and starts the heap profiler when snapshots are wanted.
    void OnTestProgramStart(const ::testing::UnitTest&) override {
        for (const std::string& arg : ::testing::internal::GetArgvs()) parse_option(arg.c_str());
        warn_if_unhooked();
        if (!config().snapshot_dir.empty()) start_test_profiler();
        session().run_started();
    }
    /// Opens the per-test scope (before the fixture is made).
    void OnTestStart(const ::testing::TestInfo& info) override {
        session().test_started(std::string(info.test_suite_name()) + "." + info.name(),
                               source_place{info.file(), info.line()});
    }
    /// The first failure of a test snapshots the heap, still live.
    void OnTestPartResult(const ::testing::TestPartResult& result) override {
        if (result.failed()) session().snapshot_now();
    }
    /// Checks the default budget and the baseline. GoogleTest calls the end
    /// events in reverse order of registration, so a failure added here is
    /// seen by the result printer, which was registered first.
    void OnTestEnd(const ::testing::TestInfo& info) override {
        for (const std::string& m : session().test_finishing()) fail(m, source_place{info.file(), info.line()});
        session().test_ended(info.result() != nullptr && info.result()->Failed());
    }
    /// Writes the baseline (record mode).
    void OnTestProgramEnd(const ::testing::UnitTest&) override { session().run_ended(); }
};

/// Appends memdiag's listener to GoogleTest's (which owns it). Call once, in
/// main() before RUN_ALL_TESTS(), unless MEMDIAG_GTEST_LISTENER did it.
inline ::testing::TestEventListener* install_listener() {
    auto* l = new listener;
    ::testing::UnitTest::GetInstance()->listeners().Append(l);
    return l;
}

}  // namespace gtest
}  // namespace testing
}  // namespace memdiag

/// Implementation of the assertion macros: measure, then pass or fail with the report.
#define MEMDIAG_GTEST_CHECK_(kind, limit, on_failure, ...)                                                      \
    GTEST_AMBIGUOUS_ELSE_BLOCKER_                                                                              \
    if (const ::memdiag::testing::check_result memdiag_gtest_result_ = ::memdiag::testing::check_memory(       \
            kind, (limit), #__VA_ARGS__, [&] { (void)(__VA_ARGS__); }))                                         \
        ;                                                                                                      \
    else                                                                                                       \
        on_failure(memdiag_gtest_result_.message.c_str())

/// Expects that expr allocates at most n times (this thread).
#define MEMDIAG_EXPECT_ALLOCS_AT_MOST(n, ...) \
    MEMDIAG_GTEST_CHECK_(::memdiag::testing::check_kind::allocations, n, GTEST_NONFATAL_FAILURE_, __VA_ARGS__)
/// Asserts that expr allocates at most n times (this thread); returns from the test otherwise.
#define MEMDIAG_ASSERT_ALLOCS_AT_MOST(n, ...) \
    MEMDIAG_GTEST_CHECK_(::memdiag::testing::check_kind::allocations, n, GTEST_FATAL_FAILURE_, __VA_ARGS__)
/// Expects that expr allocates at most n bytes in total.
#define MEMDIAG_EXPECT_BYTES_AT_MOST(n, ...) \
    MEMDIAG_GTEST_CHECK_(::memdiag::testing::check_kind::bytes, n, GTEST_NONFATAL_FAILURE_, __VA_ARGS__)
/// Asserts that expr allocates at most n bytes in total.
#define MEMDIAG_ASSERT_BYTES_AT_MOST(n, ...) \
    MEMDIAG_GTEST_CHECK_(::memdiag::testing::check_kind::bytes, n, GTEST_FATAL_FAILURE_, __VA_ARGS__)
/// Expects that live bytes grow by at most n while expr runs.
#define MEMDIAG_EXPECT_PEAK_AT_MOST(n, ...) \
    MEMDIAG_GTEST_CHECK_(::memdiag::testing::check_kind::peak_bytes, n, GTEST_NONFATAL_FAILURE_, __VA_ARGS__)
/// Asserts that live bytes grow by at most n while expr runs.
#define MEMDIAG_ASSERT_PEAK_AT_MOST(n, ...) \
    MEMDIAG_GTEST_CHECK_(::memdiag::testing::check_kind::peak_bytes, n, GTEST_FATAL_FAILURE_, __VA_ARGS__)
/// Expects that expr does not allocate.
#define MEMDIAG_EXPECT_NO_ALLOC(...) \
    MEMDIAG_GTEST_CHECK_(::memdiag::testing::check_kind::no_alloc, 0, GTEST_NONFATAL_FAILURE_, __VA_ARGS__)
/// Asserts that expr does not allocate.
#define MEMDIAG_ASSERT_NO_ALLOC(...) \
    MEMDIAG_GTEST_CHECK_(::memdiag::testing::check_kind::no_alloc, 0, GTEST_FATAL_FAILURE_, __VA_ARGS__)
/// Expects that everything expr allocates is freed when it returns.
#define MEMDIAG_EXPECT_NO_LEAK(...) \
    MEMDIAG_GTEST_CHECK_(::memdiag::testing::check_kind::no_leak, 0, GTEST_NONFATAL_FAILURE_, __VA_ARGS__)
/// Asserts that everything expr allocates is freed when it returns.
#define MEMDIAG_ASSERT_NO_LEAK(...) \
    MEMDIAG_GTEST_CHECK_(::memdiag::testing::check_kind::no_leak, 0, GTEST_FATAL_FAILURE_, __VA_ARGS__)

/// Puts the rest of the enclosing block under a budget (memdiag::limits); a
/// breach fails the test (non-fatally) with the report when the block ends.
#define MEMDIAG_BUDGET_SECTION(...)                                                        \
    ::memdiag::testing::budget_section MEMDIAG_TESTING_UNIQUE_(memdiag_budget_section_)( \
        (__VA_ARGS__), &::memdiag::testing::gtest::fail, MEMDIAG_HERE)

/// Records or checks the rest of the enclosing block against the baseline
/// entry "<Suite.Test>/<name>"; a regression fails the test.
#define MEMDIAG_BASELINE_SCOPE(name)                                                         \
    ::memdiag::testing::baseline_scope MEMDIAG_TESTING_UNIQUE_(memdiag_baseline_scope_)( \
        (name), &::memdiag::testing::gtest::fail, MEMDIAG_HERE)

#if defined(MEMDIAG_GTEST_LISTENER)
namespace memdiag {
namespace testing {
namespace gtest {
/// Registers the listener before main() runs (the one file defining MEMDIAG_GTEST_LISTENER).
inline const bool listener_registered = (install_listener(), true);
}  // namespace gtest
}  // namespace testing
}  // namespace memdiag
#endif  // MEMDIAG_GTEST_LISTENER
