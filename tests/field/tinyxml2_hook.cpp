// tests/field/tinyxml2_hook.cpp - linked into tinyxml2's own xmltest by
// tests/field/tinyxml2.sh: memdiag's global hook (operator new and the C
// allocation functions), and at exit the process's allocation count on stderr.
// With MEMDIAG_FIELD_PROFILE=FILE it profiles every allocation (exact) from
// the start and writes the pprof profile to FILE at exit. Also linked into
// yaml-cpp's test binary (tests/field/yaml_cpp.sh), whose suite has more
// distinct stacks than the default table holds: room for 262,144.
#define MEMDIAG_REPLACE_GLOBAL_NEW
#define MEMDIAG_REPLACE_MALLOC
#include <memdiag/global_new.hpp>
#include <memdiag/heap_profile.hpp>

#include <cstdio>
#include <cstdlib>

namespace {
// Before xmltest's own static constructors (priority 101 runs first).
__attribute__((constructor(101))) void field_start() {
    if (std::getenv("MEMDIAG_FIELD_PROFILE") != nullptr) {
        const auto options = memdiag::profile_options{}.sample_interval(1).max_depth(32).max_stacks(1 << 18);
        if (!memdiag::heap_profiler::start(options))
            std::fputs("memdiag-field: the heap profiler did not start\n", stderr);
    }
}
// After main and the static destructors: everything the program allocated.
__attribute__((destructor)) void field_report() {
    const memdiag::allocation_stats s = memdiag::process_stats();
    if (const char* path = std::getenv("MEMDIAG_FIELD_PROFILE")) {
        memdiag::heap_profiler::stop();
        const memdiag::result r = memdiag::write_heap_profile(path);
        if (!r) std::fprintf(stderr, "memdiag-field: profile not written: %s\n", r.message());
    }
    std::fprintf(stderr, "memdiag-field: allocations=%llu deallocations=%llu\n",
                 static_cast<unsigned long long>(s.allocations), static_cast<unsigned long long>(s.deallocations));
}
}  // namespace
