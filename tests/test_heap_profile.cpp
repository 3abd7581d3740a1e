// tests/test_heap_profile.cpp - the heap profiler: sampler, live table,
// snapshots, dump on failure. Linked into memdiag_hook_tests, whose
// hook_main.cpp replaces the global operator new (and on glibc malloc).
#include <memdiag/allocator.hpp>
#include <memdiag/global_new.hpp>  // global_hook_installed(); the hook itself is in hook_main.cpp
#include <memdiag/heap_profile.hpp>

#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "catch.hpp"

namespace {

using memdiag::heap_profiler;
using memdiag::profile_options;

/// Stops the profiler when a test ends, however it ends.
struct profiler_run {
    explicit profiler_run(const profile_options& o) { REQUIRE(heap_profiler::start(o)); }
    ~profiler_run() {
        heap_profiler::stop();
        heap_profiler::set_dump_path(nullptr);
    }
};

/// Raw figures of the sites whose leaf frame (after memdiag's frames are
/// removed) names a function containing `fn`.
struct site_figures {
    std::int64_t alloc_objects = 0, alloc_bytes = 0, inuse_objects = 0, inuse_bytes = 0;
    int sites = 0;
    std::int64_t est_inuse_bytes = 0, est_alloc_bytes = 0;  // scaled as the writers do
    memdiag::heap_profile_stats stats;
    bool leading_allocator_frame = false;  // some sample still starts in memdiag / operator new
};

site_figures figures_of(const char* fn) {
    site_figures out;
    memdiag::detail::internal_section quiet;
    memdiag::detail::heapprof::snapshot_data snap;
    REQUIRE(memdiag::detail::heapprof::take_snapshot(snap));
    out.stats = snap.stats;
    for (const auto& s : snap.samples) {
        if (s.depth == 0) continue;
        const auto leaf = snap.names.function_name(s.stack[0] - 1);
        if (memdiag::detail::heapprof::is_allocator_frame(leaf.data(), leaf.size()))
            out.leading_allocator_frame = true;
        // The site is the leaf, or its caller when the helper tracked_new was
        // not inlined (-O0); names are matched whole ("::fn(").
        std::size_t at = 0;
        auto name = leaf;
        if (name.find("tracked_new(") != memdiag::detail::internal_string::npos && s.depth > 1)
            name = snap.names.function_name(s.stack[++at] - 1);
        const std::string whole = std::string("::") + fn + "(";
        if (name.find(whole.c_str()) == memdiag::detail::internal_string::npos) continue;
        ++out.sites;
        out.alloc_objects += s.alloc_objects;
        out.alloc_bytes += s.alloc_bytes;
        out.inuse_objects += s.inuse_objects;
        out.inuse_bytes += s.inuse_bytes;
        std::int64_t v[4];
        memdiag::snapshot::scaled_values(s, snap.stats.sample_interval, v);
        out.est_alloc_bytes += v[1];
        out.est_inuse_bytes += v[3];
    }
    return out;
}

// Through a tracking allocator: the event path without the global hook, so
// these tests also run where the hook is off (ThreadSanitizer builds).
memdiag::tracking_allocator<char> g_tracked;

char* tracked_new(std::size_t n) { return g_tracked.allocate(n); }

void free_tracked(std::vector<char*>& keep, std::size_t n) {
    for (char* p : keep) g_tracked.deallocate(p, n);
    keep.clear();
}

/// The tests that need the replaced global operator new say so and return.
bool hook_missing() {
    if (memdiag::global_hook_installed()) return false;
    WARN("global operator new is not replaced in this build (ThreadSanitizer): test skipped");
    return true;
}

// Allocation sites. noinline so each is the leaf frame of its samples; the
// pointers escape into `keep`, so the compiler cannot elide new/delete. Each
// body differs (the byte written), or identical-code folding merges them.
__attribute__((noinline)) void exact_site(std::vector<char*>& keep, int n, std::size_t size) {
    for (int i = 0; i < n; ++i) {
        keep.push_back(new char[size]);
        keep.back()[0] = 'e';
    }
}
__attribute__((noinline)) void malloc_site(std::vector<void*>& keep, int n, std::size_t size) {
    for (int i = 0; i < n; ++i) keep.push_back(std::malloc(size));
}
__attribute__((noinline)) void sampled_site(std::vector<char*>& keep, int n, std::size_t size) {
    for (int i = 0; i < n; ++i) {
        keep.push_back(tracked_new(size));
        keep.back()[0] = 's';
    }
}
__attribute__((noinline)) void tracked_exact_site(std::vector<char*>& keep, int n, std::size_t size) {
    for (int i = 0; i < n; ++i) {
        keep.push_back(tracked_new(size));
        keep.back()[0] = 't';
    }
}
__attribute__((noinline)) void churn_site(int n, std::size_t size) {
    for (int i = 0; i < n; ++i) {
        char* volatile p = new char[size];
        delete[] p;
    }
}
__attribute__((noinline)) void full_site(std::vector<char*>& keep, int n) {
    for (int i = 0; i < n; ++i) keep.push_back(tracked_new(32));
}
__attribute__((noinline)) void deep_site(int depth, std::vector<char*>& keep) {
    if (depth == 0) {
        keep.push_back(tracked_new(48));
        return;
    }
    deep_site(depth - 1, keep);
    keep.push_back(nullptr);  // not a tail call: each depth keeps its frame
}
__attribute__((noinline)) void thread_site(std::vector<char*>& keep, int n) {
    for (int i = 0; i < n; ++i) keep.push_back(tracked_new(64));
}
__attribute__((noinline)) void tracked_site(std::vector<int, memdiag::tracking_allocator<int>>& v) {
    v.reserve(1000);
}

// 2^levels distinct stacks: each level calls one of two functions, so every
// path of choices leaves its own return addresses. Not tail calls (the sink
// is written after each call); the bodies differ so they are never folded.
volatile int g_path_sink = 0;
void path_step(unsigned bits, int level, std::vector<char*>& keep);
__attribute__((noinline)) void path_leaf(std::vector<char*>& keep) {
    keep.push_back(tracked_new(24));
    keep.back()[0] = 'p';
}
__attribute__((noinline)) void path_zero(unsigned bits, int level, std::vector<char*>& keep) {
    path_step(bits, level, keep);
    g_path_sink = g_path_sink + 1;
}
__attribute__((noinline)) void path_one(unsigned bits, int level, std::vector<char*>& keep) {
    path_step(bits, level, keep);
    g_path_sink = g_path_sink + 2;
}
__attribute__((noinline)) void path_step(unsigned bits, int level, std::vector<char*>& keep) {
    if (level == 0) path_leaf(keep);
    else if ((bits & 1) != 0) path_one(bits >> 1, level - 1, keep);
    else path_zero(bits >> 1, level - 1, keep);
    g_path_sink = g_path_sink + 3;
}
__attribute__((noinline)) void wide_site(std::vector<char*>& keep, int n) {
    for (int i = 0; i < n; ++i) {
        keep.push_back(tracked_new(16));
        keep.back()[0] = 'w';
    }
}

/// The output of a shell command, or "" when it fails to run.
std::string command_output(const std::string& cmd) {
    std::string out;
    std::FILE* p = ::popen(cmd.c_str(), "r");
    if (p == nullptr) return out;
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    ::pclose(p);
    return out;
}

void free_all(std::vector<char*>& keep) {
    for (char* p : keep) delete[] p;
    keep.clear();
}

bool file_starts_with_gzip_magic(const char* path) {
    std::FILE* f = std::fopen(path, "rb");
    if (f == nullptr) return false;
    unsigned char magic[2] = {0, 0};
    const bool ok = std::fread(magic, 1, 2, f) == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    std::fclose(f);
    return ok;
}

std::string temp_dir() {
    char tmpl[] = "/tmp/memdiag-heap-test.XXXXXX";
    const char* d = ::mkdtemp(tmpl);
    REQUIRE(d != nullptr);
    return d;
}

}  // namespace

