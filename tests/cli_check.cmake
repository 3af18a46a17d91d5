# cli_check.cmake - runs PROGRAM ARGS (through EMULATOR when cross-compiled)
# and checks the exit status and output. Used by ctest as a script:
#   cmake -DPROGRAM=... -DARGS=a|b -DEXPECT_EXIT=0 [-DEXPECT_STDOUT=regex]
#         [-DEXPECT_STDERR=regex] [-DEXPECT_STDERR_LINES=n] [-DWORK_DIR=dir]
#         -P cli_check.cmake
# ARGS and EMULATOR are lists joined with '|'. "%WORK_DIR%" in ARGS becomes
# a fresh, empty WORK_DIR.
cmake_policy(SET CMP0053 NEW)
string(REPLACE "|" ";" ARGS "${ARGS}")
string(REPLACE "|" ";" EMULATOR "${EMULATOR}")
if(WORK_DIR)
  file(REMOVE_RECURSE "${WORK_DIR}")
  string(REPLACE "%WORK_DIR%" "${WORK_DIR}" ARGS "${ARGS}")
endif()
execute_process(COMMAND ${EMULATOR} ${PROGRAM} ${ARGS}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("exit: ${rc}\nstdout:\n${out}\nstderr:\n${err}")
if(NOT "${EXPECT_EXIT}" STREQUAL "" AND NOT rc STREQUAL EXPECT_EXIT)
  message(FATAL_ERROR "expected exit status ${EXPECT_EXIT}, got ${rc}")
endif()
string(REPLACE "\n" " " out_flat "${out}")
string(REPLACE "\n" " " err_flat "${err}")
if(EXPECT_STDOUT AND NOT out_flat MATCHES "${EXPECT_STDOUT}")
  message(FATAL_ERROR "stdout does not match '${EXPECT_STDOUT}'")
endif()
if(EXPECT_STDERR AND NOT err_flat MATCHES "${EXPECT_STDERR}")
  message(FATAL_ERROR "stderr does not match '${EXPECT_STDERR}'")
endif()
if(NOT "${EXPECT_STDERR_LINES}" STREQUAL "")
  string(REGEX MATCHALL "\n" newlines "${err}")
  list(LENGTH newlines n)
  if(NOT n EQUAL EXPECT_STDERR_LINES)
    message(FATAL_ERROR "expected ${EXPECT_STDERR_LINES} line(s) on stderr, got ${n}")
  endif()
endif()
