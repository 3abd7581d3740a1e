// Process lifetime edges (issue 12): fork, thread exit, signal re-entry, size
// overflow in the hooks. Linked with hook_main.cpp (global hook and malloc
// family replaced). Allocations that must be seen go through a tracking_allocator,
// so the tests hold under ThreadSanitizer too, where the global hook stays out.
#include <memdiag/allocator.hpp>
#include <memdiag/budget.hpp>
#include <memdiag/global_new.hpp>
#include <memdiag/detail/os/atomic_file.hpp>
#include <memdiag/heap_profile.hpp>

#include <atomic>
#include <chrono>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <optional>
#include <string>
#include <cstring>
#include <thread>
#include <vector>

#if MEMDIAG_POSIX
#include <csignal>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

#include "catch.hpp"

using memdiag::breach_policy;
using memdiag::limits;
using memdiag::scope_kind;
using memdiag::scoped_budget;

namespace {
memdiag::tracker& lifetime_tracker() {
    static memdiag::tracker t{"lifetime"};
    return t;
}

/// Allocates and frees n blocks of `size` bytes through a tracking allocator.
void churn(int n, std::size_t size = 64) {
    memdiag::tracking_allocator<char> a{lifetime_tracker()};
    for (int i = 0; i < n; ++i) a.deallocate(a.allocate(size), size);
}

#if MEMDIAG_POSIX
/// Runs child() in a forked process (which must not hang: 20 s alarm) and
/// returns its exit status, or 128 + signal when it was killed.
template <class F>
int in_child(F child) {
    const pid_t pid = fork();
    if (pid == 0) {
        alarm(20);
        std::_Exit(child());
    }
    REQUIRE(pid > 0);
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

bool fork_with_threads_is_unreliable() {
#if MEMDIAG_ASAN && defined(__clang__) && __clang_major__ < 15
    return true;  // clang 14's ASan is not fork-safe with running threads (see test_stress.cpp)
#else
    return false;
#endif
}
#endif
}  // namespace

#if MEMDIAG_POSIX
TEST_CASE("lifetime: fork drops process budgets of threads that do not exist in the child", "[lifetime][fork]") {
    if (fork_with_threads_is_unreliable()) {
        WARN("skipped under clang < 15 AddressSanitizer (its runtime is not fork-safe with running threads)");
        return;
    }
    std::atomic<scoped_budget*> other{nullptr};
    std::atomic<bool> done{false};
    std::thread holder([&] {
        // Another thread's process-wide budget: 1 MiB in total for the whole process.
        scoped_budget b{limits{}.max_bytes(1u << 20), breach_policy::throw_exception, scope_kind::process,
                        "other thread"};
        other.store(&b);
        while (!done.load()) std::this_thread::yield();
        other.store(nullptr);
    });
    while (other.load() == nullptr) std::this_thread::yield();
    scoped_budget mine{limits{}.max_bytes(~std::uint64_t{0} - 1), breach_policy::throw_exception, scope_kind::process,
                       "forking thread"};
    const int status = in_child([&]() -> int {
        const std::uint64_t other_before = other.load()->used().allocations;
        const std::uint64_t mine_before = mine.used().allocations;
        try {
            churn(64, 64 * 1024);  // 4 MiB: crosses the other thread's budget if it still applied
        } catch (const memdiag::budget_exceeded&) {
            return 2;  // the dead thread's budget still throws in the child
        }
        if (other.load()->used().allocations != other_before) return 3;  // ... or still charges
        if (mine.used().allocations < mine_before + 64) return 4;         // the forking thread's must stay
        // A new thread may reuse the dead thread's stack, where its scope lived.
        // (ThreadSanitizer cannot start threads after a multithreaded fork.)
        if (!MEMDIAG_TSAN) {
            std::thread t([] { churn(64, 1024); });
            t.join();
        }
        churn(16, 1024);
        return 0;
    });
    done.store(true);
    holder.join();
    CHECK(status == 0);
}

TEST_CASE("lifetime: fork drops other threads' states and their thread budgets", "[lifetime][fork]") {
    if (fork_with_threads_is_unreliable()) {
        WARN("skipped under clang < 15 AddressSanitizer (its runtime is not fork-safe with running threads)");
        return;
    }
    std::atomic<bool> ready{false}, done{false};
    std::thread holder([&] {
        scoped_budget b{limits{}.max_allocations(1'000'000), "other thread's own budget"};
        churn(1);
        ready.store(true);
        while (!done.load()) std::this_thread::yield();
    });
    while (!ready.load()) std::this_thread::yield();
    const std::uint64_t before = lifetime_tracker().stats().allocations;
    const int status = in_child([&]() -> int {
        // The holder's counts stay in the tracker; its state is gone from the registry.
        if (lifetime_tracker().stats().allocations != before) return 2;
        if (memdiag::detail::registered_threads() != 1) return 3;
        if (MEMDIAG_TSAN) return 0;  // it cannot start threads after a multithreaded fork
        std::thread t([] { churn(8); });
        t.join();
        if (lifetime_tracker().stats().allocations != before + 8) return 4;
        return 0;
    });
    done.store(true);
    holder.join();
    CHECK(status == 0);
}
#endif

#if MEMDIAG_POSIX
TEST_CASE("lifetime: fork while the exact profiler records on other threads", "[lifetime][fork][profiler]") {
    if (fork_with_threads_is_unreliable()) {
        WARN("skipped under clang < 15 AddressSanitizer (its runtime is not fork-safe with running threads)");
        return;
    }
    REQUIRE(memdiag::heap_profiler::start(memdiag::profile_options{}.sample_interval(1)));
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    for (int i = 0; i < 2; ++i)
        threads.emplace_back([&] {
            while (!stop.load(std::memory_order_relaxed)) churn(16, 48);
        });
    int hung_or_failed = 0;
    for (int k = 0; k < 40; ++k) {
        const int status = in_child([] {
            churn(200, 48);  // takes the table lock for every block
            return memdiag::heap_profiler::stats().samples > 0 ? 0 : 2;
        });
        if (status != 0) ++hung_or_failed;
    }
    stop.store(true);
    for (auto& t : threads) t.join();
    memdiag::heap_profiler::stop();
    CHECK(hung_or_failed == 0);
}

namespace {
/// Hands out one static 64-byte block at a time: what a signal handler may
/// call (malloc is not async-signal-safe: a handler interrupting it can
/// deadlock in the C library, which is not what this test is about).
struct signal_safe_upstream {
    using value_type = char;
    signal_safe_upstream() = default;
    template <class U>
    signal_safe_upstream(const U&) noexcept {}
    char* allocate(std::size_t) noexcept { return block; }
    void deallocate(char*, std::size_t) noexcept {}
    static char block[64];
};
char signal_safe_upstream::block[64];

std::atomic<int> handler_runs{0};
void allocating_handler(int) {
    memdiag::tracking_allocator<char, signal_safe_upstream> a{lifetime_tracker()};
    for (int i = 0; i < 2; ++i) a.deallocate(a.allocate(32), 32);
    handler_runs.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

TEST_CASE("lifetime: a signal handler that allocates during exact profiling never hangs", "[lifetime][signal][profiler]") {
    if (MEMDIAG_TSAN) {
        // Its runtime reports any malloc inside a signal handler, and memdiag's
        // internal memory goes through malloc there.
        WARN("skipped under ThreadSanitizer (it reports malloc inside signal handlers)");
        return;
    }
    const int status = in_child([] {
        struct sigaction sa {};
        sa.sa_handler = &allocating_handler;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGUSR1, &sa, nullptr);
        if (!memdiag::heap_profiler::start(memdiag::profile_options{}.sample_interval(1))) return 3;
        // Signals at random points of a loop that often holds the table lock.
        const pthread_t target = pthread_self();
        std::atomic<bool> stop{false};
        std::thread sender([&] {
            while (!stop.load()) {
                pthread_kill(target, SIGUSR1);
                std::this_thread::sleep_for(std::chrono::microseconds(20));
            }
        });
        const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
        while (std::chrono::steady_clock::now() < end) churn(64, 48);
        stop.store(true);
        sender.join();
        memdiag::heap_profiler::stop();
        std::fprintf(stderr, "signal test: %d handler runs, %llu events while a memdiag lock was held\n",
                     handler_runs.load(), static_cast<unsigned long long>(memdiag::detail::g_reentrant_events.load()));
        return handler_runs.load() > 100 ? 0 : 2;
    });
    CHECK(status == 0);  // 128 + SIGALRM (142): hung on a memdiag lock
}
#endif

// Item 6: size computations in the hooks never wrap.
TEST_CASE("lifetime: budgets see huge sizes as huge, not wrapped", "[lifetime][overflow]") {
    memdiag::tracking_allocator<char> a{lifetime_tracker()};
    SECTION("max_bytes") {
        scoped_budget b{limits{}.max_bytes(1000), breach_policy::callback, scope_kind::this_thread, "bytes"};
        a.deallocate(a.allocate(100), 100);
        // 100 + (SIZE_MAX - 10) wraps to 89 in 64-bit arithmetic.
        (void)memdiag::detail::admit_allocation(lifetime_tracker().slot(), SIZE_MAX - 10, false);
        CHECK(b.breaches() == 1);
    }
    SECTION("max_peak_bytes") {
        scoped_budget b{limits{}.max_peak_bytes(1000), breach_policy::callback, scope_kind::this_thread, "peak"};
        // A size above INT64_MAX must not read as a negative growth.
        (void)memdiag::detail::admit_allocation(lifetime_tracker().slot(), SIZE_MAX - 10, false);
        CHECK(b.breaches() == 1);
    }
}

#if defined(__GLIBC__) && !MEMDIAG_ASAN && !MEMDIAG_TSAN
extern "C" void* pvalloc(std::size_t) noexcept;
extern "C" void* reallocarray(void*, std::size_t, std::size_t) noexcept;
TEST_CASE("lifetime: the C hooks fail huge sizes as glibc does", "[lifetime][overflow]") {
    REQUIRE(memdiag::malloc_hook_installed());
    // volatile: the compiler must not see (and warn about) the sizes.
    volatile std::size_t huge = SIZE_MAX - 100, half = SIZE_MAX / 2;
    errno = 0;
    void* p = pvalloc(huge);  // page rounding must not wrap to 0
    CHECK(p == nullptr);
    CHECK(errno == ENOMEM);
    std::free(p);
    errno = 0;
    p = valloc(huge);
    CHECK(p == nullptr);
    std::free(p);
    void* q = std::malloc(16);
    REQUIRE(q != nullptr);
    errno = 0;
    CHECK(reallocarray(q, half, 4) == nullptr);  // the product overflows
    CHECK(errno == ENOMEM);
    std::free(q);
#if defined(__cpp_aligned_new)
    // Half the address space as alignment: no block can have it (on 32-bit
    // targets a quarter, 1 GiB, can be satisfied, so the check is 64-bit only).
    if (sizeof(std::size_t) == 8) {
        volatile std::size_t alignment = std::size_t{1} << (sizeof(std::size_t) * 8 - 1);
        CHECK(::operator new(16, std::align_val_t{alignment}, std::nothrow) == nullptr);
    }
#endif
}

TEST_CASE("lifetime: reallocarray is counted like realloc", "[lifetime][overflow]") {
    REQUIRE(memdiag::malloc_hook_installed());
    const memdiag::allocation_stats before = memdiag::process_stats();
    void* q = std::malloc(16);
    q = reallocarray(q, 100, 8);
    REQUIRE(q != nullptr);
    std::free(q);
    const memdiag::allocation_stats after = memdiag::process_stats();
    CHECK(after.allocations - before.allocations == after.deallocations - before.deallocations);
    CHECK(after.allocations - before.allocations >= 2);
}
#endif

// Item 9: memdiag's own per-thread bookkeeping is not a program allocation.
TEST_CASE("lifetime: registering a thread is not counted as the program's allocation", "[lifetime][threads]") {
    if (!memdiag::malloc_hook_installed()) {
        WARN("skipped: needs the malloc hook (not under sanitizers), where registration would be seen");
        return;
    }
    memdiag::allocation_stats before, after;
    std::thread t([&] {
        // The thread's first event creates its memdiag state.
        before = memdiag::process_stats();
        void* volatile block = std::malloc(100);  // volatile: the compiler may not elide the pair
        std::free(block);
        after = memdiag::process_stats();
    });
    t.join();
    CHECK(after.allocations - before.allocations == 1);
    CHECK(after.deallocations - before.deallocations == 1);
    CHECK(after.bytes_allocated - before.bytes_allocated == after.bytes_freed - before.bytes_freed);
}

TEST_CASE("lifetime: a thread's registration is not counted when it exits", "[lifetime][threads]") {
    if (!memdiag::malloc_hook_installed()) {
        WARN("skipped: needs the malloc hook (not under sanitizers), where registration would be seen");
        return;
    }
    // A thread whose only events are its own: what it adds must balance after it exited.
    std::atomic<bool> go{false};
    memdiag::allocation_stats before;
    std::thread t([&] {
        while (!go.load()) std::this_thread::yield();
        void* volatile block = std::malloc(100);  // volatile: the compiler may not elide the pair
        std::free(block);
    });
    before = memdiag::process_stats();
    go.store(true);
    t.join();
    const memdiag::allocation_stats after = memdiag::process_stats();
    // The std::thread's own state (allocated before `before`) is freed in the
    // thread: one more free than allocation, nothing else.
    CHECK(after.allocations - before.allocations == 1);
    CHECK(after.deallocations - before.deallocations == 2);
}

// Item 5: realloc records the old block's free before the C library can hand
// its address to another thread. Most reliable with
// GLIBC_TUNABLES=glibc.malloc.arena_max=1:glibc.malloc.tcache_count=0 (set by CTest).
namespace {
/// True when the exact profile holds the block at p as in use.
bool in_profile(void* p) {
    using namespace memdiag::detail::heapprof;
    return g_profiler.current.load()->holds(p);
}
}  // namespace

TEST_CASE("lifetime: concurrent realloc keeps the exact profile's in-use figures", "[lifetime][threads][profiler]") {
    if (!memdiag::malloc_hook_installed()) {
        WARN("skipped: needs the malloc hook (not under sanitizers)");
        return;
    }
    constexpr int n_threads = 4, per_thread = 4;
    std::vector<std::thread> threads;
    std::atomic<int> missing{0};
    // Signals that pause a thread for 20 us at random points stretch every
    // window between two steps of the hook, as preemption does, but often.
    struct sigaction sa {};
    sa.sa_handler = [](int) { usleep(20); };
    sigemptyset(&sa.sa_mask);
    struct sigaction previous {};
    sigaction(SIGUSR2, &sa, &previous);
    REQUIRE(memdiag::heap_profiler::start(memdiag::profile_options{}.sample_interval(1)));
    std::atomic<int> running{n_threads};
    std::vector<pthread_t> ids(n_threads);
    std::atomic<int> started{0};
    for (int i = 0; i < n_threads; ++i)
        threads.emplace_back([i, &missing, &running, &ids, &started] {
            ids[static_cast<std::size_t>(i)] = pthread_self();
            started.fetch_add(1);
            // Each block: realloc from null to 24 bytes, grow to 1000 (which
            // moves it, freeing its 24-byte chunk), realloc to 0 (frees it).
            // With one arena and no cache another thread's next 24-byte
            // request receives the freed chunk at once; a free recorded late
            // erases that thread's sample, and its held block is then missing
            // from the profile.
            void* blocks[per_thread] = {};
            for (int round = 0; round < 300000; ++round) {
                void*& b = blocks[(round / 3 + i) % per_thread];
                if (b != nullptr && !in_profile(b)) missing.fetch_add(1);
                switch (round % 3) {
                    case 0: b = std::realloc(nullptr, 24); break;
                    case 1: b = std::realloc(b, 1000); break;
                    default: std::free(b); b = nullptr; break;
                }
            }
            for (void* b : blocks) std::free(b);
            running.fetch_sub(1);
        });
    while (started.load() < n_threads) std::this_thread::yield();
    for (unsigned k = 0; running.load() == n_threads; ++k) {
        pthread_kill(ids[k % n_threads], SIGUSR2);
        std::this_thread::sleep_for(std::chrono::microseconds(30));
    }
    for (auto& t : threads) t.join();
    sigaction(SIGUSR2, &previous, nullptr);
    memdiag::heap_profiler::stop();
    CHECK(missing.load() == 0);  // every block the program held was in use in the profile
}

#if MEMDIAG_POSIX
// Also: long file names and long paths.
TEST_CASE("lifetime: a 246-byte file name can be written", "[lifetime][files]") {
    char dir[] = "/tmp/memdiag-lifetime-XXXXXX";
    REQUIRE(mkdtemp(dir) != nullptr);
    const std::string path = std::string(dir) + "/" + std::string(246, 'n');
    const memdiag::result r = memdiag::detail::write_file_atomically(path.c_str(), "data", 4);
    CHECK(r.ok());
    INFO(r.message());
    CHECK(unlink(path.c_str()) == 0);
    rmdir(dir);
}

TEST_CASE("lifetime: a failure on a long path keeps the errno text whole", "[lifetime][files]") {
    const std::string path = "/nonexistent-memdiag-dir/" + std::string(200, 'd') + "/" + std::string(40, 'f');
    const memdiag::result r = memdiag::detail::write_file_atomically(path.c_str(), "data", 4);
    REQUIRE_FALSE(r.ok());
    const std::string m = r.message();
    INFO(m);
    CHECK(m.size() >= std::strlen("No such file or directory"));
    CHECK(m.compare(m.size() - std::strlen("No such file or directory"), std::string::npos,
                    "No such file or directory") == 0);
    CHECK(m.find(std::string(40, 'f')) != std::string::npos);  // the file name is kept
}
#endif

// Also: profiler restarts with other options reuse retired tables.
#if defined(__linux__)
namespace {
// The process's mapped address space in bytes (first field of /proc/self/statm, in pages).
std::size_t mapped_bytes() {
    std::FILE* f = std::fopen("/proc/self/statm", "r");
    if (f == nullptr) return 0;
    unsigned long pages = 0;
    const int n = std::fscanf(f, "%lu", &pages);
    std::fclose(f);
    return n == 1 ? static_cast<std::size_t>(pages) * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)) : 0;
}
}  // namespace

