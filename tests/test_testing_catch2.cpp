// tests/test_testing_catch2.cpp - the Catch2 integration's passing cases: every
// assertion, budget sections, setup_scope, per-test budgets, baselines and the
// shared helpers (spec parsing, baseline files, file names). The failing cases
// live in tests/integration/catch2_failing.cpp, checked by integration_check.sh.
#define MEMDIAG_REPLACE_GLOBAL_NEW
#include <memdiag/global_new.hpp>

#define MEMDIAG_CATCH2_LISTENER
#include <memdiag/testing/catch2.hpp>

#include <memory>
#include <string>
#include <vector>

namespace {

// Keeps the optimizer from removing an allocation whose result is unused.
volatile const void* g_sink;
template <class T>
void keep(T&& value) {
    g_sink = &value;
    // The object may own the allocation (a unique_ptr): an asm that may read
    // all memory keeps the pointer inside it live, so no optimizer removes the
    // new/delete pair (C++14 allows that when the memory is unused).
    __asm__ volatile("" : : "g"(&value) : "memory");
}

int* leaked = nullptr;

// Two 1000-byte blocks, one after the other.
void two_in_turn() {
    keep(std::vector<char>(1000));
    keep(std::vector<char>(1000));
}

}  // namespace

TEST_CASE("allocation count assertions pass within the limit", "[testing][catch2]") {
    MEMDIAG_REQUIRE_ALLOCS_AT_MOST(1, keep(std::make_unique<int>(1)));
    MEMDIAG_CHECK_ALLOCS_AT_MOST(3, keep(std::make_unique<int>(1)), keep(std::make_unique<int>(2)));
    MEMDIAG_REQUIRE_ALLOCS_AT_MOST(0, keep(1 + 1));
}

TEST_CASE("byte and peak assertions pass within the limit", "[testing][catch2]") {
    MEMDIAG_REQUIRE_BYTES_AT_MOST(4096, keep(std::vector<char>(1000)));
    MEMDIAG_CHECK_BYTES_AT_MOST(4096, keep(std::vector<char>(1000)));
    // One block at a time: the peak stays near one of them...
    MEMDIAG_REQUIRE_PEAK_AT_MOST(1500, two_in_turn());
    // ...while the temporaries of one full expression live together.
    CHECK(memdiag::measure([] { keep(std::vector<char>(1000)), keep(std::vector<char>(1000)); }).peak_live_bytes >= 2000);
    MEMDIAG_CHECK_PEAK_AT_MOST(1500, keep(std::vector<char>(1000)));
}

TEST_CASE("no-alloc and no-leak assertions pass", "[testing][catch2]") {
    std::vector<int> v;
    v.reserve(16);
    MEMDIAG_REQUIRE_NO_ALLOC(v.push_back(1));
    MEMDIAG_CHECK_NO_ALLOC(v.push_back(2), v.push_back(3));
    MEMDIAG_REQUIRE_NO_LEAK(keep(std::string(100, 'x')));
    MEMDIAG_CHECK_NO_LEAK(keep(std::make_shared<int>(7)));
}

TEST_CASE("check_memory measures what it reports", "[testing][catch2]") {
    using memdiag::testing::check_kind;
    const auto r = memdiag::testing::check_memory(check_kind::allocations, 2, "three", [] {
        keep(std::make_unique<int>(1));
        keep(std::make_unique<int>(2));
        keep(std::make_unique<int>(3));
    });
    CHECK_FALSE(r.ok);
    CHECK(r.used.allocations == 3);
    CHECK(r.message.find("`three` made 3 allocation(s), at most 2 allowed (1 over)") != std::string::npos);
    CHECK(r.message.find("measured: allocations=3") != std::string::npos);
    CHECK(r.message.find("-bit pointers") != std::string::npos);
    CHECK(r.message.find("effective memory limit") != std::string::npos);

    const auto leak = memdiag::testing::check_memory(check_kind::no_leak, 0, "leak", [] { leaked = new int(5); });
    CHECK_FALSE(leak.ok);
    CHECK(leak.message.find("leaked") != std::string::npos);
    delete leaked;
}

