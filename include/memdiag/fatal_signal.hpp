// memdiag/fatal_signal.hpp - a heap snapshot when the program crashes: on
// SIGSEGV, SIGBUS, SIGILL, SIGFPE and SIGABRT. Opt-in:
//
//     memdiag::heap_profiler::dump_on_fatal_signal("/tmp/crash.pb.gz");
//     // or, with heap_profiler::start():  MEMDIAG_DUMP_ON_SIGNAL=1 MEMDIAG_DUMP_DIR=/tmp ./program
//     //   writes /tmp/heap.<pid>.signal.pb.gz
//
// The handler runs on an alternate signal stack (256 KiB, mapped by the call,
// for the calling thread: a stack overflow there is covered; other threads use
// their own stack unless they call dump_on_fatal_signal too). It writes with
// memory set aside beforehand: the heap profiler's emergency reserve (sized
// from the tables, heap_profile.hpp) becomes a bump arena for all of memdiag's
// internal memory, so malloc, which may be what crashed, is never called by
// memdiag; names are not demangled (the demangler mallocs; pprof demangles
// them). The file is written with open/write/fsync/rename. The table lock is
// tried for up to 200 ms: when the interrupted thread holds it (or a snapshot
// was being written when the crash came) the file holds a one-line note
// instead of a profile, and stderr says so. Then the previous dispositions are
// restored and the signal is raised again, so the previous handler runs, or
// the default action ends the process with the same status and core dump.
//
// Limits: listing the loaded objects calls dl_iterate_phdr, which takes the
// loader's lock (a crash inside dlopen would hang there); a crash on a thread
// without the alternate stack by stack overflow is not covered.
#pragma once

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "config.hpp"
#include "detail/emergency_reserve.hpp"
#include "detail/internal_alloc.hpp"
#include "detail/os/atomic_file.hpp"
#include "result.hpp"

#if MEMDIAG_POSIX
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>
#endif
#if MEMDIAG_OS_LINUX
#include <sys/syscall.h>
#endif

