#!/usr/bin/env bash
# tests/bench/pg_baseline.sh [N] [--small] [--samples K] - the PostgreSQL peer of issue 4:
# logical replication of the benchmark's member rows between two throw-away PostgreSQL 15
# clusters on 127.0.0.1, measured the way Sangam is measured.
#
# Prints key=value lines on stdout (progress goes to stderr):
#   pg_settings version=V fsync=on synchronous_commit=on sub_synchronous_commit=on checks=on
#   pg_insert rows=N seconds=S rows_per_s=R        publisher bulk insert, nothing decoding it
#   pg_catchup rows=N seconds=S rows_per_s=R       backlog of N rows in the WAL, subscription
#                                                  enabled afterwards: until all are applied
#   pg_catchup_copy rows=N seconds=S rows_per_s=R  a new subscription's initial table copy of N
#                                                  rows (copy_data = true): until it is ready
#   pg_streaming rows=N seconds=S writer_rows_per_s=W e2e_rows_per_s=E lag_end_s=L
#   pg_latency samples=K p50_ms=X p99_ms=Y max_ms=Z mode=poll
# or, when PostgreSQL cannot be installed or started, `pg_unavailable reason=...` and exit 0.
# If the latency helper cannot be built: `pg_latency_unavailable reason=...`. Any other failure
# exits non-zero with the reason on stderr.
#
# Defaults N=1000000 (or $PG_BENCH_ROWS), K=1000 (or $PG_BENCH_SAMPLES); --small: N=20000,
# K=100 (the CI smoke form, seconds). $BENCH_PG_LATENCY may name a built bench_pg_latency
# (CMake target in tests/bench); otherwise it is compiled here with cc. $PG_LATENCY_MODE=notify
# switches the latency wait from polling to LISTEN/NOTIFY (see pg_latency.c).
# $PG_BENCH_CHECKS=0 drops the tables' CHECK constraints on both clusters: PostgreSQL 15's apply
# worker re-reads every CHECK expression (stringToNode) for every replicated row, which with this
# table's fifteen CHECKs is most of its time; the knob shows how much.
#
# Measurement rules, matching Sangam's side:
# - Rows: the members table of server/schema.sql translated to PostgreSQL (same columns and
#   CHECKs; text timestamps), time-ordered 26-character text keys, written in 10,000-row
#   transactions by INSERT ... SELECT over generate_series (the fastest writer PostgreSQL has).
# - Durability: fsync on, synchronous_commit on for the writer and for the subscription's apply
#   worker (PostgreSQL's subscription default is off; Sangam's hub commits with
#   synchronous=FULL, so the subscriber is held to the same). Everything else is default but
#   the subscriber's wal_retrieve_retry_interval (200 ms: how soon the launcher may start the
#   next worker; it paces worker start-up, not throughput).
# - "Applied": the subscriber's confirmed flush position (pg_stat_replication.flush_lsn on the
#   publisher) reaches the publisher's WAL position after the last write. A plpgsql function on
#   the publisher polls it every 2 ms and returns the time it saw it, so the clocks are the
#   servers' and psql start-up is outside the measurement. Row counts are checked afterwards.
#
# Safety: both clusters listen on 127.0.0.1 only (no Unix sockets), on random free ports, with
# SCRAM and a random password (no trust auth); servers run as the postgres user when started as root; every wait
# has a deadline; an EXIT trap stops both clusters (by their postmaster pid if pg_ctl fails) and
# removes the temp dir whatever happens. Installing postgresql-15 (only when missing) is the one
# change outside the temp dir; on Debian that package also creates its default cluster.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
N=${PG_BENCH_ROWS:-1000000}
K=${PG_BENCH_SAMPLES:-1000}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
CHUNK=10000

usage() { echo "usage: pg_baseline.sh [N] [--small] [--samples K]" >&2; exit 2; }
while (($#)); do
  case $1 in
    --small) N=20000 K=100 ;;
    --samples) [ $# -ge 2 ] || usage; K=$2; shift ;;
    [0-9]*) N=$1 ;;
    *) usage ;;
  esac
  shift
done
[[ $N =~ ^[0-9]+$ && $N -ge 1 && $K =~ ^[0-9]+$ && $K -ge 1 ]] || usage

