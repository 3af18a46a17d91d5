# sim_check.cmake - satchel-sim checks run by ctest.
#   MODE=determinism: the same seed twice gives identical output and report
#     bytes; another seed gives different output; bad input exits 2.
#   MODE=catches: the faulty build with --inject-bug BUG must fail (exit 1)
#     and print the command that replays it.
#   MODE=sweep: --seeds SEEDS must pass.
#   MODE=days: --days 4 passes, says so (progress on stderr) and replays byte
#     for byte; a scenario file's event on day 2 happens (and only there); an
#     event past the run's last day is refused; with the faulty build
#     (FAULTY) a lost write fails the first evening's check and the replay
#     command keeps --days.
cmake_policy(SET CMP0053 NEW)
string(REPLACE "|" ";" EMULATOR "${EMULATOR}")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

function(sim outvar rcvar)
  execute_process(COMMAND ${EMULATOR} ${ARGN} WORKING_DIRECTORY "${WORK_DIR}"
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message("$ ${ARGN}\n-> ${rc}\n${out}")
  set(${outvar} "${out}" PARENT_SCOPE)
  set(${outvar}_err "${err}" PARENT_SCOPE)
  set(${rcvar} "${rc}" PARENT_SCOPE)
endfunction()

if(MODE STREQUAL "determinism")
  sim(a rc ${PROGRAM} --seed 42 --report a.html)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "seed 42 failed")
  endif()
  sim(b rc ${PROGRAM} --seed 42 --report b.html)
  string(REPLACE "b.html" "a.html" b "${b}")
  file(SHA256 "${WORK_DIR}/a.html" ha)
  file(SHA256 "${WORK_DIR}/b.html" hb)
  if(NOT a STREQUAL b OR NOT ha STREQUAL hb)
    message(FATAL_ERROR "the same seed gave different output")
  endif()
  sim(c rc ${PROGRAM} --seed 43 --quiet)
  string(REGEX REPLACE "\nreport: [^\n]*" "" a_body "${a}")
  if(c STREQUAL a_body)
    message(FATAL_ERROR "seeds 42 and 43 gave the same output")
  endif()
  file(READ "${WORK_DIR}/a.html" html)
  if(NOT html MATCHES "<svg" OR html MATCHES "https?://[a-z]")
    message(FATAL_ERROR "the report must hold inline plots and load nothing from the network")
  endif()
  # Bad input: exit 2 and one line that says what was wrong.
  foreach(bad "--seed;-1" "--seeds;3-1" "--seeds;-1-3" "--days;0" "--scenario;missing.json")
    sim(u rc ${PROGRAM} ${bad} --quiet)
    if(NOT rc EQUAL 2 OR NOT u_err MATCHES "^satchel-sim: [^\n]+\n$")
      message(FATAL_ERROR "'${bad}' must exit 2 with a one-line reason, got ${rc}: ${u_err}")
    endif()
  endforeach()
elseif(MODE STREQUAL "catches")
  sim(out rc ${PROGRAM} --seed 42 --quiet --inject-bug ${BUG})
  if(NOT rc EQUAL 1 OR NOT out MATCHES "FAILED: replay with: satchel-sim-faulty --scenario day-of-visits --seed 42 --inject-bug ${BUG}")
    message(FATAL_ERROR "the invariants did not catch the injected bug '${BUG}'")
  endif()
elseif(MODE STREQUAL "sweep")
  sim(out rc ${PROGRAM} --seeds ${SEEDS} --quiet)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "the sweep failed")
  endif()
elseif(MODE STREQUAL "days")
  sim(a rc ${PROGRAM} --seed 5 --days 4 --quiet)
  if(NOT rc EQUAL 0 OR NOT a MATCHES "8 tablets in 2 teams, 4 days\n")
    message(FATAL_ERROR "a 4-day run must pass and say it ran 4 days")
  endif()
  sim(b rc ${PROGRAM} --seed 5 --days 4 --quiet)
  if(NOT a STREQUAL b)
    message(FATAL_ERROR "the same seed over 4 days gave different output")
  endif()
  if(NOT a_err MATCHES "satchel-sim: day 1 of 4\n.*satchel-sim: day 4 of 4\n")
    message(FATAL_ERROR "a run of days must show its progress on stderr: ${a_err}")
  endif()
  # The nurse works every day (6-10 visits a day); a patient moves each
  # day (the old team's tablets purge it: the caseload invariant holds).
  if(NOT a MATCHES "tablet-0 +north +([0-9]+) ")
    message(FATAL_ERROR "no summary line for tablet-0")
  endif()
  if(CMAKE_MATCH_1 LESS 20)
    message(FATAL_ERROR "tablet-0 made ${CMAKE_MATCH_1} visits in 4 days")
  endif()
  if(NOT a MATCHES "4 patients moved")
    message(FATAL_ERROR "4 days must move a patient a day")
  endif()
  file(WRITE "${WORK_DIR}/two.json" [=[
{ "name": "two-days", "days": 2, "builtin_faults": false,
  "events": [ { "at": "12:00", "kind": "power_cut", "nurse": 2, "day": 2 } ] }
]=])
  sim(c rc ${PROGRAM} --scenario two.json --seed 9 --quiet)
  if(NOT rc EQUAL 0 OR NOT c MATCHES "2 days\n" OR NOT c MATCHES "tablet-2 [^\n]*\(power cut\)"
     OR c MATCHES "tablet-[013-7] [^\n]*power cut")
    message(FATAL_ERROR "the file's day-2 power cut must hit tablet-2 only")
  endif()
  sim(d rc ${PROGRAM} --scenario two.json --seed 9 --days 1 --quiet)
  if(NOT rc EQUAL 2)
    message(FATAL_ERROR "an event on day 2 of a 1-day run must be refused (exit 2)")
  endif()
  sim(e rc ${FAULTY} --seed 42 --days 3 --quiet --inject-bug lost-write)
  if(NOT rc EQUAL 1 OR NOT e MATCHES "stopped after day 1 of 3"
     OR NOT e MATCHES "FAILED: replay with: satchel-sim-faulty --scenario day-of-visits --seed 42 --days 3 --inject-bug lost-write")
    message(FATAL_ERROR "a lost write must fail the first evening's check and print the replay")
  endif()
else()
  message(FATAL_ERROR "unknown MODE '${MODE}'")
endif()
