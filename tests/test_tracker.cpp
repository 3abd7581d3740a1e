// Tests for trackers: exact counts under concurrency, thread exit, named trackers.
#include <memdiag/allocator.hpp>
#include <memdiag/tracker.hpp>

#include <atomic>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "catch.hpp"

namespace {
// Feeds the event path directly, so the counts are known exactly.
// No assertions inside: Catch2's assertion macros are not thread-safe.
void alloc_event(memdiag::tracker& t, void* p, std::size_t n) {
    if (memdiag::detail::admit_allocation(t.slot(), n, true)) memdiag::detail::record_allocation(t.slot(), p, n);
}
void free_event(memdiag::tracker& t, void* p, std::size_t n) {
    memdiag::detail::record_deallocation(t.slot(), p, n);
}
}  // namespace

TEST_CASE("a new tracker reads zero", "[tracker]") {
    memdiag::tracker t{"fresh"};
    CHECK(t.stats() == memdiag::allocation_stats{});
    CHECK(std::string(t.name()) == "fresh");
    CHECK(t.sharded());
}

TEST_CASE("counts, live and peak on one thread", "[tracker]") {
    memdiag::tracker t{"one"};
    int a, b, c;
    alloc_event(t, &a, 100);
    alloc_event(t, &b, 300);
    free_event(t, &a, 100);
    alloc_event(t, &c, 50);
    auto s = t.stats();
    CHECK(s.allocations == 3);
    CHECK(s.deallocations == 1);
    CHECK(s.bytes_allocated == 450);
    CHECK(s.bytes_freed == 100);
    CHECK(s.live_bytes == 350);
    CHECK(s.live_allocations == 2);
    CHECK(s.peak_live_bytes == 400);
    free_event(t, &b, 300);
    free_event(t, &c, 50);
    CHECK(t.stats().live_bytes == 0);
    CHECK(t.stats().peak_live_bytes == 400);
}

TEST_CASE("peak is exact on one thread across publishing", "[tracker]") {
    memdiag::tracker t{"peak"};
    int x;
    std::uint64_t live = 0, peak = 0;
    std::mt19937 rng(7);
    std::vector<std::size_t> held;
    for (int i = 0; i < 20000; ++i) {
        if (held.empty() || rng() % 3 != 0) {
            std::size_t n = 1 + rng() % 40000;
            alloc_event(t, &x, n);
            held.push_back(n);
            live += n;
            if (live > peak) peak = live;
        } else {
            free_event(t, &x, held.back());
            live -= held.back();
            held.pop_back();
        }
    }
    CHECK(t.stats().live_bytes == static_cast<std::int64_t>(live));
    CHECK(t.stats().peak_live_bytes == peak);
}

// The shard stores its peak only when the view turns down (a free) or is
// published; in between ("rising") readers take the view. Checked at every
// step of a walk that rises, falls and publishes (steps up to 80 KiB against
// the 64 KiB publish step).
TEST_CASE("the peak read after every event is exact on one thread", "[tracker]") {
    memdiag::tracker t{"peak walk"};
    int x;
    std::int64_t live = 0;
    std::uint64_t peak = 0;
    std::mt19937 rng(11);
    std::vector<std::size_t> held;
    int wrong = 0, first_wrong = -1;
    for (int i = 0; i < 6000; ++i) {
        // Runs of allocations (each above the peak while rising), then runs of frees.
        const bool up = held.empty() || (i / 7) % 3 != 2;
        if (up) {
            const std::size_t n = 1 + rng() % (i % 50 == 0 ? 80000 : 3000);
            alloc_event(t, &x, n);
            held.push_back(n);
            live += static_cast<std::int64_t>(n);
            if (live > static_cast<std::int64_t>(peak)) peak = static_cast<std::uint64_t>(live);
        } else {
            const std::size_t k = rng() % held.size();
            free_event(t, &x, held[k]);
            live -= static_cast<std::int64_t>(held[k]);
            held[k] = held.back();
            held.pop_back();
        }
        const memdiag::allocation_stats s = t.stats();
        if (s.peak_live_bytes != peak || s.live_bytes != live) {
            if (wrong++ == 0) first_wrong = i;
        }
    }
    CHECK(wrong == 0);
    CHECK(first_wrong == -1);
    for (std::size_t n : held) free_event(t, &x, n);
    CHECK(t.stats().live_bytes == 0);
    CHECK(t.stats().peak_live_bytes == peak);
}

