#!/usr/bin/env bash
# test_security.sh - the hub lets in only its own regions, and keeps serving them under abuse
# (issue 7: "TLS policy matrix" and "Resource abuse"), with real processes over real TLS on
# 127.0.0.1: a hub made by `sangamd init`, the region north joined from an invite and
# replicating throughout, and tests/tools/tlspeer (tlspeer --help) as the odd peer.
#
# Policy matrix. Each attempt must not be let in (no WELCOME), the hub must log in words why,
# and north must replicate a fresh write afterwards:
#   a TLS 1.2-only client; no client certificate; a certificate from a foreign CA (one that
#   copies the coalition CA's name, so only the key tells them apart); an expired
#   and a not-yet-valid certificate signed by the coalition CA itself (`openssl ca` with explicit
#   dates; a control made by the same recipe with valid dates is let in, so the dates are what
#   is refused); the hub's own serverAuth certificate used as a client one; another ALPN; a
#   revoked region (let in just before its revocation); and a man in the middle: the region
#   west dials a listener showing a certificate for the name "hub" from that other CA, and must
#   refuse it and send it nothing (no certificate, no byte of data).
# Covered elsewhere and not repeated: region A's certificate sending region B's rows, or a HELLO
# naming B (test_replication.c, test_refuse_foreign_rows); frames too big, malformed or out of
# order, and a peer silent after TLS (test_replication.c); revocation dropping a live connection
# and holding across a hub restart (test_join.sh); each TLS refusal engine to engine in memory
# (test_tls.c).
#
# Resource abuse, bounded. The hub runs with keepalive 4 s, so its deadline for finishing the
# TLS handshake, and then for HELLO, is 8 s (PROTOCOL.md 7.4: twice the keepalive):
#   - slowloris on the hub's HTTP API, which it serves here over HTTPS and plain TCP too
#     ([api] https, listen): one client on each, and 50 more over HTTPS (tlspeer slowhttp), send
#     a request line and then one header line a second, 60 lines, never the blank line that ends
#     the head. The hub must cut each off at its request deadline (30 s from the first byte;
#     later bytes do not re-arm it) with a 408, before it has sent all its lines (within 45 s),
#     and log request_timeout for each; while they are all held, a viewer's GET /v1/status is
#     answered within 5 s over HTTPS and TCP, and north replicates. They start first and are
#     checked after the silent TLS connections below, so their 30 s overlap those checks;
#   - 1,000 connections that never finish the handshake (500 silent TCP, 500 that sent a
#     ClientHello), then 1,000 that finish it and never say HELLO, held while north writes: the
#     hub drops every one at its deadline and logs why;
#   - slow readers: three authenticated regions send PINGs and never read the PONGs; the hub
#     stops reading them once 8 MiB wait for each (back-pressure), and drops them after 2x
#     keepalive, saying why;
#   - a flood of 6,000 connect-and-close;
#   - file-descriptor exhaustion: the hub restarted under `ulimit -n 64` says at start that the
#     limit is too low, then is flooded with 300 connections: it does not crash or spin (CPU
#     over 2 s while the flood holds its descriptors), and north, started during the flood,
#     gets in once the flood ends.
# Throughout, the hub's RSS (VmRSS) must stay under RSS_MAX_KB (200 MiB; 400 under ASan); the
# figures are printed as "# ..." lines. At the end both daemons must stop cleanly (status 0: under
# ASan/LSan a leak fails it) with no sanitizer report in their logs.
#
# Usage: test_security.sh SANGAMD SANGAM TLSPEER
# Prints "ok N - ..." / "not ok N - ..." and "P passed, F failed"; exits non-zero on any
# failure. KEEP=1 keeps the scratch directory. Every wait has a deadline; every tlspeer run
# stops by itself.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

