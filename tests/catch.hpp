// tests/catch.hpp - one include for Catch2 v2 (Debian's catch2 package) and v3.
#pragma once
#if __has_include(<catch2/catch_test_macros.hpp>)
#include <catch2/catch_approx.hpp>
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#define MEMDIAG_CATCH3 1
using Catch::Approx;  // v2 declares it globally; the tests are written for both
#else
#include <catch2/catch.hpp>
#define MEMDIAG_CATCH3 0
#endif
