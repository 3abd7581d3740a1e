// tests/test_pprof.cpp - the snapshot file formats: CRC-32 (every implementation),
// gzip/deflate (checked by the real gzip), the protobuf wire encoder, Go's
// scaling, the text report, collapsed stacks and safe file writing.
// tests/pprof_check.sh checks the profiles themselves with `go tool pprof`.
#include <memdiag/detail/arch/crc32.hpp>
#include <memdiag/detail/deflate.hpp>
#include <memdiag/detail/os/atomic_file.hpp>
#include <memdiag/detail/protobuf.hpp>
#include <memdiag/result.hpp>
#include <memdiag/snapshot/pprof.hpp>
#include <memdiag/snapshot/report.hpp>

#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "catch.hpp"

namespace md = memdiag;
namespace mdd = memdiag::detail;
namespace snap = memdiag::snapshot;

namespace {

// ---- helpers -------------------------------------------------------------------

std::vector<unsigned char> random_bytes(std::size_t n, std::uint64_t seed) {
    std::vector<unsigned char> v(n);
    std::uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (auto& b : v) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b = static_cast<unsigned char>(x >> 24);
    }
    return v;
}

struct temp_dir {
    std::string path;
    temp_dir() {
        char tmpl[] = "/tmp/memdiag-pprof-test-XXXXXX";
        const char* p = mkdtemp(tmpl);
        REQUIRE(p != nullptr);
        path = p;
    }
    ~temp_dir() {
        std::string cmd = "chmod -R u+rwx '" + path + "' 2>/dev/null; rm -rf '" + path + "'";
        (void)std::system(cmd.c_str());
    }
    std::string file(const char* name) const { return path + "/" + name; }
    /// Names in the directory (without . and ..).
    std::vector<std::string> entries() const {
        std::vector<std::string> names;
        DIR* d = opendir(path.c_str());
        if (d == nullptr) return names;
        while (dirent* e = readdir(d)) {
            std::string n = e->d_name;
            if (n != "." && n != "..") names.push_back(n);
        }
        closedir(d);
        return names;
    }
};

bool exists(const std::string& p) {
    struct stat st;
    return lstat(p.c_str(), &st) == 0;
}

std::string read_all(const std::string& path) {
    std::string s;
    FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) return s;
    char buf[65536];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
    std::fclose(f);
    return s;
}

void write_raw(const std::string& path, const void* data, std::size_t n) {
    FILE* f = std::fopen(path.c_str(), "wb");
    REQUIRE(f != nullptr);
    REQUIRE(std::fwrite(data, 1, n, f) == n);
    std::fclose(f);
}

bool have_command(const char* name) {
    std::string cmd = std::string("command -v ") + name + " >/dev/null 2>&1";
    return std::system(cmd.c_str()) == 0;
}

/// Decompresses a gzip file with the system's gzip; false if gzip rejects it.
bool gunzip_with_gzip(const std::string& gz, std::string& out) {
    std::string plain = gz + ".out";
    std::string cmd = "gzip -dc '" + gz + "' > '" + plain + "' 2>/dev/null";
    if (std::system(cmd.c_str()) != 0) return false;
    out = read_all(plain);
    std::remove(plain.c_str());
    return true;
}

std::string hex(const mdd::internal_vector<unsigned char>& v) {
    std::string s;
    char b[4];
    for (unsigned char c : v) {
        std::snprintf(b, sizeof b, "%02x", c);
        s += b;
    }
    return s;
}

// ---- test doubles for detail::symbols.hpp ----------------------------------------

struct fake_module {
    std::uintptr_t start, limit, file_offset;
    std::string path, build_id;
};

struct fake_symbolizer {
    struct entry {
        std::uintptr_t lo, hi;
        const char* name;
    };
    std::vector<entry> entries;
    int calls = 0;
    mdd::internal_string function_name(std::uintptr_t pc) {
        ++calls;
        for (const entry& e : entries)
            if (pc >= e.lo && pc < e.hi) return mdd::internal_string(e.name);
        return mdd::internal_string();
    }
};

}  // namespace

