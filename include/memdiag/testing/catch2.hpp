// memdiag/testing/catch2.hpp - memory assertions and dump-on-failure for Catch2 (v2 and v3).
//
//     #include <memdiag/testing/catch2.hpp>
//
//     TEST_CASE("parse is lean") {
//         MEMDIAG_REQUIRE_ALLOCS_AT_MOST(3, parse(input));
//         MEMDIAG_CHECK_BYTES_AT_MOST(4096, parse(input));
//         MEMDIAG_REQUIRE_NO_ALLOC(lookup(table, key));
//         MEMDIAG_CHECK_NO_LEAK(run_request(req));
//         MEMDIAG_BUDGET_SECTION(memdiag::limits{}.max_peak_bytes(1 << 20));  // the rest of the block
//         handle(big_request);
//     }
//
// Assertions: MEMDIAG_{REQUIRE,CHECK}_{ALLOCS,BYTES,PEAK}_AT_MOST(n, expr),
// MEMDIAG_{REQUIRE,CHECK}_NO_ALLOC(expr), MEMDIAG_{REQUIRE,CHECK}_NO_LEAK(expr).
// REQUIRE stops the test on failure, CHECK goes on, as in Catch2. The
// expression's allocations on this thread are counted; the failure message
// shows the figures, the top allocation sites (when the heap profiler runs)
// and the environment facts (pointer width, effective memory limit).
//
// The listener (dump on failure, default budget, baselines) is defined in one
// translation unit (the one with CATCH_CONFIG_MAIN, or any other):
//
//     #define MEMDIAG_CATCH2_LISTENER
//     #include <memdiag/testing/catch2.hpp>
//
// Settings come from the environment (see testing/common.hpp):
// MEMDIAG_SNAPSHOT_DIR, MEMDIAG_TOP_SITES, MEMDIAG_TEST_BUDGET, MEMDIAG_BASELINE,
// MEMDIAG_BASELINE_TOLERANCE; a custom main() can take the same as
// --memdiag-* options by calling memdiag::testing::parse_args(argc, argv) first.
//
// Catch2 runs a test case's body once per leaf section; the default budget and
// the per-test baseline apply to each run of the body (baselines sum the runs'
// allocations and keep the highest peak). They count everything the test's
// thread allocates while the body runs, Catch2's own bookkeeping included.
#pragma once

#if __has_include(<catch2/catch_test_macros.hpp>)
#include <catch2/catch_section_info.hpp>
#include <catch2/catch_test_case_info.hpp>  // the listener reads TestCaseInfo (only declared elsewhere)
#include <catch2/catch_test_macros.hpp>
#include <catch2/interfaces/catch_interfaces_reporter.hpp>
#include <catch2/internal/catch_assertion_handler.hpp>
#include <catch2/reporters/catch_reporter_event_listener.hpp>
#include <catch2/reporters/catch_reporter_registrars.hpp>
/// 3 with Catch2 v3, 2 with Catch2 v2.
#define MEMDIAG_CATCH2_VERSION 3
#else
#if defined(MEMDIAG_CATCH2_LISTENER) && !defined(CATCH_CONFIG_EXTERNAL_INTERFACES)
#if defined(TWOBLUECUBES_SINGLE_INCLUDE_CATCH_HPP_INCLUDED)
#error "memdiag: with Catch2 v2, include <memdiag/testing/catch2.hpp> before <catch2/catch.hpp> in the listener's file, or define CATCH_CONFIG_EXTERNAL_INTERFACES"
#endif
#define CATCH_CONFIG_EXTERNAL_INTERFACES  // the listener base class lives behind it
#endif  // MEMDIAG_CATCH2_LISTENER && !CATCH_CONFIG_EXTERNAL_INTERFACES
#include <catch2/catch.hpp>
#define MEMDIAG_CATCH2_VERSION 2
#endif  // __has_include(<catch2/catch_test_macros.hpp>)

#include <string>

#include "common.hpp"

namespace memdiag {
namespace testing {
namespace catch2 {

/// Reports one memory check as a Catch2 assertion named macro, at file:line.
/// A fatal failure ends the test case, as REQUIRE does.
inline void report(const char* macro, const char* file, int line, const char* captured, bool fatal,
                   const check_result& r) {
    Catch::AssertionHandler handler(macro, Catch::SourceLineInfo(file, static_cast<std::size_t>(line)), captured,
                                    fatal ? Catch::ResultDisposition::Normal
                                          : Catch::ResultDisposition::ContinueOnFailure);
    handler.handleMessage(r.ok ? Catch::ResultWas::Ok : Catch::ResultWas::ExplicitFailure,
                          std::string(r.ok ? r.summary : r.message));
    handler.complete();
}

/// A failure_sink: a non-fatal Catch2 failure at where (budget sections,
/// baseline scopes, the per-test checks).
inline void fail(const std::string& message, source_place where) {
    Catch::AssertionHandler handler("MEMDIAG", Catch::SourceLineInfo(where.file != nullptr ? where.file : "?",
                                                                     static_cast<std::size_t>(where.line)),
                                    "", Catch::ResultDisposition::ContinueOnFailure);
    handler.handleMessage(Catch::ResultWas::ExplicitFailure, std::string(message));
    handler.complete();
}

}  // namespace catch2
}  // namespace testing
}  // namespace memdiag

