"""Field provisioning (docs/provisioning.md): a board with MicroPython on it becomes a
lamp post of the fleet, through mpremote.

What goes onto the device: ``boot.py`` (picks the application slot), ``main.py`` (the
loader: runs the chosen slot), the current build in slot ``a`` with its manifest, the
board file as ``board.json`` and the node's ``config.json`` (site, location, time zone,
telemetry period, MQTT account, command key, the fleet's OTA public key, WiFi or LAN).
Secrets are made once and kept: the MQTT password in ``credentials.json`` beside the
store (lanterna.broker.credentials), the command key in the store; so provisioning again writes
the same bytes and, file by file, changes nothing that is already right.

Every file is compared by sha256 with what the device holds (read on the device); only
those that differ are copied, then every file is read back and checked. Only then is the
node entered in the store.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lanterna.broker.url import BrokerURL
from lanterna.device import firmware as fw
from lanterna.device import mpremote
from lanterna.paths import board_file, firmware_dir

NODE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_HASH_LINE = re.compile(r"^H (\S+) ([0-9a-f]{64}|-)$")


class ProvisionError(Exception):
    """One line for the field engineer."""


@dataclass
class Plan:
    port: str
    node: str
    site: str
    board: str
    files: dict[str, bytes]  # path on the device -> bytes
    key: bytes  # the command key the store keeps
    lat: float
    lon: float
    tz: str  # IANA name or POSIX string, as the store keeps it
    skipped: list[str] = field(default_factory=list)  # not written: the node has taken OTA

    def describe(self) -> list[dict[str, Any]]:
        return [
            {"path": p, "bytes": len(d), "sha256": hashlib.sha256(d).hexdigest()}
            for p, d in self.files.items()
        ]


CA_FILE = "ca.der"  # beside config.json: the node's mqtt "ca" default (lamp.net.link.SPEC)


def ca_der(data: bytes, where: str) -> bytes:
    """The broker's CA for a node: every certificate of `data` (PEM, as `lanterna broker
    config --tls` writes ca.crt) as DER, back to back, and nothing else, so no private key
    can ride along onto a pole. DER: the node's mbedTLS may lack a PEM parser (the unix
    port's does), and it is smaller. ProvisionError names `where` for a file without a
    certificate, with a key, or a certificate that is not a CA's."""
    from cryptography import x509

    if b"PRIVATE KEY" in data:
        raise ProvisionError(f"{where}: holds a private key; give the CA's certificate (ca.crt)")
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ProvisionError(f"{where}: not a PEM certificate") from None
    for cert in certs:
        try:
            bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            bc = None
        if bc is None or not bc.ca:
            raise ProvisionError(f"{where}: {cert.subject.rfc4514_string()} is not a CA")
    from cryptography.hazmat.primitives.serialization import Encoding

    return b"".join(c.public_bytes(Encoding.DER) for c in certs)


def node_ca(u: BrokerURL, path: Path | None) -> bytes:
    """The CA a node verifies the TLS broker `u` with, as DER (ca_der), read from `path`
    (--broker-ca, $LANTERNA_BROKER_CA or broker_ca in config.json). A TLS node without
    it does not start (lamp.net.link), so it is checked before anything is made or
    written; Malformed (exit 4) names what is missing or wrong."""
    from lanterna.errors import malformed

    if path is None:
        raise malformed(
            f"--broker {u.url}: the node needs the broker's CA to verify it: give "
            "--broker-ca FILE (the ca.crt of `lanterna broker config --tls`), or set "
            "LANTERNA_BROKER_CA or broker_ca in config.json"
        )
    try:
        data = path.read_bytes()
    except OSError as e:
        raise malformed(f"--broker-ca {path}: {e.strerror or e}") from None
    try:
        return ca_der(data, f"--broker-ca {path}")
    except ProvisionError as e:
        raise malformed(str(e)) from None


def mqtt_config(u: BrokerURL, user: str, password: str) -> dict[str, Any]:
    """The node's "mqtt" settings (lamp.net.link.SPEC) for the broker at `u`: a TLS broker
    (mqtts://) gives "tls": true, and the node then verifies the broker against the CA
    provisioning writes beside its config (CA_FILE) and the host name of `u`."""
    m: dict[str, Any] = {"host": u.host, "port": u.port, "user": user, "password": password}
    if u.tls:
        m["tls"] = True
    return m


def node_config(
    node: str,
    site: str,
    lat: float,
    lon: float,
    tz_posix: str,
    mqtt: dict[str, Any] | None,
    key_hex: str,
    tele_s: int = 60,
    coap_port: int = 0,
    ota_key: str | None = None,
    network: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A node's config.json (docs/firmware.md, lamp.config): the one shape virtual and
    real nodes share."""
    cfg: dict[str, Any] = {
        "node": node,
        "site": site,
        "lat": lat,
        "lon": lon,
        "tz": tz_posix,
        "tele_s": tele_s,
        "mqtt": mqtt,
        "coap_port": coap_port,
        "key": key_hex,
    }
    if ota_key is not None:
        cfg["ota_key"] = ota_key
    if network is not None:
        cfg["network"] = network
    return cfg


def device_files(
    board_name: str,
    cfg: dict[str, Any],
    ca: bytes | None = None,
    forms: tuple[str, ...] = ("romfs",),
) -> dict[str, bytes]:
    """Everything provisioning writes, in the order it is written (the slot's manifest
    after its files; the broker's CA (ca_der) before the config; the config last, so a
    cut-short run never leaves a config without the firmware or the CA it is for).
    `forms`: the slot forms the board's firmware runs (lanterna.device.probe)."""
    chip = json.loads(board_file(board_name).read_text())["chip"]
    build = fw.cached_build(manifest=fw.manifest_for_chip(chip))  # a pole's: no simulator
    files = fw.factory_files(build, fw.firmware_version(), forms)
    files["main.py"] = (firmware_dir() / "loader.py").read_bytes()
    files["board.json"] = board_file(board_name).read_bytes()
    if ca is not None:
        files[CA_FILE] = ca
    files["config.json"] = (json.dumps(cfg, indent=1, sort_keys=True) + "\n").encode()
    return files


# -- the device, through mpremote -------------------------------------------------------


def _mpremote(port: str, *args: str, timeout: float = 120) -> str:
    return mpremote.run(port, *args, timeout=timeout, error=ProvisionError)


def remote_state(port: str, paths: list[str]) -> tuple[dict[str, str | None], set[str]]:
    """-> (sha256 of each path on the device or None, the directories it has)."""
    dirs = sorted({str(Path(p).parent) for p in paths if "/" in p})
    code = (
        "import hashlib,binascii,os\n"
        f"for p in {paths!r}:\n"
        " try:\n"
        "  h=hashlib.sha256()\n"
        "  with open(p,'rb') as f:\n"
        "   while True:\n"
        "    b=f.read(1024)\n"
        "    if not b: break\n"
        "    h.update(b)\n"
        "  print('H',p,binascii.hexlify(h.digest()).decode())\n"
        " except OSError:\n"
        "  print('H',p,'-')\n"
        f"for d in {dirs!r}:\n"
        " try:\n"
        "  os.stat(d); print('D',d)\n"
        " except OSError:\n"
        "  pass\n"
    )
    out = _mpremote(port, "exec", code)
    hashes: dict[str, str | None] = {}
    have: set[str] = set()
    for line in out.splitlines():
        m = _HASH_LINE.match(line.strip())
        if m:
            hashes[m.group(1)] = None if m.group(2) == "-" else m.group(2)
        elif line.startswith("D "):
            have.add(line[2:].strip())
    missing = [p for p in paths if p not in hashes]
    if missing:
        raise ProvisionError(f"{port}: the device did not report {missing[0]}")
    return hashes, have


def apply(
    plan: Plan, say: Callable[[str], None] = lambda _s: None, reset: bool = True
) -> list[str]:
    """Copy what differs, read everything back; -> the paths written ([] when the device
    already held every file)."""
    paths = list(plan.files)
    hashes, have = remote_state(plan.port, [*paths, "ota.json"])
    if hashes["ota.json"] is not None:
        # The node has taken updates: its slots are its own (as `lanterna sim` keeps them).
        plan.skipped = [p for p in paths if p.startswith("slots/")]
        paths = [p for p in paths if p not in plan.skipped]
    want = {p: hashlib.sha256(plan.files[p]).hexdigest() for p in paths}
    todo = [p for p in paths if hashes[p] != want[p]]
    if todo:
        args: list[str] = []
        made = set(have)
        with tempfile.TemporaryDirectory(prefix="lanterna-provision-") as tmp:
            for p in todo:
                d = str(Path(p).parent)
                parts = [] if d == "." else Path(d).parts
                for i in range(len(parts)):
                    sub = "/".join(parts[: i + 1])
                    if sub not in made:
                        args += ["fs", "mkdir", ":" + sub, "+"]
                        made.add(sub)
                local = Path(tmp) / p.replace("/", "__")
                local.write_bytes(plan.files[p])
                args += ["fs", "cp", str(local), ":" + p, "+"]
            say(f"writing {len(todo)} file(s) to {plan.port}")
            _mpremote(plan.port, *args[:-1], timeout=600)
    back, _ = remote_state(plan.port, paths)
    for p in paths:
        if back[p] != want[p]:
            raise ProvisionError(
                f"{plan.port}: {p}: read back sha256 differs from what was written"
            )
    if todo and reset:
        say(f"resetting {plan.port}: the node boots")
        _mpremote(plan.port, "reset", timeout=30)
    return todo


def new_key() -> bytes:
    return secrets.token_bytes(32)
