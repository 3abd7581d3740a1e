// memdiag/detail/os/elf_objects.hpp - loaded objects and their symbol tables.
//
// The primitives behind detail/symbols.hpp: which objects are loaded where
// (dl_iterate_phdr), their GNU build ids, the function symbols of an object
// file (.symtab and .dynsym, read from an mmap of the file: dladdr sees only
// exported symbols, and g++ executables export almost none), dladdr as a last
// resort, and C++ demangling. On platforms without ELF objects the lists come
// back empty and names unknown.
//
// Exports: MEMDIAG_HAS_ELF_OBJECTS (0/1), exec_segment, object_record,
// list_objects(), objects_generation(), mapped_file, elf_symbol,
// read_function_symbols(), debug_file_path(), dladdr_symbol(), demangle().
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "../../config.hpp"
#include "../internal_alloc.hpp"
#include "../internal_vector.hpp"
#include "../internal_section.hpp"

#if defined(__has_include)
#if defined(__ELF__) && __has_include(<link.h>) && __has_include(<sys/mman.h>) && \
    (MEMDIAG_OS_LINUX || defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__))
#define MEMDIAG_HAS_ELF_OBJECTS 1
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <climits>
#endif
#if MEMDIAG_POSIX && __has_include(<dlfcn.h>)
#define MEMDIAG_HAS_DLADDR 1
#include <dlfcn.h>
#endif
#if __has_include(<cxxabi.h>)
#define MEMDIAG_HAS_CXXABI 1
#include <cxxabi.h>
#endif
#if MEMDIAG_OS_LINUX && __has_include(<sys/auxv.h>)
#define MEMDIAG_HAS_AUXV 1
#include <sys/auxv.h>
#endif
#endif  // __has_include
#ifndef MEMDIAG_HAS_ELF_OBJECTS
#define MEMDIAG_HAS_ELF_OBJECTS 0
#endif
#ifndef MEMDIAG_HAS_DLADDR
#define MEMDIAG_HAS_DLADDR 0
#endif
#ifndef MEMDIAG_HAS_CXXABI
#define MEMDIAG_HAS_CXXABI 0
#endif
#ifndef MEMDIAG_HAS_AUXV
#define MEMDIAG_HAS_AUXV 0
#endif

namespace memdiag {
namespace detail {
namespace elf {

/// An executable segment of a loaded object, as the kernel's maps show it.
struct exec_segment {
    std::uintptr_t start;        ///< page-aligned runtime start
    std::uintptr_t limit;        ///< page-aligned runtime end (exclusive)
    std::uintptr_t file_offset;  ///< page-aligned offset of `start` in the file
};

/// One loaded object (the executable, a shared library, the vDSO).
struct object_record {
    std::uintptr_t bias = 0;   ///< runtime address = link-time address + bias
    internal_string path;      ///< absolute, symlinks resolved; "[vdso]" for the vDSO
    internal_string build_id;  ///< NT_GNU_BUILD_ID as lowercase hex; empty if none
    internal_vector<exec_segment> segments;  ///< its executable PT_LOAD segments
    bool pseudo = false;       ///< true when `path` names no file
};

/// A function symbol of an object file: link-time address range and name.
struct elf_symbol {
    std::uintptr_t addr;
    std::uintptr_t size;  ///< 0 when the symbol table does not say
    const char* name;     ///< NUL-terminated, inside a mapped_file
    unsigned rank;        ///< preference among symbols at one address (higher wins)
};

/// A read-only private mapping of a whole file; move-only.
class mapped_file {
public:
    mapped_file() noexcept = default;
    mapped_file(mapped_file&& o) noexcept : data_(o.data_), size_(o.size_) {
        o.data_ = nullptr;
        o.size_ = 0;
    }
    mapped_file& operator=(mapped_file&& o) noexcept {
        if (this != &o) {
            reset();
            data_ = o.data_;
            size_ = o.size_;
            o.data_ = nullptr;
            o.size_ = 0;
        }
        return *this;
    }
    mapped_file(const mapped_file&) = delete;
    mapped_file& operator=(const mapped_file&) = delete;
    ~mapped_file() { reset(); }

    /// Maps the regular file at path; false (and empty) on any failure.
    bool open(const char* path) noexcept {
        reset();
#if MEMDIAG_HAS_ELF_OBJECTS
        const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) return false;
        struct stat st;
        if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
            void* p = ::mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
            if (p != MAP_FAILED) {
                data_ = static_cast<const unsigned char*>(p);
                size_ = static_cast<std::size_t>(st.st_size);
            }
        }
        ::close(fd);
#else
        (void)path;
#endif  // MEMDIAG_HAS_ELF_OBJECTS
        return data_ != nullptr;
    }

