#!/usr/bin/env bash
# tests/bench/sangam_bench.sh BUILD_DIR N [--small] - Sangam's side of issue 4's table: a real
# hub and a real region (sangamd) over mutual TLS on 127.0.0.1, measured as a user sees them.
#
# Prints key=value lines on stdout (progress on stderr):
#   sangam_region_write rows=N seconds=S rows_per_s=R   the region's own write path (CSV import
#                                                         in 10,000-row files, capture included)
#   sangam_catchup rows=N seconds=S rows_per_s=R          N changes already in the region's log,
#                                                         a fresh hub started: from the region's
#                                                         connection until the hub has them all
#   sangam_streaming rows=N seconds=S writer_rows_per_s=W e2e_rows_per_s=E lag_end_s=L
#   sangam_latency samples=K p50_ms=X p99_ms=Y max_ms=Z   one API write until visible at the hub
#   sangam_wire changes=C wire_bytes=W frame_bytes=F ...  the catch-up's bytes on the wire per
#                                                         change, against its msgpack frames
#   sangam_rss region_kib=A hub_kib=B                     peak RSS (VmHWM) after the runs
#   sangam_offline changes=M seconds=S since_connect_s=C rows_per_s=R
#                                                         the hub away while the region writes M
#                                                         mixed changes (inserts, updates,
#                                                         deletes over four tables); from the
#                                                         hub's restart (and from the region's
#                                                         reconnect) to zero lag
#   sangam_fanin regions=R changes=F ... rows_per_s=X hub_kib=H
#                                                         R simulated regions (bench_fanin, one
#                                                         certificate and connection each) push
#                                                         F changes in all to a fresh hub
#   sangam_growth hub_rows=H changes=G rows_per_s=X       G changes from 2 regions into a hub
#                                                         already holding H member rows
# --small: N=20,000 and 100 latency samples (the smoke form in tests/run.sh, seconds).
#
# Everything is loopback, every wait has a deadline, and an EXIT trap stops the daemons and
# removes the scratch directory.
set -euo pipefail
BUILD=$(realpath "${1:?usage: sangam_bench.sh BUILD_DIR N [--small]}")
N=${2:-1000000}
K=1000
M=200000                      # offline return: mixed changes written while the hub is away
F=200000                      # fan-in: changes in all
FAN="2 10 100 500"            # fan-in: region counts
G=200000                      # growth: changes pushed at each size
GROW="1000000 4000000"        # growth: rows added before the 2nd and 3rd measurement (1M, 5M)
if [ "${3:-}" = --small ]; then
  N=20000 K=100 M=20000 F=10000 FAN="2 10 100" G=10000 GROW="20000 80000"
