#!/usr/bin/env bash
# tests/bench/run.sh [--small] [N] - issue 4's benchmark table, measured in one run on this
# machine: Sangam (a real hub and region over mutual TLS on 127.0.0.1) against the limit (raw
# SQLite bulk insert of the same rows with the hub's schema and pragmas) and the peer
# (PostgreSQL 15 logical replication between two throw-away clusters), with the ratios.
#
#   tests/bench/run.sh            # the full table (N = 1,000,000 rows; minutes)
#   tests/bench/run.sh --small    # the smoke form tests/run.sh runs (20,000 rows; seconds)
#   BENCH_SKIP_PG=1 ...           # leave PostgreSQL out (its columns print n/a)
#   BENCH_REQUIRE_PG=1 ...        # fail when PostgreSQL cannot be measured (tests/run.sh)
#
# Besides the table's comparisons: offline return (200,000 mixed changes), fan-in of 2, 10,
# 100 and 500 regions, and growth (a hub already holding 1M and 5M rows), each with its goal.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
SMALL=
N=1000000
for a in "$@"; do
  case $a in
    --small) SMALL=--small; N=20000 ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) [[ $a =~ ^[0-9]+$ ]] || { echo "run.sh: unknown argument $a" >&2; exit 2; }; N=$a ;;
  esac
done

source deploy/deps.sh
sangam_install_deps
BUILD=$ROOT/build-bench
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j "$(nproc)" --target sangamd sangam bench_sqlite_limit bench_latency \
  bench_fanin >/dev/null
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT

echo "==> the limit: raw SQLite bulk insert ($N rows)" >&2
"$BUILD/tests/bench/bench_sqlite_limit" "$N" | tee -a "$OUT"
echo "==> Sangam: hub and region on 127.0.0.1" >&2
bash tests/bench/sangam_bench.sh "$BUILD" "$N" $SMALL | tee -a "$OUT"
if [ "${BENCH_SKIP_PG:-0}" != 1 ]; then
  echo "==> the peer: PostgreSQL logical replication" >&2
  BENCH_PG_LATENCY=$BUILD/tests/bench/bench_pg_latency bash tests/bench/pg_baseline.sh "$N" $SMALL |
    tee -a "$OUT"
  if [ "${BENCH_REQUIRE_PG:-0}" = 1 ] && grep -q '^pg_unavailable' "$OUT"; then
    echo "run.sh: PostgreSQL could not be measured: $(grep '^pg_unavailable' "$OUT")" >&2
    exit 1
  fi
fi

# get KEY FIELD: a field of the first line starting with KEY, or "".
get() { awk -v k="$1" -v f="$2" '$1 == k { for (i = 2; i <= NF; i++) { split($i, kv, "=");
  if (kv[1] == f) { print kv[2]; exit } } }' "$OUT"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "n/a";
  else printf "%.2f", a / b }'; }
or_na() { [ -n "$1" ] && echo "$1" || echo "n/a"; }

limit=$(get sqlite_limit rows_per_s)
catch=$(get sangam_catchup rows_per_s)
pg_catch=$(get pg_catchup rows_per_s)
w=$(get sangam_streaming writer_rows_per_s)
e2e=$(get sangam_streaming e2e_rows_per_s)
pg_e2e=$(get pg_streaming e2e_rows_per_s)
local_w=$(get sangam_region_write rows_per_s)

echo
echo "Sangam benchmark, $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo ?), $(nproc) cores, N=$N"
printf '%-34s %14s %14s %14s %10s %10s\n' "measure" "Sangam" "limit" "PostgreSQL" "/limit" "/PG"
printf '%-34s %14s %14s %14s %10s %10s\n' "catch-up (rows/s)" "$(or_na "$catch")" \
  "$(or_na "$limit")" "$(or_na "$pg_catch")" "$(ratio "$catch" "$limit")" \
  "$(ratio "$catch" "$pg_catch")"
printf '%-34s %14s %14s %14s %10s %10s\n' "streaming end-to-end (rows/s)" "$(or_na "$e2e")" \
  "$(or_na "$limit")" "$(or_na "$pg_e2e")" "$(ratio "$e2e" "$limit")" "$(ratio "$e2e" "$pg_e2e")"
printf '%-34s %14s %14s %14s %10s %10s\n' "region write path (rows/s)" "$(or_na "$local_w")" \
  "$(or_na "$limit")" "$(or_na "$(get pg_insert rows_per_s)")" "$(ratio "$local_w" "$limit")" "-"
printf '%-34s %14s %14s %14s %10s %10s\n' "streaming e2e / region writer" "$(ratio "$e2e" "$w")" \
  "-" "-" "-" "-"
printf '%-34s %14s %14s %14s %10s %10s\n' "streaming lag at end (s)" \
  "$(or_na "$(get sangam_streaming lag_end_s)")" "-" "$(or_na "$(get pg_streaming lag_end_s)")" "-" "-"
printf '%-34s %14s %14s %14s %10s %10s\n' "latency p50 (ms)" "$(or_na "$(get sangam_latency p50_ms)")" \
  "-" "$(or_na "$(get pg_latency p50_ms)")" "-" \
  "$(ratio "$(get sangam_latency p50_ms)" "$(get pg_latency p50_ms)")"
printf '%-34s %14s %14s %14s %10s %10s\n' "latency p99 (ms)" "$(or_na "$(get sangam_latency p99_ms)")" \
  "-" "$(or_na "$(get pg_latency p99_ms)")" "-" "-"
printf '%-34s %14s %14s %14s %10s %10s\n' "wire bytes per change (/msgpack)" \
  "$(or_na "$(get sangam_wire wire_per_change)")" "$(or_na "$(get sangam_wire frame_per_change)")" \
  "-" "$(or_na "$(get sangam_wire ratio)")" "-"
printf '%-34s %14s %14s %14s %10s %10s\n' "peak RSS region / hub (KiB)" \
  "$(get sangam_rss region_kib) / $(get sangam_rss hub_kib)" "-" "-" "-" "-"

# Lines with several instances: fan-in per region count, growth per hub size.
echo
printf '%-34s %14s %14s %14s %10s %10s\n' "offline return, $(or_na "$(get sangam_offline changes)") mixed" \
  "$(or_na "$(get sangam_offline since_connect_s)") s" "$(or_na "$(get sangam_offline rows_per_s)")/s" \
  "-" "-" "-"
awk '$1 == "sangam_fanin" { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
  if (base == "") base = v["rows_per_s"]
  goal = 32 * 1024 + 128 * v["regions"]
  printf "%-34s %14s %14s %14s %10.2f %10s\n", "fan-in " v["regions"] " regions (rows/s, RSS)",
    v["rows_per_s"], v["hub_kib"] " KiB", "goal " goal, v["rows_per_s"] / base,
    (v["hub_kib"] <= goal ? "RSS ok" : "RSS over") }' "$OUT"
awk '$1 == "sangam_growth" { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
  if (base == "") base = v["rows_per_s"]
  printf "%-34s %14s %14s %14s %10.2f %10s\n", "growth, hub holding " v["hub_rows"] " rows",
    v["rows_per_s"], "-", "-", v["rows_per_s"] / base, "-" }' "$OUT"
