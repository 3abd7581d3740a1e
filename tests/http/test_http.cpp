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

/// One request with raw system calls into fixed buffers (allocates nothing):
/// `head` is sent, then, after a pause when `pause_ms` is set, `tail`.
/// Returns the status code, 0 when the connection failed, -1 on no answer;
/// the body goes to `body` when given.
int raw_request(unsigned short port, const char* head, const char* tail = "", int pause_ms = 0,
                char* body = nullptr, std::size_t body_cap = 0) {
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
    const auto send_all = [fd](const char* p) {
        const std::size_t n = std::strlen(p);
        return n == 0 || ::send(fd, p, n, MSG_NOSIGNAL) == static_cast<ssize_t>(n);
    };
    bool sent = send_all(head);
    if (sent && pause_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
    sent = sent && send_all(tail);
    if (!sent) {
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

/// One GET (see raw_request).
int raw_get(unsigned short port, const char* path, char* body = nullptr, std::size_t body_cap = 0) {
    char req[256];
    std::snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
    return raw_request(port, req, "", 0, body, body_cap);
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

namespace memdiag_http_test {
/// A function for the symbol endpoint to name (extern: its name is in every symbol table).
[[gnu::noinline]] int symbol_target(int x) {
    return x * 3 + 1;
}
}  // namespace memdiag_http_test

#if MEMDIAG_ENABLED && MEMDIAG_POSIX
namespace {
/// The POST go tool pprof sends: Content-Length and the words.
void symbol_post(char* out, std::size_t cap, const char* words) {
    std::snprintf(out, cap, "POST /debug/pprof/symbol HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s",
                  std::strlen(words), words);
}
/// Lines of text that contain `what`.
int lines_with(const char* text, const char* what) {
    int n = 0;
    for (const char* p = text; (p = std::strstr(p, what)) != nullptr; p += std::strlen(what)) ++n;
    return n;
}
}  // namespace

TEST_CASE("symbol endpoint: GET says symbols are served; POST names the addresses it can, as Go's handler does") {
    REQUIRE(memdiag_http_test::symbol_target(2) == 7);
    memdiag::pprof_server s = memdiag::serve_pprof(memdiag::http_options{}.address("127.0.0.1:0"));
    REQUIRE(s.running());
    static char body[1 << 16];
    CHECK(raw_get(s.port(), "/debug/pprof/symbol", body, sizeof body) == 200);
    CHECK(std::strcmp(body, "num_symbols: 1\n") == 0);

    // An address inside the function (as a profile location is: a return address - 1).
    const auto inside = reinterpret_cast<std::uintptr_t>(&memdiag_http_test::symbol_target) + 1;
    char words[128], req[512];
    std::snprintf(words, sizeof words, "%#llx+0x1+not-an-address+%llu", static_cast<unsigned long long>(inside),
                  static_cast<unsigned long long>(inside));
    symbol_post(req, sizeof req, words);
    REQUIRE(raw_request(s.port(), req, "", 0, body, sizeof body) == 200);
    INFO(body);
    CHECK(std::strncmp(body, "num_symbols: 1\n", 15) == 0);
    char line[96];
    std::snprintf(line, sizeof line, "%#llx memdiag_http_test::symbol_target(int)\n",
                  static_cast<unsigned long long>(inside));
    CHECK(lines_with(body, line) == 2);  // the hex and the decimal word, each answered in hex
    CHECK(lines_with(body, "\n") == 3);  // nothing for 0x1 or the bad word

    // The same words in a GET query.
    char path[160];
    std::snprintf(path, sizeof path, "/debug/pprof/symbol?%#llx", static_cast<unsigned long long>(inside));
    REQUIRE(raw_get(s.port(), path, body, sizeof body) == 200);
    CHECK(lines_with(body, line) == 1);
}

TEST_CASE("symbol endpoint: a body that arrives after the headers, in pieces") {
    memdiag::pprof_server s = memdiag::serve_pprof(memdiag::http_options{}.address("127.0.0.1:0"));
    REQUIRE(s.running());
    const auto inside = reinterpret_cast<std::uintptr_t>(&memdiag_http_test::symbol_target) + 1;
    char words[64], head[256];
    const int n = std::snprintf(words, sizeof words, "%#llx", static_cast<unsigned long long>(inside));
    std::snprintf(head, sizeof head,
                  "POST /debug/pprof/symbol HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                  "Expect: 100-continue\r\n\r\n",
                  n);
    static char body[1 << 16];
    // With Expect the server says 100 Continue as soon as it has the headers;
    // the final answer follows it (raw_request returns the first status line).
    CHECK(raw_request(s.port(), head, words, 150, body, sizeof body) == 100);
    CHECK(std::strncmp(body, "HTTP/1.1 200 OK", 15) == 0);
    CHECK(std::strstr(body, "memdiag_http_test::symbol_target(int)") != nullptr);
}

TEST_CASE("symbol endpoint: no length is 411, a length not a number 400, a body over 1 MiB 413, other methods 405; other paths take only GET") {
    memdiag::pprof_server s = memdiag::serve_pprof(memdiag::http_options{}.address("127.0.0.1:0"));
    REQUIRE(s.running());
    static char body[1 << 16];
    CHECK(raw_request(s.port(), "POST /debug/pprof/symbol HTTP/1.1\r\nHost: x\r\n\r\n0x1") == 411);
    CHECK(raw_request(s.port(), "POST /debug/pprof/symbol HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", "", 0,
                      body, sizeof body) == 411);
    CHECK(std::strstr(body, "not chunked") != nullptr);
    CHECK(raw_request(s.port(), "POST /debug/pprof/symbol HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n") == 413);
    CHECK(raw_request(s.port(), "POST /debug/pprof/symbol HTTP/1.1\r\nContent-Length: -5\r\n\r\n") == 400);
    CHECK(raw_request(s.port(), "POST /debug/pprof/symbol HTTP/1.1\r\nContent-Length: abc\r\n\r\n") == 400);
    CHECK(raw_request(s.port(), "PUT /debug/pprof/symbol HTTP/1.1\r\nHost: x\r\n\r\n") == 405);
    CHECK(raw_request(s.port(), "POST /debug/pprof/heap HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc") == 405);
    CHECK(raw_get(s.port(), "/debug/memdiag/stats") == 200);  // still serving
}

TEST_CASE("symbol request words: hex or decimal addresses split on '+', bad words skipped") {
    namespace h = memdiag::detail::http;
    CHECK(h::parse_symbol_address("0x10", 4) == 16);
    CHECK(h::parse_symbol_address("0XfF", 4) == 255);
    CHECK(h::parse_symbol_address("16", 2) == 16);
    CHECK(h::parse_symbol_address("0x", 2) == 0);
    CHECK(h::parse_symbol_address("0x1g", 4) == 0);
    CHECK(h::parse_symbol_address("0x10000000000000000", 19) == 0);      // 17 hex digits
    CHECK(h::parse_symbol_address("18446744073709551616", 20) == 0);     // 2^64
    CHECK(h::parse_symbol_address("18446744073709551615", 20) == UINT64_MAX);
    CHECK(h::parse_symbol_address("", 0) == 0);
    std::vector<std::uint64_t> seen;
    const char* words = "0x10+ 17 ++junk+0x2a\n";
    h::for_each_symbol_address(words, std::strlen(words), [&](std::uint64_t a) { seen.push_back(a); });
    CHECK(seen == std::vector<std::uint64_t>{16, 17, 42});
    std::size_t len = 0;
    using cl = h::content_length;
    CHECK(h::parse_content_length("12", 2, 100, len) == cl::ok);
    CHECK(len == 12);
    CHECK(h::parse_content_length("100", 3, 100, len) == cl::ok);
    CHECK(len == 100);
    CHECK(h::parse_content_length("", 0, 100, len) == cl::malformed);
    CHECK(h::parse_content_length("1 2", 3, 100, len) == cl::malformed);
    CHECK(h::parse_content_length("+3", 2, 100, len) == cl::malformed);
    CHECK(h::parse_content_length("-5", 2, 100, len) == cl::malformed);
    CHECK(h::parse_content_length("999999999999999999999x", 22, 100, len) == cl::malformed);
    CHECK(h::parse_content_length("101", 3, 100, len) == cl::too_large);
    CHECK(h::parse_content_length("99999999999999999999999", 23, 100, len) == cl::too_large);
}
#endif

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
