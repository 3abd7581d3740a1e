# cmake/toolchains/aarch64-linux-gnu.cmake - cross build for 64-bit ARM Linux with
# Debian's g++-aarch64-linux-gnu; tests run under qemu-user (binfmt_misc is not
# assumed: CTest calls qemu-aarch64 explicitly with the target's sysroot).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(MEMDIAG_AARCH64_SYSROOT /usr/aarch64-linux-gnu CACHE PATH "Target libraries for qemu-aarch64 -L")
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64;-L;${MEMDIAG_AARCH64_SYSROOT})
# Programs from the host; libraries from the target; headers and CMake packages
# from both (Catch2 is a header-only package installed for the host).
set(CMAKE_FIND_ROOT_PATH ${MEMDIAG_AARCH64_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
