// memdiag/detail/periodic_dump_impl.hpp - the definitions behind
// periodic_dump.hpp: the dumping thread. Included by periodic_dump.hpp when
// header-only, and by memdiag/implementation.hpp under
// MEMDIAG_SEPARATE_IMPLEMENTATION.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "../config.hpp"
#include "../heap_profile.hpp"
#include "../periodic_dump.hpp"
#include "../result.hpp"
#include "internal_alloc.hpp"
#include "internal_vector.hpp"
#include "internal_section.hpp"

#if MEMDIAG_POSIX && MEMDIAG_ENABLED
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#endif

namespace memdiag {
namespace detail {
namespace dumps {

/// Parses "60s", "500ms", "5m", "1h" or "60" (seconds) into milliseconds; 0 when invalid.
inline std::uint64_t parse_period_ms(const char* text) noexcept {
    if (text == nullptr) return 0;
    char* end = nullptr;
    const double v = std::strtod(text, &end);
    if (end == text || !(v > 0)) return 0;
    double scale = 1000;
    if (std::strcmp(end, "ms") == 0) scale = 1;
    else if (std::strcmp(end, "s") == 0 || *end == '\0') scale = 1000;
    else if (std::strcmp(end, "m") == 0) scale = 60000;
    else if (std::strcmp(end, "h") == 0) scale = 3600000;
    else return 0;
    const double ms = v * scale;
    if (ms < 1 || ms > 1e12) return 0;
    return static_cast<std::uint64_t>(ms);
}

/// Longest directory name accepted (bytes, terminator included).
inline constexpr std::size_t max_dir = 900;

#if MEMDIAG_POSIX && MEMDIAG_ENABLED
/// The dumping thread's state (internal memory).
struct dumper {
    char dir[max_dir] = {};
    std::uint64_t period_ms = 0;
    unsigned keep = 0;
    long pid = 0;
    pthread_t thread{};
    pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t wake;
    bool stopping = false;  // under mutex
    std::atomic<std::uint64_t> written{0}, failed{0};
    char last_path[1024] = {};   // under mutex
    char last_error[256] = {};   // under mutex

    /// Writes one dump and prunes. Not holding mutex while writing.
    void dump_once() {
        char path[1024];
        timespec ts{};
        ::clock_gettime(CLOCK_REALTIME, &ts);
        tm utc{};
        ::gmtime_r(&ts.tv_sec, &utc);
        std::snprintf(path, sizeof path, "%s/heap.%ld.%04d%02d%02dT%02d%02d%02d.%03ldZ.pb.gz", dir, pid,
                      utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                      static_cast<long>(ts.tv_nsec / 1000000));
        const result r = write_heap_profile(path);
        pthread_mutex_lock(&mutex);
        if (r) std::snprintf(last_path, sizeof last_path, "%s", path);
        else std::snprintf(last_error, sizeof last_error, "%s", r.message());
        pthread_mutex_unlock(&mutex);
        if (r) {
            written.fetch_add(1, std::memory_order_relaxed);
            prune();
        } else {
            failed.fetch_add(1, std::memory_order_relaxed);
            std::fprintf(stderr, "memdiag: periodic heap dump failed: %s\n", r.message());
        }
    }

    /// Deletes this process's oldest dumps beyond `keep` (names sort by time).
    void prune() {
        char prefix[48];
        const int plen = std::snprintf(prefix, sizeof prefix, "heap.%ld.", pid);
        DIR* d = ::opendir(dir);
        if (d == nullptr) return;
        internal_vector<internal_string> names;
        while (dirent* e = ::readdir(d)) {
            const std::size_t n = std::strlen(e->d_name);
            if (n > static_cast<std::size_t>(plen) + 6 && std::strncmp(e->d_name, prefix, static_cast<std::size_t>(plen)) == 0 &&
                std::strcmp(e->d_name + n - 6, ".pb.gz") == 0)
                names.emplace_back(e->d_name);
        }
        ::closedir(d);
        if (names.size() <= keep) return;
        // Oldest first: partial selection sort is plenty for a handful of files.
        for (std::size_t i = 0; i + 1 < names.size(); ++i)
            for (std::size_t j = i + 1; j < names.size(); ++j)
                if (names[j] < names[i]) names[i].swap(names[j]);
        for (std::size_t i = 0; i + keep < names.size(); ++i) {
            char path[1200];
            std::snprintf(path, sizeof path, "%s/%s", dir, names[i].c_str());
            ::unlink(path);
        }
    }

    void run() {
        timespec next{};
        ::clock_gettime(CLOCK_MONOTONIC, &next);
        for (;;) {
            next.tv_sec += static_cast<time_t>(period_ms / 1000);
            next.tv_nsec += static_cast<long>(period_ms % 1000) * 1000000L;
            if (next.tv_nsec >= 1000000000L) next.tv_sec += 1, next.tv_nsec -= 1000000000L;
            pthread_mutex_lock(&mutex);
            while (!stopping && pthread_cond_timedwait(&wake, &mutex, &next) != ETIMEDOUT) {
            }
            const bool stop = stopping;
            pthread_mutex_unlock(&mutex);
            if (stop) return;
#if MEMDIAG_HAS_EXCEPTIONS
            try {
#endif
                dump_once();
#if MEMDIAG_HAS_EXCEPTIONS
            } catch (const std::bad_alloc&) {
                failed.fetch_add(1, std::memory_order_relaxed);
                std::fprintf(stderr, "memdiag: periodic heap dump failed: out of memory\n");
            }
#endif
            // A dump that took longer than the period: start counting from now.
            timespec now{};
            ::clock_gettime(CLOCK_MONOTONIC, &now);
            if (now.tv_sec > next.tv_sec || (now.tv_sec == next.tv_sec && now.tv_nsec > next.tv_nsec)) next = now;
        }
    }

