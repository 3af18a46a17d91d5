#!/usr/bin/env bash
# e2e_sync.sh - the real programs end to end over loopback mutual TLS: a
# fleet CA, a hub, three tablets in two teams; sync, conflicts, caseload
# scoping and purge on reassignment, revocation and wipe, clean hub stop.
#
#   e2e_sync.sh WORKDIR SATCHEL SATCHELCTL SATCHEL_HUB [EMULATOR ARGS...]
set -euo pipefail
work=$1 satchel=$2 ctl=$3 hubbin=$4
shift 4
emu=("$@")
rm -rf "$work"
mkdir -p "$work"
cd "$work"
echo 2468 > pin
hubpid=

S() { "${emu[@]}" "$satchel" "$@"; }
C() { "${emu[@]}" "$ctl" "$@"; }
fail() { echo "e2e_sync: FAIL: $*" >&2; [ -n "$hubpid" ] && kill "$hubpid" 2>/dev/null; exit 1; }
expect_exit() { # expect_exit CODE cmd...
  local want=$1; shift
  set +e; "$@" > out.txt 2> err.txt; local got=$?; set -e
  cat out.txt err.txt
  [ "$got" = "$want" ] || fail "'$*' exited $got, expected $want"
}

C ca init --dir ca
C hub-cert --ca ca --out hub
for t in a:north b:north c:south; do
  d=${t%%:*} team=${t#*:}
  id=$(C device provision --ca ca --data "$d" --team "$team")
  eval "id_$d=$id"
  C device register --hub-data hub --id "$id" --team "$team"
  S -d "$d" -p pin enrol --kdf-iterations 1000
done

"${emu[@]}" "$hubbin" --listen 127.0.0.1:0 --data hub --verbose 2> hub.log &
hubpid=$!
for _ in $(seq 1 600); do
  grep -q "listening on" hub.log && break
  kill -0 "$hubpid" 2>/dev/null || break
  sleep 0.1
done
port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\),.*/\1/p' hub.log)
[ -n "$port" ] || fail "the hub did not start: $(cat hub.log)"
HUB=127.0.0.1:$port

# A nurse records a visit offline, then syncs; her teammate receives it.
P=$(S -d a -p pin patient add --nhs "943 476 5919" --given Eirlys --family Syncwell \
      --dob 1938-02-11 --address "3 Heol y Bryn" --team north)
S -d a -p pin obs add "$P" --resp 18 --spo2 96 --air --sbp 128 --pulse 77 --acvpu A --temp 36.9
expect_exit 0 S -d a -p pin sync --hub "$HUB"
grep -q "pushed [1-9]" out.txt || fail "tablet a pushed nothing"
expect_exit 0 S -d b -p pin sync --hub "$HUB"
grep -q "pulled [1-9]" out.txt || fail "tablet b pulled nothing"
S -d b -p pin patient list | grep -q "Syncwell, Eirlys" || fail "tablet b lacks the patient"
expect_exit 0 S -d c -p pin sync --hub "$HUB"
S -d c -p pin patient list | grep -q Syncwell && fail "tablet c (south) got a north patient"

# Both north nurses change the address offline: a conflict on both sides.
S -d a -p pin patient update "$P" --address "A's new address"
S -d b -p pin patient update "$P" --address "B's new address"
S -d a -p pin sync --hub "$HUB" > /dev/null
S -d b -p pin sync --hub "$HUB" > /dev/null
S -d a -p pin sync --hub "$HUB" > /dev/null
# A conflict names the field (the record model's name), not its number.
S -d a -p pin conflicts | grep -q "patient [0-9a-f]* address: kept" || fail "no conflict on tablet a"
S -d b -p pin conflicts | grep -q "patient [0-9a-f]* address: kept" || fail "no conflict on tablet b"
ha=$(S -d a -p pin export --json | grep -v device_id | sha256sum)
hb=$(S -d b -p pin export --json | grep -v device_id | sha256sum)
[ "$ha" = "$hb" ] || fail "tablets a and b did not converge"

# The patient moves to the south team: b drops them, c receives them.
C patient assign --hub-data hub --patient "$P" --team south
expect_exit 0 S -d b -p pin sync --hub "$HUB"
grep -q "purged [1-9]" out.txt || fail "tablet b purged nothing"
S -d b -p pin patient list | grep -q Syncwell && fail "tablet b still holds the moved patient"
# Tablet a, offline when the patient moved, wrote a note: it is not lost.
# The hub takes it (a had not yet pulled the move) and hands it to south;
# the same sync purges the patient from a.
S -d a -p pin note add "$P" --text "Late note: wound dressed" > /dev/null
expect_exit 0 S -d a -p pin sync --hub "$HUB"
grep -q "pushed [1-9]" out.txt || fail "tablet a's late note was not pushed"
grep -q "purged [1-9]" out.txt || fail "tablet a purged nothing"
S -d a -p pin patient list | grep -q Syncwell && fail "tablet a still holds the moved patient"
S -d c -p pin sync --hub "$HUB" > /dev/null
S -d c -p pin patient list | grep -q "Syncwell, Eirlys" || fail "tablet c lacks the moved patient"
S -d c -p pin export --json --patient "$P" | grep -q "Late note: wound dressed" \
  || fail "tablet c lacks tablet a's late note"

# Tablet a is lost: revoked, it wipes itself at its next sync.
C device revoke --hub-data hub --id "$id_a"
expect_exit 7 S -d a -p pin sync --hub "$HUB"
[ ! -e a/caseload.db ] || fail "tablet a kept its database"
[ ! -e a/device.key ] || fail "tablet a kept its device key"
expect_exit 3 S -d a -p pin patient list
expect_exit 1 S -d a -p pin sync --hub "$HUB"

# A tablet provisioned by the fleet but never registered with this hub is
# refused (exit 1: an unauthenticated refusal never wipes), keeps its
# records, and the hub's log says why.
id_u=$(C device provision --ca ca --data u --team north)
S -d u -p pin enrol --kdf-iterations 1000 > /dev/null
expect_exit 1 S -d u -p pin sync --hub "$HUB"
grep -q "not registered" err.txt || fail "an unregistered tablet was not told why"
[ -e u/caseload.db ] || fail "an unregistered tablet lost its database"
grep -q "refused client '$id_u': device not admitted (not registered" hub.log \
  || fail "the hub's log does not say why it refused an unregistered tablet"

# A hub refuses what it cannot trust: a tablet from another fleet.
C ca init --dir otherca
C device provision --ca otherca --data x --team north > /dev/null
S -d x -p pin enrol --kdf-iterations 1000 > /dev/null
expect_exit 1 S -d x -p pin sync --hub "$HUB"

# Clean stop on SIGTERM.
kill -TERM "$hubpid"
set +e; wait "$hubpid"; rc=$?; set -e
hubpid=
[ "$rc" = 0 ] || fail "satchel-hub exited $rc on SIGTERM"
grep -q "stopped cleanly" hub.log || fail "no clean stop in the hub log"
echo "e2e_sync: all checks passed"
