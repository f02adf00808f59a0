"""`lanterna sim` refuses bad input with one line and writes nothing secret to stdout;
its state (per-node config, credentials) is created once, kept, and private."""

from __future__ import annotations

import json
import stat

import pytest
from click.testing import CliRunner

from lanterna.broker.credentials import Credentials
from lanterna.cli import cli


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """The controller's home (store, credentials) is the test's own."""
    monkeypatch.setenv("LANTERNA_HOME", str(tmp_path / "home"))


def _run(*args: str):
    return CliRunner().invoke(cli, ["sim", *args])


def test_bad_broker_url_and_unknown_site_are_one_line_errors(tmp_path):
    r = _run("--broker", "http://x:1", "--state-dir", str(tmp_path / "s"), "--init-only")
    assert r.exit_code == 4 and "expected mqtt://HOST:PORT" in r.output
    r = _run("--broker", "mqtt://127.0.0.1:1883", "--site", "atlantis", "--init-only")
    assert r.exit_code == 1 and "give --lat, --lon and --tz" in r.output
    assert "Traceback" not in r.output


def test_init_only_writes_private_state_once_and_keeps_its_secrets(tmp_path):
    state = tmp_path / "s"
    args = ("--nodes", "3", "--broker", "mqtt://127.0.0.1:1884", "--site", "baixa")
    r = _run(*args, "--state-dir", str(state), "--init-only", "--coap-base-port", "7000")
    assert r.exit_code == 0, r.output
    creds = json.loads((state / "credentials.json").read_text())
    assert sorted(creds) == ["baixa-001", "baixa-002", "baixa-003"]
    for c in creds.values():
        assert c["password"] not in r.output and c["key"] not in r.output
    cfg = json.loads((state / "baixa-002" / "config.json").read_text())
    assert cfg["mqtt"]["user"] == "baixa-002" and cfg["mqtt"]["port"] == 1884
    assert cfg["coap_port"] == 7002 and cfg["tz"].startswith("WET0WEST")
    assert cfg["key"] == creds["baixa-002"]["key"]
    for p in (state / "credentials.json", state / "baixa-002" / "config.json"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    # a second run keeps every node's secrets (a restarted district keeps its keys)
    assert _run(*args, "--state-dir", str(state), "--init-only").exit_code == 0
    assert json.loads((state / "credentials.json").read_text()) == creds
    # The controller knows their MQTT passwords too (for `lanterna broker config`).
    with Credentials(tmp_path / "home") as known:
        assert {n: known.get(n) for n in creds} == {n: c["password"] for n, c in creds.items()}


def test_sim_input_writes_what_the_node_takes_and_refuses_what_it_would_not(tmp_path):
    (tmp_path / "gw-001").mkdir()
    run = CliRunner().invoke
    r = run(cli, ["sim-input", "gw-001", "lamp_failed=true", "mains=false",
                  "--state-dir", str(tmp_path)])  # fmt: skip
    assert r.exit_code == 0, r.output
    inputs = tmp_path / "gw-001.stop.inputs"
    assert json.loads(inputs.read_text()) == {"lamp_failed": True, "mains": False}
    inputs.unlink()
    for args, what in ((["gw-001", "lamp_faild=true"], "lamp_faild"),
                       (["gw-001", "lux=bright"], "JSON"),
                       (["gw-009", "lux=3"], "no virtual node")):  # fmt: skip
        r = run(cli, ["sim-input", *args, "--state-dir", str(tmp_path)])
        assert r.exit_code == 4 and what in r.output, r.output
        assert not inputs.exists()
