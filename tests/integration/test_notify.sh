#!/usr/bin/env bash
# test_notify.sh - sangamd speaks systemd's notify protocol (sd_notify(3)) as the units in
# deploy/ expect (Type=notify, WatchdogSec=): READY=1 with a STATUS= line once the node serves,
# WATCHDOG=1 at half of $WATCHDOG_USEC when $WATCHDOG_PID is its own pid and never otherwise,
# STOPPING=1 when SIGTERM begins a stop, and a clean stop (exit 0) with the watchdog timer
# running. Without systemd: no $NOTIFY_SOCKET, or one nobody listens on, changes nothing.
#
# Usage: test_notify.sh PATH/TO/sangamd PATH/TO/sangam
#
# The service manager's side is a python3 receiver on a Unix datagram socket in a scratch
# directory, which writes one line per datagram (the message's newlines become spaces).
# Prints "ok N - ..." / "not ok N - ..." per check and "P passed, F failed"; exits non-zero on
# any failure. Everything lives in a fresh temporary directory removed by the EXIT trap (KEEP=1
# keeps it), which also stops every process it started. Every wait has a deadline.

# Conditions are single-quoted on purpose: check_out and wait_for_out eval them, each time anew.
# shellcheck disable=SC2016
set -euo pipefail
source "$(dirname "$0")/lib.sh"
lib_setup notify "$@"
command -v python3 >/dev/null || { echo "test_notify.sh: python3 is needed (deploy/deps.sh)" >&2; exit 2; }

# check_out and wait_for_out are lib.sh's check and wait_for, but a failure shows $out as the
# script last set it (the receiver's lines or a log), its last 15 lines, instead of the condition.
not_ok_tail() {
    n=$((n + 1)); failed=$((failed + 1))
    echo "not ok $n - $1"
    printf '%s\n' "$out" | tail -n 15 | sed 's/^/#   /'
}
check_out() { if eval "$2" >/dev/null 2>&1; then ok "$1"; else not_ok_tail "$1"; fi; }
wait_for_out() { if until_true "$2" "$3"; then ok "$1"; else not_ok_tail "$1 (after $2s)"; fi; }
count() { grep -c -- "$1" "$2" 2>/dev/null || true; } # count PATTERN FILE (0 if none)

# receiver NAME: listens on $dir/NAME.sock, one line per datagram into $dir/NAME.msgs.
receiver() {
    python3 - "$dir/$1.sock" "$dir/$1.msgs" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as f:
    while True:
        f.write(s.recv(4096).decode("utf-8", "replace").replace("\n", " ") + "\n")
PY
    pids+=($!)
    local deadline=$((SECONDS + 10))
    while [ ! -S "$dir/$1.sock" ]; do
        [ $SECONDS -lt "$deadline" ] || { echo "# the receiver $1 did not start"; exit 1; }
        sleep 0.05
    done
}

# config NAME: a standalone region's configuration in $dir/NAME/.
config() {
    mkdir -p "$dir/$1"
    printf '[node]\nrole = region\nid = %s\ndb = %s.db\n[api]\nsocket = %s.sock\n' \
        "$1" "$1" "$1" >"$dir/$1/$1.ini"
}

# node NAME WATCHDOG_PID_MODE [ENV...]: starts sangamd for NAME with ENV set (env(1) syntax);
# WATCHDOG_PID_MODE "self" exports WATCHDOG_PID as sangamd's own pid (the exec keeps it),
# "other" as pid 1's, "none" leaves it unset. Sets node_pid.
node() {
    local name=$1 mode=$2
    shift 2
    env -u NOTIFY_SOCKET -u WATCHDOG_USEC -u WATCHDOG_PID "$@" sh -c 'case $0 in self) export WATCHDOG_PID=$$ ;; other) export WATCHDOG_PID=1 ;; esac
        exec "$1" --config "$2"' "$mode" "$SANGAMD" "$dir/$name/$name.ini" 2>>"$dir/$name.log" &
    node_pid=$!
    pids+=("$node_pid")
}
stop_node() { # stop_node: SIGTERM, wait at most 10 s; sets node_rc
    node_rc=
    kill -TERM "$node_pid"
    local deadline=$((SECONDS + 10))
    while kill -0 "$node_pid" 2>/dev/null && [ $SECONDS -lt "$deadline" ]; do sleep 0.05; done
    if kill -0 "$node_pid" 2>/dev/null; then
        node_rc=timeout
        kill -KILL "$node_pid" 2>/dev/null || true
    fi
    local rc=0
    wait "$node_pid" 2>/dev/null || rc=$?
    [ "$node_rc" = timeout ] || node_rc=$rc
}

