#!/usr/bin/env bash
# test_cli.sh - end-to-end test of the `sangam` CLI against a real sangamd, used the way a
# regional office uses it: organisations, members, a session with attendance, an issue through
# its history, list filters and paging, edits, a 5,000-row CSV import, refused input, and the
# change log (including a row written behind the node's back with the sqlite3 shell).
#
# Usage: test_cli.sh PATH/TO/sangamd PATH/TO/sangam
#
# Invariants: every check prints "ok N - ..." or "not ok N - ..." (with the command's output
# as "# " lines when it fails) and the run ends with "P passed, F failed"; the exit status is
# non-zero when any check failed or the node could not be started. The node runs on a Unix
# socket in a fresh temporary directory, which the EXIT trap removes after stopping the node.
# The sqlite3 shell is used only to count rows and for the one shell insert.
# The checks are strings that check_run evals, so variables in single quotes are intended:
# shellcheck disable=SC2016,SC2034
set -euo pipefail
source "$(dirname "$0")/lib.sh"
lib_setup cli "$@"
err=""

# not_ok_run DESCRIPTION: records a failure and shows the last run's status, stdout and stderr.
not_ok_run() {
    n=$((n + 1))
    failed=$((failed + 1))
    echo "not ok $n - $1"
    echo "#   exit status: $rc"
    printf '%s\n' "$out" | head -n 20 | sed 's/^/#   stdout: /'
    printf '%s\n' "$err" | head -n 20 | sed 's/^/#   stderr: /'
}

# run ARGS...: runs sangam ARGS; sets $out, $err and $rc without stopping the script.
run() {
    set +e
    "$SANGAM" "$@" >"$dir/stdout" 2>"$dir/stderr"
    rc=$?
    set -e
    out=$(cat "$dir/stdout")
    err=$(cat "$dir/stderr")
}

# check_run DESCRIPTION COMMAND...: ok if COMMAND succeeds (it reads $out, $err, $rc of the last
# run); else not_ok_run.
check_run() {
    local desc=$1
    shift
    if "$@"; then ok "$desc"; else not_ok_run "$desc"; fi
}

has() { [[ "$1" == *"$2"* ]]; }
lacks() { [[ "$1" != *"$2"* ]]; }
is_id() { [[ "$1" =~ ^[0-9A-Za-z_-]{26}$ ]]; }
rc_is() { [ "$rc" -eq "$1" ]; }
lines() { if [ -z "$1" ]; then echo 0; else printf '%s\n' "$1" | wc -l; fi; }

# count TABLE: rows in TABLE, read with the sqlite3 shell.
count() {
    sqlite3 -cmd '.timeout 5000' "$dir/b.db" "SELECT count(*) FROM $1"
}

# node_seq: the node's change sequence number, from `sangam status`.
node_seq() {
    "$SANGAM" status | awk '$1 == "seq" { print $2 }'
}

# --- start a regional node ----------------------------------------------------------------
cat >"$dir/b.ini" <<EOF
[node]
role = region
id = bundelkhand
db = $dir/b.db
[api]
socket = $dir/b.sock
EOF
if ! start sangamd "$dir/b.ini"; then
    echo "not ok 1 - sangamd starts and opens its socket"
    echo "0 passed, 1 failed"
    exit 1
fi
export SANGAM_NODE="$dir/b.sock"
export SANGAM_AUTHOR=tester

# --- identity and help --------------------------------------------------------------------
run status
check_run "status names the node and its role" \
    eval 'rc_is 0 && has "$out" bundelkhand && has "$out" region && has "$out" members'
run --node "$dir/b.sock" --json status
check_run "--node and --json work before the command" eval 'rc_is 0 && has "$out" "\"node\""'
run member add --help
check_run "member add --help lists field flags, help and enum values" \
    eval 'rc_is 0 && has "$out" "--birth-year" && has "$out" "year of birth" &&
          has "$out" "entrepreneur|representative|staff"'
run --version
check_run "--version prints the version" eval 'rc_is 0 && has "$out" "sangam "'

# --- organisations ------------------------------------------------------------------------
run org add --name "Jhansi District Cooperative Bank" --kind financial --district Jhansi \
    --contact "Branch manager, +91 510 2440000"
ORG1=$out
check_run "org add prints only the new id" eval 'rc_is 0 && is_id "$ORG1"'
run org add --name "Bundelkhand University" --kind academic --district Jhansi
ORG2=$out
check_run "a second organisation" eval 'rc_is 0 && is_id "$ORG2"'
run org list
check_run "org list shows both organisations" \
    eval 'rc_is 0 && has "$out" "$ORG1" && has "$out" "$ORG2" && has "$out" "2 shown"'
