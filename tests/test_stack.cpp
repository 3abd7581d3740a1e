// tests/test_stack.cpp - stack capture, loaded modules and symbolization.
//
// Build with -fno-omit-frame-pointer (and -g): the frame-pointer walk can only
// see frames that keep their frame records.
#include <memdiag/detail/symbols.hpp>
#include <memdiag/stack.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <elf.h>
#include <limits.h>
#include <ucontext.h>
#include <unistd.h>

#include "catch.hpp"

#if defined(__clang__)
#define TEST_NOINLINE __attribute__((noinline))
#else
#define TEST_NOINLINE __attribute__((noinline, noclone))
#endif

using memdiag::capture_stack;
using memdiag::stack_method;
using addr_t = std::uintptr_t;

namespace stack_test {

// Keeps a value alive and code after a call, so the call is not a tail call
// (a tail call would remove the calling frame from every method's stack).
template <class T>
inline void keep(const T& v) {
    __asm__ volatile("" : : "g"(v) : "memory");
}

TEST_NOINLINE std::size_t capture_here(addr_t* out, std::size_t max, std::size_t skip, stack_method m) {
    const std::size_t n = capture_stack(out, max, skip, m);
    keep(n);
    return n;
}

TEST_NOINLINE std::size_t recurse(int depth, addr_t* out, std::size_t max, stack_method m) {
    const std::size_t n = depth == 0 ? capture_here(out, max, 0, m) : recurse(depth - 1, out, max, m);
    keep(n);
    return n;
}

// One call site for every request, so the captured stacks are comparable.
struct request {
    std::size_t max;
    std::size_t skip;
    stack_method method;
    addr_t frames[128];
    std::size_t count;
};

TEST_NOINLINE void capture_series(request* reqs, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i)
        reqs[i].count = capture_here(reqs[i].frames, reqs[i].max, reqs[i].skip, reqs[i].method);
    keep(reqs);
}

// capture_series under `levels` more frames of this file: the tests need a deep
// enough frame-pointer chain without counting on the runner's frames (Catch2
// v3 is a library, usually built without frame pointers).
TEST_NOINLINE void capture_series_in(int levels, request* reqs, std::size_t n) {
    if (levels == 0) capture_series(reqs, n);
    else capture_series_in(levels - 1, reqs, n);
    keep(reqs);
}

TEST_NOINLINE int named_function(int x) {
    keep(x);
    return x + 1;
}

TEST_NOINLINE std::size_t capture_in_named(addr_t* out, std::size_t max) {
    const std::size_t n = capture_stack(out, max, 0, stack_method::automatic);
    keep(n);
    return n;
}

// Longest run of one repeated value, and that value.
std::size_t longest_run(const addr_t* v, std::size_t n, addr_t* value) {
    std::size_t best = 0;
    for (std::size_t i = 0; i < n;) {
        std::size_t j = i;
        while (j < n && v[j] == v[i]) ++j;
        if (j - i > best) {
            best = j - i;
            *value = v[i];
        }
        i = j;
    }
    return best;
}

std::string name_of(memdiag::detail::symbolizer& s, addr_t pc) {
    const memdiag::detail::internal_string n = s.function_name(pc);
    return std::string(n.begin(), n.end());
}

const stack_method all_methods[] = {stack_method::automatic, stack_method::frame_pointers,
                                    stack_method::unwinder};

const char* method_name(stack_method m) {
    return m == stack_method::automatic ? "automatic" : m == stack_method::frame_pointers ? "frame_pointers" : "unwinder";
}

}  // namespace stack_test

using namespace stack_test;

TEST_CASE("recursion 50 deep shows the recursive call site 50 times", "[stack]") {
    const auto fn = reinterpret_cast<addr_t>(&recurse);
    memdiag::detail::symbolizer sym;
    for (stack_method m : all_methods) {
        INFO("method " << method_name(m));
        addr_t frames[128];
        const std::size_t n = recurse(50, frames, 128, m);
        REQUIRE(n >= 53);  // capture_here, recurse(0)'s call, 50 recursive calls, this test
        addr_t site = 0;
        // recurse(0) calls capture_here from another call site; recurse(1..50)
        // each left one frame returning to the recursive call site.
        CHECK(longest_run(frames, n, &site) == 50);
        CHECK(frames[2] == site);
        CHECK(frames[51] == site);
        CHECK(site > fn);
        CHECK(site - fn < 4096);
        CHECK(frames[1] > fn);
        CHECK(frames[1] - fn < 4096);
        CHECK(name_of(sym, site - 1).find("stack_test::recurse(int") == 0);
        CHECK(name_of(sym, frames[0] - 1).find("stack_test::capture_here(") == 0);
        // Leaf first: the test function's frame comes right after the recursion.
        CHECK(frames[52] != site);
        CHECK(name_of(sym, frames[52] - 1).find("recurse") == std::string::npos);
    }
}

