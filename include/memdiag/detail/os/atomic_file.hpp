// memdiag/detail/os/atomic_file.hpp - write a whole file safely: a private
// temporary file in the target's directory, then a rename over the target.
//
// Guarantees: the target is either its old self or the complete new content,
// never a partial file; no temporary file is left behind on failure; the file is
// created 0600 (POSIX) and never through a symlink; a target that exists but is
// not a regular file (symlink, directory, device such as /dev/full) is refused
// rather than replaced. Nothing here allocates through the observed heap: paths
// and messages live in fixed or internal buffers.
#pragma once

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>

#include "../../config.hpp"
#include "../../result.hpp"
#include "../internal_alloc.hpp"

#if MEMDIAG_POSIX
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#elif MEMDIAG_OS_WINDOWS
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>
#endif  // MEMDIAG_POSIX / MEMDIAG_OS_WINDOWS

namespace memdiag {
namespace detail {

/// Longest path write_file_atomically accepts (bytes, terminator excluded).
constexpr std::size_t atomic_file_max_path = 4000;

/// A per-process counter that keeps concurrent writers' temporary names apart.
inline unsigned next_temp_serial() noexcept {
    static std::atomic<unsigned> serial{0};
    return serial.fetch_add(1, std::memory_order_relaxed);
}

#if MEMDIAG_POSIX

// Picks the right result whichever strerror_r variant libc declares: the GNU
// one returns the message, the XSI one returns an int and fills the buffer.
inline const char* strerror_pick(int /*xsi_status*/, const char* buffer) noexcept { return buffer; }
inline const char* strerror_pick(const char* gnu_message, const char* /*buffer*/) noexcept { return gnu_message; }

/// Describes errno value err without allocating; the text may live in buffer.
inline const char* describe_errno(int err, char* buffer, std::size_t size) noexcept {
    buffer[0] = '\0';
    const char* m = strerror_pick(strerror_r(err, buffer, size), buffer);
    if (m == nullptr || m[0] == '\0') {
        std::snprintf(buffer, size, "error %d", err);
        m = buffer;
    }
    return m;
}

/// Copies path into out (size bytes), keeping its start and end with "..."
/// in between when it is longer than `room` bytes: a message then keeps
/// the text that follows the path (the errno text) whole.
inline const char* fit_path(const char* path, std::size_t room, char* out, std::size_t size) noexcept {
    const std::size_t len = std::strlen(path);
    if (room > size - 1) room = size - 1;
    if (len <= room || room < 16) {
        std::snprintf(out, size, "%.*s", static_cast<int>(room), path);
        return out;
    }
    const std::size_t head = (room - 3) / 3, tail = room - 3 - head;  // the file name is at the end
    std::snprintf(out, size, "%.*s...%s", static_cast<int>(head), path, path + (len - tail));
    return out;
}

/// A failed result "<what> '<path>': <strerror(err)>"; a long path is
/// shortened in the middle so that the errno text is never cut off.
inline result errno_failure(const char* what, const char* path, int err) noexcept {
    char buf[128];
    const char* why = describe_errno(err, buf, sizeof buf);
    const std::size_t fixed = std::strlen(what) + std::strlen(why) + 5;  // " '" "': " terminator
    const std::size_t room = result::message_capacity > fixed + 16 ? result::message_capacity - 1 - fixed : 16;
    char shown[result::message_capacity];
    return result::failuref("%s '%s': %s", what, fit_path(path, room, shown, sizeof shown), why);
}

/// Writes all n bytes to fd, retrying on EINTR and short writes; 0 or an errno value.
inline int write_all(int fd, const void* data, std::size_t n) noexcept {
    const char* p = static_cast<const char*>(data);
    while (n != 0) {
        // Chunked so one write never exceeds what every kernel accepts at once.
        std::size_t chunk = n < (std::size_t(1) << 30) ? n : (std::size_t(1) << 30);
        ssize_t w = ::write(fd, p, chunk);
        if (w < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (w == 0) return EIO;
        p += w;
        n -= static_cast<std::size_t>(w);
    }
    return 0;
}

/// Writes size bytes to path atomically (temporary file + fsync + rename), mode 0600.
inline result write_file_atomically(const char* path, const void* data, std::size_t size) noexcept {
    if (path == nullptr || path[0] == '\0') return result::failure("cannot write file: empty path");
    std::size_t len = std::strlen(path);
    if (len > atomic_file_max_path) return result::failuref("cannot write file: path too long (%zu bytes)", len);

    // The rename below replaces a symlink itself, never its target, so this check
    // only turns surprising outcomes into clear errors; it is not what keeps the
    // write off a symlink's target.
    struct stat st;
    if (::lstat(path, &st) == 0) {
        if (S_ISLNK(st.st_mode)) return result::failuref("refusing to write '%s': it is a symbolic link", path);
        if (S_ISDIR(st.st_mode)) return result::failuref("cannot write '%s': it is a directory", path);
        if (!S_ISREG(st.st_mode))
            return result::failuref("refusing to write '%s': it exists and is not a regular file", path);
    } else if (errno != ENOENT) {
        return errno_failure("cannot write", path, errno);
    }

    // The temporary file goes next to the target, so rename stays on one file system.
    const char* slash = std::strrchr(path, '/');
    std::size_t dir_len = slash == nullptr ? 0 : static_cast<std::size_t>(slash - path) + 1;
    const char* base = path + dir_len;
    if (base[0] == '\0') return result::failuref("cannot write '%s': it names a directory", path);

    char tmp[atomic_file_max_path + 64];
    int fd = -1;
    int err = 0;
    for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
        // ".<name>.<pid>.<n>.tmp" must itself be a valid name (NAME_MAX, 255 on
        // Linux and macOS): a long name is cut, the suffix keeps it unique.
        char suffix[48];
        const int suffix_len = std::snprintf(suffix, sizeof suffix, ".%ld.%u.tmp", static_cast<long>(::getpid()),
                                             next_temp_serial());
        const std::size_t base_room = 255 - 1 - static_cast<std::size_t>(suffix_len > 0 ? suffix_len : 0);
        std::snprintf(tmp, sizeof tmp, "%.*s.%.*s%s", static_cast<int>(dir_len), path, static_cast<int>(base_room),
                      base, suffix);
        do {
            fd = ::open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        } while (fd < 0 && errno == EINTR);
        err = fd < 0 ? errno : 0;
        if (fd < 0 && err != EEXIST) break;
    }
    if (fd < 0) return errno_failure("cannot create a temporary file in the directory of", path, err);

    const char* step = "cannot write";
    err = write_all(fd, data, size);
    if (err == 0 && ::fsync(fd) != 0) {
        err = errno;
        step = "cannot flush";
    }
    if (::close(fd) != 0 && err == 0 && errno != EINTR) {
        err = errno;
        step = "cannot close";
    }
    if (err == 0 && ::rename(tmp, path) != 0) {
        err = errno;
        step = "cannot rename the temporary file onto";
    }
    if (err != 0) {
        ::unlink(tmp);
        return errno_failure(step, path, err);
    }

    // Make the rename itself durable; a failure here does not undo the write.
    char dir[atomic_file_max_path + 2];
    if (dir_len == 0) {
        dir[0] = '.', dir[1] = '\0';
    } else {
        std::memcpy(dir, path, dir_len);
        dir[dir_len] = '\0';
    }
    int dfd = ::open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)::fsync(dfd);
        ::close(dfd);
    }
    return result::success();
}

