# cmake/frameworks.cmake - the test and benchmark frameworks memdiag's own
# targets use, looked up once (included from the top-level CMakeLists.txt,
# before tests/, examples/ and bench/, so the imported targets are seen there).
#
# Sets:
#   MEMDIAG_CATCH2_FOUND, MEMDIAG_CATCH_LIBS   Catch2 v3 (Catch2::Catch2WithMain) first, else v2
#   memdiag_catch2_main                        an object library: Catch2's main, compiled once
#   MEMDIAG_GTEST_FOUND                        GTest::gtest_main
#   MEMDIAG_DOCTEST_FOUND                      doctest::doctest
#   MEMDIAG_BENCHMARK_FOUND                    benchmark::benchmark
# and turns MEMDIAG_BUILD_TESTS / MEMDIAG_BUILD_BENCHMARKS off (for this run)
# when their framework is missing and the option was left at its default, with
# one status line naming what is missing and what is skipped. A missing
# framework is an error when the option was set explicitly on the first
# configure (-DMEMDIAG_BUILD_TESTS=ON), and any missing framework is an error
# with -DMEMDIAG_REQUIRE_FRAMEWORKS=ON (scripts/test.sh, CI).
include_guard(GLOBAL)

find_package(Catch2 3 QUIET CONFIG)
if(Catch2_FOUND)
  set(MEMDIAG_CATCH_LIBS Catch2::Catch2WithMain)
else()
  find_package(Catch2 2 QUIET CONFIG)
  set(MEMDIAG_CATCH_LIBS Catch2::Catch2)
endif()
set(MEMDIAG_CATCH2_FOUND ${Catch2_FOUND})
# Catch2 v2's main takes about 20 s to compile (40 s at -O3): one object,
# memdiag_catch2_main (tests/main.cpp), serves every program that runs Catch2:
# the tests, the Catch2 example and the failing suite integration_check runs.
# At -O1 whatever the build type: the framework's runner is not under test.
# With v3 it compiles to nothing (Catch2::Catch2WithMain supplies main()).
if(Catch2_FOUND)
  add_library(memdiag_catch2_main OBJECT ${PROJECT_SOURCE_DIR}/tests/main.cpp)
  target_link_libraries(memdiag_catch2_main PUBLIC ${MEMDIAG_CATCH_LIBS} memdiag::memdiag)
  # Stack tests walk through the runner's frames too.
  target_compile_options(memdiag_catch2_main PRIVATE $<$<CXX_COMPILER_ID:GNU,Clang>:-fno-omit-frame-pointer>
                         $<$<AND:$<CXX_COMPILER_ID:GNU,Clang>,$<NOT:$<CONFIG:Debug>>>:-O1>)
endif()
if(Catch2_FOUND)
  message(STATUS "memdiag: Catch2 ${Catch2_VERSION} from ${Catch2_DIR}")
endif()
find_package(GTest QUIET)
set(MEMDIAG_GTEST_FOUND ${GTest_FOUND})
find_package(doctest QUIET CONFIG)
set(MEMDIAG_DOCTEST_FOUND ${doctest_FOUND})
find_package(benchmark QUIET CONFIG)
set(MEMDIAG_BENCHMARK_FOUND ${benchmark_FOUND})

set(_memdiag_missing)
set(_memdiag_skipped)
set(_memdiag_packages)
if(NOT MEMDIAG_CATCH2_FOUND)
  list(APPEND _memdiag_missing "Catch2")
  list(APPEND _memdiag_packages catch2)
  if(MEMDIAG_BUILD_TESTS)
    list(APPEND _memdiag_skipped "the tests and the Catch2 example")
  endif()
endif()
if(NOT MEMDIAG_GTEST_FOUND)
  list(APPEND _memdiag_missing "GoogleTest")
  list(APPEND _memdiag_packages googletest)
  list(APPEND _memdiag_skipped "GoogleTest example and integration test")
endif()
if(NOT MEMDIAG_DOCTEST_FOUND)
  list(APPEND _memdiag_missing "doctest")
  list(APPEND _memdiag_packages doctest-dev)
  list(APPEND _memdiag_skipped "doctest example and integration test")
endif()
if(NOT MEMDIAG_BENCHMARK_FOUND)
  list(APPEND _memdiag_missing "Google Benchmark")
  list(APPEND _memdiag_packages libbenchmark-dev)
  list(APPEND _memdiag_skipped "benchmarks and the benchmark example")
endif()

if(_memdiag_missing)
  list(JOIN _memdiag_missing ", " _memdiag_missing_text)
  list(JOIN _memdiag_skipped ", " _memdiag_skipped_text)
  list(JOIN _memdiag_packages " " _memdiag_packages_text)
  set(_memdiag_why "memdiag: not found: ${_memdiag_missing_text}")
  set(_memdiag_how "(Debian: apt-get install ${_memdiag_packages_text})")
  if(MEMDIAG_REQUIRE_FRAMEWORKS)
    message(FATAL_ERROR "${_memdiag_why}; MEMDIAG_REQUIRE_FRAMEWORKS is ON ${_memdiag_how}")
  endif()
  if(NOT MEMDIAG_CATCH2_FOUND AND MEMDIAG_BUILD_TESTS AND MEMDIAG_BUILD_TESTS_EXPLICIT)
    message(FATAL_ERROR "${_memdiag_why}; MEMDIAG_BUILD_TESTS=ON needs Catch2 ${_memdiag_how}")
  endif()
  if(NOT MEMDIAG_BENCHMARK_FOUND AND MEMDIAG_BUILD_BENCHMARKS AND MEMDIAG_BUILD_BENCHMARKS_EXPLICIT)
    message(FATAL_ERROR "${_memdiag_why}; MEMDIAG_BUILD_BENCHMARKS=ON needs Google Benchmark ${_memdiag_how}")
  endif()
  message(STATUS "${_memdiag_why}; skipped: ${_memdiag_skipped_text} ${_memdiag_how}")
  if(NOT MEMDIAG_CATCH2_FOUND)
    set(MEMDIAG_BUILD_TESTS OFF)
  endif()
  if(NOT MEMDIAG_BENCHMARK_FOUND)
    set(MEMDIAG_BUILD_BENCHMARKS OFF)
  endif()
endif()
