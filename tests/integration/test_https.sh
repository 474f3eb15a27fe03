#!/usr/bin/env bash
# test_https.sh - the hub serves its API over HTTPS with its own certificate ([api] https, issue
# 6), with real processes: a hub made by sangamd init with `https = 127.0.0.1:PORT` added, read
# with curl trusting only the coalition CA (the hub's certificate carries IP:127.0.0.1 by
# default). Checks tokens over HTTPS, TLS 1.2 and 1.3, ALPN, a client that does not trust the
# CA, plain HTTP on the HTTPS port, garbage next to a live keep-alive connection, the handshake
# deadline (a half-finished handshake) and the idle timeout (close_notify after 30 s), the CLI
# over https://, a region that asks for HTTPS, and a clean stop with an HTTPS connection open.
# Takes about 35 s: the two 30 s timeouts run alongside the rest.
#
# Usage: test_https.sh PATH/TO/sangamd PATH/TO/sangam
# Prints "ok N - ..." / "not ok N - ..." and "P passed, F failed"; exits non-zero on a failure.
# Everything lives in a temporary directory removed by the EXIT trap (KEEP=1 keeps it), which
# stops the daemons and helpers; every wait has a deadline. Needs curl, openssl and python3
# (deploy/deps.sh).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
lib_setup https "$@"
for tool in curl openssl python3; do
    command -v "$tool" >/dev/null || { echo "test_https.sh: $tool is needed" >&2; exit 2; }
done

logged() { grep -q -- "$1" "$dir/hub.log"; }     # logged PATTERN: the hub's log has it
has() { grep -q -- "$1" "$2" 2>/dev/null; }      # has PATTERN FILE
nlines() { grep -c -- "$1" "$2" 2>/dev/null || true; }
gone() { [ ! -e "/proc/$1" ] || grep -q '^[0-9]* ([^)]*) Z' "/proc/$1/stat"; } # exited (or a zombie)

port=$(free_port)
hport=$(free_port)
while [ "$hport" = "$port" ]; do hport=$(free_port); done
"$SANGAMD" init --dir "$dir/hub" --listen "127.0.0.1:$port" >/dev/null
sed -i "s/^socket = hub.sock.*/&\nhttps = 127.0.0.1:$hport/" "$dir/hub/hub.ini"
start hub "$dir/hub/hub.ini"
ca=$dir/hub/pki/ca.pem
url=https://127.0.0.1:$hport
code() { curl -s -o /dev/null -w '%{http_code}' --cacert "$ca" "$@"; }
if logged "event=listen https=127.0.0.1:$hport"; then ok "the hub logs its HTTPS listener"; else out=$(cat "$dir/hub.log"); not_ok "the hub logs its HTTPS listener"; fi

# Two clients checked at the end, so that their 30 s overlap the rest of the test: one opens a
# TLS handshake and never finishes it (the handshake deadline must close it), one completes its
# handshake and then sends nothing (the idle timeout must end it, with close_notify; python's
# ssl tells a close_notify from a cut connection).
exec 5<>"/dev/tcp/127.0.0.1/$hport"
printf '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03' >&5
slow_since=$SECONDS
python3 - "$hport" "$ca" >"$dir/idle.out" 2>&1 <<'PY' &
import socket, ssl, sys, time
ctx = ssl.create_default_context(cafile=sys.argv[2])
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))),
                    server_hostname="127.0.0.1", suppress_ragged_eofs=False)
t = time.monotonic()
try:
    print("close_notify" if s.recv(1) == b"" else "data", "after", round(time.monotonic() - t), "s")
except (ssl.SSLError, OSError) as e:
    print("error", e)
PY
pids+=($!)

