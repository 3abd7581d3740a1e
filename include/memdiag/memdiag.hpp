// memdiag/memdiag.hpp - everything a user needs, in one include.
//
// Counting (tracker, allocator, resource), budgets and fault injection, stack
// capture, the heap profiler and its snapshots, the environment report, and
// global_hook_installed().
//
// The global operator new replacement is not included: it is defined in exactly
// one translation unit, by `#define MEMDIAG_REPLACE_GLOBAL_NEW` before
// `#include <memdiag/global_new.hpp>`. The test framework integrations
// (memdiag/testing/*.hpp) and memdiag/benchmark.hpp need their framework and are
// included on their own.
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
// MinGW's format checker rejects the %zu in snapshot/report.hpp: on Windows the
// heap profiler is included on its own once that is fixed.
#if !MEMDIAG_OS_WINDOWS
#include "heap_profile.hpp"
#endif
