// tests/http/test_periodic_dump.cpp - dump_every: files, names, pruning, the
// environment form.
#include <memdiag/heap_profile.hpp>
#include <memdiag/periodic_dump.hpp>

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "catch.hpp"

namespace {

std::vector<std::string> list_dir(const std::string& dir) {
    std::vector<std::string> out;
    if (DIR* d = ::opendir(dir.c_str())) {
        while (dirent* e = ::readdir(d))
            if (e->d_name[0] != '.') out.push_back(e->d_name);
        ::closedir(d);
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::string make_temp_dir() {
    char tmpl[] = "/tmp/memdiag-dump-test.XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    return tmpl;
}

}  // namespace

TEST_CASE("dump_every writes heap.<pid>.<time>.pb.gz and keeps the newest `keep`") {
    REQUIRE(memdiag::heap_profiler::start(memdiag::profile_options{}.sample_interval(1)));
    static char* volatile keep_alive;
    keep_alive = new char[10000];
    const std::string dir = make_temp_dir();
    // A file of another process and an unrelated file: never touched.
    const std::string other = dir + "/heap.1.20000101T000000.000Z.pb.gz", unrelated = dir + "/notes.txt";
    std::fclose(std::fopen(other.c_str(), "w"));
    std::fclose(std::fopen(unrelated.c_str(), "w"));

    memdiag::periodic_dump d = memdiag::dump_every(0.1, dir.c_str(), 3);
    REQUIRE(d.running());
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (d.dumps_written() < 6 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    char last[1024];
    d.last_path(last, sizeof last);
    const std::uint64_t written = d.dumps_written();
    d.stop();
    CHECK_FALSE(d.running());
    REQUIRE(written >= 6);

    const std::vector<std::string> files = list_dir(dir);
    const std::string prefix = "heap." + std::to_string(::getpid()) + ".";
    std::vector<std::string> mine;
    for (const std::string& f : files)
        if (f.compare(0, prefix.size(), prefix) == 0) mine.push_back(f);
    INFO("files: " << files.size());
    CHECK(mine.size() == 3);  // the newest three; no temporary files left
    CHECK(files.size() == 5);
    CHECK(std::find(files.begin(), files.end(), "heap.1.20000101T000000.000Z.pb.gz") != files.end());
    CHECK(std::find(files.begin(), files.end(), "notes.txt") != files.end());
    REQUIRE(!mine.empty());
    CHECK(dir + "/" + mine.back() == last);  // the newest is kept
    for (const std::string& f : mine) {
        INFO(f);
        // heap.<pid>.YYYYMMDDTHHMMSS.mmmZ.pb.gz
        CHECK(f.size() == prefix.size() + 20 + 6);
        CHECK(f[prefix.size() + 8] == 'T');
        CHECK(f.compare(f.size() - 7, 7, "Z.pb.gz") == 0);
        struct stat st {};
        REQUIRE(::stat((dir + "/" + f).c_str(), &st) == 0);
        CHECK((st.st_mode & 0777) == 0600);
        unsigned char magic[2] = {0, 0};
        FILE* in = std::fopen((dir + "/" + f).c_str(), "rb");
        REQUIRE(in != nullptr);
        CHECK(std::fread(magic, 1, 2, in) == 2);
        std::fclose(in);
        CHECK((magic[0] == 0x1f && magic[1] == 0x8b));  // gzip
    }
    for (const std::string& f : files) ::unlink((dir + "/" + f).c_str());
    ::rmdir(dir.c_str());
    memdiag::heap_profiler::stop();
    delete[] keep_alive;
}

TEST_CASE("dump_every: bad arguments are results") {
    CHECK_FALSE(memdiag::dump_every(0, "/tmp").running());
    memdiag::periodic_dump d = memdiag::dump_every(1, "/nonexistent/memdiag-dir");
    CHECK_FALSE(d.running());
    CHECK(std::strstr(d.status().message(), "not a directory") != nullptr);
}

TEST_CASE("dump_every_from_env: MEMDIAG_DUMP_EVERY periods") {
    using memdiag::detail::dumps::parse_period_ms;
    CHECK(parse_period_ms("60s") == 60000);
    CHECK(parse_period_ms("60") == 60000);
    CHECK(parse_period_ms("500ms") == 500);
    CHECK(parse_period_ms("5m") == 300000);
    CHECK(parse_period_ms("1h") == 3600000);
    CHECK(parse_period_ms("0.5s") == 500);
    CHECK(parse_period_ms("0") == 0);
    CHECK(parse_period_ms("-1s") == 0);
    CHECK(parse_period_ms("10 parsecs") == 0);
    CHECK(parse_period_ms("") == 0);

    ::unsetenv("MEMDIAG_DUMP_EVERY");
    CHECK(std::strstr(memdiag::dump_every_from_env().status().message(), "unset") != nullptr);
    ::setenv("MEMDIAG_DUMP_EVERY", "often", 1);
    CHECK(std::strstr(memdiag::dump_every_from_env().status().message(), "often") != nullptr);
    const std::string dir = make_temp_dir();
    ::setenv("MEMDIAG_DUMP_EVERY", "1h", 1);
    ::setenv("MEMDIAG_DUMP_DIR", dir.c_str(), 1);
    {
        memdiag::periodic_dump d = memdiag::dump_every_from_env();
        CHECK(d.running());
    }  // stop() wakes the hour-long wait at once
    ::unsetenv("MEMDIAG_DUMP_EVERY");
    ::unsetenv("MEMDIAG_DUMP_DIR");
    ::rmdir(dir.c_str());
}
