"""The broker's TLS files for `lanterna broker config`: a private CA and a server
certificate it signs, both P-256 (small certificates, cheap handshakes on an ESP32's
mbedTLS), the keys born 0600.

Kept across re-runs: the CA until `rotate` (a new CA must first reach every node, so
replacing it is the operator's decision; an expiring one only brings a warning); the
server certificate while this CA signed it, it names exactly the hosts asked for, and it
has more than RENEW_DAYS left.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lanterna.files import write_atomic

CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY = "ca.crt", "ca.key", "server.crt", "server.key"
CA_DAYS, SERVER_DAYS, RENEW_DAYS = 3650, 730, 30


class TlsError(ValueError):
    """A host name that cannot go in a certificate (one line)."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _load_pair(cert_path: Path, key_path: Path) -> tuple[Any, Any] | None:
    """A certificate and its private key as written here (P-256), or None when either
    is missing, unreadable or they do not belong together."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    if not (cert_path.exists() and key_path.exists()):
        return None
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None  # made anew; no message (it could quote key bytes)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return None
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if cert.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        return None
    return cert, key


def fresh(cert: Any) -> bool:
    return cert.not_valid_after_utc - _now() > dt.timedelta(days=RENEW_DAYS)


def _pem_key(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pem_cert(cert: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def check_hosts(hosts: Sequence[str]) -> list[Any]:
    """The subject alternative names for `hosts`: an IP address entry for each address,
    a DNS entry for each name; TlsError for anything else."""
    from cryptography import x509

    out: list[Any] = []
    for h in hosts:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            if not re.fullmatch(r"[A-Za-z0-9*]([A-Za-z0-9.-]{0,252})", h):
                raise TlsError(f"--host {h!r}: not a host name or IP address") from None
            out.append(x509.DNSName(h.lower()))
    return out


def _issue(
    out: Path,
    names: tuple[str, str],
    cn: str,
    signer: tuple[Any, Any] | None,
    days: int,
    extra: list[Any],
) -> tuple[Any, Any]:
    """A new P-256 key and its certificate, written to `names` (key 0600 first, then the
    certificate): self-signed when `signer` (ca cert, ca key) is None."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    # P-256: small certificates and cheap handshakes for an ESP32's mbedTLS
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    issuer_ski = ski
    if signer is not None:
        issuer_ski = signer[0].extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject if signer is None else signer[0].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + dt.timedelta(days=days))
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski), False
        )
    )
    for ext, critical in extra:
        b = b.add_extension(ext, critical=critical)
    cert = b.sign(key if signer is None else signer[1], hashes.SHA256())
    # the key first: a certificate on disk without its key is of use to nobody
    write_atomic(out / names[1], _pem_key(key), 0o600)
    write_atomic(out / names[0], _pem_cert(cert), 0o644)
    return cert, key


def _usage(cert_sign: bool) -> Any:
    from cryptography import x509

    flags = dict.fromkeys(
        ("content_commitment", "key_encipherment", "data_encipherment", "key_agreement"),
        False,
    )
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
        **flags,
    )


def ensure_ca(out: Path, rotate: bool) -> tuple[Any, Any, bool]:
    """The CA (certificate, key), made when missing or unusable, or on `rotate`.
    -> (cert, key, made)."""
    from cryptography import x509

    pair = None if rotate else _load_pair(out / CA_CERT, out / CA_KEY)
    if pair is not None:
        # kept even when it is about to expire: a new CA must reach every node first,
        # so replacing it is the operator's decision (rotate), announced by a warning
        return pair[0], pair[1], False
    extra = [(x509.BasicConstraints(ca=True, path_length=0), True), (_usage(True), True)]
    cert, key = _issue(out, (CA_CERT, CA_KEY), "Lanterna broker CA", None, CA_DAYS, extra)
    return cert, key, True


def ensure_server(out: Path, ca_cert: Any, ca_key: Any, hosts: Sequence[str], rotate: bool) -> bool:
    """The server certificate for `hosts`, signed by the CA; kept while it is signed by
    this CA, names exactly these hosts and is not about to expire. -> made anew."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.x509.oid import ExtendedKeyUsageOID

    san = check_hosts(hosts)
    pair = None if rotate else _load_pair(out / SERVER_CERT, out / SERVER_KEY)
    if pair is not None:
        cert = pair[0]
        try:
            names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            same = set(names) == set(san)
            cert.verify_directly_issued_by(ca_cert)
        except (x509.ExtensionNotFound, InvalidSignature, ValueError, TypeError):
            same = False  # no names, or signed by another CA (a rotated one)
        if same and fresh(cert):
            return False
    extra = [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (_usage(False), True),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
        (x509.SubjectAlternativeName(san), False),
    ]
    pair = (ca_cert, ca_key)
    _issue(out, (SERVER_CERT, SERVER_KEY), hosts[0], pair, SERVER_DAYS, extra)
    return True