TEST_CASE("heap_profile: parse_sample_interval accepts sizes and rejects garbage", "[heap_profile][sampler]") {
    struct good_case {
        const char* text;
        std::uint64_t value;
    };
    const good_case good[] = {{"1", 1},          {"524288", 524288},  {"64k", 65536},     {"64K", 65536},
                              {"512KiB", 524288}, {"1M", 1048576},     {"2MiB", 2097152}, {"1G", 1073741824},
                              {" 4096 ", 4096},   {"4096B", 4096},     {"1024KB", 1048576}, {"1099511627776", 1ull << 40}};
    for (const good_case& g : good) {
        INFO(g.text);
        const memdiag::sample_interval_parse r = memdiag::parse_sample_interval(g.text);
        CHECK(r.ok);
        CHECK(r.value == g.value);
    }
    const char* const bad[] = {"", "  ", "0", "0k", "-1", "+5", "abc", "12x", "1.5M", "1 M", "1T", "1Mi",
                               "99999999999999999999999", "1099511627777", "2048G", "0x100"};
    for (const char* b : bad) {
        INFO("'" << b << "'");
        const memdiag::sample_interval_parse r = memdiag::parse_sample_interval(b);
        CHECK_FALSE(r.ok);
        CHECK(std::strlen(r.error) > 0);
    }
    CHECK_FALSE(memdiag::parse_sample_interval(nullptr).ok);
}

TEST_CASE("heap_profile: MEMDIAG_SAMPLE_INTERVAL sets the interval, bad values keep the default",
          "[heap_profile][sampler]") {
    ::unsetenv("MEMDIAG_SAMPLE_INTERVAL");
    CHECK(memdiag::sample_interval_from_env() == memdiag::default_sample_interval);
    ::setenv("MEMDIAG_SAMPLE_INTERVAL", "128k", 1);
    CHECK(memdiag::sample_interval_from_env() == 131072);
    ::setenv("MEMDIAG_SAMPLE_INTERVAL", "bogus", 1);  // prints a message to stderr
    CHECK(memdiag::sample_interval_from_env() == memdiag::default_sample_interval);
    ::setenv("MEMDIAG_SAMPLE_INTERVAL", "1", 1);
    {
        // start() without an explicit interval takes the variable.
        profiler_run run(profile_options{});
        CHECK(heap_profiler::sample_interval() == 1);
    }
    {
        // An explicit interval wins over the variable.
        profiler_run run(profile_options{}.sample_interval(4096));
        CHECK(heap_profiler::sample_interval() == 4096);
    }
    ::unsetenv("MEMDIAG_SAMPLE_INTERVAL");
}

TEST_CASE("heap_profile: the sampler's intervals are exponential with the requested mean",
          "[heap_profile][sampler]") {
    // Draws X_i ~ Exp(mean R): E[X] = R and sd(X) = R, so the mean of N draws
    // has sd R/sqrt(N). Allow 5 sd (a false failure once in ~1.7 million runs).
    memdiag::poisson_sampler s;
    s.seed(12345);
    const std::uint64_t R = 524288;
    const int N = 200000;
    double sum = 0, below_mean = 0, smallest = 1;
    for (int i = 0; i < N; ++i) {
        const double x = static_cast<double>(s.draw(R));
        smallest = x < smallest ? x : smallest;
        sum += x;
        below_mean += x < static_cast<double>(R) ? 1 : 0;
    }
    const double mean = sum / N;
    CHECK(smallest >= 0);
    CHECK(std::fabs(mean - R) < 5.0 * R / std::sqrt(static_cast<double>(N)));
    // P(X < R) = 1 - 1/e for an exponential; a Bernoulli proportion has sd sqrt(p(1-p)/N).
    const double p = 1 - std::exp(-1.0);
    CHECK(std::fabs(below_mean / N - p) < 5.0 * std::sqrt(p * (1 - p) / N));
    // Interval 1: every allocation.
    int every = 0;
    for (int i = 0; i < 1000; ++i) every += s.should_sample(1, 1) ? 1 : 0;
    CHECK(every == 1000);
    // should_sample(S, R) is true with probability 1 - exp(-S/R): Binomial(N, p).
    const std::size_t S = 4096;
    const double q = memdiag::sample_probability(S, 65536);
    int hits = 0;
    for (int i = 0; i < N; ++i) hits += s.should_sample(S, 65536) ? 1 : 0;
    CHECK(std::fabs(hits - N * q) < 5.0 * std::sqrt(N * q * (1 - q)));
}