#elif MEMDIAG_OS_WINDOWS

/// A failed result "<what> '<path>': <system message for err>".
inline result win32_failure(const char* what, const char* path, DWORD err) noexcept {
    char buf[160];
    DWORD n = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, nullptr, err, 0, buf,
                             static_cast<DWORD>(sizeof buf), nullptr);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ')) --n;
    buf[n] = '\0';
    if (n == 0) std::snprintf(buf, sizeof buf, "error %lu", static_cast<unsigned long>(err));
    return result::failuref("%s '%s': %s", what, path, buf);
}

/// Writes size bytes to path (UTF-8) atomically: temporary file + flush + MoveFileExW.
inline result write_file_atomically(const char* path, const void* data, std::size_t size) noexcept {
    if (path == nullptr || path[0] == '\0') return result::failure("cannot write file: empty path");
    std::size_t len = std::strlen(path);
    if (len > atomic_file_max_path) return result::failure("cannot write file: path too long");

    const std::size_t wcap = atomic_file_max_path + 64;
    auto* wpath = static_cast<wchar_t*>(internal_malloc(2 * wcap * sizeof(wchar_t)));
    if (wpath == nullptr) return result::failure("cannot write file: out of memory");
    wchar_t* wtmp = wpath + wcap;
    int wlen = MultiByteToWideChar(CP_UTF8, 0, path, -1, wpath, static_cast<int>(wcap));
    if (wlen <= 0) {
        internal_free(wpath);
        return result::failuref("cannot write '%s': not valid UTF-8", path);
    }

    DWORD attrs = GetFileAttributesW(wpath);
    if (attrs != INVALID_FILE_ATTRIBUTES) {
        const char* why = nullptr;
        if (attrs & FILE_ATTRIBUTE_REPARSE_POINT) why = "refusing to write '%s': it is a symbolic link or junction";
        else if (attrs & FILE_ATTRIBUTE_DIRECTORY) why = "cannot write '%s': it is a directory";
        if (why != nullptr) {
            internal_free(wpath);
            return result::failuref(why, path);
        }
    }

    HANDLE h = INVALID_HANDLE_VALUE;
    DWORD err = 0;
    for (int attempt = 0; attempt < 100 && h == INVALID_HANDLE_VALUE; ++attempt) {
        _snwprintf(wtmp, wcap, L"%ls.%lu.%u.tmp", wpath, static_cast<unsigned long>(GetCurrentProcessId()),
                   next_temp_serial());
        wtmp[wcap - 1] = L'\0';
        h = CreateFileW(wtmp, GENERIC_WRITE, 0, nullptr, CREATE_NEW, FILE_ATTRIBUTE_NORMAL, nullptr);
        err = h == INVALID_HANDLE_VALUE ? GetLastError() : 0;
        if (h == INVALID_HANDLE_VALUE && err != ERROR_FILE_EXISTS) break;
    }
    if (h == INVALID_HANDLE_VALUE) {
        internal_free(wpath);
        return win32_failure("cannot create a temporary file next to", path, err);
    }

    const char* step = "cannot write";
    const char* p = static_cast<const char*>(data);
    while (err == 0 && size != 0) {
        DWORD chunk = size < (std::size_t(1) << 30) ? static_cast<DWORD>(size) : (DWORD(1) << 30);
        DWORD written = 0;
        if (!WriteFile(h, p, chunk, &written, nullptr)) err = GetLastError();
        else if (written == 0) err = ERROR_WRITE_FAULT;
        p += written;
        size -= written;
    }
    if (err == 0 && !FlushFileBuffers(h)) {
        err = GetLastError();
        step = "cannot flush";
    }
    CloseHandle(h);
    if (err == 0 && !MoveFileExW(wtmp, wpath, MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH)) {
        err = GetLastError();
        step = "cannot rename the temporary file onto";
    }
    if (err != 0) DeleteFileW(wtmp);
    internal_free(wpath);
    return err != 0 ? win32_failure(step, path, err) : result::success();
}

#else

/// Writing files is not supported on this platform: always a failure naming path.
inline result write_file_atomically(const char* path, const void*, std::size_t) noexcept {
    return result::failuref("cannot write '%s': file output is not supported on this platform",
                            path != nullptr ? path : "");
}

#endif  // MEMDIAG_POSIX / MEMDIAG_OS_WINDOWS / other

}  // namespace detail
}  // namespace memdiag
