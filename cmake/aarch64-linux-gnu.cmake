# Cross-build for ARM64 Linux tablets with Debian's gcc-aarch64-linux-gnu and
# the :arm64 -dev packages (scripts/setup-deps --arm). Tests run under
# qemu-aarch64-static through CMAKE_CROSSCOMPILING_EMULATOR.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

find_program(SATCHEL_QEMU qemu-aarch64-static)
if(NOT SATCHEL_QEMU)
  message(FATAL_ERROR "qemu-aarch64-static not found. Install the Debian package 'qemu-user-static' (or run scripts/setup-deps --arm).")
endif()
set(CMAKE_CROSSCOMPILING_EMULATOR "${SATCHEL_QEMU};-L;/usr/aarch64-linux-gnu")