// ---- CRC-32 ------------------------------------------------------------------------

using crc_fn = std::uint32_t (*)(std::uint32_t, const void*, std::size_t);

static std::vector<std::pair<const char*, crc_fn>> crc_implementations() {
    std::vector<std::pair<const char*, crc_fn>> v;
    v.emplace_back("bytewise", &mdd::crc32_bytewise);
    v.emplace_back("slicing8", &mdd::crc32_slicing8);
#if MEMDIAG_CRC32_ARMV8
    if (mdd::crc32_armv8_available()) v.emplace_back("armv8", &mdd::crc32_armv8);
#endif
    v.emplace_back("dispatch", &mdd::crc32);
    return v;
}

TEST_CASE("crc32: known vectors for every implementation", "[crc32]") {
    INFO("dispatch uses " << mdd::crc32_implementation());
    for (auto& impl : crc_implementations()) {
        INFO("implementation " << impl.first);
        CHECK(impl.second(0, "123456789", 9) == 0xCBF43926u);
        CHECK(impl.second(0, "", 0) == 0u);
        CHECK(impl.second(0, nullptr, 0) == 0u);
        CHECK(impl.second(0, "a", 1) == 0xE8B7BE43u);
        CHECK(impl.second(0, "The quick brown fox jumps over the lazy dog", 43) == 0x414FA339u);
        // Incremental use equals one pass.
        CHECK(impl.second(impl.second(0, "1234", 4), "56789", 5) == 0xCBF43926u);
        std::vector<unsigned char> zeros(32, 0);
        CHECK(impl.second(0, zeros.data(), zeros.size()) == 0x190A55ADu);
    }
}

TEST_CASE("crc32: every implementation equals bytewise across alignments and lengths", "[crc32]") {
    std::vector<unsigned char> buf = random_bytes(70000, 7);
    auto impls = crc_implementations();
    for (std::size_t align = 0; align < 16; ++align) {
        for (std::size_t len : {0u, 1u, 2u, 3u, 7u, 8u, 9u, 15u, 16u, 17u, 31u, 63u, 64u, 65u, 255u, 1000u, 4097u, 65536u}) {
            std::uint32_t want = mdd::crc32_bytewise(0, buf.data() + align, len);
            for (auto& impl : impls) {
                INFO(impl.first << " align " << align << " len " << len);
                REQUIRE(impl.second(0, buf.data() + align, len) == want);
                // Split at an odd point to exercise head/tail handling twice.
                std::size_t cut = len / 3;
                REQUIRE(impl.second(impl.second(0, buf.data() + align, cut), buf.data() + align + cut, len - cut) ==
                        want);
            }
        }
    }
}

// ---- protobuf wire format -------------------------------------------------------------

TEST_CASE("protobuf: varint edge cases", "[protobuf]") {
    struct vec {
        std::uint64_t v;
        const char* hex;
    };
    const vec cases[] = {
        {0, "00"},
        {1, "01"},
        {127, "7f"},
        {128, "8001"},
        {300, "ac02"},
        {16383, "ff7f"},
        {16384, "808001"},
        {0xFFFFFFFFu, "ffffffff0f"},
        {1ull << 63, "80808080808080808001"},
        {~0ull, "ffffffffffffffffff01"},
    };
    for (const vec& c : cases) {
        mdd::internal_vector<unsigned char> out;
        {
            mdd::proto_writer w(out);
            w.varint(c.v);
            CHECK(w.size() == mdd::varint_size(c.v));
        }
        INFO("value " << c.v);
        CHECK(hex(out) == c.hex);
        CHECK(mdd::varint_size(c.v) == out.size());
    }
    // int64 is not zigzag: -1 takes ten bytes.
    mdd::internal_vector<unsigned char> out;
    {
        mdd::proto_writer w(out);
        w.field_int(9, -1);
    }
    CHECK(hex(out) == "48ffffffffffffffffff01");
}

