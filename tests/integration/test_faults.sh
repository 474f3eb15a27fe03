#!/usr/bin/env bash
# test_faults.sh - seeded faults against a live federation, checked by the convergence checker
# (issue 7; tests/RELIABILITY.md). Real processes over real TLS on 127.0.0.1.
#
# Usage: test_faults.sh SANGAMD SANGAM FAULTPROXY [--seeds N] [--first S] [--long]
#                       [--only link|join|crash|disk|clock]
#
#   link   a hub and three regions, each region dialling through its own faultproxy (delays,
#          1-byte segments, half-open stalls, cuts mid-frame, answers lost after a delivered
#          batch), while all three write a mixed workload (inserts, updates, deletes, re-creates
#          over five tables, from the sqlite3 shell and through the API); then the links heal
#          and the federation must converge.
#   join   the hub's answer to a JOIN is lost after the hub spent the invite: the same command
#          run again is admitted (the node kept its key), another machine with the token is not.
#   crash  for each seed: a fresh federation of a hub and three regions under the same
#          workload; at seeded moments the hub or a region is killed with SIGKILL and restarted
#          after a seeded pause; then the workload stops and the federation must converge, every
#          write the API acknowledged must be there, and nothing may be applied twice.
#   disk   a region whose database lives on a small tmpfs that fills up: writes are refused with
#          507 / disk_full, /readyz says not ready, nothing committed is lost, and it recovers
#          once space is freed (mounts need root, or passwordless sudo; without either this
#          part fails saying so rather than pass silently).
#   clock  a region whose wall clock is 6 hours behind, then 6 hours ahead, then right, then behind
#          (faketime): its changes keep strictly increasing clocks, the hub ends with the last
#          write of each row.
# "Converge" is tests/tools/converge.sh: the hub's rows equal the regions' rows table by table,
# applied seqs have no gap and no repeat, produced = applied + quarantined, integrity_check ok.
#
# The default is the quick form run by tests/run.sh (20 crash seeds, one link run); --long (or
# SANGAM_LONG=1) runs 200 crash seeds and 5 link runs. Each run is repeatable from its seed: the
# fault plan (which process, when, which link fault) is drawn from it; the exact bytes in flight
# are not, since TLS and the scheduler differ run to run. A failing seed is reported with the
# command line that replays it. The last line, "faults: ...", holds the figures RELIABILITY.md
# quotes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
[ $# -ge 3 ] || { sed -n '2,35p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
lib_setup faults "$1" "$2"
FAULTPROXY=$(realpath "$3")
shift 3
converge=$(cd "$here/../tools" && pwd)/converge.sh
seeds=20 first=1 long=${SANGAM_LONG:-0} only=""
while [ $# -gt 0 ]; do
    case $1 in
    --seeds) seeds=$2; shift 2 ;;
    --first) first=$2; shift 2 ;;
    --long) long=1; shift ;;
    --only) only=$2; shift 2 ;;
    *) echo "test_faults.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
link_runs=1 link_secs=20
if [ "$long" = 1 ]; then
    [ "$seeds" = 20 ] && seeds=200
    link_runs=5 link_secs=30
fi
want() { [ -z "$only" ] || [ "$only" = "$1" ]; }

# Figures over the whole run, for the last line.
tot_kills_hub=0 tot_kills_region=0 tot_produced=0 tot_applied=0 tot_quarantined=0 tot_dup=0
tot_lost=0 tot_acked=0 tot_acked_missing=0
declare -A tot_fault=()

# --- A seeded generator (an LCG, so a seed means the same plan on every bash) ---
rng=1
rnd() { rng=$(((rng * 1103515245 + 12345) % 2147483648)); r=$((rng / 65536 % $1)); } # r in [0, N)

