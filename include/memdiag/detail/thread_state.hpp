// placeholder: replaced by the tracker core
#pragma once
namespace memdiag { namespace detail {
struct thread_flags_t { int internal_depth = 0; };
inline thread_flags_t& thread_flags() noexcept { static thread_local thread_flags_t f; return f; }
}}
