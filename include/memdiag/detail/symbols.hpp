// memdiag/detail/symbols.hpp - loaded modules and in-process symbolization.
//
// What the snapshot writers need to name the addresses capture_stack returns:
// the executable mappings of every loaded object, exactly as /proc/self/maps
// shows them (so pprof can find and symbolize the files itself), and function
// names resolved here from the objects' ELF symbol tables (so readers that
// cannot symbolize C++, such as go tool pprof and speedscope, show names).
// Everything allocates beneath memdiag's hooks (internal_string/vector and
// internal_section), so it works right after a budget breach.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "../config.hpp"
#include "internal_alloc.hpp"
#include "internal_vector.hpp"
#include "internal_section.hpp"
#include "os/elf_objects.hpp"

namespace memdiag {
namespace detail {

/// One executable mapping of a loaded object.
struct loaded_module {
    std::uintptr_t start = 0, limit = 0, file_offset = 0;  ///< exactly as the r-xp row of /proc/self/maps
    internal_string path;      ///< absolute path of the object file ("[vdso]" style names for pseudo-objects)
    internal_string build_id;  ///< NT_GNU_BUILD_ID, lowercase hex, empty if none
};

/// Loaded modules, in address order.
using module_list = internal_vector<loaded_module>;

/// Executable segments of every loaded object, in address order. The main
/// executable's path comes from /proc/self/exe; paths have symlinks resolved,
/// as the kernel shows them. Empty where the platform cannot list objects.
/// Throws std::bad_alloc when memory is exhausted.
inline module_list list_loaded_modules() {
    module_list mods;
#if MEMDIAG_ENABLED
    internal_vector<elf::object_record> objects;
    elf::list_objects(objects);
    for (const elf::object_record& o : objects) {
        for (const elf::exec_segment& s : o.segments) {
            loaded_module m;
            m.start = s.start;
            m.limit = s.limit;
            m.file_offset = s.file_offset;
            m.path = o.path;
            m.build_id = o.build_id;
            mods.push_back(static_cast<loaded_module&&>(m));
        }
    }
    std::sort(mods.begin(), mods.end(),
              [](const loaded_module& a, const loaded_module& b) { return a.start < b.start; });
#endif  // MEMDIAG_ENABLED
    return mods;
}

/// Resolves return addresses to demangled function names, caching per object.
///
/// Names come from each object's .symtab and .dynsym (read from the file, or
/// from its separate debug file under /usr/lib/debug/.build-id when the object
/// is stripped), then from dladdr. Each object's table is read on the first
/// address that falls in it, and each name is demangled once. Objects loaded
/// after construction are picked up when an address misses. Not thread-safe:
/// use one symbolizer per thread, typically one per snapshot.
class symbolizer {
public:
    /// Lists the loaded objects; reads no symbol table yet.
    symbolizer() {
#if MEMDIAG_ENABLED
        refresh();
#endif
    }

    /// Not copyable: it owns file mappings. Movable.
    symbolizer(const symbolizer&) = delete;
    /// Not copyable: it owns file mappings.
    symbolizer& operator=(const symbolizer&) = delete;
    /// Takes over the other symbolizer's caches.
    symbolizer(symbolizer&&) = default;
    /// Takes over the other symbolizer's caches.
    symbolizer& operator=(symbolizer&&) = default;

    /// Demangled name of the function containing pc; empty when unknown.
    /// For a return address from capture_stack pass `address - 1`: a call that
    /// ends its function returns into the next one.
    internal_string function_name(std::uintptr_t pc) {
#if MEMDIAG_ENABLED
        internal_section quiet;
        object_cache* o = find(pc);
        if (o == nullptr && elf::objects_generation() != generation_) {
            refresh();
            o = find(pc);
        }
        if (o != nullptr) {
            if (!o->loaded) load(*o);
            const std::size_t i = lookup(*o, pc - o->rec.bias);
            if (i != npos) {
                if (o->slot[i] == 0) {
                    o->names.push_back(elf::demangle(o->symbols[i].name));
                    o->slot[i] = static_cast<std::uint32_t>(o->names.size());
                }
                return o->names[o->slot[i] - 1];
            }
        }
        std::uintptr_t start = 0;
        if (const char* name = elf::dladdr_symbol(pc, &start)) return elf::demangle(name);
#else
        (void)pc;
#endif  // MEMDIAG_ENABLED
        return internal_string();
    }

private:
    static constexpr std::size_t npos = static_cast<std::size_t>(-1);

