// memdiag/detail/http_server.hpp - the pprof endpoint's server (http.hpp is
// the public face): one thread, POSIX sockets, poll().
//
// Every connection lives in a fixed slot with a fixed 8 KiB request buffer and
// a deadline; the thread never blocks on one client. A connection is read
// until the blank line ending the headers (the request line plus headers may
// not exceed request_cap bytes: 414/431 beyond), answered once with
// `Connection: close`, shut down for writing and drained briefly so the client
// reads the answer instead of a reset, then closed. The one request with a
// body, POST /debug/pprof/symbol, reads it (Content-Length, at most
// symbol_body_cap) into a growing buffer under the same read deadline. A delta profile
// (`?seconds=N`) parks its connection with the first snapshot until the
// window ends; other clients are served meanwhile. When every slot is busy a
// new connection is answered 503 at once.
//
// The whole thread runs inside an internal_section: its allocations (request
// buffers, snapshots, symbolizing, the environment report) are neither
// counted, sampled nor charged to budgets, so scraping does not change the
// figures it reports.
#pragma once

#include "../config.hpp"

#if MEMDIAG_POSIX && MEMDIAG_ENABLED

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>

#include "../env.hpp"
#include "../result.hpp"
#include "http_bodies.hpp"
#include "http_parse.hpp"
#include "internal_alloc.hpp"
#include "internal_vector.hpp"
#include "internal_section.hpp"

#if defined(__ELF__)
extern "C" __attribute__((weak)) const int memdiag_global_new_installed;  // as global_new.hpp declares it
#endif

