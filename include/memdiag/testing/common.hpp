// memdiag/testing/common.hpp - what the test-framework adapters share.
//
// The Catch2, GoogleTest and doctest headers (testing/catch2.hpp, gtest.hpp,
// doctest.hpp) are thin: they turn the results computed here into their
// framework's failures. Everything else lives here, written once:
//
//   - memory checks on an expression: allocations, bytes, peak, none, no leak,
//     with a failure message that shows the figures, the top allocating sites
//     (heap profiler) and the environment facts that explain memory;
//   - budget sections: a scoped_budget whose breach becomes a test failure;
//   - the per-test scope: a default budget for every test (MEMDIAG_TEST_BUDGET
//     or set_default_test_budget), overridable per test (test_budget), with
//     setup code left out (setup_scope);
//   - regression baselines: per-test and per-scope allocation counts and peak
//     bytes, recorded to a text file and checked against it with a tolerance;
//   - heap snapshot and text report of a failing test, written into a directory.
//
// Configuration, by environment variable or by command-line option (see
// parse_args; the option wins):
//
//   MEMDIAG_SNAPSHOT_DIR=dir        --memdiag-snapshot-dir=dir   snapshots of failing tests
//   MEMDIAG_TOP_SITES=n             --memdiag-top-sites=n        sites in failure messages (10)
//   MEMDIAG_SAMPLE_INTERVAL=bytes   --memdiag-sample-interval=b  profiler interval in tests (1)
//   MEMDIAG_TEST_BUDGET=spec        --memdiag-test-budget=spec   default budget of every test
//   MEMDIAG_BASELINE=record:path    --memdiag-baseline=...       record a baseline
//   MEMDIAG_BASELINE=check:path                                  check against a baseline
//   MEMDIAG_BASELINE_TOLERANCE=10%  --memdiag-baseline-tolerance=10%
//
// A budget spec is a comma-separated list of limits: `allocations=1000,
// bytes=16M,peak=64M,live=0` (sizes as env::parse_size reads them).
//
// The parts, one concern each: testing/options.hpp (settings, options, budget
// specs), testing/assertions.hpp (checks on an expression, budget sections,
// failure messages), testing/baseline.hpp (regression baselines) and
// testing/listener.hpp (the per-test scope and the run's bookkeeping that the
// framework adapters share).
#pragma once

#include "assertions.hpp"
#include "baseline.hpp"
#include "listener.hpp"
#include "options.hpp"

/// A unique identifier for a macro-declared local.
#define MEMDIAG_TESTING_CAT2_(a, b) a##b
#define MEMDIAG_TESTING_CAT_(a, b) MEMDIAG_TESTING_CAT2_(a, b)
#define MEMDIAG_TESTING_UNIQUE_(base) MEMDIAG_TESTING_CAT_(base, __LINE__)
