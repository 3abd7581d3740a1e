# cmake/frameworks.cmake - finds the test and benchmark frameworks once for the
# tests, the integration checks and the examples. Included from the top-level
# CMakeLists.txt, before those subdirectories (include() it once per project).
#
# Sets:
#   MEMDIAG_CATCH2_VERSION   3, 2, or empty when Catch2 is not installed
#   MEMDIAG_CATCH_MAIN_LIBS  Catch2 with its main() (v3: Catch2::Catch2WithMain;
#                            v2: Catch2::Catch2, main from CATCH_CONFIG_MAIN)
#   MEMDIAG_CATCH_LIBS       Catch2 without a main (the TU defines it or uses the above)
#   GTest_FOUND, doctest_FOUND, benchmark_FOUND, as find_package sets them.
# Each framework found or not is said once in the configure output, so a
# skipped integration is never silent.
find_package(Catch2 3 QUIET CONFIG)
if(Catch2_FOUND)
  set(MEMDIAG_CATCH2_VERSION 3)
  set(MEMDIAG_CATCH_MAIN_LIBS Catch2::Catch2WithMain)
  set(MEMDIAG_CATCH_LIBS Catch2::Catch2)
else()
  find_package(Catch2 2 QUIET CONFIG)
  if(Catch2_FOUND)
    set(MEMDIAG_CATCH2_VERSION 2)
    set(MEMDIAG_CATCH_MAIN_LIBS Catch2::Catch2)
    set(MEMDIAG_CATCH_LIBS Catch2::Catch2)
  else()
    set(MEMDIAG_CATCH2_VERSION "")
  endif()
endif()
find_package(GTest QUIET)
find_package(doctest QUIET CONFIG)
find_package(benchmark QUIET CONFIG)

if(Catch2_FOUND)
  message(STATUS "memdiag: Catch2 ${Catch2_VERSION} (v${MEMDIAG_CATCH2_VERSION}) from ${Catch2_DIR}")
else()
  message(STATUS "memdiag: Catch2 not found: its tests are not built (apt-get install catch2)")
endif()
foreach(_memdiag_fw GTest doctest benchmark)
  if(${_memdiag_fw}_FOUND)
    message(STATUS "memdiag: ${_memdiag_fw} found")
  else()
    message(STATUS "memdiag: ${_memdiag_fw} not found: its integration is not built "
                   "(scripts/setup-deps.sh installs googletest, doctest-dev, libbenchmark-dev)")
  endif()
endforeach()
