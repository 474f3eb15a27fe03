#!/usr/bin/env bash
# deploy/install.sh - installs Sangam on a Debian 12 host, from a clone of this repository.
#
# Steps, each skipped when already done, so a second run changes nothing and succeeds:
#   1. the Debian packages of deploy/deps.sh (apt-get; only the missing ones)
#   2. a Release build in BUILD_DIR (cmake; incremental)
#   3. sangamd and sangam into PREFIX/bin (replaced only when they differ)
#   4. the system user and group 'sangam' (no login shell, home /var/lib/sangam)
#   5. /etc/sangam (0750 root:sangam) and /var/lib/sangam (0750 sangam:sangam)
#   6. the systemd units sangamd-hub.service and sangamd-region@.service into
#      /etc/systemd/system, then 'systemctl daemon-reload' if systemd runs and a unit changed
# It sets up no node and starts nothing: README.md, "Operator's guide", goes on from here.
#
# Usage: deploy/install.sh [--prefix DIR] [--build-dir DIR] [--no-systemd] [--help]
#   --prefix DIR     where the binaries go: DIR/bin (default /usr/local); the installed units
#                    run DIR/bin/sangamd
#   --build-dir DIR  the build directory (default build-release in the repository)
#   --no-systemd     install no units and do not talk to systemd
# Run it as root.
set -euo pipefail

