// tests/test_watermark.cpp - watermark snapshots (watermark.hpp): the level
// parser, and firing/re-arming on the process's live heap. Linked into
// memdiag_hook_tests, whose hook_main.cpp replaces the global operator new.
#include <memdiag/global_new.hpp>
#include <memdiag/heap_profile.hpp>
#include <memdiag/watermark.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "catch.hpp"

namespace {

using memdiag::heap_profiler;
using memdiag::profile_options;

bool exists(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
}

std::string parse(const char* text, std::vector<double>& out) {
    double f[memdiag::detail::watermark::max_levels + 1];
    std::size_t n = 0;
    const std::string why = memdiag::detail::watermark::parse_levels(text, f, n);
    out.assign(f, f + n);
    return why;
}

// noinline: the allocation site of the watermark test, as it would be in a program.
__attribute__((noinline)) void grow_mib(std::vector<char*>& keep, int mib) {
    for (int i = 0; i < mib; ++i) keep.push_back(new char[1 << 20]);
}

}  // namespace

TEST_CASE("watermark: levels parse as percentages or fractions; anything else says why", "[watermark]") {
    std::vector<double> v;
    CHECK(parse("80%,90%,95%", v).empty());
    REQUIRE(v.size() == 3);
    CHECK(v[0] == Approx(0.8));
    CHECK(v[2] == Approx(0.95));
    CHECK(parse(" 0.5 , 99.5% ,100%", v).empty());
    REQUIRE(v.size() == 3);
    CHECK(v[1] == Approx(0.995));
    CHECK(v[2] == Approx(1.0));
    CHECK(parse("abc", v).find("not a percentage") != std::string::npos);
    CHECK(parse("150%", v).find("outside (0%, 100%]") != std::string::npos);
    CHECK(parse("0%", v).find("outside") != std::string::npos);
    CHECK(parse("-5%", v).find("outside") != std::string::npos);
    CHECK(parse("80%,", v).find("not a percentage") != std::string::npos);
    CHECK(parse("80%%", v).find("not a percentage") != std::string::npos);
    CHECK(parse("nan", v).find("not a percentage") != std::string::npos);
    CHECK(parse("", v) == "empty list");
    CHECK(parse("1%,2%,3%,4%,5%,6%,7%,8%,9%", v).find("more than 8") != std::string::npos);
}

TEST_CASE("watermark: a level fires once per crossing and re-arms below 90% of its threshold", "[watermark]") {
    if (!memdiag::global_hook_installed()) {
        WARN("global operator new is not replaced in this build (ThreadSanitizer): test skipped");
        return;
    }
    char tmpl[] = "/tmp/memdiag-watermark-test.XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    const std::string dir = tmpl;
    std::vector<char*> keep;
    keep.reserve(64);
    // One level at half the limit, 16 MiB above what is live now. 1 MiB blocks
    // are published at once (beyond the 64 KiB drift), so live is exact here.
    const std::int64_t live0 = memdiag::process_stats().live_bytes;
    const std::uint64_t limit = 2 * (static_cast<std::uint64_t>(live0 > 0 ? live0 : 0) + (16u << 20));
    REQUIRE(heap_profiler::start(profile_options{}.dump_at_fractions({0.5}).dump_limit(limit).dump_dir(dir.c_str())));
    const std::string file = dir + "/heap." + std::to_string(::getpid()) + ".50.pb.gz";

    grow_mib(keep, 15);
    CHECK_FALSE(exists(file));  // below the level
    grow_mib(keep, 2);
    CHECK(exists(file));  // crossed: written
    std::remove(file.c_str());

    delete[] keep.back();  // 16 MiB above live0: still at the level, not re-armed
    keep.pop_back();
    grow_mib(keep, 1);
    CHECK_FALSE(exists(file));  // fired once per crossing

    for (char* p : keep) delete[] p;  // far below 90% of the threshold: re-armed
    keep.clear();
    grow_mib(keep, 17);
    CHECK(exists(file));  // the next crossing writes again

    heap_profiler::stop();  // disarms
    std::remove(file.c_str());
    for (char* p : keep) delete[] p;
    keep.clear();
    grow_mib(keep, 17);
    CHECK_FALSE(exists(file));
    for (char* p : keep) delete[] p;
    ::rmdir(dir.c_str());
}
