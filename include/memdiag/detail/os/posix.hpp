// memdiag/detail/os/posix.hpp - primitives shared by the POSIX systems (Linux, macOS).
//
// Included by os/linux.hpp and os/darwin.hpp only; see detail/os.hpp for the
// contract every OS file fulfils.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "../../config.hpp"
#include "../env_parse.hpp"

namespace memdiag {
namespace detail {
namespace os {
namespace posix {

using env::fact;
using env::limit;

/// Returns a short description of an errno value (strerror is not thread-safe).
inline std::string errno_text(int e) {
    switch (e) {
        case ENOENT: return "no such file";
        case EACCES: return "permission denied";
        case EPERM: return "operation not permitted";
        case EISDIR: return "is a directory";
        case ENOTDIR: return "not a directory";
        case EINVAL: return "invalid argument";
        case ENOMEM: return "out of memory";
        case EMFILE: return "too many open files";
        default: return "errno " + std::to_string(e);
    }
}

/// Reads at most max_bytes of a (small, /proc-like) file. A file cut at
/// max_bytes loses its partial last line, so parsers never see half a line.
inline fact<std::string> read_file(const std::string& path, std::size_t max_bytes = 1u << 20) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fact<std::string>::unknown(errno_text(errno), path);
    std::string text;
    char buf[4096];
    bool truncated = false;
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int e = errno;
            ::close(fd);
            return fact<std::string>::unknown("read failed: " + errno_text(e), path);
        }
        if (n == 0) break;
        if (text.size() + std::size_t(n) > max_bytes) {
            text.append(buf, max_bytes - text.size());
            truncated = true;
            break;
        }
        text.append(buf, std::size_t(n));
    }
    ::close(fd);
    if (truncated) {
        std::size_t nl = text.rfind('\n');
        text.erase(nl == std::string::npos ? 0 : nl + 1);
    }
    return fact<std::string>::of(std::move(text), path);
}

/// Returns sysconf(_SC_PAGESIZE).
inline fact<std::uint64_t> page_size() {
    long v = ::sysconf(_SC_PAGESIZE);
    if (v <= 0) return fact<std::uint64_t>::unknown("sysconf failed", "sysconf(_SC_PAGESIZE)");
    return fact<std::uint64_t>::of(std::uint64_t(v), "sysconf(_SC_PAGESIZE)");
}

/// Reads one resource limit (the soft limit, the one that is enforced).
/// Uses the 64-bit interface where glibc has it, so a 32-bit build sees
/// limits above 4 GiB instead of "infinity".
inline fact<limit> resource_limit(int resource, const char* name) {
    std::string source = std::string("getrlimit(") + name + ")";
#if defined(__GLIBC__) && defined(_LARGEFILE64_SOURCE)
    struct rlimit64 rl;
    if (::getrlimit64(static_cast<__rlimit_resource_t>(resource), &rl) != 0)
        return fact<limit>::unknown(errno_text(errno), source);
    if (rl.rlim_cur == RLIM64_INFINITY) return fact<limit>::of(limit::none(), source);
#else
    struct rlimit rl;
    if (::getrlimit(resource, &rl) != 0) return fact<limit>::unknown(errno_text(errno), source);
    if (rl.rlim_cur == RLIM_INFINITY) return fact<limit>::of(limit::none(), source);
#endif
    return fact<limit>::of(limit::of(std::uint64_t(rl.rlim_cur)), source);
}

/// Returns RLIMIT_AS, the address-space limit (`ulimit -v`, in bytes here).
inline fact<limit> rlimit_address_space() { return resource_limit(RLIMIT_AS, "RLIMIT_AS"); }
/// Returns RLIMIT_DATA (since Linux 4.7 it also limits private mmap).
inline fact<limit> rlimit_data() { return resource_limit(RLIMIT_DATA, "RLIMIT_DATA"); }
/// Returns RLIMIT_STACK, the main thread's stack size limit.
inline fact<limit> rlimit_stack() { return resource_limit(RLIMIT_STACK, "RLIMIT_STACK"); }

/// Returns "sysname release" from uname(), e.g. "Linux 6.1.0".
inline fact<std::string> kernel_version() {
    struct utsname u;
    if (::uname(&u) != 0) return fact<std::string>::unknown(errno_text(errno), "uname()");
    return fact<std::string>::of(std::string(u.sysname) + " " + u.release, "uname()");
}

/// Returns uname().machine: the kernel's architecture, which differs from the
/// build's for a 32-bit program on a 64-bit kernel (setarch and qemu fake it).
inline fact<std::string> kernel_machine() {
    struct utsname u;
    if (::uname(&u) != 0) return fact<std::string>::unknown(errno_text(errno), "uname().machine");
    return fact<std::string>::of(u.machine, "uname().machine");
}

/// Looks up a symbol anywhere in the process; nullptr when absent.
inline void* find_symbol(const char* name) noexcept { return ::dlsym(RTLD_DEFAULT, name); }

/// Calls a C function found by find_symbol through the right pointer type.
template <class Fn>
Fn symbol_as(void* p) noexcept {
    return reinterpret_cast<Fn>(p);
}

/// Names the malloc in use: finds the object that defines the malloc this
/// process calls (a symbol being present elsewhere does not mean it is used),
/// then asks that allocator for its version where it can.
inline fact<std::string> malloc_implementation() {
    std::string source = "dladdr(dlsym(RTLD_DEFAULT, \"malloc\"))";
    void* m = find_symbol("malloc");
    Dl_info info;
    if (!m || ::dladdr(m, &info) == 0 || !info.dli_fname)
        return fact<std::string>::unknown("malloc not found through dlsym (static link?)", source);
    std::string object = info.dli_fname;
    source += " = " + object;
    auto contains = [&](const char* s) { return object.find(s) != std::string::npos; };
    if (contains("asan") || contains("tsan") || contains("msan") || contains("hwasan"))
        return fact<std::string>::of("sanitizer allocator", source);
    if (contains("jemalloc")) {
        std::string name = "jemalloc";
        using mallctl_fn = int (*)(const char*, void*, std::size_t*, void*, std::size_t);
        if (void* p = find_symbol("mallctl")) {
            const char* version = nullptr;
            std::size_t len = sizeof version;
            if (symbol_as<mallctl_fn>(p)("version", &version, &len, nullptr, 0) == 0 && version)
                name += std::string(" ") + version;
        }
        return fact<std::string>::of(name, source);
    }
    if (contains("tcmalloc")) {
        std::string name = "tcmalloc";
        using tc_version_fn = const char* (*)(int*, int*, const char**);
        if (void* p = find_symbol("tc_version"))
            if (const char* v = symbol_as<tc_version_fn>(p)(nullptr, nullptr, nullptr)) name = v;
        return fact<std::string>::of(name, source);
    }
    if (contains("mimalloc")) {
        std::string name = "mimalloc";
        if (void* p = find_symbol("mi_version")) {
            int v = symbol_as<int (*)()>(p)();  // e.g. 212 for 2.1.2
            name += " " + std::to_string(v / 100) + "." + std::to_string(v / 10 % 10) + "." + std::to_string(v % 10);
        }
        return fact<std::string>::of(name, source);
    }
    if (contains("musl")) return fact<std::string>::of("musl mallocng", source);
    if (contains("libsystem_malloc")) return fact<std::string>::of("macOS libmalloc", source);
    if (contains("libc.so") || contains("libc-")) {
        if (void* p = find_symbol("gnu_get_libc_version"))
            return fact<std::string>::of(std::string("glibc ") + symbol_as<const char* (*)()>(p)() + " malloc (ptmalloc2)",
                                         source);
        return fact<std::string>::of("libc malloc", source);
    }
    // malloc defined by the executable itself: a statically linked allocator
    // or a sanitizer runtime (clang links those statically).
    if (find_symbol("__asan_init") || find_symbol("__tsan_init") || find_symbol("__msan_init"))
        return fact<std::string>::of("sanitizer allocator", source);
    if (find_symbol("mallctl")) return fact<std::string>::of("jemalloc (linked in)", source);
    if (find_symbol("mi_version")) return fact<std::string>::of("mimalloc (linked in)", source);
    if (find_symbol("tc_version")) return fact<std::string>::of("tcmalloc (linked in)", source);
    return fact<std::string>::of("malloc defined in " + object, source);
}

}  // namespace posix
}  // namespace os
}  // namespace detail
}  // namespace memdiag
