#include <memdiag/memdiag.hpp>

#include <iostream>

MEMDIAG_STATIC_REQUIRE_64BIT();  // a 32-bit build is a compile error

int main() {
    memdiag::env::report e = memdiag::env::collect();
    std::cout << e.to_text();
    memdiag::env::check c = memdiag::env::require_memory(8ull << 30);
    if (!c.passed()) std::cerr << c.to_text();  // says what to do: ulimit -v, container limit...
    return c.passed() ? 0 : 1;
}
