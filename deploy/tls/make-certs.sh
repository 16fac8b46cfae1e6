#!/usr/bin/env bash
# A cluster CA and certificates for local use (`make certs`, `make run TLS=1`, the mTLS tests):
#   deploy/tls/make-certs.sh DIR [NODES]
# writes DIR/ca.{crt,key}, DIR/node-<i>.{crt,key} for i < NODES and DIR/gateway.{crt,key}.
# Existing files are kept (the CA too), so running it again only adds missing node certificates.
# Node certificates: serverAuth + clientAuth (nodes serve and dial), SANs localhost, 127.0.0.1,
# ::1, node-<i>, mycel-node (a fixed name for MYCEL_TLS_SERVER_NAME) and $EXTRA_SANS
# (e.g. EXTRA_SANS="DNS:*.mycel-node-headless.mycel.svc.cluster.local"). The gateway's: clientAuth
# only, so it cannot pose as a node. EC P-256 keys; DAYS (default 825) of validity.
set -euo pipefail
dir=${1:?usage: make-certs.sh DIR [NODES]}
nodes=${2:-3}
days=${DAYS:-825}
mkdir -p "$dir"
chmod 700 "$dir"
umask 077

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

if [[ ! -f $dir/ca.crt || ! -f $dir/ca.key ]]; then
  newkey "$dir/ca.key"
  openssl req -x509 -new -key "$dir/ca.key" -out "$dir/ca.crt" -days 3650 -sha256 \
    -subj "/O=Mycel/CN=Mycel cluster CA $(openssl rand -hex 4)" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash"
  echo "created CA $dir/ca.crt"
fi

# issue NAME EXTENDED_KEY_USAGE SUBJECT_ALT_NAMES
issue() {
  local name=$1 eku=$2 sans=$3
  [[ -f $dir/$name.crt && -f $dir/$name.key ]] && return 0
  newkey "$dir/$name.key"
  openssl req -new -key "$dir/$name.key" -subj "/O=Mycel/CN=$name" -out "$dir/$name.csr"
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days "$days" -sha256 -out "$dir/$name.crt" \
    -extfile <(printf '%s\n' \
      "basicConstraints=critical,CA:FALSE" \
      "keyUsage=critical,digitalSignature" \
      "extendedKeyUsage=$eku" \
      "subjectAltName=$sans" \
      "authorityKeyIdentifier=keyid") 2>/dev/null
  rm -f "$dir/$name.csr"
  echo "created $dir/$name.crt ($sans)"
}

extra=${EXTRA_SANS:+,$EXTRA_SANS}
for ((i = 0; i < nodes; i++)); do
  issue "node-$i" "serverAuth,clientAuth" "DNS:localhost,IP:127.0.0.1,IP:::1,DNS:node-$i,DNS:mycel-node$extra"
done
issue gateway "clientAuth" "DNS:mycel-gateway"
