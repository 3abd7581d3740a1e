// memdiag/detail/env_cgroup.hpp - pure parsers for /proc/self/cgroup and
// /proc/self/mountinfo, and the walk from the process's cgroup up to its mount
// point that finds the memory and CPU limits (through a caller's file reader,
// so fixture trees test it). Same rules as detail/env_values.hpp: never throw
// on bad input, unknown with a reason instead.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "env_values.hpp"

namespace memdiag {
namespace detail {
namespace env_parse {

// ---- /proc/self/cgroup and /proc/self/mountinfo ------------------------------

/// One line of /proc/self/cgroup: "id:controllers:path".
struct cgroup_entry {
    std::uint64_t hierarchy_id = 0;
    std::vector<std::string> controllers;  ///< empty for the v2 line "0::/path"
    std::string path;                      ///< path inside the hierarchy, starts with '/'
    /// Returns true for the cgroup v2 (unified) line.
    bool is_v2() const { return hierarchy_id == 0 && controllers.empty(); }
    /// Returns true when this v1 hierarchy carries controller name.
    bool has(std::string_view name) const {
        for (const std::string& c : controllers)
            if (c == name) return true;
        return false;
    }
};

/// Parses /proc/self/cgroup. Malformed lines are skipped; the result is unknown
/// only when no line parses.
inline fact<std::vector<cgroup_entry>> parse_proc_cgroup(std::string_view text) {
    std::vector<cgroup_entry> out;
    std::size_t bad = 0;
    for (std::string_view line : lines(text)) {
        if (trim(line).empty()) continue;
        std::size_t c1 = line.find(':');
        std::size_t c2 = c1 == std::string_view::npos ? c1 : line.find(':', c1 + 1);
        if (c2 == std::string_view::npos) {
            ++bad;
            continue;
        }
        fact<std::uint64_t> id = parse_u64(line.substr(0, c1));
        std::string_view path = line.substr(c2 + 1);  // a path may itself contain ':'
        if (!id || path.empty() || path.front() != '/') {
            ++bad;
            continue;
        }
        cgroup_entry e;
        e.hierarchy_id = id.value;
        std::string_view names = line.substr(c1 + 1, c2 - c1 - 1);
        if (!names.empty())
            for (std::string_view n : split(names, ',')) e.controllers.emplace_back(n);
        e.path = std::string(path);
        out.push_back(std::move(e));
    }
    if (out.empty())
        return fact<std::vector<cgroup_entry>>::unknown(
            bad ? "no well-formed \"id:controllers:/path\" line" : "empty file");
    return fact<std::vector<cgroup_entry>>::of(std::move(out));
}

/// Undoes the octal escapes mountinfo uses for space, tab, newline and
/// backslash ("\040", "\011", "\012", "\134"). Other text is copied as is.
inline std::string unescape_mountinfo(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 3 < s.size()) {
            char a = s[i + 1], b = s[i + 2], c = s[i + 3];
            if (a >= '0' && a <= '3' && b >= '0' && b <= '7' && c >= '0' && c <= '7') {
                out += char(((a - '0') << 6) | ((b - '0') << 3) | (c - '0'));
                i += 3;
                continue;
            }
        }
        out += s[i];
    }
    return out;
}

/// One line of /proc/self/mountinfo (only the fields env needs).
struct mount_entry {
    std::string root;           ///< the mounted directory inside the filesystem
    std::string mount_point;    ///< where it is mounted, unescaped
    std::string fs_type;        ///< e.g. "cgroup", "cgroup2", "tmpfs"
    std::string super_options;  ///< e.g. "rw,memory" for a v1 memory hierarchy
    /// Returns true when the comma-separated super options contain name.
    bool has_option(std::string_view name) const {
        for (std::string_view o : split(super_options, ','))
            if (o == name) return true;
        return false;
    }
};

/// Parses /proc/self/mountinfo:
/// "id parent maj:min root mount_point opts [optional...] - fstype source superopts".
/// Malformed lines (a truncated last line, garbage) are skipped.
inline fact<std::vector<mount_entry>> parse_mountinfo(std::string_view text) {
    std::vector<mount_entry> out;
    for (std::string_view line : lines(text)) {
        std::vector<std::string_view> f = fields(line);
        std::size_t dash = 0;
        for (std::size_t i = 6; i < f.size(); ++i) {
            if (f[i] == "-") {
                dash = i;
                break;
            }
        }
        if (dash == 0 || f.size() < dash + 3) continue;  // needs fstype and source
        if (f[3].empty() || f[3].front() != '/' || f[4].empty() || f[4].front() != '/') continue;
        mount_entry m;
        m.root = unescape_mountinfo(f[3]);
        m.mount_point = unescape_mountinfo(f[4]);
        m.fs_type = std::string(f[dash + 1]);
        m.super_options = dash + 3 < f.size() ? std::string(f[dash + 3]) : std::string();
        out.push_back(std::move(m));
    }
    if (out.empty()) return fact<std::vector<mount_entry>>::unknown("no well-formed mountinfo line");
    return fact<std::vector<mount_entry>>::of(std::move(out));
}

/// Where a process's cgroup lives on disk for one hierarchy.
struct cgroup_location {
    std::string mount_point;  ///< the hierarchy's mount point (walks stop here)
    std::string directory;    ///< the process's cgroup directory under it
    std::string note;         ///< set when the path could not be placed exactly
};

/// Joins a mount and a cgroup path into the process's cgroup directory. The
/// path is relative to the hierarchy root; the mount may show only a subtree
/// (mount root "/docker/<id>" inside a container). A path outside the mounted
/// subtree or with ".." (a foreign cgroup namespace) maps to the mount point.
inline cgroup_location locate_cgroup(const mount_entry& mount, std::string_view path) {
    cgroup_location loc;
    loc.mount_point = mount.mount_point;
    std::string_view root = mount.root;
    if (root.size() > 1 && root.back() == '/') root.remove_suffix(1);
    std::string_view rest;
    if (path.find("/..") != std::string_view::npos) {
        loc.note = "cgroup path \"" + excerpt(path) + "\" leaves the mounted hierarchy; using the mount point";
        loc.directory = mount.mount_point;
        return loc;
    }
    if (root == "/") {
        rest = path;
    } else if (path == root) {
        rest = {};
    } else if (path.size() > root.size() && path.substr(0, root.size()) == root && path[root.size()] == '/') {
        rest = path.substr(root.size());
    } else {
        loc.note = "cgroup path \"" + excerpt(path) + "\" is not under mount root \"" + excerpt(root) +
                   "\"; using the mount point";
        rest = {};
    }
    if (rest == "/") rest = {};
    std::string dir = mount.mount_point;
    if (!dir.empty() && dir.back() == '/' && !rest.empty()) dir.pop_back();
    dir += std::string(rest);
    loc.directory = std::move(dir);
    return loc;
}

/// Returns the directories from dir up to and including stop (dir must be
/// under stop): "/a/b/c", "/a/b", "/a" for dir "/a/b/c" and stop "/a".
inline std::vector<std::string> walk_up(const std::string& dir, const std::string& stop) {
    std::vector<std::string> out;
    std::string d = dir;
    for (int guard = 0; guard < 256; ++guard) {
        out.push_back(d);
        if (d.size() <= stop.size()) break;
        std::size_t slash = d.rfind('/');
        if (slash == std::string::npos || slash < stop.size()) {
            if (d != stop) out.push_back(stop);
            break;
        }
        d.erase(slash == 0 ? 1 : slash);
    }
    return out;
}

/// The memory (and CPU) limits cgroups put on this process.
struct cgroup_facts {
    fact<std::string> layout;       ///< "v1", "v2", "hybrid" (v1 controllers plus a unified hierarchy)
    fact<std::string> memory_path;  ///< directory of the cgroup whose memory limit applies
    fact<limit> v1_memory_limit;    ///< smallest v1 memory limit on the path
    fact<limit> v2_memory_max;      ///< smallest v2 memory.max on the path
    fact<env::cpu_quota> cpu_limit; ///< smallest CPU quota (v1 CFS or v2 cpu.max)
};

/// Picks the mount for a hierarchy: v2 (cgroup2) or the v1 mount carrying
/// controller. Prefers a mount whose root contains path (bind mounts).
inline const mount_entry* find_cgroup_mount(const std::vector<mount_entry>& mounts, bool v2,
                                            std::string_view controller, std::string_view path) {
    const mount_entry* first = nullptr;
    for (const mount_entry& m : mounts) {
        bool match = v2 ? m.fs_type == "cgroup2" : (m.fs_type == "cgroup" && m.has_option(controller));
        if (!match) continue;
        if (!first) first = &m;
        if (m.root == "/" || path.substr(0, m.root.size()) == m.root) return &m;
    }
    return first;
}

/// Walks from loc.directory up to the mount point (included when
/// include_mount_point) reading file_name at each level, and returns the
/// smallest limit with the file that set it. A level without the file sets no
/// limit; a file that does not parse makes the result unknown, because the
/// limit it hides may be the one that binds.
template <class Reader, class Parse>
fact<limit> smallest_limit_on_path(Reader& read, const cgroup_location& loc, bool include_mount_point,
                                   const char* file_name, Parse parse) {
    limit best = limit::none();
    std::string best_source, missing;
    bool any = false;
    for (const std::string& dir : walk_up(loc.directory, loc.mount_point)) {
        if (dir == loc.mount_point && !include_mount_point) break;
        std::string file = dir + "/" + file_name;
        fact<std::string> text = read(file);
        if (!text) {
            if (missing.empty()) missing = file + ": " + text.reason;
            continue;
        }
        fact<limit> l = parse(text.value);
        if (!l) return fact<limit>::unknown(l.reason, file);
        if (!any) best_source = file;  // the leaf-most file, when nothing is set
        any = true;
        if (l.value.below(best)) {
            best = l.value;
            best_source = file;
        }
    }
    if (any) return fact<limit>::of(best, best_source);
    if (!include_mount_point && loc.directory == loc.mount_point)
        return fact<limit>::of(limit::none(), loc.mount_point + " (root cgroup: no " + file_name + ")");
    return fact<limit>::unknown(missing.empty() ? std::string("no ") + file_name + " on the path" : missing,
                                loc.directory);
}

/// Reads the cgroup limits of this process through read, a callable taking a
/// path (std::string) and returning fact<std::string> with the file's text.
/// Reads /proc/self/cgroup and /proc/self/mountinfo, then walks from the
/// process's cgroup up to the mount point, because a parent may set the limit
/// while the leaf says "max". In a hybrid layout the v1 memory controller is
/// the one that applies.
template <class Reader>
cgroup_facts read_cgroup_facts(Reader&& read) {
    cgroup_facts out;
    const std::string cgroup_file = "/proc/self/cgroup";
    const std::string mountinfo_file = "/proc/self/mountinfo";
    auto unknown_all = [&](const std::string& why, const std::string& src) {
        out.layout = fact<std::string>::unknown(why, src);
        out.memory_path = fact<std::string>::unknown(why, src);
        out.v1_memory_limit = fact<limit>::unknown(why, src);
        out.v2_memory_max = fact<limit>::unknown(why, src);
        out.cpu_limit = fact<cpu_quota>::unknown(why, src);
        return out;
    };
    fact<std::string> cgroup_text = read(cgroup_file);
    if (!cgroup_text) return unknown_all("cannot read: " + cgroup_text.reason, cgroup_file);
    fact<std::vector<cgroup_entry>> entries = parse_proc_cgroup(cgroup_text.value);
    if (!entries) return unknown_all("cannot parse: " + entries.reason, cgroup_file);
    fact<std::string> mount_text = read(mountinfo_file);
    if (!mount_text) return unknown_all("cannot read: " + mount_text.reason, mountinfo_file);
    fact<std::vector<mount_entry>> mounts = parse_mountinfo(mount_text.value);
    if (!mounts) return unknown_all("cannot parse: " + mounts.reason, mountinfo_file);

    const cgroup_entry* v2 = nullptr;
    const cgroup_entry* v1_memory = nullptr;
    const cgroup_entry* v1_cpu = nullptr;
    bool any_v1 = false;
    for (const cgroup_entry& e : entries.value) {
        if (e.is_v2()) {
            v2 = &e;
            continue;
        }
        any_v1 = true;
        if (e.has("memory")) v1_memory = &e;
        if (e.has("cpu")) v1_cpu = &e;
    }
    const char* layout = any_v1 && v2 ? "hybrid" : any_v1 ? "v1" : "v2";
    out.layout = fact<std::string>::of(layout, cgroup_file);

    // v1: memory.limit_in_bytes at each level (the root has one too), plus
    // memory.stat's hierarchical_memory_limit (the effective limit with use_hierarchy).
    if (v1_memory) {
        const mount_entry* m = find_cgroup_mount(mounts.value, false, "memory", v1_memory->path);
        if (!m) {
            out.v1_memory_limit = fact<limit>::unknown("no cgroup v1 mount with the memory controller", mountinfo_file);
            out.memory_path = fact<std::string>::unknown("no cgroup v1 memory mount", mountinfo_file);
        } else {
            cgroup_location loc = locate_cgroup(*m, v1_memory->path);
            out.memory_path = fact<std::string>::of(loc.directory, cgroup_file + " + " + mountinfo_file);
            out.v1_memory_limit =
                smallest_limit_on_path(read, loc, true, "memory.limit_in_bytes", parse_cgroup_v1_memory_limit);
            fact<std::string> stat = read(loc.directory + "/memory.stat");
            fact<std::uint64_t> h = stat ? find_key_u64(stat.value, "hierarchical_memory_limit")
                                         : fact<std::uint64_t>::unknown(stat.reason);
            if (h && out.v1_memory_limit) {
                limit l = h.value >= cgroup_v1_unlimited_from ? limit::none() : limit::of(h.value);
                if (l.below(out.v1_memory_limit.value))
                    out.v1_memory_limit =
                        fact<limit>::of(l, loc.directory + "/memory.stat (hierarchical_memory_limit)");
            }
            if (!loc.note.empty()) out.v1_memory_limit.source += " (" + loc.note + ")";
        }
    } else {
        out.v1_memory_limit = fact<limit>::unknown(
            any_v1 ? "no cgroup v1 memory controller for this process" : "no cgroup v1 hierarchies (pure v2)",
            cgroup_file);
    }

    // v2: memory.max at each level. The true root cgroup has none (no limit);
    // a mount of a subtree (mount root not "/") shows a real cgroup at the
    // mount point, which has one.
    const mount_entry* m2 = v2 ? find_cgroup_mount(mounts.value, true, "", v2->path) : nullptr;
    if (!v2) {
        out.v2_memory_max = fact<limit>::unknown("no cgroup v2 line (\"0::/path\")", cgroup_file);
    } else if (!m2) {
        out.v2_memory_max = fact<limit>::unknown("no cgroup2 mount", mountinfo_file);
    } else {
        cgroup_location loc = locate_cgroup(*m2, v2->path);
        fact<std::string> controllers = read(m2->mount_point + "/cgroup.controllers");
        bool has_memory = false;
        if (controllers)
            for (std::string_view c : fields(trim(controllers.value)))
                if (c == "memory") has_memory = true;
        if (!has_memory) {
            std::string why = "cgroup2 hierarchy at " + m2->mount_point + " has no memory controller";
            if (v1_memory) why += " (hybrid layout: the v1 memory controller applies)";
            if (!controllers) why = "cannot read " + m2->mount_point + "/cgroup.controllers: " + controllers.reason;
            out.v2_memory_max = fact<limit>::unknown(why, m2->mount_point + "/cgroup.controllers");
        } else {
            if (!v1_memory) out.memory_path = fact<std::string>::of(loc.directory, cgroup_file + " + " + mountinfo_file);
            out.v2_memory_max =
                smallest_limit_on_path(read, loc, m2->root != "/", "memory.max", parse_cgroup_v2_memory_max);
            if (!loc.note.empty()) out.v2_memory_max.source += " (" + loc.note + ")";
        }
    }
    if (!out.memory_path.known && out.memory_path.reason.empty())
        out.memory_path = fact<std::string>::unknown("no memory controller in any cgroup hierarchy", cgroup_file);

    // CPU quota: v1 CFS files in the cpu hierarchy, else v2 cpu.max.
    cpu_quota best_cpu;
    std::string cpu_source, cpu_error;
    bool cpu_any = false;
    auto consider = [&](const fact<cpu_quota>& q, const std::string& file) {
        if (!q) {
            if (cpu_error.empty()) cpu_error = file + ": " + q.reason;
            return;
        }
        cpu_any = true;
        if (cpu_source.empty()) cpu_source = file;
        if (!q.value.unlimited && (best_cpu.unlimited || q.value.cpus() < best_cpu.cpus())) {
            best_cpu = q.value;
            cpu_source = file;
        }
    };
    if (v1_cpu) {
        if (const mount_entry* m = find_cgroup_mount(mounts.value, false, "cpu", v1_cpu->path)) {
            cgroup_location loc = locate_cgroup(*m, v1_cpu->path);
            for (const std::string& dir : walk_up(loc.directory, loc.mount_point)) {
                fact<std::string> q = read(dir + "/cpu.cfs_quota_us");
                fact<std::string> p = read(dir + "/cpu.cfs_period_us");
                if (!q || !p) {
                    if (cpu_error.empty()) cpu_error = dir + "/cpu.cfs_quota_us: " + (q ? p.reason : q.reason);
                    continue;
                }
                consider(parse_cgroup_v1_cfs(q.value, p.value), dir + "/cpu.cfs_quota_us");
            }
        } else {
            cpu_error = "no cgroup v1 mount with the cpu controller";
        }
    } else if (v2 && m2) {
        cgroup_location loc = locate_cgroup(*m2, v2->path);
        for (const std::string& dir : walk_up(loc.directory, loc.mount_point)) {
            if (dir == loc.mount_point && m2->root == "/") break;  // the root cgroup has no cpu.max
            fact<std::string> t = read(dir + "/cpu.max");
            if (!t) continue;  // absent when the cpu controller is not enabled here
            consider(parse_cgroup_v2_cpu_max(t.value), dir + "/cpu.max");
        }
        if (!cpu_any && cpu_error.empty()) {
            cpu_any = true;  // no cpu.max anywhere: no quota
            cpu_source = loc.directory + " (no cpu.max on the path)";
        }
    } else {
        cpu_error = "no cpu controller in any cgroup hierarchy";
    }
    out.cpu_limit = cpu_any ? fact<cpu_quota>::of(best_cpu, cpu_source) : fact<cpu_quota>::unknown(cpu_error);
    return out;
}

}  // namespace env_parse
}  // namespace detail
}  // namespace memdiag