# --- Under a service manager that asked for a watchdog of 2 s ---
receiver sd
config bundelkhand
node bundelkhand self NOTIFY_SOCKET="$dir/sd.sock" WATCHDOG_USEC=2000000
out="(the receiver's lines are in $dir/sd.msgs)"
wait_for_out "READY=1 arrives" 10 '[ "$(count "^READY=1" "$dir/sd.msgs")" -ge 1 ]'
out=$(cat "$dir/sd.msgs" 2>/dev/null || true)
check_out "READY=1 comes with a STATUS= line naming the node" \
    'grep -q "^READY=1 STATUS=serving: node bundelkhand, role region" "$dir/sd.msgs"'
out=$("$SANGAM" --node "$dir/bundelkhand/bundelkhand.sock" status 2>&1 || true)
check_out "the node serves its API once READY=1 was sent" \
    '"$SANGAM" --node "$dir/bundelkhand/bundelkhand.sock" status'
check_out "READY=1 follows the started log line" 'grep -q "event=started node=bundelkhand" "$dir/bundelkhand.log"'
out=$(cat "$dir/sd.msgs" 2>/dev/null || true)
wait_for_out "WATCHDOG=1 arrives at least twice (every 1 s for WATCHDOG_USEC=2000000)" 15 \
    '[ "$(count "^WATCHDOG=1$" "$dir/sd.msgs")" -ge 2 ]'
check_out "the watchdog is logged with its period" 'grep -q "event=watchdog interval_ms=2000 ping_ms=1000" "$dir/bundelkhand.log"'
stop_node
out=$(cat "$dir/bundelkhand.log" "$dir/sd.msgs")
check_out "SIGTERM stops it cleanly with the watchdog running (exit 0)" '[ "$node_rc" = 0 ]'
check_out "STOPPING=1 arrives when the stop begins" 'grep -q "^STOPPING=1" "$dir/sd.msgs"'
check_out "the loop closed cleanly (every handle, the watchdog timer too)" \
    'grep -q "event=stopped node=bundelkhand" "$dir/bundelkhand.log" && ! grep -q loop_not_clean "$dir/bundelkhand.log"'
check_out "READY=1 came before STOPPING=1, once each" \
    '[ "$(grep -n -e "^READY=1" -e "^STOPPING=1" "$dir/sd.msgs" | cut -d: -f2 | cut -c1-5 | tr "\n" " ")" = "READY STOPP " ]'

# --- A watchdog meant for another process (WATCHDOG_PID not ours) is not ours to feed ---
receiver other
config mirzapur
node mirzapur other NOTIFY_SOCKET="$dir/other.sock" WATCHDOG_USEC=1000000
out="(the receiver's lines are in $dir/other.msgs)"
wait_for_out "READY=1 arrives when the watchdog belongs to another pid" 10 \
    '[ "$(count "^READY=1" "$dir/other.msgs")" -ge 1 ]'
sleep 2 # four periods of 0.5 s
out=$(cat "$dir/other.msgs")
check_out "no WATCHDOG=1 is sent for another pid's watchdog" '[ "$(count WATCHDOG "$dir/other.msgs")" = 0 ]'
stop_node
check_out "it stops cleanly (exit 0)" '[ "$node_rc" = 0 ]'

# --- Without systemd ---
config chitrakoot
node chitrakoot self
wait_for_out "without NOTIFY_SOCKET it serves" 10 \
    '"$SANGAM" --node "$dir/chitrakoot/chitrakoot.sock" status'
stop_node
out=$(cat "$dir/chitrakoot.log")
check_out "without NOTIFY_SOCKET it stops cleanly (exit 0) and arms no watchdog" \
    '[ "$node_rc" = 0 ] && ! grep -q event=watchdog "$dir/chitrakoot.log"'
config awadh
node awadh self NOTIFY_SOCKET="$dir/nobody.sock" WATCHDOG_USEC=2000000
wait_for_out "with NOTIFY_SOCKET naming no listener it serves" 10 \
    '"$SANGAM" --node "$dir/awadh/awadh.sock" status'
sleep 1.5 # at least one failed WATCHDOG=1
stop_node
out=$(cat "$dir/awadh.log")
check_out "...and stops cleanly (exit 0)" '[ "$node_rc" = 0 ] && grep -q "event=stopped node=awadh" "$dir/awadh.log"'

lib_finish
