// tests/compile/include_order.cpp - issue 13: a memdiag header that includes
// global_new.hpp (testing/common.hpp does) before the file's own
// `#define MEMDIAG_REPLACE_GLOBAL_NEW` + `#include <memdiag/global_new.hpp>`
// used to install nothing (#pragma once had consumed the header). Any order
// must work: this file includes them in the "wrong" one and checks at compile
// time and at run time that the hook is in.
//
// Exit: 0 the hook counts, 1 it does not, 77 not expected to (TSan, MEMDIAG_DISABLE).
#include <memdiag/testing/common.hpp>

#define MEMDIAG_REPLACE_GLOBAL_NEW
#define MEMDIAG_REPLACE_MALLOC
#include <memdiag/global_new.hpp>

#include <cstdio>
#include <cstdlib>

#if MEMDIAG_ENABLED && !MEMDIAG_TSAN && !defined(MEMDIAG_GLOBAL_NEW_ACTIVE)
#error "global_new.hpp included after testing/common.hpp defined no operator new"
#endif

namespace {
void* volatile sink = nullptr;
}

int main() {
#if !MEMDIAG_ENABLED || MEMDIAG_TSAN
    std::puts("SKIP: no global hook in this configuration (MEMDIAG_DISABLE or ThreadSanitizer)");
    return 77;
#else
    const std::uint64_t before = memdiag::process_stats().allocations;
    sink = new int(1);
    delete static_cast<int*>(sink);
    sink = std::malloc(40);
    std::free(sink);
    const std::uint64_t counted = memdiag::process_stats().allocations - before;
    const bool malloc_expected = memdiag::malloc_hook_installed();
    const std::uint64_t want = malloc_expected ? 2 : 1;
    std::printf("%s: global_hook_installed()=%d, malloc_hook_installed()=%d, %llu of %llu allocations counted\n",
                memdiag::global_hook_installed() && counted == want ? "ok" : "FAIL",
                memdiag::global_hook_installed() ? 1 : 0, malloc_expected ? 1 : 0,
                static_cast<unsigned long long>(counted), static_cast<unsigned long long>(want));
    return memdiag::global_hook_installed() && counted == want ? 0 : 1;
#endif
}
