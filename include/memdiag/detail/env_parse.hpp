// memdiag/detail/env_parse.hpp - pure parsers for the files env reads.
//
// Every file under /proc and /sys may be missing, truncated or hold garbage
// (containers, qemu-user, odd kernels). These parsers take the text as a
// string_view and return a value or "unknown" with a reason; they never throw
// on bad input, never read out of bounds, and use 64-bit integers even in
// 32-bit builds (memory sizes exceed 4 GiB there too).
//
// The value types (fact, limit, address_sizes, cpu_quota) are public: the env
// report is made of them. The parsers live in memdiag::detail::env_parse, in
// two files: env_values.hpp (types, text helpers, one-value files) and
// env_cgroup.hpp (cgroup membership, mounts and the limit walk).
#pragma once

#include "env_cgroup.hpp"
#include "env_values.hpp"