TEST_CASE("heap_profile: exact mode records every allocation; frees remove samples", "[heap_profile]") {
    if (hook_missing()) return;
    std::vector<char*> keep;
    std::vector<void*> keep_c;
    keep.reserve(100);
    keep_c.reserve(50);
    profiler_run run(profile_options{}.sample_interval(1));
    const std::uint64_t live_before = heap_profiler::stats().live_samples;

    exact_site(keep, 100, 1000);
    malloc_site(keep_c, 50, 300);
    site_figures f = figures_of("exact_site");
    CHECK(f.sites == 1);
    CHECK(f.alloc_objects == 100);
    CHECK(f.alloc_bytes == 100 * 1000);  // requested sizes, not the allocator's usable sizes
    CHECK(f.inuse_objects == 100);
    CHECK(f.inuse_bytes == 100 * 1000);
    CHECK(f.est_inuse_bytes == 100 * 1000);  // interval 1: no scaling
    CHECK_FALSE(f.leading_allocator_frame);  // operator new and memdiag's frames are gone
    CHECK(f.stats.running);
    CHECK(f.stats.sample_interval == 1);
    CHECK(f.stats.dropped_samples == 0);
    const bool c_hook = memdiag::malloc_hook_installed();
    CHECK(f.stats.live_samples >= live_before + (c_hook ? 150 : 100));
    if (c_hook) {
        site_figures m = figures_of("malloc_site");
        CHECK(m.alloc_objects == 50);
        CHECK(m.inuse_bytes == 50 * 300);
    }

    // Free half: in-use figures drop, allocated figures stay.
    for (int i = 0; i < 50; ++i) delete[] keep[static_cast<std::size_t>(i)];
    keep.erase(keep.begin(), keep.begin() + 50);
    f = figures_of("exact_site");
    CHECK(f.alloc_objects == 100);
    CHECK(f.alloc_bytes == 100 * 1000);
    CHECK(f.inuse_objects == 50);
    CHECK(f.inuse_bytes == 50 * 1000);

    // Allocated and freed at once: only alloc_* remains.
    churn_site(64, 2048);
    site_figures c = figures_of("churn_site");
    CHECK(c.alloc_objects == 64);
    CHECK(c.alloc_bytes == 64 * 2048);
    CHECK(c.inuse_objects == 0);
    CHECK(c.inuse_bytes == 0);

    // The text report and collapsed stacks agree.
    const std::string report = memdiag::heap_report(50);
    CHECK(report.find("exact_site") != std::string::npos);
    CHECK(report.find("dropped_samples: 0") != std::string::npos);
    CHECK(report.find("every allocation recorded") != std::string::npos);
    // tracking_allocator events: the same figures, memdiag's frames removed.
    std::vector<char*> tracked;
    tracked.reserve(20);
    tracked_exact_site(tracked, 20, 333);
    const site_figures t = figures_of("tracked_exact_site");
    CHECK(t.alloc_objects == 20);
    CHECK(t.inuse_bytes == 20 * 333);
    CHECK_FALSE(t.leading_allocator_frame);
    free_tracked(tracked, 333);
    CHECK(figures_of("tracked_exact_site").inuse_objects == 0);

    const std::string folded = memdiag::collapsed_heap_stacks();
    bool found = false;
    std::size_t at = 0;
    while ((at = folded.find("exact_site", at)) != std::string::npos) {
        const std::size_t eol = folded.find('\n', at);
        const std::size_t space = folded.rfind(' ', eol);
        if (folded.compare(space + 1, eol - space - 1, "50000") == 0) found = true;
        at = eol;
    }
    CHECK(found);

    free_all(keep);
    for (void* p : keep_c) std::free(p);
    f = figures_of("exact_site");
    CHECK(f.inuse_objects == 0);
    CHECK(f.inuse_bytes == 0);
    CHECK(heap_profiler::stats().live_samples <= live_before + 8);  // Catch2's own may come and go
}

TEST_CASE("heap_profile: sampled mode estimates are unbiased within a derived bound", "[heap_profile]") {
    // N allocations of S bytes at mean interval R. With byte-based Poisson
    // sampling each is recorded independently with p = 1 - exp(-S/R)
    // (memoryless countdown), so the recorded count K ~ Binomial(N, p):
    // E[K] = Np, Var[K] = Np(1-p). The writers scale a site's figures by 1/p
    // (Go's scaleHeapSample with avg = S), so the byte estimate is K*S/p with
    // E = N*S (unbiased) and sd = (S/p) * sqrt(Np(1-p)).
    // Here N = 10000, S = 1024, R = 8192: p = 0.1175, E[K] = 1175, sd(K) = 32.2,
    // i.e. the estimate's sd is 2.7% of the true 10,240,000 bytes. We allow 5 sd
    // (13.7%); a correct sampler fails that about once in 1.7 million runs.
    const int N = 10000;
    const std::size_t S = 1024;
    const std::uint64_t R = 8192;
    std::vector<char*> keep;
    keep.reserve(N);
    profiler_run run(profile_options{}.sample_interval(R));
    sampled_site(keep, N, S);
    const site_figures f = figures_of("sampled_site");
    const double p = 1 - std::exp(-static_cast<double>(S) / R);
    const double truth = static_cast<double>(N) * S;
    const double sd = (S / p) * std::sqrt(N * p * (1 - p));
    INFO("recorded " << f.inuse_objects << " of " << N << ", estimate " << f.est_inuse_bytes << " bytes vs "
                     << truth << " (sd " << sd << ")");
    CHECK(f.stats.sample_interval == R);
    CHECK(f.inuse_bytes == f.inuse_objects * static_cast<std::int64_t>(S));
    CHECK(std::fabs(static_cast<double>(f.est_inuse_bytes) - truth) < 5 * sd);
    CHECK(std::fabs(static_cast<double>(f.est_alloc_bytes) - truth) < 5 * sd);
    CHECK(f.inuse_objects < N);  // it really sampled
    free_tracked(keep, S);
    const site_figures g = figures_of("sampled_site");
    CHECK(g.inuse_objects == 0);
    CHECK(g.est_inuse_bytes == 0);
    CHECK(g.alloc_objects == f.alloc_objects);
}

TEST_CASE("heap_profile: full tables drop new samples and say so", "[heap_profile]") {
    std::vector<char*> keep;
    keep.reserve(200);
    {
        profiler_run run(profile_options{}.sample_interval(1).max_live_samples(16));
        full_site(keep, 100);
        const memdiag::heap_profile_stats st = heap_profiler::stats();
        CHECK(st.max_live_samples == 16);
        CHECK(st.live_samples == 16);
        CHECK(st.dropped_samples >= 84);
        const site_figures f = figures_of("full_site");
        CHECK(f.inuse_objects <= 16);
        const std::string report = memdiag::heap_report(5);
        CHECK(report.find("dropped_samples: " + std::to_string(st.dropped_samples)) != std::string::npos);
        CHECK(report.rfind("memdiag: " + std::to_string(st.dropped_samples) + " samples dropped", 0) == 0);
        // Recorded samples are still updated, freeing makes room again.
        free_tracked(keep, 32);
        CHECK(heap_profiler::stats().live_samples < 16);
        CHECK(figures_of("full_site").inuse_objects == 0);
    }
    {
        // Distinct stacks beyond max_stacks are dropped too.
        profiler_run run(profile_options{}.sample_interval(1).max_stacks(16));
        // (or the frame arena, 24 frames per stack on average, fills first).
        for (int d = 0; d < 40; ++d) deep_site(d, keep);
        const memdiag::heap_profile_stats st = heap_profiler::stats();
        CHECK(st.stacks <= 16);
        CHECK(st.dropped_samples >= 24);
        for (char*& p : keep)
            if (p != nullptr) g_tracked.deallocate(p, 48);
        keep.clear();
    }
}

