#!/usr/bin/env bash
# tests/browser/run.sh - the hub's dashboard (issue 6) in a real browser: headless Chromium
# (Debian's /usr/bin/chromium) driven by playwright-core (pinned in package-lock.json) against a
# real hub (sangamd init, its API also on 127.0.0.1 TCP) and two regions joined by invite, filled
# through the sangam CLI with sample members, a member named <script>window.__pwned=1</script>,
# sessions with attendance and issues in every state. dashboard.mjs checks the page against the
# hub's own database (sqlite3) and `sangam hub regions --json`, and saves a screenshot.
#
# Usage: tests/browser/run.sh PATH/TO/sangamd PATH/TO/sangam
# Environment: SANGAM_SCREENSHOT=FILE (default docs/dashboard.png; empty for none),
#   CHROMIUM=PATH (default /usr/bin/chromium), BROWSER_TEST_SECONDS=N (the browser part's
#   bound, default 180).
# Prints "ok N - ..." / "not ok N - ..." and "P passed, F failed"; exits non-zero on a failure.
# Runs `npm ci` here when node_modules lacks the pinned playwright-core. Every process it starts
# is stopped and its temporary directory removed on exit, whatever happens.
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 SANGAMD SANGAM" >&2
    exit 2
fi
SANGAMD=$(realpath "$1")
SANGAM=$(realpath "$2")
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
SCREENSHOT=${SANGAM_SCREENSHOT-$root/docs/dashboard.png}
LIMIT=${BROWSER_TEST_SECONDS:-180}

for tool in node npm sqlite3 "$CHROMIUM"; do
    if ! command -v "$tool" >/dev/null; then
        echo "not ok 1 - $tool not found: apt-get install chromium nodejs npm sqlite3" \
            "(tests/run.sh installs them through deploy/deps.sh --test)"
        echo "0 passed, 1 failed"
        exit 1
    fi
done

# playwright-core at the version package-lock.json pins; --ignore-scripts: no browser download.
pinned=$(node -p "require('$here/package-lock.json').packages['node_modules/playwright-core'].version")
have=$(node -p "try { require('$here/node_modules/playwright-core/package.json').version } catch (e) { '' }")
if [ "$have" != "$pinned" ]; then
    echo "# npm ci (playwright-core $pinned)"
    (cd "$here" && timeout 300 npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
fi

dir=$(mktemp -d /tmp/sangam-browser.XXXXXX)
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill -- "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    # The browser test runs in its own process group (setsid): anything it left, Chromium's
    # helpers included, goes with it.
    [ -z "${browser_pid:-}" ] || kill -KILL -- "-$browser_pid" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start() { # start NAME INI SOCKET: a node in the background; waits for its socket
    "$SANGAMD" --config "$2" 2>>"$dir/$1.log" &
    pids+=($!)
    eval "pid_$1=$!"
    local deadline=$((SECONDS + 10))
    while [ ! -S "$3" ]; do
        if [ $SECONDS -ge "$deadline" ] || ! kill -0 "${pids[-1]}" 2>/dev/null; then
            echo "not ok 1 - $1 did not start:"
            tail -5 "$dir/$1.log" | sed 's/^/#   /'
            echo "0 passed, 1 failed"
            exit 1
        fi
        sleep 0.05
    done
}

# --- A hub and two regions, as the operator's guide sets them up ---
port=$((21000 + RANDOM % 20000))
api=$((port + 1))
"$SANGAMD" init --dir "$dir/hub" --listen "127.0.0.1:$port" --public "127.0.0.1:$port" >/dev/null
sed -i "s/^socket = hub.sock.*/&\nlisten = 127.0.0.1:$api/" "$dir/hub/hub.ini"
start hub "$dir/hub/hub.ini" "$dir/hub/hub.sock"
hub() { "$SANGAM" --node "$dir/hub/hub.sock" "$@"; }
for r in bundelkhand mirzapur; do
    "$SANGAMD" join "$(hub hub invite "$r" 2>/dev/null)" --dir "$dir/$r" >/dev/null 2>&1
    start "$r" "$dir/$r/region.ini" "$dir/$r/$r.sock"
done

# --- Data, through each region's CLI ---
ids() { grep -o '"id": *"[0-9A-Z]\{26\}"' | grep -o '[0-9A-Z]\{26\}'; }
fill() { # fill REGION N SEED DISTRICT MARKUP_NAME
    local r=$1 c=("$SANGAM" --node "$dir/$1/$1.sock") org=() m=() k s i
    "$root/deploy/sample-members.sh" "$r" "$2" "$3" >"$dir/$r.csv"
    "${c[@]}" member import "$dir/$r.csv" >/dev/null
    org+=("$("${c[@]}" org add --name "District Industries Centre $4" --kind government)")
    org+=("$("${c[@]}" org add --name "State Bank of India, $4" --kind financial)")
    "${c[@]}" member add --name "$5" --kind entrepreneur --gender female --district "$4" >/dev/null
    "${c[@]}" member add --name "Rep $4" --kind representative --org "${org[0]}" >/dev/null
    "${c[@]}" member add --name "Staff $4" --kind staff --gender undisclosed >/dev/null
    mapfile -t m < <("${c[@]}" --json member list --kind entrepreneur --limit 200 | ids)
    local kinds=(training working_session radio_show whatsapp launch field_visit emailer)
    for k in $(seq 0 11); do
        s=$("${c[@]}" session add --kind "${kinds[k % 7]}" --title "Session $k in $4" \
            --date "2026-$(printf %02d $((k % 10 + 1)))-$(printf %02d $((k + 3)))" --place "$4")
        "${c[@]}" session attend "$s" "${m[@]:$((k * 9)):$((6 + k % 7))}" >/dev/null
    done
    local cats=(finance market skills infrastructure awareness regulation technology other)
    for k in $(seq 0 23); do
        i=$("${c[@]}" issue raise --by "${m[k * 5]}" --category "${cats[k % 8]}" \
            --title "Issue $k <b>raised</b> & \"quoted\" in $4" --opened "2026-0$((k % 9 + 1))-1$((k % 10))")
        case $((k % 4)) in
        1) "${c[@]}" issue update "$i" --status in_progress --assign "${org[k % 2]}" --note "Taken up" \
            --author test >/dev/null ;;
        2 | 3) "${c[@]}" issue update "$i" --status "$([ $((k % 4)) = 2 ] && echo resolved || echo closed)" \
            --assign "${org[k % 2]}" --note "Done" --author test >/dev/null ;;
        esac
    done
}
fill bundelkhand 260 11 Jhansi '<script>window.__pwned=1</script>'
fill mirzapur 220 23 Mirzapur '<img src=x onerror="window.__pwned=2">'
"$SANGAM" --node "$dir/mirzapur/mirzapur.sock" member add --name "Chandrakala Kushwaha" \
    --kind entrepreneur --gender female --village Chunar --district Mirzapur --sector pottery >/dev/null

