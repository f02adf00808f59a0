"""`lanterna doctor --port` (issue 14): the commissioning check, through real mpremote,
against a virtual board provisioned as test_provision does, whose node has joined a
real mosquitto. Every check passes and the node runs again afterwards; with the broker
stopped the check fails, names the broker and exits 5."""

from __future__ import annotations

import json

from observer import Observer
from test_provision import NODE, SITE, lanterna, provision, rig  # noqa: F401 -- the fixture

from lanterna.broker.credentials import Credentials

CHECKS = [
    "micropython",
    "firmware",
    "slot",
    "heap",
    "flash",
    "clock",
    "network",
    "broker",
    "reset cause",
    "lamp",
]


def _online(obs: Observer, after: int = 0) -> None:
    status = f"lanterna/v1/{SITE}/{NODE}/status"
    obs.wait(lambda m: sum(t == status and pl == b"online" for t, pl, _ in m) > after, 90, "online")


def test_doctor_passes_on_a_commissioned_board_and_names_a_stopped_broker(rig):  # noqa: F811
    home, env, flash, url, board, broker = rig
    p = provision(env, url, "--lan")  # the node brings its link up (the sim's network model)
    assert p.returncode == 0, p.stdout + p.stderr
    with Credentials(home) as creds:
        password = creds.get(NODE)
    obs = Observer(broker, [f"lanterna/v1/{SITE}/{NODE}/#"])
    try:
        broker.add_users({NODE: password})
        _online(obs)
        d = lanterna(env, "doctor", "--port", url, "--json")
        assert d.returncode == 0, d.stdout + d.stderr
        out = json.loads(d.stdout)
        assert [c["name"] for c in out["checks"]] == CHECKS
        assert out["ok"] and all(c["ok"] for c in out["checks"]), out["checks"]
        facts = out["facts"]
        assert facts["node"] == NODE and facts["node_ran"] is True, json.dumps(facts)
        # The stopped node's own state, not a fresh interpreter's (mpremote resume).
        assert facts["clock_source"] and facts["mode"] != "not running", json.dumps(facts)
        assert facts["reset_cause"] != "soft" and 0 <= facts["level"] <= 100, json.dumps(facts)
        assert facts["firmware"] and facts["heap_free"] >= facts["heap_largest"] > 0
        assert facts["broker_ok"] is True and facts["clock_valid"] is True
        assert facts["network"]["kind"] == "lan" and facts["network"]["up"] is True, facts
        assert facts["network"]["status"] == "got_ip", facts
        assert password not in d.stdout + d.stderr, "a secret was printed"
        # The board was reset after the check: the node comes back to the broker.
        _online(obs, after=1)

        t = lanterna(env, "doctor", "--port", url)  # the table
        assert t.returncode == 0, t.stdout + t.stderr
        for name in CHECKS:
            assert name in t.stdout
        _online(obs, after=2)
    finally:
        obs.stop()
    broker.stop()
    d = lanterna(env, "doctor", "--port", url, "--no-reset")
    assert d.returncode == 5, d.stdout + d.stderr
    line = [ln for ln in d.stderr.splitlines() if ln.startswith("error:")]
    assert line and "broker" in line[0] and "not reachable" in line[0], d.stderr
    assert "FAIL" in d.stdout
    print(t.stdout)  # the table, for the record (pytest -s)
