// A leak_check with static storage: constructed before main (it creates the
// main thread's memdiag state), destroyed after main and after the main
// thread's thread_local objects, which is when memdiag's per-thread reaper
// runs. `released` is constructed after it, so destroyed before it: the block
// it frees then must still be seen by the check. Only the block leaked in main
// may be reported. lifetime_static_leak_check (CTest) expects exactly that.
#define MEMDIAG_REPLACE_GLOBAL_NEW
#include <memdiag/allocator.hpp>
#include <memdiag/budget.hpp>
#include <memdiag/global_new.hpp>

namespace {
memdiag::tracker leaky{"leaky"};
memdiag::leak_check whole_program{memdiag::breach_policy::report, "static"};
char* volatile kept = nullptr;

/// Frees a block allocated in main, after main.
struct releaser {
    char* block = nullptr;
    ~releaser() {
        memdiag::tracking_allocator<char> a{leaky};
        if (block != nullptr) a.deallocate(block, 4000);
    }
} released;
}  // namespace

int main() {
    memdiag::tracking_allocator<char> a{leaky};
    kept = a.allocate(100);  // never freed
    released.block = a.allocate(4000);
    return 0;
}
