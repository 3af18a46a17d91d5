# SatchelDeps.cmake - finds every third-party dependency, all from Debian
# packages. A missing one stops the configure step with the package to
# install; scripts/setup-deps installs them all.

function(satchel_missing what package)
  message(FATAL_ERROR
    "${what} not found. Install the Debian package '${package}' "
    "(or run scripts/setup-deps${SATCHEL_SETUP_HINT}).")
endfunction()

if(CMAKE_CROSSCOMPILING)
  set(SATCHEL_SETUP_HINT " --arm")
  set(SATCHEL_ARCH_SUFFIX ":arm64")
else()
  set(SATCHEL_SETUP_HINT "")
  set(SATCHEL_ARCH_SUFFIX "")
endif()

# SQLite 3 -----------------------------------------------------------------
find_package(SQLite3 QUIET)
if(NOT SQLite3_FOUND)
  satchel_missing("SQLite 3 (sqlite3.h, libsqlite3)" "libsqlite3-dev${SATCHEL_ARCH_SUFFIX}")
endif()

# Mbed TLS 2.28: linked statically so the simulator can own its clock. ------
find_path(MBEDTLS_INCLUDE_DIR mbedtls/ssl.h)
foreach(lib mbedtls mbedx509 mbedcrypto)
  string(TOUPPER ${lib} LIBVAR)
  find_library(${LIBVAR}_LIBRARY NAMES lib${lib}.a ${lib})
  if(NOT ${LIBVAR}_LIBRARY OR NOT MBEDTLS_INCLUDE_DIR)
    satchel_missing("Mbed TLS (${lib})" "libmbedtls-dev${SATCHEL_ARCH_SUFFIX}")
  endif()
endforeach()
file(STRINGS "${MBEDTLS_INCLUDE_DIR}/mbedtls/version.h" _mbedtls_ver
     REGEX "#define MBEDTLS_VERSION_STRING +\"")
if(NOT _mbedtls_ver MATCHES "\"2\\.28\\.")
  message(FATAL_ERROR "Satchel needs Mbed TLS 2.28 (Debian 12's libmbedtls-dev); found ${_mbedtls_ver}")
endif()
add_library(satchel_mbedtls INTERFACE)
target_include_directories(satchel_mbedtls INTERFACE ${MBEDTLS_INCLUDE_DIR})
target_link_libraries(satchel_mbedtls INTERFACE
  ${MBEDTLS_LIBRARY} ${MBEDX509_LIBRARY} ${MBEDCRYPTO_LIBRARY})

# nanopb 0.4.7: runtime library for the target, generator run on the host. --
find_package(nanopb CONFIG QUIET)
if(NOT nanopb_FOUND)
  satchel_missing("nanopb runtime (nanopb-config.cmake)" "libnanopb-dev${SATCHEL_ARCH_SUFFIX}")
endif()
find_program(NANOPB_GENERATOR nanopb_generator.py)
if(NOT NANOPB_GENERATOR)
  satchel_missing("nanopb generator (nanopb_generator.py)" "nanopb")
endif()
find_program(PROTOC_EXECUTABLE protoc)
if(NOT PROTOC_EXECUTABLE)
  satchel_missing("protoc (used by the nanopb generator)" "protobuf-compiler")
endif()

# json-c (exports, scenario files) ------------------------------------------
find_path(JSONC_INCLUDE_DIR json-c/json.h)
find_library(JSONC_LIBRARY json-c)
if(NOT JSONC_INCLUDE_DIR OR NOT JSONC_LIBRARY)
  satchel_missing("json-c" "libjson-c-dev${SATCHEL_ARCH_SUFFIX}")
endif()
add_library(satchel_jsonc INTERFACE)
target_include_directories(satchel_jsonc INTERFACE ${JSONC_INCLUDE_DIR})
target_link_libraries(satchel_jsonc INTERFACE ${JSONC_LIBRARY})

# cmocka (tests) ----------------------------------------------------------
if(SATCHEL_BUILD_TESTS)
  find_path(CMOCKA_INCLUDE_DIR cmocka.h)
  find_library(CMOCKA_LIBRARY cmocka)
  if(NOT CMOCKA_INCLUDE_DIR OR NOT CMOCKA_LIBRARY)
    satchel_missing("cmocka (unit test framework)" "libcmocka-dev${SATCHEL_ARCH_SUFFIX}")
  endif()
  add_library(satchel_cmocka INTERFACE)
  target_include_directories(satchel_cmocka INTERFACE ${CMOCKA_INCLUDE_DIR})
  target_link_libraries(satchel_cmocka INTERFACE ${CMOCKA_LIBRARY})
endif()

# SQLCipher (benchmark only) -------------------------------------------------
# bench/bench_sqlcipher compares the store with SQLCipher. SQLCipher exports
# the same symbols as SQLite, so only that one program links it, never
# SQLite::SQLite3. Native builds only: the ARM cross build has no use for it.
if(SATCHEL_BUILD_BENCH AND NOT CMAKE_CROSSCOMPILING)
  find_package(PkgConfig QUIET)
  if(PKG_CONFIG_FOUND)
    pkg_check_modules(SQLCIPHER QUIET IMPORTED_TARGET sqlcipher)
  endif()
  add_library(satchel_sqlcipher INTERFACE)
  if(SQLCIPHER_FOUND)
    # pkg-config points into include/sqlcipher; the code says <sqlcipher/sqlite3.h>.
    target_include_directories(satchel_sqlcipher INTERFACE ${SQLCIPHER_INCLUDEDIR})
    target_link_libraries(satchel_sqlcipher INTERFACE PkgConfig::SQLCIPHER)
  else()
    find_path(SQLCIPHER_INCLUDE_DIR sqlcipher/sqlite3.h)
    find_library(SQLCIPHER_LIBRARY sqlcipher)
    if(NOT SQLCIPHER_INCLUDE_DIR OR NOT SQLCIPHER_LIBRARY)
      satchel_missing("SQLCipher (sqlcipher/sqlite3.h, libsqlcipher)" "libsqlcipher-dev")
    endif()
    target_include_directories(satchel_sqlcipher INTERFACE ${SQLCIPHER_INCLUDE_DIR})
    target_link_libraries(satchel_sqlcipher INTERFACE ${SQLCIPHER_LIBRARY})
  endif()
endif()
