# tests/integration/lib.sh - the preamble the integration scripts share (source it; bash only).
#
#   source "$(dirname "$0")/lib.sh"
#   lib_setup NAME SANGAMD SANGAM   # absolute paths in $SANGAMD/$SANGAM, scratch dir in $dir
#
# It gives a TAP-like report (ok/not_ok, check/check_eq, "P passed, F failed" from lib_finish),
# commands whose output and status are kept (try, expect_ok, expect_fail), waits with deadlines
# (until_true, wait_for), daemons that are always stopped (start/stop/kill9: every pid in $pids
# is killed with SIGKILL by the EXIT trap, which also removes $dir unless KEEP=1), and a
# federation made the way operators make one (lib_hub_init, lib_join: `sangamd init` and
# invites). Every wait has a deadline. A script that needs a graceful stop does it itself (stop).

lib_setup() {
    [ $# -eq 3 ] || { echo "usage: $0 SANGAMD SANGAM" >&2; exit 2; }
    SANGAMD=$(realpath "$2")
    SANGAM=$(realpath "$3")
    dir=$(mktemp -d "/tmp/sangam-$1.XXXXXX")
    pids=()
    passed=0 failed=0 n=0 out="" rc=0
    trap lib_cleanup EXIT
}

lib_cleanup() {
    local p
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ "${KEEP:-0}" = 1 ]; then echo "# kept $dir"; else rm -rf "$dir"; fi
}

ok() { n=$((n + 1)); passed=$((passed + 1)); echo "ok $n - $1"; }
not_ok() {
    n=$((n + 1)); failed=$((failed + 1))
    echo "not ok $n - $1"
    printf '%s\n' "$out" | head -n 15 | sed 's/^/#   /'
}
# check DESC CONDITION: evaluates the shell CONDITION once.
check() { if eval "$2" >/dev/null 2>&1; then ok "$1"; else out="condition: $2"; not_ok "$1"; fi; }
# check_eq DESC GOT WANT: GOT must equal WANT, as strings.
check_eq() { if [ "$2" = "$3" ]; then ok "$1"; else out="got [$2], want [$3]"; not_ok "$1"; fi; }
# try CMD...: runs CMD, keeping its combined output in $out and status in $rc.
try() { set +e; out=$("$@" 2>&1); rc=$?; set -e; }
# expect_ok DESC CMD...: CMD must succeed.
expect_ok() { local d=$1; shift; try "$@"; if [ $rc -eq 0 ]; then ok "$d"; else not_ok "$d"; fi; }
# expect_fail DESC PATTERN CMD...: CMD must fail and say PATTERN.
expect_fail() {
    local d=$1 p=$2; shift 2; try "$@"
    if [ $rc -ne 0 ] && grep -qiE "$p" <<<"$out"; then ok "$d"; else not_ok "$d (want failure matching '$p', rc=$rc)"; fi
}
# until_true SECONDS CONDITION: evaluates CONDITION until it holds; status 1 at the deadline.
# until_true SECONDS CMD ARG...: the same, running CMD with its arguments as given (no eval).
until_true() {
    local deadline=$((SECONDS + $1))
    shift
    [ $# -gt 1 ] || set -- eval "$1"
    while ! "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt "$deadline" ] || return 1
        sleep 0.1
    done
}
# wait_for DESC SECONDS CONDITION: until_true, recorded as a check.
wait_for() {
    if until_true "$2" "$3"; then ok "$1"; else out="condition: $3"; not_ok "$1 (after $2s)"; fi
}
# start NAME INI [WRAPPER...]: starts sangamd (under WRAPPER, e.g. faketime, if given), logs to
# $dir/NAME.log, records its pid in pid_NAME and waits at most 10 s until it is up: its socket
# exists and it has logged event=started, which comes after every listener is bound (the API
# socket alone appears before the replication port is bound, and a node that then fails to bind
# it exits: waiting for the socket alone would call that a start).
start() {
    local name=$1 ini=$2 before
    shift 2
    before=$(grep -c 'event=started ' "$dir/$name.log" 2>/dev/null || true)
    "$@" "$SANGAMD" --config "$ini" 2>>"$dir/$name.log" &
    pids+=($!)
    eval "pid_$name=$!"
    local sock
    sock=$(lib_socket "$ini")
    local deadline=$((SECONDS + 10))
    while [ ! -S "$sock" ] || ! kill -0 "$(eval echo "\$pid_$name")" 2>/dev/null ||
        [ "$(grep -c 'event=started ' "$dir/$name.log" 2>/dev/null || true)" -le "${before:-0}" ]; do
        if [ $SECONDS -ge "$deadline" ] || ! kill -0 "$(eval echo "\$pid_$name")" 2>/dev/null; then
            echo "# $name did not start:"; tail -5 "$dir/$name.log"; return 1
        fi
        sleep 0.05
    done
}
# lib_socket INI: the path of the Unix socket INI names (relative to INI's folder unless absolute).
lib_socket() {
    local s
    s=$(awk -F' *= *' '$1 == "socket" { print $2 }' "$1" | awk '{print $1}')
    case $s in /*) echo "$s" ;; *) echo "$(dirname "$1")/$s" ;; esac
}
# stop NAME: SIGTERM and wait. kill9 NAME: SIGKILL and wait (the socket file stays behind,
# as after a power cut; the next start replaces it).
stop() { local v="pid_$1"; kill "${!v}" 2>/dev/null || true; wait "${!v}" 2>/dev/null || true; }
kill9() {
    local v="pid_$1"
    kill -9 "${!v}" 2>/dev/null || true
    wait "${!v}" 2>/dev/null || true
    local ini
    for ini in "$dir/$1/hub.ini" "$dir/$1/region.ini"; do
        [ -e "$ini" ] || continue
        rm -f "$(lib_socket "$ini")"
    done
}

# lib_hub_init PORT [INIT ARGS...]: `sangamd init` in $dir/hub listening on 127.0.0.1:PORT.
lib_hub_init() {
    local port=$1
    shift
    "$SANGAMD" init --dir "$dir/hub" --listen "127.0.0.1:$port" --public "127.0.0.1:$port" "$@" >/dev/null
}
hub() { "$SANGAM" --node "$dir/hub/hub.sock" "$@"; }
hubsql() { sqlite3 "$dir/hub/hub.db" "$@"; }
# lib_join REGION [ADDRESS]: an invite from the running hub, joined into $dir/REGION; with
# ADDRESS the region dials that HOST:PORT instead of the hub's (a proxy in between).
lib_join() {
    local tok
    tok=$(hub hub invite "$1" ${2:+--address "$2"} 2>/dev/null)
    "$SANGAMD" join "$tok" --dir "$dir/$1" >/dev/null 2>>"$dir/join.log" || { tail -3 "$dir/join.log"; return 1; }
}
# region NAME ARGS...: the CLI against a region's socket.
region() { local r=$1; shift; "$SANGAM" --node "$dir/$r/$r.sock" "$@"; }
# free_port: a loopback port nobody listens on now, below the kernel's ephemeral range, so
# that no outgoing connection (a flood in a test running alongside leaves thousands in
# TIME_WAIT) can be holding it when a daemon binds it.
free_port() {
    local p lo=32768
    read -r lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
    [ "$lo" -gt 12000 ] || lo=32768
    while :; do
        p=$((10000 + RANDOM % (lo - 10000)))
        ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && { echo "$p"; return; }
    done
}

lib_finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
