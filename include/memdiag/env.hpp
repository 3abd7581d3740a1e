// memdiag/env.hpp - the program's memory world, as a report and as checks.
//
//   memdiag::env::report r = memdiag::env::collect();
//   std::cout << r.to_text();                      // key=value  # detail; source
//   std::cout << r.to_json();                      // the same, as JSON
//   memdiag::env::check c = memdiag::env::require_memory(8ull << 30);
//   if (!c.passed()) std::cerr << c.to_text();
//
// Every item says where it came from; an item that could not be learned says
// "unknown" and why. Nothing here throws on a missing or malformed file.
// MEMDIAG_STATIC_REQUIRE_64BIT() (config.hpp) is the compile-time check.
//
// The parts, each one concern: env/report.hpp (the report type, its rows, text
// and JSON), env/collect.hpp (collect(): one collector per source) and
// env/checks.hpp (the checks and their advice).
#pragma once

#include "env/checks.hpp"
#include "env/collect.hpp"
#include "env/report.hpp"
