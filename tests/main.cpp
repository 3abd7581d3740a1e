// tests/main.cpp - Catch2 entry point. With v3, Catch2::Catch2WithMain supplies
// main() and this file compiles to nothing.
#define CATCH_CONFIG_MAIN
#include "catch.hpp"

#include <memdiag/config.hpp>
// The tests make deliberately impossible allocations and expect std::bad_alloc,
// which the sanitizers' allocators turn into an abort unless told otherwise.
#if MEMDIAG_ASAN
extern "C" const char* __asan_default_options() { return "allocator_may_return_null=1"; }
#endif
#if MEMDIAG_TSAN
extern "C" const char* __tsan_default_options() { return "allocator_may_return_null=1"; }
#endif
