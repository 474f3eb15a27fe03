#!/usr/bin/env bash
# deploy/deps.sh - the Debian 12 packages Sangam needs, in one list, and a function that
# installs the missing ones (apt-get; through sudo when not root). Sourced by tests/run.sh and
# deploy/demo.sh so both README commands work on a fresh machine.
# libsystemd-dev: sangamd's sd_notify (READY, STOPPING, WATCHDOG); python3: the service
# manager's side in tests/integration/test_notify.sh.
SANGAM_PACKAGES=(build-essential cmake pkg-config clang clang-format libclang-rt-14-dev
  libuv1-dev libsqlite3-dev sqlite3 libmsgpack-dev libssl-dev openssl libjansson-dev libinih-dev
  libcurl4-openssl-dev libcmocka-dev libcsv-dev node-llhttp libsystemd-dev python3 curl git)

# Only the test suite needs these: prometheus for promtool (tests/integration/test_hq.sh checks
# /metrics with `promtool check metrics`); chromium, nodejs and npm for the dashboard's browser
# test (tests/browser/run.sh: Debian's headless Chromium driven by playwright-core from the npm
# registry). npm only when there is none: a Node.js that brings its own (NodeSource's nodejs
# package) conflicts with Debian's npm package, and apt-get would refuse the whole list.
# faketime: a node whose wall clock is hours wrong, and certificates not yet valid
# (tests/integration/test_faults.sh, test_security.sh).
SANGAM_TEST_PACKAGES=(prometheus chromium nodejs faketime)
command -v npm >/dev/null 2>&1 || SANGAM_TEST_PACKAGES+=(npm)

# sangam_install_deps [--test]: installs the missing packages (with --test, the test ones too).
sangam_install_deps() {
  local missing=() p sudo= want=("${SANGAM_PACKAGES[@]}")
  [ "${1:-}" = --test ] && want+=("${SANGAM_TEST_PACKAGES[@]}")
  for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  echo "==> installing ${missing[*]}"
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
}
