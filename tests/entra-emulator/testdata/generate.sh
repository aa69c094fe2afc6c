#!/bin/sh
# Regenerates the emulator's test keys and certificates (run once; the outputs are committed).
# Needs the openssl CLI. Private keys are PKCS#8, the form ring loads.
set -eu
cd "$(dirname "$0")"

rsa_key() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null; }
ec_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
self_signed() { openssl req -x509 -new -key "$1" -subj "/CN=$2" -days 36500 -out "$3"; }
thumbprint() { # base64url digest of the certificate's DER
  openssl x509 -in "$1" -outform der | openssl dgst "-$2" -binary | openssl base64 -A | tr '+/' '-_' | tr -d '='
}

# The app's registered certificate, and a second one the app does not know.
rsa_key client-key.pem && self_signed client-key.pem emulator-client client-cert.pem
thumbprint client-cert.pem sha1 > client-cert.x5t
thumbprint client-cert.pem sha256 > client-cert.x5t-s256
rsa_key other-key.pem && self_signed other-key.pem emulator-other other-cert.pem
# A certificate whose key Entra would not take for assertions (not RSA).
ec_key ec-key.pem && self_signed ec-key.pem emulator-ec ec-cert.pem
# The federated issuer's signing keys (RS256 like Kubernetes, and ES256).
rsa_key issuer-rsa-key.pem
ec_key issuer-ec-key.pem
# An HTTPS issuer: its own CA, and a serving certificate for 127.0.0.1 signed by it.
rsa_key issuer-ca-key.pem && openssl req -x509 -new -key issuer-ca-key.pem -subj "/CN=emulator-issuer-ca" \
  -days 36500 -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign -out issuer-ca.pem
rsa_key issuer-tls-key.pem
openssl req -new -key issuer-tls-key.pem -subj "/CN=127.0.0.1" -out issuer-tls.csr
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > issuer-tls.ext
openssl x509 -req -in issuer-tls.csr -CA issuer-ca.pem -CAkey issuer-ca-key.pem -CAcreateserial \
  -days 36500 -extfile issuer-tls.ext -out issuer-tls-cert.pem 2>/dev/null
rm -f issuer-tls.csr issuer-tls.ext issuer-ca.srl issuer-ca-key.pem
