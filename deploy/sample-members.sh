#!/usr/bin/env bash
# deploy/sample-members.sh REGION N [SEED] - prints a CSV of N made-up members of REGION in the
# column layout `sangam member import` takes. Deterministic for a given seed; used by the demo
# and by tests.
set -euo pipefail
region=${1:?usage: sample-members.sh REGION N [SEED]}
n=${2:?usage: sample-members.sh REGION N [SEED]}
seed=${3:-42}
awk -v n="$n" -v seed="$seed" -v region="$region" 'BEGIN {
  srand(seed);
  split("Sita Gita Rekha Sunita Anita Meena Kamla Pooja Radha Savitri Lakshmi Asha Usha Neha Priya", fem, " ");
  split("Ram Shyam Mohan Suresh Ramesh Dinesh Rajesh Mukesh Anil Sunil Vijay Ajay Ravi Arjun Kishan", mal, " ");
  split("Yadav Kushwaha Patel Verma Singh Prajapati Nishad Pal Gupta Maurya Rajput Ahirwar", sur, " ");
  split("dairy handloom poultry goat_rearing tailoring kirana agro_processing carpentry pottery stone_craft", sec, " ");
  if (region == "mirzapur") { split("Mirzapur Sonbhadra Bhadohi", dist, " "); split("Chunar Lalganj Halia Madihan Kon Marihan", vil, " ") }
  else { split("Jhansi Lalitpur Banda Chitrakoot Mahoba Hamirpur", dist, " "); split("Baragaon Mauranipur Talbehat Atarra Naraini Charkhari", vil, " ") }
  print "name,kind,gender,birth_year,phone,village,district,sector,joined_on";
  for (i = 1; i <= n; i++) {
    g = rand() < 0.55 ? "female" : "male";
    first = g == "female" ? fem[int(rand() * 15) + 1] : mal[int(rand() * 15) + 1];
    name = first " " sur[int(rand() * 12) + 1];
    printf "%s,entrepreneur,%s,%d,+91 9%09d,%s,%s,%s,2026-%02d-%02d\n", name, g,
      1965 + int(rand() * 42), int(rand() * 999999999), vil[int(rand() * 6) + 1],
      dist[int(rand() * (region == "mirzapur" ? 3 : 6)) + 1], sec[int(rand() * 10) + 1],
      1 + int(rand() * 10), 1 + int(rand() * 28);
  }
}'