TEST_CASE("deep stacks: 300 frames, depth limit holds", "[stack]") {
    for (stack_method m : all_methods) {
        INFO("method " << method_name(m));
        std::vector<addr_t> frames(400);
        const std::size_t n = recurse(300, frames.data(), frames.size(), m);
        addr_t site = 0;
        CHECK(n > 300);
        CHECK(longest_run(frames.data(), n, &site) == 300);

        addr_t limited[16];
        std::fill(std::begin(limited), std::end(limited), addr_t{0xabcd});
        CHECK(recurse(100, limited, 12, m) == 12);
        CHECK(limited[12] == 0xabcd);  // nothing written past max_frames
        CHECK(longest_run(limited, 12, &site) == 10);
    }
}

TEST_CASE("depth limit and skip keep the same frames", "[stack]") {
    for (stack_method m : all_methods) {
        INFO("method " << method_name(m));
        std::vector<request> reqs;
        reqs.push_back(request{128, 0, m, {}, 0});
        for (std::size_t max = 1; max <= 6; ++max) reqs.push_back(request{max, 0, m, {}, 0});
        for (std::size_t skip = 1; skip <= 6; ++skip) reqs.push_back(request{128, skip, m, {}, 0});
        reqs.push_back(request{3, 2, m, {}, 0});
        reqs.push_back(request{128, 100000, m, {}, 0});
        reqs.push_back(request{0, 0, m, {}, 0});
        capture_series_in(6, reqs.data(), reqs.size());

        const request& full = reqs[0];
        REQUIRE(full.count >= 8);  // capture_here, capture_series, 7 x capture_series_in, ...
        for (std::size_t i = 1; i <= 6; ++i) {
            const request& r = reqs[i];
            REQUIRE(r.count == r.max);
            CHECK(std::equal(r.frames, r.frames + r.count, full.frames));
        }
        for (std::size_t i = 7; i <= 12; ++i) {
            const request& r = reqs[i];
            REQUIRE(r.count == full.count - r.skip);
            CHECK(std::equal(r.frames, r.frames + r.count, full.frames + r.skip));
        }
        CHECK(reqs[13].count == 3);
        CHECK(std::equal(reqs[13].frames, reqs[13].frames + 3, full.frames + 2));
        CHECK(reqs[14].count == 0);
        CHECK(reqs[15].count == 0);
        CHECK(capture_stack(nullptr, 10) == 0);
    }
}

TEST_CASE("frame-pointer walk and unwinder agree on the common frames", "[stack]") {
    request reqs[3] = {{128, 0, stack_method::frame_pointers, {}, 0},
                       {128, 0, stack_method::unwinder, {}, 0},
                       {128, 0, stack_method::automatic, {}, 0}};
    capture_series_in(3, reqs, 3);
    const request& fp = reqs[0];
    const request& uw = reqs[1];
    REQUIRE(fp.count >= 6);  // capture_here, capture_series, 4 x capture_series_in, this test...
    REQUIRE(uw.count >= fp.count);
    CHECK(std::equal(fp.frames, fp.frames + fp.count, uw.frames));
    // automatic takes the fast path when it works, so it matches it exactly.
    CHECK(reqs[2].count == fp.count);
    CHECK(std::equal(fp.frames, fp.frames + fp.count, reqs[2].frames));
    if (!memdiag::has_frame_pointer_walk) WARN("no frame-pointer walk on this target: all methods unwind");
}

TEST_CASE("threads capture within their own stack", "[stack]") {
    std::size_t n[3] = {0, 0, 0};
    std::size_t run[3] = {0, 0, 0};
    std::thread t([&] {
        for (int i = 0; i < 3; ++i) {
            addr_t frames[128];
            addr_t site = 0;
            n[i] = recurse(40, frames, 128, all_methods[i]);
            run[i] = longest_run(frames, n[i], &site);
        }
    });
    t.join();
    for (int i = 0; i < 3; ++i) {
        INFO("method " << method_name(all_methods[i]));
        CHECK(n[i] >= 43);
        CHECK(run[i] == 40);
    }
    const memdiag::detail::stack_bounds b = memdiag::detail::current_stack_bounds();
    int local = 0;
    const auto here = reinterpret_cast<addr_t>(&local);
    if (memdiag::has_frame_pointer_walk) {
        CHECK(b.low < here);
        CHECK(here < b.high);
    }
}

