// tests/compile/separate_impl_defs.cpp - the one unit that defines memdiag's split
// parts for separate_impl_main.cpp (both built with -DMEMDIAG_SEPARATE_IMPLEMENTATION).
#include <memdiag/implementation.hpp>