# --- Reading over HTTPS with a token ---
viewer=$("$SANGAM" --node "$dir/hub/hub.sock" hub token create "HQ over HTTPS" 2>/dev/null)
check_eq "/healthz over HTTPS, trusting only the coalition CA" "$(curl -s --cacert "$ca" "$url/healthz")" '{"ok":true}'
check_eq "no token over HTTPS: 401" "$(code "$url/v1/members")" 401
check_eq "a viewer's token over HTTPS: 200" "$(code -H "Authorization: Bearer $viewer" "$url/v1/members")" 200
check_eq "a viewer may not write over HTTPS either: 403" "$(code -H "Authorization: Bearer $viewer" -H 'Content-Type: application/json' -X POST -d '{"name":"x"}' "$url/v1/tokens")" 403
out=$(curl -sv --tlsv1.2 --tls-max 1.2 --cacert "$ca" -H "Authorization: Bearer $viewer" "$url/v1/status" 2>&1 || true)
if grep -q 'SSL connection using TLSv1.2' <<<"$out" && grep -q '"role":"hub"' <<<"$out"; then ok "TLS 1.2 (curl --tlsv1.2 --tls-max 1.2)"; else not_ok "TLS 1.2 (curl --tlsv1.2 --tls-max 1.2)"; fi
out=$(curl -sv --tlsv1.3 --cacert "$ca" "$url/healthz" 2>&1 || true)
if grep -q 'SSL connection using TLSv1.3' <<<"$out" && grep -q 'ALPN.*accepted http/1.1' <<<"$out"; then ok "TLS 1.3, ALPN http/1.1 chosen from curl's h2,http/1.1"; else not_ok "TLS 1.3, ALPN http/1.1 chosen from curl's h2,http/1.1"; fi
out=$(curl -sv --no-alpn --cacert "$ca" "$url/healthz" 2>&1 || true)
if grep -q '{"ok":true}' <<<"$out"; then ok "a client offering no ALPN is served"; else not_ok "a client offering no ALPN is served"; fi
out=$(openssl s_client -connect "127.0.0.1:$hport" -CAfile "$ca" -alpn h2 </dev/null 2>&1 || true)
if until_true 5 logged "the client offered 'h2'"; then ok "a client offering only h2 is refused, and the log says why"; else out=$(tail -3 "$dir/hub.log"); not_ok "a client offering only h2 is refused, and the log says why"; fi
# The handshake asks for no client certificate.
out=$(openssl s_client -connect "127.0.0.1:$hport" -CAfile "$ca" -state </dev/null 2>&1 || true)
if grep -q 'Verify return code: 0 (ok)' <<<"$out" && ! grep -qi 'certificate request' <<<"$out"; then ok "no client certificate is requested, the hub's certificate verifies"; else not_ok "no client certificate is requested, the hub's certificate verifies"; fi
if grep -q 'event=request .* peer=127\.0\.0\.1:[0-9][0-9]*$' "$dir/hub.log"; then ok "requests over HTTPS are logged with the peer's ip:port"; else out=$(grep event=request "$dir/hub.log" | tail -2); not_ok "requests over HTTPS are logged with the peer's ip:port"; fi

# --- Refusals that must not hurt the hub ---
rc=0
out=$(curl -sS "$url/healthz" 2>&1) || rc=$?
check_eq "without the coalition CA, curl refuses the hub's certificate (exit 60)" "$rc" 60
if until_true 5 logged "tls_handshake_failed.*refused the hub's certificate"; then ok "... and the hub logs the failed handshake"; else out=$(tail -3 "$dir/hub.log"); not_ok "... and the hub logs the failed handshake"; fi
out=$(curl -s -w ' %{http_code}' "http://127.0.0.1:$hport/healthz" 2>&1 || true)
if grep -q 'https://' <<<"$out" && grep -q ' 400$' <<<"$out"; then ok "plain HTTP on the HTTPS port: 400 saying to use https://"; else not_ok "plain HTTP on the HTTPS port: 400 saying to use https://"; fi
check_eq "... and the hub keeps serving HTTPS" "$(code "$url/healthz")" 200

# A keep-alive HTTPS connection (openssl s_client, fed through a FIFO) stays usable while
# another connection sends a garbage ClientHello.
mkfifo "$dir/ka.in"
openssl s_client -quiet -connect "127.0.0.1:$hport" -CAfile "$ca" <"$dir/ka.in" >"$dir/ka.out" 2>"$dir/ka.err" &
pids+=($!)
exec 4>"$dir/ka.in"
get() { printf 'GET /v1/status HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer %s\r\n\r\n' "$viewer" >&4; }
get
until_true 10 has '"role":"hub"' "$dir/ka.out" || true
check_eq "a keep-alive HTTPS connection answers" "$(nlines '^HTTP/1.1 200' "$dir/ka.out")" 1
exec 3<>"/dev/tcp/127.0.0.1/$hport"
# A handshake record of 42 bytes, 47 in all, whose ClientHello is nonsense after its version.
printf '\x16\x03\x01\x00\x2a\x01\x00\x00\x26\x03\x03garbage-garbage-garbage-garbage-garb' >&3
if until_true 10 logged "tls_handshake_failed.*bytes=47"; then ok "a garbage ClientHello fails its handshake, logged"; else out=$(tail -3 "$dir/hub.log"); not_ok "a garbage ClientHello fails its handshake, logged"; fi
got=$(timeout 5 cat <&3 | od -An -tx1 | tr -d ' \n' | cut -c1-2 || true)
exec 3>&-
check_eq "... is sent a TLS alert and closed" "$got" 15
get
until_true 10 '[ "$(nlines "^HTTP/1.1 200" "$dir/ka.out")" = 2 ]' || true
check_eq "... while the other connection goes on answering" "$(nlines '^HTTP/1.1 200' "$dir/ka.out")" 2
check_eq "... and new ones are served" "$(code -H "Authorization: Bearer $viewer" "$url/v1/members")" 200