    /// Unmaps the file.
    void reset() noexcept {
#if MEMDIAG_HAS_ELF_OBJECTS
        if (data_ != nullptr) ::munmap(const_cast<unsigned char*>(data_), size_);
#endif
        data_ = nullptr;
        size_ = 0;
    }

    /// First byte of the mapping; nullptr when empty.
    const unsigned char* data() const noexcept { return data_; }
    /// Size in bytes.
    std::size_t size() const noexcept { return size_; }

private:
    const unsigned char* data_ = nullptr;
    std::size_t size_ = 0;
};

/// Appends bytes as lowercase hex.
inline void append_hex(internal_string& s, const unsigned char* p, std::size_t n) {
    static const char digits[] = "0123456789abcdef";
    for (std::size_t i = 0; i < n; ++i) {
        s.push_back(digits[p[i] >> 4]);
        s.push_back(digits[p[i] & 15]);
    }
}

#if MEMDIAG_HAS_ELF_OBJECTS

/// The system page size (mappings are page-granular).
inline std::uintptr_t mapping_page_size() noexcept {
    const long p = ::sysconf(_SC_PAGESIZE);
    return p > 0 ? static_cast<std::uintptr_t>(p) : 4096;
}

/// Canonical absolute path of `name` ("" = the main program); `name` itself when
/// it cannot be resolved (a deleted file).
inline internal_string resolve_object_path(const char* name) {
    char buf[PATH_MAX + 1];
    const char* src = (name == nullptr || name[0] == '\0') ? "/proc/self/exe" : name;
    if (::realpath(src, buf) != nullptr) return internal_string(buf);
    if (src != name) {  // /proc/self/exe of a deleted file: readlink still names it
        const ssize_t n = ::readlink(src, buf, PATH_MAX);
        if (n > 0) return internal_string(buf, static_cast<std::size_t>(n));
    }
    return internal_string(src);
}

/// The NT_GNU_BUILD_ID in a loaded PT_NOTE segment, appended as hex to `out`.
inline bool find_build_id(const unsigned char* p, std::size_t size, std::size_t align, internal_string& out) {
    align = align == 8 ? 8 : 4;  // notes are 4-aligned, or 8 in 8-aligned segments
    const auto up = [align](std::size_t v) { return (v + align - 1) & ~(align - 1); };
    std::size_t pos = 0;
    while (pos <= size && size - pos >= sizeof(ElfW(Nhdr))) {
        ElfW(Nhdr) h;
        std::memcpy(&h, p + pos, sizeof h);
        const std::size_t name_at = pos + sizeof h;
        if (h.n_namesz > size || h.n_descsz > size) return false;
        const std::size_t desc_at = name_at + up(h.n_namesz);
        if (desc_at > size || h.n_descsz > size - desc_at) return false;
        if (h.n_type == NT_GNU_BUILD_ID && h.n_namesz == 4 && std::memcmp(p + name_at, "GNU", 4) == 0) {
            append_hex(out, p + desc_at, h.n_descsz);
            return true;
        }
        pos = desc_at + up(h.n_descsz);
    }
    return false;
}

/// Collects one object per dl_iterate_phdr entry.
struct list_context {
    internal_vector<object_record>* out;
    std::uintptr_t page;
    std::uintptr_t vdso;
    bool failed;
};

inline void add_object(struct dl_phdr_info* info, list_context& ctx) {
    object_record rec;
    rec.bias = static_cast<std::uintptr_t>(info->dlpi_addr);
    bool is_vdso = false;
    for (int i = 0; i < info->dlpi_phnum; ++i) {
        const ElfW(Phdr)& ph = info->dlpi_phdr[i];
        const std::uintptr_t at = rec.bias + static_cast<std::uintptr_t>(ph.p_vaddr);
        if (ph.p_type == PT_LOAD) {
            if (ctx.vdso != 0 && ctx.vdso >= at && ctx.vdso - at < ph.p_memsz) is_vdso = true;
            if ((ph.p_flags & PF_X) == 0) continue;
            // The kernel maps whole pages: round the segment out to them, and
            // its file offset down by the same amount (p_offset and p_vaddr are
            // congruent modulo the page size).
            exec_segment seg;
            seg.start = at & ~(ctx.page - 1);
            seg.limit = (at + ph.p_memsz + ctx.page - 1) & ~(ctx.page - 1);
            seg.file_offset = static_cast<std::uintptr_t>(ph.p_offset) & ~(ctx.page - 1);
            rec.segments.push_back(seg);
        } else if (ph.p_type == PT_NOTE && rec.build_id.empty()) {
            find_build_id(reinterpret_cast<const unsigned char*>(at), ph.p_memsz, ph.p_align, rec.build_id);
        }
    }
    if (is_vdso) {
        rec.path = "[vdso]";
        rec.pseudo = true;
    } else {
        rec.path = resolve_object_path(info->dlpi_name);
    }
    ctx.out->push_back(static_cast<object_record&&>(rec));
}

inline int list_one_object(struct dl_phdr_info* info, std::size_t, void* arg) {
    auto& ctx = *static_cast<list_context*>(arg);
#if MEMDIAG_HAS_EXCEPTIONS
    // Never let an exception cross the C library's frames.
    try {
        add_object(info, ctx);
    } catch (...) {
        ctx.failed = true;
        return 1;
    }
#else
    add_object(info, ctx);
#endif  // MEMDIAG_HAS_EXCEPTIONS
    return 0;
}

/// Replaces `out` with every loaded object, in the loader's order. Returns false
/// if the platform cannot tell; throws std::bad_alloc when out of memory.
inline bool list_objects(internal_vector<object_record>& out) {
    internal_section quiet;  // dl_iterate_phdr and realpath may malloc
    out.clear();
    list_context ctx{&out, mapping_page_size(), 0, false};
#if MEMDIAG_HAS_AUXV
    ctx.vdso = static_cast<std::uintptr_t>(::getauxval(AT_SYSINFO_EHDR));
#endif
    ::dl_iterate_phdr(&list_one_object, &ctx);
    if (ctx.failed) throw_bad_alloc();
    return true;
}

inline int read_generation(struct dl_phdr_info* info, std::size_t size, void* arg) {
    auto* gen = static_cast<unsigned long long*>(arg);
    if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs))
        *gen = static_cast<unsigned long long>(info->dlpi_adds) * 0x100000001ull + info->dlpi_subs;
    return 1;  // the counters are the same in every entry: one is enough
}

