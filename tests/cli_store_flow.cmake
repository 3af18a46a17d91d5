# cli_store_flow.cmake - a nurse's session through the real `satchel`
# program (under EMULATOR when cross-compiled): enrol, records, bad input
# and exit codes, wrong PIN, export, PIN change, and a scan of every file
# in the data directory for plaintext.
#   cmake -DPROGRAM=... -DEMULATOR=a|b -DWORK_DIR=dir -P cli_store_flow.cmake
cmake_policy(SET CMP0053 NEW)
string(REPLACE "|" ";" EMULATOR "${EMULATOR}")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(DATA "${WORK_DIR}/data")
file(WRITE "${WORK_DIR}/pin" "2468\n")
file(WRITE "${WORK_DIR}/wrong" "1357\n")
file(WRITE "${WORK_DIR}/new" "97531\n")

# run(<expected exit> <output var> args...)
function(run expect outvar)
  execute_process(COMMAND ${EMULATOR} ${PROGRAM} --data ${DATA} ${ARGN}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message("$ satchel ${ARGN}\n-> ${rc}\n${out}${err}")
  if(NOT rc STREQUAL "${expect}")
    message(FATAL_ERROR "expected exit ${expect}, got ${rc}")
  endif()
  string(REGEX MATCHALL "\n" lines "${err}")
  list(LENGTH lines n)
  if(n GREATER 2)
    message(FATAL_ERROR "an error must be one line, got ${n}")
  endif()
  set(${outvar} "${out}" PARENT_SCOPE)
endfunction()

set(PIN --pin-file ${WORK_DIR}/pin)
run(3 out ${PIN} patient list)                                  # not enrolled
run(0 out ${PIN} enrol --kdf-iterations 1000)
run(1 out ${PIN} enrol --kdf-iterations 1000)                   # already enrolled
run(0 out ${PIN} patient add --nhs "943 476 5919" --given Zyxwa --family Qwertyson
    --dob 1941-03-04 --address "12 Markerstreet" --postcode "SA1 1AA" --team north)
string(STRIP "${out}" PATIENT)
if(NOT PATIENT MATCHES "^[0-9a-f]+$")
  message(FATAL_ERROR "patient add must print the new id, got '${PATIENT}'")
endif()
run(4 out ${PIN} patient add --nhs 9434765918 --given A --family B --dob 1950-01-01 --address x)
run(4 out ${PIN} patient add --nhs 9434765919 --given A --family B --dob 1950-13-01 --address x)
run(2 out ${PIN} patient add --nhs 9434765919 --bogus)
run(0 out ${PIN} visit start ${PATIENT} --reason "leg ulcer")
string(STRIP "${out}" VISIT)
run(4 out ${PIN} visit start ${PATIENT})                         # one open visit
run(0 out ${PIN} obs add ${PATIENT} --resp 22 --spo2 95 --oxygen --sbp 105 --pulse 115
    --acvpu A --temp 38.5 --visit ${VISIT})
if(NOT out MATCHES "NEWS2 score: 9 \\(high risk\\)")
  message(FATAL_ERROR "obs add must print the NEWS2 score")
endif()
run(4 out ${PIN} obs add ${PATIENT} --resp 22 --spo2 95 --air --sbp 350 --pulse 80 --acvpu A --temp 37)
run(2 out ${PIN} obs add ${PATIENT} --resp 22 --spo2 95 --sbp 120 --pulse 80 --acvpu A --temp 37)
run(0 out ${PIN} note add ${PATIENT} --text "Ulcer-Markernote cleaned")
string(STRIP "${out}" NOTE)
run(0 out ${PIN} note amend ${NOTE} --text "Correction: left leg")
run(0 out ${PIN} task add ${PATIENT} --title "Order Markerbandage" --due 2026-12-01)
string(STRIP "${out}" TASK)
run(0 out ${PIN} task done ${TASK})
run(0 out ${PIN} visit end ${VISIT})
run(5 out ${PIN} patient show 0123456789abcdef)                  # no such record
run(2 out ${PIN} patient show)
run(3 out --pin-file ${WORK_DIR}/wrong patient list)            # wrong PIN, counted
run(0 out ${PIN} patient show ${PATIENT})
if(NOT out MATCHES "Qwertyson" OR NOT out MATCHES "amends" OR NOT out MATCHES "\\[x\\] Order")
  message(FATAL_ERROR "patient show misses records")
endif()
run(0 out ${PIN} export --json)
if(NOT out MATCHES "\"family_name\":\"Qwertyson\"" OR NOT out MATCHES "\"news2_score\":9")
  message(FATAL_ERROR "export misses records")
endif()

# Nothing readable on flash: not a name, a note, nor SQLite's own header.
file(GLOB files "${DATA}/*")
list(LENGTH files nfiles)
if(nfiles LESS 3)
  message(FATAL_ERROR "expected the database, its journal and the key file in ${DATA}")
endif()
foreach(f ${files})
  foreach(marker Qwertyson Zyxwa Markerstreet Markernote Markerbandage "SQLite format" 9434765919)
    file(STRINGS "${f}" hits REGEX "${marker}")
    if(hits)
      message(FATAL_ERROR "plaintext '${marker}' found in ${f}")
    endif()
  endforeach()
endforeach()

run(0 out ${PIN} change-pin --new-pin-file ${WORK_DIR}/new)
run(3 out ${PIN} patient list)
run(0 out --pin-file ${WORK_DIR}/new patient list)
if(NOT out MATCHES "Qwertyson, Zyxwa")
  message(FATAL_ERROR "records lost after the PIN change")
endif()
