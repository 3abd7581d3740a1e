// tests/test_fatal_signal.cpp - the emergency arena that stands in for malloc
// while a fatal-signal snapshot is written (internal_alloc.hpp). The handler
// itself is exercised end to end by fatal_signal_check.sh.
#include <memdiag/detail/internal_alloc.hpp>
#include <memdiag/fatal_signal.hpp>

#include <cstring>

#include "catch.hpp"

TEST_CASE("fatal_signal: while the emergency arena is active, internal memory comes from it", "[fatal_signal]") {
    using namespace memdiag::detail;
    alignas(64) static char arena[1 << 16];
    REQUIRE(g_emergency_arena.base == nullptr);  // no handler ran in this process
    g_emergency_arena.base = arena;
    g_emergency_arena.size = sizeof arena;
    g_emergency_arena.used.store(0);
    g_emergency_arena.active.store(true);

    char* p = static_cast<char*>(internal_malloc(100));
    REQUIRE(p != nullptr);
    CHECK(in_emergency_arena(p));
    CHECK(reinterpret_cast<std::uintptr_t>(p) % 16 == 0);
    std::memset(p, 'x', 100);
    char* q = static_cast<char*>(internal_realloc(p, 300));
    REQUIRE(q != nullptr);
    CHECK(in_emergency_arena(q));
    CHECK(q[0] == 'x');
    CHECK(q[99] == 'x');
    internal_free(q);  // ignored: arena memory is never returned
    CHECK(internal_malloc(sizeof arena) == nullptr);  // spent: nullptr, never the C allocator

    g_emergency_arena.active.store(false);
    void* r = internal_malloc(64);  // the C allocator again
    REQUIRE(r != nullptr);
    CHECK_FALSE(in_emergency_arena(r));
    internal_free(r);
    internal_free(p);  // arena blocks freed after the arena is gone: still ignored
    // The arena stays registered (as after a real handler) so such frees stay harmless.
}
