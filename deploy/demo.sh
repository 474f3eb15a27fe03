#!/usr/bin/env bash
# deploy/demo.sh - the README's "run it" command. On a fresh Debian 12 machine: installs the
# packages, builds, starts two regional nodes (Bundelkhand and Mirzapur) on Unix sockets under
# ./demo/, fills them with sample data through the real CLI, shows what each node recorded and its
# change log, and keeps the nodes running until Ctrl-C (or exits at once with --no-wait).
#
# The hub, which aggregates the regions over mutual TLS, arrives with replication (issue 3); then
# this script starts it too.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WAIT=1
for a in "$@"; do
  case $a in
    --no-wait) WAIT=0 ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo.sh: unknown option $a (try --help)" >&2; exit 2 ;;
  esac
done

source deploy/deps.sh
sangam_install_deps
echo "==> building"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target sangamd sangam >/dev/null
SANGAMD=$ROOT/build/server/sangamd
SANGAM=$ROOT/build/client/sangam

DEMO=$ROOT/demo
pids=()
stop() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap stop EXIT
trap 'exit 130' INT TERM

start_region() { # start_region ID
  local id=$1 dir=$DEMO/$1
  mkdir -p "$dir"
  if [ -S "$dir/node.sock" ] && "$SANGAM" --node "$dir/node.sock" status >/dev/null 2>&1; then
    echo "demo.sh: a node is already serving $dir/node.sock; stop it first" >&2; exit 1
  fi
  cat >"$dir/node.ini" <<INI
[node]
role = region
id = $id
db = $id.db
[api]
socket = node.sock
INI
  "$SANGAMD" --config "$dir/node.ini" 2>>"$dir/node.log" &
  pids+=($!)
  for _ in $(seq 100); do [ -S "$dir/node.sock" ] && return 0; sleep 0.05; done
  echo "demo.sh: node $id did not start; see $dir/node.log" >&2; tail -5 "$dir/node.log" >&2; exit 1
}

# json_num KEY: the first integer value of "KEY" in the JSON on stdin.
json_num() { grep -o "\"$1\": *[0-9]*" | head -1 | grep -o '[0-9]*$'; }

load_region() { # load_region ID MEMBERS SEED DISTRICT
  local id=$1 n=$2 seed=$3 district=$4
  local s=(--node "$DEMO/$id/node.sock")
  if [ "$("$SANGAM" "${s[@]}" --json status | json_num members)" != 0 ]; then
    echo "==> $id already has data (remove $DEMO to start afresh)"; return 0
  fi
  echo "==> loading sample data into $id"
  local dic bank rseti ngo rep staff sess issue
  dic=$("$SANGAM" "${s[@]}" org add --name "District Industries Centre $district" --kind government --district "$district")
  bank=$("$SANGAM" "${s[@]}" org add --name "State Bank of India, $district" --kind financial --district "$district")
  rseti=$("$SANGAM" "${s[@]}" org add --name "RSETI $district" --kind training --district "$district")
  ngo=$("$SANGAM" "${s[@]}" org add --name "Gramin Vikas Samiti" --kind civil_society --district "$district")
  rep=$("$SANGAM" "${s[@]}" member add --name "Alok Tiwari" --kind representative --org "$bank" --gender male --district "$district")
  staff=$("$SANGAM" "${s[@]}" member add --name "Kavita Mishra" --kind staff --gender female --district "$district")
  deploy/sample-members.sh "$id" "$n" "$seed" >"$DEMO/$id/members.csv"
  "$SANGAM" "${s[@]}" member import "$DEMO/$id/members.csv"
  mapfile -t m < <("$SANGAM" "${s[@]}" --json member list --kind entrepreneur --limit 12 |
    grep -o '"id": *"[0-9A-Z]*"' | grep -o '[0-9A-Z]\{26\}')
  sess=$("$SANGAM" "${s[@]}" session add --kind training --title "Book-keeping for small dairies" --date 2026-11-10 --place "$district")
  "$SANGAM" "${s[@]}" session attend "$sess" "${m[@]:0:8}" "$rep" >/dev/null
  "$SANGAM" "${s[@]}" session add --kind radio_show --title "Kisan Vani: credit schemes" --date 2026-11-18 --place "AIR $district" >/dev/null
  issue=$("$SANGAM" "${s[@]}" issue raise --by "${m[0]}" --session "$sess" --category finance --title "Mudra loan application pending for 3 months")
  "$SANGAM" "${s[@]}" issue update "$issue" --status in_progress --assign "$bank" --note "Forwarded to branch manager" --author "Kavita Mishra" >/dev/null
  "$SANGAM" "${s[@]}" issue raise --by "${m[1]}" --category market --title "No buyer for handloom stock" --description "Needs a link to the district haat" >/dev/null
  issue=$("$SANGAM" "${s[@]}" issue raise --by "${m[2]}" --category skills --title "Wants training in packaging")
  "$SANGAM" "${s[@]}" issue update "$issue" --status resolved --assign "$rseti" --note "Enrolled in RSETI batch of December" --author "Kavita Mishra" >/dev/null
  : "$dic" "$ngo" "$staff"
}

start_region bundelkhand
start_region mirzapur
load_region bundelkhand 300 11 Jhansi
load_region mirzapur 200 23 Mirzapur

for id in bundelkhand mirzapur; do
  echo; echo "==> $id: sangam --node demo/$id/node.sock status"
  "$SANGAM" --node "$DEMO/$id/node.sock" status
done
echo; echo "==> bundelkhand: open issues"
"$SANGAM" --node "$DEMO/bundelkhand/node.sock" issue list
echo; echo "==> bundelkhand: the last changes in its change log (what replication will ship)"
seq_now=$("$SANGAM" --node "$DEMO/bundelkhand/node.sock" --json status | json_num seq)
"$SANGAM" --node "$DEMO/bundelkhand/node.sock" log --since $((seq_now > 5 ? seq_now - 5 : 0))

cat <<TXT

The nodes are running. Try, in another terminal:
  export SANGAM_NODE=$DEMO/bundelkhand/node.sock
  $SANGAM member list --district Jhansi
  $SANGAM member add --name "Your Name" --kind entrepreneur --gender female
  $SANGAM log --since $seq_now
  sqlite3 $DEMO/bundelkhand/bundelkhand.db "SELECT kind, count(*) FROM members GROUP BY kind"
Logs: $DEMO/*/node.log
TXT
if [ "$WAIT" = 1 ]; then
  echo "Press Ctrl-C to stop the nodes."
  wait
fi
