// Stress: 8 lanes of threads making random allocations and frees through every
// source memdiag sees (global new, the C functions, tracking_allocator), with
// per-thread budgets and leak checks on, threads starting and ending all the
// time, blocks freed on other threads than the ones that allocated them, and a
// fork in the middle whose child keeps allocating. At the end every count must
// be exact. Linked into memdiag_reliability_tests.
//
// Operations per lane: MEMDIAG_STRESS_OPS (default 1,000,000; 200,000 under
// ThreadSanitizer or AddressSanitizer, whose runtimes are 5-15x slower).
#include <memdiag/allocator.hpp>
#include <memdiag/budget.hpp>
#include <memdiag/global_new.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#if MEMDIAG_POSIX
#include <sys/wait.h>
#include <unistd.h>
#endif

#include "catch.hpp"

namespace {

constexpr int lanes = 8;
constexpr std::size_t max_live = 256;  // blocks a lane holds at most

std::uint64_t stress_ops() {
    if (const char* e = std::getenv("MEMDIAG_STRESS_OPS")) {
        const unsigned long long v = std::strtoull(e, nullptr, 10);
        if (v > 0) return v;
    }
#if MEMDIAG_TSAN || MEMDIAG_ASAN
    return 200000;
#else
    return 1000000;
#endif
}

enum class source : unsigned char { tracked, global_new, c_malloc };

struct block {
    void* p;
    std::size_t size;
    source from;
};

// What one lane did, by its own count.
struct lane_totals {
    std::uint64_t tracked_allocations = 0, tracked_bytes = 0, tracked_frees = 0, tracked_freed_bytes = 0;
    std::uint64_t scope_mismatches = 0;  // threads whose budget saw other figures than they made
    std::uint64_t budget_breaches = 0;
    std::uint64_t leak_reports = 0;  // leak checks that reported a balanced burst
    std::uint64_t missed_leaks = 0;  // deliberate leaks the leak check did not see
    std::uint64_t threads = 0;
};

std::size_t random_size(std::mt19937_64& rng) {
    const std::uint64_t r = rng();
    switch (r & 15) {
        case 0: return static_cast<std::size_t>((r >> 8) % 65536);  // occasionally large (or zero)
        case 1: case 2: return static_cast<std::size_t>((r >> 8) % 4096);
        default: return 1 + static_cast<std::size_t>((r >> 8) % 256);
    }
}

class lane_worker {
public:
    lane_worker(memdiag::tracker& t, bool hooked, bool malloc_hooked)
        : tracker_(t), hooked_(hooked), malloc_hooked_(malloc_hooked) {
        live_.reserve(max_live);
    }

    // One thread's share: `ops` random operations, then the blocks stay for
    // the next thread of the lane (freed on another thread than their own).
    void run(std::uint64_t ops, std::uint64_t seed, lane_totals& tot, std::atomic<std::uint64_t>& progress) {
        std::mt19937_64 rng(seed);
        std::uint64_t made = 0, freed = 0;  // events of this thread, every source
        bool exact = true;
        {
            memdiag::scoped_budget budget{memdiag::limits{}.max_allocations(~std::uint64_t{0} - 1).max_peak_bytes(
                                              std::uint64_t{1} << 40),
                                          memdiag::breach_policy::callback};
            const memdiag::allocation_stats start = budget.used();
            for (std::uint64_t i = 0; i < ops; ++i) {
                const bool allocate = live_.empty() || (live_.size() < max_live && (rng() & 1));
                if (allocate) {
                    made += allocate_one(rng, tot) ? 1 : 0;
                } else {
                    const std::size_t k = static_cast<std::size_t>(rng() % live_.size());
                    freed += free_one(k, tot) ? 1 : 0;
                }
                if ((i & 1023) == 1023) {
                    progress.fetch_add(1024, std::memory_order_relaxed);
                    leak_checks(rng, tot);
                }
            }
            progress.fetch_add(ops & 1023, std::memory_order_relaxed);
            leak_checks(rng, tot);  // at least once per thread, however short its share
            // The budget saw exactly this thread's events from every hooked source.
            const memdiag::allocation_stats used = budget.used() - start;
            exact = used.allocations == made + leak_check_events_ && used.deallocations == freed + leak_check_events_;
            tot.budget_breaches += budget.breaches();
        }
        if (!exact) ++tot.scope_mismatches;
        leak_check_events_ = 0;
        ++tot.threads;
    }

    // Frees everything the lane still holds (on whatever thread calls it).
    void drain(lane_totals& tot) {
        while (!live_.empty()) free_one(live_.size() - 1, tot);
    }

private:
    bool counted_by_scopes(source s) const {
        return s == source::tracked || (s == source::global_new && hooked_) || (s == source::c_malloc && malloc_hooked_);
    }