// While a thread's view rises its shard holds no stored peak; another thread
// reading the tracker must still see it, also once the live total has fallen
// below it (here by a free on the reading thread).
TEST_CASE("a peak still rising on another thread is read exactly", "[tracker][threads]") {
    memdiag::tracker t{"rising elsewhere"};
    int a, b;
    std::atomic<int> step{0};
    std::thread owner([&] {
        alloc_event(t, &a, 2000);  // above the shard's peak (0): rising
        alloc_event(t, &b, 3000);  // still rising: the peak is 5000, not stored
        step.store(1);
        while (step.load() != 2) std::this_thread::yield();
        free_event(t, &b, 3000);  // the view turns down: the shard stores 5000
        step.store(3);
        while (step.load() != 4) std::this_thread::yield();
    });
    while (step.load() != 1) std::this_thread::yield();
    free_event(t, &a, 2000);  // freed here: live 3000, the peak stays 5000
    const memdiag::allocation_stats rising = t.stats();
    CHECK(rising.live_bytes == 3000);
    CHECK(rising.peak_live_bytes == 5000);
    step.store(2);
    while (step.load() != 3) std::this_thread::yield();
    const memdiag::allocation_stats turned = t.stats();
    CHECK(turned.live_bytes == 0);
    CHECK(turned.peak_live_bytes == 5000);
    step.store(4);
    owner.join();
    const memdiag::allocation_stats folded = t.stats();  // the owner's shard folded at its exit
    CHECK(folded.live_bytes == 0);
    CHECK(folded.peak_live_bytes == 5000);
    CHECK(folded.allocations == 2);
    CHECK(folded.deallocations == 2);
}

// A thread that exits while its view is rising: the fold reads the peak from the view.
TEST_CASE("a thread exiting while its peak rises leaves the peak", "[tracker][threads]") {
    memdiag::tracker t{"rising exit"};
    int a;
    std::thread([&] { alloc_event(t, &a, 7000); }).join();
    const memdiag::allocation_stats s = t.stats();
    CHECK(s.live_bytes == 7000);
    CHECK(s.peak_live_bytes == 7000);
    free_event(t, &a, 7000);
    CHECK(t.stats().peak_live_bytes == 7000);
    CHECK(t.stats().live_bytes == 0);
}

TEST_CASE("8 threads allocating and freeing concurrently count exactly", "[tracker][threads]") {
    memdiag::tracker t{"shared"};
    constexpr int threads = 8, rounds = 20000;
    std::atomic<bool> go{false};
    std::vector<std::thread> pool;
    std::atomic<std::uint64_t> reads{0};
    for (int id = 0; id < threads; ++id) {
        pool.emplace_back([&, id] {
            while (!go.load()) std::this_thread::yield();
            int x;
            for (int i = 0; i < rounds; ++i) {
                const std::size_t n = 1 + static_cast<std::size_t>((i * 7 + id) % 256);
                alloc_event(t, &x, n);
                if (i % 2 == 1) free_event(t, &x, n);
            }
        });
    }
    // A reader merging while the writers run must not disturb them.
    std::thread reader([&] {
        while (!go.load()) std::this_thread::yield();
        for (int i = 0; i < 200; ++i) reads += t.stats().allocations;
    });
    go = true;
    for (auto& th : pool) th.join();
    reader.join();

    std::uint64_t bytes = 0, freed = 0;
    for (int id = 0; id < threads; ++id)
        for (int i = 0; i < rounds; ++i) {
            const std::size_t n = 1 + static_cast<std::size_t>((i * 7 + id) % 256);
            bytes += n;
            if (i % 2 == 1) freed += n;
        }
    auto s = t.stats();
    CHECK(s.allocations == threads * rounds);
    CHECK(s.deallocations == threads * rounds / 2);
    CHECK(s.bytes_allocated == bytes);
    CHECK(s.bytes_freed == freed);
    CHECK(s.live_bytes == static_cast<std::int64_t>(bytes - freed));
    CHECK(s.peak_live_bytes >= bytes - freed);
    // Documented bound: within threads x MEMDIAG_PEAK_PUBLISH_BYTES of the truth,
    // and never above everything ever allocated.
    CHECK(s.peak_live_bytes <= bytes);
}