prog=${0##*/}
cd "$(dirname "$0")/.."
ROOT=$PWD
PREFIX=/usr/local
BUILD=$ROOT/build-release
SYSTEMD=1
UNITS=(sangamd-hub.service sangamd-region@.service)
UNIT_DIR=/etc/systemd/system

die() {
    echo "$prog: $*" >&2
    exit 1
}
say() { echo "==> $*"; }

while (($#)); do
    case $1 in
    --prefix)
        (($# >= 2)) || die "--prefix needs a directory"
        PREFIX=$2
        shift 2
        ;;
    --build-dir)
        (($# >= 2)) || die "--build-dir needs a directory"
        BUILD=$(realpath -m "$2")
        shift 2
        ;;
    --no-systemd)
        SYSTEMD=0
        shift
        ;;
    -h | --help)
        sed -n '2,/^# Run it as root/p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "$prog: unknown option $1 (try --help)" >&2
        exit 2
        ;;
    esac
done
[[ $PREFIX =~ ^/[A-Za-z0-9._/+-]*$ ]] || die "--prefix $PREFIX: give an absolute directory (letters, digits, . _ / + -)"
PREFIX=${PREFIX%/}
[ "$(id -u)" -eq 0 ] || die "run me as root (I create a system user and write to $PREFIX/bin and /etc)"

# put SRC DEST MODE: installs SRC as DEST (mode MODE, root:root) unless DEST already has that
# content and mode. The new file is renamed into place, so a running sangamd is not disturbed.
# Prints what it did; returns 0 if it changed DEST, 1 if not.
put() {
    local src=$1 dest=$2 mode=$3 tmp
    if [ -f "$dest" ] && cmp -s "$src" "$dest" &&
        [ "$(stat -c '%a %U %G' "$dest")" = "$mode root root" ]; then
        echo "    unchanged $dest"
        return 1
    fi
    tmp=$(mktemp "$dest.XXXXXX")
    install -m "$mode" -o root -g root "$src" "$tmp"
    mv -f "$tmp" "$dest"
    echo "    installed $dest"
    return 0
}

# dir PATH MODE OWNER GROUP: makes PATH a directory with that mode and owner, changing only
# what differs.
dir() {
    local path=$1 mode=$2 owner=$3 group=$4
    if [ ! -d "$path" ]; then
        install -d -m "$mode" -o "$owner" -g "$group" "$path"
        echo "    made $path ($mode $owner:$group)"
    elif [ "$(stat -c '%a %U %G' "$path")" != "$mode $owner $group" ]; then
        chown "$owner:$group" "$path"
        chmod "$mode" "$path"
        echo "    fixed $path ($mode $owner:$group)"
    else
        echo "    unchanged $path"
    fi
}

# 1. Packages
say "packages (deploy/deps.sh)"
# shellcheck source=deploy/deps.sh disable=SC1091 # (checked on its own)
source deploy/deps.sh
sangam_install_deps
echo "    all ${#SANGAM_PACKAGES[@]} packages present"

# 2. Build. Warnings are not errors here: tests/run.sh enforces them; an operator's install
# should not stop on a new compiler's opinion.
say "building (Release) in $BUILD"
mkdir -p "$BUILD"
log=$BUILD/install-build.log
{
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DSANGAM_WERROR=OFF \
        -DBUILD_TESTING=OFF &&
        cmake --build "$BUILD" -j "$(nproc)" --target sangamd sangam
} >"$log" 2>&1 || {
    tail -20 "$log" >&2
    die "the build failed (the whole log: $log)"
}
echo "    built $BUILD/server/sangamd, $BUILD/client/sangam"

# 3. Binaries
say "binaries into $PREFIX/bin"
install -d -m 0755 "$PREFIX/bin"
bin_changed=0
if put "$BUILD/server/sangamd" "$PREFIX/bin/sangamd" 755; then bin_changed=1; fi
if put "$BUILD/client/sangam" "$PREFIX/bin/sangam" 755; then bin_changed=1; fi

# 4. User and group
say "system user and group sangam"
if getent group sangam >/dev/null; then
    echo "    unchanged group sangam"
else
    groupadd --system sangam
    echo "    made group sangam"
fi
if getent passwd sangam >/dev/null; then
    echo "    unchanged user sangam"
else
    useradd --system --gid sangam --home-dir /var/lib/sangam --no-create-home \
        --shell /usr/sbin/nologin --comment "Sangam node" sangam
    echo "    made user sangam (no login shell, home /var/lib/sangam)"
fi

# 5. Directories
say "directories"
dir /etc/sangam 750 root sangam
dir /var/lib/sangam 750 sangam sangam

# 6. systemd units
if [ "$SYSTEMD" = 0 ]; then
    say "systemd units: skipped (--no-systemd)"
else
    say "systemd units into $UNIT_DIR"
    install -d -m 0755 "$UNIT_DIR"
    tmpunit=$(mktemp)
    trap 'rm -f "$tmpunit"' EXIT
    changed=0
    for u in "${UNITS[@]}"; do
        sed "s#/usr/local/bin/sangamd#$PREFIX/bin/sangamd#g" "deploy/$u" >"$tmpunit"
        if put "$tmpunit" "$UNIT_DIR/$u" 644; then changed=1; fi
    done
    if [ -e "$UNIT_DIR/sangamd@.service" ]; then
        echo "    note: $UNIT_DIR/sangamd@.service (an older unit) is still there; move its" \
            "nodes to sangamd-hub / sangamd-region@ and remove it"
    fi
    if [ ! -d /run/systemd/system ]; then
        echo "    systemd is not running here: no daemon-reload"
    elif [ "$changed" = 1 ]; then
        systemctl daemon-reload
        echo "    systemctl daemon-reload"
    else
        echo "    units unchanged: no daemon-reload"
    fi
fi

say "done: $("$PREFIX/bin/sangamd" --version)"
if [ "$bin_changed" = 1 ] && [ -d /run/systemd/system ] &&
    [ -n "$(systemctl list-units --state=active --no-legend 'sangamd-*')" ]; then
    echo "A node is running the previous sangamd: systemctl restart 'sangamd-*' when convenient."
fi
cat <<EOF
Next (README.md, "Operator's guide"):
  a hub:    runuser -u sangam -- $PREFIX/bin/sangamd init --dir /var/lib/sangam/hub --public HOST:7400
            ln -s /var/lib/sangam/hub/hub.ini /etc/sangam/hub.ini
            systemctl enable --now sangamd-hub
  a region: runuser -u sangam -- $PREFIX/bin/sangamd join TOKEN --dir /var/lib/sangam/REGION
            ln -s /var/lib/sangam/REGION /etc/sangam/REGION
            systemctl enable --now sangamd-region@REGION
EOF
