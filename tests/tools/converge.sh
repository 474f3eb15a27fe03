#!/usr/bin/env bash
# tests/tools/converge.sh - the convergence checker (issue 7): does the hub hold exactly what
# the regions hold, each change applied once?
#
#   tests/tools/converge.sh HUB.db REGION.db...
#
# For every region database given (its region id is read from its sg_node row) it checks:
#   1. rows: for each replicated table, the hub's rows of that region equal the region's rows,
#      column for column (compared by SHA-256 of the rows in id order; on a mismatch the first
#      differing id is printed);
#   2. seqs: the changes the hub applied from the region (sg_applied) have no repeat, and no gap
#      from the first to the last (a region restored by snapshot starts after it);
#   3. produced = applied + quarantined: the region's log has given out exactly as many change
#      numbers as the hub applied and holds in quarantine (held), i.e. the hub's cursor is the
#      region's head, nothing in between;
#   4. PRAGMA integrity_check is ok on every database.
# Prints one line per region with the counts, "ok" or the first difference, and exits 0 only
# when everything holds. Read-only: it opens the databases with sqlite3 -readonly, so it can run
# against live nodes (their WAL snapshot), though counts are only meaningful once they are idle.
set -euo pipefail

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; }
[ $# -ge 1 ] && [ "$1" != -h ] && [ "$1" != --help ] || { usage; [ $# -ge 1 ]; exit $?; }
hub=$1
shift
command -v sqlite3 >/dev/null || { echo "converge: sqlite3 is needed (apt-get install sqlite3)" >&2; exit 2; }
[ -r "$hub" ] || { echo "converge: cannot read $hub" >&2; exit 2; }

tables=(organisations members sessions attendance issues issue_updates)
q() { sqlite3 -readonly -batch "$1" "$2"; }
fail=0

check_integrity() { # check_integrity DB
    local r
    r=$(q "$1" "PRAGMA integrity_check" 2>&1 | head -3)
    if [ "$r" != ok ]; then
        echo "integrity $1: $r"
        fail=1
    fi
}

check_integrity "$hub"
[ "$(q "$hub" "SELECT role FROM sg_node")" = hub ] || { echo "converge: $hub is not a hub's database" >&2; exit 2; }

for db in "$@"; do
    [ -r "$db" ] || { echo "converge: cannot read $db" >&2; exit 2; }
    check_integrity "$db"
    region=$(q "$db" "SELECT id FROM sg_node WHERE role = 'region'")
    [ -n "$region" ] || { echo "converge: $db is not a region's database" >&2; exit 2; }
    problems=()
    rows=0
    # 1. Rows, table by table.
    for t in "${tables[@]}"; do
        a=$(q "$db" "SELECT * FROM $t ORDER BY id" | sha256sum)
        b=$(q "$hub" "SELECT * FROM $t WHERE region = '$region' ORDER BY id" | sha256sum)
        rows=$((rows + $(q "$db" "SELECT count(*) FROM $t")))
        if [ "$a" != "$b" ]; then
            first=$(diff <(q "$db" "SELECT * FROM $t ORDER BY id") \
                <(q "$hub" "SELECT * FROM $t WHERE region = '$region' ORDER BY id") |
                grep -m1 '^[<>]' || true)
            problems+=("$t differs (region < hub >): ${first:0:160}")
        fi
    done
    # 2. Applied seqs: no repeat, no gap.
    read -r n distinct lo hi <<<"$(q "$hub" "SELECT count(*), count(DISTINCT seq), coalesce(min(seq), 0), coalesce(max(seq), 0) FROM sg_applied WHERE region = '$region'" | tr '|' ' ')"
    [ "$n" = "$distinct" ] || problems+=("$((n - distinct)) change(s) applied more than once")
    [ "$n" = 0 ] || [ $((hi - lo + 1)) = "$distinct" ] || problems+=("gap: $distinct distinct seqs between $lo and $hi")
    # 3. Produced = applied + quarantined (the hub's cursor is the region's head).
    produced=$(q "$db" "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'sg_changes'), 0)")
    cursor=$(q "$hub" "SELECT coalesce((SELECT last_seq FROM sg_regions WHERE region = '$region'), 0)")
    held=$(q "$hub" "SELECT count(*) FROM sg_quarantine WHERE region = '$region' AND state = 'held'")
    [ "$produced" = $((cursor + held)) ] || problems+=("produced $produced != applied up to $cursor + quarantined $held")
    if [ ${#problems[@]} = 0 ]; then
        echo "$region: ok (rows $rows, produced $produced, applied $distinct, cursor $cursor, quarantined $held)"
    else
        fail=1
        echo "$region: DIFFERS (rows $rows, produced $produced, applied $distinct, cursor $cursor, quarantined $held)"
        printf '  %s\n' "${problems[@]}"
    fi
done
exit $fail
