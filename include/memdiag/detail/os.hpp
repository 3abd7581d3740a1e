// memdiag/detail/os.hpp - picks the OS primitives for this platform.
//
// Every file under detail/os/ defines the same names in memdiag::detail::os:
//   name, has_procfs, has_rlimits, has_cgroups, has_job_objects,
//   has_overcommit_setting, has_transparent_huge_pages   (constexpr)
//   read_file(path, max_bytes)      small bounded file read
//   page_size, physical_memory, available_memory, process_memory,
//   address_space_size, cpu_count, huge_page_size        fact<uint64_t>
//   rlimit_address_space, rlimit_data, rlimit_stack,
//   job_memory_limit                                     fact<limit>
//   os_version, kernel_version, kernel_machine,
//   malloc_implementation, thp_setting(which)            fact<string>
//   overcommit_mode (fact<int>), overcommit_ratio, cgroups()
// Each returns "unknown" with a reason rather than failing. A new OS is one
// new file plus one line here.
#pragma once

#include "../config.hpp"

#if MEMDIAG_OS_LINUX
#include "os/linux.hpp"
#elif MEMDIAG_OS_DARWIN
#include "os/darwin.hpp"
#elif MEMDIAG_OS_WINDOWS
#include "os/windows.hpp"
#else
#include "os/generic.hpp"
#endif  // MEMDIAG_OS_*
