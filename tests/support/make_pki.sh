#!/bin/bash
# tests/support/make_pki.sh DIR — the throw-away PKI of one test run (never installed).
#
# Creates in DIR, with the openssl CLI only:
#   ca.key ca.pem                 the test CA ("jitgate test CA") that signs server and host certs
#   server.key server.pem         the approval service / audit store: SAN IP:127.0.0.1, DNS:localhost
#   client.key client.pem         the host's client certificate, CN "testhost", clientAuth
#   other-ca.key other-ca.pem     an unrelated CA, for "wrong CA" tests
#   other-server.key other-server.pem   a server certificate signed by that unrelated CA
#   other-client.key other-client.pem   a client certificate (CN "testhost") signed by that unrelated CA
#   signing.key signing.pub       the grant signing key pair (Ed25519; PKCS#8 / SubjectPublicKeyInfo PEM)
#   signing2.key signing2.pub     a second Ed25519 pair, for key rotation and unknown-kid tests
#   revoked-client.key revoked-client.pem   a host certificate (CN "revokedhost") of the test CA,
#                                 revoked with `openssl ca -revoke`
#   ca.crl                        the test CA's CRL (`openssl ca -gencrl`, 30 days) listing it
#   ca.db/                        the test CA's `openssl ca` database (index, CRL number)
# Private keys are mode 0600. Silent on success; on failure prints what openssl said and exits 1.
# Keys are EC P-256 (TLS) and Ed25519 (grants) so that the whole run takes well under a second.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: make_pki.sh DIR" >&2
    exit 2
fi
dir=$1
mkdir -p "$dir"
cd "$dir"
umask 077

# ossl ARGS...: runs openssl quietly; on failure shows its output and stops the script.
ossl() {
    local out
    if ! out=$(openssl "$@" 2>&1); then
        echo "make_pki.sh: openssl $* failed:" >&2
        echo "$out" >&2
        exit 1
    fi
}

# Our own config, so that the result does not depend on the system's openssl.cnf.
cnf=$(mktemp "$PWD/.make_pki.XXXXXX.cnf")
trap 'rm -f "$cnf" ./*.csr' EXIT
cat >"$cnf" <<'CNF'
[req]
distinguished_name = dn
prompt = no
[dn]
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
authorityKeyIdentifier = keyid
[client_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
[ca]
default_ca = test_ca
[test_ca]
database = ca.db/index.txt
crlnumber = ca.db/crlnumber
certificate = ca.pem
private_key = ca.key
default_md = sha256
default_crl_days = 30
crl_extensions = crl_ext
[crl_ext]
authorityKeyIdentifier = keyid
CNF

days=30

# make_ca NAME CN: a self-signed CA certificate NAME.pem with key NAME.key.
make_ca() {
    ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key"
    ossl req -config "$cnf" -x509 -new -key "$1.key" -subj "/CN=$2" -days "$days" \
        -extensions ca_ext -out "$1.pem"
}

# make_leaf NAME CN CA EXTENSIONS: NAME.key and NAME.pem signed by CA.key / CA.pem.
make_leaf() {
    ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key"
    ossl req -config "$cnf" -new -key "$1.key" -subj "/CN=$2" -out "$1.csr"
    ossl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -set_serial "0x$(openssl rand -hex 8)" \
        -days "$days" -extfile "$cnf" -extensions "$4" -out "$1.pem"
}

# make_signing NAME: an Ed25519 grant signing pair NAME.key / NAME.pub.
make_signing() {
    ossl genpkey -algorithm ED25519 -out "$1.key"
    ossl pkey -in "$1.key" -pubout -out "$1.pub"
}

make_ca ca "jitgate test CA"
make_leaf server 127.0.0.1 ca server_ext
make_leaf client testhost ca client_ext
make_ca other-ca "jitgate other CA"
make_leaf other-server 127.0.0.1 other-ca server_ext
make_leaf other-client testhost other-ca client_ext
make_signing signing
make_signing signing2
# Revocation: a host certificate revoked by the test CA, and the CA's CRL that says so.
make_leaf revoked-client revokedhost ca client_ext
mkdir -p ca.db
: >ca.db/index.txt
echo 1000 >ca.db/crlnumber
ossl ca -config "$cnf" -revoke revoked-client.pem -crl_reason keyCompromise
ossl ca -config "$cnf" -gencrl -out ca.crl

chmod 0600 ./*.key
chmod 0644 ./*.pem ./*.pub ./*.crl