TEST_CASE("a finished thread's counts are not lost", "[tracker][threads]") {
    memdiag::tracker t{"exit"};
    for (int round = 0; round < 50; ++round) {
        std::thread([&] {
            int x;
            alloc_event(t, &x, 10);
            alloc_event(t, &x, 20);
            free_event(t, &x, 10);
        }).join();
    }
    auto s = t.stats();
    CHECK(s.allocations == 100);
    CHECK(s.deallocations == 50);
    CHECK(s.bytes_allocated == 1500);
    CHECK(s.live_bytes == 1000);
    CHECK(s.peak_live_bytes >= 1000);
}

TEST_CASE("memory freed by another thread balances", "[tracker][threads]") {
    memdiag::tracker t{"handoff"};
    int x;
    alloc_event(t, &x, 1 << 20);
    std::thread([&] { free_event(t, &x, 1 << 20); }).join();
    auto s = t.stats();
    CHECK(s.live_bytes == 0);
    CHECK(s.live_allocations == 0);
    CHECK(s.peak_live_bytes == 1 << 20);
}

TEST_CASE("named trackers attribute separately", "[tracker]") {
    memdiag::tracker cache{"cache"}, parser{"parser"};
    int x;
    alloc_event(cache, &x, 64);
    alloc_event(parser, &x, 8);
    alloc_event(parser, &x, 8);
    CHECK(cache.stats().bytes_allocated == 64);
    CHECK(parser.stats().bytes_allocated == 16);
    CHECK(parser.stats().allocations == 2);
}

TEST_CASE("trackers beyond the shard count still count exactly", "[tracker]") {
    std::vector<std::unique_ptr<memdiag::tracker>> many;
    for (int i = 0; i < MEMDIAG_MAX_TRACKERS + 4; ++i) many.push_back(std::make_unique<memdiag::tracker>("many"));
    CHECK_FALSE(many.back()->sharded());
    std::vector<std::thread> pool;
    for (int id = 0; id < 4; ++id)
        pool.emplace_back([&] {
            int x;
            for (auto& t : many) {
                alloc_event(*t, &x, 3);
                free_event(*t, &x, 3);
                alloc_event(*t, &x, 5);
            }
        });
    for (auto& th : pool) th.join();
    for (auto& t : many) {
        auto s = t->stats();
        CHECK(s.allocations == 8);
        CHECK(s.bytes_allocated == 32);
        CHECK(s.live_bytes == 20);
    }
}

TEST_CASE("a reused shard starts from zero", "[tracker]") {
    int x;
    {
        memdiag::tracker first{"first"};
        alloc_event(first, &x, 1000);
    }
    memdiag::tracker second{"second"};
    CHECK(second.stats().allocations == 0);
    CHECK(second.stats().peak_live_bytes == 0);
}

TEST_CASE("tracker_ref names the tracker it refers to", "[tracker]") {
    memdiag::tracker t{"ref"};
    memdiag::tracker_ref r = t;
    CHECK(std::string(r.name()) == "ref");
    CHECK(r == memdiag::tracker_ref(t));
    CHECK(r != memdiag::tracker_ref());
    CHECK(std::string(memdiag::tracker_ref().name()) == "default");
    CHECK(std::string(memdiag::tracker_ref::process().name()) == "process");
}

TEST_CASE("internal sections pass unobserved", "[tracker]") {
    memdiag::tracker t{"internal"};
    int x;
    {
        memdiag::detail::internal_section quiet;
        alloc_event(t, &x, 77);
    }
    CHECK(t.stats().allocations == 0);
}