fi
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SANGAMD=$BUILD/server/sangamd
SANGAM=$BUILD/client/sangam
TMP=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
log() { printf 'sangam_bench: %s\n' "$*" >&2; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f", n / (b - a) }'; }

PORT=$((20000 + RANDOM % 20000))
"$ROOT/deploy/make-test-pki.sh" "$TMP/pki" hub bench >/dev/null
cat >"$TMP/hub.ini" <<INI
[node]
role = hub
id = hub
db = hub.db
[api]
socket = hub.sock
[listen]
address = 127.0.0.1:$PORT
[tls]
ca = pki/ca.pem
cert = pki/hub.pem
key = pki/hub.key
INI
cat >"$TMP/bench.ini" <<INI
[node]
role = region
id = bench
db = bench.db
[api]
socket = bench.sock
[hub]
address = 127.0.0.1:$PORT
[tls]
ca = pki/ca.pem
cert = pki/bench.pem
key = pki/bench.key
[replication]
reconnect_max = 1s
INI

start() { # start NAME: starts sangamd with NAME.ini, waits for its socket
  "$SANGAMD" --config "$TMP/$1.ini" 2>>"$TMP/$1.log" &
  pids+=($!)
  eval "PID_$1=$!"
  for _ in $(seq 200); do [ -S "$TMP/$1.sock" ] && return 0; sleep 0.05; done
  log "$1 did not start: $(tail -3 "$TMP/$1.log")"; exit 1
}
stop() { # stop NAME
  local var="PID_$1"
  kill -TERM "${!var}"; wait "${!var}" 2>/dev/null || true
}
hub_cursor() { sqlite3 "$TMP/hub.db" "SELECT coalesce(max(last_seq), 0) FROM sg_regions" 2>/dev/null || echo 0; }
region_seq() { sqlite3 "$TMP/bench.db" "SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'sg_changes'"; }
wait_hub() { # wait_hub SEQ: until the hub's cursor reaches SEQ (deadline 20 min)
  local deadline=$((SECONDS + 1200))
  while [ "$(hub_cursor)" -lt "$1" ]; do
    [ $SECONDS -lt $deadline ] || { log "the hub did not reach seq $1"; exit 1; }
    sleep 0.02
  done
}
connected_at() { # the time of the region's last uplink_connected log line, as seconds
  date -d "$(grep 'event=uplink_connected' "$TMP/bench.log" | tail -1 |
    sed 's/^ts=\([^ ]*\) .*/\1/')" +%s.%N
}
make_rows() { # make_rows COUNT SEED DIR: the CSV files write_rows imports (made untimed)
  local left=$1 seed=$2 chunk i=0
  mkdir -p "$3"
  while [ "$left" -gt 0 ]; do
    chunk=$((left < 10000 ? left : 10000))
    "$ROOT/deploy/sample-members.sh" bench "$chunk" "$seed" >"$3/$(printf %06d $i).csv"
    left=$((left - chunk))
    seed=$((seed + 1))
    i=$((i + 1))
  done
}
write_rows() { # write_rows DIR: CSV imports of 10,000 rows each through the region's API
  local f
  for f in "$1"/*.csv; do
    "$SANGAM" --node "$TMP/bench.sock" member import "$f" >/dev/null
  done
}

# 1. Catch-up: N changes in the log, then a fresh hub.
log "catch-up: writing $N changes into a region with no hub"
make_rows "$N" 1 "$TMP/rows1"
make_rows "$N" 1000 "$TMP/rows2"
start bench
t0=$(now); write_rows "$TMP/rows1"; t1=$(now)
printf 'sangam_region_write rows=%s seconds=%s rows_per_s=%s\n' "$N" "$(secs "$t0" "$t1")" \
  "$(rate "$N" "$t0" "$t1")"
seq=$(region_seq)
log "catch-up: starting the hub"
start hub; wait_hub "$seq"; t1=$(now)
# From the region's connection (its log's uplink_connected): a region with no hub retries every
# reconnect_max (1 s here), a wait that is not replication's.
t0=$(connected_at)
printf 'sangam_catchup rows=%s seconds=%s rows_per_s=%s\n' "$seq" "$(secs "$t0" "$t1")" \
  "$(rate "$seq" "$t0" "$t1")"

# Wire: what the catch-up cost on the connection, per change, against the changes' own
# msgpack encoding (the frames' bytes, decrypted).
regions=$("$SANGAM" --node "$TMP/hub.sock" --json hub regions)
num() { grep -o "\"$1\": *[0-9]*" <<<"$regions" | head -1 | grep -o '[0-9]*$'; }
awk -v c="$(num changes)" -v w="$(num wire_bytes_in)" -v f="$(num frame_bytes_in)" 'BEGIN {
  if (c > 0) printf "sangam_wire changes=%d wire_bytes=%d frame_bytes=%d wire_per_change=%.1f frame_per_change=%.1f ratio=%.3f\n",
    c, w, f, w / c, f / c, w / f }'

# 2. Streaming: the region writes as fast as it can while it replicates.
log "streaming: writing $N more changes while connected"
base=$(region_seq)
t0=$(now); write_rows "$TMP/rows2"; t1=$(now)
target=$(region_seq); wait_hub "$target"; t2=$(now)
printf 'sangam_streaming rows=%s seconds=%s writer_rows_per_s=%s e2e_rows_per_s=%s lag_end_s=%s\n' \
  "$((target - base))" "$(secs "$t0" "$t2")" "$(rate "$((target - base))" "$t0" "$t1")" \
  "$(rate "$((target - base))" "$t0" "$t2")" "$(secs "$t1" "$t2")"

# 3. Latency: single writes through the API until visible at the hub.
log "latency: $K single writes"
"$BUILD/tests/bench/bench_latency" "$TMP/bench.sock" "$TMP/hub.db" "$K"

hwm() { awk '/VmHWM/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
printf 'sangam_rss region_kib=%s hub_kib=%s\n' "$(hwm "$PID_bench")" "$(hwm "$PID_hub")"

# 4. Offline return: the hub goes away; the region keeps working and writes M mixed changes
# (through SQLite, captured by the region's triggers as any writer's are); the hub comes back.
log "offline return: $M mixed changes while the hub is away"
stop hub
"$BUILD/tests/bench/bench_sqlite_limit" "$M" --mixed --into "$TMP/bench.db" --region bench >/dev/null
seq=$(region_seq)
t0=$(now); start hub; wait_hub "$seq"; t1=$(now)
# The region's reconnect (its backoff is at most reconnect_max = 1 s) from its own log.
conn=$(connected_at)
printf 'sangam_offline changes=%s seconds=%s since_connect_s=%s rows_per_s=%s\n' "$M" \
  "$(secs "$t0" "$t1")" "$(secs "$conn" "$t1")" "$(rate "$M" "$conn" "$t1")"
printf 'sangam_rss_offline region_kib=%s hub_kib=%s\n' "$(hwm "$PID_bench")" "$(hwm "$PID_hub")"
stop bench
stop hub

# 5. Fan-in: R regions pushing at once, each a fresh hub (so its peak RSS is this run's).
fresh_hub() { # fresh_hub: an empty hub database, hub started
  rm -f "$TMP"/hub.db*
  start hub
}
for r in $FAN; do
  log "fan-in: $r regions, $F changes in all"
  fresh_hub
  out=$("$BUILD/tests/bench/bench_fanin" --hub "127.0.0.1:$PORT" --pki "$TMP/pki" --regions "$r" \
    --changes "$F" --prefix "fan$r")
  echo "$out hub_kib=$(hwm "$PID_hub")"
  stop hub
done

# 6. Growth: the same push into a hub that already holds 0, then 1M, then 5M member rows (the
# filler is written as the hub's apply writes rows, with its triggers standing aside).
log "growth: $G changes into a hub holding more and more rows"
fresh_hub
held=0 i=0
for add in 0 $GROW; do
  if [ "$add" -gt 0 ]; then
    stop hub
    "$BUILD/tests/bench/bench_sqlite_limit" "$add" --into "$TMP/hub.db" --region filler \
      --applying >/dev/null
    start hub
  fi
  held=$(sqlite3 "$TMP/hub.db" "SELECT count(*) FROM members")
  i=$((i + 1))
  out=$("$BUILD/tests/bench/bench_fanin" --hub "127.0.0.1:$PORT" --pki "$TMP/pki" --regions 2 \
    --changes "$G" --prefix "grow$i")
  rate=$(sed 's/.*rows_per_s=\([0-9]*\).*/\1/' <<<"$out")
  printf 'sangam_growth hub_rows=%s changes=%s rows_per_s=%s\n' "$held" "$G" "$rate"
done
stop hub
