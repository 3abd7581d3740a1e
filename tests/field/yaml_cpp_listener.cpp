// tests/field/yaml_cpp_listener.cpp - linked into yaml-cpp's own GoogleTest
// binary (with tinyxml2_hook.cpp, memdiag's hook) by tests/field/yaml_cpp.sh:
// memdiag's GoogleTest listener, registered before main as a user would, so
// MEMDIAG_TEST_BUDGET and MEMDIAG_SNAPSHOT_DIR apply to every yaml-cpp test.
#define MEMDIAG_GTEST_LISTENER
#include <memdiag/testing/gtest.hpp>