/// Hex of what one writer produces.
template <class Fill>
static std::string encode(Fill fill) {
    mdd::internal_vector<unsigned char> out;
    {
        mdd::proto_writer w(out);
        fill(w);
    }
    return hex(out);
}

TEST_CASE("protobuf: fields, strings, packed repeated and sub-messages", "[protobuf]") {
    // The protobuf documentation's examples.
    CHECK(encode([](mdd::proto_writer& w) { w.field_uint(1, 150); }) == "089601");
    CHECK(encode([](mdd::proto_writer& w) { w.field_bytes(2, "testing", 7); }) == "120774657374696e67");
    const std::uint64_t packed[] = {3, 270, 86942};
    CHECK(encode([&](mdd::proto_writer& w) { w.field_packed(4, packed, 3); }) == "2206038e029ea705");
    // Empty packed fields and zero optional fields are omitted; bools are not.
    CHECK(encode([&](mdd::proto_writer& w) {
              w.field_packed(4, packed, 0);
              w.field_uint_nonzero(5, 0);
              w.field_bool(7, false);
              w.field_uint(100, 1);  // field numbers above 15 take a two-byte key
          }) == "3800a00601");
    mdd::internal_vector<unsigned char> scratch;
    CHECK(encode([&](mdd::proto_writer& w) {
              w.message(3, scratch, [](mdd::proto_writer& m) { m.field_uint(1, 150); });
          }) == "1a03089601");
    // Appends after existing content; flush trims the look-ahead growth.
    mdd::internal_vector<unsigned char> out{0xAB};
    mdd::proto_writer w(out);
    w.field_uint(1, 1);
    w.flush();
    CHECK(hex(out) == "ab0801");
    // Large payloads cross many growth steps.
    std::vector<std::uint64_t> many(100000, 300);
    std::string big = encode([&](mdd::proto_writer& m) { m.field_packed(1, many.data(), many.size()); });
    CHECK(big.size() == 2 * (1 + 3 + 200000));
    CHECK(big.substr(0, 8) == "0ac09a0c");
    CHECK(big.substr(big.size() - 4) == "ac02");
}

// ---- deflate and gzip -----------------------------------------------------------------------

static std::vector<std::pair<std::string, std::vector<unsigned char>>> deflate_inputs() {
    std::vector<std::pair<std::string, std::vector<unsigned char>>> v;
    v.emplace_back("empty", std::vector<unsigned char>());
    v.emplace_back("one byte", std::vector<unsigned char>{'x'});
    v.emplace_back("abc", std::vector<unsigned char>{'a', 'b', 'c'});
    v.emplace_back("zeros 1 MiB", std::vector<unsigned char>(1 << 20, 0));
    std::vector<unsigned char> text;
    while (text.size() < 300000) {
        const char* line = "alloc_objects alloc_space inuse_objects inuse_space memdiag::snapshot 0x7f1234\n";
        text.insert(text.end(), line, line + std::strlen(line));
        std::string n = std::to_string(text.size() * 2654435761u % 100000);
        text.insert(text.end(), n.begin(), n.end());
    }
    v.emplace_back("text", text);
    v.emplace_back("random 200 KiB", random_bytes(200000, 3));
    v.emplace_back("random 65535", random_bytes(65535, 4));
    v.emplace_back("random 65536", random_bytes(65536, 5));
    // Repeats at distances near the 32 KiB window edge.
    std::vector<unsigned char> far = random_bytes(32768, 6);
    std::vector<unsigned char> copy(far);
    far.insert(far.end(), copy.begin(), copy.end());
    far.insert(far.end(), copy.begin() + 1, copy.end());
    v.emplace_back("window edge", far);
    // Small-alphabet data: many short matches of every length and distance.
    std::vector<unsigned char> small = random_bytes(400000, 8);
    for (auto& b : small) b = static_cast<unsigned char>('a' + (b % 4));
    v.emplace_back("four letters", small);
    return v;
}

