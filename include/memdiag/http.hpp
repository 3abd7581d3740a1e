// memdiag/http.hpp - an opt-in pprof endpoint, for continuous profilers
// (Grafana Alloy's pyroscope.scrape, Parca) and `go tool pprof URL`.
//
//     memdiag::heap_profiler::start();
//     memdiag::pprof_server srv = memdiag::serve_pprof(memdiag::http_options{}.address("127.0.0.1:6060"));
//     if (!srv) std::fprintf(stderr, "%s\n", srv.status().message());
//     ...                                  // go tool pprof http://127.0.0.1:6060/debug/pprof/heap
//     srv.stop();                          // or let it go out of scope
//
// or, without code changes beyond one call: `memdiag::serve_pprof_from_env()`
// with MEMDIAG_HTTP=127.0.0.1:6060 (and optionally MEMDIAG_HTTP_TOKEN).
//
// Paths (GET only, but for the symbol path; anything else is 404, other methods 405):
//   /debug/pprof/heap             the heap profile, gzipped pprof, as Go serves it
//   /debug/pprof/allocs           the same with alloc_space as default sample type
//   /debug/pprof/heap?seconds=N   a delta profile: what was allocated in the next N
//   /debug/pprof/allocs?seconds=N   seconds (and the change of what is in use), as
//                                 Go's handler does; 1 <= N <= max_delta_seconds
//   /debug/pprof/symbol           names addresses, as Go's handler does: GET says
//                                 "num_symbols: 1"; POST (or GET with a query) of
//                                 "0xADDR+0xADDR..." answers "0xADDR name" lines for
//                                 those that name a function. go tool pprof asks it
//                                 for frames a profile left unnamed.
//   /debug/memdiag/env            the environment report (env.hpp) as JSON
//   /debug/memdiag/stats          process and default tracker figures, the heap
//                                 profiler's own figures and the server's, as JSON
//   /debug/memdiag/flame          the heap as a flame graph page (snapshot/flamegraph.hpp)
// Profiles need a running heap profiler (heap_profiler::start); without one
// they answer 503 saying so.
//
// Security. Listens on 127.0.0.1 unless told otherwise; any address that is
// not loopback needs allow_remote() (MEMDIAG_HTTP_ALLOW_REMOTE=1). With a token
// (token() or MEMDIAG_HTTP_TOKEN) every request needs `Authorization: Bearer
// <token>`, compared in constant time, else 401. No path touches the file
// system. The request line and headers may take 8 KiB at most (414/431), must
// arrive within the read timeout (408), and the answer must be taken within
// the write timeout, so a slow or hostile client cannot hold the thread; at
// most max_connections clients are served at once, more get 503. Plain HTTP:
// put TLS in front (a proxy) when the token crosses a network.
//
// Cost. One thread, asleep in poll() between requests. A profile request takes
// a snapshot (the profiler's table lock is held only to copy it), symbolizes
// and gzips it on the server thread. The server's own allocations are made
// inside an internal_section: they never appear in the profile or the counts.
//
// POSIX only; elsewhere, and with MEMDIAG_DISABLE, serve_pprof returns a
// server that is not running with a status saying why.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "config.hpp"
#include "detail/background_handle.hpp"
#include "result.hpp"

