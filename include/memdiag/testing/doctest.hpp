// memdiag/testing/doctest.hpp - memory assertions and dump-on-failure for doctest.
//
//     #include <memdiag/testing/doctest.hpp>
//
//     TEST_CASE("parse is lean") {
//         MEMDIAG_REQUIRE_ALLOCS_AT_MOST(3, parse(input));
//         MEMDIAG_CHECK_NO_LEAK(run_request(req));
//         MEMDIAG_BUDGET_SECTION(memdiag::limits{}.max_peak_bytes(1 << 20));
//         handle(big_request);
//     }
//
// The same assertions as testing/catch2.hpp (MEMDIAG_{REQUIRE,CHECK}_...),
// budget sections and per-scope baselines (MEMDIAG_BASELINE_SCOPE). The
// listener, defined in one file by `#define MEMDIAG_DOCTEST_LISTENER` before
// this include, writes a heap snapshot and text report at a test's first
// failure and records or checks per-scope baselines.
//
// Not here: the default budget of every test and per-test baselines. doctest
// settles a test's result before any listener hears that the test ended, so a
// listener cannot fail it afterwards; use MEMDIAG_BUDGET_SECTION and
// MEMDIAG_BASELINE_SCOPE inside the test instead.
#pragma once

#include <doctest/doctest.h>

#include <string>

#include "common.hpp"

namespace memdiag {
namespace testing {
namespace doctest_adapter {

/// A failure_sink: a non-fatal doctest failure at where.
inline void fail(const std::string& message, source_place where) {
    DOCTEST_ADD_FAIL_CHECK_AT(where.file != nullptr ? where.file : "?", where.line, message);
}

/// Reports a check: nothing on success, the report as a failure otherwise.
inline void report(const char* file, int line, bool fatal, const check_result& r) {
    if (r.ok) return;
    if (fatal) DOCTEST_ADD_FAIL_AT(file, line, r.message);
    else DOCTEST_ADD_FAIL_CHECK_AT(file, line, r.message);
}

}  // namespace doctest_adapter
}  // namespace testing
}  // namespace memdiag

