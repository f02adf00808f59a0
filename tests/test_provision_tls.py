"""Provisioning end to end against the secure broker (issue 14, docs/provisioning.md): on
a virtual board with real mpremote, in the field's order:

1. `lanterna broker config --tls` makes the broker's CA and server certificate (and
   records the CA as the controller's broker_ca);
2. `lanterna provision --broker mqtts://...` writes the CA (ca.der) and the mqtts
   settings onto the board and registers the node;
3. `lanterna broker config --tls` again: the node's account joins, the certificates stay;
4. mosquitto from exactly that configuration; the board resets, the node verifies the
   broker and joins; `lanterna dim 40` (the controller verifying the broker with the
   same CA) gets the node's ack.

And what is refused with one line, changing nothing: an mqtts:// broker without a CA, a
"CA" file that holds a private key, and a controller without the CA.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import VENV_BIN
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from observer import Observer
from test_provision import NODE, SITE, lanterna, provision, virtual_board

from lanterna.broker.mosquitto import Generated, free_port


@pytest.fixture
def field(tmp_path, spawn):
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANTERNA_")}
    env.update(LANTERNA_HOME=str(home), LANTERNA_BROKER=f"mqtts://127.0.0.1:{port}")
    flash, url, board = virtual_board(spawn, env, tmp_path)
    return home, env, port, flash, url, tmp_path / "broker"


def broker_config(env, out: Path, port: int) -> subprocess.CompletedProcess:
    b = lanterna(
        env, "broker", "config", "--out", str(out), "--tls", "--tls-port", str(port),
        "--bind", "127.0.0.1",
    )  # fmt: skip
    assert b.returncode == 0, b.stderr
    return b


def test_a_node_provisioned_for_mqtts_verifies_the_broker_and_acks_dim(field):
    home, env, port, flash, url, out = field
    broker_config(env, out, port)
    ca = out / "ca.crt"
    assert json.loads((home / "config.json").read_text())["broker_ca"] == str(ca.resolve())

    p = provision(env, url, "--no-reset", "--broker", f"mqtts://127.0.0.1:{port}")
    assert p.returncode == 0, p.stdout + p.stderr
    mqtt = json.loads((flash / "config.json").read_text())["mqtt"]
    assert (mqtt["host"], mqtt["port"], mqtt["tls"]) == ("127.0.0.1", port, True)
    der = x509.load_pem_x509_certificate(ca.read_bytes()).public_bytes(Encoding.DER)
    assert (flash / "ca.der").read_bytes() == der, "the broker's CA, as made"
    assert b"PRIVATE" not in b"".join(f.read_bytes() for f in flash.rglob("*") if f.is_file())

    before = {f: (out / f).read_bytes() for f in ("ca.crt", "server.crt")}
    broker_config(env, out, port)  # the node's account and ACL join
    assert {f: (out / f).read_bytes() for f in before} == before, "certificates kept"
    assert NODE in (out / "acl").read_text()
    with Generated(out, [port]):
        r = subprocess.run(
            [str(VENV_BIN / "mpremote"), "connect", url, "reset"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0, r.stderr
        cfg = json.loads((home / "config.json").read_text())
        status = f"lanterna/v1/{SITE}/{NODE}/status"
        obs = Observer(
            None,
            [status],
            port=port,
            password=cfg["broker_password"],
            tls={"ca_certs": str(ca)},
        )
        try:
            obs.first(status, b"online", timeout=90)
        finally:
            obs.stop()
        d = lanterna(env, "dim", "40", "--node", NODE, "--json")
        assert d.returncode == 0, d.stdout + d.stderr
        (ack,) = json.loads(d.stdout)
        assert ack["status"] == "ok" and ack["result"]["level"] == 40, ack

        # The controller without the CA does not trust the broker blindly: one line, exit 5.
        cfg.pop("broker_ca")
        (home / "config.json").write_text(json.dumps(cfg))
        d = lanterna(env, "dim", "50", "--node", NODE)
        assert d.returncode == 5 and len(d.stderr.strip().splitlines()) == 1, d.stderr
        assert "broker's CA" in d.stderr and "LANTERNA_BROKER_CA" in d.stderr, d.stderr
        # ... and with another CA it is refused by the TLS handshake, not let through.
        env2 = dict(env, LANTERNA_BROKER_CA=str(out.parent / "other" / "ca.crt"))
        broker_config(env2, out.parent / "other", free_port())
        d = lanterna(env2, "dim", "50", "--node", NODE)
        assert d.returncode == 5 and "certificate verify failed" in d.stderr, d.stderr


def test_mqtts_without_a_ca_or_with_a_key_for_one_writes_nothing(field):
    home, env, port, flash, url, out = field
    p = provision(env, url, "--no-reset")  # LANTERNA_BROKER is mqtts://, no CA known
    assert p.returncode == 4 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "--broker-ca" in p.stderr, p.stderr
    broker_config(env, out, port)
    p = provision(env, url, "--no-reset", "--broker-ca", str(out / "ca.key"))
    assert p.returncode == 4 and "private key" in p.stderr, p.stderr
    assert str(out / "ca.key") in p.stderr
    p = provision(env, url, "--no-reset", "--broker-ca", str(out / "nowhere.crt"))
    assert p.returncode == 4 and "nowhere.crt" in p.stderr, p.stderr
    assert not any(flash.iterdir()), "nothing written"
    assert (
        not (home / "credentials.json").exists()
        or NODE not in (home / "credentials.json").read_text()
    ), "no secret made for a refused node"