TEST_CASE("a budget section within its limits passes", "[testing][catch2]") {
    MEMDIAG_BUDGET_SECTION(memdiag::limits{}.max_allocations(4).max_bytes(1 << 16));
    keep(std::vector<int>(100));
    keep(std::make_unique<int>(1));
}

TEST_CASE("a budget section reports a breach through its sink", "[testing][catch2]") {
    static std::string seen;
    seen.clear();
    {
        memdiag::testing::budget_section s{memdiag::limits{}.max_allocations(1),
                                           [](const std::string& m, memdiag::source_place) { seen = m; }, MEMDIAG_HERE};
        keep(std::make_unique<int>(1));
        keep(std::make_unique<int>(2));
        CHECK(s.breached());
    }
    CHECK(seen.find("max_allocations") != std::string::npos);
    CHECK(seen.find("limit:     1 allocations") != std::string::npos);
}

TEST_CASE("setup_scope leaves setup out of the test's own figures", "[testing][catch2]") {
    auto& scope = memdiag::testing::session().scope();
    REQUIRE(scope.is_open());
    const auto before = scope.used().allocations;
    std::vector<std::unique_ptr<int>> fixture;
    {
        memdiag::testing::setup_scope setup;
        for (int i = 0; i < 50; ++i) fixture.push_back(std::make_unique<int>(i));
    }
    CHECK(scope.used().allocations == before);
    keep(std::make_unique<int>(1));
    CHECK(scope.used().allocations == before + 1);
}

TEST_CASE("a per-test budget override applies to the running test", "[testing][catch2]") {
    memdiag::testing::test_budget(memdiag::limits{}.max_allocations(100000));
    CHECK(memdiag::testing::session().scope().has_budget());
    keep(std::vector<int>(10));
    memdiag::testing::no_test_budget();
    CHECK_FALSE(memdiag::testing::session().scope().has_budget());
}

TEST_CASE("budget specs parse and reject nonsense", "[testing][catch2]") {
    memdiag::limits lim;
    REQUIRE(memdiag::testing::parse_budget_spec("allocations=10, bytes=4K,peak=1M,live=0", lim));
    CHECK(lim.allocations() == 10);
    CHECK(lim.bytes() == 4096);
    CHECK(lim.peak_bytes() == 1024 * 1024);
    CHECK(lim.live_bytes() == 0);
    CHECK_FALSE(memdiag::testing::parse_budget_spec("allocations=ten", lim));
    CHECK_FALSE(memdiag::testing::parse_budget_spec("frobs=1", lim));
    CHECK_FALSE(memdiag::testing::parse_budget_spec("bytes", lim));
    CHECK_FALSE(memdiag::testing::parse_budget_spec("", lim));
}

TEST_CASE("size settings share the one size parser and say what is wrong", "[testing][catch2]") {
    memdiag::limits lim;
    REQUIRE(memdiag::testing::parse_budget_spec("bytes=1.5K,peak=2MiB", lim));
    CHECK(lim.bytes() == 1536);
    CHECK(lim.peak_bytes() == 2u << 20);
    const memdiag::result huge = memdiag::testing::parse_budget_spec("bytes=99999999999P", lim);
    CHECK_FALSE(huge);
    CHECK(std::string(huge.message()).find("too large") != std::string::npos);
    const memdiag::result unit = memdiag::testing::parse_budget_spec("peak=12 parsecs", lim);
    CHECK_FALSE(unit);
    CHECK(std::string(unit.message()).find("unknown unit") != std::string::npos);

    // --memdiag-sample-interval reads MEMDIAG_SAMPLE_INTERVAL's grammar and
    // bounds (sampler.hpp): 64k yes; 2T (above 1 TiB) and 1.5M no, with why.
    auto saved = memdiag::testing::config();
    memdiag::testing::config().errors.clear();
    CHECK(memdiag::testing::parse_option("--memdiag-sample-interval=64k"));
    CHECK(memdiag::testing::config().sample_interval == 65536);
    CHECK(memdiag::testing::config().errors.empty());
    CHECK(memdiag::testing::parse_option("--memdiag-sample-interval=2T"));
    CHECK(memdiag::testing::parse_option("--memdiag-sample-interval=1.5M"));
    CHECK(memdiag::testing::config().sample_interval == 65536);
    REQUIRE(memdiag::testing::config().errors.size() == 2);
    CHECK(memdiag::testing::config().errors[0].find("'2T'") != std::string::npos);
    CHECK(memdiag::testing::config().errors[1].find("fractions") != std::string::npos);
    memdiag::testing::config() = saved;
}