TEST_CASE("lifetime: profiler restarts with alternating options keep the address space bounded",
          "[lifetime][profiler]") {
    // 200 restarts once grew the address space to 3.2 GB: each kept its tables.
    const auto a = memdiag::profile_options{}.max_live_samples(1024).max_stacks(256);
    const auto b = memdiag::profile_options{}.max_live_samples(4096).max_stacks(512).sample_interval(1);
    REQUIRE(memdiag::heap_profiler::start(a));
    churn(4);
    const std::size_t before = mapped_bytes();
    REQUIRE(before > 0);
    for (int i = 0; i < 200; ++i) {
        REQUIRE(memdiag::heap_profiler::start(i % 2 == 0 ? b : a));
        churn(4);
    }
    const std::size_t tables_after = memdiag::heap_profiler::stats().table_bytes;
    memdiag::heap_profiler::stop();
    const std::size_t after = mapped_bytes();
    INFO("mapped before " << before << " after " << after << ", tables " << tables_after);
    CHECK(after < before + 64u * 1024 * 1024);
    CHECK(tables_after < 8u * 1024 * 1024);
}
#endif

#if MEMDIAG_HAS_FRAME_WALK
// Item 10 (part): a frame-pointer walk never returns an impossible address.
namespace {
MEMDIAG_NOINLINE void code_marker() {}
}  // namespace

