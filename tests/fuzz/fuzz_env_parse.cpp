// tests/fuzz/fuzz_env_parse.cpp - libFuzzer target for every parser in env_parse.hpp.
//
// Build and run (about 20 s):
//   clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude \
//       tests/fuzz/fuzz_env_parse.cpp -o fuzz_env_parse
//   ./fuzz_env_parse -max_total_time=20 tests/fuzz/corpus/env
//
// The input is fed whole to each single-file parser. Split on NUL bytes it
// also becomes a fake filesystem for the cgroup walk: part 0 is
// /proc/self/cgroup, part 1 /proc/self/mountinfo, and each further file the
// walk asks for gets the next part (then "missing").
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <memdiag/env.hpp>

namespace parse = memdiag::detail::env_parse;
using memdiag::env::fact;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);

    (void)parse::parse_u64(text);
    (void)parse::parse_i64(text);
    (void)parse::parse_cgroup_v2_memory_max(text);
    (void)parse::parse_cgroup_v1_memory_limit(text);
    (void)parse::find_key_u64(text, "hierarchical_memory_limit");
    (void)parse::parse_meminfo(text, "MemAvailable");
    (void)parse::parse_cpuinfo_address_sizes(text);
    (void)parse::parse_bracketed_choice(text);
    (void)parse::parse_cgroup_v2_cpu_max(text);
    (void)parse::parse_os_release(text);
    (void)parse::parse_overcommit_mode(text);
    (void)parse::parse_cpu_list_count(text);
    (void)parse::unescape_mountinfo(text);
    (void)parse::parse_proc_cgroup(text);
    (void)parse::parse_mountinfo(text);
    (void)memdiag::env::json_escape(text);
    (void)memdiag::env::parse_size(text);
    (void)memdiag::env::detail::text_value(std::string(text));

    std::size_t half = size / 2;
    (void)parse::parse_cgroup_v1_cfs(text.substr(0, half), text.substr(half));

    std::vector<std::string> parts;
    for (std::string_view rest = text;;) {
        std::size_t nul = rest.find('\0');
        parts.emplace_back(rest.substr(0, nul));
        if (nul == std::string_view::npos) break;
        rest.remove_prefix(nul + 1);
    }

    // Paths from the input against a mount root from the input.
    if (parts.size() >= 3) {
        parse::mount_entry m;
        m.root = parts[0];
        m.mount_point = parts[1].empty() || parts[1][0] != '/' ? "/" + parts[1] : parts[1];
        parse::cgroup_location loc = parse::locate_cgroup(m, parts[2]);
        (void)parse::walk_up(loc.directory, loc.mount_point);
    }

    std::size_t next = 2;
    parse::cgroup_facts facts = parse::read_cgroup_facts([&](const std::string& path) {
        if (path == "/proc/self/cgroup") return fact<std::string>::of(parts[0], path);
        if (path == "/proc/self/mountinfo" && parts.size() > 1) return fact<std::string>::of(parts[1], path);
        if (next < parts.size()) return fact<std::string>::of(parts[next++], path);
        return fact<std::string>::unknown("missing", path);
    });

    // What the report does with the result must hold up too.
    memdiag::env::report r;
    r.cgroup_layout = facts.layout;
    r.cgroup_memory_path = facts.memory_path;
    r.cgroup_v1_memory_limit = facts.v1_memory_limit;
    r.cgroup_v2_memory_max = facts.v2_memory_max;
    r.cgroup_cpu_quota = facts.cpu_limit;
    r.os = parse::parse_os_release(text);
    (void)r.to_json(memdiag::env::run_default_checks(r));
    (void)r.to_text();
    return 0;
}