namespace memdiag {
namespace detail {
namespace http {

/// Request line plus headers, at most (bytes).
inline constexpr std::size_t request_cap = 8192;
/// A symbol request's body, at most (bytes): about 50,000 addresses.
inline constexpr std::size_t symbol_body_cap = std::size_t{1} << 20;
/// After answering, how long a connection may still send before it is closed (ms).
inline constexpr int drain_ms = 1000;

/// The server's settings, copied from http_options (no allocation).
struct config {
    sockaddr_storage address{};  ///< where to listen
    socklen_t address_len = 0;
    char shown[80] = {};         ///< "127.0.0.1:6060", for messages
    char token[256] = {};        ///< bearer token; empty: none required
    std::size_t token_len = 0;
    unsigned max_connections = 16;
    int read_timeout_ms = 5000;
    int write_timeout_ms = 10000;
    unsigned max_delta_seconds = 60;
};

/// True when some translation unit replaced operator new (global_new.hpp is
/// not included: it must be included after its macro, in one file only).
inline bool hook_installed() noexcept {
#if defined(__ELF__)
    const void* defined = &memdiag_global_new_installed;  // null unless some TU defines it (weak)
    return defined != nullptr;
#else
    return process_stats().allocations != 0;  // no weak symbols: seen by its counts
#endif
}

inline std::int64_t now_ms() noexcept {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

enum class phase : unsigned char { idle, reading, reading_body, waiting, writing, draining };

/// One client connection and its fixed buffers.
struct connection {
    int fd = -1;
    phase state = phase::idle;
    std::int64_t deadline = 0;
    std::size_t in_len = 0;
    internal_vector<unsigned char> out;
    std::size_t out_at = 0;
    int poll_at = -1;              ///< this connection's entry in the pollfd array, -1: none
    bool allocs = false;           ///< waiting: the delta is for /debug/pprof/allocs
    profile_copy* base = nullptr;  ///< waiting: the snapshot at the window's start
    internal_vector<char> body;    ///< reading_body: what arrived of the symbol request's body
    std::size_t body_want = 0;     ///< reading_body: its Content-Length
    char in[request_cap];
};

/// The server thread's state. Lives in internal memory; the thread owns
/// everything but `stop_pipe[1]`, which stop() writes.
struct server {
    config cfg;
    int listen_fd = -1;
    int stop_pipe[2] = {-1, -1};
    pthread_t thread{};
    bool thread_started = false;
    long owner_pid = 0;  ///< a forked child has no server thread: it must not join
    unsigned short port = 0;
    connection* conns = nullptr;
    pollfd* fds = nullptr;
    server_figures figures;
    std::int64_t accept_paused_until = 0;  ///< accept failed for want of resources: retry then
    std::atomic<std::uint64_t> served{0};  ///< requests answered, readable from any thread

    void close_conn(connection& c) noexcept {
        if (c.fd >= 0) ::close(c.fd);
        c.fd = -1;
        c.state = phase::idle;
        c.in_len = 0;
        c.out.clear();
        c.out.shrink_to_fit();
        c.out_at = 0;
        c.body.clear();
        c.body.shrink_to_fit();
        c.body_want = 0;
        drop_base(c);
    }

    static void drop_base(connection& c) noexcept {
        if (c.base != nullptr) {
            c.base->~profile_copy();
            internal_free(c.base);
            c.base = nullptr;
        }
    }

    /// Queues a complete response and switches to writing.
    void respond(connection& c, int status, const char* reason, const char* type, const void* body, std::size_t n,
                 const char* extra = "") {
        char head[512];
        const int k = std::snprintf(head, sizeof head,
                                    "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                                    "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n%s"
                                    "Connection: close\r\n\r\n",
                                    status, reason, type, n, extra);
        c.out.clear();
        c.out.insert(c.out.end(), head, head + (k > 0 ? k : 0));
        const auto* b = static_cast<const unsigned char*>(body);
        c.out.insert(c.out.end(), b, b + n);
        c.out_at = 0;
        c.state = phase::writing;
        c.deadline = now_ms() + cfg.write_timeout_ms;
        ++figures.requests;
        served.fetch_add(1, std::memory_order_relaxed);
        if (status >= 400 && status < 500) ++figures.client_errors;
    }

    /// A short text/plain answer (errors).
    void respond_text(connection& c, int status, const char* reason, const char* text, const char* extra = "") {
        respond(c, status, reason, "text/plain; charset=utf-8", text, std::strlen(text), extra);
    }

    /// Sends a profile body, or says why there is none.
    void respond_profile(connection& c, bool allocs, const profile_copy* base) {
        internal_vector<unsigned char> body;
        switch (heap_profile_body(body, allocs, base)) {
            case body_status::ok:
                respond(c, 200, "OK", "application/octet-stream", body.data(), body.size(),
                        "Content-Disposition: attachment; filename=\"heap.pb.gz\"\r\n");
                return;
            case body_status::not_started:
                respond_text(c, 503, "Service Unavailable",
                             "memdiag: the heap profiler is not running: call memdiag::heap_profiler::start()\n");
                return;
            case body_status::restarted:
                respond_text(c, 409, "Conflict",
                             "memdiag: the heap profiler was restarted during the delta window: no delta\n");
                return;
        }
    }

    /// Answers the complete request in c.in[0, header_end).
    void handle_request(connection& c, std::size_t header_end) {
        const char* p = c.in;
        const char* end = c.in + header_end;
        const char* line_end = static_cast<const char*>(std::memchr(p, '\n', header_end));
        if (line_end == nullptr) line_end = end;
        const char* sp1 = static_cast<const char*>(std::memchr(p, ' ', static_cast<std::size_t>(line_end - p)));
        const char* sp2 =
            sp1 ? static_cast<const char*>(std::memchr(sp1 + 1, ' ', static_cast<std::size_t>(line_end - sp1 - 1)))
                : nullptr;
        if (sp1 == nullptr || sp2 == nullptr || sp2 == sp1 + 1 ||
            !starts_with_nocase(sp2 + 1, static_cast<std::size_t>(line_end - sp2 - 1), "HTTP/1.")) {
            respond_text(c, 400, "Bad Request", "memdiag: malformed request line\n");
            return;
        }
        // Authorization first: without the token nothing else is revealed.
        if (cfg.token_len != 0) {
            bool ok = false;
            const char* v = nullptr;
            std::size_t n = 0;
            if (find_header(line_end + 1, end, "authorization:", v, n) && starts_with_nocase(v, n, "bearer ")) {
                const char* ve = v + n;
                v += 7;
                while (v < ve && *v == ' ') ++v;
                ok = same_secret(cfg.token, cfg.token_len, v, static_cast<std::size_t>(ve - v));
            }
            if (!ok) {
                respond_text(c, 401, "Unauthorized", "memdiag: a valid bearer token is required\n",
                             "WWW-Authenticate: Bearer realm=\"memdiag\"\r\n");
                return;
            }
        }
        const std::size_t method_len = static_cast<std::size_t>(sp1 - p);
        const bool get = method_len == 3 && std::memcmp(p, "GET", 3) == 0;
        const bool post = method_len == 4 && std::memcmp(p, "POST", 4) == 0;
        const char* target = sp1 + 1;
        const std::size_t target_len = static_cast<std::size_t>(sp2 - target);
        const char* q = static_cast<const char*>(std::memchr(target, '?', target_len));
        const std::size_t path_len = q ? static_cast<std::size_t>(q - target) : target_len;
        auto is = [&](const char* path) {
            return std::strlen(path) == path_len && std::memcmp(target, path, path_len) == 0;
        };
        if (is("/debug/pprof/symbol")) {
            if (post) {
                start_symbol_body(c, line_end + 1, header_end);
            } else if (get) {
                const char* query = q ? q + 1 : target + target_len;  // GET carries the words as its query
                answer_symbols(c, query, static_cast<std::size_t>(target + target_len - query));
            } else {
                respond_text(c, 405, "Method Not Allowed", "memdiag: /debug/pprof/symbol takes GET or POST\n",
                             "Allow: GET, POST\r\n");
            }
            return;
        }
        if (!get) {
            respond_text(c, 405, "Method Not Allowed", "memdiag: only GET is served here\n", "Allow: GET\r\n");
            return;
        }
        if (is("/debug/pprof/heap") || is("/debug/pprof/allocs")) {
            const bool allocs = is("/debug/pprof/allocs");
            long seconds = 0;
            if (q != nullptr && !parse_seconds(q + 1, target + target_len, seconds)) {
                char msg[128];
                std::snprintf(msg, sizeof msg, "memdiag: seconds must be an integer from 1 to %u\n",
                              cfg.max_delta_seconds);
                respond_text(c, 400, "Bad Request", msg);
                return;
            }
            if (seconds == 0) {
                respond_profile(c, allocs, nullptr);
                return;
            }
            void* mem = internal_malloc(sizeof(profile_copy));
            if (mem == nullptr) {
                respond_text(c, 500, "Internal Server Error", "memdiag: out of memory\n");
                return;
            }
            c.base = new (mem) profile_copy();
            if (!copy_profile(*c.base)) {
                drop_base(c);
                respond_profile(c, allocs, nullptr);  // says the profiler is not running
                return;
            }
            c.allocs = allocs;
            c.state = phase::waiting;
            c.deadline = now_ms() + seconds * 1000;
            return;
        }
        if (is("/debug/memdiag/stats")) {
            internal_string body;
            stats_body(body, hook_installed(), figures);
            respond(c, 200, "OK", "application/json", body.data(), body.size());
            return;
        }
        if (is("/debug/memdiag/env")) {
            const std::string body = memdiag::env::collect().to_json();
            respond(c, 200, "OK", "application/json", body.data(), body.size());
            return;
        }
        if (is("/debug/memdiag/flame")) {
            internal_string body;
            if (flame_body(body) != body_status::ok) {
                respond_profile(c, false, nullptr);  // the profiler is not running
                return;
            }
            respond(c, 200, "OK", "text/html; charset=utf-8", body.data(), body.size(),
                    "Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; "
                    "style-src 'unsafe-inline'\r\n");
            return;
        }
        respond_text(c, 404, "Not Found", "memdiag: not found\n");
    }

    /// POST /debug/pprof/symbol: takes the body that came with the headers
    /// and waits for the rest (Content-Length bytes, at most symbol_body_cap).
    void start_symbol_body(connection& c, const char* headers, std::size_t header_end) {
        const char* end = c.in + header_end;
        const char* v = nullptr;
        std::size_t n = 0;
        if (!find_header(headers, end, "content-length:", v, n)) {
            const bool chunked = find_header(headers, end, "transfer-encoding:", v, n);
            respond_text(c, 411, "Length Required",
                         chunked ? "memdiag: send the symbol request with Content-Length, not chunked\n"
                                 : "memdiag: a symbol request needs Content-Length\n");
            return;
        }
        std::size_t want = 0;
        const content_length length = parse_content_length(v, n, symbol_body_cap, want);
        if (length == content_length::malformed) {
            respond_text(c, 400, "Bad Request", "memdiag: Content-Length must be a decimal number of bytes\n");
            return;
        }
        if (length == content_length::too_large) {
            char msg[128];
            std::snprintf(msg, sizeof msg, "memdiag: a symbol request body is at most %zu bytes\n", symbol_body_cap);
            respond_text(c, 413, "Content Too Large", msg);
            return;
        }
        // A client that waits for leave to send its body (curl does for large ones) gets it at once.
        if (find_header(headers, end, "expect:", v, n) && starts_with_nocase(v, n, "100-continue")) {
            static const char go_on[] = "HTTP/1.1 100 Continue\r\n\r\n";
            (void)!::send(c.fd, go_on, sizeof go_on - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
        }
        c.body_want = want;
        c.body.clear();
        c.body.reserve(want);
        take_body(c, c.in + header_end, c.in_len - header_end);
        c.state = phase::reading_body;
        if (c.body.size() == c.body_want) finish_symbol_body(c);
    }

    /// Appends what fits of the body (bytes past Content-Length are ignored).
    static void take_body(connection& c, const char* p, std::size_t n) {
        const std::size_t room = c.body_want - c.body.size();
        c.body.insert(c.body.end(), p, p + (n < room ? n : room));
    }

    void finish_symbol_body(connection& c) {
        internal_vector<char> body;
        body.swap(c.body);
        answer_symbols(c, body.data(), body.size());
    }

    /// Answers a symbol request as Go's /debug/pprof/symbol does: a
    /// `num_symbols: 1` line (symbols are served), then `0xADDR name` for each
    /// address that names a function; addresses that name none are left out.
    /// The addresses are the ones a profile's locations carry, so they name
    /// what the profile's own function names would.
    void answer_symbols(connection& c, const char* words, std::size_t n) {
        internal_string out("num_symbols: 1\n");
        symbolizer names;
        for_each_symbol_address(words, n, [&](std::uint64_t address) {
            const auto pc = static_cast<std::uintptr_t>(address);
            if (pc != address) return;  // past this process's address space (32-bit)
            const internal_string name = names.function_name(pc);
            if (name.empty()) return;
            char hex[24];
            const int k = std::snprintf(hex, sizeof hex, "%#llx ", static_cast<unsigned long long>(address));
            out.append(hex, static_cast<std::size_t>(k > 0 ? k : 0));
            out.append(name.data(), name.size());
            out.push_back('\n');
        });
        respond(c, 200, "OK", "text/plain; charset=utf-8", out.data(), out.size());
    }

    /// Reads `seconds=N` from a query string [q, qe); other keys are ignored
    /// (Go's handler ignores them too). False when seconds is malformed or out of range.
    bool parse_seconds(const char* q, const char* qe, long& seconds) const noexcept {
        seconds = 0;
        while (q < qe) {
            const char* amp = static_cast<const char*>(std::memchr(q, '&', static_cast<std::size_t>(qe - q)));
            const char* pe = amp ? amp : qe;
            if (pe - q >= 8 && std::memcmp(q, "seconds=", 8) == 0) {
                const char* d = q + 8;
                if (d == pe || pe - d > 6) return false;
                long v = 0;
                for (; d < pe; ++d) {
                    if (*d < '0' || *d > '9') return false;
                    v = v * 10 + (*d - '0');
                }
                if (v < 1 || v > static_cast<long>(cfg.max_delta_seconds)) return false;
                seconds = v;
            }
            q = pe + (amp ? 1 : 0);
        }
        return true;
    }

    void on_readable(connection& c) {
        for (;;) {
            if (c.state == phase::reading && c.in_len == request_cap) break;
            char scratch[4096];
            char* to = c.state == phase::reading ? c.in + c.in_len : scratch;
            const std::size_t room = c.state == phase::reading ? request_cap - c.in_len : sizeof scratch;
            const ssize_t n = ::recv(c.fd, to, room, MSG_DONTWAIT);
            if (n > 0) {
                if (c.state == phase::reading) c.in_len += static_cast<std::size_t>(n);
                else if (c.state == phase::reading_body) take_body(c, scratch, static_cast<std::size_t>(n));
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
            close_conn(c);  // closed or failed: nobody is left to answer
            return;
        }
        if (c.state == phase::reading_body) {
            if (c.body.size() == c.body_want) finish_symbol_body(c);
            return;
        }
        if (c.state != phase::reading) return;  // waiting or draining: input is ignored
        if (const std::size_t he = header_end(c.in, c.in_len)) {
            handle_request(c, he);
        } else if (c.in_len == request_cap) {
            if (std::memchr(c.in, '\n', c.in_len) == nullptr)
                respond_text(c, 414, "URI Too Long", "memdiag: the request line exceeds 8 KiB\n");
            else
                respond_text(c, 431, "Request Header Fields Too Large", "memdiag: the request headers exceed 8 KiB\n");
        }
    }

    void on_writable(connection& c) {
        while (c.out_at < c.out.size()) {
            const ssize_t n = ::send(c.fd, c.out.data() + c.out_at, c.out.size() - c.out_at, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n > 0) {
                c.out_at += static_cast<std::size_t>(n);
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
            close_conn(c);  // the client went away mid-response
            return;
        }
        // All sent: no more output, then read until the client closes (briefly),
        // so unread request bytes do not turn our close into a reset.
        ::shutdown(c.fd, SHUT_WR);
        c.out.clear();
        c.out.shrink_to_fit();
        c.state = phase::draining;
        c.deadline = now_ms() + drain_ms;
    }

    void on_deadline(connection& c) {
        switch (c.state) {
            case phase::reading:
            case phase::reading_body:
                ++figures.timeouts;
                respond_text(c, 408, "Request Timeout", "memdiag: request not received in time\n");
                break;
            case phase::waiting: {
                profile_copy* base = c.base;
                respond_profile(c, c.allocs, base);
                drop_base(c);
                break;
            }
            case phase::writing:
                ++figures.timeouts;
                close_conn(c);
                break;
            case phase::draining:
            case phase::idle:
                close_conn(c);
                break;
        }
    }

    /// Accepts every pending connection; refuses (503) beyond the slots.
    void accept_all() {
        for (;;) {
            const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno == EINTR) continue;
                // Out of descriptors or memory: the listener stays readable, so
                // stop polling it for a moment instead of spinning.
                if (errno != EAGAIN && errno != EWOULDBLOCK) accept_paused_until = now_ms() + 100;
                return;
            }
            connection* slot = nullptr;
            for (unsigned i = 0; i < cfg.max_connections; ++i)
                if (conns[i].state == phase::idle) {
                    slot = &conns[i];
                    break;
                }
            if (slot == nullptr) {
                ++figures.rejected;
                static const char busy[] =
                    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 23\r\n"
                    "Retry-After: 1\r\nConnection: close\r\n\r\nmemdiag: too many users\n";
                // Read what already arrived so closing sends FIN, not a reset.
                char sink[request_cap];
                (void)!::recv(fd, sink, sizeof sink, MSG_DONTWAIT);
                (void)!::send(fd, busy, sizeof busy - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
                ::shutdown(fd, SHUT_WR);
                ::close(fd);
                continue;
            }
            slot->fd = fd;
            slot->state = phase::reading;
            slot->in_len = 0;
            slot->deadline = now_ms() + cfg.read_timeout_ms;
        }
    }

    /// The thread's loop; returns when stop_pipe is written.
    void run() {
        const unsigned n = cfg.max_connections;
        int reported_errno = 0;
        for (;;) {
            // Only the live descriptors: poll() refuses more entries than the
            // descriptor limit (EINVAL), so idle slots are left out.
            fds[0] = pollfd{stop_pipe[0], POLLIN, 0};
            const bool paused = accept_paused_until > now_ms();
            nfds_t count = 1;
            if (!paused) fds[count++] = pollfd{listen_fd, POLLIN, 0};
            std::int64_t next = paused ? accept_paused_until : now_ms() + 60000;
            for (unsigned i = 0; i < n; ++i) {
                connection& c = conns[i];
                c.poll_at = -1;
                if (c.state == phase::idle) continue;
                const short ev = c.state == phase::writing ? POLLOUT : POLLIN;
                c.poll_at = static_cast<int>(count);
                fds[count++] = pollfd{c.fd, ev, 0};
                if (c.deadline < next) next = c.deadline;
            }
            std::int64_t wait = next - now_ms();
            if (wait < 0) wait = 0;
            const int r = ::poll(fds, count, static_cast<int>(wait));
            if (r < 0 && errno != EINTR) {
                // Never give up silently: say so once per cause, retry shortly.
                if (errno != reported_errno) {
                    char buf[128];
                    std::fprintf(stderr, "memdiag: pprof server on %s: poll failed (%s); retrying\n", cfg.shown,
                                 describe_errno(errno, buf, sizeof buf));
                    reported_errno = errno;
                }
                ::poll(nullptr, 0, 100);
                char b;
                if (::read(stop_pipe[0], &b, 1) == 1) return;  // stop() still works (the pipe does not block)
                continue;
            }
            if (r > 0 && (fds[0].revents & POLLIN)) return;
            for (unsigned i = 0; r > 0 && i < n; ++i) {
                connection& c = conns[i];
                if (c.state == phase::idle || c.poll_at < 0) continue;
                const short re = fds[c.poll_at].revents;
                if (re != 0) try_event(c, re);
            }
            const std::int64_t t = now_ms();
            for (unsigned i = 0; i < n; ++i)
                if (conns[i].state != phase::idle && conns[i].deadline <= t) try_deadline(conns[i]);
            if (r > 0 && !paused && (fds[1].revents & POLLIN)) accept_all();
        }
    }

    void try_event(connection& c, short re) {
#if MEMDIAG_HAS_EXCEPTIONS
        try {
#endif
            if (c.state == phase::writing && (re & (POLLOUT | POLLERR | POLLHUP))) on_writable(c);
            else if (re & (POLLIN | POLLERR | POLLHUP)) on_readable(c);
#if MEMDIAG_HAS_EXCEPTIONS
        } catch (const std::bad_alloc&) {
            close_conn(c);
        }
#endif
    }

    void try_deadline(connection& c) {
#if MEMDIAG_HAS_EXCEPTIONS
        try {
#endif
            on_deadline(c);
#if MEMDIAG_HAS_EXCEPTIONS
        } catch (const std::bad_alloc&) {
            close_conn(c);
        }
#endif
    }

    static void* thread_main(void* self) {
        internal_section quiet;  // nothing the server does is observed
        static_cast<server*>(self)->run();
        return nullptr;
    }

    /// Binds, listens and starts the thread.
    result start() {
        internal_section quiet;
        conns = static_cast<connection*>(internal_malloc(sizeof(connection) * cfg.max_connections));
        fds = static_cast<pollfd*>(internal_malloc(sizeof(pollfd) * (cfg.max_connections + 2)));
        if (conns == nullptr || fds == nullptr) return result::failure("cannot serve pprof: out of memory");
        for (unsigned i = 0; i < cfg.max_connections; ++i) new (&conns[i]) connection();
        listen_fd = ::socket(cfg.address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (listen_fd < 0) return failure("cannot create a socket for", errno);
        const int one = 1;
        ::setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (::bind(listen_fd, reinterpret_cast<const sockaddr*>(&cfg.address), cfg.address_len) != 0) {
            const int e = errno;
            if (e == EADDRINUSE)
                return result::failuref("cannot serve pprof on %s: the address is already in use "
                                        "(another program or server listens there; pick another port, or 0)",
                                        cfg.shown);
            return failure("cannot bind", e);
        }
        if (::listen(listen_fd, 64) != 0) return failure("cannot listen on", errno);
        sockaddr_storage bound{};
        socklen_t len = sizeof bound;
        if (::getsockname(listen_fd, reinterpret_cast<sockaddr*>(&bound), &len) == 0)
            port = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                                     : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
        if (::pipe(stop_pipe) != 0) return failure("cannot create the stop pipe for", errno);
        ::fcntl(stop_pipe[0], F_SETFD, FD_CLOEXEC);
        ::fcntl(stop_pipe[0], F_SETFL, O_NONBLOCK);
        ::fcntl(stop_pipe[1], F_SETFD, FD_CLOEXEC);
        // The server takes no signals: they stay with the program's threads.
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        const int e = pthread_create(&thread, nullptr, &thread_main, this);
        pthread_sigmask(SIG_SETMASK, &old, nullptr);
        if (e != 0) return failure("cannot start the server thread for", e);
        thread_started = true;
        owner_pid = static_cast<long>(::getpid());
        return result::success();
    }

    result failure(const char* what, int err) const noexcept {
        char buf[128];
        return result::failuref("%s %s: %s", what, cfg.shown, describe_errno(err, buf, sizeof buf));
    }

    /// Stops the thread (joins it) and releases everything. Idempotent.
    void shutdown_and_join() noexcept {
        if (thread_started) {
            if (static_cast<long>(::getpid()) == owner_pid) {
                const char b = 1;
                (void)!::write(stop_pipe[1], &b, 1);
                pthread_join(thread, nullptr);
            }
            thread_started = false;
        }
        internal_section quiet;
        if (conns != nullptr) {
            for (unsigned i = 0; i < cfg.max_connections; ++i) {
                close_conn(conns[i]);
                conns[i].~connection();
            }
            internal_free(conns);
            conns = nullptr;
        }
        internal_free(fds);
        fds = nullptr;
        for (int& fd : stop_pipe)
            if (fd >= 0) ::close(fd), fd = -1;
        if (listen_fd >= 0) ::close(listen_fd), listen_fd = -1;
    }
};

}  // namespace http
}  // namespace detail
}  // namespace memdiag

#endif  // MEMDIAG_POSIX && MEMDIAG_ENABLED
