// A plugin loaded with dlopen by plugin_host: measures its own allocations
// with memdiag. Its memdiag state is the executable's only when the executable
// exports memdiag's symbols (-rdynamic).
#include <memdiag/budget.hpp>

#include <memory>

namespace {
char* volatile keep = nullptr;  // the compiler must not elide the allocation
}

extern "C" __attribute__((visibility("default"))) unsigned long long plugin_measure() {
    const memdiag::allocation_stats s = memdiag::measure([] {
        auto block = std::make_unique<char[]>(100);
        keep = block.get();
    });
    return s.allocations;
}