TEST_CASE("lifetime: a frame-pointer walk stops at an impossible return address", "[lifetime][stack]") {
    // A fake stack of three frame records, the second holding `bad` as its
    // return address; the walk reads only inside [low, high).
    const auto code = reinterpret_cast<std::uintptr_t>(&code_marker) + 1;
    std::uintptr_t fake[8] = {};
    const auto low = reinterpret_cast<std::uintptr_t>(&fake[0]);
    const auto high = reinterpret_cast<std::uintptr_t>(&fake[8]);
    // Seen in walks through code without frame pointers: small numbers, a
    // kernel-half value, an address on the stack itself.
    const std::uintptr_t impossible[] = {0x17, ~std::uintptr_t{0} - 0xe0 /* 0xff..ff1f */, low + 8};
    for (const std::uintptr_t bad : impossible) {
        fake[0] = reinterpret_cast<std::uintptr_t>(&fake[2]);
        fake[1] = code;
        fake[2] = reinterpret_cast<std::uintptr_t>(&fake[4]);
        fake[3] = bad;
        fake[4] = 0;
        fake[5] = code;
        std::uintptr_t out[8] = {};
        const memdiag::detail::walk_result r = memdiag::detail::walk_frame_chain(low, low, high, out, 8, 0);
        INFO("return address 0x" << std::hex << bad);
        CHECK(r.count == 1);
        CHECK(out[0] == code);
        CHECK(r.end == memdiag::detail::walk_end::implausible);
        CHECK(memdiag::detail::walk_needs_unwinder(r));
    }
}
#endif