run org show "$ORG1"
check_run "org show prints fields one per line" \
    eval 'rc_is 0 && has "$out" "Jhansi District Cooperative Bank" && has "$out" financial'

# --- members ------------------------------------------------------------------------------
run member add --name "Asha Devi" --kind entrepreneur --gender female --birth-year 1995 \
    --phone "+91 94150 00001" --village Babina --district Jhansi --sector dairy \
    --joined 2024-03-01
M1=$out
check_run "member add (entrepreneur)" eval 'rc_is 0 && is_id "$M1"'
run member add --name "Ramesh Kumar" --kind representative --gender male --org "$ORG1" \
    --district Jhansi --joined 2024-03-15
M2=$out
check_run "member add (representative with --org)" eval 'rc_is 0 && is_id "$M2"'
run member add --name "Sunita Kushwaha" --kind entrepreneur --gender female --birth-year 2001 \
    --district Lalitpur --sector handloom --joined 2024-05-20
M3=$out
check_run "member add (third member, another district)" eval 'rc_is 0 && is_id "$M3"'
run member show "$M2"
check_run "member show names the representative's organisation" \
    eval 'rc_is 0 && has "$out" "Ramesh Kumar" && has "$out" "$ORG1"'
run member show "$M1" --json
check_run "member show --json sends integers as JSON integers" \
    eval 'rc_is 0 && has "$out" "\"birth_year\": 1995"'

# --- session and attendance ---------------------------------------------------------------
run session add --kind training --title "Dairy hygiene and milk testing" --date 2024-04-10 \
    --place "Babina block office"
S1=$out
check_run "session add" eval 'rc_is 0 && is_id "$S1"'
run session attend "$S1" "$M1" "$M2"
check_run "session attend records two members" eval 'rc_is 0 && has "$out" "recorded 2"'
run session show "$S1"
check_run "session show lists the attendance" \
    eval 'rc_is 0 && has "$out" "attendance (2)" && has "$out" "$M1" && has "$out" "$M2"'

# --- an issue through its history ---------------------------------------------------------
run issue raise --by "$M1" --session "$S1" --category finance \
    --title "Loan papers stuck at the bank" --description "Applied in March, no answer yet"
I1=$out
check_run "issue raise prints the new id" eval 'rc_is 0 && is_id "$I1"'
run issue update "$I1" --status in_progress --assign "$ORG1" --note "Bank contacted"
check_run "issue update changes status and assignment" \
    eval 'rc_is 0 && has "$out" in_progress && has "$out" "$ORG1"'
run issue comment "$I1" --note "Documents resubmitted"
check_run "issue comment adds a note" eval 'rc_is 0 && has "$out" "Documents resubmitted"'
run issue update "$I1" --status resolved --author priya --note "Loan sanctioned"
check_run "issue update to resolved with --author" eval 'rc_is 0'
run issue show "$I1"
check_run "issue show has the whole history with status changes and authors" \
    eval 'rc_is 0 && has "$out" "updates (3)" && has "$out" "open -> in_progress" &&
          has "$out" "in_progress -> resolved" && has "$out" tester && has "$out" priya'
check_run "resolving set resolved_on to today" \
    eval 'has "$out" "$(date -u +%Y-%m-%d)" && has "$out" resolved_on'

# --- list filters and paging ---------------------------------------------------------------
run member list --district Jhansi
check_run "member list --district filters" \
    eval 'rc_is 0 && has "$out" "$M1" && has "$out" "$M2" && lacks "$out" "$M3"'
run member list --kind representative
check_run "member list --kind filters" \
    eval 'rc_is 0 && has "$out" "$M2" && lacks "$out" "$M1" && has "$out" "1 shown"'
run member list --q sunita
check_run "member list --q matches names case-insensitively" \
    eval 'rc_is 0 && has "$out" "$M3" && lacks "$out" "$M1"'
run member list --from 2024-03-10 --to 2024-04-30
check_run "member list --from/--to range over the date joined" \
    eval 'rc_is 0 && has "$out" "$M2" && lacks "$out" "$M1" && lacks "$out" "$M3"'
run member list --birth-year 2001 --gender female
check_run "member list combines filters, int filter included" \
    eval 'rc_is 0 && has "$out" "$M3" && has "$out" "1 shown"'
run member list --limit 2
check_run "member list --limit 2 shows a footer with the next page" \
    eval 'rc_is 0 && has "$out" "2 shown; more with --after $M2"'