TEST_CASE("heap_profile: exact mode with default options drops nothing past the old fixed table sizes",
          "[heap_profile]") {
    // The old defaults held 262,144 live samples and 65,536 stacks, then
    // dropped. Here: 300,000 live blocks at one site plus one block on each
    // of 131,072 distinct stacks, all live at once, with default options.
    const int wide = 300000, levels = 17, paths = 1 << levels;
    std::vector<char*> keep, keep_paths;
    keep.reserve(wide);
    keep_paths.reserve(paths);
    profiler_run run(profile_options{}.sample_interval(1));
    wide_site(keep, wide);
    for (int b = 0; b < paths; ++b) path_step(static_cast<unsigned>(b), levels, keep_paths);
    const memdiag::heap_profile_stats st = heap_profiler::stats();
    INFO("live " << st.live_samples << ", stacks " << st.stacks << ", table bytes " << st.table_bytes);
    CHECK(st.dropped_samples == 0);
    CHECK(st.live_samples >= static_cast<std::uint64_t>(wide + paths));
    CHECK(st.stacks >= static_cast<std::uint64_t>(paths));
    CHECK(st.max_table_bytes == profile_options{}.max_table_bytes());
    CHECK(st.table_bytes <= st.max_table_bytes);
    // The stated cost: the live table takes at most 48 bytes per live sample.
    {
        using namespace memdiag::detail::heapprof;
        tables* t = g_profiler.current.load();
        table_guard g(g_profiler.lock);
        t->lock_shards();
        CHECK(t->live_bytes() <= 48 * t->live_total());
        t->unlock_shards();
    }
    const site_figures w = figures_of("wide_site");
    CHECK(w.alloc_objects == wide);
    CHECK(w.inuse_objects == wide);
    CHECK(w.inuse_bytes == std::int64_t{wide} * 16);
    const site_figures p = figures_of("path_leaf");
    CHECK(p.sites == paths);  // every path its own site: nothing merged, nothing lost
    CHECK(p.inuse_objects == paths);
    CHECK(p.inuse_bytes == std::int64_t{paths} * 24);
    const std::string report = memdiag::heap_report(3);
    CHECK(report.rfind("memdiag heap snapshot:", 0) == 0);  // no dropped notice on top
    CHECK(report.find("dropped_samples: 0") != std::string::npos);
    free_tracked(keep, 16);
    free_tracked(keep_paths, 24);
    CHECK(figures_of("wide_site").inuse_objects == 0);
}

TEST_CASE("heap_profile: past max_table_bytes samples are dropped and every writer says so", "[heap_profile]") {
    const int n = 100000;
    std::vector<char*> keep;
    keep.reserve(n);
    const std::string dir = temp_dir();
    const std::string path = dir + "/capped.pb.gz";
    std::uint64_t dropped = 0;
    {
        profiler_run run(profile_options{}.sample_interval(1).max_table_bytes(1 << 20));
        wide_site(keep, n);
        const memdiag::heap_profile_stats st = heap_profiler::stats();
        INFO("live " << st.live_samples << ", table bytes " << st.table_bytes);
        CHECK(st.max_table_bytes == std::size_t{1} << 20);
        CHECK(st.table_bytes <= st.max_table_bytes);
        CHECK(st.live_samples < static_cast<std::uint64_t>(n));
        CHECK(st.dropped_samples + st.live_samples >= static_cast<std::uint64_t>(n));
        dropped = st.dropped_samples;
        REQUIRE(dropped > 0);
        // The count keeps growing: this thread's own allocations are dropped too.
        const std::string notice = " samples dropped, tables full";
        const std::string report = memdiag::heap_report(3);
        const std::string first = report.substr(0, report.find('\n'));
        INFO(first);
        CHECK(first.rfind("memdiag: ", 0) == 0);  // the report's first line
        CHECK(first.find(notice) != std::string::npos);
        CHECK(std::strtoull(first.c_str() + 9, nullptr, 10) >= dropped);
        REQUIRE(memdiag::write_heap_profile(path.c_str()));
        // The pprof file carries the notice as a comment: go tool pprof shows it.
        if (command_output("command -v go").empty()) {
            WARN("go is not installed: the pprof comment was not read back with go tool pprof");
        } else {
            const std::string comments = command_output("GOCACHE=" + dir + "/gocache HOME=" + dir +
                                                        " go tool pprof -comments " + path + " 2>&1");
            INFO(comments);
            CHECK(comments.find(notice) != std::string::npos);
        }
        free_tracked(keep, 16);
        CHECK(heap_profiler::stats().live_samples == 0);
    }
    command_output("rm -rf " + dir);
}

TEST_CASE("heap_profile: restarting clears the tables", "[heap_profile]") {
    std::vector<char*> keep;
    keep.reserve(10);
    {
        profiler_run run(profile_options{}.sample_interval(1));
        tracked_exact_site(keep, 10, 100);
        CHECK(figures_of("tracked_exact_site").inuse_objects == 10);
    }
    CHECK_FALSE(heap_profiler::running());
    CHECK(figures_of("tracked_exact_site").inuse_objects == 10);  // kept after stop()
    {
        profiler_run run(profile_options{}.sample_interval(1));
        CHECK(heap_profiler::running());
        CHECK(figures_of("tracked_exact_site").alloc_objects == 0);
    }
    free_tracked(keep, 100);
}

TEST_CASE("heap_profile: tracking_allocator events are profiled without memdiag frames", "[heap_profile]") {
    memdiag::tracker t{"heap_profile_test"};
    std::vector<int, memdiag::tracking_allocator<int>> v{memdiag::tracking_allocator<int>{t}};
    profiler_run run(profile_options{}.sample_interval(1));
    tracked_site(v);
    memdiag::detail::internal_section quiet;
    memdiag::detail::heapprof::snapshot_data snap;
    REQUIRE(memdiag::detail::heapprof::take_snapshot(snap));
    bool found = false;
    for (const auto& s : snap.samples) {
        if (s.inuse_bytes != 1000 * static_cast<std::int64_t>(sizeof(int))) continue;
        const auto leaf = snap.names.function_name(s.stack[0] - 1);
        CHECK_FALSE(memdiag::detail::heapprof::is_allocator_frame(leaf.data(), leaf.size()));
        for (std::size_t i = 0; i < s.depth; ++i)
            if (snap.names.function_name(s.stack[i] - 1).find("tracked_site") != memdiag::detail::internal_string::npos)
                found = true;
    }
    CHECK(found);
}

TEST_CASE("heap_profile: allocator frames are recognised by name", "[heap_profile]") {
    using memdiag::detail::heapprof::is_allocator_frame;
    auto is = [](const char* s) { return is_allocator_frame(s, std::strlen(s)); };
    CHECK(is("operator new(unsigned long)"));
    CHECK(is("operator new[](unsigned long, std::nothrow_t const&)"));
    CHECK(is("malloc"));
    CHECK(is("memdiag::detail::hooked_new(unsigned long, unsigned long, bool)"));
    CHECK(is("memdiag::tracking_allocator<int, memdiag::detail::new_upstream>::allocate(unsigned long)"));
    CHECK(is("void* memdiag::detail::thing<int>(int)"));
    CHECK_FALSE(is("alloc_a()"));
    CHECK_FALSE(is("std::vector<memdiag::tracker*, std::allocator<memdiag::tracker*> >::push_back(x)"));
    CHECK_FALSE(is("mallocx"));
    CHECK_FALSE(is("app::memdiag::fake()"));
    CHECK_FALSE(is(""));
    // Mangled, as the fatal-signal handler leaves them.
    CHECK(is("_ZN7memdiag6detail13allocated_slowEPNS0_12thread_stateEPvmm"));
    CHECK(is("_ZNK7memdiag7tracker5statsEv"));
    CHECK(is("_Znwm"));
    CHECK(is("_ZnamRKSt9nothrow_t"));
    CHECK(is("_ZdlPvm"));
    CHECK_FALSE(is("_Z9leak_sitem"));
    CHECK_FALSE(is("_ZNSt6vectorIPN7memdiag7trackerESaIS2_EE9push_backERKS2_"));
}

