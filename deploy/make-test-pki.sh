#!/usr/bin/env bash
# deploy/make-test-pki.sh - a test coalition CA and the certificates of a hub and its regions,
# made with the openssl CLI (OpenSSL 3.0, Debian 12). For tests and demos: a real coalition keeps
# its CA key offline and issues certificates with its own procedure.
#
# Invariants: DIR/ca.pem is reused when it exists (so a region can be added later), and an
# existing NAME.pem/NAME.key pair is kept, so running the script again changes nothing. Each
# pair is written under a temporary name and renamed into place, so a failure never leaves a key
# without its certificate. Private keys are mode 0600.
set -euo pipefail

prog=${0##*/}
days=825    # validity of new leaf certificates
ca_days=3650

usage() {
    cat <<EOF
usage: $prog DIR NAME... [--days N]

Makes a test coalition CA (EC P-256) and a certificate per NAME, signed by it:
  DIR/ca.pem, DIR/ca.key            the CA (reused if DIR/ca.pem exists)
  DIR/NAME.pem, DIR/NAME.key        one per NAME (kept if they exist)

NAME is either
  hub       the hub: subjectAltName DNS:hub, DNS:localhost, IP:127.0.0.1;
            extendedKeyUsage serverAuth
  REGION    a region id (1..63 of [a-z0-9-], not starting with '-', not 'hub'):
            subjectAltName DNS:REGION; extendedKeyUsage clientAuth
All leaf certificates: keyUsage digitalSignature, basicConstraints CA:FALSE.

Options:
  --days N  validity of the certificates made by this run, in days (default $days). A
            negative N makes a certificate that expired |N| days ago, for tests of expiry
            (its notAfter lies before its notBefore: OpenSSL 3.0's CLI cannot backdate
            notBefore). Existing certificates are kept whatever N is: remove them first.
  -h, --help

Certificates this script cannot make (not yet valid, signed by a foreign CA, odd extensions)
are made in tests with the OpenSSL C API: see tests/unit/test_tls.c (make_cert). From a
shell, 'openssl ca -startdate ... -enddate ...' or faketime(1) can set arbitrary dates.

Examples:
  $prog /tmp/pki hub bundelkhand mirzapur     # a CA, the hub and two regions
  $prog /tmp/pki awadh                         # later: one more region, same CA
  $prog /tmp/pki old-region --days -1          # an expired region certificate
EOF
}

die() {
    echo "$prog: $*" >&2
    exit 1
}

dir=
names=()
while (($#)); do
    case $1 in
    -h | --help)
        usage
        exit 0
        ;;
    --days)
        (($# >= 2)) || die "--days needs a number of days"
        if ! [[ $2 =~ ^-?[0-9]{1,5}$ ]] || ((10#${2#-} == 0)); then
            die "--days $2: expected a non-zero whole number of days (at most 99999)"
        fi
        days=$2
        shift 2
        ;;
    --days=*)
        set -- --days "${1#--days=}" "${@:2}"
        ;;
    -*)
        die "unknown option $1 (see --help)"
        ;;
    *)
        if [ -z "$dir" ]; then dir=$1; else names+=("$1"); fi
        shift
        ;;
    esac
done
[ -n "$dir" ] || {
    usage >&2
    exit 2
}
command -v openssl >/dev/null || die "openssl not found (apt-get install openssl)"

for n in "${names[@]}"; do
    [ "$n" = hub ] && continue
    [[ $n =~ ^[a-z0-9][a-z0-9-]{0,62}$ ]] ||
        die "'$n' is not a region id (1..63 of [a-z0-9-], not starting with '-')"
done

if [ ! -d "$dir" ]; then
    (umask 077 && mkdir -p "$dir") || die "cannot create $dir"
fi
[ -w "$dir" ] || die "$dir: not writable"

tmp=$(mktemp -d "$dir/.make-test-pki.XXXXXX") || die "cannot create a temporary directory in $dir"
trap 'rm -rf "$tmp"' EXIT

# One config file for every openssl call, so the system's openssl.cnf adds no extensions.
cat >"$tmp/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
[ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[hub]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:hub, DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[region]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectAltName = DNS:${ENV::SANGAM_PKI_NAME}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
export SANGAM_PKI_NAME=unused # the [region] section reads it; set per certificate below
org="/O=Sangam test coalition"

# Runs an openssl command quietly; on failure shows its output and exits.
ossl() {
    local out
    if ! out=$(openssl "$@" 2>&1); then
        echo "$out" >&2
        die "openssl $1 failed (see above)"
    fi
}

newkey() { # newkey FILE: an EC P-256 key, mode 0600
    (umask 077 && ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1")
}

serial() { # a random positive 127-bit serial number
    local hex
    hex=$(openssl rand -hex 16)
    printf '0x%x%s' $((0x${hex:0:1} & 7)) "${hex:1}"
}

if [ -f "$dir/ca.pem" ]; then
    ossl x509 -in "$dir/ca.pem" -noout
    echo "==> reusing CA $dir/ca.pem"
else
    [ ! -e "$dir/ca.key" ] || die "$dir/ca.key exists without $dir/ca.pem; move it away first"
    newkey "$tmp/ca.key"
    ossl req -config "$tmp/openssl.cnf" -x509 -new -key "$tmp/ca.key" -sha256 \
        -subj "$org/CN=Sangam test coalition CA" -days "$ca_days" -set_serial "$(serial)" \
        -extensions ca -out "$tmp/ca.pem"
    chmod 644 "$tmp/ca.pem"
    mv "$tmp/ca.key" "$dir/ca.key"
    mv "$tmp/ca.pem" "$dir/ca.pem"
    echo "==> made CA $dir/ca.pem ($dir/ca.key)"
fi

for n in "${names[@]}"; do
    pem=$dir/$n.pem key=$dir/$n.key
    if [ -e "$pem" ] || [ -e "$key" ]; then
        [ -f "$pem" ] || die "$key exists without $pem; remove it to issue a new pair"
        [ -f "$key" ] || die "$pem exists without $key; remove it to issue a new pair"
        openssl verify -no_check_time -CAfile "$dir/ca.pem" "$pem" >/dev/null 2>&1 ||
            die "$pem is not signed by $dir/ca.pem (left from another CA?); remove $pem and $key to issue a new pair"
        [ "$(openssl x509 -in "$pem" -noout -pubkey 2>/dev/null)" = \
            "$(openssl pkey -in "$key" -pubout 2>/dev/null)" ] ||
            die "$key does not match $pem; remove both to issue a new pair"
        echo "==> keeping $pem"
        continue
    fi
    [ -f "$dir/ca.key" ] || die "$dir/ca.key is missing: cannot sign a certificate for $n"
    section=region
    [ "$n" = hub ] && section=hub
    newkey "$tmp/$n.key"
    ossl req -config "$tmp/openssl.cnf" -new -key "$tmp/$n.key" -subj "$org/CN=$n" -out "$tmp/$n.csr"
    SANGAM_PKI_NAME=$n ossl x509 -req -in "$tmp/$n.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
        -sha256 -set_serial "$(serial)" -days "$days" -extfile "$tmp/openssl.cnf" \
        -extensions "$section" -out "$tmp/$n.pem"
    chmod 644 "$tmp/$n.pem"
    mv "$tmp/$n.key" "$key"
    mv "$tmp/$n.pem" "$pem"
    echo "==> made $pem ($section, $days days)"
done
