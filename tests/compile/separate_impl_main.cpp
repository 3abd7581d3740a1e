// tests/compile/separate_impl_main.cpp - MEMDIAG_SEPARATE_IMPLEMENTATION (config.hpp):
// this unit includes the split headers and uses them; separate_impl_defs.cpp
// holds their definitions (memdiag/implementation.hpp). Built with
// -DMEMDIAG_SEPARATE_IMPLEMENTATION for both (target separate_implementation_test).
//
// Checks at compile time that the heavy parts stayed out of this unit (the
// server and the dumper are incomplete types here, the heap snapshot writer is
// not included), and at run time that the program links (one definition of
// each) and works: a server on a free port, a periodic dump, both stopped; the
// heap profiler started, its report, collapsed stacks and pprof file written,
// dump paths set and cleared, stopped; the environment report collected in
// this unit (its build facts are this unit's), printed and checked; a failing
// test's snapshot written by the test integrations' layer. Exit 0 passed, 1 failed, 77 no POSIX sockets here.
#include <memdiag/http.hpp>
#include <memdiag/memdiag.hpp>
#include <memdiag/periodic_dump.hpp>
#include <memdiag/testing/common.hpp>

#include <cstdio>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#ifdef MEMDIAG_DETAIL_HEAP_SNAPSHOT_INCLUDED
#error "heap_profile.hpp brought the snapshot writer (detail/heap_snapshot.hpp) into a user unit"
#endif

#if defined(_GLIBCXX_FILESYSTEM) || defined(_LIBCPP_FILESYSTEM)
#error "testing/common.hpp brought <filesystem> into a user unit"
#endif

static_assert(!MEMDIAG_HEADER_ONLY, "build this test with -DMEMDIAG_SEPARATE_IMPLEMENTATION");

// Forward declarations: complete only if a header brought their definitions in.
namespace memdiag {
namespace detail {
class symbolizer;
}  // namespace detail
namespace snapshot {
struct heap_sample;
}  // namespace snapshot
namespace detail {
namespace env_parse {
struct cgroup_facts;
}  // namespace env_parse
}  // namespace detail
}  // namespace memdiag

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
static_assert(!is_complete<memdiag::detail::symbolizer>::value,
              "a header (budget.hpp, breach.hpp, heap_profile.hpp) brought detail/symbols.hpp into a user unit");
static_assert(!is_complete<memdiag::snapshot::heap_sample>::value,
              "heap_profile.hpp brought the pprof/report writers (snapshot/*.hpp) into a user unit");
static_assert(!is_complete<memdiag::detail::env_parse::cgroup_facts>::value,
              "env.hpp brought the env parsers (detail/env_parse.hpp) into a user unit");

// The environment report (detail/env_*_impl.hpp): every function defined only
// in separate_impl_defs.cpp is called. That unit defines NDEBUG and this one
// does not: the build facts must still describe this unit.
static int check_env() {
    int failures = 0;
    const memdiag::env::report r = memdiag::env::collect();
#if defined(NDEBUG)
    const char* const ndebug = "on";
#else
    const char* const ndebug = "off";
#endif
    if (!r.ndebug || r.ndebug.value != ndebug) {
        std::printf("FAIL: collect() reports ndebug=%s, this unit has %s\n", r.ndebug.value.c_str(), ndebug);
        ++failures;
    }
    std::string standard = "(";  // not "(" + std::string&&: g++ 12 -O3 warns (-Wrestrict, a false positive)
    standard += std::to_string(__cplusplus);
    standard += "L)";
    if (!r.cxx_standard || r.cxx_standard.value.find(standard) == std::string::npos) {
        std::printf("FAIL: collect() reports cxx_standard=%s, this unit has %s\n", r.cxx_standard.value.c_str(),
                    standard.c_str());
        ++failures;
    }
    if (!r.pointer_bits || r.pointer_bits.value != sizeof(void*) * 8 || std::strcmp(r.arch.value.c_str(), MEMDIAG_ARCH_NAME) != 0) {
        std::puts("FAIL: collect() reports another pointer width or architecture than this unit's");
        ++failures;
    }
    const std::string text = r.to_text();
    const std::string json = r.to_json(memdiag::env::run_default_checks(r));
    if (text.find("ndebug=") == std::string::npos || json.find("\"checks\"") == std::string::npos ||
        r.items().empty()) {
        std::printf("FAIL: env report text or JSON:\n%s\n%s\n", text.c_str(), json.c_str());
        ++failures;
    }
    (void)r.effective_limit();
    std::vector<memdiag::env::check> checks = {
        memdiag::env::require_64bit(r), memdiag::env::warn_32bit(r), memdiag::env::require_address_space(1, r),
        memdiag::env::require_memory(1, r), memdiag::env::check_rlimits(r), memdiag::env::check_container_limit(r),
        memdiag::env::check_overcommit(r)};
    for (const memdiag::env::check& c : checks) {
        if (c.to_text().find(c.name) == std::string::npos || c.to_json().find(c.name) == std::string::npos) {
            std::printf("FAIL: check %s text or JSON\n", c.name.c_str());
            ++failures;
        }
    }
    (void)memdiag::env::worst(checks);
    if (memdiag::env::format_bytes(4096) != "4 KiB" || !memdiag::env::parse_size("8M") ||
        memdiag::env::parse_size("8M").value != (8u << 20) || memdiag::env::json_escape("a\"b") != "a\\\"b") {
        std::puts("FAIL: format_bytes, parse_size or json_escape");
        ++failures;
    }
    return failures;
}

