// memdiag/detail/internal_section.hpp - mark memdiag's own work on this thread.
//
// While an internal_section is alive, allocations made on this thread (by the
// demangler, dl_iterate_phdr, stdio...) pass through memdiag's hooks unobserved:
// not counted, not charged to budgets, never failed by fault injection, never
// sampled. Sections nest.
#pragma once

#include "thread_state.hpp"

namespace memdiag {
namespace detail {

/// RAII marker: memdiag's own work runs on this thread while it lives.
class internal_section {
public:
    internal_section() noexcept { tls_head.guards += guard_internal; }
    ~internal_section() { tls_head.guards -= guard_internal; }
    internal_section(const internal_section&) = delete;
    internal_section& operator=(const internal_section&) = delete;
};

}  // namespace detail
}  // namespace memdiag