namespace memdiag {
namespace detail {
namespace fatal {

#if MEMDIAG_POSIX && MEMDIAG_ENABLED

/// The signals handled, and their names for the messages.
inline constexpr int signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
inline constexpr const char* signal_names[] = {"SIGSEGV", "SIGBUS", "SIGILL", "SIGFPE", "SIGABRT"};
inline constexpr std::size_t signal_count = sizeof signals / sizeof signals[0];
/// The alternate stack: the writer (symbolizer, deflate, file paths) fits with room.
inline constexpr std::size_t altstack_bytes = 256 * 1024;

/// What the profiler provides to the handler (heap_profile.hpp fills it in).
struct hooks {
    /// Takes the table lock if it becomes free within the wait; releases it again.
    bool (*tables_lockable)() noexcept = nullptr;
    /// Marks a snapshot as being written; false when one already is.
    bool (*begin_dump)() noexcept = nullptr;
    void (*end_dump)() noexcept = nullptr;
    /// The emergency reserve, taken over (nullptr: none), and its size.
    void* (*take_reserve)(std::size_t* size) noexcept = nullptr;
    /// Writes the snapshot.
    result (*write)(const char* path) noexcept = nullptr;
};

struct state {
    char path[1024] = {};
    struct sigaction previous[signal_count];
    bool installed = false;
    std::atomic<int> entered{0};
    std::atomic<bool> done{false};
    std::atomic<long> dumper{0};  ///< thread id writing, 0: none
    hooks h;
};
inline state g_state;

inline void say(const char* text) noexcept {
    std::size_t n = std::strlen(text);
    while (n != 0) {
        const ssize_t w = ::write(2, text, n);
        if (w <= 0) {
            if (w < 0 && errno == EINTR) continue;
            return;
        }
        text += w;
        n -= static_cast<std::size_t>(w);
    }
}

inline long thread_id() noexcept {
#if MEMDIAG_OS_LINUX
    return static_cast<long>(::syscall(SYS_gettid));
#else
    return static_cast<long>(reinterpret_cast<std::uintptr_t>(::pthread_self()));
#endif
}

inline const char* name_of(int sig) noexcept {
    for (std::size_t i = 0; i < signal_count; ++i)
        if (signals[i] == sig) return signal_names[i];
    return "signal";
}

/// Puts the dispositions back as they were before install().
inline void restore() noexcept {
    for (std::size_t i = 0; i < signal_count; ++i) ::sigaction(signals[i], &g_state.previous[i], nullptr);
}

/// Writes a one-line note where the snapshot would have gone, and to stderr.
inline void note(int sig, const char* why) noexcept {
    char line[512];
    std::snprintf(line, sizeof line, "memdiag: %s: no heap snapshot: %s\n", name_of(sig), why);
    say(line);
    (void)write_file_atomically(g_state.path, line, std::strlen(line));
}

/// The snapshot, with the reserve as the only memory. Signal context.
inline void dump(int sig) noexcept {
    const hooks& h = g_state.h;
    if (!h.begin_dump()) {
        note(sig, "a snapshot was being written when the signal came");
        return;
    }
    if (!h.tables_lockable()) {
        note(sig, "the heap profiler's table lock stayed held (by the interrupted thread?) for 200 ms");
        h.end_dump();
        return;
    }
    std::size_t size = 0;
    char* arena = static_cast<char*>(h.take_reserve(&size));
    if (arena == nullptr) {
        note(sig, "no memory was set aside (the emergency reserve was spent and could not be mapped again)");
        h.end_dump();
        return;
    }
    // The reserve's first word holds its size; the arena starts past it.
    g_emergency_arena.base = arena + 64;
    g_emergency_arena.size = size - 64;
    g_emergency_arena.used.store(0, std::memory_order_relaxed);
    g_emergency_arena.active.store(true, std::memory_order_release);
    const result r = h.write(g_state.path);
    g_emergency_arena.active.store(false, std::memory_order_release);
    char line[1400];
    if (r) std::snprintf(line, sizeof line, "memdiag: %s: heap snapshot written to %s\n", name_of(sig), g_state.path);
    else std::snprintf(line, sizeof line, "memdiag: %s: heap snapshot failed: %s\n", name_of(sig), r.message());
    say(line);
    h.end_dump();
}

/// The handler: dump once, then let the previous disposition act.
inline void on_signal(int sig, siginfo_t*, void*) {
    const int saved_errno = errno;
    const long me = thread_id();
    if (g_state.entered.fetch_add(1, std::memory_order_acq_rel) == 0) {
        g_state.dumper.store(me, std::memory_order_release);
        dump(sig);
        g_state.done.store(true, std::memory_order_release);
    } else if (g_state.dumper.load(std::memory_order_acquire) != me) {
        // Another thread crashed too: let the first finish its snapshot (up
        // to 10 s) before the process goes.
        for (int i = 0; i < 10000 && !g_state.done.load(std::memory_order_acquire); ++i) {
            struct timespec ms = {0, 1000000};
            ::nanosleep(&ms, nullptr);
        }
    }
    // Same thread again: the writer itself crashed; nothing more to try.
    restore();
    errno = saved_errno;
    // Blocked while the handler runs: delivered on return, to the previous
    // handler or the default action (a fault re-executes and faults again).
    ::raise(sig);
}

/// Installs the handlers and this thread's alternate stack. Not signal-safe.
inline result install(const char* path, const hooks& h) noexcept {
    if (path == nullptr || path[0] == '\0') {
        if (g_state.installed) restore();
        g_state.installed = false;
        return result::success();
    }
    if (std::strlen(path) >= sizeof g_state.path)
        return result::failuref("memdiag: fatal-signal snapshot path is too long (%zu bytes)", std::strlen(path));
    std::snprintf(g_state.path, sizeof g_state.path, "%s", path);
    g_state.h = h;
    stack_t current;
    if (::sigaltstack(nullptr, &current) == 0 && (current.ss_flags & SS_DISABLE) != 0) {
        void* mem = ::mmap(nullptr, altstack_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mem == MAP_FAILED)
            return result::failure("memdiag: cannot map an alternate signal stack; fatal-signal snapshots are off");
        stack_t ss{};
        ss.ss_sp = mem;
        ss.ss_size = altstack_bytes;
        ss.ss_flags = 0;
        if (::sigaltstack(&ss, nullptr) != 0) {
            ::munmap(mem, altstack_bytes);
            return result::failure("memdiag: sigaltstack failed; fatal-signal snapshots are off");
        }
    }
    if (!g_state.installed) {
        struct sigaction sa;
        std::memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = &on_signal;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        for (std::size_t i = 0; i < signal_count; ++i) {
            if (::sigaction(signals[i], &sa, &g_state.previous[i]) != 0) {
                for (std::size_t k = 0; k < i; ++k) ::sigaction(signals[k], &g_state.previous[k], nullptr);
                return result::failuref("memdiag: sigaction(%s) failed; fatal-signal snapshots are off",
                                        signal_names[i]);
            }
        }
        g_state.installed = true;
    }
    return result::success();
}

#else

struct hooks {
    bool (*tables_lockable)() noexcept = nullptr;
    bool (*begin_dump)() noexcept = nullptr;
    void (*end_dump)() noexcept = nullptr;
    void* (*take_reserve)(std::size_t* size) noexcept = nullptr;
    result (*write)(const char* path) noexcept = nullptr;
};

inline result install(const char* path, const hooks&) noexcept {
    if (path == nullptr || path[0] == '\0') return result::success();
    return result::failure("memdiag: fatal-signal snapshots need POSIX signals; not available here");
}

#endif  // MEMDIAG_POSIX && MEMDIAG_ENABLED

}  // namespace fatal
}  // namespace detail
}  // namespace memdiag
