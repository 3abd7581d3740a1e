// tests/http/test_http.cpp - serve_pprof's results and the pieces under it,
// in process (http_check.sh drives the real clients).
#include <memdiag/heap_profile.hpp>
#include <memdiag/http.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>
#include <vector>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "catch.hpp"

namespace {

/// One GET with raw system calls into fixed buffers (allocates nothing);
/// returns the status code, 0 when the connection failed, -1 on no answer.
int raw_get(unsigned short port, const char* path, char* body = nullptr, std::size_t body_cap = 0) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    timeval limit{10, 0};  // a server that stopped answering fails the test instead of hanging it
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        return 0;
    }
    char req[256];
    const int n = std::snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
    if (::send(fd, req, static_cast<std::size_t>(n), MSG_NOSIGNAL) != n) {
        ::close(fd);
        return -1;
    }
    static char in[1 << 16];
    std::size_t len = 0;
    for (ssize_t r; len < sizeof in - 1 && (r = ::recv(fd, in + len, sizeof in - 1 - len, 0)) > 0;)
        len += static_cast<std::size_t>(r);
    ::close(fd);
    in[len] = '\0';
    if (len < 12 || std::strncmp(in, "HTTP/1.1 ", 9) != 0) return -1;
    if (body != nullptr) {
        const char* b = std::strstr(in, "\r\n\r\n");
        std::snprintf(body, body_cap, "%s", b ? b + 4 : "");
    }
    return std::atoi(in + 9);
}

struct env_var {
    const char* name;
    explicit env_var(const char* n, const char* value) : name(n) {
        if (value) ::setenv(n, value, 1);
        else ::unsetenv(n);
    }
    ~env_var() { ::unsetenv(name); }
};

}  // namespace

TEST_CASE("serve_pprof: an ephemeral port, answers, stop() closes it") {
    memdiag::pprof_server s = memdiag::serve_pprof(memdiag::http_options{}.address("127.0.0.1:0"));
    REQUIRE(s.running());
    REQUIRE(s.status().ok());
    const unsigned short port = s.port();
    REQUIRE(port != 0);
    CHECK(raw_get(port, "/debug/memdiag/stats") == 200);
    CHECK(raw_get(port, "/nope") == 404);
    CHECK(s.requests_served() == 2);
    s.stop();
    CHECK_FALSE(s.running());
    CHECK(std::strcmp(s.status().message(), "stopped") == 0);
    CHECK(raw_get(port, "/debug/memdiag/stats") == 0);  // refused: nobody listens
    s.stop();                                            // idempotent
}

TEST_CASE("serve_pprof: a port in use is a result, not a crash") {
    memdiag::pprof_server first = memdiag::serve_pprof(memdiag::http_options{}.address("127.0.0.1:0"));
    REQUIRE(first);
    char where[32];
    std::snprintf(where, sizeof where, "127.0.0.1:%u", static_cast<unsigned>(first.port()));
    memdiag::pprof_server second = memdiag::serve_pprof(memdiag::http_options{}.address(where));
    CHECK_FALSE(second.running());
    CHECK(std::strstr(second.status().message(), "already in use") != nullptr);
    CHECK(std::strstr(second.status().message(), where) != nullptr);
    CHECK(raw_get(first.port(), "/debug/memdiag/stats") == 200);  // the first one is unharmed
}

TEST_CASE("serve_pprof: loopback unless allow_remote; bad addresses say why") {
    memdiag::pprof_server any = memdiag::serve_pprof(memdiag::http_options{}.address("0.0.0.0:0"));
    CHECK_FALSE(any.running());
    CHECK(std::strstr(any.status().message(), "allow_remote") != nullptr);
    memdiag::pprof_server v6 = memdiag::serve_pprof(memdiag::http_options{}.address("[::]:0"));
    CHECK_FALSE(v6.running());
    memdiag::pprof_server allowed = memdiag::serve_pprof(memdiag::http_options{}.address("0.0.0.0:0").allow_remote());
    CHECK(allowed.running());
    CHECK(raw_get(allowed.port(), "/debug/memdiag/stats") == 200);
    memdiag::pprof_server local = memdiag::serve_pprof(memdiag::http_options{}.address("localhost:0"));
    CHECK(local.running());

    for (const char* bad : {"nonsense", "127.0.0.1", "127.0.0.1:", "127.0.0.1:99999", "127.0.0.1:80x",
                            "example.com:80", ":6060"}) {
        INFO(bad);
        memdiag::pprof_server s = memdiag::serve_pprof(memdiag::http_options{}.address(bad));
        CHECK_FALSE(s.running());
        CHECK(std::strlen(s.status().message()) > 10);
    }
    std::string long_token(300, 't');
    memdiag::pprof_server t = memdiag::serve_pprof(memdiag::http_options{}.address("127.0.0.1:0").token(long_token.c_str()));
    CHECK_FALSE(t.running());
    CHECK(std::strstr(t.status().message(), "255") != nullptr);
}

