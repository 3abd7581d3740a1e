// memdiag/implementation.hpp - the definitions of memdiag's split parts, for
// builds with MEMDIAG_SEPARATE_IMPLEMENTATION (config.hpp).
//
// With MEMDIAG_SEPARATE_IMPLEMENTATION defined in every translation unit,
// include this header in exactly one of them (a .cpp of its own, or the one
// that defines MEMDIAG_REPLACE_GLOBAL_NEW, where global_new.hpp includes it):
//
//     // memdiag_impl.cpp
//     #include <memdiag/implementation.hpp>
//
// Header-only (the default) the headers define these parts themselves and this
// header adds nothing: including it is harmless.
//
// Split so far: the pprof endpoint (http.hpp), periodic dumps
// (periodic_dump.hpp) and the heap profiler's writers, start/stop and dump
// paths (heap_profile.hpp), the budget breach report (breach.hpp, budget.hpp),
// the environment report's collectors, text, JSON and checks (env.hpp), and the
// test integrations' snapshot of a failing test (testing/listener.hpp).
#pragma once

#include "config.hpp"

#include "detail/budget_impl.hpp"
#include "detail/env_impl.hpp"
#include "detail/heap_profile_impl.hpp"
#include "detail/http_impl.hpp"
#include "detail/periodic_dump_impl.hpp"
#include "detail/testing_impl.hpp"
