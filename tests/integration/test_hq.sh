#!/usr/bin/env bash
# test_hq.sh - headquarters reads the hub over the network (issue 6, API part), with real
# processes: a hub (sangamd init, its API also on 127.0.0.1 TCP) and two regions joined by
# invite, filled through the CLI; then tokens (viewer, admin, revoked, none, forged), the open
# /healthz and /readyz, /metrics (checked with promtool when installed), the reports against the
# hub's own database computed with sqlite3, their filters, and CSV exports against the rows.
#
# Usage: test_hq.sh PATH/TO/sangamd PATH/TO/sangam
# Prints "ok N - ..." / "not ok N - ..." and "P passed, F failed"; exits non-zero on a failure.
# Everything lives in a temporary directory removed by the EXIT trap (KEEP=1 keeps it), which
# stops the daemons.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
lib_setup hq "$@"

port=$(free_port)
api=$(free_port)
while [ "$api" = "$port" ]; do api=$(free_port); done
lib_hub_init "$port"
sed -i "s/^socket = hub.sock.*/&\nlisten = 127.0.0.1:$api/" "$dir/hub/hub.ini"
start hub "$dir/hub/hub.ini"
url=http://127.0.0.1:$api
for r in bundelkhand mirzapur; do
    lib_join "$r"
    start "$r" "$dir/$r/region.ini"
done

# Data through the regions' CLIs: members (one with a formula for a name, one with markup),
# organisations, sessions with attendance, issues in several states.
fill() { # fill REGION SEED
    local c="$SANGAM --node $dir/$1/$1.sock" org m1 m2 s1 i1 i2
    "$ROOT_SAMPLE" "$1" 40 "$2" >"$dir/$1.csv"
    $c member import "$dir/$1.csv" >/dev/null
    org=$($c org add --name "DIC $1" --kind government)
    m1=$($c member add --name "=HYPERLINK(\"http://x\")" --kind entrepreneur --birth-year 2001)
    m2=$($c member add --name "<script>alert(1)</script>" --kind representative --org "$org")
    s1=$($c session add --kind training --title "Training" --date 2026-03-10)
    $c session attend "$s1" "$m1" "$m2" >/dev/null
    $c session add --kind radio_show --title "Radio" --date 2026-04-02 >/dev/null
    $c session add --kind whatsapp --title "WhatsApp clinic" --date 2026-03-20 >/dev/null
    i1=$($c issue raise --by "$m1" --category finance --title "Loan" --opened 2026-03-01)
    $c issue update "$i1" --status in_progress --assign "$org" --note "Forwarded" >/dev/null
    i2=$($c issue raise --by "$m2" --category market --title "Buyer" --opened 2026-03-02)
    $c issue update "$i2" --status resolved --assign "$org" --note "Done" >/dev/null
}
ROOT_SAMPLE=$(cd "$(dirname "$0")/../.." && pwd)/deploy/sample-members.sh
fill bundelkhand 5
fill mirzapur 6
until_true 15 '[ "$(hubsql "SELECT count(*) FROM issue_updates")" = 4 ] &&
    [ "$(hubsql "SELECT count(*) FROM attendance")" = 4 ]' || true
check_eq "both regions' records reach the hub" "$(hubsql "SELECT count(*) FROM members")" 84

# --- Tokens ---
viewer=$(hub hub token create "HQ dashboard" 2>/dev/null)
admin=$(hub hub token create "HQ admin" --role admin 2>/dev/null)
gone=$(hub hub token create "Old laptop" 2>/dev/null)
hub hub token revoke "$(cut -d_ -f2 <<<"$gone")" >/dev/null
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
check_eq "no token: 401" "$(code "$url/v1/members")" 401
check_eq "a forged token: 401" "$(code -H "Authorization: Bearer sgt_00000000_0123456789abcdef0123456789abcdef" "$url/v1/members")" 401
check_eq "a token with a wrong secret: 401" "$(code -H "Authorization: Bearer ${viewer:0:13}0123456789abcdef0123456789abcdef" "$url/v1/members")" 401
check_eq "a revoked token: 401" "$(code -H "Authorization: Bearer $gone" "$url/v1/members")" 401
check_eq "not a bearer token: 401" "$(code -H "Authorization: Basic dXNlcjpwYXNz" "$url/v1/members")" 401
check_eq "a viewer reads: 200" "$(code -H "Authorization: Bearer $viewer" "$url/v1/members")" 200
check_eq "a viewer may not write: 403" "$(code -H "Authorization: Bearer $viewer" -H 'Content-Type: application/json' -X POST -d '{"region":"awadh"}' "$url/v1/invites")" 403
check_eq "a viewer may not make tokens: 403" "$(code -H "Authorization: Bearer $viewer" -H 'Content-Type: application/json' -X POST -d '{"name":"x","role":"admin"}' "$url/v1/tokens")" 403
check_eq "an admin may: 201" "$(code -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' -X POST -d '{"region":"awadh"}' "$url/v1/invites")" 201
check_eq "/healthz needs no token" "$(code "$url/healthz")" 200
check_eq "/readyz needs no token and is ready" "$(curl -s "$url/readyz" | grep -c '"status":"ready"')" 1
check_eq "/metrics needs a token" "$(code "$url/metrics")" 401
try_list=$(hub hub token list)
if grep -q "HQ dashboard" <<<"$try_list" && ! grep -q "${viewer:13}" <<<"$try_list" && ! grep -q "${viewer:13}" "$dir/hub.log"; then
    ok "token list names them without secrets, and the log holds none"