#if MEMDIAG_HAS_FRAME_WALK
TEST_CASE("fake frame chains never make the walk read outside the stack", "[stack]") {
    using memdiag::detail::walk_end;
    using memdiag::detail::walk_frame_chain;
    const memdiag::detail::stack_bounds b = memdiag::detail::current_stack_bounds();
    REQUIRE(b.low < b.high);
    alignas(16) addr_t rec[8][2];  // fake frame records on this stack, ascending addresses
    const auto at = [&](int i) { return reinterpret_cast<addr_t>(rec[i]); };
    addr_t out[16];

    // A well-formed chain of three records ending in a null frame pointer.
    rec[0][0] = at(2); rec[0][1] = 0x1000;
    rec[2][0] = at(5); rec[2][1] = 0x2000;
    rec[5][0] = 0;     rec[5][1] = 0x3000;
    auto r = walk_frame_chain(at(0), b.low, b.high, out, 16, 0);
    CHECK(r.count == 3);
    CHECK(r.end == walk_end::outermost);
    CHECK((out[0] == 0x1000 && out[1] == 0x2000 && out[2] == 0x3000));
    r = walk_frame_chain(at(0), b.low, b.high, out, 16, 1);
    CHECK((r.count == 2 && out[0] == 0x2000));
    r = walk_frame_chain(at(0), b.low, b.high, out, 2, 0);
    CHECK((r.count == 2 && r.end == walk_end::full));

    const addr_t bad_next[] = {
        at(0),                      // a cycle onto itself
        at(0) - 64,                 // downwards
        at(3) + 3,                  // misaligned
        0x10,                       // unmapped page zero
        b.high,                     // just past the stack
        b.high - sizeof(addr_t),    // a record straddling the top
        ~addr_t{0} & ~addr_t{15},   // the top of the address space
        reinterpret_cast<addr_t>(std::malloc(64)),  // the heap
    };
    for (std::size_t k = 0; k < sizeof bad_next / sizeof bad_next[0]; ++k) {
        INFO("bad link " << k);
        rec[0][0] = at(2);
        rec[2][0] = bad_next[k];
        r = walk_frame_chain(at(0), b.low, b.high, out, 16, 0);
        CHECK(r.count == 2);
        CHECK(r.end == walk_end::broken);
    }
    std::free(reinterpret_cast<void*>(bad_next[7]));

    // automatic redoes short chains with the unwinder, trusts long or full ones.
    using memdiag::detail::walk_needs_unwinder;
    rec[0][0] = 0;
    CHECK(walk_needs_unwinder(walk_frame_chain(at(0), b.low, b.high, out, 16, 0)));  // 1 frame, clean end
    rec[0][0] = 0x10;
    CHECK(walk_needs_unwinder(walk_frame_chain(at(0), b.low, b.high, out, 16, 0)));  // 1 frame, broken
    rec[0][0] = at(2);
    rec[2][0] = at(5);
    CHECK(!walk_needs_unwinder(walk_frame_chain(at(0), b.low, b.high, out, 16, 0)));  // 3 frames
    CHECK(!walk_needs_unwinder(walk_frame_chain(at(0), b.low, b.high, out, 1, 0)));   // full at 1
    CHECK(walk_needs_unwinder(walk_frame_chain(0, b.low, b.high, out, 16, 0)));       // off the stack

    // Bad start records, and unknown bounds.
    CHECK(walk_frame_chain(0, b.low, b.high, out, 16, 0).count == 0);
    CHECK(walk_frame_chain(b.high, b.low, b.high, out, 16, 0).count == 0);
    CHECK(walk_frame_chain(at(0) + 4, b.low, b.high, out, 16, 0).count == 0);
    CHECK(walk_frame_chain(at(0), 0, 0, out, 16, 0).end == walk_end::broken);
    CHECK(walk_frame_chain(at(0), 0, 0, out, 16, 0).count == 0);
}

namespace stack_test {
// Overwrites this function's own saved frame pointer for the duration of a
// capture: the real chain is broken right above this frame.
TEST_NOINLINE std::size_t capture_with_broken_link(addr_t garbage, addr_t* out, std::size_t max) {
    auto* record = static_cast<addr_t*>(__builtin_frame_address(0));
    volatile addr_t* slot = record;
    const addr_t saved = slot[0];
    slot[0] = garbage;
    const std::size_t n = capture_stack(out, max, 0, stack_method::frame_pointers);
    slot[0] = saved;
    keep(n);
    return n;
}
}  // namespace stack_test

TEST_CASE("a corrupted frame chain ends the walk without a crash", "[stack]") {
    int local = 0;
    void* heap = std::malloc(32);
    const addr_t garbage[] = {
        0x10, 0xdeadbeef0, reinterpret_cast<addr_t>(&local) - 4096, reinterpret_cast<addr_t>(&local) + 3,
        reinterpret_cast<addr_t>(heap), ~addr_t{0} & ~addr_t{7}, 0x7ffffffff000,
    };
    for (addr_t g : garbage) {
        INFO("garbage link " << g);
        addr_t out[64];
        // out[0] returns into capture_with_broken_link, out[1] into this test;
        // the link to the test's own record is the garbage, so the walk ends.
        CHECK(capture_with_broken_link(g, out, 64) == 2);
    }
    std::free(heap);
    addr_t out[64];
    CHECK(capture_with_broken_link(0, out, 64) == 2);  // a null link is a clean end
}

namespace stack_test {
// Runs on a stack the thread's bounds do not cover.
ucontext_t main_ctx, side_ctx;
std::size_t side_counts[3];

void on_side_stack() {
    for (int i = 0; i < 3; ++i) {
        addr_t out[64];
        side_counts[i] = capture_here(out, 64, 0, all_methods[i]);
    }
}
}  // namespace stack_test

