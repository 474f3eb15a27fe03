#!/usr/bin/env bash
# deploy/demo.sh - the README's "run it" command: a demo federation on this machine.
#
# On a fresh Debian 12 machine it installs the packages it needs, builds, sets up a hub with its
# own CA (sangamd init), lets two regional offices join it with one-time invites (sangam hub
# invite, sangamd join), starts the hub and the two regions (Bundelkhand, Mirzapur) on 127.0.0.1,
# fills the regions with sample data through the real CLI (about 5,000 entrepreneurs, 90
# stakeholder representatives, sessions with attendance, issues in every state), waits until
# the hub has caught up, and prints the consolidated counts per region. Ctrl-C stops everything
# it started; configs, databases and logs stay in the demo directory for inspection.
#
# Usage: deploy/demo.sh [--dir DIR] [--port PORT] [--no-wait] [--help]
#   --dir DIR    where configs, databases, certificates and logs go (default ./demo)
#   --port PORT  the hub's replication port on 127.0.0.1 (default 17400; a DIR that already
#                has a hub keeps the port it was made with)
#   --no-wait    stop everything and exit once the summary is printed (for scripts and tests)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEMO=$ROOT/demo
PORT=17400
WAIT=1
while (($#)); do
  case $1 in
    --dir) DEMO=$(realpath -m "${2:?--dir needs a directory}"); shift 2 ;;
    --port) PORT=${2:?--port needs a number}; shift 2 ;;
    --no-wait) WAIT=0; shift ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
done
[[ $PORT =~ ^[0-9]+$ ]] || { echo "demo.sh: --port needs a number" >&2; exit 2; }

source deploy/deps.sh
sangam_install_deps
echo "==> building"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target sangamd sangam >/dev/null
SANGAMD=$ROOT/build/server/sangamd
SANGAM=$ROOT/build/client/sangam
mkdir -p "$DEMO"

pids=()
stop() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap stop EXIT
trap 'echo; echo "==> stopping"; exit 130' INT TERM

# Where each node lives: DIR/hub (made by sangamd init), DIR/REGION (made by sangamd join).
sock() { if [ "$1" = hub ]; then echo "$DEMO/hub/hub.sock"; else echo "$DEMO/$1/$1.sock"; fi; }
ini() { if [ "$1" = hub ]; then echo "$DEMO/hub/hub.ini"; else echo "$DEMO/$1/region.ini"; fi; }

start_node() { # start_node NAME
  local name=$1
  if [ -S "$(sock "$name")" ] && "$SANGAM" --node "$(sock "$name")" status >/dev/null 2>&1; then
    echo "demo.sh: a node is already serving $(sock "$name"); stop it first" >&2; exit 1
  fi
  "$SANGAMD" --config "$(ini "$name")" 2>>"$DEMO/$name.log" &
  pids+=($!)
  for _ in $(seq 100); do
    [ -S "$(sock "$name")" ] && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.05
  done
  echo "demo.sh: $name did not start; the end of $DEMO/$name.log:" >&2
  tail -5 "$DEMO/$name.log" >&2
  exit 1
}

# json_num KEY: the first integer value of "KEY" in the JSON on stdin.
json_num() { grep -o "\"$1\": *[0-9]*" | head -1 | grep -o '[0-9]*$'; }

# Stakeholder representatives, 45 a region, as CSV with their organisations' ids.
reps_csv() { # reps_csv ORG_ID...
  local -a first=(Alok Vandana Suresh Meera Rakesh Shalini Anand Kiran Deepak Nidhi Sanjay Poonam
    Manoj Rekha Ashok)
  local -a last=(Tiwari Srivastava Mishra Dubey Pandey Tripathi Shukla Verma Saxena)
  local -a orgs=("$@")
  echo "name,kind,gender,phone,organisation_id"
  for i in $(seq 0 44); do
    printf '%s %s,representative,%s,+91 94%08d,%s\n' "${first[i % 15]}" "${last[i % 9]}" \
      "$([ $((i % 3)) = 0 ] && echo male || echo female)" "$((i * 7919 + 1000))" \
      "${orgs[i % ${#orgs[@]}]}"
  done
}

