# cli_recovery_flow.cmake - the fleet recovery key end to end: satchelctl
# makes it, a tablet enrols with it, the nurse forgets her PIN, the fleet
# manager sets a new one with `satchel recover`, and no record is lost.
#   cmake -DSATCHEL=... -DSATCHELCTL=... -DEMULATOR=a|b -DWORK_DIR=dir -P ...
cmake_policy(SET CMP0053 NEW)
string(REPLACE "|" ";" EMULATOR "${EMULATOR}")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(DATA "${WORK_DIR}/data")
file(WRITE "${WORK_DIR}/pin" "2468\n")
file(WRITE "${WORK_DIR}/new" "8642\n")

function(run expect outvar)
  execute_process(COMMAND ${EMULATOR} ${ARGN}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message("$ ${ARGN}\n-> ${rc}\n${out}${err}")
  if(NOT rc STREQUAL "${expect}")
    message(FATAL_ERROR "expected exit ${expect}, got ${rc}")
  endif()
  set(${outvar} "${out}" PARENT_SCOPE)
endfunction()

run(0 out ${SATCHELCTL} recovery-key init --out ${WORK_DIR}/fleet)
run(1 out ${SATCHELCTL} recovery-key init --out ${WORK_DIR}/fleet)   # never overwrites
run(2 out ${SATCHELCTL} recovery-key init)
run(0 out ${SATCHEL} -d ${DATA} -p ${WORK_DIR}/pin enrol --kdf-iterations 1000
    --recovery-pub ${WORK_DIR}/fleet/recovery.pub)
run(0 out ${SATCHEL} -d ${DATA} -p ${WORK_DIR}/pin patient add --nhs 9434765919 --given Ffion
    --family Unsyncedrecord --dob 1950-01-01 --address "1 Heol")
run(2 out ${SATCHEL} -d ${DATA} -p ${WORK_DIR}/new recover)
run(2 out ${SATCHEL} -d ${DATA} -p ${WORK_DIR}/new recover --recovery-key ${WORK_DIR}/fleet/recovery.pub)
run(0 out ${SATCHEL} -d ${DATA} -p ${WORK_DIR}/new recover --recovery-key ${WORK_DIR}/fleet/recovery.key)
run(3 out ${SATCHEL} -d ${DATA} -p ${WORK_DIR}/pin patient list)
run(0 out ${SATCHEL} -d ${DATA} -p ${WORK_DIR}/new patient list)
if(NOT out MATCHES "Unsyncedrecord, Ffion")
  message(FATAL_ERROR "the record did not survive the recovery")
endif()