/// Implementation of the assertion macros.
#define MEMDIAG_DOCTEST_CHECK_(kind, limit, fatal, ...)                                                      \
    ::memdiag::testing::doctest_adapter::report(                                                            \
        __FILE__, __LINE__, fatal,                                                                          \
        ::memdiag::testing::check_memory(kind, (limit), #__VA_ARGS__, [&] { (void)(__VA_ARGS__); }))

/// Requires that expr allocates at most n times (this thread).
#define MEMDIAG_REQUIRE_ALLOCS_AT_MOST(n, ...) \
    MEMDIAG_DOCTEST_CHECK_(::memdiag::testing::check_kind::allocations, n, true, __VA_ARGS__)
/// Checks that expr allocates at most n times (this thread).
#define MEMDIAG_CHECK_ALLOCS_AT_MOST(n, ...) \
    MEMDIAG_DOCTEST_CHECK_(::memdiag::testing::check_kind::allocations, n, false, __VA_ARGS__)
/// Requires that expr allocates at most n bytes.
#define MEMDIAG_REQUIRE_BYTES_AT_MOST(n, ...) \
    MEMDIAG_DOCTEST_CHECK_(::memdiag::testing::check_kind::bytes, n, true, __VA_ARGS__)
/// Checks that expr allocates at most n bytes.
#define MEMDIAG_CHECK_BYTES_AT_MOST(n, ...) \
    MEMDIAG_DOCTEST_CHECK_(::memdiag::testing::check_kind::bytes, n, false, __VA_ARGS__)
/// Requires that live bytes grow by at most n while expr runs.
#define MEMDIAG_REQUIRE_PEAK_AT_MOST(n, ...) \
    MEMDIAG_DOCTEST_CHECK_(::memdiag::testing::check_kind::peak_bytes, n, true, __VA_ARGS__)
/// Checks that live bytes grow by at most n while expr runs.
#define MEMDIAG_CHECK_PEAK_AT_MOST(n, ...) \
    MEMDIAG_DOCTEST_CHECK_(::memdiag::testing::check_kind::peak_bytes, n, false, __VA_ARGS__)
/// Requires that expr does not allocate.
#define MEMDIAG_REQUIRE_NO_ALLOC(...) MEMDIAG_DOCTEST_CHECK_(::memdiag::testing::check_kind::no_alloc, 0, true, __VA_ARGS__)
/// Checks that expr does not allocate.
#define MEMDIAG_CHECK_NO_ALLOC(...) MEMDIAG_DOCTEST_CHECK_(::memdiag::testing::check_kind::no_alloc, 0, false, __VA_ARGS__)
/// Requires that everything expr allocates is freed when it returns.
#define MEMDIAG_REQUIRE_NO_LEAK(...) MEMDIAG_DOCTEST_CHECK_(::memdiag::testing::check_kind::no_leak, 0, true, __VA_ARGS__)
/// Checks that everything expr allocates is freed when it returns.
#define MEMDIAG_CHECK_NO_LEAK(...) MEMDIAG_DOCTEST_CHECK_(::memdiag::testing::check_kind::no_leak, 0, false, __VA_ARGS__)

/// Puts the rest of the enclosing block under a budget; a breach fails the test when the block ends.
#define MEMDIAG_BUDGET_SECTION(...)                                                        \
    ::memdiag::testing::budget_section MEMDIAG_TESTING_UNIQUE_(memdiag_budget_section_)( \
        (__VA_ARGS__), &::memdiag::testing::doctest_adapter::fail, MEMDIAG_HERE)

/// Records or checks the rest of the enclosing block against the baseline entry "<test>/<name>".
#define MEMDIAG_BASELINE_SCOPE(name)                                                         \
    ::memdiag::testing::baseline_scope MEMDIAG_TESTING_UNIQUE_(memdiag_baseline_scope_)( \
        (name), &::memdiag::testing::doctest_adapter::fail, MEMDIAG_HERE)

#if defined(MEMDIAG_DOCTEST_LISTENER)
namespace memdiag {
namespace testing {
namespace doctest_adapter {

/// The doctest listener: snapshot at a test's first failure, baselines
/// written at the end of the run.
struct listener : ::doctest::IReporter {
    /// doctest makes listeners from the run's options.
    explicit listener(const ::doctest::ContextOptions&) {}
    void report_query(const ::doctest::QueryData&) override {}
    /// Starts the heap profiler when snapshots are wanted.
    void test_run_start() override {
        warn_if_unhooked();
        if (!config().snapshot_dir.empty()) start_test_profiler();
        session().run_started();
    }
    /// Writes the baseline (record mode).
    void test_run_end(const ::doctest::TestRunStats&) override { session().run_ended(); }
    /// Names the test for snapshots and per-scope baselines.
    void test_case_start(const ::doctest::TestCaseData& tc) override { session().set_current_test(tc.m_name); }
    void test_case_reenter(const ::doctest::TestCaseData&) override {}
    /// A failed test without a failed assertion is snapshotted here.
    void test_case_end(const ::doctest::CurrentTestCaseStats& st) override { session().test_ended(!st.testCaseSuccess); }
    void test_case_exception(const ::doctest::TestCaseException&) override { session().snapshot_now(); }
    void subcase_start(const ::doctest::SubcaseSignature&) override {}
    void subcase_end() override {}
    /// The first failed assertion of a test snapshots the heap, still live.
    void log_assert(const ::doctest::AssertData& ad) override {
        if (ad.m_failed) session().snapshot_now();
    }
    void log_message(const ::doctest::MessageData& md) override {
        if (md.m_severity & ::doctest::assertType::is_warn) return;
        session().snapshot_now();  // ADD_FAIL and friends
    }
    void test_case_skipped(const ::doctest::TestCaseData&) override {}
};

}  // namespace doctest_adapter
}  // namespace testing
}  // namespace memdiag

DOCTEST_REGISTER_LISTENER("memdiag", 1, ::memdiag::testing::doctest_adapter::listener);
#endif  // MEMDIAG_DOCTEST_LISTENER
