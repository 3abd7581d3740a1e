#include <memdiag/memdiag.hpp>
#include <memdiag/resource.hpp>

#include <memory_resource>
#include <string>
#include <vector>

std::vector<std::string> parse(const std::string& input);  // your code

int main() {
    // Attribute memory to a subsystem and read exact figures.
    memdiag::tracker cache{"cache"};
    std::vector<int, memdiag::tracking_allocator<int>> v{memdiag::tracking_allocator<int>{cache}};
    v.resize(1000);
    memdiag::allocation_stats s = cache.stats();  // allocations, bytes_allocated, live_bytes, peak_live_bytes...

    // Any std::pmr container.
    memdiag::tracking_resource res;
    std::pmr::vector<int> pv{&res};

    // Budget a block of code (needs the global hook, below, to see plain `new`).
    memdiag::scoped_budget guard{memdiag::limits{}.max_allocations(10).max_bytes(4096)};
    parse("a,b,c");  // the 11th allocation throws memdiag::budget_exceeded (a std::bad_alloc)
    return s.live_bytes > 0 ? 0 : 1;
}
