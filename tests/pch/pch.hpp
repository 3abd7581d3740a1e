// tests/pch/pch.hpp - precompiled once for the Catch2 test programs that share it
// (tests/CMakeLists.txt, memdiag_test): the framework, the standard headers the
// tests use, and memdiag's core headers, parsed once instead of in every file.
//
// Only headers whose meaning no test changes with a macro: global_new.hpp's
// definitions (MEMDIAG_REPLACE_GLOBAL_NEW) and testing/*.hpp stay out, and
// hook_main.cpp is compiled without it.
// No #pragma once: Meson compiles this file as the main file (GCC warns there);
// it is only ever force-included, once.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <memory_resource>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <memdiag/allocator.hpp>
#include <memdiag/budget.hpp>
#include <memdiag/env.hpp>
#include <memdiag/resource.hpp>
#include <memdiag/stack.hpp>
#include <memdiag/stats.hpp>
#include <memdiag/tracker.hpp>

#include "../catch.hpp"
