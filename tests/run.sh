#!/usr/bin/env bash
# tests/run.sh - the one test command (README, .ci/run).
#
# On a fresh Debian 12 machine: installs the packages it needs (apt-get, through sudo when not
# root), checks formatting and banned functions, builds with -Wall -Wextra -Werror, runs the whole
# CTest suite, runs it again under ASan+UBSan, then runs every libFuzzer target for
# FUZZ_SECONDS (default 60) under ASan+UBSan.
#
# The fault, crash, allocation-failure, power-loss and fuzz parts run in their quick form
# (tests/RELIABILITY.md); `tests/run.sh --long` runs the long form: 200 crash seeds and 5 faulty-
# link runs (test_faults.sh), every allocation and power-cut point (test_alloc, test_vfs), and 15
# minutes per fuzz target. It takes several hours on 2 cores.
#
# Environment: FUZZ_SECONDS=N (0 skips the timed fuzz runs; the corpora are still replayed by
# CTest), JOBS=N (parallel build jobs, default nproc), SKIP_ASAN=1 (local quick runs only),
# SANGAM_LONG=1 (the same as --long).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
JOBS=${JOBS:-$(nproc)}
case "${1:-}" in
--long) export SANGAM_LONG=1 ;;
"") ;;
*) echo "usage: tests/run.sh [--long]" >&2; exit 2 ;;
esac
if [ "${SANGAM_LONG:-0}" = 1 ]; then FUZZ_SECONDS=${FUZZ_SECONDS:-900}; fi
FUZZ_SECONDS=${FUZZ_SECONDS:-60}

say() { printf '\n==> %s\n' "$*"; }

# 1. Packages: one list, shared with the demo (deploy/deps.sh).
source deploy/deps.sh
sangam_install_deps --test

# 2. Style: formatting and functions the house style bans.
say "format and banned-function check"
mapfile -t SOURCES < <(git ls-files '*.c' '*.h')
clang-format --dry-run --Werror "${SOURCES[@]}"
if grep -nE '\b(strcpy|strcat|sprintf|vsprintf|strtok|atoi|atol|gets)\s*\(' "${SOURCES[@]}"; then
  echo "banned function used (see ../shared/STYLE.md point 12)"; exit 1
fi

# 3. The suite, warnings as errors.
say "build (gcc, -Wall -Wextra -Werror)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSANGAM_WERROR=ON >/dev/null
cmake --build build -j "$JOBS"
say "test suite"
ctest --test-dir build --output-on-failure -j 2 --timeout 600

# 4. The suite again under AddressSanitizer (+LeakSanitizer) and UBSan.
if [ "${SKIP_ASAN:-0}" != 1 ]; then
  say "build and test under ASan+UBSan"
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSANGAM_ASAN=ON -DSANGAM_UBSAN=ON >/dev/null
  cmake --build build-asan -j "$JOBS"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure -j 2 --timeout 900
fi

# 4b. The hub's dashboard in headless Chromium against a real hub and two regions
# (tests/browser/run.sh; `npm ci` of the pinned playwright-core on its first run). The screenshot
# goes to a scratch file here; run tests/browser/run.sh alone to refresh docs/dashboard.png.
say "browser test (tests/browser/run.sh: the dashboard in headless Chromium)"
shot=$(mktemp --suffix=.png)
SANGAM_SCREENSHOT=$shot tests/browser/run.sh build/server/sangamd build/client/sangam
rm -f "$shot"

# 5. Fuzzing: each target runs FUZZ_SECONDS on a scratch copy of its corpus.
if [ "$FUZZ_SECONDS" -gt 0 ]; then
  say "fuzz targets (${FUZZ_SECONDS}s each)"
  CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DSANGAM_FUZZ=ON -DSANGAM_ASAN=ON \
    -DSANGAM_UBSAN=ON >/dev/null
  cmake --build build-fuzz -j "$JOBS" --target fuzz_batch fuzz_frame fuzz_http fuzz_csv fuzz_json \
    fuzz_config fuzz_token fuzz_csr
  for t in batch frame http csv json config token csr; do
    work=$(mktemp -d)
    cp -r "tests/fuzz/corpus/$t/." "$work/"
    ( cd "$work" && "$ROOT/build-fuzz/tests/fuzz_$t" -max_total_time="$FUZZ_SECONDS" \
        -rss_limit_mb=512 -timeout=10 -print_final_stats=1 "$work" 2>fuzz.log ) || {
      tail -60 "$work/fuzz.log"; echo "fuzz_$t found a problem; reproducer in $work"; exit 1; }
    grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' "$work/fuzz.log" | sed "s/^/fuzz_$t: /"
    rm -rf "$work"
  done
fi
# 6. The benchmark's smoke form (seconds), so tests/bench cannot rot; the full table is
# tests/bench/run.sh (BENCHMARKS.md).
# PostgreSQL is part of it (pg_baseline.sh installs postgresql-15 when missing); a smoke run
# that could not measure it fails rather than print n/a quietly.
say "benchmark smoke (tests/bench/run.sh --small)"
BENCH_REQUIRE_PG=1 bash tests/bench/run.sh --small 2>/dev/null | tail -22

# 7. The README's main command, end to end, in a scratch directory (no waiting at the end).
say "demo federation (deploy/demo.sh --no-wait)"
demo_dir=$(mktemp -d)
deploy/demo.sh --no-wait --dir "$demo_dir" --port $((20000 + RANDOM % 20000)) | tail -12
rm -rf "$demo_dir"

say "all tests passed"
