// tests/test_env.cpp - env: parsers on fixtures, cgroup resolution on fixture
// trees, report formatting, checks on synthetic reports, and the live report
// cross-checked against independent sources.
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <memdiag/env.hpp>

#include "catch.hpp"

#if MEMDIAG_OS_LINUX
#include <sys/auxv.h>
#include <sys/resource.h>
#include <unistd.h>
#endif

namespace {

using memdiag::env::fact;
using memdiag::env::limit;
namespace parse = memdiag::detail::env_parse;
namespace env = memdiag::env;

// The fixture root: set MEMDIAG_ENV_FIXTURES from the build, else found next
// to this file (compilers give __FILE__ as the path they were handed).
std::string fixture_root() {
#if defined(MEMDIAG_ENV_FIXTURES)
    return MEMDIAG_ENV_FIXTURES;
#else
    std::string here = __FILE__;
    std::size_t slash = here.find_last_of("/\\");
    return (slash == std::string::npos ? std::string(".") : here.substr(0, slash)) + "/fixtures/env";
#endif
}

// Returns a fixture file's text; fails the test when it is missing.
std::string fixture(const std::string& name) {
    fact<std::string> f = memdiag::detail::os::read_file(fixture_root() + "/" + name);
    INFO("fixture " << fixture_root() << "/" << name << ": " << f.reason);
    REQUIRE(f.known);
    return f.value;
}

// Resolves cgroups as if the fixture tree `name` were the root filesystem.
parse::cgroup_facts cgroups_of(const std::string& name) {
    std::string root = fixture_root() + "/" + name;
    return parse::read_cgroup_facts(
        [&](const std::string& path) { return memdiag::detail::os::read_file(root + path); });
}

// A small strict JSON validator (RFC 8259 grammar) so output is checked by a
// real parser here too, not by eye.
struct json_checker {
    std::string_view s;
    std::size_t i = 0;
    void ws() {
        while (i < s.size() && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r')) ++i;
    }
    bool lit(std::string_view w) {
        if (s.substr(i, w.size()) != w) return false;
        i += w.size();
        return true;
    }
    bool string() {
        if (i >= s.size() || s[i] != '"') return false;
        ++i;
        while (i < s.size()) {
            auto c = static_cast<unsigned char>(s[i]);
            if (c == '"') {
                ++i;
                return true;
            }
            if (c < 0x20) return false;
            if (c == '\\') {
                if (++i >= s.size()) return false;
                char e = s[i];
                if (e == 'u') {
                    for (int k = 0; k < 4; ++k)
                        if (++i >= s.size() || !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
                } else if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos) {
                    return false;
                }
            }
            ++i;
        }
        return false;
    }
    bool number() {
        std::size_t start = i;
        if (i < s.size() && s[i] == '-') ++i;
        while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
        return i > start;
    }
    bool value() {
        ws();
        if (i >= s.size()) return false;
        bool ok;
        if (s[i] == '{') {
            ++i;
            ws();
            if (i < s.size() && s[i] == '}') {
                ++i;
                return true;
            }
            do {
                ws();
                if (!string()) return false;
                ws();
                if (!lit(":")) return false;
                if (!value()) return false;
                ws();
            } while (lit(","));
            ok = lit("}");
        } else if (s[i] == '[') {
            ++i;
            ws();
            if (i < s.size() && s[i] == ']') {
                ++i;
                return true;
            }
            do {
                if (!value()) return false;
                ws();
            } while (lit(","));
            ok = lit("]");
        } else if (s[i] == '"') {
            ok = string();
        } else if (s[i] == 't') {
            ok = lit("true");
        } else if (s[i] == 'f') {
            ok = lit("false");
        } else if (s[i] == 'n') {
            ok = lit("null");
        } else {
            ok = number();
        }
        return ok;
    }
    // Valid UTF-8 throughout (a JSON text must be).
    bool utf8() const {
        for (std::size_t k = 0; k < s.size();) {
            auto c = static_cast<unsigned char>(s[k]);
            std::size_t len = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
            if (len == 0 || k + len > s.size()) return false;
            for (std::size_t j = 1; j < len; ++j)
                if ((static_cast<unsigned char>(s[k + j]) & 0xC0) != 0x80) return false;
            k += len;
        }
        return true;
    }
};

bool valid_json(std::string_view text) {
    json_checker j{text};
    if (!j.utf8() || !j.value()) return false;
    j.ws();
    return j.i == text.size();
}

// A report a test can reason about: a 64-bit machine with 16 GiB and no limits.
env::report clean_report() {
    env::report r;
    r.arch = fact<std::string>::of("x86_64", "test");
    r.pointer_bits = fact<std::uint64_t>::of(64, "test");
    r.kernel_machine = fact<std::string>::of("x86_64", "test");
    r.virtual_address_bits = fact<std::uint64_t>::of(48, "test");
    r.address_space = fact<std::uint64_t>::of(std::uint64_t(1) << 47, "test");
    r.physical_memory = fact<std::uint64_t>::of(16ull << 30, "test RAM");
    r.available_memory = fact<std::uint64_t>::of(12ull << 30, "test available");
    r.rlimit_as = fact<limit>::of(limit::none(), "getrlimit(RLIMIT_AS)");
    r.rlimit_data = fact<limit>::of(limit::none(), "getrlimit(RLIMIT_DATA)");
    r.cgroup_v1_memory_limit = fact<limit>::of(limit::none(), "v1 file");
    r.cgroup_v2_memory_max = fact<limit>::unknown("no memory controller");
    r.overcommit_memory = fact<int>::of(0, "test");
    return r;
}

const env::item* find(const std::vector<env::item>& items, std::string_view key) {
    for (const env::item& i : items)
        if (i.key == key) return &i;
    return nullptr;
}

}  // namespace

// ---- numbers -------------------------------------------------------------------

TEST_CASE("env parse_u64: decimal, whitespace, overflow and garbage", "[env][parse]") {
    CHECK(parse::parse_u64("0").value == 0);
    CHECK(parse::parse_u64(" 4096\n").value == 4096);
    CHECK(parse::parse_u64("18446744073709551615").value == UINT64_MAX);
    CHECK_FALSE(parse::parse_u64("18446744073709551616").known);
    CHECK_FALSE(parse::parse_u64("").known);
    CHECK_FALSE(parse::parse_u64("\n").known);
    CHECK_FALSE(parse::parse_u64("-1").known);
    CHECK_FALSE(parse::parse_u64("12ab").known);
    CHECK_FALSE(parse::parse_u64("1 2").known);
    CHECK(parse::parse_u64("12ab").reason.find("12ab") != std::string::npos);
    CHECK(parse::parse_i64("-1").value == -1);
    CHECK(parse::parse_i64("-9223372036854775808").value == INT64_MIN);
    CHECK(parse::parse_i64("9223372036854775807").value == INT64_MAX);
    CHECK_FALSE(parse::parse_i64("9223372036854775808").known);
    CHECK_FALSE(parse::parse_i64("-").known);
}

TEST_CASE("env cgroup memory limit values: max, unlimited sentinels, zero", "[env][parse]") {
    fact<limit> v2 = parse::parse_cgroup_v2_memory_max("max\n");
    REQUIRE(v2.known);
    CHECK(v2.value.unlimited);
    v2 = parse::parse_cgroup_v2_memory_max("268435456\n");
    REQUIRE(v2.known);
    CHECK_FALSE(v2.value.unlimited);
    CHECK(v2.value.bytes == 268435456u);
    v2 = parse::parse_cgroup_v2_memory_max("0");
    REQUIRE(v2.known);
    CHECK_FALSE(v2.value.unlimited);  // zero means zero
    CHECK(v2.value.bytes == 0);
    CHECK_FALSE(parse::parse_cgroup_v2_memory_max("maximum").known);
    CHECK_FALSE(parse::parse_cgroup_v2_memory_max("").known);

    CHECK(parse::parse_cgroup_v1_memory_limit("9223372036854771712\n").value.unlimited);
    CHECK(parse::parse_cgroup_v1_memory_limit("18446744073709551615").value.unlimited);
    CHECK(parse::parse_cgroup_v1_memory_limit("-1").value.unlimited);
    fact<limit> v1 = parse::parse_cgroup_v1_memory_limit("536870912\n");
    REQUIRE(v1.known);
    CHECK(v1.value.bytes == 536870912u);
    v1 = parse::parse_cgroup_v1_memory_limit(std::to_string(parse::cgroup_v1_unlimited_from - 1));
    REQUIRE(v1.known);
    CHECK_FALSE(v1.value.unlimited);
    CHECK_FALSE(parse::parse_cgroup_v1_memory_limit("lots").known);
}

TEST_CASE("env limit ordering", "[env]") {
    CHECK(limit::of(1).below(limit::of(2)));
    CHECK(limit::of(0).below(limit::none()));
    CHECK_FALSE(limit::none().below(limit::of(1)));
    CHECK_FALSE(limit::none().below(limit::none()));
    CHECK_FALSE(limit::of(2).below(limit::of(2)));
}

// ---- single files ----------------------------------------------------------------

TEST_CASE("env meminfo: fixture, truncated, garbage", "[env][parse]") {
    std::string text = fixture("files/meminfo");
    fact<std::uint64_t> total = parse::parse_meminfo(text, "MemTotal");
    REQUIRE(total.known);
    CHECK(total.value == 24684096ull * 1024);  // 23.5 GiB: above 4 GiB, so 64-bit math in -m32 too
    CHECK(parse::parse_meminfo(text, "MemAvailable").known);
    CHECK(parse::parse_meminfo(text, "HugePages_Total").known);  // no unit
    CHECK(parse::parse_meminfo(text, "Hugepagesize").value == 2048u * 1024);
    CHECK_FALSE(parse::parse_meminfo(text, "NoSuchKey").known);

    std::string cut = fixture("files/meminfo_truncated");
    CHECK(parse::parse_meminfo(cut, "MemTotal").known);
    fact<std::uint64_t> missing = parse::parse_meminfo(cut, "MemAvailable");
    CHECK_FALSE(missing.known);
    CHECK(missing.reason.find("MemAvailable") != std::string::npos);

    std::string bad = fixture("files/meminfo_garbage");
    CHECK_FALSE(parse::parse_meminfo(bad, "MemTotal").known);
    CHECK_FALSE(parse::parse_meminfo(bad, "MemAvailable").known);  // overflows 64 bits
    CHECK_FALSE(parse::parse_meminfo(bad, "SwapTotal").known);     // unknown unit
}

TEST_CASE("env cpuinfo address sizes: x86, la57, aarch64, garbage", "[env][parse]") {
    fact<env::address_sizes> x86 = parse::parse_cpuinfo_address_sizes(fixture("files/cpuinfo_x86_64"));
    REQUIRE(x86.known);
    CHECK(x86.value.physical_bits == 48);
    CHECK(x86.value.virtual_bits == 48);
    fact<env::address_sizes> la57 = parse::parse_cpuinfo_address_sizes(fixture("files/cpuinfo_la57"));
    REQUIRE(la57.known);
    CHECK(la57.value.virtual_bits == 57);
    fact<env::address_sizes> arm = parse::parse_cpuinfo_address_sizes(fixture("files/cpuinfo_aarch64"));
    CHECK_FALSE(arm.known);
    CHECK(arm.reason.find("address sizes") != std::string::npos);
    CHECK_FALSE(parse::parse_cpuinfo_address_sizes(fixture("files/cpuinfo_garbage")).known);
    CHECK_FALSE(parse::parse_cpuinfo_address_sizes(fixture("files/cpuinfo_truncated")).known);
    CHECK_FALSE(parse::parse_cpuinfo_address_sizes("address sizes : 99 bits physical, 48 bits virtual").known);
}

TEST_CASE("env transparent huge pages: the bracketed token", "[env][parse]") {
    CHECK(parse::parse_bracketed_choice(fixture("files/thp_enabled")).value == "madvise");
    CHECK(parse::parse_bracketed_choice(fixture("files/thp_defrag")).value == "madvise");
    CHECK(parse::parse_bracketed_choice("[always] madvise never").value == "always");
    CHECK_FALSE(parse::parse_bracketed_choice(fixture("files/thp_no_selection")).known);
    CHECK_FALSE(parse::parse_bracketed_choice("always [] never").known);
    CHECK_FALSE(parse::parse_bracketed_choice("always [madvise").known);
    CHECK_FALSE(parse::parse_bracketed_choice("").known);
}

TEST_CASE("env cpu quota: cpu.max and CFS files", "[env][parse]") {
    fact<env::cpu_quota> q = parse::parse_cgroup_v2_cpu_max("150000 100000\n");
    REQUIRE(q.known);
    CHECK_FALSE(q.value.unlimited);
    CHECK(q.value.cpus() == 1.5);
    q = parse::parse_cgroup_v2_cpu_max("max 100000");
    REQUIRE(q.known);
    CHECK(q.value.unlimited);
    q = parse::parse_cgroup_v2_cpu_max("50000");  // period defaults to 100 ms
    REQUIRE(q.known);
    CHECK(q.value.cpus() == 0.5);
    CHECK_FALSE(parse::parse_cgroup_v2_cpu_max("").known);
    CHECK_FALSE(parse::parse_cgroup_v2_cpu_max("1 0").known);
    CHECK_FALSE(parse::parse_cgroup_v2_cpu_max("a b c").known);

    q = parse::parse_cgroup_v1_cfs("-1\n", "100000\n");
    REQUIRE(q.known);
    CHECK(q.value.unlimited);
    q = parse::parse_cgroup_v1_cfs("250000", "100000");
    REQUIRE(q.known);
    CHECK(q.value.cpus() == 2.5);
    CHECK_FALSE(parse::parse_cgroup_v1_cfs("x", "100000").known);
    CHECK_FALSE(parse::parse_cgroup_v1_cfs("1", "0").known);
}

TEST_CASE("env os-release, overcommit, cpu lists", "[env][parse]") {
    CHECK(parse::parse_os_release(fixture("files/os-release_debian")).value == "Debian GNU/Linux 12 (bookworm)");
    CHECK(parse::parse_os_release(fixture("files/os-release_quoted")).value == "Tricky \"Quoted\" OS 1.0 \\ edition");
    CHECK(parse::parse_os_release(fixture("files/os-release_quoted"), "NAME").value == "Tricky OS");
    CHECK(parse::parse_os_release(fixture("files/os-release_quoted"), "ID").value == "tricky");
    CHECK_FALSE(parse::parse_os_release(fixture("files/os-release_unterminated")).known);
    CHECK_FALSE(parse::parse_os_release("").known);

    CHECK(parse::parse_overcommit_mode("0\n").value == 0);
    CHECK(parse::parse_overcommit_mode("2").value == 2);
    CHECK_FALSE(parse::parse_overcommit_mode("3").known);
    CHECK_FALSE(parse::parse_overcommit_mode("").known);

    CHECK(parse::parse_cpu_list_count("0-3,8,10-11\n").value == 7);
    CHECK(parse::parse_cpu_list_count("5").value == 1);
    CHECK_FALSE(parse::parse_cpu_list_count("3-1").known);
    CHECK_FALSE(parse::parse_cpu_list_count("0-").known);
    CHECK_FALSE(parse::parse_cpu_list_count("").known);
    CHECK_FALSE(parse::parse_cpu_list_count("0-99999999999").known);
}

// ---- /proc/self/cgroup and mountinfo ---------------------------------------------

TEST_CASE("env /proc/self/cgroup: hybrid fixture, garbage, colons in paths", "[env][parse][cgroup]") {
    auto e = parse::parse_proc_cgroup(fixture("cgroup_hybrid/proc/self/cgroup"));
    REQUIRE(e.known);
    REQUIRE(e.value.size() == 10);
    CHECK(e.value[5].has("memory"));
    CHECK(e.value[5].path == "/process_api/5d7b4da138f38f3f38bf4eae68f5f9fb");
    CHECK(e.value[0].has("name=systemd"));
    CHECK(e.value[9].is_v2());
    CHECK(e.value[9].path == "/");

    auto v1 = parse::parse_proc_cgroup("4:cpu,cpuacct:/a:b\n");
    REQUIRE(v1.known);
    CHECK(v1.value[0].has("cpu"));
    CHECK(v1.value[0].has("cpuacct"));
    CHECK(v1.value[0].path == "/a:b");

    CHECK_FALSE(parse::parse_proc_cgroup(fixture("cgroup_garbage/proc/self/cgroup")).known);
    CHECK_FALSE(parse::parse_proc_cgroup("").known);
    CHECK_FALSE(parse::parse_proc_cgroup("0::relative\n").known);
}

TEST_CASE("env mountinfo: escapes, optional fields, malformed lines", "[env][parse][cgroup]") {
    CHECK(parse::unescape_mountinfo("a\\040b") == "a b");
    CHECK(parse::unescape_mountinfo("\\011\\012\\134") == "\t\n\\");
    CHECK(parse::unescape_mountinfo("\\09x") == "\\09x");  // not an octal escape: kept
    CHECK(parse::unescape_mountinfo("end\\04") == "end\\04");  // cut escape: kept
    CHECK(parse::unescape_mountinfo("\\") == "\\");

    auto m = parse::parse_mountinfo(fixture("files/mountinfo_escapes"));
    REQUIRE(m.known);
    REQUIRE(m.value.size() == 5);  // the line without " - " and the cut line are skipped
    CHECK(m.value[1].mount_point == "/mnt/with space");
    CHECK(m.value[2].root == "/sub\tdir");
    CHECK(m.value[2].mount_point == "/mnt/tab\tand\\backslash");
    CHECK(m.value[3].mount_point == "/mnt/not\\09escape");
    CHECK(m.value[4].fs_type == "cgroup2");
    CHECK(m.value[4].has_option("nsdelegate"));
    CHECK_FALSE(parse::parse_mountinfo("garbage\n").known);
    CHECK_FALSE(parse::parse_mountinfo("").known);
}

TEST_CASE("env cgroup paths: mount roots, subtrees, foreign namespaces", "[env][cgroup]") {
    parse::mount_entry host;
    host.root = "/";
    host.mount_point = "/sys/fs/cgroup/memory";
    CHECK(parse::locate_cgroup(host, "/a/b").directory == "/sys/fs/cgroup/memory/a/b");
    CHECK(parse::locate_cgroup(host, "/").directory == "/sys/fs/cgroup/memory");

    parse::mount_entry sub;
    sub.root = "/docker/abc";
    sub.mount_point = "/sys/fs/cgroup/memory";
    CHECK(parse::locate_cgroup(sub, "/docker/abc").directory == "/sys/fs/cgroup/memory");
    CHECK(parse::locate_cgroup(sub, "/docker/abc/child").directory == "/sys/fs/cgroup/memory/child");
    parse::cgroup_location other = parse::locate_cgroup(sub, "/docker/abcdef");  // a prefix, not a parent
    CHECK(other.directory == "/sys/fs/cgroup/memory");
    CHECK_FALSE(other.note.empty());
    parse::cgroup_location up = parse::locate_cgroup(host, "/../x");
    CHECK(up.directory == "/sys/fs/cgroup/memory");
    CHECK_FALSE(up.note.empty());

    std::vector<std::string> w = parse::walk_up("/m/a/b", "/m");
    REQUIRE(w.size() == 3);
    CHECK(w[0] == "/m/a/b");
    CHECK(w[1] == "/m/a");
    CHECK(w[2] == "/m");
    CHECK(parse::walk_up("/m", "/m").size() == 1);
}

TEST_CASE("env cgroup v1 fixture: docker subtree, limit and CFS quota", "[env][cgroup]") {
    parse::cgroup_facts c = cgroups_of("cgroup_v1");
    CHECK(c.layout.value == "v1");
    CHECK(c.memory_path.value == "/sys/fs/cgroup/memory");
    REQUIRE(c.v1_memory_limit.known);
    CHECK(c.v1_memory_limit.value.bytes == 536870912u);
    CHECK(c.v1_memory_limit.source == "/sys/fs/cgroup/memory/memory.limit_in_bytes");
    CHECK_FALSE(c.v2_memory_max.known);
    REQUIRE(c.cpu_limit.known);
    CHECK(c.cpu_limit.value.cpus() == 1.5);
}

TEST_CASE("env cgroup v1 nested fixture: parent limit, 2^64-1 at the root", "[env][cgroup]") {
    parse::cgroup_facts c = cgroups_of("cgroup_v1_nested");
    REQUIRE(c.v1_memory_limit.known);
    CHECK_FALSE(c.v1_memory_limit.value.unlimited);
    CHECK(c.v1_memory_limit.value.bytes == 1073741824u);
    CHECK(c.v1_memory_limit.source == "/sys/fs/cgroup/memory/batch/memory.limit_in_bytes");
    REQUIRE(c.cpu_limit.known);
    CHECK(c.cpu_limit.value.cpus() == 0.5);  // the parent's quota binds
    CHECK(c.cpu_limit.source == "/sys/fs/cgroup/cpu/batch/cpu.cfs_quota_us");
}

TEST_CASE("env cgroup hybrid fixture (this project's machines): v1 memory applies", "[env][cgroup]") {
    parse::cgroup_facts c = cgroups_of("cgroup_hybrid");
    CHECK(c.layout.value == "hybrid");
    CHECK(c.memory_path.value == "/sys/fs/cgroup/memory/process_api/5d7b4da138f38f3f38bf4eae68f5f9fb");
    REQUIRE(c.v1_memory_limit.known);
    CHECK(c.v1_memory_limit.value.unlimited);  // 9223372036854771712 at every level
    CHECK_FALSE(c.v2_memory_max.known);
    CHECK(c.v2_memory_max.reason.find("no memory controller") != std::string::npos);
    CHECK(c.v2_memory_max.reason.find("hybrid") != std::string::npos);
    REQUIRE(c.cpu_limit.known);
    CHECK(c.cpu_limit.value.unlimited);
}

TEST_CASE("env cgroup v2 fixtures: leaf, nested max, container subtree, root", "[env][cgroup]") {
    parse::cgroup_facts leaf = cgroups_of("cgroup_v2");
    CHECK(leaf.layout.value == "v2");
    CHECK(leaf.memory_path.value == "/sys/fs/cgroup/user.slice/app.scope");
    REQUIRE(leaf.v2_memory_max.known);
    CHECK(leaf.v2_memory_max.value.bytes == 268435456u);
    CHECK(leaf.v2_memory_max.source == "/sys/fs/cgroup/user.slice/app.scope/memory.max");
    CHECK_FALSE(leaf.v1_memory_limit.known);
    REQUIRE(leaf.cpu_limit.known);
    CHECK(leaf.cpu_limit.value.cpus() == 2.0);

    parse::cgroup_facts nested = cgroups_of("cgroup_v2_nested_max");
    REQUIRE(nested.v2_memory_max.known);
    CHECK_FALSE(nested.v2_memory_max.value.unlimited);  // the leaf says max, the parent does not
    CHECK(nested.v2_memory_max.value.bytes == 1073741824u);
    CHECK(nested.v2_memory_max.source == "/sys/fs/cgroup/kubepods.slice/pod42.slice/memory.max");
    REQUIRE(nested.cpu_limit.known);
    CHECK(nested.cpu_limit.value.unlimited);  // no cpu.max anywhere

    parse::cgroup_facts container = cgroups_of("cgroup_v2_container");
    REQUIRE(container.v2_memory_max.known);
    CHECK(container.v2_memory_max.value.bytes == 536870912u);
    CHECK(container.v2_memory_max.source == "/sys/fs/cgroup/memory.max");
    REQUIRE(container.cpu_limit.known);
    CHECK(container.cpu_limit.value.cpus() == 0.5);

    parse::cgroup_facts root = cgroups_of("cgroup_v2_root");
    REQUIRE(root.v2_memory_max.known);
    CHECK(root.v2_memory_max.value.unlimited);
    CHECK(root.v2_memory_max.source.find("root cgroup") != std::string::npos);

    parse::cgroup_facts zero = cgroups_of("cgroup_v2_zero");
    REQUIRE(zero.v2_memory_max.known);
    CHECK_FALSE(zero.v2_memory_max.value.unlimited);
    CHECK(zero.v2_memory_max.value.bytes == 0);

    parse::cgroup_facts foreign = cgroups_of("cgroup_v2_foreign_ns");
    CHECK(foreign.memory_path.value == "/sys/fs/cgroup");
    REQUIRE(foreign.v2_memory_max.known);
    CHECK(foreign.v2_memory_max.source.find("leaves the mounted hierarchy") != std::string::npos);
}

TEST_CASE("env cgroup fixtures with damage: escapes, truncation, garbage, nothing", "[env][cgroup]") {
    parse::cgroup_facts escaped = cgroups_of("cgroup_escaped");
    REQUIRE(escaped.v1_memory_limit.known);
    CHECK(escaped.v1_memory_limit.value.bytes == 104857600u);
    CHECK(escaped.v1_memory_limit.source == "/sys/fs/cgroup/my memory/app/memory.limit_in_bytes");

    parse::cgroup_facts cut = cgroups_of("cgroup_truncated");
    CHECK(cut.layout.value == "hybrid");
    CHECK_FALSE(cut.v1_memory_limit.known);
    CHECK(cut.v1_memory_limit.reason.find("no cgroup v1 mount") != std::string::npos);
    CHECK_FALSE(cut.v2_memory_max.known);

    parse::cgroup_facts bad = cgroups_of("cgroup_v2_garbage");
    CHECK_FALSE(bad.v2_memory_max.known);
    CHECK(bad.v2_memory_max.reason.find("12ab") != std::string::npos);
    CHECK(bad.v2_memory_max.source == "/sys/fs/cgroup/app/memory.max");
    CHECK_FALSE(bad.cpu_limit.known);

    parse::cgroup_facts garbage = cgroups_of("cgroup_garbage");
    CHECK_FALSE(garbage.layout.known);
    CHECK_FALSE(garbage.v1_memory_limit.known);
    CHECK(garbage.layout.reason.find("cannot parse") != std::string::npos);

    parse::cgroup_facts none = cgroups_of("cgroup_missing");
    CHECK_FALSE(none.layout.known);
    CHECK(none.layout.reason.find("cannot read") != std::string::npos);
    CHECK(none.layout.source == "/proc/self/cgroup");
}

TEST_CASE("env parsers survive every truncation of every fixture", "[env][parse]") {
    const char* files[] = {"files/meminfo", "files/cpuinfo_x86_64", "files/mountinfo_escapes",
                           "cgroup_hybrid/proc/self/cgroup", "cgroup_hybrid/proc/self/mountinfo",
                           "files/os-release_quoted", "files/thp_enabled"};
    for (const char* name : files) {
        std::string text = fixture(name);
        for (std::size_t n = 0; n <= text.size(); ++n) {
            std::string_view cut(text.data(), n);  // a view into the middle: no terminator to rely on
            (void)parse::parse_meminfo(cut, "MemAvailable");
            (void)parse::parse_cpuinfo_address_sizes(cut);
            (void)parse::parse_mountinfo(cut);
            (void)parse::parse_proc_cgroup(cut);
            (void)parse::parse_os_release(cut);
            (void)parse::parse_bracketed_choice(cut);
            (void)parse::parse_cgroup_v2_cpu_max(cut);
            (void)parse::parse_cpu_list_count(cut);
            (void)env::json_escape(cut);
        }
    }
    SUCCEED("no crash (run under ASan/UBSan to make this strict)");
}

// ---- formatting ---------------------------------------------------------------------

TEST_CASE("env sizes: format and parse", "[env][format]") {
    CHECK(env::format_bytes(0) == "0 B");
    CHECK(env::format_bytes(4096) == "4 KiB");
    CHECK(env::format_bytes(512ull << 20) == "512 MiB");
    CHECK(env::format_bytes(24684096ull * 1024) == "23.5 GiB");
    CHECK(env::format_bytes(UINT64_MAX) == "16.0 EiB");
    CHECK(env::parse_size("4096").value == 4096);
    CHECK(env::parse_size("512M").value == 512ull << 20);
    CHECK(env::parse_size("8g").value == 8ull << 30);
    CHECK(env::parse_size("1.5GiB").value == 3ull << 29);
    CHECK(env::parse_size("2KB").value == 2048);
    CHECK_FALSE(env::parse_size("").known);
    CHECK_FALSE(env::parse_size("G").known);
    CHECK_FALSE(env::parse_size("12X").known);
    CHECK_FALSE(env::parse_size("99999999999P").known);
}

TEST_CASE("parse_size: every unit, with and without iB/B, any case", "[env][format][parse_size]") {
    using memdiag::detail::parse_size;
    struct good_case {
        const char* text;
        std::uint64_t value;
    };
    const good_case good[] = {
        {"0", 0},           {"7", 7},           {"7B", 7},            {"7b", 7},
        {"3K", 3ull << 10}, {"3k", 3ull << 10}, {"3KiB", 3ull << 10}, {"3kib", 3ull << 10}, {"3KB", 3ull << 10},
        {"3M", 3ull << 20}, {"3mb", 3ull << 20}, {"3MiB", 3ull << 20},
        {"3G", 3ull << 30}, {"3GiB", 3ull << 30}, {"3T", 3ull << 40}, {"3TiB", 3ull << 40},
        {"3P", 3ull << 50}, {"3PiB", 3ull << 50}, {" \t4096\r\n", 4096}, {"0.5K", 512},
        {"1.25M", 5ull << 18}, {"18446744073709551615", ~std::uint64_t{0}}, {"16383P", 16383ull << 50},
    };
    for (const good_case& g : good) {
        INFO(g.text);
        const memdiag::detail::size_parse r = parse_size(g.text);
        CHECK(r.ok);
        CHECK(r.value == g.value);
        CHECK(env::parse_size(g.text).value == g.value);
    }
}

TEST_CASE("parse_size: a fraction of a large unit does not overflow", "[env][format][parse_size]") {
    using memdiag::detail::parse_size;
    // 1.99999 PiB = 2^50 + 99999 * 2^50 / 100000: the old arithmetic multiplied
    // 99999 by 2^50 first (past 64 bits) and gave 1144983910263606.
    const std::uint64_t pib = std::uint64_t{1} << 50;
    const memdiag::detail::size_parse r = parse_size("1.99999P");
    REQUIRE(r.ok);
    CHECK(r.value == pib + 99999 * (pib / 100000) + 99999 * (pib % 100000) / 100000);
    CHECK(r.value > 2250000000000000ull);
    CHECK(r.value < 2 * pib);
    CHECK(env::parse_size("1.99999P").value == r.value);
    CHECK(parse_size("1.999999P").value < 2 * pib);
    CHECK(parse_size("1.5P").value == 3 * (pib / 2));
    CHECK(parse_size("16383.999999P").value > (16383ull << 50));  // just below 2^64: still accepted
    CHECK(parse_size("0.000001T").value == (std::uint64_t{1} << 40) / 1000000);
}

TEST_CASE("parse_size: values past 64 bits are refused, never wrapped", "[env][format][parse_size]") {
    using memdiag::detail::parse_size;
    for (const char* huge : {"18446744073709551616", "99999999999999999999999", "16384P", "16777216T",
                             "17179869184G", "17592186044416M", "18014398509481984K", "99999999999P"}) {
        INFO(huge);
        const memdiag::detail::size_parse r = parse_size(huge);
        CHECK_FALSE(r.ok);
        CHECK(std::string(r.error).find("too large") != std::string::npos);
        CHECK_FALSE(env::parse_size(huge).known);
    }
}

TEST_CASE("parse_size: bad input is refused with a reason that names the problem", "[env][format][parse_size]") {
    using memdiag::detail::parse_size;
    struct bad_case {
        const char* text;
        const char* reason;  // a piece of the reason
    };
    const bad_case bad[] = {
        {"", "empty"},           {"   ", "empty"},          {"-1", "expected a number"}, {"+5", "expected a number"},
        {"K", "expected a number"}, {".5K", "expected a number"}, {"0x10", "unknown unit"}, {"1e9", "unknown unit"},
        {"12X", "unknown unit"}, {"1 M", "unknown unit"},   {"1Mi", "unknown unit"},     {"1KBB", "unknown unit"},
        {"1iB", "unknown unit"}, {"1.", "digits after the point"}, {"1..5K", "digits after the point"},
        {"1.1234567K", "at most 6"}, {"1.5", "fraction of a byte"}, {"1.5B", "fraction of a byte"},
        {"12 parsecs", "unknown unit"},
    };
    for (const bad_case& b : bad) {
        INFO("'" << b.text << "'");
        const memdiag::detail::size_parse r = parse_size(b.text);
        CHECK_FALSE(r.ok);
        CHECK(std::string(r.error).find(b.reason) != std::string::npos);
        const fact<std::uint64_t> f = env::parse_size(b.text);
        CHECK_FALSE(f.known);
        CHECK(f.reason.find(b.reason) != std::string::npos);
    }
    // The caller's syntax: units above G and fractions refused where asked.
    memdiag::detail::size_syntax narrow;
    narrow.max_shift = 30;
    narrow.fractions = false;
    CHECK(parse_size("2G", narrow).ok);
    CHECK(std::string(parse_size("1T", narrow).error).find("B, K, M or G") != std::string::npos);
    CHECK(std::string(parse_size("1.5M", narrow).error).find("fractions") != std::string::npos);
    // env's reason quotes the text (trimmed, printable).
    CHECK(env::parse_size(" 12X ").reason.find("\"12X\"") != std::string::npos);
}

TEST_CASE("format_bytes: compact and one-decimal styles, rounding up a unit", "[env][format][format_bytes]") {
    using memdiag::detail::byte_style;
    using memdiag::detail::format_bytes;
    CHECK(std::string(format_bytes(0).c_str()) == "0 B");
    CHECK(std::string(format_bytes(1023).c_str()) == "1023 B");
    CHECK(std::string(format_bytes(1024).c_str()) == "1 KiB");
    CHECK(std::string(format_bytes(1536).c_str()) == "1.5 KiB");
    CHECK(std::string(format_bytes(1024, byte_style::one_decimal).c_str()) == "1.0 KiB");
    CHECK(std::string(format_bytes(4ull << 20, byte_style::one_decimal).c_str()) == "4.0 MiB");
    CHECK(std::string(format_bytes(3ull << 40).c_str()) == "3 TiB");
    CHECK(std::string(format_bytes(5ull << 50).c_str()) == "5 PiB");
    CHECK(std::string(format_bytes(2ull << 60).c_str()) == "2 EiB");
    CHECK(std::string(format_bytes(~std::uint64_t{0}).c_str()) == "16.0 EiB");
    // 1 MiB - 1 byte is 1023.999 KiB: "1.0 MiB", not "1024.0 KiB".
    CHECK(std::string(format_bytes((1ull << 20) - 1).c_str()) == "1.0 MiB");
    CHECK(std::string(format_bytes((1ull << 30) - 1, byte_style::one_decimal).c_str()) == "1.0 GiB");
    CHECK(format_bytes(1536).size == 7);
    // env::format_bytes is the compact style.
    CHECK(env::format_bytes((1ull << 20) - 1) == "1.0 MiB");
    CHECK(env::format_bytes(1536) == "1.5 KiB");
}

TEST_CASE("parse_size and format_bytes agree: a formatted whole size parses back", "[env][format]") {
    const std::uint64_t values[] = {0, 100, 4096, 512ull << 20, 3ull << 40, 7ull << 50};
    for (std::uint64_t v : values) {
        std::string text = env::format_bytes(v);
        text.erase(std::remove(text.begin(), text.end(), ' '), text.end());  // "4 KiB" -> "4KiB"
        INFO(text);
        CHECK(env::parse_size(text).value == v);
    }
}

TEST_CASE("env JSON strings: escapes and invalid UTF-8", "[env][format]") {
    CHECK(env::json_escape("a\"b\\c") == "a\\\"b\\\\c");
    CHECK(env::json_escape("\n\t\x01") == "\\n\\t\\u0001");
    CHECK(env::json_escape("caf\xC3\xA9") == "caf\xC3\xA9");                    // valid UTF-8 kept
    CHECK(env::json_escape("\xFF") == "\xEF\xBF\xBD");                          // invalid byte replaced
    CHECK(env::json_escape("\xC3") == "\xEF\xBF\xBD");                          // cut sequence
    CHECK(env::json_escape("\xC0\xAF") == "\xEF\xBF\xBD\xEF\xBF\xBD");          // overlong
    CHECK(env::json_escape("\xED\xA0\x80") == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
    CHECK(valid_json("\"" + env::json_escape(std::string("x\0y\x7f\xF4\x90\x80\x80", 8)) + "\""));
}

TEST_CASE("env report output: hostile strings stay valid JSON and one line per item", "[env][format]") {
    env::report r = clean_report();
    r.os = fact<std::string>::of("evil \"os\"\nwith\tcontrol \x01 and \xFF bytes", "/etc/os-release");
    r.cgroup_memory_path = fact<std::string>::of("/sys/fs/cgroup/my memory/\\x", "test");
    r.malloc_implementation = fact<std::string>::unknown("reason with \"quotes\"\n", "dlsym");
    std::vector<env::check> checks = env::run_default_checks(r);
    checks.push_back(env::require_memory(1ull << 40, r));
    std::string json = r.to_json(checks);
    INFO(json);
    CHECK(valid_json(json));
    CHECK(json.find("\"checks\"") != std::string::npos);
    CHECK(json.find("\"worst\": \"failure\"") != std::string::npos);

    std::string text = r.to_text();
    std::vector<env::item> items = r.items();
    std::size_t newlines = 0;
    for (char c : text) newlines += c == '\n';
    CHECK(newlines == items.size());
    CHECK(text.find("os=\"evil \\\"os\\\"?with?control ? and \xFF bytes\"") != std::string::npos);
    CHECK(text.find("malloc=unknown") != std::string::npos);
    CHECK(text.find("unknown: reason with \"quotes\"?") != std::string::npos);

    for (const env::item& i : items) {
        INFO(i.key);
        CHECK_FALSE(i.key.empty());
        if (i.known) CHECK(i.value != "unknown");
        if (!i.known) CHECK_FALSE(i.reason.empty());
    }
}

// ---- effective limit and checks ------------------------------------------------------

TEST_CASE("env effective limit: the smallest limit and its name", "[env][check]") {
    env::report r = clean_report();
    env::effective_limit_info e = r.effective_limit();
    CHECK(e.key == "physical_memory");
    CHECK(e.value.value.bytes == 16ull << 30);

    r.cgroup_v1_memory_limit = fact<limit>::of(limit::of(2ull << 30), "/sys/fs/cgroup/memory/memory.limit_in_bytes");
    e = r.effective_limit();
    CHECK(e.key == "cgroup_v1_memory_limit");
    CHECK(e.value.source == "/sys/fs/cgroup/memory/memory.limit_in_bytes");

    r.rlimit_as = fact<limit>::of(limit::of(1ull << 30), "getrlimit(RLIMIT_AS)");
    e = r.effective_limit();
    CHECK(e.key == "rlimit_as");
    CHECK(e.value.value.bytes == 1ull << 30);

    r.show_rlimits = false;  // an OS without rlimits ignores them
    CHECK(r.effective_limit().key == "cgroup_v1_memory_limit");

    std::vector<env::item> items = r.items();
    const env::item* eff = find(items, "effective_limit");
    REQUIRE(eff);
    CHECK(eff->bytes == 2ull << 30);
    CHECK(eff->detail.find("cgroup_v1_memory_limit") != std::string::npos);

    env::report empty;
    CHECK_FALSE(empty.effective_limit().value.known);
}

TEST_CASE("env require_memory: fails below the limit, names it and says what to do", "[env][check]") {
    env::report r = clean_report();
    CHECK(env::require_memory(8ull << 30, r).level == env::severity::ok);
    env::check tight = env::require_memory(14ull << 30, r);  // under RAM, over what is available
    CHECK(tight.level == env::severity::warning);

    r.rlimit_as = fact<limit>::of(limit::of(512ull << 20), "getrlimit(RLIMIT_AS)");
    env::check c = env::require_memory(1ull << 30, r);
    CHECK(c.level == env::severity::failure);
    CHECK_FALSE(c.passed());
    CHECK(c.message.find("512 MiB") != std::string::npos);
    CHECK(c.message.find("rlimit_as") != std::string::npos);
    CHECK(c.advice.find("ulimit -v") != std::string::npos);
    CHECK(c.to_text().rfind("FAIL require_memory:", 0) == 0);

    r.rlimit_as = fact<limit>::of(limit::none(), "getrlimit(RLIMIT_AS)");
    r.cgroup_v2_memory_max = fact<limit>::of(limit::of(256ull << 20), "/sys/fs/cgroup/app/memory.max");
    c = env::require_memory(1ull << 30, r);
    CHECK(c.level == env::severity::failure);
    CHECK(c.advice.find("container memory limit") != std::string::npos);

    env::report unknown;
    CHECK(env::require_memory(1, unknown).level == env::severity::warning);
}

TEST_CASE("env require_address_space: RLIMIT_AS and the pointer width", "[env][check]") {
    env::report r = clean_report();
    CHECK(env::require_address_space(1ull << 40, r).level == env::severity::ok);
    CHECK(env::require_address_space(1ull << 48, r).level == env::severity::failure);

    r.rlimit_as = fact<limit>::of(limit::of(1ull << 30), "getrlimit(RLIMIT_AS)");
    env::check c = env::require_address_space(2ull << 30, r);
    CHECK(c.level == env::severity::failure);
    CHECK(c.advice.find("ulimit -v") != std::string::npos);

    env::report r32 = clean_report();
    r32.arch = fact<std::string>::of("i386", "test");
    r32.pointer_bits = fact<std::uint64_t>::of(32, "test");
    r32.address_space = fact<std::uint64_t>::of(4ull << 30, "32-bit pointers");
    c = env::require_address_space(8ull << 30, r32);
    CHECK(c.level == env::severity::failure);
    CHECK(c.advice.find("64-bit build") != std::string::npos);
}

TEST_CASE("env 32-bit checks: require fails, warn warns, 64-bit passes", "[env][check]") {
    env::report r = clean_report();
    CHECK(env::require_64bit(r).level == env::severity::ok);
    CHECK(env::warn_32bit(r).level == env::severity::ok);
    r.arch = fact<std::string>::of("i386", "test");
    r.pointer_bits = fact<std::uint64_t>::of(32, "test");
    env::check req = env::require_64bit(r);
    CHECK(req.level == env::severity::failure);
    CHECK(req.advice.find("-m32") != std::string::npos);
    env::check warn = env::warn_32bit(r);
    CHECK(warn.level == env::severity::warning);
    CHECK(warn.passed());
    CHECK(warn.advice.find("MEMDIAG_STATIC_REQUIRE_64BIT") != std::string::npos);
}

TEST_CASE("env default checks: rlimits, container limit, overcommit", "[env][check]") {
    env::report r = clean_report();
    std::vector<env::check> all = env::run_default_checks(r);
    CHECK(all.size() == 4);
    CHECK(env::worst(all) == env::severity::ok);

    r.rlimit_data = fact<limit>::of(limit::of(1ull << 30), "getrlimit(RLIMIT_DATA)");
    env::check rl = env::check_rlimits(r);
    CHECK(rl.level == env::severity::warning);
    CHECK(rl.advice.find("ulimit -d") != std::string::npos);
    r.rlimit_data = fact<limit>::of(limit::of(32ull << 30), "getrlimit(RLIMIT_DATA)");  // above RAM: harmless
    CHECK(env::check_rlimits(r).level == env::severity::ok);

    r.cgroup_v1_memory_limit = fact<limit>::of(limit::of(1ull << 30), "v1");
    env::check ct = env::check_container_limit(r);
    CHECK(ct.level == env::severity::warning);
    CHECK(ct.message.find("cgroup_v1_memory_limit") != std::string::npos);
    r.cgroup_v1_memory_limit = fact<limit>::of(limit::of(64ull << 30), "v1");  // above RAM: no effect
    CHECK(env::check_container_limit(r).level == env::severity::ok);

    r.overcommit_memory = fact<int>::of(2, "/proc/sys/vm/overcommit_memory");
    r.overcommit_ratio = fact<std::uint64_t>::of(50, "/proc/sys/vm/overcommit_ratio");
    env::check oc = env::check_overcommit(r);
    CHECK(oc.level == env::severity::warning);
    CHECK(oc.message.find("50%") != std::string::npos);
    CHECK(oc.advice.find("overcommit_memory=0") != std::string::npos);
    r.overcommit_memory = fact<int>::of(1, "test");
    CHECK(env::check_overcommit(r).level == env::severity::ok);
}

// ---- the live report, cross-checked against independent sources ----------------------

TEST_CASE("env collect: the live report agrees with independent sources", "[env][live]") {
    env::report r = env::collect();
    INFO(r.to_text());
    REQUIRE(r.pointer_bits.known);
    CHECK(r.pointer_bits.value == sizeof(void*) * 8);
    CHECK(valid_json(r.to_json(env::run_default_checks(r))));

    for (const env::item& i : r.items()) {
        INFO(i.key);
        if (i.known) CHECK_FALSE(i.source.empty());
        if (!i.known) CHECK_FALSE(i.reason.empty());
    }

#if MEMDIAG_POINTER_BITS == 64
    MEMDIAG_STATIC_REQUIRE_64BIT();  // compiles only here
    CHECK(env::require_64bit(r).level == env::severity::ok);
    CHECK(env::warn_32bit(r).level == env::severity::ok);
#else
    CHECK(env::warn_32bit(r).level == env::severity::warning);
    CHECK(env::require_64bit(r).level == env::severity::failure);
    REQUIRE(r.address_space.known);
    CHECK(r.address_space.value <= (4ull << 30));
#endif

    env::effective_limit_info e = r.effective_limit();
    if (r.physical_memory.known) {
        REQUIRE(e.value.known);
        CHECK(e.value.value.bytes <= r.physical_memory.value);
    }

#if MEMDIAG_OS_LINUX
    // Page size: the auxiliary vector is a different source from sysconf.
    REQUIRE(r.page_size.known);
    CHECK(r.page_size.value == ::getauxval(AT_PAGESZ));

    // Physical memory against /proc/meminfo MemTotal (the kernel's count).
    fact<std::string> meminfo = memdiag::detail::os::read_file("/proc/meminfo");
    if (meminfo.known && r.physical_memory.known) {
        fact<std::uint64_t> total = parse::parse_meminfo(meminfo.value, "MemTotal");
        REQUIRE(total.known);
        CHECK(r.physical_memory.value / 1024 == total.value / 1024);
    }

    // RLIMIT_AS against /proc/self/limits, the kernel's own rendering.
    fact<std::string> limits = memdiag::detail::os::read_file("/proc/self/limits");
    if (limits.known) {
        std::size_t at = limits.value.find("Max address space");
        REQUIRE(at != std::string::npos);
        std::vector<std::string_view> f = parse::fields(parse::lines(std::string_view(limits.value).substr(at))[0]);
        REQUIRE(f.size() >= 4);
        REQUIRE(r.rlimit_as.known);
        if (f[3] == "unlimited")
            CHECK(r.rlimit_as.value.unlimited);
        else
            CHECK(r.rlimit_as.value.bytes == parse::parse_u64(f[3]).value);
    }

    // A process in a v1 memory cgroup must get a known v1 limit.
    fact<std::string> cg = memdiag::detail::os::read_file("/proc/self/cgroup");
    if (cg.known && cg.value.find(":memory:") != std::string::npos) CHECK(r.cgroup_v1_memory_limit.known);
#endif
}