    // Returns whether scopes see the event (its source is hooked in this build).
    bool allocate_one(std::mt19937_64& rng, lane_totals& tot) {
        const std::size_t n = random_size(rng);
        const source from = static_cast<source>(rng() % 3);
        void* p = nullptr;
        switch (from) {
            case source::tracked:
                p = memdiag::tracking_allocator<unsigned char>{tracker_}.allocate(n);
                ++tot.tracked_allocations;
                tot.tracked_bytes += n;
                break;
            case source::global_new: p = ::operator new(n); break;
            case source::c_malloc: p = std::malloc(n == 0 ? 1 : n); break;
        }
        if (n > 0) static_cast<unsigned char*>(p)[0] = static_cast<unsigned char>(n);
        live_.push_back(block{p, n, from});
        return counted_by_scopes(from);
    }

    bool free_one(std::size_t k, lane_totals& tot) {
        const block b = live_[k];
        live_[k] = live_.back();
        live_.pop_back();
        switch (b.from) {
            case source::tracked:
                memdiag::tracking_allocator<unsigned char>{tracker_}.deallocate(static_cast<unsigned char*>(b.p), b.size);
                ++tot.tracked_frees;
                tot.tracked_freed_bytes += b.size;
                break;
            case source::global_new: ::operator delete(b.p); break;
            case source::c_malloc: std::free(b.p); break;
        }
        return counted_by_scopes(b.from);
    }

    // A balanced burst must not be reported; a deliberate leak must be.
    void leak_checks(std::mt19937_64& rng, lane_totals& tot) {
        memdiag::tracking_allocator<unsigned char> a{tracker_};
        const std::size_t qn = static_cast<std::size_t>(rng() % 1000);
        {
            memdiag::leak_check lc{memdiag::breach_policy::callback};
            unsigned char* p = a.allocate(100);
            unsigned char* q = a.allocate(qn);
            a.deallocate(q, qn);
            a.deallocate(p, 100);
            tot.leak_reports += lc.leaking() ? 1 : 0;
            lc.finish();
        }
        unsigned char* leaked = nullptr;
        {
            memdiag::leak_check lc{memdiag::breach_policy::callback};
            leaked = a.allocate(64);
            tot.missed_leaks += lc.leaking() ? 0 : 1;
            lc.finish();
        }
        a.deallocate(leaked, 64);
        leak_check_events_ += 3;
        tot.tracked_allocations += 3;
        tot.tracked_frees += 3;
        tot.tracked_bytes += 164 + qn;
        tot.tracked_freed_bytes += 164 + qn;
    }

    memdiag::tracker& tracker_;
    bool hooked_, malloc_hooked_;
    std::uint64_t leak_check_events_ = 0;
    std::vector<block> live_;
};

}  // namespace

