// tests/compile/separate_impl_main.cpp - MEMDIAG_SEPARATE_IMPLEMENTATION (config.hpp):
// this unit includes the split headers and uses them; separate_impl_defs.cpp
// holds their definitions (memdiag/implementation.hpp). Built with
// -DMEMDIAG_SEPARATE_IMPLEMENTATION for both (target separate_implementation_test).
//
// Checks at compile time that the heavy parts stayed out of this unit (the
// server and the dumper are incomplete types here), and at run time that the
// program links (one definition of each) and works: a server on a free port, a
// periodic dump, both stopped. Exit 0 passed, 1 failed, 77 no POSIX sockets here.
#include <memdiag/http.hpp>
#include <memdiag/memdiag.hpp>
#include <memdiag/periodic_dump.hpp>

#include <cstdio>
#include <type_traits>

static_assert(!MEMDIAG_HEADER_ONLY, "build this test with -DMEMDIAG_SEPARATE_IMPLEMENTATION");

namespace {
template <class T, class = void>
struct is_complete : std::false_type {};
template <class T>
struct is_complete<T, decltype(void(sizeof(T)))> : std::true_type {};
}  // namespace
static_assert(!is_complete<memdiag::detail::http::server>::value,
              "http.hpp brought the server's definition into a user unit");
static_assert(!is_complete<memdiag::detail::dumps::dumper>::value,
              "periodic_dump.hpp brought the dumper's definition into a user unit");

int main() {
#if !MEMDIAG_POSIX || !MEMDIAG_ENABLED
    std::puts("SKIP: the pprof endpoint and periodic dumps need POSIX (and memdiag enabled)");
    return 77;
#else
    int failures = 0;
    memdiag::pprof_server srv = memdiag::serve_pprof(memdiag::http_options{}.address("127.0.0.1:0"));
    if (!srv || srv.port() == 0) {
        std::printf("FAIL: serve_pprof: %s\n", srv.status().message());
        ++failures;
    }
    memdiag::pprof_server moved = static_cast<memdiag::pprof_server&&>(srv);
    if (srv.running() || !moved.running()) {
        std::puts("FAIL: moving the server");
        ++failures;
    }
    moved.stop();
    if (moved.running() || moved.requests_served() != 0) {
        std::puts("FAIL: stop");
        ++failures;
    }
    memdiag::periodic_dump d = memdiag::dump_every(60, ".", 1);
    if (!d) {
        std::printf("FAIL: dump_every: %s\n", d.status().message());
        ++failures;
    }
    d.stop();
    char path[64];
    if (d.running() || d.dumps_written() != 0 || d.last_path(path, sizeof path)[0] != '\0') {
        std::puts("FAIL: periodic_dump after stop");
        ++failures;
    }
    if (failures == 0) std::puts("separate implementation: linked once, server and dumps work");
    return failures == 0 ? 0 : 1;
#endif
}