/// A number that changes whenever an object is loaded or unloaded.
inline unsigned long long objects_generation() noexcept {
    unsigned long long gen = 0;
    ::dl_iterate_phdr(&read_generation, &gen);
    return gen;
}

/// Reads the function symbols of a mapped ELF file (its .symtab and .dynsym)
/// into `out`, as link-time addresses; the names point into `file`. Returns
/// whether the file had a .symtab. Malformed files yield what could be checked.
inline bool read_function_symbols(const mapped_file& file, internal_vector<elf_symbol>& out) {
    const unsigned char* base = file.data();
    const std::size_t size = file.size();
    if (base == nullptr || size < sizeof(ElfW(Ehdr))) return false;
    ElfW(Ehdr) eh;
    std::memcpy(&eh, base, sizeof eh);
    const unsigned char native_class = sizeof(void*) == 8 ? ELFCLASS64 : ELFCLASS32;
    if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != native_class) return false;
    if (eh.e_shentsize != sizeof(ElfW(Shdr)) || eh.e_shoff == 0 || eh.e_shoff > size ||
        eh.e_shnum > (size - eh.e_shoff) / sizeof(ElfW(Shdr)))
        return false;
    const auto* sh = reinterpret_cast<const ElfW(Shdr)*>(base + eh.e_shoff);  // mmap is page-aligned
    if ((eh.e_shoff & (alignof(ElfW(Shdr)) - 1)) != 0) return false;
    bool has_symtab = false;
    for (unsigned i = 0; i < eh.e_shnum; ++i) {
        if (sh[i].sh_type != SHT_SYMTAB && sh[i].sh_type != SHT_DYNSYM) continue;
        const ElfW(Shdr)& tab = sh[i];
        if (tab.sh_entsize != sizeof(ElfW(Sym)) || tab.sh_offset > size || tab.sh_size > size - tab.sh_offset ||
            (tab.sh_offset & (alignof(ElfW(Sym)) - 1)) != 0 || tab.sh_link >= eh.e_shnum)
            continue;
        const ElfW(Shdr)& str = sh[tab.sh_link];
        if (str.sh_type != SHT_STRTAB || str.sh_size == 0 || str.sh_offset > size ||
            str.sh_size > size - str.sh_offset)
            continue;
        const char* strings = reinterpret_cast<const char*>(base + str.sh_offset);
        if (strings[str.sh_size - 1] != '\0') continue;  // then every name below is terminated
        if (tab.sh_type == SHT_SYMTAB) has_symtab = true;
        const auto* syms = reinterpret_cast<const ElfW(Sym)*>(base + tab.sh_offset);
        const std::size_t n = tab.sh_size / sizeof(ElfW(Sym));
        for (std::size_t k = 1; k < n; ++k) {
            const ElfW(Sym)& s = syms[k];
            // st_info packs binding (high nibble) and type (low) in both ELF classes.
            if ((s.st_info & 0xf) != STT_FUNC || s.st_shndx == SHN_UNDEF || s.st_value == 0 ||
                s.st_name == 0 || s.st_name >= str.sh_size)
                continue;
            const char* name = strings + s.st_name;
            const unsigned bind = static_cast<unsigned>(s.st_info >> 4);
            unsigned rank = bind == STB_GLOBAL ? 4u : bind == STB_WEAK ? 2u : 0u;
            if (!(name[0] == '_' && name[1] == '_')) rank += 1;  // malloc over __libc_malloc
            std::uintptr_t addr = static_cast<std::uintptr_t>(s.st_value);
#if defined(__arm__)
            addr &= ~static_cast<std::uintptr_t>(1);  // Thumb bit
#endif
            out.push_back(elf_symbol{addr, static_cast<std::uintptr_t>(s.st_size), name, rank});
        }
    }
    return has_symtab;
}

