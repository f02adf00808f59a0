"""The fleet controller end to end: real mosquitto, `lanterna sim` (real firmware in
MicroPython processes), `lanterna serve`, and the CLI commanding the district."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import free_udp_ports
from observer import Observer

from lanterna.store import Store

LANTERNA = [str(Path(sys.executable).with_name("lanterna"))]
PWM = "pwm duty "


def cie_duty(level: int, bits: int = 16) -> int:
    """The duty the CIE 1931 curve gives `level` % lightness (independent of lamp.dimmer)."""
    lstar = float(level)
    y = ((lstar + 16) / 116) ** 3 if lstar > 8 else lstar / 903.3
    return round(y * ((1 << bits) - 1))


class Fleet:
    """Broker + serve + sims, started and stopped by the test."""

    def __init__(self, tmp: Path, broker) -> None:
        self.tmp = tmp
        self.broker = broker
        self.env = dict(
            os.environ,
            LANTERNA_HOME=str(tmp / "home"),
            LANTERNA_BROKER=broker.url,
            LANTERNA_BROKER_PASSWORD=broker.users["controller"],
            LANTERNA_PWM_TRACE="1",
        )
        self.procs: list[subprocess.Popen] = []
        self.state = tmp / "sim-state"

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*LANTERNA, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def spawn(self, *args: str) -> subprocess.Popen:
        log = open(self.tmp / f"proc-{len(self.procs)}.log", "w")  # noqa: SIM115
        p = subprocess.Popen([*LANTERNA, *args], env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def sims(self, sites: list[tuple[str, int]], tele_s: int = 10, warp: int = 1) -> None:
        """The documented flow: every site's nodes prepared and registered (--init-only),
        their credentials loaded into the broker's password file, then the sims run."""
        runs = []
        for site, n in sites:
            args = ["sim", "--nodes", str(n), "--site", site, "--state-dir", str(self.state)]
            args += ["--coap-base-port", str(free_udp_ports(n) - 1), "--tele-s", str(tele_s)]
            r = self.cli(*args, "--init-only")
            assert r.returncode == 0, r.stderr
            runs.append(args)
        creds = json.loads((self.state / "credentials.json").read_text())
        self.broker.add_users({node: c["password"] for node, c in creds.items()})
        for args in runs:
            self.spawn(*args, "--time-warp", str(warp))

    def store(self) -> Store:
        return Store(self.tmp / "home" / "lanterna.db")

    def wait(self, pred, timeout: float, what: str):  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.store() as s:
                got = pred(s)
            if got:
                return got
            time.sleep(0.2)  # polling the store for a condition, bounded by the deadline
        raise AssertionError(f"timed out waiting for {what}")

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture
def fleet(tmp_path, mosquitto):
    f = Fleet(tmp_path, mosquitto)
    try:
        yield f
    finally:
        f.stop()


def online(s: Store, site: str | None = None) -> list[dict]:
    return [r for r in s.status(s.nodes(site=site)) if r["online"]]


def test_dim_a_site_acks_every_node_and_only_that_site_changes(fleet):
    fleet.sims([("greenwich", 20), ("baixa", 3)])
    fleet.spawn("serve", "--report-s", "60")
    fleet.wait(lambda s: len(online(s)) == 23, 120, "23 nodes online")

    r = fleet.cli("dim", "30", "--site", "greenwich", "--json", "--timeout", "20")
    assert r.returncode == 0, r.stdout + r.stderr
    outs = json.loads(r.stdout)
    assert sorted(o["node"] for o in outs) == [f"greenwich-{i:03d}" for i in range(1, 21)]
    assert all(o["status"] == "ok" for o in outs), outs
    assert all(o["result"].get("level") == 30 for o in outs), outs

    def levels(s: Store) -> dict[str, int] | None:
        st = {r["node"]: r["level"] for r in s.status(s.nodes())}
        return st if all(v == 30 for k, v in st.items() if k.startswith("greenwich")) else None

    fleet.wait(levels, 60, "the state of every greenwich node at 30")
    r = fleet.cli("status", "--json")
    assert r.returncode == 0, r.stderr
    status = {x["node"]: x for x in json.loads(r.stdout)}
    at30 = sorted(n for n, x in status.items() if x["level"] == 30)
    assert at30 == [f"greenwich-{i:03d}" for i in range(1, 21)]
    assert all(status[f"baixa-{i:03d}"]["mode"] != "override" for i in (1, 2, 3))

    # The sim's PWM output: what each node's driver was last given.
    def last_duty(node: str) -> int:
        lines = (fleet.state / node / "node.log").read_text().splitlines()
        return int([ln for ln in lines if ln.startswith(PWM)][-1][len(PWM) :])

    want = cie_duty(30)
    for i in range(1, 21):
        d = last_duty(f"greenwich-{i:03d}")
        assert abs(d - want) <= want // 100 + 2, (i, d, want)
    for i in (1, 2, 3):
        assert abs(last_duty(f"baixa-{i:03d}") - want) > want // 10

    # The store recorded every command with its answer, and the counters moved on.
    with fleet.store() as s:
        cmds = [c for c in s.commands(limit=100) if c["cmd"] == "dim"]
        assert len(cmds) == 20 and all(c["status"] == "ok" for c in cmds)

    # Unknown names and bad input: one line, a distinct status, no traceback.
    r = fleet.cli("dim", "30", "--node", "nowhere-001")
    assert r.returncode == 3 and "unknown node" in r.stderr and "Traceback" not in r.stderr
    r = fleet.cli("dim", "130", "--site", "greenwich")
    assert r.returncode == 4 and "outside 0-100" in r.stderr