    struct object_cache {
        elf::object_record rec;
        bool loaded = false;
        elf::mapped_file file;        // the object file: symbol names point into it
        elf::mapped_file debug_file;  // its separate debug file, if one was used
        internal_vector<elf::elf_symbol> symbols;  // by address, one per address
        internal_vector<std::uint32_t> slot;      // per symbol: 1 + index in names, 0 = not yet
        internal_vector<internal_string> names;   // demangled names, in demand order
    };

    object_cache* find(std::uintptr_t pc) noexcept {
        for (object_cache& o : objects_) {
            for (const elf::exec_segment& s : o.rec.segments) {
                if (pc >= s.start && pc < s.limit) return &o;
            }
        }
        return nullptr;
    }

    // Re-lists the objects, keeping the tables already read for those still loaded.
    void refresh() {
        generation_ = elf::objects_generation();
        internal_vector<elf::object_record> now;
        elf::list_objects(now);
        internal_vector<object_cache> next;
        next.reserve(now.size());
        for (elf::object_record& r : now) {
            object_cache c;
            for (object_cache& old : objects_) {
                if (old.rec.bias == r.bias && old.rec.path == r.path) {
                    c = static_cast<object_cache&&>(old);
                    break;
                }
            }
            c.rec = static_cast<elf::object_record&&>(r);
            next.push_back(static_cast<object_cache&&>(c));
        }
        objects_.swap(next);
    }

    static void load(object_cache& o) {
        o.loaded = true;
        if (o.rec.pseudo) return;  // dladdr names vDSO functions
        bool has_symtab = false;
        if (o.file.open(o.rec.path.c_str())) has_symtab = elf::read_function_symbols(o.file, o.symbols);
        if (!has_symtab && !o.rec.build_id.empty()) {
            const internal_string dbg = elf::debug_file_path(o.rec.build_id);
            if (o.debug_file.open(dbg.c_str())) elf::read_function_symbols(o.debug_file, o.symbols);
        }
        // One symbol per address: the best-ranked name, the largest known size.
        auto& v = o.symbols;
        std::sort(v.begin(), v.end(), [](const elf::elf_symbol& a, const elf::elf_symbol& b) {
            return a.addr != b.addr ? a.addr < b.addr : a.rank > b.rank;
        });
        std::size_t w = 0;
        for (std::size_t r = 0; r < v.size(); ++r) {
            if (w > 0 && v[w - 1].addr == v[r].addr) {
                v[w - 1].size = std::max(v[w - 1].size, v[r].size);
                continue;
            }
            v[w++] = v[r];
        }
        v.resize(w);
        o.slot.assign(w, 0);
    }

    // Index of the symbol containing the link-time address, or npos.
    static std::size_t lookup(const object_cache& o, std::uintptr_t addr) noexcept {
        const auto& v = o.symbols;
        auto it = std::upper_bound(v.begin(), v.end(), addr,
                                   [](std::uintptr_t a, const elf::elf_symbol& s) { return a < s.addr; });
        if (it == v.begin()) return npos;
        --it;
        // A sized symbol must contain the address; an unsized one (hand-written
        // assembly) reaches up to the next symbol.
        if (it->size != 0 && addr - it->addr >= it->size) return npos;
        return static_cast<std::size_t>(it - v.begin());
    }

    internal_vector<object_cache> objects_;
    unsigned long long generation_ = 0;
};

}  // namespace detail
}  // namespace memdiag