run member list --limit 2 --after "$M2"
check_run "--after gives the next page" \
    eval 'rc_is 0 && has "$out" "$M3" && lacks "$out" "$M1" && has "$out" "1 shown"'
run member list --limit 1 --all
check_run "--all follows every page" \
    eval 'rc_is 0 && has "$out" "$M1" && has "$out" "$M3" && has "$out" "3 shown"'
run issue list --status resolved
check_run "issue list --status filters" eval 'rc_is 0 && has "$out" "$I1"'
run session list --json
check_run "session list --json prints the API's answer" \
    eval 'rc_is 0 && has "$out" "\"items\"" && has "$out" "$S1"'

# --- edits ----------------------------------------------------------------------------------
run member update "$M1" --phone "+91 94150 99999" --village=
check_run "member update changes a field and prints the member" \
    eval 'rc_is 0 && has "$out" "+91 94150 99999"'
run member show "$M1" --json
check_run "--village= cleared the village (null)" \
    eval 'rc_is 0 && has "$out" "\"village\": null" && has "$out" "+91 94150 99999"'
run member deactivate "$M3"
check_run "member deactivate" eval 'rc_is 0 && has "$out" inactive'
run member list --status inactive
check_run "the deactivated member lists as inactive" \
    eval 'rc_is 0 && has "$out" "$M3" && lacks "$out" "$M1"'

# --- CSV import -----------------------------------------------------------------------------
awk 'BEGIN {
    print "name,kind,gender,birth_year,phone,village,district,sector,joined_on";
    split("Jhansi Lalitpur Banda Chitrakoot Mahoba Hamirpur Jalaun", d, " ");
    split("dairy handloom poultry tailoring grocery pottery", s, " ");
    split("female male female undisclosed", g, " ");
    for (i = 1; i <= 5000; i++)
        printf "Member %05d,%s,%s,%d,+91 94%08d,Village %d,%s,%s,2024-%02d-%02d\n",
            i, (i % 10 == 0) ? "staff" : "entrepreneur", g[i % 4 + 1], 1960 + i % 45,
            i, i % 300, d[i % 7 + 1], s[i % 6 + 1], i % 12 + 1, i % 28 + 1
}' >"$dir/members.csv"
before=$(count members)
run member import "$dir/members.csv" --dry-run
check_run "import --dry-run checks the file and imports nothing" \
    eval 'rc_is 0 && has "$out" "5000" && [ "$(count members)" -eq "$before" ]'
start_ms=$(date +%s%3N)
run member import "$dir/members.csv"
elapsed_ms=$(($(date +%s%3N) - start_ms))
check_run "import of 5,000 rows reports the count" \
    eval 'rc_is 0 && has "$out" "imported 5000 members from $dir/members.csv in"'
check_run "the 5,000 members are in the database" eval '[ "$(count members)" -eq $((before + 5000)) ]'
check_run "the import took under 60 s (${elapsed_ms} ms)" eval '[ "$elapsed_ms" -lt 60000 ]'

cat >"$dir/aliases.csv" <<'EOF'
Name,Kind,Gender,Birth Year,Organisation,Joined
  Kamla Rajput ,Entrepreneur,FEMALE,1988,,2024-06-01
EOF
run member import "$dir/aliases.csv"
check_run "import matches column aliases and enum values case-insensitively" \
    eval 'rc_is 0 && has "$out" "imported 1 members"'

before=$(count members)
seq_before=$(node_seq)
cat >"$dir/bad.csv" <<'EOF'
name,kind,gender,birth_year
Good Person,entrepreneur,female,1990
Bad Kind,farmer,female,1990
,staff,male,1980
Bad Year,staff,male,abc
EOF
run member import "$dir/bad.csv"
check_run "a CSV with bad rows is refused with exit 1" eval 'rc_is 1'
# docs/API.md: the answer lists every problem (up to 100), whatever kind each one is.
check_run "the report names row 3's unknown kind as FILE:ROW: COLUMN" \
    eval 'has "$err" "bad.csv:3: kind: "'
check_run "the report names row 4's missing name" eval 'has "$err" "bad.csv:4: name: "'
check_run "the report names row 5's non-number birth_year" eval 'has "$err" "bad.csv:5: birth_year: "'
check_run "nothing of the bad CSV was imported (not even its good row)" \
    eval '[ "$(count members)" -eq "$before" ] && [ "$(node_seq)" -eq "$seq_before" ]'