TEST_CASE("serve_pprof_from_env: MEMDIAG_HTTP, MEMDIAG_HTTP_TOKEN, MEMDIAG_HTTP_ALLOW_REMOTE") {
    {
        env_var unset{"MEMDIAG_HTTP", nullptr};
        memdiag::pprof_server s = memdiag::serve_pprof_from_env();
        CHECK_FALSE(s.running());
        CHECK(std::strstr(s.status().message(), "MEMDIAG_HTTP is unset") != nullptr);
    }
    {
        env_var where{"MEMDIAG_HTTP", "127.0.0.1:0"};
        env_var token{"MEMDIAG_HTTP_TOKEN", "from-env"};
        memdiag::pprof_server s = memdiag::serve_pprof_from_env();
        REQUIRE(s.running());
        CHECK(raw_get(s.port(), "/debug/memdiag/stats") == 401);  // the token applies
    }
    {
        env_var where{"MEMDIAG_HTTP", "0.0.0.0:0"};
        CHECK_FALSE(memdiag::serve_pprof_from_env().running());
        env_var remote{"MEMDIAG_HTTP_ALLOW_REMOTE", "1"};
        CHECK(memdiag::serve_pprof_from_env().running());
    }
}

TEST_CASE("out of descriptors: the server pauses accepting instead of spinning, then recovers") {
    memdiag::pprof_server s = memdiag::serve_pprof(memdiag::http_options{}.address("127.0.0.1:0"));
    REQUIRE(s);
    rlimit old{};
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &old) == 0);
    // Leave exactly room for the client sockets below: the server's accept() then fails (EMFILE).
    const int probe = ::dup(0);
    REQUIRE(probe >= 0);
    ::close(probe);
    rlimit low = old;
    low.rlim_cur = static_cast<rlim_t>(probe + 4);
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);
    std::vector<int> clients;
    for (int i = 0; i < 8; ++i) {
        const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) break;
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(s.port());
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
            ::close(fd);
            break;
        }
        clients.push_back(fd);
    }
    rusage before{}, after{};
    ::getrusage(RUSAGE_SELF, &before);
    std::this_thread::sleep_for(std::chrono::milliseconds(600));
    ::getrusage(RUSAGE_SELF, &after);
    auto us = [](const rusage& r) {
        return (r.ru_utime.tv_sec + r.ru_stime.tv_sec) * 1000000L + r.ru_utime.tv_usec + r.ru_stime.tv_usec;
    };
    const long spent = us(after) - us(before);
    for (int fd : clients) ::close(fd);
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &old) == 0);
    CHECK(!clients.empty());
    INFO("CPU time while accept() failed: " << spent << " us in 600 ms");
    CHECK(spent < 200000);  // a spinning loop would burn about all 600 ms
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    CHECK(raw_get(s.port(), "/debug/memdiag/stats") == 200);
}

TEST_CASE("pprof_server moves; the moved-from one is not running") {
    memdiag::pprof_server a = memdiag::serve_pprof(memdiag::http_options{}.address("127.0.0.1:0"));
    REQUIRE(a);
    const unsigned short port = a.port();
    memdiag::pprof_server b = std::move(a);
    CHECK_FALSE(a.running());
    CHECK(b.running());
    CHECK(b.port() == port);
    CHECK(raw_get(port, "/debug/memdiag/stats") == 200);
    b = memdiag::pprof_server();  // stops the server it held
    CHECK(raw_get(port, "/debug/memdiag/stats") == 0);
}

