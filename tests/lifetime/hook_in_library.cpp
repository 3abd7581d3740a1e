// The global hook defined in a shared library (hook_bypass_check links it), so
// that a library preloaded before it can replace operator new over it, as
// valgrind and heaptrack do for any program.
#define MEMDIAG_REPLACE_GLOBAL_NEW
#include <memdiag/global_new.hpp>
