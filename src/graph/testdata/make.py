"""Regenerates the certificate-credential fixtures: throwaway keys that sign nothing but tests.

Run with Python 3 and the `cryptography` package: `python3 make.py` (in this folder).
- rsa.crt / rsa.key (PKCS#8) / rsa-pkcs1.key: a valid RSA-2048 certificate (2024 to 2098) and its key.
- rotated.crt: another valid certificate for rsa.key (a renewal: same key, new thumbprint).
- other.key: another RSA key, which does not match rsa.crt.
- expired.crt (2020 to 2021) and future.crt (from 2099): certificates for rsa.key.
- ec.crt / ec.key: a P-256 certificate and key, which client assertions here do not support.
- chain.crt: rsa.crt followed by ec.crt, as a kubernetes.io/tls Secret holds a chain (leaf first).
"""

from datetime import datetime, timezone

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID


def utc(year):
    return datetime(year, 1, 1, tzinfo=timezone.utc)


def certificate(name, key, not_before, not_after):
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"entra-operator test {name}")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key, fmt):
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


def write(name, data):
    with open(name, "wb") as file:
        file.write(data)


rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ec_key = ec.generate_private_key(ec.SECP256R1())
pkcs8 = serialization.PrivateFormat.PKCS8

write("rsa.key", key_pem(rsa_key, pkcs8))
write("rsa-pkcs1.key", key_pem(rsa_key, serialization.PrivateFormat.TraditionalOpenSSL))
write("other.key", key_pem(other_key, pkcs8))
write("ec.key", key_pem(ec_key, pkcs8))
rsa_crt = certificate("rsa", rsa_key, utc(2024), utc(2098))
ec_crt = certificate("ec", ec_key, utc(2024), utc(2098))
write("rsa.crt", rsa_crt)
write("rotated.crt", certificate("rotated", rsa_key, utc(2025), utc(2097)))
write("expired.crt", certificate("expired", rsa_key, utc(2020), utc(2021)))
write("future.crt", certificate("future", rsa_key, utc(2099), utc(2100)))
write("ec.crt", ec_crt)
write("chain.crt", rsa_crt + ec_crt)
