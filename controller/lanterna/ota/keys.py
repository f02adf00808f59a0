"""The fleet's OTA signing key: create it, load it, verify with its public half.

RSA-3072 with PKCS#1 v1.5 and SHA-256 (docs/ota.md, "Signature algorithm"): the node
verifies with the modulus alone, one ``pow(s, 65537, n)``. The private key is created
0600 beside the store and never shown; losing it orphans every node that trusts it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from lanterna.files import land

ALG = "rsa3072-pkcs1v15-sha256"
KEY_BITS = 3072
SIG_BYTES = KEY_BITS // 8
E = 65537
PRIVATE_NAME = "ota-signing.pem"
PUBLIC_NAME = "ota-public.json"


class OtaError(Exception):
    """One line for the operator; the subclass tells the CLI which exit status."""


class KeyMissing(OtaError):
    pass


class KeyExists(OtaError):
    pass


class KeyFileError(OtaError):
    """A key file that exists but is not a key of this fleet's kind."""


@dataclass(frozen=True)
class PublicKey:
    n: int
    e: int = E

    @property
    def key_id(self) -> str:
        return key_id(self.n)

    def as_json(self) -> dict[str, Any]:
        return {"alg": ALG, "e": self.e, "n": f"{self.n:0{SIG_BYTES * 2}x}", "key_id": self.key_id}


def key_id(n: int) -> str:
    """The first 8 bytes of sha256 over the modulus (384 bytes, big-endian), as hex."""
    return hashlib.sha256(n.to_bytes(SIG_BYTES, "big")).hexdigest()[:16]


def _write_new(path: Path, data: bytes, mode: int, force: bool) -> None:
    # Born 0600 under a random temp name (files.land), so never world-readable, not even
    # before the chmod; it lands by link or rename: a crash leaves the old key or the new
    # one, never half of one.
    def link(tmp: Path, dest: Path) -> None:
        if force:
            os.replace(tmp, dest)
            return
        try:
            os.link(tmp, dest)  # never clobbers: fails if a key appeared meanwhile
        except FileExistsError:
            raise KeyExists(f"{dest} already exists") from None
        except OSError:  # a filesystem without hard links
            if dest.exists():
                raise KeyExists(f"{dest} already exists") from None
            os.replace(tmp, dest)

    land(path, data, mode, link)


def keygen(directory: Path, force: bool = False) -> PublicKey:
    """Create the fleet key pair in `directory`: ota-signing.pem (0600), ota-public.json."""
    private, public = directory / PRIVATE_NAME, directory / PUBLIC_NAME
    if not force:
        for p in (private, public):
            if p.exists():
                # Losing the signing key orphans every node that trusts it.
                raise KeyExists(
                    f"{p} already exists: nodes trust that key; --force replaces it "
                    "(and every node must then be given the new public key)"
                )
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=E, key_size=KEY_BITS)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    pub = PublicKey(key.public_key().public_numbers().n)
    _write_new(private, pem, 0o600, force)
    _write_new(public, (json.dumps(pub.as_json(), indent=1) + "\n").encode(), 0o644, True)
    return pub


def load_private(path: Path) -> rsa.RSAPrivateKey:
    if not path.exists():
        raise KeyMissing(f"no signing key at {path}: create one with `lanterna ota keygen`")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        # Not the key's bytes in the message: a near-miss key is still most of a secret.
        raise KeyFileError(
            f"{path}: not an unencrypted PEM private key ({type(e).__name__})"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size != KEY_BITS:
        raise KeyFileError(f"{path}: expected an RSA-{KEY_BITS} private key")
    if key.public_key().public_numbers().e != E:
        raise KeyFileError(f"{path}: expected the public exponent {E}")
    return key


def load_public(path: Path) -> PublicKey:
    if not path.exists():
        raise KeyMissing(f"no public key at {path}: give --key ota-public.json")
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise KeyFileError(f"{path}: not a JSON public key file: {e}") from None
    if not isinstance(d, dict) or d.get("alg") != ALG:
        raise KeyFileError(f"{path}: expected a public key with alg {ALG!r}")
    n = d.get("n")
    if d.get("e") != E or not isinstance(n, str) or not re.fullmatch(r"[0-9a-f]{768}", n):
        raise KeyFileError(f"{path}: expected e {E} and n as 768 lowercase hex digits")
    pub = PublicKey(int(n, 16))
    if pub.n.bit_length() != KEY_BITS:
        raise KeyFileError(f"{path}: the modulus is not {KEY_BITS} bits")
    if d.get("key_id") != pub.key_id:
        raise KeyFileError(f"{path}: key_id {d.get('key_id')!r} does not match the modulus")
    return pub


def verify(pub: PublicKey, data: bytes, sig: bytes) -> bool:
    try:
        rsa.RSAPublicNumbers(pub.e, pub.n).public_key().verify(
            sig, data, padding.PKCS1v15(), hashes.SHA256()
        )
    except InvalidSignature:
        return False
    return True


def fleet_public_modulus(home: Path) -> str | None:
    """The fleet's OTA public modulus (ota-public.json's "n") for the nodes' config, when
    `ota keygen` made one beside the store; None: the nodes refuse every update."""
    path = home / PUBLIC_NAME
    if not path.exists():
        return None
    return str(load_public(path).as_json()["n"])
