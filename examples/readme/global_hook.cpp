#define MEMDIAG_REPLACE_GLOBAL_NEW
#include <memdiag/global_new.hpp>