TEST_CASE("gzip: the system gzip decompresses what we write", "[gzip]") {
    if (!have_command("gzip")) {
        WARN("gzip not installed: skipping the real-decoder round trip");
        return;
    }
    temp_dir dir;
    for (auto level : {mdd::gzip_level::stored, mdd::gzip_level::compressed}) {
        for (auto& in : deflate_inputs()) {
            INFO(in.first << (level == mdd::gzip_level::stored ? " stored" : " compressed"));
            mdd::internal_vector<unsigned char> gz;
            mdd::gzip_compress(in.second.data(), in.second.size(), gz, level);
            REQUIRE(gz.size() >= 18);
            CHECK(gz[0] == 0x1f);
            CHECK(gz[1] == 0x8b);
            std::string path = dir.file("t.gz");
            write_raw(path, gz.data(), gz.size());
            std::string back;
            REQUIRE(gunzip_with_gzip(path, back));
            REQUIRE(back.size() == in.second.size());
            CHECK(back == std::string(in.second.begin(), in.second.end()));
        }
    }
}

TEST_CASE("gzip: compression pays on repetitive data and falls back on random data", "[gzip]") {
    std::vector<unsigned char> zeros(1 << 20, 0);
    mdd::internal_vector<unsigned char> gz;
    mdd::gzip_compress(zeros.data(), zeros.size(), gz);
    CHECK(gz.size() < zeros.size() / 100);

    std::vector<unsigned char> rnd = random_bytes(100000, 9);
    mdd::internal_vector<unsigned char> raw;
    CHECK_FALSE(mdd::deflate_fixed(rnd.data(), rnd.size(), raw));
    CHECK(raw.empty());
    gz.clear();
    mdd::gzip_compress(rnd.data(), rnd.size(), gz);
    // Stored: 10 header + 8 trailer + 5 per 65535-byte block.
    CHECK(gz.size() == rnd.size() + 18 + 5 * 2);
    // The trailer carries CRC-32 and ISIZE, little-endian.
    std::uint32_t crc = mdd::crc32(0, rnd.data(), rnd.size());
    CHECK(gz[gz.size() - 8] == (crc & 0xFF));
    CHECK(gz[gz.size() - 5] == (crc >> 24));
    CHECK(gz[gz.size() - 4] == (rnd.size() & 0xFF));
}

// ---- scaling and encoding -------------------------------------------------------------------

TEST_CASE("scale_heap_sample: Go's formula and worked examples", "[pprof]") {
    auto a = snap::scale_heap_sample(4, 4 << 20, 524288);
    CHECK(a.objects == 4);
    CHECK(a.bytes == 4850786);
    auto b = snap::scale_heap_sample(16, 64 << 10, 524288);
    CHECK(b.objects == 2056);
    CHECK(b.bytes == 8421418);
    auto exact = snap::scale_heap_sample(7, 700, 1);
    CHECK(exact.objects == 7);
    CHECK(exact.bytes == 700);
    auto zero = snap::scale_heap_sample(0, 100, 524288);
    CHECK(zero.objects == 0);
    CHECK(zero.bytes == 0);
}

namespace {
// Three sites: main -> a -> leaf_a, main -> b, and one with an unknown frame.
const std::uintptr_t stack_a[] = {0x1010, 0x1110, 0x1210};
const std::uintptr_t stack_b[] = {0x1120, 0x1220};
const std::uintptr_t stack_c[] = {0x5001, 0x1230};
const snap::heap_sample three_samples[] = {
    {stack_a, 3, 4, 4 << 20, 4, 4 << 20},
    {stack_b, 2, 16, 64 << 10, 16, 64 << 10},
    {stack_c, 2, 10, 1000, 0, 0},
};
std::vector<fake_module> fake_modules() {
    return {{0x1000, 0x2000, 0x1000, "/opt/app/bin/app", "0123456789abcdef"},
            {0x5000, 0x6000, 0, "/lib/libfoo.so", ""}};
}
fake_symbolizer fake_names() {
    fake_symbolizer s;
    s.entries = {{0x1000, 0x1100, "leaf_a"}, {0x1100, 0x1200, "mid;func\nname 42"}, {0x1200, 0x1300, "main"}};
    return s;
}
}  // namespace

