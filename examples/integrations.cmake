# examples/integrations.cmake - one example per test/benchmark framework,
# built when the framework is installed. Included from examples/CMakeLists.txt:
# include(${CMAKE_CURRENT_SOURCE_DIR}/integrations.cmake)
include(${PROJECT_SOURCE_DIR}/cmake/warnings.cmake)

# Frameworks: found by cmake/frameworks.cmake (top-level CMakeLists.txt).

function(memdiag_integration_example name)
  add_executable(${name} ${CMAKE_CURRENT_SOURCE_DIR}/${name}.cpp)
  target_link_libraries(${name} PRIVATE memdiag::memdiag ${ARGN})
  memdiag_strict(${name})
endfunction()

if(Catch2_FOUND)
  memdiag_integration_example(catch2_budget ${MEMDIAG_CATCH_MAIN_LIBS})
endif()
if(GTest_FOUND)
  memdiag_integration_example(gtest_budget GTest::gtest_main)
endif()
if(doctest_FOUND)
  memdiag_integration_example(doctest_budget doctest::doctest)
endif()
if(benchmark_FOUND)
  memdiag_integration_example(benchmark_memory benchmark::benchmark)
endif()
