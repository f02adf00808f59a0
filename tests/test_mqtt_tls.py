"""Verified TLS between the node and the broker (issue 14, docs/security.md): the node's
network side (lamp.net.link, in the real MicroPython process: tests/firmware/check_tls.py)
against mosquitto started from exactly what `lanterna broker config --tls` generated.

- with the generated CA (ca.der as provisioning writes it) the node joins, verified;
- a broker whose certificate another CA signed is refused: one log line per attempt
  naming the reason, attempts spaced by the backoff and never more often, and once a
  good broker is back, one `broker_untrusted` event (schema `event`) saying so;
- a certificate of the right CA for another host name is refused too.

The backoff runs on the node's asyncio clock (real milliseconds, also at warp), so
"node time" here is the ticks the node prints with each attempt.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner
from observer import Observer

from lanterna.broker.credentials import Credentials
from lanterna.broker.mosquitto import Generated, free_port
from lanterna.cli import cli
from lanterna.device.provision import ca_der
from lanterna.store.db import Store
from lanterna.wire import protocol
from mpharness import firmware_command

CHECK = Path(__file__).parent / "firmware" / "check_tls.py"
NODE, SITE = "gw-001", "greenwich"
EVENTS = f"lanterna/v1/{SITE}/{NODE}/event"
WAIT = 60.0
SCHEMA = json.loads((Path(protocol.__file__).with_name("schemas") / "event.json").read_text())
BACKOFF_MS, BACKOFF_MAX_MS = 1000, 60000  # lamp.net.mqtt's first window and its cap


class Rig:
    """A store with one node, and broker configurations generated from it on one TLS
    port: the node's own broker and others it must refuse."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.home = tmp / "home"
        with Store(self.home / "lanterna.db") as s:
            s.put_site(SITE, 51.4826, 0.0077, "Europe/London")
            s.put_node(NODE, SITE, "sim-s3", bytes(32))
        self.port, self.plain = free_port(), free_port()
        self.good = self.config("good")
        with Credentials(self.home) as creds:
            self.password = creds.get(NODE)
        cfg = json.loads((self.home / "config.json").read_text())
        self.controller = cfg["broker_password"]
        assert cfg["broker_ca"] == str((self.good / "ca.crt").resolve())
        # the node's flash: ca.der as `lanterna provision` writes it
        self.root = tmp / "node"
        self.root.mkdir()
        ca = self.good / "ca.crt"
        (self.root / "ca.der").write_bytes(ca_der(ca.read_bytes(), str(ca)))

    def config(self, name: str, *args: str, ca_of: Path | None = None) -> Path:
        """`lanterna broker config --tls` into tmp/name; `ca_of`: a directory whose CA
        it keeps (a server certificate of that CA, for the names in `args`)."""
        out = self.tmp / name
        if ca_of is not None:
            out.mkdir(mode=0o700)
            for f in ("ca.crt", "ca.key"):
                shutil.copy2(ca_of / f, out / f)
        argv = ["--db", str(self.home / "lanterna.db"), "broker", "config", "--out", str(out)]
        argv += ["--tls", "--tls-port", str(self.port), "--plain-too", "--port", str(self.plain)]
        r = CliRunner().invoke(cli, [*argv, "--bind", "127.0.0.1", *args])
        assert r.exit_code == 0, r.output
        return out

    def broker(self, out: Path) -> Generated:
        return Generated(out, [self.port, self.plain])

    def node(self, spawn):
        env = {
            "TLS_PORT": str(self.port),
            "TLS_NODE": NODE,
            "TLS_USER": NODE,
            "TLS_PASS": self.password,
            "TLS_ROOT": str(self.root),
        }
        argv, penv, cwd = firmware_command(CHECK, "node", extra_env=env)
        return spawn(argv, env=penv, cwd=cwd)

    def observer(self, topics=(EVENTS,), **kw) -> Observer:
        """The controller's account over TLS, verifying the broker with the good CA."""
        tls = {"ca_certs": str(self.good / "ca.crt")}
        return Observer(None, topics, port=self.port, password=self.controller, tls=tls, **kw)


@pytest.fixture
def rig(tmp_path) -> Rig:
    return Rig(tmp_path)