else
    out=$try_list; not_ok "token list names them without secrets, and the log holds none"
fi

# --- Every route, both roles: no token 401, viewer reads but never writes, admin passes ---
reads=(/v1/status /v1/changes /v1/regions /v1/quarantine /v1/invites /v1/tokens /v1/backup
    /v1/organisations /v1/members /v1/sessions /v1/attendance /v1/issues /v1/issue_updates
    "/v1/members?region=mirzapur&q=a&from=2026-01-01&to=2026-12-31&limit=5"
    "/v1/issues?status=open" /v1/reports/summary /v1/reports/members /v1/reports/sessions
    /v1/reports/issues /metrics)
bad=0
for p in "${reads[@]}"; do
    a=$(code "$url$p") b=$(code -H "Authorization: Bearer $viewer" "$url$p")
    c=$(code -H "Authorization: Bearer $admin" "$url$p")
    [ "$a" = 401 ] && [ "$b" = 200 ] && [ "$c" = 200 ] || { bad=1; out="$out $p:$a/$b/$c"; }
done
if [ $bad = 0 ]; then ok "every read route: 401 without a token, 200 for a viewer and an admin"; else not_ok "every read route: 401 without a token, 200 for a viewer and an admin"; fi
writes=("POST /v1/organisations" "PATCH /v1/members/X" "DELETE /v1/members/X" "POST /v1/invites"
    "POST /v1/tokens" "POST /v1/tokens/00000000/revoke" "POST /v1/regions/awadh/revoke"
    "POST /v1/quarantine/retry" "POST /v1/quarantine/discard" "POST /v1/backup"
    "POST /v1/issues/X/updates" "POST /v1/members/import")
