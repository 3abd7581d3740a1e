// memdiag/memdiag.hpp - everything a user needs, in one include.
//
// The global operator new replacement is not included: it is defined in exactly
// one translation unit, by `#define MEMDIAG_REPLACE_GLOBAL_NEW` before
// `#include <memdiag/global_new.hpp>`.
#pragma once

#include "config.hpp"
#include "stats.hpp"
#include "tracker.hpp"
#include "allocator.hpp"
#include "resource.hpp"
#include "budget.hpp"
#include "env.hpp"
#include "auto_limit.hpp"