def test_the_store_holds_every_telemetry_message_across_a_broker_restart(fleet, mosquitto):
    fleet.sims([("greenwich", 5)], tele_s=10, warp=10)
    # An independent witness with its own durable session: what the broker delivered.
    w = Observer(mosquitto, ["lanterna/v1/+/+/tele"], client_id="witness", clean=False)

    def witnessed() -> dict[str, int]:
        seen: dict[str, int] = {}
        for m in list(w.msgs):
            node = m.topic.split("/")[-2]
            seen[node] = seen.get(node, 0) + 1
        return seen

    try:
        fleet.spawn("serve", "--report-s", "60")
        fleet.wait(lambda s: len(online(s)) == 5, 120, "5 nodes online")
        fleet.wait(lambda s: s.telemetry_count() >= 15, 60, "telemetry flowing")

        def retries() -> int:
            return sum(
                (fleet.state / f"greenwich-{i:03d}" / "node.log").read_text().count("reconnect in")
                for i in range(1, 6)
            )

        before = retries()
        mosquitto.stop()
        # The outage lasts until every node has failed to reconnect twice (a few
        # telemetry periods at warp 10, kept in the nodes' outboxes).
        deadline = time.monotonic() + 60
        while retries() < before + 10 and time.monotonic() < deadline:
            time.sleep(0.2)  # polling the node logs for the condition, bounded
        assert retries() >= before + 10, "the nodes did not notice the outage"
        mosquitto.start()
        fleet.wait(
            lambda s: all(r["online"] for r in s.status(s.nodes())) and s.telemetry_count() > 40,
            120,
            "nodes back and telemetry after the restart",
        )
        # Stop the nodes, then everything in flight settles before counting.
        fleet.procs[0].send_signal(signal.SIGTERM)
        fleet.procs[0].wait(30)
        total_seen = sum(witnessed().values())
        fleet.wait(lambda s: s.telemetry_count() >= total_seen, 30, "the store to catch up")
    finally:
        w.stop()
    seen = witnessed()
    with fleet.store() as s:
        for node in seen:
            rows = s.energy_series(node, 0, 2**40)
            # Nothing lost on the way: consecutive telemetry is one period apart.
            gaps = [b[0] - a[0] for a, b in zip(rows, rows[1:], strict=False)]
            assert all(g <= 10 + 2 for g in gaps), (node, gaps)
            assert s.telemetry_count(node) == seen[node], (
                node,
                s.telemetry_count(node),
                seen[node],
            )


def test_coap_commands_replay_recovery_schedule_push_and_errors(fleet, tmp_path):
    fleet.sims([("greenwich", 2)])
    fleet.spawn("serve", "--report-s", "60")
    fleet.wait(lambda s: len(online(s)) == 2, 120, "2 nodes online")

    # Straight to the node's CoAP server: the same signed command, the same answer.
    r = fleet.cli("dim", "55", "--node", "greenwich-001", "--via", "coap", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    (out,) = json.loads(r.stdout)
    assert out["status"] == "ok" and out["result"]["level"] == 55

    # A store whose counters went back (restored from an old backup): the node refuses
    # the first try as a replay, the controller moves past the node's counter, resends.
    for level in (40, 41):
        assert fleet.cli("dim", str(level), "--node", "greenwich-002").returncode == 0
    with fleet.store() as s:
        s.db.execute("UPDATE nodes SET ctr=0 WHERE id='greenwich-002'")
    r = fleet.cli("dim", "45", "--node", "greenwich-002", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    (out,) = json.loads(r.stdout)
    assert out["status"] == "ok" and out["attempts"] == 2, out

    # A schedule: pushed to the site, versioned in the store.
    sched = Path(__file__).resolve().parents[1] / "docs/examples/schedule-night-saver.json"
    r = fleet.cli("schedule", "push", str(sched), "--site", "greenwich", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert {o["result"]["schedule"] for o in json.loads(r.stdout)} == {"night-saver-2026"}
    with fleet.store() as s:
        (row,) = s.db.execute("SELECT name, version FROM schedules").fetchall()
        assert tuple(row) == ("night-saver-2026", 1)
        assert s.db.execute("SELECT COUNT(*) FROM schedule_pushes").fetchone()[0] == 2

    # identify answers; reboot answers, and the virtual node comes back by itself (as an
    # ESP32 after machine.reset()) and says why it booted.
    r = fleet.cli("identify", "--node", "greenwich-001", "--seconds", "2", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)[0]["result"] == {"seconds": 2}

    def boots(s: Store) -> list[str]:
        return [
            json.loads(e["payload"]).get("reset_cause")
            for e in s.events(node="greenwich-002")
            if e["event"] == "boot"
        ]

    r = fleet.cli("reboot", "--node", "greenwich-002", "--delay", "0", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)[0]["status"] == "ok", r.stdout
    fleet.wait(lambda s: "soft" in boots(s), 60, "greenwich-002 to boot again after reboot")
    fleet.wait(lambda s: len(online(s)) == 2, 60, "greenwich-002 online again")

    # Bad input and an unreachable broker: one line each, distinct statuses.
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 1, "profiles": {}}')
    r = fleet.cli("schedule", "push", str(bad), "--site", "greenwich")
    assert r.returncode == 4 and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = fleet.cli("identify", "--node", "greenwich-001", "--via", "coap")
    assert r.returncode == 1 and "not a CoAP resource" in r.stderr
    from lanterna.broker.mosquitto import free_port

    r = fleet.cli("--broker", f"mqtt://127.0.0.1:{free_port()}", "dim", "5", "--site", "greenwich")
    assert r.returncode == 5 and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