# round_sql REGION TAG K: one transaction of mixed changes. Members m-TAG-0-* are the pinned
# ones that sessions and issues point at (never deleted); later members are inserted, updated,
# deleted and re-created at random.
round_sql() {
    local reg=$1 tag=$2 k=$3 j kk
    echo "BEGIN;"
    if [ "$k" = 1 ]; then
        echo "INSERT INTO organisations (id, region, name, kind) VALUES ('o-$tag', '$reg', 'Bank of $reg', 'financial');"
        for j in 1 2 3; do
            echo "INSERT INTO members (id, region, name, kind) VALUES ('m-$tag-0-$j', '$reg', 'Pinned $j', 'entrepreneur');"
        done
    fi
    for j in 1 2 3; do
        echo "INSERT INTO members (id, region, name, kind, gender) VALUES ('m-$tag-$k-$j', '$reg', 'Member $k.$j', 'entrepreneur', 'female');"
    done
    if [ "$k" -gt 1 ]; then
        rnd $((k - 1)); kk=$((r + 1)); rnd 3
        echo "UPDATE members SET name = 'Renamed in $k', updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = 'm-$tag-$kk-$((r + 1))';"
        rnd $((k - 1)); kk=$((r + 1)); rnd 3
        echo "DELETE FROM members WHERE id = 'm-$tag-$kk-$((r + 1))';"
        rnd $((k - 1)); kk=$((r + 1)); rnd 3
        echo "INSERT OR IGNORE INTO members (id, region, name, kind) VALUES ('m-$tag-$kk-$((r + 1))', '$reg', 'Re-created in $k', 'staff');"
    fi
    echo "INSERT INTO sessions (id, region, kind, title, held_on) VALUES ('s-$tag-$k', '$reg', 'training', 'Training $k', '2026-11-0$((k % 9 + 1))');"
    echo "INSERT INTO attendance (id, region, session_id, member_id) VALUES ('a-$tag-$k', '$reg', 's-$tag-$k', 'm-$tag-0-$((k % 3 + 1))');"
    echo "INSERT INTO issues (id, region, raised_by, category, title, assigned_to) VALUES ('i-$tag-$k', '$reg', 'm-$tag-0-1', 'finance', 'Loan $k', 'o-$tag');"
    [ "$k" -gt 1 ] && echo "UPDATE issues SET status = 'in_progress' WHERE id = 'i-$tag-$((k - 1))';"
    echo "COMMIT;"
}

# writer REGION TAG ROUNDS PAUSE SEED: ROUNDS transactions into the region's database from the
# sqlite3 shell (the capture triggers log them whether or not sangamd is alive).
writer() {
    local reg=$1 tag=$2 rounds=$3 pause=$4 k
    rng=$5
    for ((k = 1; k <= rounds; k++)); do
        { echo ".timeout 10000"; round_sql "$reg" "$tag" "$k"; } | sqlite3 "$dir/$reg/$reg.db" >/dev/null 2>>"$dir/writer-$reg.err" ||
            echo "round $k failed" >>"$dir/writer-$reg.err"
        sleep "$pause"
    done
}

# api_writer REGION TAG COUNT: members through the node's API; the id of every write the node
# acknowledged goes to $dir/acked-REGION (a write to a dead node fails and is not counted).
api_writer() {
    local reg=$1 tag=$2 count=$3 i id
    for ((i = 1; i <= count; i++)); do
        if id=$("$SANGAM" --node "$dir/$reg/$reg.sock" member add --name "API $tag $i" \
            --kind entrepreneur 2>/dev/null); then
            echo "$id" >>"$dir/acked-$reg"
        fi
        sleep 0.02
    done
}