/// Where a separate debug file for `build_id` would be (the .build-id tree of
/// debug packages such as libc6-dbg); empty when build_id is too short.
inline internal_string debug_file_path(const internal_string& build_id) {
    internal_string p;
    if (build_id.size() < 4) return p;
    p = "/usr/lib/debug/.build-id/";
    p.append(build_id, 0, 2);
    p.push_back('/');
    p.append(build_id, 2, internal_string::npos);
    p.append(".debug");
    return p;
}

#else  // no ELF objects: nothing is known

/// Leaves `out` empty: this platform has no dl_iterate_phdr.
inline bool list_objects(internal_vector<object_record>& out) {
    out.clear();
    return false;
}
/// Always 0 here.
inline unsigned long long objects_generation() noexcept { return 0; }
/// Reads nothing here.
inline bool read_function_symbols(const mapped_file&, internal_vector<elf_symbol>&) { return false; }
/// Always empty here.
inline internal_string debug_file_path(const internal_string&) { return internal_string(); }

#endif  // MEMDIAG_HAS_ELF_OBJECTS

/// The exported symbol containing pc according to the dynamic loader, or
/// nullptr; sets *start to its address. Sees only exported (dynamic) symbols.
inline const char* dladdr_symbol(std::uintptr_t pc, std::uintptr_t* start) noexcept {
#if MEMDIAG_HAS_DLADDR
    Dl_info info;
    if (::dladdr(reinterpret_cast<void*>(pc), &info) != 0 && info.dli_sname != nullptr &&
        info.dli_saddr != nullptr && reinterpret_cast<std::uintptr_t>(info.dli_saddr) <= pc) {
        *start = reinterpret_cast<std::uintptr_t>(info.dli_saddr);
        return info.dli_sname;
    }
#else
    (void)pc;
    (void)start;
#endif  // MEMDIAG_HAS_DLADDR
    return nullptr;
}

/// Where the optimizer's clone suffix of a symbol starts (".cold",
/// ".constprop.0", ".isra.0", ".part.0", ".lto_priv.0", ".localalias"), or null.
inline const char* clone_suffix(const char* name) noexcept {
    static const char* const suffixes[] = {".cold", ".constprop.", ".isra.", ".part.", ".lto_priv.", ".localalias"};
    const char* first = nullptr;
    for (const char* s : suffixes) {
        const char* at = std::strstr(name, s);
        if (at != nullptr && at != name && (first == nullptr || at < first)) first = at;
    }
    return first;
}

/// Demangles an Itanium C++ ABI name; other names come back unchanged. A
/// symbol version suffix ("@GLIBC_2.2.5", "@@GLIBC_2.34") is dropped, and so is
/// an optimizer clone suffix: the cold part or a specialised copy of a function
/// is named as the function, so its costs add up under one name in a profile
/// (optimized builds split `f` into `f` and `f.cold`).
inline internal_string demangle(const char* name) {
    const char* at = std::strchr(name, '@');
    const char* clone = clone_suffix(name);
    if (clone != nullptr && (at == nullptr || clone < at)) at = clone;
    if (at != nullptr) {
        const internal_string plain(name, static_cast<std::size_t>(at - name));
        return demangle(plain.c_str());
    }
#if MEMDIAG_HAS_CXXABI
    // Not in a fatal-signal handler: the demangler works with malloc, which
    // may be what crashed; pprof demangles the names it reads instead.
    if (name[0] == '_' && name[1] == 'Z' && !g_emergency_arena.active.load(std::memory_order_relaxed)) {
        internal_section quiet;  // the demangler works with malloc
        int status = 0;
        char* d = abi::__cxa_demangle(name, nullptr, nullptr, &status);
        if (d != nullptr) {
            internal_string s;
#if MEMDIAG_HAS_EXCEPTIONS
            try {
                s = d;
            } catch (...) {
                std::free(d);
                throw;
            }
#else
            s = d;
#endif  // MEMDIAG_HAS_EXCEPTIONS
            std::free(d);
            if (status == 0) return s;
        }
    }
#endif  // MEMDIAG_HAS_CXXABI
    return internal_string(name);
}

}  // namespace elf
}  // namespace detail
}  // namespace memdiag
