# examples/integrations.cmake - one example per test/benchmark framework,
# built when the framework is installed. Included from examples/CMakeLists.txt:
# include(${CMAKE_CURRENT_SOURCE_DIR}/integrations.cmake)
include(${PROJECT_SOURCE_DIR}/cmake/warnings.cmake)

include(${PROJECT_SOURCE_DIR}/cmake/frameworks.cmake)  # looked up once, for the whole build

function(memdiag_integration_example name)
  add_executable(${name} ${CMAKE_CURRENT_SOURCE_DIR}/${name}.cpp)
  target_link_libraries(${name} PRIVATE memdiag::memdiag ${ARGN})
  memdiag_strict(${name})
endfunction()

if(MEMDIAG_CATCH2_FOUND)
  # Catch2's main is in a file of its own, compiled once (memdiag_catch2_main).
  memdiag_integration_example(catch2_budget memdiag_catch2_main ${MEMDIAG_CATCH_LIBS})
endif()
if(MEMDIAG_GTEST_FOUND)
  memdiag_integration_example(gtest_budget GTest::gtest_main)
endif()
if(MEMDIAG_DOCTEST_FOUND)
  memdiag_integration_example(doctest_budget doctest::doctest)
endif()
if(MEMDIAG_BENCHMARK_FOUND)
  memdiag_integration_example(benchmark_memory benchmark::benchmark)
endif()