TEST_CASE("profiles: 503 saying why before the heap profiler ever ran") {
    // Runs before any test case here starts the profiler (declaration order).
    REQUIRE(memdiag::heap_profiler::stats().max_stacks == 0);
    memdiag::pprof_server s = memdiag::serve_pprof(memdiag::http_options{}.address("127.0.0.1:0"));
    REQUIRE(s);
    char body[512];
    for (const char* p : {"/debug/pprof/heap", "/debug/pprof/allocs", "/debug/memdiag/flame",
                          "/debug/pprof/heap?seconds=1"}) {
        INFO(p);
        CHECK(raw_get(s.port(), p, body, sizeof body) == 503);
        CHECK(std::strstr(body, "heap_profiler::start") != nullptr);
    }
}

TEST_CASE("serving allocates nothing that is counted or sampled") {
    REQUIRE(memdiag::heap_profiler::start(memdiag::profile_options{}.sample_interval(1)));
    static volatile char* keep;
    keep = new char[4096];  // something to profile
    memdiag::pprof_server s = memdiag::serve_pprof(memdiag::http_options{}.address("127.0.0.1:0"));
    REQUIRE(s);
    const unsigned short port = s.port();
    const memdiag::allocation_stats before = memdiag::process_stats();
    const std::uint64_t samples_before = memdiag::heap_profiler::stats().samples;
    int bad = 0;
    for (int i = 0; i < 5; ++i)
        for (const char* p : {"/debug/pprof/heap", "/debug/pprof/allocs", "/debug/memdiag/stats",
                              "/debug/memdiag/env", "/debug/memdiag/flame", "/x"})
            bad += raw_get(port, p) <= 0;
    const memdiag::allocation_stats after = memdiag::process_stats();
    const std::uint64_t samples_after = memdiag::heap_profiler::stats().samples;
    CHECK(bad == 0);
    CHECK(after.allocations == before.allocations);
    CHECK(after.bytes_allocated == before.bytes_allocated);
    CHECK(samples_after == samples_before);
    s.stop();
    memdiag::heap_profiler::stop();
    delete[] keep;
}

#if MEMDIAG_ENABLED && MEMDIAG_POSIX  // the internals exist only there
TEST_CASE("same_secret compares whole tokens") {
    using memdiag::detail::http::same_secret;
    CHECK(same_secret("abc", 3, "abc", 3));
    CHECK_FALSE(same_secret("abc", 3, "abd", 3));
    CHECK_FALSE(same_secret("abc", 3, "ab", 2));
    CHECK_FALSE(same_secret("abc", 3, "abcd", 4));
    CHECK_FALSE(same_secret("abc", 3, "", 0));
    CHECK(same_secret("", 0, "", 0));
}

TEST_CASE("delta: subtract matches stacks by content and drops unchanged ones") {
    using memdiag::snapshot::heap_sample;
    namespace h = memdiag::detail::http;
    static const std::uintptr_t s1[] = {0x1000, 0x2000}, s2[] = {0x3000}, s1_copy[] = {0x1000, 0x2000};
    h::profile_copy base;
    base.frames.assign({0x1000, 0x2000, 0x3000});
    base.samples.push_back(heap_sample{base.frames.data(), 2, 2, 200, 2, 200});
    base.samples.push_back(heap_sample{base.frames.data() + 2, 1, 1, 10, 1, 10});
    base.hashes.push_back(h::stack_hash(base.frames.data(), 2));
    base.hashes.push_back(h::stack_hash(base.frames.data() + 2, 1));
    memdiag::detail::internal_vector<heap_sample> now;
    now.push_back(heap_sample{s1_copy, 2, 5, 500, 3, 300});  // 3 more allocated, 1 more in use
    now.push_back(heap_sample{s2, 1, 1, 10, 1, 10});         // unchanged: dropped
    now.push_back(heap_sample{s1 + 1, 1, 4, 40, 0, 0});      // new stack (a suffix of s1)
    h::subtract(now, base);
    REQUIRE(now.size() == 2);
    CHECK(now[0].alloc_objects == 3);
    CHECK(now[0].alloc_bytes == 300);
    CHECK(now[0].inuse_objects == 1);
    CHECK(now[0].inuse_bytes == 100);
    CHECK(now[1].depth == 1);
    CHECK(now[1].alloc_bytes == 40);
}
#endif  // MEMDIAG_ENABLED && MEMDIAG_POSIX
