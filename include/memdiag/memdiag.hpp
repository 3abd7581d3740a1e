// memdiag/memdiag.hpp - everything a user needs, in one include.
//
// Counting (tracker, allocator, resource), budgets and fault injection, stack
// capture, the heap profiler and its snapshots, the environment report, and
// global_hook_installed().
//
// Not included: the global operator new replacement, which one translation unit
// of the program defines (`#define MEMDIAG_REPLACE_GLOBAL_NEW` before
// `#include <memdiag/global_new.hpp>`), and the parts that need another library
// or a server: the test framework integrations (memdiag/testing/*.hpp),
// memdiag/benchmark.hpp, the pprof endpoint (http.hpp) and periodic dumps
// (periodic_dump.hpp).
//
// Compile time: with MEMDIAG_SEPARATE_IMPLEMENTATION (config.hpp) defined in
// every unit and <memdiag/implementation.hpp> included in one, this header
// declares its heavy parts (snapshot writers, symbolizer, environment report)
// instead of defining them; the README's Performance section has the figures.
#pragma once

#include "config.hpp"
#include "stats.hpp"
#include "tracker.hpp"
#include "allocator.hpp"
#include "resource.hpp"
#include "budget.hpp"
#include "stack.hpp"
#include "hook_status.hpp"
#include "env.hpp"
#include "auto_limit.hpp"
// Not on Windows yet: MinGW's format checker rejects the %zu of
// snapshot/report.hpp, which the heap profiler writes through.
#if !MEMDIAG_OS_WINDOWS
#include "heap_profile.hpp"
#endif
