// memdiag/memdiag.hpp - everything a user needs, in one include.
//
// Counting (tracker, allocator), budgets and fault injection, stack capture,
// the heap profiler and its snapshots, the environment report, and
// global_hook_installed().
//
// Not included, each one include away:
// - tracking_resource, the std::pmr adaptor: <memdiag/resource.hpp>. Its one
//   standard header, <memory_resource>, costs more compile time than the rest
//   of memdiag.hpp together (README, "Compile time of the headers"); a unit
//   that uses std::pmr has paid for it already.
// - the global operator new replacement, which one translation unit of the
//   program defines (`#define MEMDIAG_REPLACE_GLOBAL_NEW` before
//   `#include <memdiag/global_new.hpp>`);
// - the parts that need another library or a server: the test framework
//   integrations (memdiag/testing/*.hpp), memdiag/benchmark.hpp, the pprof
//   endpoint (http.hpp) and periodic dumps (periodic_dump.hpp).
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

namespace memdiag {
class tracking_resource;  // the std::pmr adaptor: #include <memdiag/resource.hpp> to use it
}  // namespace memdiag