namespace memdiag {

/// Settings of serve_pprof, built fluently:
/// `http_options{}.address("127.0.0.1:0").token("s3cret")`.
class http_options {
public:
    /// Where to listen: "host:port" with an IPv4 address, "localhost" or
    /// "[IPv6]"; port 0 picks a free port (pprof_server::port() tells which).
    /// Default "127.0.0.1:6060". Copied (up to 79 bytes).
    http_options& address(const char* host_port) noexcept {
        std::snprintf(address_, sizeof address_, "%s", host_port != nullptr ? host_port : "");
        return *this;
    }
    /// Allows an address other than loopback (127.0.0.0/8, ::1). Without it such
    /// an address is refused: profiles show code paths and sizes.
    http_options& allow_remote(bool yes = true) noexcept {
        remote_ = yes;
        return *this;
    }
    /// Requires `Authorization: Bearer <token>` on every request (copied, up
    /// to 255 bytes). nullptr or "": MEMDIAG_HTTP_TOKEN if set, else none.
    http_options& token(const char* secret) noexcept {
        std::snprintf(token_, sizeof token_, "%s", secret != nullptr ? secret : "");
        token_too_long_ = secret != nullptr && std::strlen(secret) >= sizeof token_;
        return *this;
    }
    /// Clients served at once (1..1024, default 16); more are answered 503.
    http_options& max_connections(unsigned n) noexcept {
        max_conn_ = n < 1 ? 1 : n > 1024 ? 1024 : n;
        return *this;
    }
    /// Time a client has to send its request line and headers (ms, default 5000).
    http_options& read_timeout_ms(int ms) noexcept {
        read_ms_ = ms < 1 ? 1 : ms;
        return *this;
    }
    /// Time a client has to take the whole answer (ms, default 10000).
    http_options& write_timeout_ms(int ms) noexcept {
        write_ms_ = ms < 1 ? 1 : ms;
        return *this;
    }
    /// Longest delta window accepted in `?seconds=N` (default 60).
    http_options& max_delta_seconds(unsigned s) noexcept {
        max_delta_ = s < 1 ? 1 : s > 86400 ? 86400 : s;
        return *this;
    }

    const char* address() const noexcept { return address_; }           ///< "host:port"
    bool allow_remote() const noexcept { return remote_; }              ///< non-loopback allowed
    const char* token() const noexcept { return token_; }               ///< "" when none was given
    unsigned max_connections() const noexcept { return max_conn_; }     ///< concurrent clients
    int read_timeout_ms() const noexcept { return read_ms_; }           ///< request deadline
    int write_timeout_ms() const noexcept { return write_ms_; }         ///< answer deadline
    unsigned max_delta_seconds() const noexcept { return max_delta_; }  ///< longest delta window
    bool token_too_long() const noexcept { return token_too_long_; }    ///< token() was cut: refused

private:
    char address_[80] = "127.0.0.1:6060";
    char token_[256] = {};
    bool remote_ = false;
    bool token_too_long_ = false;
    unsigned max_conn_ = 16;
    int read_ms_ = 5000;
    int write_ms_ = 10000;
    unsigned max_delta_ = 60;
};

namespace detail {
namespace http {
struct server;  // detail/http_server.hpp
/// For background_handle::stop(): stops the server's thread, closes its
/// sockets, destroys and frees it.
MEMDIAG_IMPL void destroy_worker(server* s) noexcept;
}  // namespace http
}  // namespace detail

/// A running pprof endpoint (or the reason there is none): running(),
/// status() and stop() (wakes the thread, joins it, closes every socket;
/// clients in the middle of a request are cut off) are
/// detail::background_handle's. Move-only; the destructor stops it. Every
/// operation is noexcept.
class pprof_server : public detail::background_handle<detail::http::server> {
public:
    /// The port listened on (the chosen one when the address gave port 0); 0 when not running.
    MEMDIAG_IMPL unsigned short port() const noexcept;
    /// Requests answered so far (any status).
    MEMDIAG_IMPL std::uint64_t requests_served() const noexcept;

private:
    friend pprof_server serve_pprof(const http_options&) noexcept;
    friend pprof_server serve_pprof_from_env() noexcept;
};

/// Starts the endpoint on one background thread. Never throws: a bad address,
/// a port in use or a refused non-loopback address give a server that is not
/// running, whose status() says why.
MEMDIAG_IMPL pprof_server serve_pprof(const http_options& options = http_options{}) noexcept;

/// serve_pprof at $MEMDIAG_HTTP ("127.0.0.1:6060"); MEMDIAG_HTTP_TOKEN sets the
/// token, MEMDIAG_HTTP_ALLOW_REMOTE=1 allows a non-loopback address. When
/// MEMDIAG_HTTP is unset or empty, returns a server that is not running whose
/// status says so (not an error to report).
MEMDIAG_IMPL pprof_server serve_pprof_from_env() noexcept;

}  // namespace memdiag

// Header-only: the definitions (the server, its bodies) come along; with
// MEMDIAG_SEPARATE_IMPLEMENTATION, memdiag/implementation.hpp has them.
#if MEMDIAG_HEADER_ONLY
#include "detail/http_impl.hpp"
#endif
