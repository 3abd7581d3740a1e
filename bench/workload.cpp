// bench/workload.cpp - an allocation-heavy program that looks like real code,
// for comparing memory tools on whole processes (bench/compare.sh).
//
// Two shapes:
//   index  (default) builds a word index: strings, hash maps, ordered maps,
//          growing vectors, many small and some large allocations.
//   small  many small short-lived objects (8 to 256 bytes: strings, shared
//          objects, nodes) from every thread, each freed soon after: the
//          allocator's fast path dominates, so per-event overhead shows.
//
//   workload [--threads N] [--rounds N] [--shape index|small]
//
// The mode is chosen at build time for the memdiag variants (MEMDIAG_WORKLOAD_MODE)
// so the plain build carries no memdiag code at all.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#if defined(MEMDIAG_WORKLOAD_HOOK)
#define MEMDIAG_REPLACE_GLOBAL_NEW
#include <memdiag/global_new.hpp>
#include <memdiag/memdiag.hpp>
#if __has_include(<memdiag/heap_profile.hpp>)
#include <memdiag/heap_profile.hpp>
#define MEMDIAG_WORKLOAD_HAS_PROFILER 1
#endif
#if __has_include(<memdiag/http.hpp>)
#include <memdiag/http.hpp>  // serves only when MEMDIAG_HTTP is set (bench/http_scrape.sh)
#define MEMDIAG_WORKLOAD_HAS_HTTP 1
#endif
#endif

namespace {

struct document {
    std::string title;
    std::vector<std::string> words;
    std::map<std::string, int> counts;
};

std::string make_word(std::mt19937& rng) {
    static const char letters[] = "etaoinshrdlucmfwypvbgkjqxz";
    std::string w;
    const std::size_t len = 2 + rng() % 14;
    for (std::size_t i = 0; i < len; ++i) w += letters[rng() % 26 * (rng() % 3 == 0 ? 1 : 0) + rng() % 8];
    return w;
}

std::uint64_t one_round(std::mt19937& rng) {
    std::unordered_map<std::string, std::vector<int>> index;
    std::vector<std::unique_ptr<document>> docs;
    for (int d = 0; d < 60; ++d) {
        auto doc = std::make_unique<document>();
        doc->title = "document number " + std::to_string(d) + " with a title long enough to allocate";
        for (int w = 0; w < 200; ++w) {
            std::string word = make_word(rng);
            ++doc->counts[word];
            index[word].push_back(d);
            doc->words.push_back(std::move(word));
        }
        docs.push_back(std::move(doc));
    }
    // Some large buffers, as a program reading files would have.
    std::vector<std::vector<char>> buffers;
    for (int i = 0; i < 4; ++i) buffers.emplace_back(64 * 1024 + rng() % (512 * 1024), 'x');
    std::uint64_t sum = 0;
    for (const auto& [word, postings] : index) sum += word.size() * postings.size();
    for (const auto& b : buffers) sum += b.size();
    return sum;
}

struct small_node {
    std::uint64_t key;
    small_node* next;
    char payload[24];
};

// One round of the `small` shape: 20,000 short-lived objects, each kept in a
// ring of 64 slots (so frees follow allocations closely, as in request
// handling), in three kinds and sizes from 8 to 256 bytes.
std::uint64_t one_small_round(std::mt19937& rng) {
    constexpr std::size_t ring = 64;
    std::unique_ptr<char[]> bytes[ring];
    std::shared_ptr<small_node> nodes[ring];
    std::string texts[ring];
    std::uint64_t sum = 0;
    for (std::size_t i = 0; i < 20000; ++i) {
        const std::size_t slot = rng() % ring;
        switch (i % 3) {
            case 0: {
                const std::size_t n = 8 + rng() % 249;
                bytes[slot].reset(new char[n]);
                bytes[slot][0] = static_cast<char>(n);
                sum += static_cast<unsigned char>(bytes[slot][0]);
                break;
            }
            case 1:
                nodes[slot] = std::make_shared<small_node>();
                nodes[slot]->key = i;
                sum += nodes[slot]->key & 1;
                break;
            default:
                texts[slot] = std::string(16 + rng() % 48, 'a');  // past the small-string buffer
                sum += texts[slot].size();
                break;
        }
    }
    return sum;
}

}  // namespace

int main(int argc, char** argv) {
    int threads = 2, rounds = 400;
    bool small = false;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (std::strcmp(argv[i], "--threads") == 0) threads = std::atoi(argv[i + 1]);
        else if (std::strcmp(argv[i], "--rounds") == 0) rounds = std::atoi(argv[i + 1]);
        else if (std::strcmp(argv[i], "--shape") == 0) small = std::strcmp(argv[i + 1], "small") == 0;
    }
    if (threads < 1 || rounds < 1) {
        std::fprintf(stderr, "usage: workload [--threads N>0] [--rounds N>0] [--shape index|small]\n");
        return 2;
    }
#if defined(MEMDIAG_WORKLOAD_HAS_PROFILER) && defined(MEMDIAG_WORKLOAD_INTERVAL)
    memdiag::heap_profiler::start(memdiag::profile_options{}.sample_interval(MEMDIAG_WORKLOAD_INTERVAL));
#endif
#if defined(MEMDIAG_WORKLOAD_HAS_HTTP)
    memdiag::pprof_server server = memdiag::serve_pprof_from_env();
    if (std::getenv("MEMDIAG_HTTP") != nullptr) {
        if (!server) {
            std::fprintf(stderr, "serve_pprof: %s\n", server.status().message());
            return 1;
        }
        std::printf("port %u\n", static_cast<unsigned>(server.port()));
        std::fflush(stdout);
    }
#endif
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> pool;
    std::vector<std::uint64_t> sums(static_cast<std::size_t>(threads));
    for (int t = 0; t < threads; ++t)
        pool.emplace_back([&, t] {
            std::mt19937 rng(static_cast<unsigned>(t + 1));
            for (int r = 0; r < rounds / threads; ++r)
                sums[static_cast<std::size_t>(t)] += small ? one_small_round(rng) : one_round(rng);
        });
    for (auto& th : pool) th.join();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::uint64_t total = 0;
    for (auto s : sums) total += s;
    std::printf("checksum %llu, %.3f s\n", static_cast<unsigned long long>(total), secs);
#if defined(MEMDIAG_WORKLOAD_HAS_HTTP)
    if (server) std::printf("requests served: %llu\n", static_cast<unsigned long long>(server.requests_served()));
#endif
#if defined(MEMDIAG_WORKLOAD_HOOK)
    const auto st = memdiag::process_stats();
    std::printf("memdiag: %llu allocations, %llu bytes, peak %llu bytes\n",
                static_cast<unsigned long long>(st.allocations), static_cast<unsigned long long>(st.bytes_allocated),
                static_cast<unsigned long long>(st.peak_live_bytes));
#endif
#if defined(MEMDIAG_WORKLOAD_HAS_PROFILER) && defined(MEMDIAG_WORKLOAD_INTERVAL)
    // compare.sh reads this line: exact mode must say "dropped: 0".
    const memdiag::heap_profile_stats ps = memdiag::heap_profiler::stats();
    std::printf("profiler: %llu samples, dropped: %llu, %llu stacks, tables %llu KiB\n",
                static_cast<unsigned long long>(ps.samples), static_cast<unsigned long long>(ps.dropped_samples),
                static_cast<unsigned long long>(ps.stacks), static_cast<unsigned long long>(ps.table_bytes / 1024));
#endif
    return 0;
}