TEST_CASE("encode_pprof: gzip of a profile.proto carrying names, mappings and build ids", "[pprof]") {
    snap::heap_view view{three_samples, 3, 1, 1700000000000000000};
    auto mods = fake_modules();
    fake_symbolizer names = fake_names();
    mdd::internal_vector<unsigned char> gz;
    snap::encode_pprof_with(view, gz, mods, &names);
    REQUIRE(gz.size() > 18);
    CHECK(gz[0] == 0x1f);
    CHECK(gz[1] == 0x8b);
    // One symbolizer call per distinct address (7 frames, all distinct).
    CHECK(names.calls == 7);

    mdd::internal_vector<unsigned char> raw;
    snap::encode_profile_proto(view, raw, mods, &names);
    std::string proto(raw.begin(), raw.end());
    for (const char* s : {"alloc_objects", "alloc_space", "inuse_objects", "inuse_space", "space", "count",
                          "leaf_a", "main", "/opt/app/bin/app", "0123456789abcdef", "/lib/libfoo.so"})
        CHECK(proto.find(s) != std::string::npos);

    if (have_command("gzip")) {
        temp_dir dir;
        write_raw(dir.file("p.pb.gz"), gz.data(), gz.size());
        std::string back;
        REQUIRE(gunzip_with_gzip(dir.file("p.pb.gz"), back));
        CHECK(back == proto);
    }
}

TEST_CASE("encode_pprof: dropped samples become a profile comment and the report's first line", "[pprof]") {
    auto mods = fake_modules();
    fake_symbolizer names = fake_names();
    const std::string notice = "memdiag: 3103633 samples dropped, tables full";
    snap::heap_view dropped{three_samples, 3, 1, 0, 3103633};
    mdd::internal_vector<unsigned char> raw;
    snap::encode_profile_proto(dropped, raw, mods, &names);
    const std::string proto(raw.begin(), raw.end());
    const std::size_t at = proto.find(notice);
    REQUIRE(at != std::string::npos);  // in the string table
    // It is the table's last string, and field 13 (comment, varint: tag 0x68)
    // follows the table, holding that string's index.
    const std::size_t end = at + snap::dropped_notice(3103633).size();
    REQUIRE(end + 1 < proto.size());
    CHECK(static_cast<unsigned char>(proto[end]) == 0x68);
    CHECK(static_cast<unsigned char>(proto[end + 1]) != 0);
    const auto report = snap::text_report_with(dropped, 5, mods, &names);
    CHECK(std::string(report.data(), report.size()).rfind(notice, 0) == 0);

    snap::heap_view clean{three_samples, 3, 1, 0};
    raw.clear();
    snap::encode_profile_proto(clean, raw, mods, &names);
    CHECK(std::string(raw.begin(), raw.end()).find("samples dropped") == std::string::npos);
    const auto clean_report = snap::text_report_with(clean, 5, mods, &names);
    CHECK(std::string(clean_report.data(), clean_report.size()).find("samples dropped") == std::string::npos);
}

TEST_CASE("encode_pprof: the real module list and symbolizer", "[pprof]") {
    // Stacks made of addresses inside this test's functions, named in-process.
    std::uintptr_t here = reinterpret_cast<std::uintptr_t>(&random_bytes) + 5;
    std::uintptr_t stack[] = {here, here + 1};
    snap::heap_sample s{stack, 2, 1, 64, 1, 64};
    snap::heap_view view{&s, 1, 1, 1};
    mdd::module_list mods = mdd::list_loaded_modules();
    REQUIRE_FALSE(mods.empty());
    mdd::symbolizer names;
    mdd::internal_vector<unsigned char> gz;
    snap::encode_pprof(view, gz, mods, &names);
    CHECK(gz.size() > 100);
    mdd::internal_vector<unsigned char> raw;
    snap::encode_profile_proto(view, raw, mods, &names);
    std::string proto(raw.begin(), raw.end());
    CHECK(proto.find("random_bytes") != std::string::npos);
}

// ---- text report and collapsed stacks -------------------------------------------------------

