// memdiag/hook_status.hpp - whether the global hooks are installed, without them.
//
// global_hook_installed() and malloc_hook_installed() for any translation unit
// (the umbrella header and the test integrations include this): the hooks
// themselves are defined only where MEMDIAG_REPLACE_GLOBAL_NEW is defined before
// including <memdiag/global_new.hpp>, and a header that pulled global_new.hpp
// in earlier would leave that file without them.
#pragma once

#include "config.hpp"

namespace memdiag {

/// True when some translation unit of this program replaced operator new
/// (defined MEMDIAG_REPLACE_GLOBAL_NEW before including global_new.hpp).
inline bool global_hook_installed() noexcept;

/// True when the C allocation functions are replaced too (MEMDIAG_REPLACE_MALLOC).
inline bool malloc_hook_installed() noexcept;

}  // namespace memdiag

#if defined(__GNUC__) && defined(__ELF__)
extern "C" __attribute__((weak)) const int memdiag_global_new_installed;
extern "C" __attribute__((weak)) const int memdiag_malloc_installed;
inline bool memdiag::global_hook_installed() noexcept { return &memdiag_global_new_installed != nullptr; }
inline bool memdiag::malloc_hook_installed() noexcept { return &memdiag_malloc_installed != nullptr; }
// Without ELF weak symbols the answer is known only where the hook is defined.
#elif defined(MEMDIAG_REPLACE_GLOBAL_NEW) && !MEMDIAG_TSAN
inline bool memdiag::global_hook_installed() noexcept { return true; }
inline bool memdiag::malloc_hook_installed() noexcept { return false; }
#else
inline bool memdiag::global_hook_installed() noexcept { return false; }
inline bool memdiag::malloc_hook_installed() noexcept { return false; }
#endif