# --- refused input writes nothing ------------------------------------------------------------
orgs=$(count organisations)
members=$(count members)
attendance=$(count attendance)
seq_before=$(node_seq)
run member add --name "Nobody" --kind farmer
check_run "an unknown kind is a usage error naming the allowed values" \
    eval 'rc_is 2 && has "$err" "--kind" && has "$err" "entrepreneur|representative|staff"'
run member add --kind staff
check_run "a missing --name is a usage error" eval 'rc_is 2 && has "$err" "--name"'
run member add --name "No Org Rep" --kind representative
check_run "a representative without --org is refused by the node" \
    eval 'rc_is 1 && has "$err" "sangam: "'
run member add --name "Bad Ref" --kind representative --org 01ARZ3NDEKTSV4RRFFQ69G5FAV
check_run "an unknown organisation id is refused (unknown_reference)" \
    eval 'rc_is 1 && has "$err" unknown_reference'
run session attend "$S1" "$M3" 01ARZ3NDEKTSV4RRFFQ69G5FAV
check_run "attendance with an unknown member id is refused, all or nothing" \
    eval 'rc_is 1 && [ "$(count attendance)" -eq "$attendance" ]'
run member add --name "Typo" --kind staff --distrcit Jhansi
check_run "an unknown flag is a usage error with a suggestion" \
    eval 'rc_is 2 && has "$err" "--distrcit" && has "$err" "did you mean --district"'
run member add --name "Old" --kind staff --birth-year nineteen
check_run "a non-number for an int field is refused locally" \
    eval 'rc_is 2 && has "$err" "--birth-year" && has "$err" "whole number"'
run member show 01ARZ3NDEKTSV4RRFFQ69G5FAV
check_run "showing an unknown id is refused with not_found" eval 'rc_is 1 && has "$err" not_found'
run member list --colour red
check_run "unknown list flags are usage errors too" eval 'rc_is 2'
run member show "$M1" extra
check_run "an unexpected argument is a usage error" eval 'rc_is 2 && has "$err" "extra"'
check_run "refused commands wrote nothing" \
    eval '[ "$(count organisations)" -eq "$orgs" ] && [ "$(count members)" -eq "$members" ] &&
          [ "$(count attendance)" -eq "$attendance" ] && [ "$(node_seq)" -eq "$seq_before" ]'
run --node "$dir/nowhere.sock" status
check_run "an unreachable node exits 3 naming the socket" \
    eval 'rc_is 3 && has "$err" "$dir/nowhere.sock" && has "$err" sangamd'

# --- the change log ---------------------------------------------------------------------------
run log
log_out=$out
check_run "sangam log exits 0" eval 'rc_is 0'
check_run "the log has one line per change up to the node's seq" \
    eval '[ "$(lines "$log_out")" -eq "$(node_seq)" ]'
log_has_all() {
    local id
    for id in "$@"; do has "$log_out" "$id" || return 1; done
}
check_run "every record written through the CLI is in the log" \
    log_has_all "$ORG1" "$ORG2" "$M1" "$M2" "$M3" "$S1" "$I1"
check_run "the log shows the member update with the changed phone" \
    eval 'printf "%s\n" "$log_out" | grep -F "$M1" | grep -F update |
          grep -F "94150 99999" >/dev/null'
check_run "the log shows the issue updates and attendance" \
    eval 'has "$log_out" issue_updates && has "$log_out" attendance'
run log --limit 3
check_run "log --limit 3 prints three changes" eval 'rc_is 0 && [ "$(lines "$out")" -eq 3 ]'
last=$(node_seq)
run log --since $((last - 2))
check_run "log --since prints the changes after SEQ" eval 'rc_is 0 && [ "$(lines "$out")" -eq 2 ]'

shell_id=01J0SHE11NSERTED0RGAN1SAT1
sqlite3 -cmd '.timeout 5000' "$dir/b.db" \
    "INSERT INTO organisations(id, region, name, kind, created_at, updated_at)
     VALUES ('$shell_id', 'bundelkhand', 'Inserted From The Shell', 'other',
             '2024-07-01T00:00:00.000Z', '2024-07-01T00:00:00.000Z')" >"$dir/sqlite.out" 2>&1 ||
    true
run log --since "$last"
check_run "a row inserted with the sqlite3 shell shows up in sangam log" \
    eval 'rc_is 0 && has "$out" "$shell_id" && has "$out" insert && has "$out" organisations'
run org show "$shell_id"
check_run "and the node serves it" eval 'rc_is 0 && has "$out" "Inserted From The Shell"'

lib_finish
