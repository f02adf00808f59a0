"""`lanterna provision` end to end (issue 8): real mpremote writes a node onto a virtual
board (a MicroPython process with a sandbox flash, served as socket://), the board resets
into the node, the node joins a real mosquitto with the credentials provisioning made for
it and answers `lanterna dim`; provisioning again changes nothing; a bad board name and
an unreachable port fail with one line."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import VENV_BIN
from observer import Observer

from lanterna.broker.credentials import Credentials
from lanterna.broker.mosquitto import free_port

NODE = "greenwich-101"
SITE = "greenwich"
LANTERNA = str(VENV_BIN / "lanterna")


def virtual_board(spawn, env: dict[str, str], tmp_path: Path):
    """A virtual sim-s3 board with an empty flash: -> (its flash, its URL, its process)."""
    flash = tmp_path / "flash"
    flash.mkdir()
    cmd = [LANTERNA, "virtual-board", "--listen", "127.0.0.1:0", "--root", str(flash)]
    board = spawn([*cmd, "--board", "sim-s3"], env=env)
    url = board.wait_for("on socket://").split(" on ")[1].split(",")[0]
    return flash, url, board


@pytest.fixture
def rig(tmp_path, spawn, mosquitto):
    home = tmp_path / "home"
    home.mkdir()
    env = dict(
        os.environ,
        LANTERNA_HOME=str(home),
        LANTERNA_BROKER=mosquitto.url,
        LANTERNA_BROKER_PASSWORD=mosquitto.users["controller"],
    )
    flash, url, board = virtual_board(spawn, env, tmp_path)
    return home, env, flash, url, board, mosquitto


def lanterna(env, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LANTERNA, *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def provision(env, url: str, *extra: str) -> subprocess.CompletedProcess:
    return lanterna(
        env, "provision", "--port", url, "--board", "sim-s3", "--node", NODE, "--site", SITE, *extra
    )


def digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in ("energy.json", "lamp.json", "cmdctr")
    }


def test_a_provisioned_board_joins_the_broker_and_answers_dim(rig):
    home, env, flash, url, board, broker = rig
    p = provision(env, url, "--dry-run")
    assert p.returncode == 0, p.stderr
    assert "config.json" in p.stdout and not any(flash.iterdir()), "a dry run writes nothing"
    assert not (home / "credentials.json").exists(), "nor makes a secret"

    p = provision(env, url)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"provisioned {NODE}" in p.stdout
    cfg = json.loads((flash / "config.json").read_text())
    with Credentials(home) as creds:
        password = creds.get(NODE)
    assert password and cfg["mqtt"]["password"] == password and cfg["mqtt"]["user"] == NODE
    for secret in (password, cfg["key"]):
        assert secret not in p.stdout + p.stderr, "a secret was printed"
    # The broker learns the node's new account; the node, reset by provisioning, joins.
    obs = Observer(broker, [f"lanterna/v1/{SITE}/{NODE}/#"])
    try:
        broker.add_users({NODE: password})
        status = f"lanterna/v1/{SITE}/{NODE}/status"
        obs.wait(lambda m: any(t == status and pl == b"online" for t, pl, _ in m), 90, "online")
        d = lanterna(env, "dim", "30", "--node", NODE, "--json")
        assert d.returncode == 0, d.stdout + d.stderr
        (out,) = json.loads(d.stdout)
        assert out["status"] == "ok" and out["result"]["level"] == 30, out
    finally:
        obs.stop()
    # Again: nothing to write, nothing changed on the device.
    before = digests(flash)
    again = provision(env, url, "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["written"] == []
    assert digests(flash) == before


def test_a_bad_board_or_an_unreachable_port_is_one_line(rig):
    home, env, flash, url, board, broker = rig
    bad = lanterna(
        env, "provision", "--port", url, "--board", "esp32-nope", "--node", NODE, "--site", SITE
    )
    assert bad.returncode == 4 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert "esp32-nope" in bad.stderr
    dead = f"socket://127.0.0.1:{free_port()}"
    p = provision(env, dead)
    assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert dead in p.stderr
    assert not any(flash.iterdir())


def test_a_provisioned_node_joins_the_broker_broker_config_made(tmp_path, spawn):
    # The field's order: provision the board, generate the broker's configuration from
    # the store (the node's account and ACL among it), start mosquitto with exactly that,
    # and the node, reset, joins and is commanded with the controller account it made.
    from test_broker_config import running

    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANTERNA_")}
    env.update(LANTERNA_HOME=str(home), LANTERNA_BROKER=f"mqtt://127.0.0.1:{port}")
    flash, url, board = virtual_board(spawn, env, tmp_path)
    p = provision(env, url, "--no-reset")
    assert p.returncode == 0, p.stderr
    out = tmp_path / "broker"
    b = lanterna(
        env, "broker", "config", "--out", str(out), "--bind", "127.0.0.1", "--port", str(port)
    )
    assert b.returncode == 0, b.stderr
    with running(out, [port]):
        r = subprocess.run(
            [str(VENV_BIN / "mpremote"), "connect", url, "reset"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0, r.stderr
        pw = json.loads((home / "config.json").read_text())["broker_password"]
        obs = Observer(
            SimpleNamespace(port=port, users={"controller": pw}), [f"lanterna/v1/{SITE}/#"]
        )
        try:
            status = f"lanterna/v1/{SITE}/{NODE}/status"
            obs.wait(lambda m: any(t == status and pl == b"online" for t, pl, _ in m), 60, "online")
        finally:
            obs.stop()
        d = lanterna(env, "dim", "40", "--node", NODE, "--json")
        assert d.returncode == 0, d.stdout + d.stderr
        assert json.loads(d.stdout)[0]["result"]["level"] == 40


def test_provisioning_for_a_tls_broker_gives_the_node_tls(tmp_path, spawn):
    # `lanterna broker config --tls` makes the fleet's broker mqtts://; provisioning used to
    # refuse that URL (exit 4, "expected mqtt://") and never told the node to use TLS.
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANTERNA_")}
    env.update(LANTERNA_HOME=str(home), LANTERNA_BROKER="mqtts://127.0.0.1:18883")
    # The node verifies a TLS broker against its CA, so the CA goes with it (issue 14;
    # without one provisioning refuses: tests/test_provision_tls.py).
    from lanterna.broker.tls import ensure_ca

    (tmp_path / "ca").mkdir()
    ensure_ca(tmp_path / "ca", False)
    env["LANTERNA_BROKER_CA"] = str(tmp_path / "ca" / "ca.crt")
    flash, url, board = virtual_board(spawn, env, tmp_path)
    p = provision(env, url, "--no-reset")
    assert p.returncode == 0, p.stderr
    mqtt = json.loads((flash / "config.json").read_text())["mqtt"]
    assert (mqtt["host"], mqtt["port"], mqtt.get("tls")) == ("127.0.0.1", 18883, True)
    assert (flash / "ca.der").read_bytes()[:1] == b"\x30", "the CA, as DER"
    # ... and a plain broker's node config says nothing of TLS, as before.
    env["LANTERNA_BROKER"] = "mqtt://127.0.0.1:11883"
    p = provision(env, url, "--no-reset")
    assert p.returncode == 0, p.stderr
    mqtt = json.loads((flash / "config.json").read_text())["mqtt"]
    assert (mqtt["port"], "tls" in mqtt) == (11883, False)
