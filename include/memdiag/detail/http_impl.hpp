// memdiag/detail/http_impl.hpp - the definitions behind http.hpp (the server
// itself is detail/http_server.hpp). Included by http.hpp when header-only, and
// by memdiag/implementation.hpp under MEMDIAG_SEPARATE_IMPLEMENTATION.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "../config.hpp"
#include "../http.hpp"
#include "../result.hpp"
#include "http_server.hpp"
#include "internal_alloc.hpp"

namespace memdiag {
namespace detail {
namespace http {

#if MEMDIAG_POSIX && MEMDIAG_ENABLED
/// Fills cfg from options; a failure says what is wrong with them.
MEMDIAG_IMPL result make_config(const http_options& o, config& cfg) noexcept {
    const char* a = o.address();
    std::snprintf(cfg.shown, sizeof cfg.shown, "%s", a);
    const char* colon = std::strrchr(a, ':');
    if (colon == nullptr || colon == a)
        return result::failuref("cannot serve pprof on '%s': expected host:port, e.g. 127.0.0.1:6060", a);
    char host[64];
    std::size_t hn = static_cast<std::size_t>(colon - a);
    if (a[0] == '[' && hn >= 2 && a[hn - 1] == ']') ++a, hn -= 2;  // [IPv6]
    if (hn >= sizeof host) return result::failuref("cannot serve pprof on '%s': host too long", cfg.shown);
    std::memcpy(host, a, hn);
    host[hn] = '\0';
    char* end = nullptr;
    const unsigned long port = std::strtoul(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || port > 65535)
        return result::failuref("cannot serve pprof on '%s': the port must be a number from 0 to 65535", cfg.shown);
    bool loopback = false;
    std::memset(&cfg.address, 0, sizeof cfg.address);
    auto* v4 = reinterpret_cast<sockaddr_in*>(&cfg.address);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&cfg.address);
    if (std::strcmp(host, "localhost") == 0) std::snprintf(host, sizeof host, "127.0.0.1");
    if (::inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(static_cast<unsigned short>(port));
        cfg.address_len = sizeof(sockaddr_in);
        loopback = (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
    } else if (::inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(static_cast<unsigned short>(port));
        cfg.address_len = sizeof(sockaddr_in6);
        static const unsigned char one[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
        loopback = std::memcmp(&v6->sin6_addr, one, 16) == 0;
    } else {
        return result::failuref("cannot serve pprof on '%s': '%s' is not an IP address (names other than "
                                "localhost are not resolved)",
                                cfg.shown, host);
    }
    if (!loopback && !o.allow_remote())
        return result::failuref("refusing to serve pprof on '%s': not a loopback address; profiles reveal code "
                                "and data sizes, so other addresses need http_options::allow_remote() "
                                "(MEMDIAG_HTTP_ALLOW_REMOTE=1), ideally with a token",
                                cfg.shown);
    if (o.token_too_long()) return result::failure("cannot serve pprof: the token is longer than 255 bytes");
    const char* token = o.token();
    if (token[0] == '\0') {
        const char* env_token = std::getenv("MEMDIAG_HTTP_TOKEN");
        if (env_token != nullptr) token = env_token;
    }
    cfg.token_len = std::strlen(token);
    if (cfg.token_len >= sizeof cfg.token)
        return result::failure("cannot serve pprof: MEMDIAG_HTTP_TOKEN is longer than 255 bytes");
    std::memcpy(cfg.token, token, cfg.token_len + 1);
    cfg.max_connections = o.max_connections();
    cfg.read_timeout_ms = o.read_timeout_ms();
    cfg.write_timeout_ms = o.write_timeout_ms();
    cfg.max_delta_seconds = o.max_delta_seconds();
    return result::success();
}
MEMDIAG_IMPL void destroy_worker(server* s) noexcept {
    s->shutdown_and_join();
    s->~server();
    internal_free(s);
}
#else
MEMDIAG_IMPL void destroy_worker(server*) noexcept {}
#endif  // MEMDIAG_POSIX && MEMDIAG_ENABLED

}  // namespace http
}  // namespace detail

MEMDIAG_IMPL unsigned short pprof_server::port() const noexcept {
#if MEMDIAG_POSIX && MEMDIAG_ENABLED
    return impl_ != nullptr ? impl_->port : 0;
#else
    return 0;
#endif
}

MEMDIAG_IMPL std::uint64_t pprof_server::requests_served() const noexcept {
#if MEMDIAG_POSIX && MEMDIAG_ENABLED
    return impl_ != nullptr ? impl_->served.load(std::memory_order_relaxed) : 0;
#else
    return 0;
#endif
}

MEMDIAG_IMPL pprof_server serve_pprof(const http_options& options) noexcept {
    pprof_server s;
#if MEMDIAG_POSIX && MEMDIAG_ENABLED
    detail::http::config cfg;
    s.status_ = detail::http::make_config(options, cfg);
    if (!s.status_) return s;
    void* mem = detail::internal_malloc(sizeof(detail::http::server));
    if (mem == nullptr) {
        s.status_ = result::failure("cannot serve pprof: out of memory");
        return s;
    }
    auto* srv = new (mem) detail::http::server();
    srv->cfg = cfg;
    s.status_ = srv->start();
    if (!s.status_) {
        srv->shutdown_and_join();
        srv->~server();
        detail::internal_free(mem);
        return s;
    }
    s.impl_ = srv;
#elif !MEMDIAG_ENABLED
    (void)options;
    s.status_ = result::failure("the pprof endpoint is disabled (MEMDIAG_DISABLE)");
#else
    (void)options;
    s.status_ = result::failure("the pprof endpoint needs POSIX sockets; not available on this platform");
#endif
    return s;
}

MEMDIAG_IMPL pprof_server serve_pprof_from_env() noexcept {
    const char* where = std::getenv("MEMDIAG_HTTP");
    if (where == nullptr || where[0] == '\0') {
        pprof_server s;
        s.status_ = result::failure("not serving: MEMDIAG_HTTP is unset");
        return s;
    }
    const char* remote = std::getenv("MEMDIAG_HTTP_ALLOW_REMOTE");
    return serve_pprof(http_options{}.address(where).allow_remote(remote != nullptr && std::strcmp(remote, "1") == 0));
}

}  // namespace memdiag
