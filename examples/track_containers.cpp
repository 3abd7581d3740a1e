// examples/track_containers.cpp - attribute container memory to named trackers.
//
// Two subsystems, a cache (std::unordered_map through tracking_allocator) and a
// parser (std::pmr containers through tracking_resource), each counted in its
// own tracker. Prints what each allocated, holds now, and held at most.
#include <memdiag/memdiag.hpp>
#include <memdiag/resource.hpp>

#include <cstdio>
#include <memory_resource>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

void print(const char* what, const memdiag::allocation_stats& s) {
    std::printf("  %-8s %6llu allocations  %9llu bytes  live %8lld bytes  peak %8llu bytes\n", what,
                static_cast<unsigned long long>(s.allocations), static_cast<unsigned long long>(s.bytes_allocated),
                static_cast<long long>(s.live_bytes), static_cast<unsigned long long>(s.peak_live_bytes));
}

}  // namespace

int main() {
    memdiag::tracker cache_tracker{"cache"};
    memdiag::tracker parser_tracker{"parser"};

    using key_alloc = memdiag::tracking_allocator<std::pair<const int, std::string>>;
    std::unordered_map<int, std::string, std::hash<int>, std::equal_to<int>, key_alloc> cache{
        key_alloc{cache_tracker}};
    for (int i = 0; i < 1000; ++i) cache.emplace(i, std::string(40, 'c'));

    memdiag::tracking_resource parser_memory{parser_tracker};
    {
        std::pmr::vector<std::pmr::string> tokens{&parser_memory};
        for (int i = 0; i < 500; ++i) tokens.emplace_back(64, 't');
        std::printf("while parsing:\n");
        print("cache", cache_tracker.stats());
        print("parser", parser_tracker.stats());
    }
    cache.clear();
    std::printf("after parsing, cache cleared:\n");
    print("cache", cache_tracker.stats());
    print("parser", parser_tracker.stats());
    return parser_tracker.stats().live_bytes == 0 ? 0 : 1;
}
