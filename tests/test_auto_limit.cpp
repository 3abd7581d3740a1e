// tests/test_auto_limit.cpp - set_soft_limit(auto_limit(f), cb): the soft limit
// derived from the effective memory limit (auto_limit.hpp). Linked into
// memdiag_hook_tests (the global hook counts the live heap).
#include <memdiag/auto_limit.hpp>
#include <memdiag/global_new.hpp>

#include <atomic>
#include <string>
#include <vector>

#include "catch.hpp"

namespace {
std::atomic<int> g_crossings{0};
void on_cross(const memdiag::allocation_stats&) { g_crossings.fetch_add(1); }
}  // namespace

TEST_CASE("auto_limit: a fraction of the effective limit, with its source", "[auto_limit]") {
    const memdiag::env::effective_limit_info e = memdiag::env::collect().effective_limit();
    REQUIRE(e.value.known);  // on Linux physical memory at least is always readable
    const memdiag::derived_limit d = memdiag::auto_limit(0.9);
    REQUIRE(d);
    CHECK(d.limit == e.value.value.bytes);
    CHECK(d.bytes == static_cast<std::uint64_t>(0.9 * static_cast<double>(e.value.value.bytes)));
    CHECK(d.source.find(e.key) == 0);
    CHECK(d.reason.empty());
}

TEST_CASE("auto_limit: a bad fraction is a failure that says why, and sets nothing", "[auto_limit]") {
    for (double f : {0.0, -1.0, 1.5}) {
        const memdiag::derived_limit d = memdiag::auto_limit(f);
        CHECK_FALSE(d);
        CHECK(d.reason.find("outside (0, 1]") != std::string::npos);
        const memdiag::result r = memdiag::set_soft_limit(d, on_cross);
        CHECK_FALSE(r);
        CHECK(std::string(r.message()).find("no soft limit set: fraction") == 0);
    }
    CHECK(memdiag::detail::g_soft_limit.threshold.load() < 0);  // nothing was set
}

TEST_CASE("auto_limit: the derived soft limit fires when the live heap crosses it", "[auto_limit]") {
    if (!memdiag::global_hook_installed()) {
        WARN("global operator new is not replaced in this build (ThreadSanitizer): test skipped");
        return;
    }
    // A fraction that puts the soft limit 8 MiB above what is live now.
    const std::int64_t live0 = memdiag::process_stats().live_bytes;
    const double limit = static_cast<double>(memdiag::env::collect().effective_limit().value.value.bytes);
    const double fraction = (static_cast<double>(live0 > 0 ? live0 : 0) + 8.0 * 1048576) / limit;
    REQUIRE(fraction < 1.0);
    g_crossings = 0;
    REQUIRE(memdiag::set_soft_limit(memdiag::auto_limit(fraction), on_cross));
    std::vector<char*> keep;
    keep.reserve(16);
    for (int i = 0; i < 6; ++i) keep.push_back(new char[1 << 20]);
    CHECK(g_crossings == 0);
    for (int i = 0; i < 4; ++i) keep.push_back(new char[1 << 20]);
    CHECK(g_crossings == 1);
    memdiag::set_soft_limit(0, nullptr);
    for (char* p : keep) delete[] p;
}