    static void* thread_main(void* self) {
        internal_section quiet;
        static_cast<dumper*>(self)->run();
        return nullptr;
    }

    // For destroy_worker.
    void shutdown_and_join() noexcept {
        pthread_mutex_lock(&mutex);
        stopping = true;
        pthread_cond_signal(&wake);
        pthread_mutex_unlock(&mutex);
        pthread_join(thread, nullptr);
        pthread_cond_destroy(&wake);
    }
};

MEMDIAG_IMPL void destroy_worker(dumper* d) noexcept {
    d->shutdown_and_join();
    d->~dumper();
    internal_free(d);
}
#else
MEMDIAG_IMPL void destroy_worker(dumper*) noexcept {}
#endif  // MEMDIAG_POSIX && MEMDIAG_ENABLED

}  // namespace dumps
}  // namespace detail


MEMDIAG_IMPL std::uint64_t periodic_dump::dumps_written() const noexcept {
#if MEMDIAG_POSIX && MEMDIAG_ENABLED
    return impl_ != nullptr ? impl_->written.load(std::memory_order_relaxed) : 0;
#else
    return 0;
#endif
}

MEMDIAG_IMPL std::uint64_t periodic_dump::dumps_failed() const noexcept {
#if MEMDIAG_POSIX && MEMDIAG_ENABLED
    return impl_ != nullptr ? impl_->failed.load(std::memory_order_relaxed) : 0;
#else
    return 0;
#endif
}

MEMDIAG_IMPL const char* periodic_dump::last_path(char* buf, std::size_t size) const noexcept {
    if (size == 0) return buf;
    buf[0] = '\0';
#if MEMDIAG_POSIX && MEMDIAG_ENABLED
    if (impl_ != nullptr) {
        pthread_mutex_lock(&impl_->mutex);
        std::snprintf(buf, size, "%s", impl_->last_path);
        pthread_mutex_unlock(&impl_->mutex);
    }
#endif
    return buf;
}

MEMDIAG_IMPL periodic_dump dump_every(double seconds, const char* dir, unsigned keep) noexcept {
    periodic_dump d;
#if MEMDIAG_POSIX && MEMDIAG_ENABLED
    if (!(seconds >= 0.001) || seconds > 1e9) {
        d.status_ = result::failure("cannot dump periodically: the period must be from 0.001 to 1e9 seconds");
        return d;
    }
    if (dir == nullptr || dir[0] == '\0') dir = ".";
    struct stat st {};
    if (::stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        d.status_ = result::failuref("cannot dump periodically into '%s': not a directory", dir);
        return d;
    }
    if (std::strlen(dir) >= detail::dumps::max_dir) {
        d.status_ = result::failure("cannot dump periodically: directory name too long");
        return d;
    }
    detail::internal_section quiet;
    void* mem = detail::internal_malloc(sizeof(detail::dumps::dumper));
    if (mem == nullptr) {
        d.status_ = result::failure("cannot dump periodically: out of memory");
        return d;
    }
    auto* p = new (mem) detail::dumps::dumper();
    std::snprintf(p->dir, sizeof p->dir, "%s", dir);
    p->period_ms = static_cast<std::uint64_t>(seconds * 1000.0 + 0.5);
    p->keep = keep < 1 ? 1 : keep;
    p->pid = static_cast<long>(::getpid());
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&p->wake, &attr);
    pthread_condattr_destroy(&attr);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);  // signals stay with the program's threads
    const int e = pthread_create(&p->thread, nullptr, &detail::dumps::dumper::thread_main, p);
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (e != 0) {
        pthread_cond_destroy(&p->wake);
        p->~dumper();
        detail::internal_free(mem);
        d.status_ = result::failuref("cannot dump periodically: cannot start a thread (error %d)", e);
        return d;
    }
    d.impl_ = p;
    d.status_ = result::success();
#elif !MEMDIAG_ENABLED
    (void)seconds, (void)dir, (void)keep;
    d.status_ = result::failure("periodic dumps are disabled (MEMDIAG_DISABLE)");
#else
    (void)seconds, (void)dir, (void)keep;
    d.status_ = result::failure("periodic dumps need POSIX threads; not available on this platform");
#endif
    return d;
}

MEMDIAG_IMPL periodic_dump dump_every_from_env() noexcept {
    const char* every = std::getenv("MEMDIAG_DUMP_EVERY");
    periodic_dump d;
    if (every == nullptr || every[0] == '\0') {
        d.status_ = result::failure("not dumping: MEMDIAG_DUMP_EVERY is unset");
        return d;
    }
    const std::uint64_t ms = detail::dumps::parse_period_ms(every);
    if (ms == 0) {
        d.status_ = result::failuref("not dumping: MEMDIAG_DUMP_EVERY='%s' is not a period like 60s, 500ms, 5m or 1h",
                                     every);
        std::fprintf(stderr, "memdiag: %s\n", d.status_.message());  // a typo must not pass unnoticed
        return d;
    }
    const char* dir = std::getenv("MEMDIAG_DUMP_DIR");
    const char* keep_text = std::getenv("MEMDIAG_DUMP_KEEP");
    const long keep = keep_text != nullptr ? std::strtol(keep_text, nullptr, 10) : 10;
    return dump_every(static_cast<double>(ms) / 1000.0, dir,
                      keep < 1 ? 1u : static_cast<unsigned>(keep));
}

}  // namespace memdiag