TEST_CASE("heap_profile: threads sample concurrently and frees cross threads", "[heap_profile]") {
    profiler_run run(profile_options{}.sample_interval(1));
    constexpr int threads = 4, per_thread = 2000;
    std::vector<std::vector<char*>> kept(threads);
    for (auto& k : kept) k.reserve(per_thread);
    std::vector<std::thread> pool;
    for (int i = 0; i < threads; ++i) pool.emplace_back([&kept, i] { thread_site(kept[static_cast<std::size_t>(i)], per_thread); });
    for (auto& th : pool) th.join();
    site_figures f = figures_of("thread_site");
    CHECK(f.alloc_objects == threads * per_thread);
    CHECK(f.inuse_objects == threads * per_thread);
    // Freed on other threads than the ones that allocated.
    pool.clear();
    for (int i = 0; i < threads; ++i)
        pool.emplace_back([&kept, i] { free_tracked(kept[static_cast<std::size_t>((i + 1) % threads)], 64); });
    for (auto& th : pool) th.join();
    f = figures_of("thread_site");
    CHECK(f.inuse_objects == 0);
    CHECK(f.inuse_bytes == 0);
    CHECK(f.stats.dropped_samples == 0);
}

TEST_CASE("heap_profile: write_heap_profile writes gzip pprof and reports IO errors", "[heap_profile]") {
    const std::string dir = temp_dir();
    const std::string path = dir + "/heap.pb.gz";
    std::vector<char*> keep;
    keep.reserve(10);
    profiler_run run(profile_options{}.sample_interval(1));
    tracked_exact_site(keep, 10, 4096);
    memdiag::result r = memdiag::write_heap_profile(path.c_str());
    CHECK(r.ok());
    CHECK(file_starts_with_gzip_magic(path.c_str()));
    struct stat st;
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);

    r = memdiag::write_heap_profile((dir + "/missing/heap.pb.gz").c_str());
    CHECK_FALSE(r.ok());
    CHECK(std::string(r.message()).find("missing") != std::string::npos);
    CHECK_FALSE(memdiag::write_heap_profile("").ok());
    free_tracked(keep, 4096);
    std::remove(path.c_str());
    ::rmdir(dir.c_str());
}

TEST_CASE("heap_profile: a failing operator new writes a snapshot before throwing", "[heap_profile]") {
    if (hook_missing()) return;
    const std::string dir = temp_dir();
    const std::string path = dir + "/oom.pb.gz";
    std::vector<char*> keep;
    keep.reserve(10);
    profiler_run run(profile_options{}.sample_interval(1).dump_on_bad_alloc(path.c_str()));
    exact_site(keep, 10, 512);
    const volatile std::size_t huge = ~std::size_t{0} - 4096;  // beyond any address space
    CHECK_THROWS_AS(::operator new(huge), std::bad_alloc);
    CHECK(file_starts_with_gzip_magic(path.c_str()));
    free_all(keep);
    std::remove(path.c_str());
    ::rmdir(dir.c_str());
}

TEST_CASE("heap_profile: dump_heap_on_failure writes to the dump path or MEMDIAG_DUMP_DIR", "[heap_profile]") {
    const std::string dir = temp_dir();
    profiler_run run(profile_options{}.sample_interval(1));
    ::unsetenv("MEMDIAG_DUMP_DIR");
    heap_profiler::set_dump_path(nullptr);
    CHECK_FALSE(memdiag::detail::dump_heap_on_failure("test: nowhere to write"));

    const std::string path = dir + "/explicit.pb.gz";
    heap_profiler::set_dump_path(path.c_str());
    CHECK(memdiag::detail::dump_heap_on_failure("test: explicit path"));
    CHECK(file_starts_with_gzip_magic(path.c_str()));
    std::remove(path.c_str());

    heap_profiler::set_dump_path(nullptr);
    ::setenv("MEMDIAG_DUMP_DIR", dir.c_str(), 1);
    const unsigned serial = memdiag::detail::heapprof::g_profiler.dump_serial.load() + 1;
    CHECK(memdiag::detail::dump_heap_on_failure("test: dump dir"));
    const std::string auto_path =
        dir + "/memdiag-heap-" + std::to_string(::getpid()) + "-" + std::to_string(serial) + ".pb.gz";
    CHECK(file_starts_with_gzip_magic(auto_path.c_str()));
    ::unsetenv("MEMDIAG_DUMP_DIR");
    std::remove(auto_path.c_str());
    ::rmdir(dir.c_str());
}