bad=0 out=""
for w in "${writes[@]}"; do
    m=${w%% *} p=${w#* }
    a=$(code -X "$m" -H 'Content-Type: application/json' -d '{}' "$url$p")
    b=$(code -X "$m" -H "Authorization: Bearer $viewer" -H 'Content-Type: application/json' -d '{}' "$url$p")
    c=$(code -X "$m" -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' -d '{}' "$url$p")
    [ "$a" = 401 ] && [ "$b" = 403 ] && [ "$c" != 401 ] && [ "$c" != 403 ] || { bad=1; out="$out $w:$a/$b/$c"; }
done
if [ $bad = 0 ]; then ok "every write route: 401 without a token, 403 for a viewer, let through for an admin"; else not_ok "every write route: 401 without a token, 403 for a viewer, let through for an admin"; fi
out=""

# --- Metrics ---
metrics=$(curl -s -H "Authorization: Bearer $viewer" "$url/metrics")
check_eq "metrics: each region's connection" "$(grep -c '^sangam_region_connected{region="[a-z]*"} 1$' <<<"$metrics")" 2
check_eq "metrics: applied changes match the hub's cursor" \
    "$(grep '^sangam_region_applied_total{region="mirzapur"}' <<<"$metrics" | awk '{print $2}')" \
    "$(hubsql "SELECT applied FROM sg_regions WHERE region = 'mirzapur'")"
if grep -q '^sangam_region_cert_expiry_timestamp_seconds{region="bundelkhand"} [0-9]' <<<"$metrics" &&
    grep -q '^sangam_region_last_contact_timestamp_seconds{region="mirzapur"} [0-9]' <<<"$metrics" &&
    grep -q '^sangam_api_requests_total{status="401"} [1-9]' <<<"$metrics"; then
    ok "metrics: certificate expiry and API requests by status"
else
    out=$metrics; not_ok "metrics: certificate expiry and API requests by status"
fi
# promtool (Debian's prometheus, installed by tests/run.sh): missing is a failure, not a skip.
if ! command -v promtool >/dev/null; then
    out="promtool not found: apt-get install prometheus (tests/run.sh does)"
    not_ok "promtool check metrics accepts /metrics"
elif out=$(promtool check metrics <<<"$metrics" 2>&1); then
    ok "promtool check metrics accepts /metrics"
else
    not_ok "promtool check metrics accepts /metrics"
fi

# --- Reports, against the hub's own rows ---
rep() { SANGAM_TOKEN=$viewer "$SANGAM" --node "$url" --json report "$@"; }
j() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
r=$(rep summary)
check_eq "members by kind, per region" "$(j 'd["regions"]["bundelkhand"]["members"]["by_kind"]["entrepreneur"]' <<<"$r")" \
    "$(hubsql "SELECT count(*) FROM members WHERE region = 'bundelkhand' AND kind = 'entrepreneur'")"
check_eq "members in total" "$(j 'd["total"]["members"]["total"]' <<<"$r")" "$(hubsql "SELECT count(*) FROM members")"
check_eq "youth under 35" "$(j 'd["total"]["members"]["youth_under_35"]' <<<"$r")" \
    "$(hubsql "SELECT count(*) FROM members WHERE birth_year > CAST(strftime('%Y','now') AS INTEGER) - 35")"
check_eq "sessions by month with attendance" "$(j 'd["regions"]["mirzapur"]["sessions"]["by_month"]["2026-03"]["attendance"]' <<<"$r")" \
    "$(hubsql "SELECT count(*) FROM attendance a JOIN sessions s ON s.id = a.session_id WHERE s.region = 'mirzapur' AND s.held_on LIKE '2026-03%'")"
check_eq "sessions of two kinds in one month both count" "$(j 'd["total"]["sessions"]["by_month"]["2026-03"]["sessions"]' <<<"$r")" \
    "$(hubsql "SELECT count(*) FROM sessions WHERE held_on LIKE '2026-03%'")"
check_eq "issues by status" "$(j 'd["total"]["issues"]["by_status"]["resolved"]' <<<"$r")" \
    "$(hubsql "SELECT count(*) FROM issues WHERE status = 'resolved'")"
check_eq "median days to resolution" "$(j 'round(d["total"]["issues"]["median_days_to_resolution"])' <<<"$r")" \
    "$(hubsql "SELECT CAST(round(julianday(resolved_on) - julianday(opened_on)) AS INTEGER) FROM issues WHERE resolved_on IS NOT NULL LIMIT 1")"
check_eq "open issues per assigned organisation" "$(j 'd["regions"]["bundelkhand"]["issues"]["open_by_organisation"]["DIC bundelkhand"]' <<<"$r")" 1
if [ "$(j 'd["regions"]["bundelkhand"]["data_as_of"] is not None' <<<"$r")" = True ]; then ok "each region says how fresh its data is"; else out=$r; not_ok "each region says how fresh its data is"; fi
r=$(rep issues --region mirzapur --from 2026-03-02 --to 2026-03-31)
check_eq "filters: region and dates" "$(j 'list(d["regions"].keys()) == ["mirzapur"] and d["total"]["issues"]["total"]' <<<"$r")" 1
csv=$(SANGAM_TOKEN=$viewer "$SANGAM" --node "$url" report members --csv)
check_eq "report as CSV" "$(grep -c '^mirzapur,members,,total,42' <<<"$csv")" 1

# --- CSV export of a list equals the rows ---
export=$(curl -s -H "Authorization: Bearer $viewer" "$url/v1/members?format=csv&limit=7")
check_eq "CSV export holds every member once, in id order (over pages of 7)" \
    "$(tail -n +2 <<<"$export" | cut -d, -f1 | tr -d '\r' | paste -sd' ')" \
    "$(hubsql "SELECT id FROM members ORDER BY id" | paste -sd' ')"
if grep -q "\"'=HYPERLINK(\"\"http://x\"\")\"" <<<"$export"; then
    ok "a cell that would run as a formula is exported as text"
else
    out=$(grep -i hyperlink <<<"$export"); not_ok "a cell that would run as a formula is exported as text"
fi
check_eq "the header names the columns" "$(head -1 <<<"$export" | tr -d '\r' | cut -d, -f1-4)" "id,region,name,kind"

lib_finish
