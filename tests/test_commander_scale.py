"""`Commander.send_mqtt` to thousands of nodes against a real mosquitto and an ack-only
responder in its own process (tests/ackresponder.py): every command is acked without a
per-node wait, a node whose first delivery is lost gets the same envelope again (one row
per node in the store, settled ok), a silent node is reported timed out, a client whose
queue refuses publishes loses none of them, and a broker that stops taking them leaves
every command reported and stored (timeout or unsent), none silently pending."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lanterna.context import Broker
from lanterna.fleet.commander import Commander
from lanterna.store import Store

sys.path.insert(0, str(Path(__file__).parent))
from ackresponder import dropped_first, silent  # noqa: E402

RESPONDER = str(Path(__file__).with_name("ackresponder.py"))
WAIT_S = 60.0


def fleet(tmp_path: Path, n: int) -> Store:
    s = Store(tmp_path / "lanterna.db")
    s.put_site("gw", 51.4826, 0.0077, "Europe/London")
    for k in range(n):
        s.put_node(f"gw-{k:05d}", "gw", "sim", bytes([k % 256]) * 32)
    return s


@pytest.fixture
def respond(mosquitto):
    """respond(*options): the ack responder running (ready); stopped at the end, and its
    counts are read from `counts()`."""
    procs: list[subprocess.Popen] = []

    class R:
        def __call__(self, *opts: str) -> subprocess.Popen:
            p = subprocess.Popen(
                [sys.executable, RESPONDER, "--port", str(mosquitto.port), "--password",
                 mosquitto.users["controller"], *opts],
                stdout=subprocess.PIPE,
                text=True,
            )  # fmt: skip
            procs.append(p)
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
            return p

        def counts(self, p: subprocess.Popen) -> dict:
            p.send_signal(signal.SIGTERM)
            out, _ = p.communicate(timeout=WAIT_S)
            return json.loads(out.splitlines()[-1])

    yield R()
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def broker_of(mosquitto) -> Broker:
    return Broker("127.0.0.1", mosquitto.port, "controller", mosquitto.users["controller"])


def stored(s: Store) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in s.db.execute("SELECT node, status FROM commands"):
        out.setdefault(r[0], []).append(r[1])
    return out


def test_two_thousand_nodes_acked_and_a_lost_first_delivery_is_retried(
    tmp_path, mosquitto, respond
):
    n, k = 2000, 10
    s = fleet(tmp_path, n)
    r = respond("--drop-first", str(k))
    nodes = s.nodes()
    seen = []
    c = Commander(s)
    outs = c.send_mqtt(
        broker_of(mosquitto), nodes, "dim", {"level": 30}, timeout=3, retries=2,
        progress=seen.append,
    )  # fmt: skip
    counts = respond.counts(r)
    lossy = {x.id for x in nodes if dropped_first(x.id, k)}
    assert 100 < len(lossy) < 300
    assert {o.status for o in outs} == {"ok"}
    assert len(seen) == n and {o.node for o in seen} == {x.id for x in nodes}
    assert all(o.attempts >= 2 for o in outs if o.node in lossy)
    assert counts["dropped"] == len(lossy)
    # the retry was the same envelope: one row per node, settled ok
    assert stored(s) == {x.id: ["ok"] for x in nodes}
    assert c.stats["published"] >= n + len(lossy)


def test_the_published_payload_is_the_canonical_encoding():
    from lanterna.fleet.fanout import _payload
    from lanterna.wire import protocol

    env = protocol.sign(bytes(32), "gw-00001", "schedule", {"schedule": {"id": "x", "a": [1]}}, 7)
    assert _payload(env) == protocol.encode(env)


def test_a_silent_node_is_reported_and_stored_as_timed_out(tmp_path, mosquitto, respond):
    n, k = 400, 40
    s = fleet(tmp_path, n)
    respond("--silent", str(k))
    outs = Commander(s).send_mqtt(broker_of(mosquitto), s.nodes(), "dim", {"level": 5},
                                  timeout=1, retries=1)  # fmt: skip
    quiet = {o.node for o in outs if silent(o.node, k)}
    assert quiet
    for o in outs:
        if o.node in quiet:
            assert (o.status, o.attempts) == ("timeout", 2), o
        else:
            assert o.status == "ok", o
    rows = stored(s)
    assert all(rows[x] == ["timeout"] for x in quiet)


def test_publishes_the_client_refuses_are_queued_and_sent_later(tmp_path, mosquitto, respond):
    n = 1500
    s = fleet(tmp_path, n)
    respond()
    c = Commander(s)
    # paho keeps at most 50 unacknowledged: it refuses (ERR_QUEUE_SIZE) the rest at first
    outs = c.send_mqtt(broker_of(mosquitto), s.nodes(), "dim", {"level": 70}, timeout=5,
                       client_queue=50)  # fmt: skip
    assert c.stats["refused"] > 0
    assert {o.status for o in outs} == {"ok"} and len(outs) == n


def test_a_broker_that_stops_taking_commands_leaves_none_silently_pending(
    tmp_path, mosquitto, respond
):
    n = 1500
    s = fleet(tmp_path, n)
    respond()
    frozen: list[bool] = []

    def freeze(_o) -> None:
        # after the first answers the broker stops (SIGSTOP): no more PUBACKs, no acks
        if len(frozen) == 0:
            mosquitto.proc.send_signal(signal.SIGSTOP)
            frozen.append(True)

    try:
        outs = Commander(s).send_mqtt(
            broker_of(mosquitto), s.nodes(), "dim", {"level": 1}, timeout=1, retries=0,
            progress=freeze, client_queue=200, stall_s=2,
        )  # fmt: skip
    finally:
        mosquitto.proc.send_signal(signal.SIGCONT)
    by = {}
    for o in outs:
        by.setdefault(o.status, []).append(o)
    assert set(by) <= {"ok", "timeout", "unsent"} and by.get("unsent"), list(by)
    assert all(o.detail for o in by["unsent"])
    rows = stored(s)
    assert len(rows) == n and all(len(v) == 1 and v[0] != "pending" for v in rows.values())
    assert {x: rows[x][0] for x in rows} == {o.node: o.status for o in outs}


def test_sign_refuses_what_encode_refuses_at_the_size_limit():
    # sign() sizes the envelope without encoding it: the same limit, to the byte
    from lanterna.wire import protocol

    for n in range(7900, 8200):
        args = {"pad": "x" * (n - 120)}
        try:
            env = protocol.sign(bytes(32), "gw-00001", "dim", args, 1, id="c-1")
        except ValueError:
            env = None
        env2 = {"v": 1, "id": "c-1", "node": "gw-00001", "ctr": 1, "cmd": "dim", "args": args}
        env2["mac"] = "0" * 64
        fits = len(protocol.canonical(env2)) <= protocol.MAX_BYTES
        assert (env is not None) == fits, n
        if env is not None:
            assert protocol.encode(env)
