// Says whether memdiag's global hook (in libmemdiag_hook_in_library) is the
// operator new this process calls, and checks that a memory assertion cannot
// pass vacuously when it is not. Usage: hook_bypass_check active|bypassed
// (the second run has another operator new preloaded). Exit 0 when the
// process behaves as expected for that case.
#include <memdiag/global_new.hpp>
#include <memdiag/testing/common.hpp>

#include <cstdio>
#include <cstring>
#include <memory>

int main(int argc, char** argv) {
    if (argc != 2) return 2;
    const bool expect_active = std::strcmp(argv[1], "active") == 0;
    const bool installed = memdiag::global_hook_installed();
    const bool active = memdiag::global_hook_active();
    auto block = std::make_unique<int>(7);
    const memdiag::allocation_stats st = memdiag::process_stats();
    const memdiag::testing::check_result r = memdiag::testing::check_memory(
        memdiag::testing::check_kind::allocations, 1000, "a small block", [] { auto p = std::make_unique<int>(1); });
    std::printf("installed=%d active=%d allocations=%llu check_ok=%d\n", installed, active,
                static_cast<unsigned long long>(st.allocations), r.ok ? 1 : 0);
    if (!installed) return 3;
    if (expect_active) return active && st.allocations > 0 && r.ok ? 0 : 1;
    return !active && !r.ok ? 0 : 1;
}
