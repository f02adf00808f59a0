"""A throwaway PKI for TLS tests: a CA and the certificates it signs, P-256 like the
broker's (controller/lanterna/broker/tls.py), with the extensions a strict verifier
(OpenSSL's X509_STRICT) asks for: key identifiers, critical basic constraints and key
usage, and an extended key usage saying what each certificate may do."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lanterna.broker.tls import check_hosts
from lanterna.files import write_atomic

DAYS = 30


def _usage(ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _write(path: Path, key: Any, cert: x509.Certificate) -> tuple[Path, Path]:
    key_path = path.with_suffix(".key")
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_atomic(key_path, pem, 0o600)
    write_atomic(path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return path, key_path


@dataclass
class Pki:
    dir: Path
    ca: Path  # the CA certificate (PEM), what a peer trusts
    _cert: x509.Certificate
    _key: Any

    def issue(
        self, name: str, *, server_hosts: Sequence[str] = (), client: bool = False
    ) -> tuple[Path, Path]:
        """A certificate for `name` signed by this CA -> (cert path, key path): serverAuth
        with a subject alternative name per host in `server_hosts`, clientAuth when
        `client` (both when asked for both)."""
        usages = [ExtendedKeyUsageOID.SERVER_AUTH] if server_hosts else []
        usages += [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
        if not usages:
            raise ValueError(f"certificate {name!r}: neither server_hosts nor client")
        if not name.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"certificate {name!r}: letters, digits, '-' and '_' only")
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        ca_ski = self._cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        b = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), False
            )
        )
        if server_hosts:
            b = b.add_extension(x509.SubjectAlternativeName(check_hosts(server_hosts)), False)
        cert = b.sign(self._key, hashes.SHA256())
        return _write(self.dir / f"{name}.crt", key, cert)


def make_pki(dirpath: Path, name: str = "Lanterna test CA") -> Pki:
    """A new CA in `dirpath` (ca.crt, ca.key): every call makes an unrelated one."""
    dirpath.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(True), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), False)
        .sign(key, hashes.SHA256())
    )
    ca, _ = _write(dirpath / "ca.crt", key, cert)
    return Pki(dirpath, ca, cert, key)