TEST_CASE("a foreign stack: the walk captures nothing, automatic unwinds", "[stack]") {
    std::vector<char> stack(256 * 1024);
    REQUIRE(getcontext(&side_ctx) == 0);
    side_ctx.uc_stack.ss_sp = stack.data();
    side_ctx.uc_stack.ss_size = stack.size();
    side_ctx.uc_link = &main_ctx;
    makecontext(&side_ctx, &on_side_stack, 0);
    REQUIRE(swapcontext(&main_ctx, &side_ctx) == 0);
    CHECK(side_counts[1] == 0);  // frame_pointers: our own record is off the thread's stack
    CHECK(side_counts[0] >= 2);  // automatic: the unwinder (capture_here, on_side_stack, ...)
    CHECK(side_counts[2] >= 2);
}
#endif  // MEMDIAG_HAS_FRAME_WALK

TEST_CASE("symbolizer names functions of the test binary and of libc", "[symbols]") {
    memdiag::detail::symbolizer sym;
    const auto fn = reinterpret_cast<addr_t>(&named_function);
    CHECK(name_of(sym, fn) == "stack_test::named_function(int)");
    CHECK(name_of(sym, fn + 1) == "stack_test::named_function(int)");
    CHECK(named_function(1) == 2);

    addr_t out[8];
    REQUIRE(capture_in_named(out, 8) >= 2);
    const std::string caller = name_of(sym, out[0] - 1);
    CHECK((caller == "stack_test::capture_in_named(unsigned long*, unsigned long)" ||
           caller == "stack_test::capture_in_named(unsigned int*, unsigned int)"));
    CHECK(name_of(sym, out[0] - 1) == name_of(sym, out[0] - 1));  // cached path gives the same

    // A local (non-exported) function inside libc, reached by unwinding a qsort callback.
    static std::vector<std::string> names;
    names.clear();
    int values[] = {3, 1, 2};
    std::qsort(values, 3, sizeof(int), [](const void* a, const void* b) -> int {
        if (names.empty()) {
            addr_t frames[16];
            const std::size_t n = capture_stack(frames, 16, 0, stack_method::unwinder);
            memdiag::detail::symbolizer s;
            for (std::size_t i = 0; i < n; ++i) names.push_back(name_of(s, frames[i] - 1));
        }
        return *static_cast<const int*>(a) - *static_cast<const int*>(b);
    });
    REQUIRE(names.size() >= 3);
    bool libc_sort = false;
    for (std::size_t i = 1; i < names.size(); ++i)
        if (names[i].find("sort") != std::string::npos) libc_sort = true;
    INFO("frame 1: " << names[1] << ", frame 2: " << names[2]);
    CHECK(libc_sort);
    for (const std::string& n : names) CHECK(n.find('@') == std::string::npos);

    CHECK(name_of(sym, 0).empty());
    CHECK(name_of(sym, 1).empty());
    std::vector<char> heap(64);
    CHECK(name_of(sym, reinterpret_cast<addr_t>(heap.data())).empty());
}

namespace {

struct maps_row {
    addr_t start, limit, offset;
    std::string perms, path;
};

std::vector<maps_row> read_exec_maps() {
    std::vector<maps_row> rows;
    std::ifstream in("/proc/self/maps");
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream ls(line);
        std::string range, perms, offset, dev, inode, path;
        ls >> range >> perms >> offset >> dev >> inode;
        std::getline(ls >> std::ws, path);
        if (perms.size() < 3 || perms[2] != 'x' || path == "[vsyscall]") continue;
        maps_row r;
        r.start = static_cast<addr_t>(std::stoull(range.substr(0, range.find('-')), nullptr, 16));
        r.limit = static_cast<addr_t>(std::stoull(range.substr(range.find('-') + 1), nullptr, 16));
        r.offset = static_cast<addr_t>(std::stoull(offset, nullptr, 16));
        r.perms = perms;
        r.path = path;
        rows.push_back(r);
    }
    return rows;
}