// The test integrations' snapshot of a failing test (detail/testing_impl.hpp).
static int check_testing_snapshot() {
    const memdiag::testing::snapshot_files files =
        memdiag::testing::test_session::write_snapshot("separate_impl_snapshot", "a failing test");
    int failures = 0;
    if (files.report.empty()) {
        std::printf("FAIL: write_snapshot wrote no text report: %s\n", files.error.c_str());
        ++failures;
    } else if (std::FILE* f = std::fopen(files.report.c_str(), "r")) {
        std::fclose(f);
    } else {
        std::printf("FAIL: write_snapshot names %s, which does not exist\n", files.report.c_str());
        ++failures;
    }
    for (const std::string* p : {&files.profile, &files.flamegraph, &files.report})
        if (!p->empty()) std::remove(p->c_str());
    std::remove("separate_impl_snapshot");
    return failures;
}

int main() {
    if (check_env() != 0) return 1;
    if (check_testing_snapshot() != 0) return 1;
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
    // The heap profiler's split parts: each call below is defined only in
    // separate_impl_defs.cpp, so a missing definition fails to link.
    if (const memdiag::result r = memdiag::heap_profiler::start(memdiag::profile_options{}.sample_interval(1)); !r) {
        std::printf("FAIL: heap_profiler::start: %s\n", r.message());
        ++failures;
    }
    memdiag::tracker t{"separate_impl"};
    std::vector<int, memdiag::tracking_allocator<int>> keep(1000, 7, memdiag::tracking_allocator<int>{t});
    memdiag::heap_profiler::set_dump_path("separate_impl_oom.pb.gz");
    memdiag::heap_profiler::set_dump_path(nullptr);
    if (const memdiag::result r = memdiag::heap_profiler::dump_on_fatal_signal(nullptr); !r) {
        std::printf("FAIL: dump_on_fatal_signal(nullptr): %s\n", r.message());
        ++failures;
    }
    const std::string report = memdiag::heap_report(5);
    if (report.find("profiler: running") == std::string::npos) {
        std::printf("FAIL: heap_report lacks the profiler line:\n%s\n", report.c_str());
        ++failures;
    }
    if (memdiag::collapsed_heap_stacks().empty()) {
        std::puts("FAIL: collapsed_heap_stacks is empty with a live sampled vector");
        ++failures;
    }
    if (const memdiag::result r = memdiag::write_heap_profile("separate_impl_heap.pb.gz"); !r) {
        std::printf("FAIL: write_heap_profile: %s\n", r.message());
        ++failures;
    }
    std::remove("separate_impl_heap.pb.gz");
    memdiag::heap_profiler::stop();
    if (memdiag::heap_profiler::running()) {
        std::puts("FAIL: heap_profiler still running after stop");
        ++failures;
    }
    // The breach report (detail/budget_impl.hpp): formatted and symbolized in
    // separate_impl_defs.cpp only.
    memdiag::breach_info info;
    info.budget_name = "separate_impl";
    info.limit = 10;
    info.attempted = 25;
    info.allocation_size = 15;
    memdiag::detail::capture_breach_stack(info);
    char text[2048];
    memdiag::format_breach(info, text, sizeof text);
    if (std::strstr(text, "budget 'separate_impl' exceeded: max_bytes") == nullptr ||
        (info.stack_depth != 0 && std::strstr(text, "  stack:\n") == nullptr)) {
        std::printf("FAIL: format_breach:\n%s\n", text);
        ++failures;
    }
    if (failures == 0) std::puts("separate implementation: linked once, env report, server, dumps, heap profiler and breach report work");
    return failures == 0 ? 0 : 1;
#endif
}
