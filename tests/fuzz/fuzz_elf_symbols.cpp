// tests/fuzz/fuzz_elf_symbols.cpp - libFuzzer target for the ELF readers that
// symbolization runs over files on disk: read_function_symbols (section headers,
// .symtab/.dynsym, string tables) and find_build_id (PT_NOTE contents).
//
// The input is the whole file: it is put in a memfd and mapped the way
// symbolization maps an object (mapped_file::open). Build and run with
// scripts/fuzz.sh; seed corpus in tests/fuzz/corpus/elf.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include <memdiag/detail/os/elf_objects.hpp>

#if MEMDIAG_HAS_ELF_OBJECTS
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#endif

namespace md = memdiag::detail;
namespace elf = memdiag::detail::elf;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
#if MEMDIAG_HAS_ELF_OBJECTS
    // Notes are read from memory the loader mapped: any bytes, any alignment.
    for (std::size_t align : {std::size_t{0}, std::size_t{1}, std::size_t{4}, std::size_t{8}, std::size_t{3}}) {
        md::internal_string id;
        (void)elf::find_build_id(data, size, align, id);
    }
    if (size == 0) return 0;
    const int fd = memfd_create("fuzz-elf", MFD_CLOEXEC);
    if (fd < 0) return 0;
    if (write(fd, data, size) == static_cast<ssize_t>(size)) {
        char path[64];
        std::snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        elf::mapped_file file;
        if (file.open(path)) {
            md::internal_vector<elf::elf_symbol> syms;
            (void)elf::read_function_symbols(file, syms);
            // Every name returned must be a terminated string inside the file.
            const char* lo = reinterpret_cast<const char*>(file.data());
            for (const elf::elf_symbol& s : syms) {
                if (s.name < lo || s.name >= lo + file.size()) __builtin_trap();
                if (std::memchr(s.name, '\0', static_cast<std::size_t>(lo + file.size() - s.name)) == nullptr)
                    __builtin_trap();
            }
        }
    }
    close(fd);
#else
    (void)data;
    (void)size;
#endif
    return 0;
}
