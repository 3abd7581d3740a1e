// tests/compile/separate_impl_defs.cpp - the one unit that defines memdiag's split
// parts for separate_impl_main.cpp (both built with -DMEMDIAG_SEPARATE_IMPLEMENTATION).
//
// NDEBUG is flipped here on purpose (after config.hpp has set MEMDIAG_DEBUG from
// it, which must match the other unit): env::collect()'s build facts must
// describe the calling unit, not this one.
#include <memdiag/config.hpp>
#ifdef NDEBUG
#undef NDEBUG
#else
#define NDEBUG 1
#endif
#include <memdiag/implementation.hpp>
