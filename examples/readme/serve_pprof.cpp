#include <memdiag/http.hpp>
#include <memdiag/memdiag.hpp>

#include <cstdio>

void run_service();  // your code

int main() {
    memdiag::heap_profiler::start();
    memdiag::pprof_server srv = memdiag::serve_pprof();  // 127.0.0.1:6060, one thread
    // or memdiag::serve_pprof_from_env() with MEMDIAG_HTTP=127.0.0.1:6060
    if (!srv) std::fprintf(stderr, "%s\n", srv.status().message());  // e.g. port in use
    run_service();
}