/// Implementation of the assertion macros: measure, then report.
#define MEMDIAG_CATCH2_CHECK_(macro, kind, limit, fatal, captured, ...)                                       \
    do {                                                                                                      \
        ::memdiag::testing::catch2::report(                                                                   \
            macro, __FILE__, __LINE__, captured, fatal,                                                       \
            ::memdiag::testing::check_memory(kind, (limit), #__VA_ARGS__, [&] { (void)(__VA_ARGS__); }));    \
    } while (false)

/// Requires that expr allocates at most n times (this thread); stops the test otherwise.
#define MEMDIAG_REQUIRE_ALLOCS_AT_MOST(n, ...)                                                              \
    MEMDIAG_CATCH2_CHECK_("MEMDIAG_REQUIRE_ALLOCS_AT_MOST", ::memdiag::testing::check_kind::allocations, n, \
                          true, #n ", " #__VA_ARGS__, __VA_ARGS__)
/// Checks that expr allocates at most n times (this thread); the test goes on.
#define MEMDIAG_CHECK_ALLOCS_AT_MOST(n, ...)                                                              \
    MEMDIAG_CATCH2_CHECK_("MEMDIAG_CHECK_ALLOCS_AT_MOST", ::memdiag::testing::check_kind::allocations, n, \
                          false, #n ", " #__VA_ARGS__, __VA_ARGS__)
/// Requires that expr allocates at most n bytes in total.
#define MEMDIAG_REQUIRE_BYTES_AT_MOST(n, ...)                                                                     \
    MEMDIAG_CATCH2_CHECK_("MEMDIAG_REQUIRE_BYTES_AT_MOST", ::memdiag::testing::check_kind::bytes, n, true, #n ", " \
                          #__VA_ARGS__, __VA_ARGS__)
/// Checks that expr allocates at most n bytes in total.
#define MEMDIAG_CHECK_BYTES_AT_MOST(n, ...)                                                                      \
    MEMDIAG_CATCH2_CHECK_("MEMDIAG_CHECK_BYTES_AT_MOST", ::memdiag::testing::check_kind::bytes, n, false, #n ", " \
                          #__VA_ARGS__, __VA_ARGS__)
/// Requires that live bytes grow by at most n while expr runs (its peak).
#define MEMDIAG_REQUIRE_PEAK_AT_MOST(n, ...)                                                                      \
    MEMDIAG_CATCH2_CHECK_("MEMDIAG_REQUIRE_PEAK_AT_MOST", ::memdiag::testing::check_kind::peak_bytes, n, true, \
                          #n ", " #__VA_ARGS__, __VA_ARGS__)
/// Checks that live bytes grow by at most n while expr runs (its peak).
#define MEMDIAG_CHECK_PEAK_AT_MOST(n, ...)                                                                      \
    MEMDIAG_CATCH2_CHECK_("MEMDIAG_CHECK_PEAK_AT_MOST", ::memdiag::testing::check_kind::peak_bytes, n, false, \
                          #n ", " #__VA_ARGS__, __VA_ARGS__)
/// Requires that expr does not allocate at all.
#define MEMDIAG_REQUIRE_NO_ALLOC(...)                                                                               \
    MEMDIAG_CATCH2_CHECK_("MEMDIAG_REQUIRE_NO_ALLOC", ::memdiag::testing::check_kind::no_alloc, 0, true, #__VA_ARGS__, \
                          __VA_ARGS__)
/// Checks that expr does not allocate at all.
#define MEMDIAG_CHECK_NO_ALLOC(...)                                                                                \
    MEMDIAG_CATCH2_CHECK_("MEMDIAG_CHECK_NO_ALLOC", ::memdiag::testing::check_kind::no_alloc, 0, false, #__VA_ARGS__, \
                          __VA_ARGS__)
/// Requires that everything expr allocates is freed by the time it returns.
#define MEMDIAG_REQUIRE_NO_LEAK(...)                                                                              \
    MEMDIAG_CATCH2_CHECK_("MEMDIAG_REQUIRE_NO_LEAK", ::memdiag::testing::check_kind::no_leak, 0, true, #__VA_ARGS__, \
                          __VA_ARGS__)
/// Checks that everything expr allocates is freed by the time it returns.
#define MEMDIAG_CHECK_NO_LEAK(...)                                                                               \
    MEMDIAG_CATCH2_CHECK_("MEMDIAG_CHECK_NO_LEAK", ::memdiag::testing::check_kind::no_leak, 0, false, #__VA_ARGS__, \
                          __VA_ARGS__)

/// Puts the rest of the enclosing block under a budget (memdiag::limits); a
/// breach fails the test (non-fatally) with the report when the block ends.
#define MEMDIAG_BUDGET_SECTION(...)                                                                      \
    ::memdiag::testing::budget_section MEMDIAG_TESTING_UNIQUE_(memdiag_budget_section_)(               \
        (__VA_ARGS__), &::memdiag::testing::catch2::fail, MEMDIAG_HERE)

/// Records or checks the rest of the enclosing block against the baseline
/// entry "<test case>/<name>" (MEMDIAG_BASELINE); a regression fails the test.
#define MEMDIAG_BASELINE_SCOPE(name)                                                                    \
    ::memdiag::testing::baseline_scope MEMDIAG_TESTING_UNIQUE_(memdiag_baseline_scope_)(               \
        (name), &::memdiag::testing::catch2::fail, MEMDIAG_HERE)

#if defined(MEMDIAG_CATCH2_LISTENER)

namespace memdiag {
namespace testing {
namespace catch2 {

#if MEMDIAG_CATCH2_VERSION == 3
using listener_base = Catch::EventListenerBase;
#else
using listener_base = Catch::TestEventListenerBase;
#endif

/// The Catch2 event listener: per-test scope (default budget, baselines), a
/// heap snapshot and text report at a test's first failure, the baseline
/// written at the end of the run. Registered by MEMDIAG_CATCH2_LISTENER.
class listener : public listener_base {
public:
    using listener_base::listener_base;

    /// Starts the heap profiler when snapshots are wanted.
    void testRunStarting(Catch::TestRunInfo const& info) override {
        listener_base::testRunStarting(info);
        warn_if_unhooked();
        if (!config().snapshot_dir.empty()) start_test_profiler();
        session().run_started();
    }
    /// Remembers the test case's name and place.
    void testCaseStarting(Catch::TestCaseInfo const& info) override {
        listener_base::testCaseStarting(info);
        name_ = info.name;
        where_ = source_place{info.lineInfo.file, static_cast<int>(info.lineInfo.line)};
        depth_ = 0;
    }
    /// The outermost section is one run of the test body: opens the per-test scope.
    void sectionStarting(Catch::SectionInfo const& info) override {
        listener_base::sectionStarting(info);
        if (depth_++ == 0) session().test_started(name_, where_);
    }
    /// The outermost section ends while the test case can still fail: the
    /// default budget and the baseline are checked here.
    void sectionEnded(Catch::SectionStats const& stats) override {
        if (depth_ > 0 && --depth_ == 0) {
            const source_place where{stats.sectionInfo.lineInfo.file, static_cast<int>(stats.sectionInfo.lineInfo.line)};
            for (const std::string& m : session().test_finishing()) fail(m, where);
        }
        listener_base::sectionEnded(stats);
    }
#if MEMDIAG_CATCH2_VERSION == 3
    /// The first failed assertion of a test snapshots the heap, still live.
    void assertionEnded(Catch::AssertionStats const& stats) override {
        if (!stats.assertionResult.isOk()) session().snapshot_now();
    }
#else
    /// The first failed assertion of a test snapshots the heap, still live.
    bool assertionEnded(Catch::AssertionStats const& stats) override {
        if (!stats.assertionResult.isOk()) session().snapshot_now();
        return true;
    }
#endif  // MEMDIAG_CATCH2_VERSION == 3
    /// A failed test without a failed assertion (e.g. a crash) is snapshotted here.
    void testCaseEnded(Catch::TestCaseStats const& stats) override {
        session().test_ended(stats.totals.assertions.failed > 0 || stats.totals.testCases.failed > 0);
        listener_base::testCaseEnded(stats);
    }
    /// Writes the baseline (record mode).
    void testRunEnded(Catch::TestRunStats const& stats) override {
        session().run_ended();
        listener_base::testRunEnded(stats);
    }

private:
    std::string name_;
    source_place where_;  // the test case's file and line (Catch2's static strings)
    int depth_ = 0;
};

}  // namespace catch2
}  // namespace testing
}  // namespace memdiag

// CATCH_REGISTER_LISTENER pastes its argument into a name: it needs one identifier.
using memdiag_catch2_listener = ::memdiag::testing::catch2::listener;
CATCH_REGISTER_LISTENER(memdiag_catch2_listener)

#endif  // MEMDIAG_CATCH2_LISTENER
