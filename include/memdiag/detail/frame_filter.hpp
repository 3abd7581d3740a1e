// memdiag/detail/frame_filter.hpp - which stack frames belong to allocation machinery.
//
// Budget reports and heap profiles both show where an allocation came from,
// so both drop the frames between the program's code and memdiag: memdiag's
// own functions, the global operator new/delete, the C allocation functions and
// the standard allocator plumbing that leads into them. One rule for both, so
// a site is named the same in a breach report and in a profile.
//
// Names come demangled (symbolizer) or mangled (the fatal-signal path, which
// does not demangle); both forms are recognized. Nothing here allocates.
#pragma once

#include <cstddef>
#include <cstring>

namespace memdiag {
namespace detail {

/// True when the function named name[0, n) is allocation machinery: memdiag's
/// code (namespace memdiag, also after a return type, not inside template
/// arguments), operator new/delete, malloc and friends (exact names: a user
/// function `malloc_site` is not one), or std::allocator / allocator_traits /
/// the library's new_allocator.
inline bool is_allocation_frame(const char* name, std::size_t n) noexcept {
    if (name == nullptr || n == 0) return false;
    auto starts = [&](std::size_t at, const char* prefix) {
        const std::size_t k = std::strlen(prefix);
        return n - at >= k && std::memcmp(name + at, prefix, k) == 0;
    };
    static const char* const c_functions[] = {"malloc",         "calloc",        "realloc", "reallocarray",
                                              "free",           "posix_memalign", "aligned_alloc",
                                              "memalign",       "valloc",        "pvalloc"};
    for (const char* c : c_functions)
        if (std::strlen(c) == n && std::memcmp(name, c, n) == 0) return true;
    static const char* const prefixes[] = {
        "operator new", "operator delete",
        // Mangled: operator new/new[]/delete/delete[], anything in namespace memdiag.
        "_Znw", "_Zna", "_Zdl", "_Zda", "_ZN7memdiag", "_ZNK7memdiag",
        // The standard allocator's path into operator new.
        "std::allocator<", "std::allocator_traits<", "std::__new_allocator<", "__gnu_cxx::new_allocator<"};
    for (const char* p : prefixes)
        if (starts(0, p)) return true;
    // A qualified name in namespace memdiag, possibly after a return type: look
    // at every token outside template arguments, before the parameter list.
    int depth = 0;
    bool token_start = true;
    for (std::size_t i = 0; i < n; ++i) {
        const char c = name[i];
        if (c == '<') ++depth;
        else if (c == '>') --depth;
        else if (c == '(' && depth == 0) break;
        if (depth == 0 && token_start && starts(i, "memdiag::")) return true;
        token_start = c == ' ' || c == '*' || c == '&';
    }
    return false;
}

/// A NUL-terminated name.
inline bool is_allocation_frame(const char* name) noexcept {
    return name != nullptr && is_allocation_frame(name, std::strlen(name));
}

}  // namespace detail
}  // namespace memdiag