# --- The CLI over https:// ---
rc=0
out=$(SANGAM_TOKEN=$viewer "$SANGAM" --node "$url" status 2>&1) || rc=$?
if [ "$rc" = 3 ] && grep -q 'certificate' <<<"$out"; then ok "the CLI does not trust the hub without the CA: exit 3, certificate problem"; else out="rc=$rc $out"; not_ok "the CLI does not trust the hub without the CA: exit 3, certificate problem"; fi
rc=0
out=$(SANGAM_CA=$ca SANGAM_TOKEN=$viewer "$SANGAM" --node "$url" --json status 2>&1) || rc=$?
if [ "$rc" = 0 ] && grep -q '"role": *"hub"' <<<"$out"; then
    ok "the CLI reads the hub over HTTPS with SANGAM_TOKEN, trusting the CA named by SANGAM_CA"
else
    out="rc=$rc $out"; not_ok "the CLI reads the hub over HTTPS with SANGAM_TOKEN, trusting the CA named by SANGAM_CA"
fi

# --- A region may not serve HTTPS ---
mkdir -p "$dir/region"
printf '[node]\nrole = region\nid = awadh\ndb = awadh.db\n[api]\nsocket = awadh.sock\nhttps = 127.0.0.1:%s\n' \
    $((hport + 1)) >"$dir/region/region.ini"
rc=0
out=$("$SANGAMD" --config "$dir/region/region.ini" --check 2>&1) || rc=$?
if [ "$rc" = 2 ] && grep -q '\[api\] https: only the hub' <<<"$out"; then ok "a region with [api] https is a config error naming the key"; else out="rc=$rc $out"; not_ok "a region with [api] https is a config error naming the key"; fi

# --- The half-finished handshake from the start was cut at the deadline (30 s) ---
rc=0
left=$((45 - (SECONDS - slow_since)))
[ "$left" -gt 0 ] || left=1
timeout "$left" cat <&5 >/dev/null 2>&1 || rc=$?
waited=$((SECONDS - slow_since))
exec 5>&-
if [ "$rc" = 0 ] && [ "$waited" -ge 25 ] && logged "tls_handshake_failed.*within 30 s"; then
    ok "a handshake left unfinished is closed at the deadline (${waited}s) and logged"
else
    out="rc=$rc waited=${waited}s; $(grep tls_handshake_failed "$dir/hub.log" | tail -2)"
    not_ok "a handshake left unfinished is closed at the deadline"
fi

if until_true 15 has after "$dir/idle.out" && grep -Eq '^close_notify after (2[5-9]|3[0-9]) s' "$dir/idle.out"; then
    ok "an idle HTTPS connection is ended after 30 s with close_notify"
else
    out=$(cat "$dir/idle.out"); not_ok "an idle HTTPS connection is ended after 30 s with close_notify"
fi

# --- A clean stop with an HTTPS connection open: close_notify, exit 0 ---
exec 4>&-
python3 - "$hport" "$ca" "$viewer" >"$dir/last.out" 2>&1 <<'PY' &
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))),
                    server_hostname="127.0.0.1", suppress_ragged_eofs=False)
s.sendall(b"GET /v1/status HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer %s\r\n\r\n"
          % sys.argv[3].encode())
data = b""
while b"\r\n\r\n" not in data:
    data += s.recv(4096)
head, body = data.split(b"\r\n\r\n", 1)
length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0][15:])
while len(body) < length:
    body += s.recv(4096)
print(head.split(b"\r\n")[0].decode(), flush=True)
try:
    print("close_notify" if s.recv(1) == b"" else "data")
except (ssl.SSLError, OSError) as e:
    print("error", e)
PY
last_pid=$!
pids+=("$last_pid")
until_true 10 has 'HTTP/1.1' "$dir/last.out" || true
check_eq "an HTTPS connection is open and has been answered before the stop" "$(head -1 "$dir/last.out")" "HTTP/1.1 200 OK"
kill -TERM "$pid_hub"
rc=0
for _ in $(seq 100); do kill -0 "$pid_hub" 2>/dev/null || break; sleep 0.1; done
wait "$pid_hub" || rc=$?
check_eq "the hub stops cleanly (exit 0) with an HTTPS connection open" "$rc" 0
until_true 5 gone "$last_pid" || true
check_eq "... and ended that connection with close_notify" "$(tail -1 "$dir/last.out")" close_notify
if logged 'event=stopped' && ! grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error:|loop_not_clean' "$dir/hub.log"; then
    ok "... its log ends with stopped, with no sanitizer report"
else
    out=$(tail -20 "$dir/hub.log"); not_ok "... its log ends with stopped, with no sanitizer report"
fi

lib_finish