load_region() { # load_region ID ENTREPRENEURS SEED DISTRICT
  local id=$1 n=$2 seed=$3 district=$4
  local s=(--node "$(sock "$id")") t0=$SECONDS
  if [ "$("$SANGAM" "${s[@]}" --json status | json_num members)" != 0 ]; then
    echo "==> $id already has data (remove $DEMO to start afresh)"
    return 0
  fi
  echo "==> loading sample data into $id"
  local -a orgs
  orgs+=("$("$SANGAM" "${s[@]}" org add --name "District Industries Centre, $district" --kind government --district "$district")")
  orgs+=("$("$SANGAM" "${s[@]}" org add --name "State Bank of India, $district branch" --kind financial --district "$district")")
  orgs+=("$("$SANGAM" "${s[@]}" org add --name "NABARD $district" --kind financial --district "$district")")
  orgs+=("$("$SANGAM" "${s[@]}" org add --name "RSETI $district" --kind training --district "$district")")
  orgs+=("$("$SANGAM" "${s[@]}" org add --name "Bundelkhand University" --kind academic --district "$district")")
  orgs+=("$("$SANGAM" "${s[@]}" org add --name "Gramin Vikas Samiti" --kind civil_society --district "$district")")
  "$SANGAM" "${s[@]}" member add --name "Kavita Mishra" --kind staff --gender female --district "$district" >/dev/null
  reps_csv "${orgs[@]}" >"$DEMO/$id-representatives.csv"
  "$SANGAM" "${s[@]}" member import "$DEMO/$id-representatives.csv" >/dev/null
  deploy/sample-members.sh "$id" "$n" "$seed" >"$DEMO/$id-entrepreneurs.csv"
  "$SANGAM" "${s[@]}" member import "$DEMO/$id-entrepreneurs.csv"

  local -a m reps
  mapfile -t m < <("$SANGAM" "${s[@]}" --json member list --kind entrepreneur --limit 400 |
    grep -o '"id": *"[0-9A-Z]*"' | grep -o '[0-9A-Z]\{26\}')
  mapfile -t reps < <("$SANGAM" "${s[@]}" --json member list --kind representative --limit 100 |
    grep -o '"id": *"[0-9A-Z]*"' | grep -o '[0-9A-Z]\{26\}')
  local kinds=(training working_session radio_show whatsapp launch field_visit emailer)
  local titles=("Book-keeping for small dairies" "Monthly working session with banks"
    "Kisan Vani: credit schemes on air" "WhatsApp clinic: GST registration"
    "Launch of the handloom cluster" "Field visit to goat-rearing groups"
    "E-mailer: PMEGP deadlines")
  local sess k
  for k in $(seq 0 13); do
    sess=$("$SANGAM" "${s[@]}" session add --kind "${kinds[k % 7]}" --title "${titles[k % 7]}" \
      --date "2026-$(printf %02d $((k % 10 + 1)))-$(printf %02d $((k * 2 + 1)))" --place "$district")
    "$SANGAM" "${s[@]}" session attend "$sess" "${m[@]:$((k * 25)):$((12 + k % 9))}" \
      "${reps[k % 45]}" >/dev/null
  done
  local cats=(finance market skills infrastructure awareness regulation technology other)
  local problems=("Mudra loan application pending" "No buyer for the season's stock"
    "Needs training in packaging" "Power cuts stop the looms" "Does not know the PMEGP scheme"
    "Licence renewal stuck at the office" "Wants a UPI QR code for the shop" "Land dispute")
  local issue st
  for k in $(seq 0 39); do
    issue=$("$SANGAM" "${s[@]}" issue raise --by "${m[k * 7 % ${#m[@]}]}" \
      --category "${cats[k % 8]}" --title "${problems[k % 8]}")
    case $((k % 4)) in
      0) ;; # stays open
      1) "$SANGAM" "${s[@]}" issue update "$issue" --status in_progress --assign "${orgs[k % 6]}" \
           --note "Taken up with the ${district} office" --author "Kavita Mishra" >/dev/null ;;
      2|3) st=$([ $((k % 4)) = 2 ] && echo resolved || echo closed)
         "$SANGAM" "${s[@]}" issue update "$issue" --status in_progress --assign "${orgs[k % 6]}" \
           --note "Forwarded" --author "Kavita Mishra" >/dev/null
         "$SANGAM" "${s[@]}" issue update "$issue" --status "$st" --note "Done at the camp" \
           --author "Kavita Mishra" >/dev/null ;;
    esac
  done
  echo "    $id loaded in $((SECONDS - t0)) s"
}