# Until the hub has everything: each region connected with nothing pending.
deadline=$((SECONDS + 30))
for r in bundelkhand mirzapur; do
    until st=$("$SANGAM" --node "$dir/$r/$r.sock" --json status) &&
        grep -Eq '"pending": *0([^0-9]|$)' <<<"$st" && grep -q '"connected": *true' <<<"$st"; do
        if [ $SECONDS -ge $deadline ]; then
            echo "not ok 1 - $r did not catch up with the hub within 30 s"
            echo "0 passed, 1 failed"
            exit 1
        fi
        sleep 0.1
    done
done

# --- The browser part, bounded, in its own process group ---
token=$(hub hub token create "Dashboard test" 2>/dev/null)
mkdir -p "$dir/tmp" "$dir/home"
set +e
env TMPDIR="$dir/tmp" HOME="$dir/home" URL="http://127.0.0.1:$api" TOKEN="$token" \
    HUB_DB="$dir/hub/hub.db" HUB_SOCK="$dir/hub/hub.sock" SANGAM="$SANGAM" CHROMIUM="$CHROMIUM" \
    SCREENSHOT="$SCREENSHOT" MIRZAPUR_PID="$pid_mirzapur" \
    setsid timeout -k 10 "$LIMIT" node "$here/dashboard.mjs" >"$dir/browser.out" 2>&1 &
browser_pid=$!
wait "$browser_pid"
rc=$?
set -e
cat "$dir/browser.out"
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    echo "not ok - the browser test did not finish within $LIMIT s"
    echo "$(grep -c '^ok ' "$dir/browser.out") passed," \
        "$(($(grep -c '^not ok ' "$dir/browser.out") + 1)) failed"
fi
if [ "$rc" -ne 0 ]; then
    for f in hub bundelkhand mirzapur; do
        echo "# last lines of $f.log:"
        tail -3 "$dir/$f.log" | sed 's/^/#   /'
    done
fi
exit "$rc"
