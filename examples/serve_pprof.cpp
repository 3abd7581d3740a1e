// examples/serve_pprof.cpp - a long-running program that fleet profilers can
// scrape: the heap profile over HTTP, a periodic dump and a flame graph.
//
//     serve_pprof [SECONDS]         # runs SECONDS (default 60), then exits
//     go tool pprof -top http://127.0.0.1:6060/debug/pprof/heap
//     go tool pprof -top 'http://127.0.0.1:6060/debug/pprof/allocs?seconds=5'
//     curl -s http://127.0.0.1:6060/debug/memdiag/stats
//     open http://127.0.0.1:6060/debug/memdiag/flame in a browser
//
// MEMDIAG_HTTP (default here 127.0.0.1:6060; port 0 picks a free one) and
// MEMDIAG_HTTP_TOKEN configure the endpoint; MEMDIAG_DUMP_EVERY=60s with
// MEMDIAG_DUMP_DIR turns on the periodic dumps. On exit the program writes
// serve_pprof.html, the flame graph of what it still holds.
#define MEMDIAG_REPLACE_GLOBAL_NEW
#include <memdiag/global_new.hpp>
#include <memdiag/heap_flamegraph.hpp>
#include <memdiag/heap_profile.hpp>
#include <memdiag/http.hpp>
#include <memdiag/periodic_dump.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace {

// A cache that grows and evicts: live memory for inuse_space, churn for alloc_space.
std::map<int, std::string> cache;
std::deque<std::vector<char>> recent;

void handle_request(int i) {
    cache[i % 5000] = std::string(static_cast<std::size_t>(100 + i % 900), 'x');
    recent.emplace_back(static_cast<std::size_t>(4096 + (i % 16) * 1024));
    if (recent.size() > 200) recent.pop_front();
}

}  // namespace

int main(int argc, char** argv) {
    const int seconds = argc > 1 ? std::atoi(argv[1]) : 60;
    memdiag::heap_profiler::start();  // default: one sample per 512 KiB allocated

    // MEMDIAG_HTTP when set, else the default address 127.0.0.1:6060.
    memdiag::pprof_server server =
        std::getenv("MEMDIAG_HTTP") != nullptr ? memdiag::serve_pprof_from_env() : memdiag::serve_pprof();
    if (server) std::printf("pprof endpoint: http://127.0.0.1:%u/debug/pprof/heap\n", unsigned(server.port()));
    else std::printf("no pprof endpoint: %s\n", server.status().message());

    memdiag::periodic_dump dumps = memdiag::dump_every_from_env();
    if (dumps) std::printf("periodic dumps: on (MEMDIAG_DUMP_EVERY=%s)\n", std::getenv("MEMDIAG_DUMP_EVERY"));
    std::fflush(stdout);

    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    for (int i = 0; std::chrono::steady_clock::now() < end; ++i) {
        handle_request(i);
        if (i % 1000 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }

    const memdiag::result r = memdiag::write_heap_flamegraph("serve_pprof.html");
    std::printf("flame graph: %s\n", r ? "serve_pprof.html" : r.message());
    std::printf("requests served: %llu\n", static_cast<unsigned long long>(server.requests_served()));
    return 0;
}
