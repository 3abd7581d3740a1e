# cmake/toolchains/i686-m32.cmake - 32-bit x86 build with the host g++ (-m32).
#
# Needs g++-<version>-multilib. Debian's cross compilers conflict with the
# g++-multilib metapackage, whose only file is the /usr/include/asm symlink, so
# this toolchain recreates that link inside the build tree instead of relying
# on it: the order in which the packages were installed does not matter.
if(NOT CMAKE_CXX_COMPILER)
  set(CMAKE_CXX_COMPILER g++)
endif()
set(_memdiag_m32inc ${CMAKE_BINARY_DIR}/m32inc)
if(NOT EXISTS ${_memdiag_m32inc}/asm)
  file(MAKE_DIRECTORY ${_memdiag_m32inc})
  file(CREATE_LINK /usr/include/x86_64-linux-gnu/asm ${_memdiag_m32inc}/asm SYMBOLIC)
endif()
set(CMAKE_CXX_FLAGS_INIT "-m32 -isystem ${_memdiag_m32inc}")
set(CMAKE_C_FLAGS_INIT "-m32 -isystem ${_memdiag_m32inc}")
set(CMAKE_EXE_LINKER_FLAGS_INIT "-m32")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "-m32")
# MEMDIAG_M32_EMULATOR (e.g. "qemu-i386;-L;/"): for hosts whose kernel cannot
# execute i386 binaries. The build then counts as a cross build, so CTest runs
# every test program through the emulator.
if(MEMDIAG_M32_EMULATOR)
  set(CMAKE_SYSTEM_NAME Linux)
  set(CMAKE_SYSTEM_PROCESSOR i686)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${MEMDIAG_M32_EMULATOR})
endif()
# 32-bit libraries live in the multilib directories.
set(CMAKE_LIBRARY_ARCHITECTURE i386-linux-gnu)
set(FIND_LIBRARY_USE_LIB32_PATHS ON)