namespace {
/// The text report of view over the fake modules and names.
std::string fake_report(const snap::heap_view& view, std::size_t top_n) {
    auto mods = fake_modules();
    fake_symbolizer names = fake_names();
    return snap::text_report_with(view, top_n, mods, &names).c_str();
}
}  // namespace

TEST_CASE("text_report: top sites by in-use and allocated bytes with names", "[report]") {
    snap::heap_view view{three_samples, 3, 1, 0};
    const std::string s = fake_report(view, 10);
    INFO(s);
    CHECK(s.find("3 allocation sites") != std::string::npos);
    CHECK(s.find("4259840 B") != std::string::npos);  // 4 MiB + 64 KiB in use
    CHECK(s.find("top 2 of 2 sites by in-use bytes") != std::string::npos);
    CHECK(s.find("top 3 of 3 sites by allocated bytes") != std::string::npos);
    CHECK(s.find("leaf_a") != std::string::npos);
    CHECK(s.find("       libfoo.so+0x0\n") != std::string::npos);  // unnamed frame: module + file offset
    CHECK(s.find("mid;func name 42\n") != std::string::npos);  // one line per frame, whatever the name
    // The largest site comes first.
    CHECK(s.find("4.0 MiB (4194304 B)") < s.find("64.0 KiB (65536 B)"));

    CHECK(fake_report(view, 1).find("top 1 of 2 sites by in-use bytes") != std::string::npos);
}

namespace {
// The three samples and a fourth whose stack differs from the first only in
// return addresses inside the same functions: it reads the same once named.
const std::uintptr_t stack_a2[] = {0x1020, 0x1110, 0x1210};
const snap::heap_sample four_samples[] = {three_samples[0], three_samples[1], three_samples[2],
                                          {stack_a2, 3, 1, 100, 1, 100}};
}  // namespace

TEST_CASE("text_report: stacks that read the same once named are one site (an unrolled loop's copies)", "[report]") {
    snap::heap_view view{four_samples, 4, 1, 0};
    const std::string s = fake_report(view, 10);
    INFO(s);
    CHECK(s.find("3 allocation sites (4 distinct stacks of return addresses)") != std::string::npos);
    CHECK(s.find("top 2 of 2 sites by in-use bytes") != std::string::npos);
    CHECK(s.find("top 3 of 3 sites by allocated bytes") != std::string::npos);
    CHECK(s.find("4.0 MiB (4194404 B)") != std::string::npos);  // 4 MiB + 100 B: one site, summed
    CHECK(s.find("5 objects in use") != std::string::npos);
    CHECK(s.find("4194304 B") == std::string::npos);  // never shown apart
}

TEST_CASE("collapsed_stacks: root first, clean names, integer in-use counts", "[report]") {
    snap::heap_view view{four_samples, 4, 1, 0};
    auto mods = fake_modules();
    fake_symbolizer names = fake_names();
    mdd::internal_string c = snap::collapsed_stacks_with(view, mods, &names);
    std::string s(c.c_str());
    CHECK(s == "main;mid:func name_42 65536\n"
               "main;mid:func name_42;leaf_a 4194404\n");

    // Sampled: counts are Go-scaled in-use bytes.
    snap::heap_view sampled{three_samples, 2, 524288, 0};
    mdd::internal_string cs = snap::collapsed_stacks_with(sampled, mods, &names);
    CHECK(std::string(cs.c_str()) == "main;mid:func name_42 8421418\nmain;mid:func name_42;leaf_a 4850786\n");
}

// ---- safe file writing ----------------------------------------------------------------------

