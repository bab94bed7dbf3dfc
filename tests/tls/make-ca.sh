#!/bin/sh
# make-ca.sh DIR [NAME]: make a throw-away test CA and a server certificate it
# signed, for TLS tests against a local S3 server. Nothing here is a secret
# worth keeping: the keys are made fresh at test time and never committed.
#
#   DIR/NAME-ca.pem       the CA certificate (what ca_file= / AWS_CA_BUNDLE get)
#   DIR/NAME-ca.key       its key
#   DIR/NAME-server.pem   a certificate for 127.0.0.1 and localhost, signed by the CA
#   DIR/NAME-server.key   its key (unencrypted, mode 0600)
#
# NAME defaults to "test"; a second NAME makes an unrelated CA.
set -eu
dir=$1
name=${2:-test}
days=2
mkdir -p "$dir"
cd "$dir"
umask 077

openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days "$days" \
	-subj "/CN=imgfs $name test CA" \
	-addext "basicConstraints=critical,CA:TRUE" \
	-addext "keyUsage=critical,keyCertSign,cRLSign" \
	-keyout "$name-ca.key" -out "$name-ca.pem" 2>/dev/null

openssl req -new -newkey rsa:2048 -nodes -sha256 \
	-subj "/CN=127.0.0.1" \
	-keyout "$name-server.key" -out "$name-server.csr" 2>/dev/null

cat >"$name-server.ext" <<EXT
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost
EXT

openssl x509 -req -sha256 -days "$days" -in "$name-server.csr" \
	-CA "$name-ca.pem" -CAkey "$name-ca.key" -CAcreateserial \
	-extfile "$name-server.ext" -out "$name-server.pem" 2>/dev/null
rm -f "$name-server.csr" "$name-server.ext" "$name-ca.srl"
chmod 644 "$name-ca.pem" "$name-server.pem"
echo "$dir/$name-ca.pem"