// The NT_GNU_BUILD_ID of an ELF file, found through its section headers (the
// library reads program headers of the loaded image instead).
template <class Ehdr, class Shdr>
std::string build_id_from_sections(const std::string& file) {
    std::ifstream in(file, std::ios::binary);
    const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (data.size() < sizeof(Ehdr)) return "<unreadable>";
    Ehdr eh;
    std::memcpy(&eh, data.data(), sizeof eh);
    std::string hex;
    for (unsigned i = 0; i < eh.e_shnum; ++i) {
        Shdr sh;
        std::memcpy(&sh, data.data() + eh.e_shoff + i * sizeof(Shdr), sizeof sh);
        if (sh.sh_type != SHT_NOTE) continue;
        std::size_t pos = sh.sh_offset;
        const std::size_t end = sh.sh_offset + sh.sh_size;
        const std::size_t align = sh.sh_addralign == 8 ? 8 : 4;
        while (pos + 12 <= end) {
            std::uint32_t namesz, descsz, type;
            std::memcpy(&namesz, data.data() + pos, 4);
            std::memcpy(&descsz, data.data() + pos + 4, 4);
            std::memcpy(&type, data.data() + pos + 8, 4);
            const std::size_t name = pos + 12;
            const std::size_t desc = name + ((namesz + align - 1) & ~(align - 1));
            if (type == 3 && namesz == 4 && data.compare(name, 4, std::string("GNU\0", 4)) == 0) {
                char buf[3];
                for (std::size_t k = 0; k < descsz; ++k) {
                    std::snprintf(buf, sizeof buf, "%02x", static_cast<unsigned char>(data[desc + k]));
                    hex += buf;
                }
                return hex;
            }
            pos = desc + ((descsz + align - 1) & ~(align - 1));
        }
    }
    return hex;
}

std::string file_build_id(const std::string& file) {
    if (sizeof(void*) == 8) return build_id_from_sections<Elf64_Ehdr, Elf64_Shdr>(file);
    return build_id_from_sections<Elf32_Ehdr, Elf32_Shdr>(file);
}

std::string str(const memdiag::detail::internal_string& s) { return std::string(s.begin(), s.end()); }

}  // namespace

TEST_CASE("loaded modules match the executable rows of /proc/self/maps", "[symbols][maps]") {
    const memdiag::detail::module_list mods = memdiag::detail::list_loaded_modules();
    const std::vector<maps_row> rows = read_exec_maps();
    REQUIRE(mods.size() >= 3);  // the test, libc, the loader at least
    REQUIRE(mods.size() == rows.size());
    for (std::size_t i = 0; i < rows.size(); ++i) {
        INFO("maps row " << rows[i].path << " " << std::hex << rows[i].start);
        CHECK(mods[i].start == rows[i].start);
        CHECK(mods[i].limit == rows[i].limit);
        CHECK(mods[i].file_offset == rows[i].offset);
        CHECK(str(mods[i].path) == rows[i].path);
        CHECK(rows[i].perms == "r-xp");
    }
    for (std::size_t i = 1; i < mods.size(); ++i) CHECK(mods[i - 1].limit <= mods[i].start);

    // The executable is the module containing this test's code.
    char exe[PATH_MAX + 1];
    REQUIRE(realpath("/proc/self/exe", exe) != nullptr);
    const auto here = reinterpret_cast<addr_t>(&named_function);
    bool found = false;
    for (const auto& m : mods) {
        if (here >= m.start && here < m.limit) {
            found = true;
            CHECK(str(m.path) == exe);
        }
    }
    CHECK(found);
}