# db_of REGION: the region's database, as its region.ini names it.
db_of() {
    local p
    p=$(awk -F' *= *' '$1 == "db" { print $2 }' "$dir/$1/region.ini" | tail -1 | awk '{ print $1 }')
    [[ $p = /* ]] || p=$dir/$1/$p
    echo "$p"
}
head_seq() { sqlite3 "$(db_of "$1")" "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'sg_changes'), 0)" 2>/dev/null; }
hub_seq() { hubsql "SELECT coalesce((SELECT last_seq FROM sg_regions WHERE region = '$1'), 0)" 2>/dev/null; }
caught_up() { local reg; for reg in "$@"; do [ "$(head_seq "$reg")" = "$(hub_seq "$reg")" ] || return 1; done; }

# tune INI: short reconnect backoff and dead-link detection, so a test sees many reconnects.
tune() { printf '\n[replication]\nreconnect_max = 1s\nkeepalive = 1s\n' >>"$1"; }

# federation PORT [VIA...]: a fresh hub and three regions in $dir; region i dials VIA[i] if given.
regions=(bundelkhand mirzapur chitrakoot)
federation() {
    local port=$1 i
    shift
    rm -rf "$dir/hub" "${regions[@]/#/$dir/}" "$dir"/acked-* "$dir"/writer-*.err
    lib_hub_init "$port"
    tune "$dir/hub/hub.ini"
    start hub "$dir/hub/hub.ini"
    for i in 0 1 2; do
        # Joined over a clean link; afterwards the region dials VIA (a later [hub] address wins).
        lib_join "${regions[$i]}"
        tune "$dir/${regions[$i]}/region.ini"
        if [ $# -gt 0 ]; then
            printf '[hub]\naddress = %s\n' "$1" >>"$dir/${regions[$i]}/region.ini"
            shift
        fi
        start "${regions[$i]}" "$dir/${regions[$i]}/region.ini"
    done
}

# account SEED: stops the regions (their counts are final), runs the checker and adds the
# figures up. Returns non-zero when the invariant does not hold.
account() {
    local seed=$1 reg produced applied quarantined dup acked missing status=0
    for reg in "${regions[@]}"; do stop "$reg"; done
    try "$converge" "$dir/hub/hub.db" "$dir/bundelkhand/bundelkhand.db" "$dir/mirzapur/mirzapur.db" \
        "$dir/chitrakoot/chitrakoot.db"
    [ $rc -eq 0 ] || status=1
    for reg in "${regions[@]}"; do
        produced=$(head_seq "$reg")
        applied=$(hubsql "SELECT count(DISTINCT seq) FROM sg_applied WHERE region = '$reg'")
        quarantined=$(hubsql "SELECT count(*) FROM sg_quarantine WHERE region = '$reg' AND state = 'held'")
        dup=$(hubsql "SELECT count(*) - count(DISTINCT seq) FROM sg_applied WHERE region = '$reg'")
        tot_produced=$((tot_produced + produced)) tot_applied=$((tot_applied + applied))
        tot_quarantined=$((tot_quarantined + quarantined)) tot_dup=$((tot_dup + dup))
        [ $((produced - applied - quarantined)) -gt 0 ] && tot_lost=$((tot_lost + produced - applied - quarantined))
        [ "$dup" = 0 ] || status=1
        if [ -s "$dir/acked-$reg" ]; then
            acked=$(wc -l <"$dir/acked-$reg")
            # Every id the API acknowledged is in the region and at the hub.
            missing=0
            while read -r id; do
                [ "$(hubsql "SELECT count(*) FROM members WHERE id = '$id'")" = 1 ] || missing=$((missing + 1))
            done <"$dir/acked-$reg"
            tot_acked=$((tot_acked + acked)) tot_acked_missing=$((tot_acked_missing + missing))
            [ "$missing" = 0 ] || { status=1; out+=$'\n'"$missing of $acked acknowledged API writes of $reg are not at the hub"; }
        fi
    done
    return $status
}

# keep_evidence NAME: the logs and databases of a failed run outlive it, in /tmp (or $TMPDIR).
keep_evidence() {
    local keep=${TMPDIR:-/tmp}/sangam-faults-$1
    rm -rf "$keep"
    cp -r "$dir" "$keep" 2>/dev/null || true # (sockets are not copied; the rest is)
    echo "#   logs and databases kept in $keep"
}

# proxy_up PORT PID: the faultproxy PID listens on PORT (else its log is shown and the run
# stops: every later check would be about something else).
proxy_up() {
    if ! until_true 5 "kill -0 $2 && (exec 3<>/dev/tcp/127.0.0.1/$1)"; then
        out=$(cat "$dir"/proxy-*.log 2>/dev/null | tail -5)
        not_ok "the fault proxy listens on 127.0.0.1:$1"
        lib_finish
        exit 1
    fi
}

# --- link: every region behind its own faultproxy ---
link_run() {
    local seed=$1 port i pport via=() pp=()
    port=$(free_port)
    for i in 0 1 2; do
        pport=$(free_port)
        while [ "$pport" = "$port" ] || [[ " ${via[*]} " == *":$pport "* ]]; do pport=$(free_port); done
        "$FAULTPROXY" --listen "127.0.0.1:$pport" --to "127.0.0.1:$port" --seed "$((seed * 10 + i))" \
            --for "$link_secs" >"$dir/proxy-$i.out" 2>"$dir/proxy-$i.log" &
        pids+=($!) pp+=($!)
        via+=("127.0.0.1:$pport")
        proxy_up "$pport" "$!"
    done
    federation "$port" "${via[@]}"
    rng=$seed
    local w=()
    for i in 0 1 2; do
        writer "${regions[$i]}" "l$seed$i" $((link_secs * 5)) 0.15 $((seed * 3 + i)) & w+=($!)
    done
    api_writer bundelkhand "l$seed" $((link_secs * 10)) & w+=($!)
    for i in "${w[@]}"; do wait "$i"; done
    if until_true 90 "caught_up ${regions[*]}"; then
        ok "link seed $seed: the three regions caught up through faulty links"
    else
        out="heads: $(for r in "${regions[@]}"; do echo -n "$r $(head_seq "$r")/$(hub_seq "$r") "; done)"
        not_ok "link seed $seed: the three regions caught up through faulty links (replay: --only link --first $seed)"
        keep_evidence "link-seed$seed"
    fi
    if account "$seed"; then ok "link seed $seed: converge holds (rows, seqs, produced = applied + quarantined, integrity)"; else not_ok "link seed $seed: converge holds (replay: --only link --first $seed)"; fi
    for i in "${pp[@]}"; do kill "$i" 2>/dev/null || true; wait "$i" 2>/dev/null || true; done
    for i in 0 1 2; do
        local f
        for f in delay split stall cut ackcut; do
            local v
            v=$(grep -o " $f=[0-9]*" "$dir/proxy-$i.out" | cut -d= -f2 || true)
            tot_fault[$f]=$((${tot_fault[$f]:-0} + ${v:-0}))
        done
    done
    stop hub
}

if want link; then
    for ((s = first; s < first + link_runs; s++)); do link_run "$s"; done
    # The run means something only if every kind of fault actually happened.
    for f in delay split stall cut ackcut; do
        check "link: the $f fault fired (${tot_fault[$f]:-0} times)" "[ ${tot_fault[$f]:-0} -gt 0 ]"
    done
fi

# --- join: the hub's answer to a JOIN is lost on the link ---
if want join; then
    port=$(free_port)
    pport=$(free_port)
    while [ "$pport" = "$port" ]; do pport=$(free_port); done
    rm -rf "$dir/hub"
    lib_hub_init "$port"
    start hub "$dir/hub/hub.ini"
    # ackcut just past the region's first 600 bytes: the hub has spent the invite and issued the
    # certificate; the CERT never arrives.
    "$FAULTPROXY" --listen "127.0.0.1:$pport" --to "127.0.0.1:$port" --seed 1 --modes ackcut \
        --trigger 600 >/dev/null 2>"$dir/proxy-join.log" &
    pids+=($!)
    proxy_pid=$!
    tok=$(hub hub invite kanpur --address "127.0.0.1:$pport" 2>/dev/null)
    proxy_up "$pport" "$proxy_pid"
    expect_fail "join: an answer lost on the link is an error that says how to retry" \
        "run the same command again" "$SANGAMD" join "$tok" --dir "$dir/kanpur"
    check "join: the hub had spent the invite (the case a retry must survive)" \
        "[ -n \"\$(hubsql 'SELECT used_at FROM sg_invites WHERE region = \"kanpur\"')\" ]"
    kill "$proxy_pid" 2>/dev/null || true
    wait "$proxy_pid" 2>/dev/null || true
    "$FAULTPROXY" --listen "127.0.0.1:$pport" --to "127.0.0.1:$port" --seed 1 --modes clean \
        >/dev/null 2>>"$dir/proxy-join.log" &
    pids+=($!)
    proxy_up "$pport" "$!"
    expect_fail "join: another machine with the spent token is still refused" "already used" \
        "$SANGAMD" join "$tok" --dir "$dir/kanpur-thief"
    expect_ok "join: the same command again is admitted (same key, same token)" \
        "$SANGAMD" join "$tok" --dir "$dir/kanpur"
    check "join: the kept key became the node's key" \
        "[ -e '$dir/kanpur/pki/node.key' ] && [ ! -e '$dir/kanpur/pki/join.key' ]"
    printf '[hub]\naddress = 127.0.0.1:%s\n' "$port" >>"$dir/kanpur/region.ini"
    start kanpur "$dir/kanpur/region.ini"
    expect_ok "join: the region takes a write" region kanpur member add --name "Kanpur 1" --kind staff
    wait_for "join: and it reaches the hub" 10 \
        "[ \"\$(hubsql \"SELECT count(*) FROM members WHERE region = 'kanpur'\")\" = 1 ]"
    stop kanpur
    stop hub
fi

# --- crash: SIGKILL at seeded moments ---
crash_run() {
    local seed=$1 port k victim pause w=() bad=0
    rng=$((seed * 7919))
    port=$(free_port)
    federation "$port"
    for k in 0 1 2; do writer "${regions[$k]}" "c$seed$k" 30 0.05 $((seed * 3 + k)) & w+=($!); done
    api_writer mirzapur "c$seed" 80 & w+=($!)
    for k in 1 2 3; do
        rnd 1500; sleep "$((r / 1000)).$(printf %03d $((r % 1000)))"
        rnd 4
        if [ "$r" = 0 ]; then victim=hub; else victim=${regions[$((r - 1))]}; fi
        kill9 "$victim"
        [ "$victim" = hub ] && tot_kills_hub=$((tot_kills_hub + 1)) || tot_kills_region=$((tot_kills_region + 1))
        rnd 1000; sleep "0.$(printf %03d "$r")"
        if [ "$victim" = hub ]; then start hub "$dir/hub/hub.ini" || bad=1
        else start "$victim" "$dir/$victim/region.ini" || bad=1; fi
        echo "# seed $seed: kill $k: $victim"
    done
    for k in "${w[@]}"; do wait "$k"; done
    out="a node did not restart (see its log)"
    if [ "$bad" = 0 ] && ! until_true 60 "caught_up ${regions[*]}"; then
        bad=1
        out="not caught up after 60 s: $(for k in "${regions[@]}"; do echo -n "$k $(hub_seq "$k")/$(head_seq "$k") "; done)"
    fi
    if [ "$bad" = 0 ] && account "$seed"; then
        ok "crash seed $seed: three SIGKILLs, then converge holds"
    else
        not_ok "crash seed $seed: three SIGKILLs, then converge holds (replay: --only crash --first $seed --seeds 1)"
        keep_evidence "crash-seed$seed"
    fi
    stop hub
}
if want crash; then
    for ((s = first; s < first + seeds; s++)); do crash_run "$s"; done
fi

# --- disk: a region's database on a tmpfs that fills up ---
if want disk; then
    mnt=$dir/small
    mkdir -p "$mnt"
    # As root, mount; otherwise through passwordless sudo, owned by the user running the test.
    as_root=()
    [ "$(id -u)" = 0 ] || as_root=(sudo -n)
    tmpfs() { "${as_root[@]}" mount -t tmpfs -o "size=$1,uid=$(id -u),gid=$(id -g)" tmpfs "$2"; }
    if ! tmpfs 96m "$mnt" 2>/dev/null; then
        out="mount -t tmpfs needs root or passwordless sudo; run tests/run.sh as root"
        not_ok "disk: a tmpfs for the region's database could be mounted"
    else
        trap '"${as_root[@]}" umount -l "$mnt" 2>/dev/null || true; lib_cleanup' EXIT
        port=$(free_port)
        federation "$port"
        stop bundelkhand
        # Move bundelkhand's database onto the small disk.
        mv "$dir/bundelkhand/bundelkhand.db" "$mnt/"
        rm -f "$dir/bundelkhand/bundelkhand.db-wal" "$dir/bundelkhand/bundelkhand.db-shm"
        sed -i "s|^db = .*|db = $mnt/bundelkhand.db|" "$dir/bundelkhand/region.ini"
        start bundelkhand "$dir/bundelkhand/region.ini"
        for i in 1 2 3; do region bundelkhand member add --name "Before $i" --kind entrepreneur >/dev/null; done
        head -c $((90 << 20)) /dev/zero >"$mnt/filler" 2>/dev/null || true
        # Fill what is left, to the last block.
        dd if=/dev/zero of="$mnt/filler2" bs=4k 2>/dev/null || true
        acked=0 refused=0 codes=""
        for i in $(seq 1 40); do
            if region bundelkhand member add --name "Full $i $(head -c 300 /dev/zero | tr '\0' x)" \
                --village "$(head -c 190 /dev/zero | tr '\0' y)" --kind entrepreneur >/dev/null 2>"$dir/full.err"; then
                acked=$((acked + 1))
            else
                refused=$((refused + 1)); codes+=$(cat "$dir/full.err")
            fi
        done
        out=$codes
        check "disk: writes to a full disk are refused ($refused of 40; $acked fit in what was left)" "[ $refused -gt 0 ]"
        check "disk: the refusal says the disk is full" "grep -qi 'disk is full' <<<\"\$codes\""
        ready=$(curl -s --unix-socket "$dir/bundelkhand/bundelkhand.sock" http://node/readyz || true)
        out=$ready
        check "disk: /readyz says not ready (disk)" "grep -q '\"disk\": *false' <<<\"\$ready\""
        check "disk: the node is still alive" "kill -0 $pid_bundelkhand"
        rm -f "$mnt/filler" "$mnt/filler2"
        expect_ok "disk: once space is freed the node takes writes again" \
            region bundelkhand member add --name "After" --kind entrepreneur
        wait_for "disk: /readyz is ready again" 10 \
            "curl -sf --unix-socket '$dir/bundelkhand/bundelkhand.sock' http://node/readyz"
        expect_ok "disk: the writes before the disk filled are all there" \
            test "$(sqlite3 "$mnt/bundelkhand.db" "SELECT count(*) FROM members WHERE name LIKE 'Before %' OR name = 'After'")" = 4
        check "disk: of the writes made while full, exactly the $acked acknowledged are there" \
            "[ \"\$(sqlite3 '$mnt/bundelkhand.db' \"SELECT count(*) FROM members WHERE name LIKE 'Full %'\")\" = $acked ]"
        wait_for "disk: the hub caught up with the region" 30 "caught_up bundelkhand"

        # The hub's disk fills: it applies nothing, acknowledges nothing, stays up, catches up.
        stop hub
        hmnt=$dir/small-hub
        mkdir -p "$hmnt"
        tmpfs 64m "$hmnt"
        trap '"${as_root[@]}" umount -l "$mnt" "$hmnt" 2>/dev/null || true; lib_cleanup' EXIT
        mv "$dir/hub/hub.db" "$hmnt/hub.db"
        rm -f "$dir/hub/hub.db-wal" "$dir/hub/hub.db-shm"
        printf '[node]\ndb = %s\n' "$hmnt/hub.db" >>"$dir/hub/hub.ini"
        start hub "$dir/hub/hub.ini"
        ln -sf "$hmnt/hub.db" "$dir/hub/hub.db" # for hubsql and the checker
        wait_for "disk: the hub restarted on the small disk and the region reconnected" 15 \
            "hubsql \"SELECT 1 FROM sg_regions WHERE region = 'bundelkhand'\""
        dd if=/dev/zero of="$hmnt/filler" bs=4k 2>/dev/null || true
        for i in $(seq 1 30); do
            region bundelkhand member add --name "While the hub is full $i $(head -c 300 /dev/zero | tr '\0' z)" \
                --kind entrepreneur >/dev/null
        done
        sleep 2
        check "disk: the hub has not applied what it had no room for" "! caught_up bundelkhand"
        ready=$(curl -s --unix-socket "$dir/hub/hub.sock" http://node/readyz || true)
        out=$ready
        check "disk: the hub's /readyz says not ready (disk)" "grep -q '\"disk\": *false' <<<\"\$ready\""
        check "disk: the hub is still alive" "kill -0 $pid_hub"
        rm -f "$hmnt/filler"
        wait_for "disk: once space is freed the hub catches up" 30 "caught_up bundelkhand"
        stop bundelkhand
        expect_ok "disk: converge holds for the region and the hub that ran out of space" \
            "$converge" "$hmnt/hub.db" "$mnt/bundelkhand.db"
        stop hub
        for reg in mirzapur chitrakoot; do stop "$reg"; done
        "${as_root[@]}" umount -l "$mnt" "$hmnt" 2>/dev/null || true
    fi
fi

# --- clock: a region whose wall clock is hours wrong ---
if want clock; then
    port=$(free_port)
    federation "$port"
    stop mirzapur
    # libfaketime preloaded through env(1), which execs: the pid is sangamd's own (the faketime
    # command forks, and a SIGTERM to it would leave the node running).
    libfaketime=$(dpkg -L libfaketime 2>/dev/null | grep '/libfaketime.so.1$' | head -1)
    id=""
    for phase in "-6h" "+6h" "+0" "-6h"; do
        # (ASan wants its runtime first among preloads; under the ASan build it must let
        # libfaketime come first.)
        start mirzapur "$dir/mirzapur/region.ini" env LD_PRELOAD="$libfaketime" FAKETIME="$phase" \
            FAKETIME_DONT_FAKE_MONOTONIC=1 ASAN_OPTIONS="${ASAN_OPTIONS:-}:verify_asan_link_order=0"
        if [ -z "$id" ]; then
            id=$(region mirzapur member add --name "Clock $phase" --kind entrepreneur) || id=none
        fi
        for i in 1 2 3; do
            region mirzapur member update "$id" --name "Clock $phase $i" >/dev/null || true
        done
        # It replicates while its clock is wrong (certificates are backdated a day, ca.c).
        wait_for "clock: the region at $phase replicates" 15 \
            "[ \"\$(hubsql \"SELECT name FROM members WHERE id = '$id'\")\" = 'Clock $phase 3' ]"
        stop mirzapur
    done
    start mirzapur "$dir/mirzapur/region.ini"
    out=$(sqlite3 "$dir/mirzapur/mirzapur.db" "SELECT seq, hlc FROM sg_changes ORDER BY seq")
    check "clock: the region's clocks increase strictly with seq across the jumps" \
        "[ \"\$(sqlite3 '$dir/mirzapur/mirzapur.db' 'SELECT count(*) FROM sg_changes a JOIN sg_changes b ON b.seq > a.seq AND b.hlc <= a.hlc')\" = 0 ]"
    wait_for "clock: the hub caught up with the region" 30 "caught_up mirzapur"
    check "clock: the hub holds the row as last written (6 hours slow)" \
        "[ \"\$(hubsql \"SELECT name FROM members WHERE id = '$id'\")\" = 'Clock -6h 3' ]"
    for reg in "${regions[@]}"; do stop "$reg"; done
    expect_ok "clock: converge holds" "$converge" "$dir/hub/hub.db" "$dir/mirzapur/mirzapur.db"
    stop hub
fi

faults="" ran_seeds=0 ran_links=0
for f in delay split stall cut ackcut; do faults+=" $f=${tot_fault[$f]:-0}"; done
want crash && ran_seeds=$seeds
want link && ran_links=$link_runs
echo "faults: crash_seeds=$ran_seeds kills_hub=$tot_kills_hub kills_region=$tot_kills_region link_runs=$ran_links$faults produced=$tot_produced applied=$tot_applied quarantined=$tot_quarantined duplicated=$tot_dup lost=$tot_lost api_acked=$tot_acked api_acked_missing=$tot_acked_missing"
lib_finish