TEST_CASE("baseline files round-trip and bad lines are errors", "[testing][catch2]") {
    memdiag::testing::baseline b;
    REQUIRE(b.parse("memdiag-baseline 1\n# comment\n12 4096 parser handles empty input\r\n3 96 a/b c\n"));
    REQUIRE(b.entries.size() == 2);
    CHECK(b.entries["parser handles empty input"].allocations == 12);
    CHECK(b.entries["a/b c"].peak_bytes == 96);
    memdiag::testing::baseline again;
    REQUIRE(again.parse(b.to_text()));
    CHECK(again.entries.size() == 2);

    const auto bad = again.parse("memdiag-baseline 1\n12 x name\n", "f.txt");
    CHECK_FALSE(bad);
    CHECK(std::string(bad.message()) == "f.txt:2: expected '<allocations> <peak_bytes> <name>'");
    CHECK(again.entries.size() == 2);  // unchanged on error
    CHECK_FALSE(again.parse("12 4 no header\n"));
    CHECK_FALSE(again.parse("memdiag-baseline 1\n1 2\n"));
    CHECK_FALSE(again.parse("memdiag-baseline 1\n1 2 x\n1 2 x\n"));
    CHECK_FALSE(again.parse("memdiag-baseline 1\n99999999999999999999 2 x\n"));
    CHECK_FALSE(again.parse(""));
    CHECK_FALSE(again.parse(std::string("memdiag-baseline 1\n\0\0\0", 22)));
}

TEST_CASE("baseline comparison applies the tolerance", "[testing][catch2]") {
    using memdiag::testing::baseline_entry;
    using memdiag::testing::compare_to_baseline;
    CHECK(compare_to_baseline("t", baseline_entry{100, 1000}, baseline_entry{110, 1100}, 10.0).empty());
    const std::string m = compare_to_baseline("t", baseline_entry{100, 1000}, baseline_entry{111, 1000}, 10.0);
    CHECK(m.find("allocations: 111, baseline 100 (+11.0%, tolerance 10%)") != std::string::npos);
    CHECK_FALSE(compare_to_baseline("t", baseline_entry{0, 0}, baseline_entry{1, 0}, 50.0).empty());
}

TEST_CASE("snapshot file names are sanitized", "[testing][catch2]") {
    using memdiag::testing::sanitize_file_name;
    CHECK(sanitize_file_name("parse: handles \"quotes\" / slashes") == "parse_handles_quotes_slashes");
    CHECK(sanitize_file_name("../../etc/passwd") == "etc_passwd");
    CHECK(sanitize_file_name("") == "test");
    CHECK(sanitize_file_name(std::string(300, 'a')).size() == 120);
}

TEST_CASE("options are parsed and removed from argv", "[testing][catch2]") {
    auto saved = memdiag::testing::config();
    char a0[] = "prog", a1[] = "--memdiag-top-sites=3", a2[] = "-s", a3[] = "--memdiag-baseline=check:/tmp/x";
    char* argv[] = {a0, a1, a2, a3, nullptr};
    int argc = 4;
    memdiag::testing::parse_args(argc, argv);
    CHECK(argc == 2);
    CHECK(std::string(argv[1]) == "-s");
    CHECK(memdiag::testing::config().top_sites == 3);
    CHECK(memdiag::testing::config().baseline == memdiag::testing::baseline_mode::check);
    CHECK(memdiag::testing::config().baseline_path == "/tmp/x");
    memdiag::testing::config() = saved;
}