TEST_CASE("build ids match the ELF notes of the files", "[symbols]") {
    const memdiag::detail::module_list mods = memdiag::detail::list_loaded_modules();
    char exe[PATH_MAX + 1];
    REQUIRE(realpath("/proc/self/exe", exe) != nullptr);
    bool saw_exe = false;
    for (const auto& m : mods) {
        const std::string path = str(m.path);
        if (path.empty() || path[0] != '/') continue;
        INFO("module " << path);
        const std::string expected = file_build_id(path);
        CHECK(str(m.build_id) == expected);
        for (char c : str(m.build_id)) CHECK(((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')));
        if (path == exe) {
            saw_exe = true;
            if (expected.empty()) WARN("the test binary has no build id (link with -Wl,--build-id)");
        }
    }
    CHECK(saw_exe);

    // Cross-check the executable with binutils when it is installed.
    const std::string cmd = std::string("readelf -n '") + exe + "' 2>/dev/null";
    if (std::FILE* p = popen(cmd.c_str(), "r")) {
        char line[512];
        std::string readelf_id;
        while (std::fgets(line, sizeof line, p)) {
            const char* at = std::strstr(line, "Build ID: ");
            if (at != nullptr) {
                readelf_id = at + 10;
                while (!readelf_id.empty() && (readelf_id.back() == '\n' || readelf_id.back() == ' '))
                    readelf_id.pop_back();
            }
        }
        pclose(p);
        if (!readelf_id.empty()) {
            for (const auto& m : mods)
                if (str(m.path) == exe) CHECK(str(m.build_id) == readelf_id);
        }
    }
}

TEST_CASE("symbol names: optimizer clones are named as their function, version suffixes dropped") {
    using memdiag::detail::elf::demangle;
    auto name = [](const char* raw) { return std::string(demangle(raw).c_str()); };
    CHECK(name("malloc_site.constprop.0") == "malloc_site");
    CHECK(name("alloc_b.cold") == "alloc_b");
    CHECK(name("helper.isra.0.part.1") == "helper");
    CHECK(name("memcpy@GLIBC_2.14") == "memcpy");
    CHECK(name("memcpy@@GLIBC_2.14") == "memcpy");
    // A file name in a static initializer's symbol is not a clone suffix.
    CHECK(name("_GLOBAL__sub_I_main.cpp") == "_GLOBAL__sub_I_main.cpp");
    CHECK(name(".cold") == ".cold");
#if MEMDIAG_HAS_CXXABI
    CHECK(name("_Z7alloc_bv.cold") == "alloc_b()");
    CHECK(name("_Z3fooi.constprop.0.isra.0") == "foo(int)");
    CHECK(name("_Z3fooi") == "foo(int)");
#endif
}

#if MEMDIAG_HAS_FRAME_WALK && MEMDIAG_HAS_CODE_RANGES
// Issue 12 item 10: a returned address is always in loaded code.
#include <dlfcn.h>
#include <link.h>
#include <sys/wait.h>

namespace stack_test {
const char rodata_marker[] = "not code";
int data_marker = 1;

bool in_exec_maps(const std::vector<maps_row>& rows, addr_t pc) {
    for (const maps_row& r : rows)
        if (pc >= r.start && pc < r.limit) return true;
    return false;
}

// Points this function's saved frame pointer at `fake`, a record in the
// caller's frame {caller's real link, bad_return_address}: the walk meets the
// bad word exactly where code without frame pointers would leave one.
TEST_NOINLINE std::size_t capture_through_record(addr_t* fake, addr_t bad, addr_t* out, std::size_t max,
                                                 stack_method m) {
    auto* record = static_cast<addr_t*>(__builtin_frame_address(0));
    volatile addr_t* slot = record;
    volatile addr_t* f = fake;
    const addr_t saved = slot[0];
    f[0] = saved;
    f[1] = bad;
    slot[0] = reinterpret_cast<addr_t>(fake);
    const std::size_t n = capture_stack(out, max, 0, m);
    slot[0] = saved;
    keep(n);
    return n;
}
}  // namespace stack_test

TEST_CASE("stacks are never wrong: a data word read as a return address ends the walk", "[stack][code][maps]") {
    void* heap = std::malloc(64);
    const std::vector<maps_row> rows = read_exec_maps();
    REQUIRE(!rows.empty());
    memdiag::detail::symbolizer sym;
    // Each passes the old test (not page zero, not the stack, not the kernel
    // half) and is no return address: heap, writable data, read-only data.
    const addr_t bad[] = {reinterpret_cast<addr_t>(heap), reinterpret_cast<addr_t>(&data_marker),
                          reinterpret_cast<addr_t>(&rodata_marker[3])};
    for (const addr_t b : bad) {
        REQUIRE(!in_exec_maps(rows, b));
        for (const stack_method m : {stack_method::frame_pointers, stack_method::automatic}) {
            INFO("bad return address 0x" << std::hex << b << " method " << method_name(m));
            alignas(16) addr_t fake[4] = {};
            addr_t out[64] = {};
            const std::size_t n = capture_through_record(&fake[0], b, out, 64, m);
            // out[0] returns into capture_through_record, out[1] into this test.
            REQUIRE(n >= 2);
            CHECK(name_of(sym, out[0] - 1).find("stack_test::capture_through_record(") == 0);
            for (std::size_t i = 0; i < n; ++i) {
                INFO("frame " << i << " 0x" << std::hex << out[i]);
                CHECK(out[i] != b);
                CHECK(in_exec_maps(rows, out[i]));
            }
            if (m == stack_method::frame_pointers) CHECK(n == 2);  // ends right before the bad word
        }
    }
    std::free(heap);
}

// ThreadSanitizer's runtime calls dl_iterate_phdr while it starts, before
// dlsym can serve the interposer below: no interposing there.
#define STACK_TEST_TSAN_REASON "ThreadSanitizer's runtime calls dl_iterate_phdr before an interposer can work"
#if defined(__SANITIZE_THREAD__)
#define STACK_TEST_NO_LOADER_COUNT STACK_TEST_TSAN_REASON
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define STACK_TEST_NO_LOADER_COUNT STACK_TEST_TSAN_REASON
#endif
#endif
#if !defined(STACK_TEST_NO_LOADER_COUNT) && !(defined(__GLIBC__) && defined(DLFO_STRUCT_HAS_EH_DBASE))
#define STACK_TEST_NO_LOADER_COUNT "no lock-free _dl_find_object in this C library (glibc before 2.35): a miss asks the loader"
#endif

#ifndef STACK_TEST_NO_LOADER_COUNT
namespace stack_test {
// Counts the program's calls of dl_iterate_phdr (this definition in the
// executable interposes the C library's, which it then calls).
std::atomic<unsigned> g_loader_iterations{0};
}  // namespace stack_test

extern "C" int dl_iterate_phdr(int (*callback)(struct dl_phdr_info*, std::size_t, void*), void* data) {
    using iterate_fn = int (*)(int (*)(struct dl_phdr_info*, std::size_t, void*), void*);
    static const auto real = reinterpret_cast<iterate_fn>(::dlsym(RTLD_NEXT, "dl_iterate_phdr"));
    stack_test::g_loader_iterations.fetch_add(1, std::memory_order_relaxed);
    return real == nullptr ? 0 : real(callback, data);
}
#endif

TEST_CASE("stacks are never wrong: a garbage word does not make the walk call the loader", "[stack][code]") {
#ifndef STACK_TEST_NO_LOADER_COUNT
    // dl_iterate_phdr takes the loader's lock: a walk calling it on every
    // garbage word would pay for it each time, and a fork meanwhile would
    // leave the lock held in the child. A miss rebuilds the table only for
    // an address _dl_find_object places in a loaded object.
    void* heap = std::malloc(64);
    const auto bad = reinterpret_cast<addr_t>(heap);
    alignas(16) addr_t fake[4] = {};
    addr_t out[64] = {};
    capture_through_record(&fake[0], bad, out, 64, stack_method::frame_pointers);  // the table is built
    const unsigned before = stack_test::g_loader_iterations.load();
    for (int i = 0; i < 100; ++i) {
        const std::size_t n = capture_through_record(&fake[0], bad, out, 64, stack_method::frame_pointers);
        REQUIRE(n == 2);  // the walk ended at the garbage word
    }
    CHECK(stack_test::g_loader_iterations.load() - before == 0);
    std::free(heap);
    CHECK(before > 0);  // the interposer works: the table's first build went through it
#else
    WARN("SKIPPED: " STACK_TEST_NO_LOADER_COUNT);
#endif
}

namespace stack_test {
// Walks with and without the code check from `depth` calls below the caller:
// a chain of this file's own frames (built with frame pointers), whatever
// the test runner's frames are (Catch2 v3 is a library built without them).
struct chain_walks {
    addr_t plain[128], checked[128];
    std::size_t plain_count = 0, checked_count = 0;
    bool usable = false;
};
TEST_NOINLINE void walk_nested(int depth, chain_walks& w) {
    if (depth > 0) {
        walk_nested(depth - 1, w);
        keep(depth);  // no tail call: every level keeps its frame
        return;
    }
    const memdiag::detail::stack_bounds b = memdiag::detail::current_stack_bounds();
    const auto top = reinterpret_cast<addr_t>(__builtin_frame_address(0));
    w.plain_count = memdiag::detail::walk_frame_chain(top, b.low, b.high, w.plain, 128, 0).count;
    memdiag::detail::code_check code;
    w.usable = code.usable();
    w.checked_count = memdiag::detail::walk_frame_chain(top, b.low, b.high, w.checked, 128, 0, &code).count;
}
}  // namespace stack_test

TEST_CASE("stacks are never wrong: the code check keeps every frame of a real chain", "[stack][code]") {
    const std::vector<maps_row> rows = read_exec_maps();
    stack_test::chain_walks w;
    stack_test::walk_nested(3, w);
    REQUIRE(w.usable);
    // Return addresses into walk_nested (3 levels) and into this test: all
    // frames with records. What lies below depends on the runner and libc.
    CHECK(w.checked_count >= 4);
    REQUIRE(w.checked_count <= w.plain_count);
    for (std::size_t i = 0; i < w.checked_count; ++i) CHECK(w.checked[i] == w.plain[i]);
    for (std::size_t i = 0; i < w.plain_count; ++i) {
        if (in_exec_maps(rows, w.plain[i])) continue;
        INFO("the unchecked walk returned 0x" << std::hex << w.plain[i] << ", not code, at " << std::dec << i);
        CHECK(w.checked_count <= i);  // the checked walk ended before it
    }
    // Through the public entry point, at depth, with each method: all code.
    for (const stack_method m : all_methods) {
        INFO(method_name(m));
        addr_t frames[128];
        const std::size_t n = recurse(40, frames, 128, m);
        CHECK(n >= 43);  // capture_here, recurse(0)'s call, 40 recursive calls, this test
        for (std::size_t i = 0; i < n; ++i) CHECK(in_exec_maps(rows, frames[i]));
    }
}

TEST_CASE("stacks are never wrong: call-instruction check on x86_64 and aarch64 encodings", "[stack][code]") {
    using memdiag::detail::follows_call;
    struct sample {
        std::vector<unsigned char> bytes;  // ending right before the return address
        bool call;
    };
#if MEMDIAG_ARCH_X86_64
    const sample samples[] = {
        {{0xe8, 0x10, 0x20, 0x30, 0x40}, true},              // call rel32
        {{0x90, 0x90, 0xff, 0xd0}, true},                    // call *%rax
        {{0x90, 0x41, 0xff, 0xd3}, true},                    // call *%r11
        {{0x90, 0xff, 0x15, 1, 2, 3, 4}, true},              // call *disp32(%rip)
        {{0x90, 0x90, 0x90, 0xff, 0x14, 0x24}, true},        // call *(%rsp)
        {{0x90, 0x90, 0xff, 0x54, 0x24, 0x08}, true},        // call *8(%rsp)
        {{0x90, 0x90, 0x90, 0xff, 0x50, 0x10}, true},        // call *0x10(%rax)
        {{0xff, 0x90, 1, 2, 3, 4}, true},                    // call *disp32(%rax)
        {{0x90, 0x90, 0x90, 0x90, 0x90, 0xff, 0xe0}, false}, // jmp *%rax
        {{0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90}, false}, // nops
        {{0x48, 0x89, 0xe5, 0x90, 0x90, 0x55, 0xc3}, false}, // mov, push, ret
        {{0xe8, 1, 2, 3}, false},                            // too short to be the call
    };
#else
    auto word = [](std::uint32_t w) {
        return std::vector<unsigned char>{static_cast<unsigned char>(w), static_cast<unsigned char>(w >> 8),
                                          static_cast<unsigned char>(w >> 16), static_cast<unsigned char>(w >> 24)};
    };
    const sample samples[] = {
        {word(0x94000010u), true},   // bl
        {word(0xd63f0100u), true},   // blr x8
        {word(0xd63f0a1fu), true},   // blraaz x16
        {word(0xd61f0100u), false},  // br x8
        {word(0xd65f03c0u), false},  // ret
        {word(0xd503201fu), false},  // nop
    };
#endif
    for (const sample& s : samples) {
        alignas(16) unsigned char buf[32] = {};
        std::memcpy(buf + 16 - s.bytes.size(), s.bytes.data(), s.bytes.size());
        INFO("sample of " << s.bytes.size() << " bytes, call " << s.call);
        CHECK(follows_call(reinterpret_cast<addr_t>(buf + 16), s.bytes.size()) == s.call);
    }
    // A real return address follows its call.
    addr_t out[4];
    REQUIRE(capture_here(out, 4, 0, stack_method::frame_pointers) >= 2);
    CHECK(follows_call(out[0], 16));
    CHECK(follows_call(out[1], 16));
}

namespace stack_test {
int find_text_of(struct dl_phdr_info* info, std::size_t, void* arg) {
    auto* want = static_cast<std::pair<std::string, addr_t>*>(arg);
    if (info->dlpi_name == nullptr || std::strstr(info->dlpi_name, want->first.c_str()) == nullptr) return 0;
    for (int i = 0; i < info->dlpi_phnum; ++i) {
        const auto& ph = info->dlpi_phdr[i];
        if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X) != 0) {
            want->second = info->dlpi_addr + ph.p_vaddr + ph.p_memsz / 2;
            return 1;
        }
    }
    return 0;
}
}  // namespace stack_test

TEST_CASE("stacks are never wrong: the code table follows dlopen and dlclose", "[stack][code]") {
    memdiag::detail::code_range_table table;  // a private table, built now
    REQUIRE(memdiag::detail::refresh_code_ranges(table));
    memdiag::detail::code_check check(table);
    REQUIRE(check.usable());
    CHECK(check.contains(reinterpret_cast<addr_t>(&named_function)) != memdiag::detail::code_check::verdict::not_code);
    CHECK(check.contains(reinterpret_cast<addr_t>(&data_marker)) == memdiag::detail::code_check::verdict::not_code);
    // A library the test does not use: loaded after the table was built.
    const char* lib = "libresolv.so.2";
    void* h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (h == nullptr) {
        WARN("SKIPPED the dlopen part: cannot load " << lib << ": " << dlerror());
        return;
    }
    std::pair<std::string, addr_t> want{"libresolv", 0};
    dl_iterate_phdr(&find_text_of, &want);
    REQUIRE(want.second != 0);
    memdiag::detail::code_check after(table);
    CHECK(after.contains(want.second) != memdiag::detail::code_check::verdict::not_code);  // rebuilt on the miss
    CHECK(!memdiag::detail::refresh_code_ranges(table));  // nothing changed since
    dlclose(h);
    // Once unloaded (if the loader really unmapped it), its range is gone.
    std::pair<std::string, addr_t> again{"libresolv", 0};
    dl_iterate_phdr(&find_text_of, &again);
    if (again.second == 0) {
        CHECK(memdiag::detail::refresh_code_ranges(table));
        memdiag::detail::code_check later(table);
        CHECK(later.contains(want.second) == memdiag::detail::code_check::verdict::not_code);
    }
}
TEST_CASE("stacks are never wrong: a child forked while the table was published rebuilds it", "[stack][code]") {
    memdiag::detail::code_range_table table;
    table.publishing.store(static_cast<long>(getpid()));  // as if a parent thread were publishing at the fork
    CHECK(!memdiag::detail::refresh_code_ranges(table));  // here it is busy: the rebuild gives up
    const pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) _exit(memdiag::detail::refresh_code_ranges(table) && table.publishing.load() == 0 ? 0 : 1);
    int status = 0;
    REQUIRE(waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);  // the child took the stale lock over and published
}
#endif  // MEMDIAG_HAS_FRAME_WALK && MEMDIAG_HAS_CODE_RANGES