TEST_CASE("stress: 8 lanes of short-lived threads, exact counts, a fork in the middle", "[stress][threads]") {
    const std::uint64_t ops = stress_ops();
    const std::uint64_t per_thread = ops / 20 > 0 ? ops / 20 : 1;  // 20 threads per lane
    const bool hooked = memdiag::global_hook_installed();
    const bool malloc_hooked = memdiag::malloc_hook_installed();
    memdiag::tracker t{"stress"};
    std::vector<lane_totals> totals(lanes);
    std::vector<std::unique_ptr<lane_worker>> workers;
    for (int i = 0; i < lanes; ++i) workers.push_back(std::make_unique<lane_worker>(t, hooked, malloc_hooked));
    std::atomic<std::uint64_t> progress{0};
    const memdiag::allocation_stats process_before = memdiag::process_stats();

    std::vector<std::thread> lane_threads;
    for (int lane = 0; lane < lanes; ++lane) {
        lane_threads.emplace_back([&, lane] {
            std::uint64_t done = 0;
            for (std::uint64_t gen = 0; done < ops; ++gen) {
                const std::uint64_t n = ops - done < per_thread ? ops - done : per_thread;
                // Each share on a new thread: threads start and end all the time.
                std::thread th([&] { workers[lane]->run(n, (std::uint64_t(lane) << 32) | gen, totals[lane], progress); });
                th.join();
                done += n;
            }
        });
    }

#if MEMDIAG_POSIX
    // The fork: once the lanes are half way, while they are running.
    while (progress.load(std::memory_order_relaxed) < ops * lanes / 2)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        // The child: one thread, the registry lock free (pthread_atfork), keeps
        // allocating through every source and checks its own counts.
        alarm(30);  // a deadlock becomes a failure, not a hang
        int code = 0;
        memdiag::tracker child{"child"};
        memdiag::tracking_allocator<char> a{child};
        {
            memdiag::leak_check lc{memdiag::breach_policy::callback};
            memdiag::scoped_budget b{memdiag::limits{}.max_allocations(1000000)};
            for (int i = 0; i < 20000; ++i) {
                char* p = a.allocate(static_cast<std::size_t>(i % 300) + 1);
                void* q = ::operator new(static_cast<std::size_t>(i % 100) + 1);
                void* r = std::malloc(32);
                std::free(r);
                ::operator delete(q);
                a.deallocate(p, static_cast<std::size_t>(i % 300) + 1);
            }
            if (b.breaches() != 0 || lc.leaking()) code = 2;
            if (b.used().allocations < 20000) code = 3;
        }
        const memdiag::allocation_stats cs = child.stats();
        if (cs.allocations != 20000 || cs.live_bytes != 0 || cs.deallocations != 20000) code = 4;
        (void)t.stats();  // readable: merges the parent's threads frozen at the fork
        (void)memdiag::process_stats();
        _exit(code);
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    if (WIFEXITED(status)) CHECK(WEXITSTATUS(status) == 0);
    if (WIFSIGNALED(status)) FAIL("the forked child died of signal " << WTERMSIG(status));
#endif

    for (auto& th : lane_threads) th.join();
    lane_totals sum;
    for (int lane = 0; lane < lanes; ++lane) {
        workers[lane]->drain(totals[lane]);
        const lane_totals& l = totals[lane];
        sum.tracked_allocations += l.tracked_allocations;
        sum.tracked_bytes += l.tracked_bytes;
        sum.tracked_frees += l.tracked_frees;
        sum.tracked_freed_bytes += l.tracked_freed_bytes;
        sum.scope_mismatches += l.scope_mismatches;
        sum.budget_breaches += l.budget_breaches;
        sum.leak_reports += l.leak_reports;
        sum.missed_leaks += l.missed_leaks;
        sum.threads += l.threads;
    }
    const memdiag::allocation_stats s = t.stats();
    INFO("ops per lane " << ops << ", threads " << sum.threads);
    CHECK(sum.threads >= 20 * lanes);
    CHECK(s.allocations == sum.tracked_allocations);
    CHECK(s.bytes_allocated == sum.tracked_bytes);
    CHECK(s.deallocations == sum.tracked_frees);
    CHECK(s.bytes_freed == sum.tracked_freed_bytes);
    CHECK(s.live_bytes == 0);
    CHECK(s.live_allocations == 0);
    CHECK(s.peak_live_bytes >= 1);
    CHECK(sum.scope_mismatches == 0);
    CHECK(sum.budget_breaches == 0);
    CHECK(sum.leak_reports == 0);
    CHECK(sum.missed_leaks == 0);
    if (hooked) {
        // Every block of the lanes was freed: whatever the process holds now
        // beyond the start is this test's own bookkeeping, not the lanes'.
        const memdiag::allocation_stats d = memdiag::process_stats() - process_before;
        CHECK(d.allocations >= sum.tracked_allocations);
        CHECK(d.live_allocations <= 64);
    }
}

#if MEMDIAG_POSIX
TEST_CASE("stress: fork while threads allocate under a process-wide budget", "[stress][threads][fork]") {
#if MEMDIAG_ASAN && defined(__clang__) && __clang_major__ < 15
    // clang 14's ASan does not hold its stack-depot lock across fork: a child
    // forked while another thread is inside malloc can hang in its first
    // allocation (seen in CI: 2 of 40 children). Later runtimes lock it.
    WARN("skipped under clang < 15 AddressSanitizer (its runtime is not fork-safe with running threads)");
    return;
#endif
    memdiag::tracker t{"process budget"};
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> made{0};
    int failed_children = 0;
    {
        memdiag::scoped_budget all{memdiag::limits{}.max_allocations(~std::uint64_t{0} - 1),
                                   memdiag::breach_policy::callback, memdiag::scope_kind::process, "all threads"};
        std::vector<std::thread> threads;
        for (int i = 0; i < 4; ++i) {
            threads.emplace_back([&] {
                memdiag::tracking_allocator<char> a{t};
                while (!stop.load(std::memory_order_relaxed)) {
                    a.deallocate(a.allocate(16), 16);
                    made.fetch_add(1, std::memory_order_relaxed);
                }
            });
        }
        while (made.load() < 1000) std::this_thread::yield();
        for (int k = 0; k < 40; ++k) {
            const pid_t pid = fork();
            REQUIRE(pid >= 0);
            if (pid == 0) {
                alarm(10);  // a lock held by a parent thread at the fork would hang here
                memdiag::tracking_allocator<char> a{t};
                for (int i = 0; i < 100; ++i) a.deallocate(a.allocate(16), 16);
                (void)all.used();
                _exit(0);
            }
            int status = 0;
            REQUIRE(waitpid(pid, &status, 0) == pid);
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failed_children;
        }
        stop = true;
        for (auto& th : threads) th.join();
        CHECK(all.used().allocations >= made.load());
    }
    CHECK(failed_children == 0);
    CHECK(t.stats().live_bytes == 0);
    CHECK(t.stats().allocations == made.load());
}
#endif
