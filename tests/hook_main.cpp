// tests/hook_main.cpp - the one translation unit of memdiag_hook_tests that
// replaces the global operator new (and, on glibc, the C allocation functions).
#define MEMDIAG_REPLACE_GLOBAL_NEW
#define MEMDIAG_REPLACE_MALLOC
#include <memdiag/global_new.hpp>
