# cli_pki_flow.cmake - the fleet's certificates from the command line:
# satchelctl makes the fleet CA, the hub's certificate and a tablet's
# identity, and never overwrites any of them.
#   cmake -DSATCHELCTL=... -DEMULATOR=a|b -DWORK_DIR=dir -P cli_pki_flow.cmake
cmake_policy(SET CMP0053 NEW)
string(REPLACE "|" ";" EMULATOR "${EMULATOR}")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(CA "${WORK_DIR}/ca")
set(HUB "${WORK_DIR}/hub")
set(DEV "${WORK_DIR}/tablet")

function(run expect outvar)
  execute_process(COMMAND ${EMULATOR} ${SATCHELCTL} ${ARGN}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message("$ satchelctl ${ARGN}\n-> ${rc}\n${out}${err}")
  if(NOT rc STREQUAL "${expect}")
    message(FATAL_ERROR "expected exit ${expect}, got ${rc}")
  endif()
  string(REGEX MATCHALL "\n" lines "${err}")
  list(LENGTH lines n)
  if(n GREATER 1)
    message(FATAL_ERROR "an error takes one line; got ${n}")
  endif()
  set(${outvar} "${out}" PARENT_SCOPE)
endfunction()

function(expect_files dir)
  foreach(name ${ARGN})
    if(NOT EXISTS "${dir}/${name}")
      message(FATAL_ERROR "${dir}/${name} was not written")
    endif()
  endforeach()
endfunction()

# Secret keys are readable by their owner only (the HAL creates files 0600).
find_program(STAT stat)
function(expect_private path)
  if(STAT)
    execute_process(COMMAND ${STAT} -c %a "${path}" OUTPUT_VARIABLE mode
      OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(NOT mode STREQUAL "600")
      message(FATAL_ERROR "${path} has mode ${mode}, not 600")
    endif()
  endif()
endfunction()

run(0 out --help)
foreach(cmd "ca init --dir" "hub-cert --ca" "device provision --ca")
  if(NOT out MATCHES "${cmd}")
    message(FATAL_ERROR "--help does not describe '${cmd}'")
  endif()
endforeach()
run(0 out device provision --help)

# The fleet CA.
run(0 out ca init --dir ${CA} --name "Test fleet CA")
expect_files(${CA} ca.crt ca.key)
expect_private(${CA}/ca.key)
file(READ "${CA}/ca.crt" ca_before)
if(NOT ca_before MATCHES "^-----BEGIN CERTIFICATE-----")
  message(FATAL_ERROR "ca.crt is not a PEM certificate")
endif()
run(1 out ca init --dir ${CA})                       # never overwrites
file(READ "${CA}/ca.crt" ca_after)
if(NOT ca_before STREQUAL ca_after)
  message(FATAL_ERROR "ca init overwrote the CA")
endif()
run(2 out ca init)                                   # --dir is required
run(2 out ca init --dir ${WORK_DIR}/x --name "bad,name")
run(2 out ca frobnicate)

# The hub's certificate.
run(0 out hub-cert --ca ${CA} --out ${HUB} --name hub.example)
expect_files(${HUB} hub.crt hub.key ca.crt)
expect_private(${HUB}/hub.key)
file(READ "${HUB}/ca.crt" hub_ca)
if(NOT hub_ca STREQUAL ca_before)
  message(FATAL_ERROR "the hub's ca.crt is not the fleet CA")
endif()
run(1 out hub-cert --ca ${CA} --out ${HUB})          # never overwrites
run(1 out hub-cert --ca ${WORK_DIR}/no-ca --out ${WORK_DIR}/hub2)
run(2 out hub-cert --ca ${CA})

# A tablet's identity.
run(0 out device provision --ca ${CA} --data ${DEV} --team "North Team")
string(STRIP "${out}" id)
if(NOT id MATCHES "^[0-9a-f]+$")
  message(FATAL_ERROR "device provision did not print a device id: '${id}'")
endif()
string(LENGTH "${id}" id_len)
if(NOT id_len EQUAL 32)
  message(FATAL_ERROR "a device id has 32 hex digits, not ${id_len}")
endif()
expect_files(${DEV} device.crt device.key ca.crt device.conf)
expect_private(${DEV}/device.key)
file(READ "${DEV}/device.conf" conf)
if(NOT conf STREQUAL "device_id=${id}\nteam=North Team\n")
  message(FATAL_ERROR "unexpected device.conf:\n${conf}")
endif()
run(1 out device provision --ca ${CA} --data ${DEV} --team North)   # already provisioned
file(READ "${DEV}/device.conf" conf_after)
if(NOT conf STREQUAL conf_after)
  message(FATAL_ERROR "a second provisioning changed the tablet")
endif()

# A given id is kept (lower-cased); bad ids and teams are usage errors.
run(0 out device provision --ca ${CA} --data ${WORK_DIR}/tablet2 --team South
    --id 0123456789ABCDEF0123456789abcdef)
string(STRIP "${out}" id2)
if(NOT id2 STREQUAL "0123456789abcdef0123456789abcdef")
  message(FATAL_ERROR "device provision --id printed '${id2}'")
endif()
run(2 out device provision --ca ${CA} --data ${WORK_DIR}/tablet3 --team South --id 1234)
run(2 out device provision --ca ${CA} --data ${WORK_DIR}/tablet3 --team "a=b")
run(2 out device provision --ca ${CA} --data ${WORK_DIR}/tablet3)
run(1 out device provision --ca ${WORK_DIR}/no-ca --data ${WORK_DIR}/tablet3 --team South)