log() { printf 'pg_baseline: %s\n' "$*" >&2; }
unavailable() { printf 'pg_unavailable reason=%s\n' "$1"; exit 0; }
die() { log "error: $*"; exit 1; }
# Seconds any one wait may take: generous for this N, but bounded.
DEADLINE=$((120 + N / 2000))

# --- PostgreSQL itself ---------------------------------------------------------------------

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
# apt_install PKG: installs PKG when it is missing; never upgrades an installed one.
apt_install() {
  installed "$1" && return 0
  log "installing $1"
  local apt=(env DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q
    --no-install-recommends --no-upgrade "$1")
  as_root "${apt[@]}" >&2 ||
    { as_root timeout 300 apt-get update -q >&2 && as_root "${apt[@]}" >&2; }
}
if [ ! -x "$PGBIN/initdb" ]; then
  installed postgresql-15 && unavailable "no_initdb_in_PGBIN"
  apt_install postgresql-15 || unavailable install_failed
  [ -x "$PGBIN/initdb" ] || unavailable no_initdb_after_install
fi

# initdb refuses to run as root: the servers run as postgres, the clients as us.
RUNAS=()
if [ "$(id -u)" -eq 0 ]; then
  id postgres >/dev/null 2>&1 || unavailable no_postgres_user
  RUNAS=(runuser -u postgres --)
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/sangam-pg-XXXXXX")
WAITER_PID=
cleanup() {
  local rc=$? c pid
  set +e
  [ -n "$WAITER_PID" ] && kill "$WAITER_PID" 2>/dev/null
  for c in sub pub; do
    [ -f "$TMP/$c/postmaster.pid" ] || continue
    pid=$(head -n 1 "$TMP/$c/postmaster.pid")
    "${RUNAS[@]}" "$PGBIN/pg_ctl" -D "$TMP/$c" -m immediate -t 20 stop >/dev/null 2>&1 ||
      { [[ $pid =~ ^[0-9]+$ ]] && kill -KILL "$pid" 2>/dev/null; sleep 1; }
  done
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ((${#RUNAS[@]})); then
  chown postgres: "$TMP"
  "${RUNAS[@]}" test -w "$TMP" || unavailable tmpdir_not_writable_by_postgres
fi

# The password: SCRAM for every TCP connection, read by clients from a passfile of ours.
PW=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
export PGPASSFILE=$TMP/pgpass
(umask 077; printf '127.0.0.1:*:*:postgres:%s\n' "$PW" >"$PGPASSFILE")
(umask 077; printf '%s\n' "$PW" >"$TMP/pwfile")
((${#RUNAS[@]})) && chown postgres: "$TMP/pwfile"

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_cluster NAME EXTRA_CONF: initdb and start on a free port; sets PORT_<NAME>.
start_cluster() {
  local name=$1 extra=$2 dir=$TMP/$1 port try
  "${RUNAS[@]}" "$PGBIN/initdb" -D "$dir" -U postgres --auth-local=reject \
    --auth-host=scram-sha-256 --pwfile="$TMP/pwfile" -E UTF8 --locale=C.UTF-8 \
    >"$TMP/$name-initdb.log" 2>&1 || { tail -5 "$TMP/$name-initdb.log" >&2; unavailable initdb_failed; }
  cat >>"$dir/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
fsync = on
synchronous_commit = on
max_wal_senders = 10
max_replication_slots = 10
log_min_messages = warning
$extra
EOF
  for try in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 40000))
    port_busy "$port" && continue
    if "${RUNAS[@]}" "$PGBIN/pg_ctl" -D "$dir" -l "$TMP/$name.log" -w -t 60 -o "-p $port" \
      start >/dev/null 2>&1; then
      printf -v "PORT_$name" %s "$port"
      return 0
    fi
    log "$name did not start on port $port (try $try)"
  done
  tail -5 "$TMP/$name.log" >&2
  unavailable start_failed
}

log "starting publisher and subscriber clusters in $TMP"
start_cluster pub "wal_level = logical"
# The launcher starts apply workers at most once per wal_retrieve_retry_interval (default 5 s):
# back-to-back phases would otherwise count up to 5 s of waiting for a worker slot.
start_cluster sub "wal_retrieve_retry_interval = 200ms"
PORT_pub=${PORT_pub:?} PORT_sub=${PORT_sub:?}
CONN_pub="host=127.0.0.1 port=$PORT_pub dbname=postgres user=postgres"
CONN_sub="host=127.0.0.1 port=$PORT_sub dbname=postgres user=postgres"

# psql_on pub|sub [psql args...]: a bounded psql session, stopping at the first error.
psql_on() {
  local port
  if [ "$1" = pub ]; then port=$PORT_pub; else port=$PORT_sub; fi
  shift
  timeout -k 5 "$DEADLINE" "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 \
    -p "$port" -U postgres -d "${PSQL_DB:-postgres}" "$@"
}

# --- schema --------------------------------------------------------------------------------

# server/schema.sql's organisations and members, in PostgreSQL: length(CAST(x AS BLOB)) is
# octet_length(x), GLOB classes are regular expressions, `x IS date(x)` is a round trip
# through date.
SCHEMA=$(cat <<'EOF'
CREATE TABLE organisations (
    id          text PRIMARY KEY NOT NULL CHECK (length(id) BETWEEN 1 AND 64),
    region      text NOT NULL CHECK (length(region) BETWEEN 1 AND 63
                                     AND region !~ '[^a-z0-9-]' AND region NOT LIKE '-%'),
    name        text NOT NULL CHECK (octet_length(name) BETWEEN 1 AND 400),
    kind        text NOT NULL CHECK (kind IN ('government', 'financial', 'academic', 'training',
                                              'civil_society', 'private', 'other')),
    district    text CHECK (octet_length(district) <= 200),
    contact     text CHECK (octet_length(contact) <= 400),
    created_at  text NOT NULL DEFAULT (to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')),
    updated_at  text NOT NULL DEFAULT (to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
);
CREATE TABLE members (
    id              text PRIMARY KEY NOT NULL CHECK (length(id) BETWEEN 1 AND 64),
    region          text NOT NULL CHECK (length(region) BETWEEN 1 AND 63
                                         AND region !~ '[^a-z0-9-]' AND region NOT LIKE '-%'),
    name            text NOT NULL CHECK (octet_length(name) BETWEEN 1 AND 400),
    kind            text NOT NULL CHECK (kind IN ('entrepreneur', 'representative', 'staff')),
    gender          text CHECK (gender IN ('female', 'male', 'other', 'undisclosed')),
    birth_year      integer CHECK (birth_year BETWEEN 1900 AND 2100),
    phone           text CHECK (length(phone) <= 32 AND phone !~ '[^0-9+() -]'),
    village         text CHECK (octet_length(village) <= 200),
    district        text CHECK (octet_length(district) <= 200),
    sector          text CHECK (octet_length(sector) <= 200),
    organisation_id text REFERENCES organisations (id),
    joined_on       text CHECK (to_char(joined_on::date, 'YYYY-MM-DD') = joined_on),
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
    created_at      text NOT NULL DEFAULT (to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')),
    updated_at      text NOT NULL DEFAULT (to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')),
    CONSTRAINT representative_needs_organisation
        CHECK (kind <> 'representative' OR organisation_id IS NOT NULL)
);
CREATE INDEX members_organisation ON members (organisation_id);
CREATE INDEX members_district ON members (district);
EOF
)

# Publisher-side helpers: bench_mark holds the writer's end (not published); bench_wait returns
# the epoch at which the subscription app's confirmed flush reached target (or, target NULL,
# the newest bench_mark), raising an error after timeout_s.
HELPERS=$(cat <<'EOF'
CREATE TABLE bench_mark (lsn pg_lsn NOT NULL, at numeric NOT NULL);
CREATE FUNCTION bench_wait(app text, target pg_lsn, timeout_s float8) RETURNS numeric
LANGUAGE plpgsql AS $$
DECLARE
    deadline timestamptz := clock_timestamp() + make_interval(secs => timeout_s);
    t pg_lsn := target;
    f pg_lsn;
BEGIN
    LOOP
        IF target IS NULL THEN
            SELECT max(lsn) INTO t FROM bench_mark;
        END IF;
        SELECT flush_lsn INTO f FROM pg_stat_replication WHERE application_name = app;
        IF t IS NOT NULL AND f IS NOT NULL AND f >= t THEN
            RETURN extract(epoch FROM clock_timestamp());
        END IF;
        IF clock_timestamp() > deadline THEN
            RAISE EXCEPTION 'bench_wait: % not at % after % s (confirmed %)', app, t, timeout_s, f;
        END IF;
        PERFORM pg_sleep(0.002);
    END LOOP;
END $$;
EOF
)

# Subscriber-side: epoch at which every table of subscription sub is ready (initial copy done
# and caught up).
SYNC_WAIT=$(cat <<'EOF'
CREATE FUNCTION bench_wait_ready(sub text, timeout_s float8) RETURNS numeric
LANGUAGE plpgsql AS $$
DECLARE
    deadline timestamptz := clock_timestamp() + make_interval(secs => timeout_s);
BEGIN
    LOOP
        IF EXISTS (SELECT 1 FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid
                   WHERE s.subname = sub)
           AND NOT EXISTS (SELECT 1 FROM pg_subscription_rel r
                           JOIN pg_subscription s ON s.oid = r.srsubid
                           WHERE s.subname = sub AND r.srsubstate <> 'r') THEN
            RETURN extract(epoch FROM clock_timestamp());
        END IF;
        IF clock_timestamp() > deadline THEN
            RAISE EXCEPTION 'bench_wait_ready: % not ready after % s', sub, timeout_s;
        END IF;
        PERFORM pg_sleep(0.002);
    END LOOP;
END $$;
EOF
)

# PG_BENCH_CHECKS=0: the same tables without their CHECK constraints.
NO_CHECKS=$(cat <<'EOF'
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT conrelid::regclass AS tbl, conname FROM pg_constraint
             WHERE contype = 'c' AND conrelid IN ('members'::regclass, 'organisations'::regclass)
    LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', r.tbl, r.conname);
    END LOOP;
END $$;
EOF
)
CHECKS=${PG_BENCH_CHECKS:-1}
if [ "$CHECKS" = 0 ]; then
  SCHEMA="$SCHEMA
$NO_CHECKS"
fi

psql_on pub -c "$SCHEMA" -c "$HELPERS" \
  -c "CREATE PUBLICATION bench_pub FOR TABLE organisations, members"
psql_on sub -c "$SCHEMA"
SUB_CONNINFO="$CONN_pub password=$PW"

version=$(psql_on pub -c "SHOW server_version")
checks=on
[ "$CHECKS" = 0 ] && checks=off
printf 'pg_settings version=%s fsync=%s synchronous_commit=%s sub_synchronous_commit=on checks=%s\n' \
  "${version%% *}" "$(psql_on pub -c 'SHOW fsync')" "$(psql_on pub -c 'SHOW synchronous_commit')" \
  "$checks"

# --- the writer ----------------------------------------------------------------------------

# writer_sql FIRST COUNT: SQL that prints the start epoch, inserts rows FIRST..FIRST+COUNT-1 in
# CHUNK-row transactions, then records and prints the end epoch and WAL position (bench_mark).
# Keys: 12 hex digits of the statement's millisecond clock and 14 of the row number, so they
# are unique and increase with time, like a ULID; values have deploy/sample-members.sh shapes.
writer_sql() {
  local first=$1 count=$2 s e
  echo "SELECT extract(epoch FROM clock_timestamp());"
  for ((s = first; s < first + count; s += CHUNK)); do
    e=$((s + CHUNK - 1))
    ((e < first + count)) || e=$((first + count - 1))
    cat <<EOF
INSERT INTO members (id, region, name, kind, gender, birth_year, phone, village, district,
                     sector, joined_on, created_at, updated_at)
SELECT c.t || lpad(to_hex(i), 14, '0'), 'mirzapur',
       CASE WHEN h % 100 < 55
            THEN (ARRAY['Sita','Gita','Rekha','Sunita','Anita','Meena','Kamla','Pooja','Radha',
                        'Savitri','Lakshmi','Asha','Usha','Neha','Priya'])[1 + h / 100 % 15]
            ELSE (ARRAY['Ram','Shyam','Mohan','Suresh','Ramesh','Dinesh','Rajesh','Mukesh',
                        'Anil','Sunil','Vijay','Ajay','Ravi','Arjun','Kishan'])[1 + h / 100 % 15]
       END || ' ' || (ARRAY['Yadav','Kushwaha','Patel','Verma','Singh','Prajapati','Nishad',
                            'Pal','Gupta','Maurya','Rajput','Ahirwar'])[1 + h / 1500 % 12],
       'entrepreneur', CASE WHEN h % 100 < 55 THEN 'female' ELSE 'male' END,
       1965 + h / 18000 % 42,
       '+91 9' || lpad((h * 7919 % 999999999)::text, 9, '0'),
       (ARRAY['Chunar','Lalganj','Halia','Madihan','Kon','Marihan'])[1 + h / 7 % 6],
       (ARRAY['Mirzapur','Sonbhadra','Bhadohi'])[1 + h / 11 % 3],
       (ARRAY['dairy','handloom','poultry','goat_rearing','tailoring','kirana','agro_processing',
              'carpentry','pottery','stone_craft'])[1 + h / 13 % 10],
       '2026-' || lpad((1 + h / 17 % 10)::text, 2, '0') || '-' || lpad((1 + h / 19 % 28)::text, 2, '0'),
       c.ts, c.ts
FROM (SELECT i, i * 2654435761 % 4294967291 AS h FROM generate_series($s::bigint, $e) AS i) AS g,
     (SELECT lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0') AS t,
             to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS ts) AS c;
EOF
  done
  echo "INSERT INTO bench_mark SELECT pg_current_wal_lsn(), extract(epoch FROM clock_timestamp()) RETURNING at, lsn;"
}

# run_writer FIRST COUNT: runs the writer on the publisher; sets W_START, W_END, W_LSN.
run_writer() {
  local out
  writer_sql "$1" "$2" >"$TMP/writer.sql"
  out=$(psql_on pub -F ' ' -f "$TMP/writer.sql") || die "writer failed"
  read -r W_START <<<"$(sed -n 1p <<<"$out")"
  read -r W_END W_LSN <<<"$(sed -n 2p <<<"$out")"
  [[ -n $W_START && -n $W_LSN ]] || die "writer printed no marks: $out"
}

# start_waiter DB-SIDE SQL: runs a waiting SELECT in the background (output in $TMP/wait.out)
# and returns once its session is running, so an early finish is not missed.
start_waiter() {
  local side=$1 sql=$2 i
  PGAPPNAME=bench_waiter psql_on "$side" -c "$sql" >"$TMP/wait.out" 2>"$TMP/wait.err" &
  WAITER_PID=$!
  for ((i = 0; i < 500; i++)); do
    [ "$(psql_on "$side" -c "SELECT count(*) FROM pg_stat_activity WHERE application_name =
      'bench_waiter' AND state = 'active'")" = 1 ] && return 0
    kill -0 "$WAITER_PID" 2>/dev/null || break
    sleep 0.01
  done
  cat "$TMP/wait.err" >&2
  die "waiter did not start"
}

# finish_waiter: waits for the background waiter; sets WAIT_AT to the epoch it returned. (Not
# in $(...): only this shell can wait for its child.)
finish_waiter() {
  local rc=0
  wait "$WAITER_PID" || rc=$?
  WAITER_PID=
  ((rc == 0)) || { cat "$TMP/wait.err" >&2; die "waiting for replication failed (rc $rc)"; }
  WAIT_AT=$(cat "$TMP/wait.out")
  [ -n "$WAIT_AT" ] || die "the waiter printed nothing"
}

# count_on SIDE: rows in members there.
count_on() { PSQL_DB=${2:-postgres} psql_on "$1" -c "SELECT count(*) FROM members"; }

rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f", n / (b - a) }'; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# --- 1. catch-up: a backlog already in the WAL, subscription enabled afterwards -------------

log "catch-up: inserting $N rows with the subscription's slot in place, then enabling it"
psql_on sub -c "CREATE SUBSCRIPTION bench_sub CONNECTION '$SUB_CONNINFO' PUBLICATION bench_pub
                WITH (enabled = false, copy_data = false, synchronous_commit = 'on')"
run_writer 1 "$N"
printf 'pg_insert rows=%s seconds=%s rows_per_s=%s\n' "$N" "$(secs "$W_START" "$W_END")" \
  "$(rate "$N" "$W_START" "$W_END")"
start_waiter pub "SELECT bench_wait('bench_sub', '$W_LSN', $DEADLINE)"
t0=$(psql_on sub -c "ALTER SUBSCRIPTION bench_sub ENABLE" \
  -c "SELECT extract(epoch FROM clock_timestamp())")
finish_waiter
t1=$WAIT_AT
got=$(count_on sub)
[ "$got" = "$N" ] || die "catch-up: subscriber has $got rows, expected $N"
printf 'pg_catchup rows=%s seconds=%s rows_per_s=%s\n' "$N" "$(secs "$t0" "$t1")" \
  "$(rate "$N" "$t0" "$t1")"

# --- 2. initial copy: a second subscription (own database) copies the same N rows ----------

log "catch-up by initial table copy: a new subscription in a second database"
psql_on sub -c "CREATE DATABASE bench_copy"
PSQL_DB=bench_copy psql_on sub -c "$SCHEMA" -c "$SYNC_WAIT"
PSQL_DB=bench_copy start_waiter sub "SELECT bench_wait_ready('bench_copy', $DEADLINE)"
t0=$(PSQL_DB=bench_copy psql_on sub -c "SELECT extract(epoch FROM clock_timestamp())" \
  -c "CREATE SUBSCRIPTION bench_copy CONNECTION '$SUB_CONNINFO' PUBLICATION bench_pub
      WITH (copy_data = true, synchronous_commit = 'on')")
finish_waiter
t1=$WAIT_AT
got=$(count_on sub bench_copy)
[ "$got" = "$N" ] || die "initial copy: subscriber has $got rows, expected $N"
printf 'pg_catchup_copy rows=%s seconds=%s rows_per_s=%s\n' "$N" "$(secs "$t0" "$t1")" \
  "$(rate "$N" "$t0" "$t1")"
PSQL_DB=bench_copy psql_on sub -c "DROP SUBSCRIPTION bench_copy"
psql_on sub -c "DROP DATABASE bench_copy"

# --- 3. streaming: the subscription active while a writer goes as fast as it can ----------

log "streaming: emptying members on both sides (TRUNCATE replicates), then writing $N rows"
lsn=$(psql_on pub -c "TRUNCATE members" -c "DELETE FROM bench_mark" -c "CHECKPOINT" \
  -c "SELECT pg_current_wal_lsn()")
psql_on pub -c "SELECT bench_wait('bench_sub', '$lsn', $DEADLINE)" >/dev/null
got=$(count_on sub)
[ "$got" = 0 ] || die "streaming: subscriber still has $got rows after TRUNCATE"
psql_on sub -c "CHECKPOINT"
start_waiter pub "SELECT bench_wait('bench_sub', NULL, $DEADLINE)"
run_writer $((N + 1)) "$N"
finish_waiter
t1=$WAIT_AT
got=$(count_on sub)
[ "$got" = "$N" ] || die "streaming: subscriber has $got rows, expected $N"
printf 'pg_streaming rows=%s seconds=%s writer_rows_per_s=%s e2e_rows_per_s=%s lag_end_s=%s\n' \
  "$N" "$(secs "$W_START" "$t1")" "$(rate "$N" "$W_START" "$W_END")" \
  "$(rate "$N" "$W_START" "$t1")" "$(secs "$W_END" "$t1")"

# --- 4. latency: single-row commits until visible on the subscriber ------------------------

LAT=${BENCH_PG_LATENCY:-}
if [ -n "$LAT" ] && [ ! -x "$LAT" ]; then
  log "BENCH_PG_LATENCY=$LAT is not built; compiling pg_latency.c instead"
  LAT=
fi
if [ -z "$LAT" ]; then
  pkg-config --exists libpq 2>/dev/null || apt_install libpq-dev || true
  LAT=$TMP/bench_pg_latency
  # shellcheck disable=SC2046 # pkg-config prints flags to be split
  if ! pkg-config --exists libpq 2>/dev/null ||
    ! cc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -o "$LAT" \
      "$HERE/pg_latency.c" $(pkg-config --cflags --libs libpq) >&2; then
    LAT=
  fi
fi
if [ -z "$LAT" ]; then
  echo "pg_latency_unavailable reason=no_libpq_or_cc"
else
  log "latency: settling (VACUUM, CHECKPOINT), then $K single-row commits"
  # Background work left by the bulk phases (autovacuum of a fresh million-row table, a
  # checkpoint) would otherwise land in the samples.
  for side in pub sub; do psql_on "$side" -c "VACUUM (ANALYZE) members" -c "CHECKPOINT"; done
  mode=()
  [ "${PG_LATENCY_MODE:-poll}" = notify ] && mode=(--notify)
  timeout -k 5 "$DEADLINE" "$LAT" "$CONN_pub" "$CONN_sub" "$K" "${mode[@]}" ||
    die "latency helper failed"
fi
