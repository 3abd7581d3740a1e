// A program that uses memdiag the way a user project does (see .ci / scripts/matrix.sh).
#include <memdiag/memdiag.hpp>

#include <cstdio>
#include <vector>

int main() {
    memdiag::tracker t{"consumer"};
    std::vector<int, memdiag::tracking_allocator<int>> v{memdiag::tracking_allocator<int>{t}};
    v.resize(256);
    const auto s = t.stats();
    std::printf("consumer: %llu allocation(s), %llu bytes\n", static_cast<unsigned long long>(s.allocations),
                static_cast<unsigned long long>(s.bytes_allocated));
    return (s.allocations == 1 && s.bytes_allocated == 256 * sizeof(int)) ? 0 : 1;
}
