# tests/reliability.cmake - stress, bad input, exception safety, MEMDIAG_DISABLE and
# the every-header compile check. Included from tests/CMakeLists.txt.

# Every public header in one TU, compiled in every configuration (the matrix also
# compiles it with -fno-exceptions, -fno-rtti and for Windows).
add_library(memdiag_all_headers OBJECT compile/all_headers.cpp)
target_link_libraries(memdiag_all_headers PRIVATE memdiag::memdiag)
memdiag_strict(memdiag_all_headers)

# Stress, bad input and exception safety, with the global hook (which stays
# out under ThreadSanitizer: the same tests then count through trackers only).
memdiag_test(memdiag_reliability_tests
  hook_main.cpp
  test_stress.cpp
  test_bad_input.cpp
  test_exception_safety.cpp)
# Under an emulator (qemu) or a sanitizer the stress runs are scaled down to
# stay within seconds; MEMDIAG_STRESS_OPS set by hand wins.
if(CMAKE_CROSSCOMPILING_EMULATOR)
  set_tests_properties(memdiag_reliability_tests PROPERTIES ENVIRONMENT "MEMDIAG_STRESS_OPS=50000")
endif()

# MEMDIAG_DISABLE: the same API compiles to no-ops. Its own binary: the macro
# must be the same in every TU of a program.
memdiag_test(memdiag_disable_tests test_disable.cpp)
target_compile_definitions(memdiag_disable_tests PRIVATE MEMDIAG_DISABLE)

# libFuzzer targets beyond fuzz_env_parse (scripts/fuzz.sh builds and runs them all).
if(MEMDIAG_FUZZ)
  foreach(_memdiag_fuzz fuzz_elf_symbols fuzz_options)
    add_executable(${_memdiag_fuzz} fuzz/${_memdiag_fuzz}.cpp)
    target_link_libraries(${_memdiag_fuzz} PRIVATE memdiag::memdiag)
    target_compile_options(${_memdiag_fuzz} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_options(${_memdiag_fuzz} PRIVATE -fsanitize=fuzzer,address,undefined)
  endforeach()
endif()

# Process lifetime edges (issue 12): fork, thread exit, signals, size overflow.
memdiag_test(memdiag_lifetime_tests hook_main.cpp test_lifetime.cpp)
target_compile_options(memdiag_lifetime_tests PRIVATE -fno-omit-frame-pointer)
# One arena and no per-thread cache: a freed address goes straight to the next
# thread that asks (the realloc race test relies on it).
set_tests_properties(memdiag_lifetime_tests PROPERTIES
  ENVIRONMENT "GLIBC_TUNABLES=glibc.malloc.arena_max=1:glibc.malloc.tcache_count=0")
# A static leak_check outlives the main thread's thread_local objects.
add_executable(lifetime_static_leak_check lifetime/static_leak_check.cpp)
target_link_libraries(lifetime_static_leak_check PRIVATE memdiag::memdiag)
memdiag_strict(lifetime_static_leak_check)
add_test(NAME lifetime_static_leak_check COMMAND lifetime_static_leak_check)
set_tests_properties(lifetime_static_leak_check PROPERTIES
  PASS_REGULAR_EXPRESSION "memdiag: leak in 'static': 100 bytes in 1 allocation"
  FAIL_REGULAR_EXPRESSION "AddressSanitizer|runtime error")

# A global hook bypassed by another operator new (valgrind, heaptrack, a preload)
# is detected and said, and memory assertions fail instead of passing vacuously.
# Not under sanitizers: their runtimes define operator new themselves.
if(UNIX AND NOT APPLE AND NOT CMAKE_CXX_FLAGS MATCHES "sanitize" AND NOT CMAKE_CROSSCOMPILING)
  add_library(memdiag_hook_in_library SHARED lifetime/hook_in_library.cpp)
  target_link_libraries(memdiag_hook_in_library PRIVATE memdiag::memdiag)
  memdiag_strict(memdiag_hook_in_library)
  add_library(memdiag_foreign_new SHARED lifetime/foreign_new.cpp)
  memdiag_strict(memdiag_foreign_new)
  add_executable(hook_bypass_check lifetime/hook_bypass_check.cpp)
  target_link_libraries(hook_bypass_check PRIVATE memdiag::memdiag memdiag_hook_in_library)
  memdiag_strict(hook_bypass_check)
  add_test(NAME lifetime_hook_active COMMAND hook_bypass_check active)
  set_tests_properties(lifetime_hook_active PROPERTIES FAIL_REGULAR_EXPRESSION "hook is linked in but not called")
  add_test(NAME lifetime_hook_bypassed COMMAND hook_bypass_check bypassed)
  set_tests_properties(lifetime_hook_bypassed PROPERTIES
    ENVIRONMENT "LD_PRELOAD=$<TARGET_FILE:memdiag_foreign_new>"
    PASS_REGULAR_EXPRESSION "memdiag: warning: the global operator new hook is linked in but not called.*check_ok=0")
endif()

# A plugin loaded with dlopen: with the host exporting memdiag's symbols it shares
# the host's state (and the hook counts its allocations); without, memdiag says
# on stderr that there are two copies.
if(UNIX AND NOT APPLE AND NOT CMAKE_CXX_FLAGS MATCHES "sanitize=thread" AND NOT CMAKE_CROSSCOMPILING)
  add_library(memdiag_test_plugin MODULE lifetime/plugin.cpp)
  target_link_libraries(memdiag_test_plugin PRIVATE memdiag::memdiag)
  memdiag_strict(memdiag_test_plugin)
  foreach(_memdiag_host plugin_host_exported plugin_host_local)
    add_executable(${_memdiag_host} lifetime/plugin_host.cpp)
    target_link_libraries(${_memdiag_host} PRIVATE memdiag::memdiag ${CMAKE_DL_LIBS})
    memdiag_strict(${_memdiag_host})
  endforeach()
  set_target_properties(plugin_host_exported PROPERTIES ENABLE_EXPORTS ON)
  add_test(NAME lifetime_plugin_shared_state COMMAND plugin_host_exported $<TARGET_FILE:memdiag_test_plugin>)
  set_tests_properties(lifetime_plugin_shared_state PROPERTIES
    PASS_REGULAR_EXPRESSION "plugin measured 1 allocation"
    FAIL_REGULAR_EXPRESSION "second copy of memdiag")
  add_test(NAME lifetime_plugin_separate_state COMMAND plugin_host_local $<TARGET_FILE:memdiag_test_plugin>)
  set_tests_properties(lifetime_plugin_separate_state PROPERTIES
    PASS_REGULAR_EXPRESSION "memdiag: warning: a second copy of memdiag's state")
endif()