TEST_CASE("heap_profile: an unchecked walk is trusted only as a stack checked under the same code table",
          "[heap_profile]") {
    using namespace memdiag::detail::heapprof;
    memdiag::detail::internal_section quiet;
    tables t;
    t.configure(64, 0, 0, std::size_t{1} << 30);
    REQUIRE(t.allocate());
    // record_sample's two paths: a known stack, or a checked capture interned.
    const auto insert_known = [&t](char* p, const std::uintptr_t* f, std::uint64_t h, std::uint32_t seq) {
        const long id = t.known_stack(f, 3, h, seq);
        if (id >= 0) CHECK(t.add_live(p, 8, static_cast<std::uint32_t>(id), t.generation.load()));
        return id >= 0;
    };
    const auto insert = [&t](char* p, const std::uintptr_t* f, std::uint64_t h, bool checked, std::uint32_t seq) {
        const long id = t.intern_stack(f, 3, h, checked, seq);
        REQUIRE(id >= 0);
        CHECK(t.add_live(p, 8, static_cast<std::uint32_t>(id), t.generation.load()));
    };
    const std::uintptr_t a[3] = {0x401000, 0x401100, 0x401200};
    const std::uintptr_t b[3] = {0x401000, 0x401100, 0x401300};
    const std::uint64_t ha = frames_hash(a, 3);
    char blocks[5] = {};
    // A stack never seen: the caller must capture with checks; nothing recorded.
    CHECK_FALSE(insert_known(&blocks[0], a, ha, 2));
    CHECK(t.samples_total() == 0);
    CHECK(t.live_total() == 0);
    // Interned from a capture that was not checked: still not trusted.
    insert(&blocks[0], a, ha, false, 0);
    CHECK_FALSE(insert_known(&blocks[1], a, ha, 2));
    // Checked under code table version 2: the same stack, now trusted under 2.
    insert(&blocks[1], a, ha, true, 2);
    CHECK(t.stack_count == 1);
    CHECK(insert_known(&blocks[2], a, ha, 2));
    CHECK(t.known_hits == 1);
    CHECK(t.stack_count == 1);
    CHECK(t.figures_of(0).alloc_objects.load() == 3);
    const auto inuse_bytes = [&t] {
        std::int64_t bytes = 0;
        t.for_each_live(
            [&bytes](std::uint32_t id, std::size_t size) { bytes += id == 0 ? static_cast<std::int64_t>(size) : 0; });
        return bytes;
    };
    CHECK(inuse_bytes() == 24);
    CHECK(t.live_total() == 3);
    // Other frames under the same hash (a collision) are not that stack.
    CHECK_FALSE(insert_known(&blocks[3], b, ha, 2));
    // The code table was rebuilt (a dlopen or dlclose): no stack is trusted
    // until a checked capture under the new version finds it again.
    CHECK_FALSE(insert_known(&blocks[3], a, ha, 4));
    insert(&blocks[3], a, ha, true, 4);
    CHECK(insert_known(&blocks[4], a, ha, 4));
    CHECK_FALSE(insert_known(&blocks[4], a, ha, 2));  // an older version is not the same either
    CHECK(t.samples_total() == 5);
    CHECK(t.dropped_total() == 0);
    for (char& c : blocks) t.remove(&c);
    CHECK(t.live_total() == 0);
    CHECK(inuse_bytes() == 0);
    t.release();
}

TEST_CASE("heap_profile: exact mode records repeated stacks without re-checking them, same figures",
          "[heap_profile]") {
    if (hook_missing()) return;
    std::vector<char*> keep;
    keep.reserve(200);
    profiler_run run(profile_options{}.sample_interval(1));
    std::uint64_t hits_before;
    {
        using namespace memdiag::detail::heapprof;
        tables* t = g_profiler.current.load();
        table_guard g(g_profiler.lock);
        t->lock_shards();
        hits_before = t->known_total();
        t->unlock_shards();
    }
    exact_site(keep, 200, 1000);
    std::uint64_t hits;
    {
        using namespace memdiag::detail::heapprof;
        tables* t = g_profiler.current.load();
        table_guard g(g_profiler.lock);
        t->lock_shards();
        hits = t->known_total() - hits_before;
        t->unlock_shards();
    }
    const site_figures f = figures_of("exact_site");
    CHECK(f.sites == 1);  // the walked frames are the checked capture's: one stack
    CHECK(f.alloc_objects == 200);
    CHECK(f.inuse_bytes == 200 * 1000);
    CHECK_FALSE(f.leading_allocator_frame);
#if MEMDIAG_HAS_FRAME_WALK && MEMDIAG_HAS_CODE_RANGES
    // The first one or two samples are checked (one more if the code table is
    // first built then); all others match: the checked capture was saved.
    INFO("known hits " << hits);
    CHECK(hits >= 197);
#else
    CHECK(hits == 0);
#endif
    free_all(keep);
}