def state(line: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


def wait_state(node, least: dict[str, int] | None = None, **want: int) -> dict[str, int]:
    """The first STATE line whose fields equal `want` and are at least `least`."""
    start = 0
    while True:
        line = node.wait_for("STATE", WAIT, start)
        start = node.lines.index(line, start) + 1
        s = state(line)
        if all(s.get(k) == v for k, v in want.items()) and all(
            s.get(k, -1) >= v for k, v in (least or {}).items()
        ):
            return s


def untrusted(m) -> bool:
    return m.topic == EVENTS and b'"broker_untrusted"' in m.payload


def test_the_node_verifies_the_generated_ca_and_joins(rig, spawn):
    with rig.broker(rig.good):
        status = f"lanterna/v1/{SITE}/{NODE}/status"
        obs = rig.observer([status])
        try:
            node = rig.node(spawn)
            wait_state(node, connected=1, connects=1, failures=0)
            obs.first(status, b"online")
            assert not any(" W mqtt" in ln for ln in node.lines), node.lines
        finally:
            obs.stop()


def test_a_broker_another_ca_signed_is_refused_backed_off_and_reported(rig, spawn):
    foreign = rig.config("foreign")  # a second CA of its own, the same port
    # The controller's session on the good broker, kept while it is down (persistence):
    # the event the node sends once it is back is queued for it whenever it connects.
    with rig.broker(rig.good):
        rig.observer(client_id="tls-witness", clean=False).stop()
    with rig.broker(foreign):
        node = rig.node(spawn)
        s = wait_state(node, least={"untrusted": 4})
        assert s["connects"] == 0
    # One line per refused attempt, naming the reason; no traceback.
    lines = list(node.lines)
    attempts = [i for i, ln in enumerate(lines) if ln.startswith("ATTEMPT ")]
    warns = [ln for ln in lines if " W mqtt: " in ln]
    assert len(attempts) >= 4 and len(attempts) - 1 <= len(warns) <= len(attempts), lines
    for w in warns[: len(attempts) - 1]:
        assert "not correctly signed by the trusted CA" in w, w
    assert not any("Traceback" in ln or " E " in ln for ln in lines), lines
    # No retry storm: every attempt after the first waits out the delay the backoff drew
    # (node time), and each delay lies in its doubling window.
    for n in range(1, len(attempts)):
        gap = int(lines[attempts[n]].split()[1]) - int(lines[attempts[n - 1]].split()[1])
        between = lines[attempts[n - 1] : attempts[n]]
        (delay,) = [int(m) for ln in between for m in re.findall(r"reconnect in (\d+) ms", ln)]
        assert delay <= min(BACKOFF_MAX_MS, BACKOFF_MS << (n - 1)), (n, delay)
        assert gap >= delay, (n, gap, delay)
    # The good broker back: the node joins and says what it refused, once.
    refused = max(state(ln).get("untrusted", 0) for ln in lines if ln.startswith("STATE"))
    with rig.broker(rig.good):
        s = wait_state(node, connected=1)
        obs = rig.observer(client_id="tls-witness", clean=False)
        try:
            msgs = obs.wait(lambda m: [x for x in m if untrusted(x)], WAIT, "broker_untrusted")
        finally:
            obs.stop()
    (ev,) = [json.loads(x.payload) for x in msgs if untrusted(x)]
    jsonschema.validate(ev, SCHEMA)
    assert ev["event"] == "broker_untrusted" and ev["broker"] == f"127.0.0.1:{rig.port}"
    assert ev["refused"] >= refused and "not correctly signed" in ev["reason"], ev
    events = [ln for ln in node.lines if ln.startswith("EVENT ") and "broker_untrusted" in ln]
    assert len(events) == 1, events


def test_a_certificate_of_the_ca_for_another_name_is_refused(rig, spawn):
    # The node's own CA signed it, but for broker.example.invalid: the node dials
    # 127.0.0.1, so the name it checks is not in the certificate.
    other = rig.config("renamed", "--host", "broker.example.invalid", ca_of=rig.good)
    with rig.broker(other):
        node = rig.node(spawn)
        s = wait_state(node, least={"untrusted": 2})
        assert s["connects"] == 0
    warn = node.wait_for(" W mqtt: ")
    assert "CN" in warn and "not correctly signed" not in warn, warn