wait_caught_up() { # wait_caught_up ID: until the hub acknowledged everything of region ID
  local id=$1 st
  for _ in $(seq 600); do
    st=$("$SANGAM" --node "$(sock "$id")" --json status)
    if [ "$(json_num pending <<<"$st")" = 0 ] && grep -q '"connected": *true' <<<"$st"; then
      return 0
    fi
    sleep 0.1
  done
  echo "demo.sh: $id did not catch up with the hub within 60 s:" >&2
  "$SANGAM" --node "$(sock "$id")" status >&2
  exit 1
}

if [ ! -f "$(ini hub)" ]; then
  echo "==> sangamd init: a hub with its own coalition CA in $DEMO/hub"
  "$SANGAMD" init --dir "$DEMO/hub" --listen "127.0.0.1:$PORT" --public "127.0.0.1:$PORT" >/dev/null
fi
echo "==> starting the hub; logs in $DEMO/*.log"
start_node hub
for r in bundelkhand mirzapur; do
  if [ ! -f "$(ini "$r")" ]; then
    echo "==> $r joins: sangam hub invite $r, then sangamd join TOKEN --dir $DEMO/$r"
    token=$("$SANGAM" --node "$(sock hub)" hub invite "$r" 2>/dev/null)
    "$SANGAMD" join "$token" --dir "$DEMO/$r" >/dev/null 2>&1 ||
      { echo "demo.sh: $r could not join the hub" >&2; exit 1; }
  fi
  start_node "$r"
done
load_region bundelkhand 2600 11 Jhansi
load_region mirzapur 2400 23 Mirzapur
echo "==> waiting for the hub to catch up"
wait_caught_up bundelkhand
wait_caught_up mirzapur

echo
echo "==> the hub's consolidated picture (sangam --node $(sock hub) hub regions)"
"$SANGAM" --node "$(sock hub)" hub regions
echo
sqlite3 -header -column "$DEMO/hub/hub.db" "
  SELECT m.region,
         sum(m.kind = 'entrepreneur') AS entrepreneurs,
         sum(m.kind = 'representative') AS representatives,
         sum(m.kind = 'entrepreneur' AND m.gender = 'female') AS women,
         (SELECT count(*) FROM sessions s WHERE s.region = m.region) AS sessions,
         (SELECT count(*) FROM attendance a WHERE a.region = m.region) AS attendance,
         (SELECT count(*) FROM issues i WHERE i.region = m.region AND i.status IN ('open', 'in_progress')) AS open_issues,
         (SELECT count(*) FROM issues i WHERE i.region = m.region AND i.status IN ('resolved', 'closed')) AS resolved_issues
  FROM members m GROUP BY m.region ORDER BY m.region"

cat <<TXT

Everything runs on 127.0.0.1. Try, in another terminal:
  $SANGAM --node $(sock bundelkhand) status    # a region: replication, certificate
  $SANGAM --node $(sock bundelkhand) member add --name "Your Name" --kind entrepreneur
  $SANGAM --node $(sock hub) member list --region bundelkhand --q "your"   # ...at the hub
  $SANGAM --node $(sock hub) issue list --status open --region mirzapur
  $SANGAM --node $(sock hub) hub invite chitrakoot   # a third office: sangamd join TOKEN --dir DIR
  sqlite3 $DEMO/hub/hub.db "SELECT region, category, count(*) FROM issues GROUP BY 1, 2"
Stop the hub (kill it, or Ctrl-C here) and the regions keep working; they catch up on return.
Logs: $DEMO/*.log
TXT
if [ "$WAIT" = 1 ]; then
  echo "Press Ctrl-C to stop the hub and the regions."
  wait
fi