TEST_CASE("write_text_file: writes 0600 files atomically and replaces old content", "[file]") {
    temp_dir dir;
    mode_t old_mask = umask(022);
    std::string p = dir.file("out.txt");
    md::result r = snap::write_text_file(p.c_str(), "hello\n", 6);
    umask(old_mask);
    REQUIRE(r.ok());
    CHECK(bool(r));
    CHECK(std::string(r.message()).empty());
    CHECK(read_all(p) == "hello\n");
    struct stat st;
    REQUIRE(stat(p.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600);

    REQUIRE(snap::write_text_file(p.c_str(), "bye", 3).ok());
    CHECK(read_all(p) == "bye");
    REQUIRE(snap::write_text_file(p.c_str(), "", 0).ok());
    CHECK(read_all(p).empty());
    CHECK(dir.entries() == std::vector<std::string>{"out.txt"});

    // A relative path writes in the current directory.
    char cwd[4096];
    REQUIRE(getcwd(cwd, sizeof cwd) != nullptr);
    REQUIRE(chdir(dir.path.c_str()) == 0);
    md::result rel = snap::write_text_file("rel.txt", "x", 1);
    REQUIRE(chdir(cwd) == 0);
    CHECK(rel.ok());
    CHECK(read_all(dir.file("rel.txt")) == "x");
}

TEST_CASE("write_text_file: failures give a message and leave no file behind", "[file]") {
    temp_dir dir;
    auto only = [&](std::vector<std::string> want) { CHECK(dir.entries() == want); };

    SECTION("missing directory") {
        std::string p = dir.file("no/such/dir/out.txt");
        md::result r = snap::write_text_file(p.c_str(), "x", 1);
        CHECK_FALSE(r.ok());
        CHECK_FALSE(bool(r));
        CHECK(std::string(r.message()).find("No such file or directory") != std::string::npos);
        CHECK(std::string(r.message()).find(p) != std::string::npos);
        only({});
    }
    SECTION("target is a symlink") {
        std::string victim = dir.file("victim");
        write_raw(victim, "keep", 4);
        std::string link = dir.file("link");
        REQUIRE(symlink(victim.c_str(), link.c_str()) == 0);
        md::result r = snap::write_text_file(link.c_str(), "evil", 4);
        CHECK_FALSE(r.ok());
        CHECK(std::string(r.message()).find("symbolic link") != std::string::npos);
        CHECK(read_all(victim) == "keep");
        struct stat st;
        REQUIRE(lstat(link.c_str(), &st) == 0);
        CHECK(S_ISLNK(st.st_mode));
        std::vector<std::string> e = dir.entries();
        std::sort(e.begin(), e.end());
        CHECK(e == std::vector<std::string>{"link", "victim"});
    }
    SECTION("dangling symlink") {
        std::string link = dir.file("dangling");
        REQUIRE(symlink(dir.file("nowhere").c_str(), link.c_str()) == 0);
        CHECK_FALSE(snap::write_text_file(link.c_str(), "x", 1).ok());
        CHECK_FALSE(exists(dir.file("nowhere")));
        only({"dangling"});
    }
    SECTION("target is a directory") {
        std::string sub = dir.file("sub");
        REQUIRE(mkdir(sub.c_str(), 0700) == 0);
        md::result r = snap::write_text_file(sub.c_str(), "x", 1);
        CHECK_FALSE(r.ok());
        CHECK(std::string(r.message()).find("directory") != std::string::npos);
        md::result r2 = snap::write_text_file((sub + "/").c_str(), "x", 1);
        CHECK_FALSE(r2.ok());
        only({"sub"});
    }
    SECTION("/dev/full") {
        md::result r = snap::write_text_file("/dev/full", "x", 1);
        CHECK_FALSE(r.ok());
        CHECK(std::string(r.message()).find("/dev/full") != std::string::npos);
        struct stat st;
        REQUIRE(stat("/dev/full", &st) == 0);
        CHECK(S_ISCHR(st.st_mode));  // the device is still there, not replaced
        DIR* d = opendir("/dev");
        REQUIRE(d != nullptr);
        while (dirent* e = readdir(d)) CHECK(std::string(e->d_name).find(".full.") != 0);
        closedir(d);
    }
    SECTION("write error mid-file (file size limit)") {
        // RLIMIT_FSIZE turns the write into EFBIG: the temporary file must go.
        struct rlimit old;
        REQUIRE(getrlimit(RLIMIT_FSIZE, &old) == 0);
        void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
        struct rlimit small = old;
        small.rlim_cur = 1000;
        REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
        std::vector<unsigned char> big = random_bytes(5000, 1);
        std::string p = dir.file("big.bin");
        md::result r = snap::write_text_file(p.c_str(), reinterpret_cast<const char*>(big.data()), big.size());
        setrlimit(RLIMIT_FSIZE, &old);
        signal(SIGXFSZ, old_handler);
        CHECK_FALSE(r.ok());
        CHECK(std::string(r.message()).find("big.bin") != std::string::npos);
        only({});
    }
    SECTION("unwritable directory") {
        std::string ro = dir.file("ro");
        REQUIRE(mkdir(ro.c_str(), 0500) == 0);
        std::string p = ro + "/out.txt";
        if (geteuid() == 0) {
            // Root ignores directory permissions: check as an unprivileged user.
            REQUIRE(chmod(dir.path.c_str(), 0755) == 0);
            pid_t pid = fork();
            REQUIRE(pid >= 0);
            if (pid == 0) {
                if (setgid(65534) != 0 || setuid(65534) != 0) _exit(3);
                md::result r = snap::write_text_file(p.c_str(), "x", 1);
                bool says = std::strstr(r.message(), "Permission denied") != nullptr;
                _exit(r.ok() ? 1 : says ? 0 : 2);
            }
            int status = 0;
            REQUIRE(waitpid(pid, &status, 0) == pid);
            REQUIRE(WIFEXITED(status));
            CHECK(WEXITSTATUS(status) == 0);
        } else {
            md::result r = snap::write_text_file(p.c_str(), "x", 1);
            CHECK_FALSE(r.ok());
            CHECK(std::string(r.message()).find("Permission denied") != std::string::npos);
        }
        CHECK(dir.entries() == std::vector<std::string>{"ro"});
        DIR* d = opendir(ro.c_str());
        REQUIRE(d != nullptr);
        int n = 0;
        while (dirent* e = readdir(d)) n += e->d_name[0] != '.' || std::strlen(e->d_name) > 2;
        closedir(d);
        CHECK(n == 0);
    }
    SECTION("empty path") {
        CHECK_FALSE(snap::write_text_file("", "x", 1).ok());
        CHECK_FALSE(snap::write_text_file(nullptr, "x", 1).ok());
    }
}

TEST_CASE("write_pprof: real modules and names, 0600, atomic", "[pprof][file]") {
    temp_dir dir;
    std::uintptr_t here = reinterpret_cast<std::uintptr_t>(&read_all) + 3;
    std::uintptr_t stack[] = {here};
    snap::heap_sample s{stack, 1, 2, 128, 1, 64};
    snap::heap_view view{&s, 1, 1, 1};
    std::string p = dir.file("heap.pb.gz");
    md::result r = snap::write_pprof(view, p.c_str());
    INFO(r.message());
    REQUIRE(r.ok());
    struct stat st;
    REQUIRE(stat(p.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600);
    std::string bytes = read_all(p);
    REQUIRE(bytes.size() > 18);
    CHECK(static_cast<unsigned char>(bytes[0]) == 0x1f);
    CHECK(dir.entries() == std::vector<std::string>{"heap.pb.gz"});

    md::result bad = snap::write_pprof(view, dir.file("missing/heap.pb.gz").c_str());
    CHECK_FALSE(bad.ok());
}

TEST_CASE("result: success, failure and truncation", "[result]") {
    md::result ok = md::result::success();
    CHECK(ok.ok());
    CHECK(std::string(ok.message()).empty());
    md::result bad = md::result::failure("disk on fire");
    CHECK_FALSE(bad.ok());
    CHECK(std::string(bad.message()) == "disk on fire");
    std::string longer(1000, 'x');
    md::result trunc = md::result::failure(longer.c_str());
    CHECK(std::strlen(trunc.message()) == md::result::message_capacity - 1);
    md::result f = md::result::failuref("%s %d", "code", 42);
    CHECK(std::string(f.message()) == "code 42");
    CHECK(std::string(md::result::failure("").message()) == "failed");
}