if [ $# -ne 3 ]; then
    echo "usage: $0 SANGAMD SANGAM TLSPEER" >&2
    exit 2
fi
TLSPEER=$(realpath "$3")
lib_setup security "$1" "$2"
# Under ASan a freed block stays resident in its quarantine (256 MB by default), which would
# measure ASan rather than the hub; a small one keeps RSS meaningful (no effect without ASan).
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=16"

RSS_MAX_KB=$((200 * 1024))
# ASan's redzones and allocator caches roughly double a process's RSS (at rest 43 MB, not 11):
# the bound doubles with them. A hub that lost its bounds grows by gigabytes either way.
if grep -q __asan_init "$SANGAMD"; then
    RSS_MAX_KB=$((2 * RSS_MAX_KB))
    echo "# AddressSanitizer build: the RSS bound is $((RSS_MAX_KB / 1024)) MiB"
fi
HZ=$(getconf CLK_TCK)
port=$(free_port)
addr=127.0.0.1:$port
# The hub's HTTP API over HTTPS and over plain TCP, for the slowloris checks.
until hport=$(free_port) && [ "$hport" != "$port" ]; do :; done
until tport=$(free_port) && [ "$tport" != "$port" ] && [ "$tport" != "$hport" ]; do :; done

# --- Helpers (lib.sh has the rest) ---
peer() { "$TLSPEER" "$@"; }
# num KEY [TEXT]: the number in KEY=N of a tlspeer result line (TEXT, default $out).
# Empty when KEY is missing (a peer that printed nothing), never a failure: under set -e and
# pipefail an assignment from a failed grep would end the script without a word.
num() { { grep -oE "(^| )$1=[0-9]+" <<<"${2:-$out}" || true; } | head -1 | cut -d= -f2; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$pid_hub/status"; }
# hub_alive: if the hub has exited, that is a failure of its own, reported with the end of its
# log (where a sanitizer's report would be) and a copy of the run's files; the run stops there.
hub_alive() {
    grep -qs "^State:[[:space:]]*[^Z]" "/proc/$pid_hub/status" && return 0 # (a zombie has exited)
    out=$(tail -n 40 "$dir/hub.log")
    not_ok "the hub is alive (it exited; the end of its log follows)"
    local keep=${TMPDIR:-/tmp}/sangam-security-failed
    rm -rf "$keep"
    cp -r "$dir" "$keep" 2>/dev/null || true
    echo "# logs kept in $keep"
    lib_finish || exit 1
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$pid_hub/stat"; }
hub_up() { kill -0 "$pid_hub" 2>/dev/null; }
# mark, then since: the hub's log lines written after the mark.
mark() { logmark=$(wc -l <"$dir/hub.log"); }
since() { tail -n "+$((logmark + 1))" "$dir/hub.log"; }
# logged N PATTERN: waits at most 10 s for N lines matching PATTERN since the mark; their count
# into $c. The hub logs a dropped connection once its close completes, which can be just after
# the peer has seen it closed (its FIN goes out first), so a count taken at once may be short.
logged() {
    until_true 10 "[ \"\$(since | grep -c -- '$2' || true)\" -ge $1 ]" || true
    c=$(since | grep -c -- "$2" || true)
}
# sample_rss: the hub's RSS now into $rss, and the highest seen into $rss_peak.
rss=0 rss_peak=0
sample_rss() {
    hub_alive
    rss=$(rss_kb)
    [ "$rss" -le "$rss_peak" ] || rss_peak=$rss
}
# watch_rss PID...: samples the hub's RSS every 0.2 s while any PID (tlspeer runs) is alive, then
# reaps them; the highest into $phase_peak. Past RSS_MAX_KB it stops them at once, so that a hub
# that has lost its bounds fails the test quickly instead of eating the machine's memory.
watch_rss() {
    phase_peak=0
    while kill -0 "$@" 2>/dev/null; do
        sample_rss
        [ "$rss" -le "$phase_peak" ] || phase_peak=$rss
        [ "$rss" -lt "$RSS_MAX_KB" ] || kill "$@" 2>/dev/null || true
        sleep 0.2
    done
    wait "$@" || true
}
rss_under() { # DESC KB
    if [ "$2" -lt "$RSS_MAX_KB" ]; then ok "$1 ($2 kB)"; else out="VmRSS $2 kB"; not_ok "$1 ($2 kB)"; fi
}
fresh=0
# replicates DESC: north takes a member, which must reach the hub.
replicates() {
    fresh=$((fresh + 1))
    region north member add --name "Fresh $fresh" --kind entrepreneur >/dev/null 2>&1 || true
    wait_for "$1" 20 "[ \"\$(hubsql \"SELECT count(*) FROM members WHERE name = 'Fresh $fresh'\")\" = 1 ]"
}
# refused DESC LOG_PATTERN TLSPEER_ARGS...: one connection sending HELLO (naming $HELLO, default
# north). It must not be let in, the hub must log LOG_PATTERN, and north must still replicate.
refused() {
    local d=$1 pat=$2
    shift 2
    mark
    try peer connect --hello "${HELLO:-north}" "$@" "$addr"
    if [ "$rc" -eq 0 ] && grep -q " verdict=refused" <<<"$out"; then
        ok "$d: not let in"
    else
        not_ok "$d: not let in"
    fi
    echo "#   the peer saw: $(grep -oE '(answer|last_error)="[^"]+"' <<<"$out" | head -1)"
    wait_for "$d: the hub logs why" 10 'since | grep -qE -- "$pat"'
    echo "#   the hub said: $(since | grep -E -- "$pat" | head -1 | sed 's/^ts=[^ ]* //')"
    if hub_up; then ok "$d: the hub is still running"; else not_ok "$d: the hub is still running"; fi
    replicates "$d: north still replicates a fresh write"
}
# stopped_cleanly NAME: SIGTERM; the daemon must exit with status 0.
stopped_cleanly() {
    local v="pid_$1" st
    kill "${!v}" 2>/dev/null || true
    set +e
    wait "${!v}"
    st=$?
    set -e
    if [ $st -eq 0 ]; then ok "$1 stops cleanly (status 0)"; else out="status $st"; not_ok "$1 stops cleanly"; fi
}

# --- A hub and north, replicating ---
lib_hub_init "$port"
sed -i -E 's/^keepalive = [0-9]+s/keepalive = 4s/' "$dir/hub/hub.ini"
grep -q '^keepalive = 4s' "$dir/hub/hub.ini" || { echo "# cannot set the hub's keepalive"; exit 1; }
sed -i "s/^socket = hub.sock.*/&\nhttps = 127.0.0.1:$hport\nlisten = 127.0.0.1:$tport/" "$dir/hub/hub.ini"
grep -q "^https = 127.0.0.1:$hport" "$dir/hub/hub.ini" || { echo "# cannot add the hub's HTTPS API"; exit 1; }
start hub "$dir/hub/hub.ini"
viewer=$(hub hub token create "security viewer" 2>/dev/null)
for r in north west east slow1 slow2 slow3; do
    lib_join "$r"
    # Refused or cut-off regions come back within 2 s rather than a minute.
    sed -i 's/^\[replication\]/[replication]\nreconnect_max = 2s/' "$dir/$r/region.ini"
done
start north "$dir/north/region.ini"
replicates "north replicates to the hub"

# --- Certificates: the coalition CA's (its key is in hub/pki), and another CA's ---
pki=$dir/certs
mkdir -p "$pki/issued"
: >"$pki/index.txt"
echo 1000 >"$pki/serial"
cat >"$pki/ca.cnf" <<CNF
[ca]
default_ca = issuer
[issuer]
database = $pki/index.txt
new_certs_dir = $pki/issued
serial = $pki/serial
default_md = sha256
policy = any
unique_subject = no
[any]
organizationName = optional
commonName = supplied
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectAltName = DNS:\${ENV::SAN}
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:\${ENV::SAN}
CNF
utc() { date -u -d "$1" +%Y%m%d%H%M%SZ; }
# mkcert NAME SAN PROFILE START END CA_DIR: key and certificate $pki/NAME.{key,pem} for DNS name
# SAN, valid START..END (openssl dates), signed by CA_DIR/ca.{pem,key}.
mkcert() {
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/$1.key" 2>/dev/null
    openssl req -new -key "$pki/$1.key" -subj "/O=Sangam coalition/CN=$2" -out "$pki/$1.csr"
    SAN=$2 openssl ca -batch -notext -config "$pki/ca.cnf" -cert "$6/ca.pem" -keyfile "$6/ca.key" \
        -extensions "$3" -startdate "$4" -enddate "$5" -in "$pki/$1.csr" -out "$pki/$1.pem" 2>/dev/null
}
# The foreign CA copies the coalition CA's name: only its key differs.
mkdir -p "$pki/foreign"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/foreign/ca.key" 2>/dev/null
ca_subject=$(openssl x509 -in "$dir/hub/pki/ca.pem" -noout -subject -nameopt compat | sed 's/^subject=//')
openssl req -x509 -new -key "$pki/foreign/ca.key" -subj "$ca_subject" -days 30 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$pki/foreign/ca.pem"
now=$(utc '-1 hour') later=$(utc '+30 days')
mkcert expired north client 20200101000000Z 20200201000000Z "$dir/hub/pki"
mkcert future north client "$(utc '+1 year')" "$(utc '+2 years')" "$dir/hub/pki"
mkcert control ctrl client "$now" "$later" "$dir/hub/pki"
mkcert foreign north client "$now" "$later" "$pki/foreign"
mkcert mitm hub server "$now" "$later" "$pki/foreign"
# The expired and future ones are the coalition's (the signature checks out when dates are not
# checked) and are out of date now; the foreign one is not the coalition's.
try openssl verify -no_check_time -CAfile "$dir/hub/pki/ca.pem" "$pki/expired.pem" "$pki/future.pem"
if [ "$rc" -eq 0 ] && ! openssl x509 -in "$pki/expired.pem" -noout -checkend 0 >/dev/null &&
    [ "$(openssl x509 -in "$pki/future.pem" -noout -startdate | cut -d= -f2 | xargs -I{} date -d {} +%s)" -gt "$(date +%s)" ] &&
    ! openssl verify -no_check_time -CAfile "$dir/hub/pki/ca.pem" "$pki/foreign.pem" >/dev/null 2>&1; then
    ok "test certificates: expired and not-yet-valid ones from the coalition CA, and a foreign one"
else
    not_ok "test certificates: expired and not-yet-valid ones from the coalition CA, and a foreign one"
fi
nc=(--cert "$dir/north/pki/node.pem" --key "$dir/north/pki/node.key")

# --- The policy matrix ---
try peer connect --hello ctrl --cert "$pki/control.pem" --key "$pki/control.key" "$addr"
if grep -q " verdict=welcome" <<<"$out"; then
    ok "control: a certificate made by the same recipe with valid dates is let in"
else
    not_ok "control: a certificate made by the same recipe with valid dates is let in"
fi
refused "a TLS 1.2-only client" 'connection_refused .*reason="peer offered TLS 1.2; this side speaks TLS 1.3 only' \
    --max-tls 1.2 "${nc[@]}"
refused "no client certificate" 'connection_refused .*reason="peer did not present a certificate' \
    --ca "$dir/hub/pki/ca.pem"
refused "a certificate from a foreign CA of the same name" 'connection_refused .*reason="[^"]*(signature|not signed by|unable to get local issuer)' \
    --cert "$pki/foreign.pem" --key "$pki/foreign.key"
refused "an expired certificate from the coalition CA" 'connection_refused .*reason="[^"]*expired' \
    --cert "$pki/expired.pem" --key "$pki/expired.key"
refused "a not-yet-valid certificate from the coalition CA" 'connection_refused .*reason="[^"]*not yet valid' \
    --cert "$pki/future.pem" --key "$pki/future.key"
refused "the hub's own (serverAuth) certificate as a client" 'connection_refused .*reason="[^"]*(purpose|clientAuth)' \
    --cert "$dir/hub/pki/hub.pem" --key "$dir/hub/pki/hub.key"
refused "ALPN http/1.1 instead of sangam/1" 'connection_refused .*reason="[^"]*(ALPN|alpn)' \
    --alpn http/1.1 "${nc[@]}"
ec=(--cert "$dir/east/pki/node.pem" --key "$dir/east/pki/node.key")
try peer connect --hello east "${ec[@]}" "$addr"
if grep -q " verdict=welcome" <<<"$out"; then ok "east is let in before its revocation"; else not_ok "east is let in before its revocation"; fi
expect_ok "hub revoke east" hub hub revoke east
HELLO=east refused "a revoked region" 'hello_refused region=east reason=revoked' "${ec[@]}"
if grep -q "revoked" <<<"$out"; then ok "the revoked region is told it was revoked"; else not_ok "the revoked region is told it was revoked"; fi

# --- A man in the middle: a certificate for "hub" from another CA ---
mport=$(free_port)
peer serve --cert "$pki/mitm.pem" --key "$pki/mitm.key" -s 6 --timeout 3000 "127.0.0.1:$mport" \
    >"$dir/mitm.out" 2>"$dir/mitm.err" &
mitm=$!
pids+=("$mitm")
until_true 10 'grep -q serving "$dir/mitm.err"' || echo "# the stand-in man in the middle did not start"
sed -i "s/^address = .*/address = 127.0.0.1:$mport ; a man in the middle/" "$dir/west/region.ini"
start west "$dir/west/region.ini"
region west member add --name "For the hub only" --kind entrepreneur >/dev/null
# While the stand-in still listens (afterwards west's next attempts fail to connect at all).
wait_for "west's status says why it is not connected" 5 \
    'region west status | grep -qiE "last error +peer certificate: .*(signature|issuer)"'
wait "$mitm" || true
out=$(cat "$dir/mitm.out")
echo "# man in the middle: $out"
if [ "$(num accepted)" -ge 1 ] && [ "$(num handshake_ok)" = 0 ] && [ "$(num client_cert)" = 0 ] &&
    [ "$(num app_bytes)" = 0 ]; then
    ok "west refuses the man in the middle: no handshake, no certificate, no data sent to it"
else
    not_ok "west refuses the man in the middle: no handshake, no certificate, no data sent to it"
fi
wait_for "west says why: the certificate is not the coalition's" 10 \
    'grep -E "event=uplink_closed .*reason=\"peer certificate: [^\"]*(signature|issuer)" "$dir/west.log"'
echo "#   west said: $(grep -E 'event=uplink_closed' "$dir/west.log" | head -1 | sed 's/^ts=[^ ]* //')"
stop west
if [ "$(hubsql "SELECT count(*) FROM members WHERE name = 'For the hub only'")" = 0 ]; then
    ok "nothing of west's reached anyone"
else
    not_ok "nothing of west's reached anyone"
fi

# --- Resource abuse ---
sample_rss
rss0=$rss
echo "# hub RSS at rest: $rss0 kB"

# Slowloris on the HTTP API: started now, checked after the silent TLS connections below.
mark
slowmark=$logmark slow_t0=$SECONDS
ca=$dir/hub/pki/ca.pem
peer slowhttp -s 50 --ca "$ca" "127.0.0.1:$hport" >"$dir/slowhttp-tls.out" 2>"$dir/slowhttp-tls.err" &
sh=($!)
peer slowhttp --stage tcp -s 50 "127.0.0.1:$tport" >"$dir/slowhttp-tcp.out" 2>"$dir/slowhttp-tcp.err" &
sh+=($!)
peer slowhttp -n 50 -s 50 --ca "$ca" "127.0.0.1:$hport" >"$dir/slowhttp-50.out" 2>"$dir/slowhttp-50.err" &
sh+=($!)
pids+=("${sh[@]}")
# cut_off: how many request_timeout lines the hub has logged since the slow clients started.
cut_off() { tail -n "+$((slowmark + 1))" "$dir/hub.log" | grep -c 'event=request_timeout' || true; }
# api_get DESC URL [CURL ARGS...]: a viewer's GET of /v1/status at URL must be answered, 200, within
# 5 s (the time curl took is printed), while no slow client has been cut off yet.
api_get() {
    local d=$1 u=$2 got
    shift 2
    got=$(curl -sS --max-time 5 -o "$dir/api.body" -w '%{http_code} %{time_total}' \
        -H "Authorization: Bearer $viewer" "$@" "$u/v1/status" 2>&1 || true)
    out="$got $(head -c 300 "$dir/api.body" 2>/dev/null)"
    if [ "${got%% *}" = 200 ] && grep -q '"role":"hub"' "$dir/api.body" && [ "$(cut_off)" = 0 ]; then
        ok "$d: 200 in ${got#* } s, $((SECONDS - slow_t0)) s into the slowloris"
    else
        out="$out; request_timeout lines so far: $(cut_off)"
        not_ok "$d"
    fi
}
wait_for "52 slow HTTP clients (HTTPS, TCP, 50 HTTPS) are sending their heads" 30 \
    'grep -q "^tlspeer: 1 connections send" "$dir/slowhttp-tls.err" &&
     grep -q "^tlspeer: 1 connections send" "$dir/slowhttp-tcp.err" &&
     grep -q "^tlspeer: 50 connections send" "$dir/slowhttp-50.err"'
api_get "during the slowloris the hub answers a viewer over HTTPS" "https://127.0.0.1:$hport" --cacert "$ca"
api_get "... and over plain TCP" "http://127.0.0.1:$tport"
replicates "north replicates during the slowloris"

# Slow readers: authenticated regions that PING and never read the PONGs.
mark
sr=()
for r in slow1 slow2 slow3; do
    peer slowread --hello "$r" -s 18 --cert "$dir/$r/pki/node.pem" --key "$dir/$r/pki/node.key" \
        "$addr" >"$dir/slow-$r.out" 2>"$dir/slow-$r.err" &
    sr+=($!)
done
pids+=("${sr[@]}")
replicates "north replicates while three slow readers push"
watch_rss "${sr[@]}"
api_get "with slow readers and the slowloris the hub still answers a viewer over HTTPS" \
    "https://127.0.0.1:$hport" --cacert "$ca"
sent=0 dropped=0
for r in slow1 slow2 slow3; do
    o=$(cat "$dir/slow-$r.out")
    echo "# slow reader $r: $o"
    b=$(num bytes_sent "$o")
    sent=$((sent + ${b:-0}))
    [ "$(num welcomed "$o")" = 1 ] && [ "$(num peer_closed "$o")" = 1 ] && dropped=$((dropped + 1))
done
echo "# slow readers sent $sent bytes of PINGs; hub RSS peak meanwhile $phase_peak kB (at rest $rss0 kB)"
rss_under "hub RSS while slow readers send and never read" "$phase_peak"
if [ "$dropped" = 3 ]; then
    ok "the hub dropped all three slow readers"
else
    out=$(tail -n 5 "$dir"/slow-slow*.err "$dir"/slow-slow*.out 2>&1 || true)
    not_ok "the hub dropped all three slow readers ($dropped)"
fi
logged 3 'reason="the peer does not read'
if [ "$c" -ge 3 ]; then ok "the hub logs why: the peer does not read"; else out=$(since | grep slow | tail -5 || true); not_ok "the hub logs why: the peer does not read"; fi

# 1,000 connections that never finish the TLS handshake.
mark
peer idle --stage tcp -n 500 -s 12 --timeout 20000 "$addr" >"$dir/idle-tcp.out" 2>"$dir/idle-tcp.err" &
i1=$!
peer idle --stage hello -n 500 -s 12 --timeout 20000 "$addr" >"$dir/idle-hello.out" 2>"$dir/idle-hello.err" &
i2=$!
pids+=("$i1" "$i2")
wait_for "1,000 connections that never finish the handshake are open" 30 \
    'grep -q holding "$dir/idle-tcp.err" && grep -q holding "$dir/idle-hello.err"'
replicates "north replicates while they are held"
watch_rss "$i1" "$i2"
during=$phase_peak
a=$(cat "$dir/idle-tcp.out") b=$(cat "$dir/idle-hello.out")
echo "# idle, silent TCP: $a"
echo "# idle, ClientHello only: $b"
echo "# hub RSS while 1,000 unfinished handshakes were held: $during kB"
rss_under "hub RSS with 1,000 unfinished handshakes" "$during"
if [ "$(num connected "$a")" = 500 ] && [ "$(num connected "$b")" = 500 ] &&
    [ "$(num peer_closed "$a")" = 500 ] && [ "$(num peer_closed "$b")" = 500 ]; then
    ok "the hub took all 1,000 and dropped each at its handshake deadline (held 12 s, deadline 8 s)"
else
    out="$a"$'\n'"$b"
    not_ok "the hub took all 1,000 and dropped each at its handshake deadline"
fi
logged 1000 'reason="connection or TLS handshake did not finish within 8000 ms"'
if [ "$c" -ge 1000 ]; then ok "the hub logs each: handshake not finished within 8000 ms ($c)"; else out="$c lines"; not_ok "the hub logs each: handshake not finished within 8000 ms"; fi

# 1,000 that finish the handshake (as slow1) and never say HELLO.
mark
peer idle --stage tls -n 1000 -s 12 --timeout 20000 --cert "$dir/slow1/pki/node.pem" --key "$dir/slow1/pki/node.key" \
    "$addr" >"$dir/idle-tls.out" 2>"$dir/idle-tls.err" &
i1=$!
pids+=("$i1")
wait_for "1,000 connections past the handshake, silent, are open" 60 'grep -q holding "$dir/idle-tls.err"'
replicates "north replicates while they are held"
watch_rss "$i1"
during=$phase_peak
out=$(cat "$dir/idle-tls.out")
echo "# idle after the handshake: $out"
echo "# hub RSS while 1,000 silent TLS connections were held: $during kB"
rss_under "hub RSS with 1,000 silent TLS connections" "$during"
if [ "$(num handshake_ok)" = 1000 ] && [ "$(num peer_closed)" = 1000 ]; then
    ok "the hub dropped all 1,000 for saying no HELLO"
else
    not_ok "the hub dropped all 1,000 for saying no HELLO"
fi
logged 1000 'reason="no HELLO/WELCOME within 8000 ms of the handshake"'
if [ "$c" -ge 1000 ]; then ok "the hub logs each: no HELLO within 8000 ms ($c)"; else out="$c lines"; not_ok "the hub logs each: no HELLO within 8000 ms"; fi
sample_rss
echo "# hub RSS after: $rss kB"
rss_under "hub RSS after the idle connections" "$rss"

# The slowloris, started at the beginning of this part: each slow client was cut off at the
# request deadline (30 s after its first line) with a 408, before it could send its 60 lines.
wait "${sh[@]}" || true
echo "# slowloris (HTTPS, TCP, 50 over HTTPS), ended $((SECONDS - slow_t0)) s after it began:"
slow_ok=1 cut_min=999999 cut_max=0 lines_max=0
for f in tls:1 tcp:1 50:50; do
    o=$(cat "$dir/slowhttp-${f%%:*}.out")
    echo "#   $o"
    [ "$(num connected "$o")" = "${f#*:}" ] && [ "$(num peer_closed "$o")" = "${f#*:}" ] &&
        [ "$(num sent_all "$o")" = 0 ] && [ "$(num answered "$o")" = "${f#*:}" ] &&
        grep -q 'status="HTTP/1.1 408 ' <<<"$o" && [ "$(num closed_ms_max "$o")" -le 45000 ] || slow_ok=0
    [ "$(num closed_ms_min "$o")" -ge "$cut_min" ] || cut_min=$(num closed_ms_min "$o")
    [ "$(num closed_ms_max "$o")" -le "$cut_max" ] || cut_max=$(num closed_ms_max "$o")
    [ "$(num lines_at_close_max "$o")" -le "$lines_max" ] || lines_max=$(num lines_at_close_max "$o")
done 2>/dev/null
out=$(cat "$dir"/slowhttp-*.out)
d="the hub cut off all 52 slow HTTP clients (HTTPS, TCP) with a 408 before they sent their 60 lines"
if [ "$slow_ok" = 1 ]; then
    ok "$d ($cut_min-$cut_max ms after the first line, at most $lines_max lines)"
else
    not_ok "$d"
fi
c=$(cut_off)
echo "#   the hub said: $(tail -n "+$((slowmark + 1))" "$dir/hub.log" | grep -m1 'event=request_timeout' | sed 's/^ts=[^ ]* //')"
why=$(tail -n "+$((slowmark + 1))" "$dir/hub.log" | grep -c 'event=request_timeout .*reason="the request did not arrive whole within 30 s' || true)
if [ "$c" -ge 52 ] && [ "$why" = "$c" ]; then
    ok "the hub logs each, with the reason: request_timeout ($c)"
else
    out="$c lines, $why with the reason"
    not_ok "the hub logs each, with the reason: request_timeout"
fi

# A flood of connect-and-close.
mark
try peer flood --stage tcp -n 3000 "$addr"
echo "# flood, TCP only: $out"
f1=$(num connected)
try peer flood --stage hello -n 3000 "$addr"
echo "# flood, ClientHello then close: $out"
f2=$(num connected)
if [ "$f1" = 3000 ] && [ "$f2" = 3000 ]; then ok "6,000 connect-and-close reached the hub"; else not_ok "6,000 connect-and-close reached the hub ($f1 + $f2)"; fi
echo "# the flood cost $(since | wc -l) lines of the hub's log"
if hub_up; then ok "the hub survives the flood"; else not_ok "the hub survives the flood"; fi
sample_rss
rss_under "hub RSS after the flood" "$rss"
replicates "north replicates after the flood"

# File-descriptor exhaustion: the hub under ulimit -n 64.
stop hub
mark
start hub "$dir/hub/hub.ini" bash -c 'ulimit -n 64; exec "$@"' ulimit64
echo "# $(grep 'open files' "/proc/$pid_hub/limits")"
wait_for "the hub says at start that 64 descriptors are too few" 5 \
    'since | grep -q "event=fd_limit limit=64 "'
replicates "north replicates to the hub under ulimit -n 64"
stop north
peer idle --stage tcp -n 300 -s 10 --timeout 2000 "$addr" >"$dir/fd.out" 2>"$dir/fd.err" &
fl=$!
pids+=("$fl")
wait_for "300 connections flood the hub" 30 'grep -q holding "$dir/fd.err"'
start north "$dir/north/region.ini"
region north member add --name "During the fd flood" --kind entrepreneur >/dev/null
t0=$(cpu_ticks)
sleep 2
t1=$(cpu_ticks)
fds=$(ls "/proc/$pid_hub/fd" | wc -l)
echo "# under the flood: hub CPU $((t1 - t0)) ticks in 2 s (${HZ}/s), $fds descriptors open"
if [ $((t1 - t0)) -lt "$HZ" ]; then ok "the hub does not spin while out of descriptors"; else not_ok "the hub does not spin while out of descriptors ($((t1 - t0)) ticks)"; fi
if hub_up; then ok "the hub is still running while out of descriptors"; else not_ok "the hub is still running while out of descriptors"; fi
wait "$fl" || true
out=$(cat "$dir/fd.out")
echo "# fd flood: $out"
if [ "$(num connected)" -ge 64 ]; then ok "the flood went beyond 64 connections"; else not_ok "the flood went beyond 64 connections"; fi
wait_for "once the flood ends, north gets in and what it wrote meanwhile reaches the hub" 30 \
    "[ \"\$(hubsql \"SELECT count(*) FROM members WHERE name = 'During the fd flood'\")\" = 1 ]"
replicates "north replicates after the fd flood"
sample_rss
echo "# hub RSS peak over the whole run: $rss_peak kB"
rss_under "hub RSS at the end" "$rss"

# --- Clean ends ---
stopped_cleanly north
stopped_cleanly hub
if ! grep -lE "AddressSanitizer|LeakSanitizer|runtime error:" "$dir"/*.log >/dev/null 2>&1; then
    ok "no sanitizer report in any log"
else
    out=$(grep -hE -A3 "AddressSanitizer|LeakSanitizer|runtime error:" "$dir"/*.log | head -20 || true)
    not_ok "no sanitizer report in any log"
fi
lib_finish