// The live table's shards (issue 15: exact mode with threads). Blocks come
// from a tracking allocator, so these run without the global hook too.
namespace {
__attribute__((noinline)) void shard_site(std::vector<char*>& keep, int n) {
    for (int i = 0; i < n; ++i) {
        keep.push_back(tracked_new(40));
        keep.back()[0] = 'h';
    }
}
__attribute__((noinline)) char* churn_ring_site() {
    char* p = tracked_new(24);
    p[0] = 'r';
    return p;
}

/// Waits up to 10 s for `flag` to reach `want`; true if it did.
bool wait_for(const std::atomic<int>& flag, int want) {
    for (int i = 0; i < 10000 && flag.load() != want; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return flag.load() == want;
}

/// Every shard's lock takes, read with every table lock held, into `out`
/// (sized by the caller: an allocation here would be sampled, a take itself).
void shard_takes(std::vector<std::uint64_t>& out) {
    using namespace memdiag::detail::heapprof;
    tables* t = g_profiler.current.load();
    table_guard g(g_profiler.lock);
    t->lock_shards();
    for (std::size_t k = 0; k < live_shards; ++k) out[k] = t->shards[k].takes;
    t->unlock_shards();
}
}  // namespace

TEST_CASE("heap_profile: a free of a sampled block takes its shard's lock only, not the stack lock nor other shards'",
          "[heap_profile][threads]") {
    using namespace memdiag::detail::heapprof;
    std::vector<char*> keep;
    keep.reserve(256);
    profiler_run run(profile_options{}.sample_interval(1));
    shard_site(keep, 256);
    tables* t = g_profiler.current.load();
    char* const victim = keep[0];
    const std::size_t a = shard_index(victim);
    char* other = nullptr;
    for (char* p : keep)
        if (shard_index(p) != a) other = p;
    REQUIRE(other != nullptr);
    const std::size_t b = shard_index(other);
    std::atomic<int> stage{0};
    // Whatever the thread allocates or frees at its start and exit falls
    // outside the counted window (stages 5 and 6).
    std::thread th([&] {
        stage.store(5);
        while (stage.load() != 1) std::this_thread::yield();
        g_tracked.deallocate(victim, 40);
        stage.store(2);
        while (stage.load() != 3) std::this_thread::yield();
        g_tracked.deallocate(other, 40);
        stage.store(4);
        while (stage.load() != 6) std::this_thread::yield();
    });
    std::vector<std::uint64_t> before(live_shards), after(live_shards);
    REQUIRE(wait_for(stage, 5));
    shard_takes(before);
    bool free_passed_stack_lock = false, free_passed_other_shard = false;
    {
        // The stack lock held (as by a thread interning a new stack): the free goes on.
        table_guard g(g_profiler.lock);
        stage.store(1);
        free_passed_stack_lock = wait_for(stage, 2);
    }
    if (!free_passed_stack_lock) wait_for(stage, 2);
    {
        // The first block's shard held: a free in another shard goes on.
        table_guard g(t->shards[a].lock);
        stage.store(3);
        free_passed_other_shard = wait_for(stage, 4);
    }
    if (!free_passed_other_shard) wait_for(stage, 4);
    shard_takes(after);
    stage.store(6);
    th.join();
    CHECK(free_passed_stack_lock);
    CHECK(free_passed_other_shard);
    // Each free took its own shard's lock once and no other shard's.
    for (std::size_t k = 0; k < live_shards; ++k) {
        INFO("shard " << k << " (victim's " << a << ", other's " << b << ")");
        CHECK(after[k] - before[k] == (k == a ? 1u : 0u) + (k == b ? 1u : 0u));
    }
    keep.erase(std::remove(keep.begin(), keep.end(), victim), keep.end());
    keep.erase(std::remove(keep.begin(), keep.end(), other), keep.end());
    free_tracked(keep, 40);
}

TEST_CASE("heap_profile: every live shard grows on its own and the totals add up over all shards",
          "[heap_profile]") {
    using namespace memdiag::detail::heapprof;
    constexpr int n = 40000;  // 2500 per shard: each must grow from 256 slots to 4096
    std::vector<char*> keep;
    keep.reserve(n);
    profiler_run run(profile_options{}.sample_interval(1));
    shard_site(keep, n);
    tables* t = g_profiler.current.load();
    std::vector<std::size_t> count(live_shards), cap(live_shards), held(live_shards, 0);
    for (char* p : keep) ++held[shard_index(p)];
    std::size_t total = 0;
    {
        table_guard g(g_profiler.lock);
        t->lock_shards();
        for (std::size_t k = 0; k < live_shards; ++k) {
            count[k] = t->shards[k].count.load();
            cap[k] = t->shards[k].cap();
        }
        total = t->live_total();
        t->unlock_shards();
    }
    const memdiag::heap_profile_stats st = heap_profiler::stats();  // before CHECK allocates
    std::size_t sum = 0;
    for (std::size_t k = 0; k < live_shards; ++k) {
        INFO("shard " << k << ": " << count[k] << " live in " << cap[k] << " slots, " << held[k] << " of ours");
        CHECK(count[k] >= held[k]);
        CHECK(cap[k] > (std::size_t{1} << initial_live_bits));
        CHECK(4 * count[k] <= 3 * cap[k]);
        sum += count[k];
    }
    CHECK(sum == total);
    CHECK(st.live_samples == total);
    CHECK(st.dropped_samples == 0);
    CHECK(st.table_bytes <= st.max_table_bytes);
    const site_figures f = figures_of("shard_site");
    CHECK(f.alloc_objects == n);
    CHECK(f.inuse_objects == n);
    CHECK(f.inuse_bytes == std::int64_t{n} * 40);
    CHECK(f.stats.live_samples >= static_cast<std::uint64_t>(n));  // a shard left out would lack ~1/16
    free_tracked(keep, 40);
    CHECK(figures_of("shard_site").inuse_objects == 0);
}

TEST_CASE("heap_profile: snapshots taken while threads churn see all shards at one moment", "[heap_profile][threads]") {
    constexpr int threads = 4, ring = 256, rounds = 20000;
    profiler_run run(profile_options{}.sample_interval(1));
    std::atomic<int> ready{0};
    std::vector<std::vector<char*>> rings(threads);
    std::vector<std::thread> pool;
    for (int i = 0; i < threads; ++i) {
        pool.emplace_back([&, i] {
            std::vector<char*>& r = rings[static_cast<std::size_t>(i)];
            r.reserve(ring);
            for (int k = 0; k < ring; ++k) r.push_back(churn_ring_site());
            ready.fetch_add(1);
            // Free the oldest, then allocate: between ring - 1 and ring live.
            for (int k = 0; k < rounds; ++k) {
                char*& slot = r[static_cast<std::size_t>(k % ring)];
                g_tracked.deallocate(slot, 24);
                slot = churn_ring_site();
            }
        });
    }
    while (ready.load() != threads) std::this_thread::yield();
    int snapshots = 0, out_of_range = 0;
    std::int64_t lowest = threads * ring, highest = 0;
    for (; snapshots < 200; ++snapshots) {
        const site_figures f = figures_of("churn_ring_site");
        lowest = std::min(lowest, f.inuse_objects);
        highest = std::max(highest, f.inuse_objects);
        if (f.inuse_objects < threads * (ring - 1) || f.inuse_objects > threads * ring ||
            f.inuse_bytes != f.inuse_objects * 24)
            ++out_of_range;
    }
    for (auto& th : pool) th.join();
    INFO(snapshots << " snapshots, in use between " << lowest << " and " << highest);
    CHECK(out_of_range == 0);
    const site_figures f = figures_of("churn_ring_site");
    CHECK(f.alloc_objects == threads * (ring + rounds));
    CHECK(f.inuse_objects == threads * ring);
    CHECK(f.stats.dropped_samples == 0);
    for (auto& r : rings) free_tracked(r, 24);
    CHECK(figures_of("churn_ring_site").inuse_objects == 0);
}

namespace {
__attribute__((noinline)) char* pending_site(std::size_t n) {
    char* p = tracked_new(n);
    p[0] = 'p';
    return p;
}
}  // namespace

TEST_CASE("heap_profile: a thread's pending figures are counted at a snapshot and when it exits",
          "[heap_profile][threads]") {
    // A thread's samples of a stack in its cache add to figures of its own,
    // folded at each snapshot and at thread exit: a snapshot that missed them,
    // or an exit that dropped them, shows fewer than every allocation.
    constexpr int n = 300;
    profiler_run run(profile_options{}.sample_interval(1));
    std::atomic<int> phase{0};
    std::vector<char*> kept_a, kept_b;
    std::thread a([&] {  // stays alive, idle, while the snapshot is taken
        for (int k = 0; k < n; ++k) kept_a.push_back(pending_site(16));
        phase.fetch_add(1);
        while (phase.load() != 2) std::this_thread::yield();
    });
    while (phase.load() != 1) std::this_thread::yield();
    const site_figures alive = figures_of("pending_site");
    CHECK(alive.alloc_objects == n);
    CHECK(alive.alloc_bytes == 16 * n);
    CHECK(alive.inuse_objects == n);
    phase.store(2);
    a.join();
    // b exits before any snapshot: only its exit can fold its figures.
    std::thread b([&] {
        for (int k = 0; k < n; ++k) kept_b.push_back(pending_site(32));
    });
    b.join();
    const site_figures both = figures_of("pending_site");
    CHECK(both.alloc_objects == 2 * n);
    CHECK(both.alloc_bytes == 16 * n + 32 * n);
    CHECK(both.inuse_objects == 2 * n);
    CHECK(both.stats.dropped_samples == 0);
    free_tracked(kept_a, 16);
    free_tracked(kept_b, 32);
    CHECK(figures_of("pending_site").inuse_objects == 0);
}

namespace {
constexpr int key_exit_objects = 50;
char* g_key_exit_kept[key_exit_objects];
__attribute__((noinline)) char* key_exit_site(std::size_t n) {
    char* p = tracked_new(n);
    p[0] = 'k';
    return p;
}
/// Threads' stack caches linked in the tables (every shard lock taken).
std::size_t linked_stack_caches() {
    memdiag::detail::internal_section quiet;
    auto* t = memdiag::detail::heapprof::g_profiler.current.load();
    REQUIRE(t != nullptr);
    t->lock_shards();
    std::size_t n = 0;
    for (auto* c = t->caches; c != nullptr; c = c->next) ++n;
    t->unlock_shards();
    return n;
}
}  // namespace

TEST_CASE("heap_profile: a thread whose first sample is in a key destructor leaves no stack cache behind",
          "[heap_profile][threads]") {
    // Key destructors run after the thread_local destructors: a thread whose
    // first memdiag event is in one (its state and its stack cache created
    // there) must still have its cache retired before its memory goes; else
    // the list of caches keeps a node that a new thread's TLS reuses.
    profiler_run run(profile_options{}.sample_interval(1));
    for (int k = 0; k < 3; ++k) g_tracked.deallocate(tracked_new(1), 1);  // this thread's cache registered
    const std::size_t before = linked_stack_caches();
    pthread_key_t key;
    REQUIRE(pthread_key_create(&key, [](void*) {
                for (int k = 0; k < key_exit_objects; ++k) g_key_exit_kept[k] = key_exit_site(40);
            }) == 0);
    // A bare pthread: no memdiag event before the key destructor (a
    // std::thread frees its state, which would create the thread's state early).
    pthread_t x;
    REQUIRE(pthread_create(
                &x, nullptr,
                [](void* k) -> void* {
                    pthread_setspecific(*static_cast<pthread_key_t*>(k), &key_exit_objects);
                    return nullptr;
                },
                &key) == 0);
    pthread_join(x, nullptr);
    pthread_key_delete(key);
    CHECK(linked_stack_caches() == before);
    const site_figures f = figures_of("key_exit_site");
    CHECK(f.alloc_objects == key_exit_objects);
    CHECK(f.inuse_objects == key_exit_objects);
    for (char* p : g_key_exit_kept) g_tracked.deallocate(p, 40);
}

TEST_CASE("heap_profile: snapshots taken while threads churn hold every sample in its stack's figures",
          "[heap_profile][threads]") {
    // Pending per-thread figures are folded under the same locks as the live
    // entries are read: at every snapshot the allocated objects over all
    // stacks equal the samples recorded, however the threads are interleaved.
    constexpr int threads = 3, rounds = 20000;
    profiler_run run(profile_options{}.sample_interval(1));
    std::atomic<bool> stop{false};
    std::atomic<int> ready{0};
    std::vector<std::thread> pool;
    for (int i = 0; i < threads; ++i) {
        pool.emplace_back([&] {
            ready.fetch_add(1);
            for (int k = 0; k < rounds && !stop.load(std::memory_order_relaxed); ++k) {
                const std::size_t size = 8 + static_cast<std::size_t>(k % 5) * 8;
                g_tracked.deallocate(pending_site(size), size);
            }
        });
    }
    while (ready.load() != threads) std::this_thread::yield();
    int mismatched = 0, snapshots = 0;
    for (; snapshots < 100; ++snapshots) {
        memdiag::detail::internal_section quiet;
        memdiag::detail::heapprof::snapshot_data snap;
        REQUIRE(memdiag::detail::heapprof::take_snapshot(snap));
        std::int64_t objects = 0;
        for (const auto& s : snap.samples) objects += s.alloc_objects;
        if (static_cast<std::uint64_t>(objects) != snap.stats.samples || snap.stats.dropped_samples != 0) {
            if (mismatched++ == 0)
                WARN("snapshot " << snapshots << ": " << objects << " objects in the stacks' figures, "
                                 << snap.stats.samples << " samples");
        }
    }
    stop.store(true);
    for (auto& th : pool) th.join();
    INFO(snapshots << " snapshots");
    CHECK(mismatched == 0);
}

#if MEMDIAG_HAS_FRAME_WALK
TEST_CASE("heap_profile: the sampling walk gives walk_frame_chain's frames and end, and frames_hash, for any chain",
          "[heap_profile][stack]") {
    // walk_and_hash tests less per frame than walk_frame_chain; it must still
    // stop where that does, for the same reason, on chains of every kind of
    // bad link and return address, and never read outside [low, high).
    using memdiag::detail::walk_result;
    constexpr std::size_t words = 48;
    std::uintptr_t stack[words + 8];  // 4 guard words each side, never in [low, high)
    const auto low = reinterpret_cast<std::uintptr_t>(&stack[4]);
    const auto high = reinterpret_cast<std::uintptr_t>(&stack[4 + words]);
    std::uint64_t rng = 0x2545f4914f6cdd1dull;
    auto next_rand = [&rng] {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        return rng;
    };
    constexpr std::uintptr_t w = sizeof(std::uintptr_t);
    auto address = [&](std::uintptr_t from) -> std::uintptr_t {  // a link or a start
        switch (next_rand() % 8) {
            case 0: return 0;
            case 1: return low + (next_rand() % words) * w + 1 + next_rand() % (w - 1);  // misaligned
            case 2: return from - w * (next_rand() % 3);                              // not upwards
            case 3: return high - 2 * w + w * (next_rand() % 3);                      // at and past the top
            case 4: return low - w * (1 + next_rand() % 3);                           // below
            default: return from + w * (1 + next_rand() % 6);                         // upwards
        }
    };
    auto return_address = [&]() -> std::uintptr_t {
        switch (next_rand() % 10) {
            case 0: return 0;
            case 1: return next_rand() % 4096;
            case 2: return low + next_rand() % (words * w);  // on the stack
            case 3: return high + next_rand() % 64;          // just above it: plausible
            case 4: return ~std::uintptr_t{0} - next_rand() % 4096;
            default: return 0x400000 + next_rand() % 0x100000;
        }
    };
    int mismatches = 0, ends[4] = {};
    for (int round = 0; round < 100000; ++round) {
        for (std::size_t i = 0; i < words; i += 2) {
            const std::uintptr_t at = low + i * w;
            stack[4 + i] = address(at);
            stack[5 + i] = return_address();
        }
        const std::uintptr_t start = address(low + (next_rand() % 4) * w);
        const std::size_t max_frames = next_rand() % 12;
        std::uintptr_t a[16] = {}, b[16] = {};
        std::uint64_t h = 0;
        std::uintptr_t sum = 0;
        const walk_result ra = memdiag::detail::heapprof::walk_and_hash(start, low, high, a, max_frames, h, sum);
        const walk_result rb = memdiag::detail::walk_frame_chain(start, low, high, b, max_frames, 0);
        std::uintptr_t want_sum = 0;
        for (std::size_t k = 0; k < rb.count; ++k) want_sum += b[k];
        const bool same = ra.count == rb.count && ra.walked == rb.walked && ra.end == rb.end &&
                          std::equal(a, a + ra.count, b) && h == memdiag::detail::heapprof::frames_hash(b, rb.count) &&
                          sum == want_sum;
        if (!same && mismatches++ < 3)
            WARN("round " << round << ": count " << ra.count << " / " << rb.count << ", end "
                          << static_cast<int>(ra.end) << " / " << static_cast<int>(rb.end));
        ++ends[static_cast<int>(rb.end)];
    }
    CHECK(mismatches == 0);
    for (int e : ends) CHECK(e > 1000);  // every way to stop was met
}
#endif
