"""lanterna.fleet.commander reads what an ack says as fields, not as prose: a replay's
counter (``ctr``) moves the controller's own above it once, and a refused update's LwM2M
result (``update_result``) reaches the outcome (docs/commands.md, "The ack")."""

from __future__ import annotations

import time

from lanterna.fleet.commander import Commander, Outcome
from lanterna.store import Store
from lanterna.wire import protocol


def _store(tmp_path) -> Store:
    s = Store(tmp_path / "lanterna.db")
    s.put_site("greenwich", 51.4826, 0.0077, "Europe/London")
    s.put_node("gw-001", "greenwich", "sim", bytes(32))
    return s


def _ack(**fields) -> protocol.Ack:
    body = {"v": 1, "id": "c-1", "node": "gw-001", "ok": False, "detail": "x", **fields}
    return protocol.parse_ack(body)


def test_a_replay_raises_the_counter_above_the_node_s_once(tmp_path):
    with _store(tmp_path) as s:
        c = Commander(s)
        o = Outcome("gw-001", attempts=1)
        assert c._settle(o, _ack(error="replay", ctr=41), time.monotonic()) is False
        assert s.next_ctrs(["gw-001"]) == {"gw-001": 42}  # sent again above the node's
        o.attempts = 2  # the second answer is final whatever it says
        assert c._settle(o, _ack(error="replay", ctr=50), time.monotonic()) is True
        assert (o.status, o.error) == ("error", "replay")


def test_a_replay_without_the_node_s_counter_is_final(tmp_path):
    # "counter store unreadable": nothing to resume above, whatever the detail says.
    with _store(tmp_path) as s:
        o = Outcome("gw-001", attempts=1)
        ack = _ack(error="replay", detail="ctr 5 not above 99")
        assert Commander(s)._settle(o, ack, time.monotonic()) is True
        assert s.next_ctrs(["gw-001"]) == {"gw-001": 1}


def test_a_refused_update_keeps_its_lwm2m_result(tmp_path):
    with _store(tmp_path) as s:
        o = Outcome("gw-001", attempts=1)
        ack = _ack(error="failed", detail="11: slot b is on trial", update_result=11)
        assert Commander(s)._settle(o, ack, time.monotonic()) is True
        assert o.update_result == 11 and o.as_json()["update_result"] == 11
