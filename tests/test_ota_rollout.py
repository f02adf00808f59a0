"""Staged rollouts end to end (issue 7): `lanterna ota rollout` against a district of
virtual lamp posts (the real firmware in MicroPython, each booted from its application
slot) and a real mosquitto. Each test runs the fewest nodes its claim needs (a canary, a
wave or two, and nodes that must stay untouched), @pytest.mark.fleet(n): twenty real
nodes per test made this file a third of the suite's time.

- A real bundle goes out as canary + waves: every node reports the new version, on its
  confirmed slot, and keeps its schedule.
- A controller killed with SIGKILL mid-rollout is resumed with `lanterna ota resume`:
  every node is updated exactly once, none is skipped.
- A bundle whose application crashes at start is rolled back by the canary itself
  (boot.py, after three boots) and the rollout halts before any other node hears of it.
- Bundles the nodes must refuse (a downgrade, another board) are refused by the canary,
  nothing is switched, and `ota status` shows each refusal with its LwM2M result; a
  tampered bundle or one signed by another key never reaches a node, and `ota status`
  shows that too.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from observer import Observer

from lanterna.ota import bundle as ob
from lanterna.ota import keys as ota_keys
from lanterna.paths import firmware_dir
from lanterna.sim.district import District, prepare, register
from lanterna.store.db import Store

DEFAULT_NODES = 4
SITE = "greenwich"
PREFIX = f"lanterna/v1/{SITE}/"
LANTERNA = str(Path(sys.executable).parent / "lanterna")  # the console script
HEALTH_S = 2  # the nodes' ota_health_s: a trial is confirmed this long after the broker


def events(obs: Observer, node: str, name: str) -> list[dict]:
    return [e for e in obs.json(PREFIX + node + "/event") if e.get("event") == name]


def last_state(obs: Observer, node: str) -> dict:
    return obs.json(PREFIX + node + "/state")[-1]


class Fleet:
    def __init__(self, tmp: Path, broker, size: int) -> None:
        self.tmp = tmp
        self.broker = broker
        self.home = tmp / "home"
        self.home.mkdir()
        self.pub = ota_keys.keygen(self.home)
        self.key = ota_keys.load_private(self.home / ota_keys.PRIVATE_NAME)
        self.state = tmp / "state"
        self.nodes = prepare(self.state, size, SITE, broker.url)
        creds = json.loads((self.state / "credentials.json").read_text())
        broker.add_users({n.node: creds[n.node]["password"] for n in self.nodes})
        for n in self.nodes:
            cfg = json.loads((n.dir / "config.json").read_text())
            cfg.update(ota_key=self.pub.as_json()["n"], ota_health_s=HEALTH_S)
            (n.dir / "config.json").write_text(json.dumps(cfg))
        with Store(self.home / "lanterna.db") as store:
            register(store, self.state, self.nodes, SITE)
        self.obs = Observer(broker, [PREFIX + "+/event", PREFIX + "+/state"])
        self.district = District(self.nodes, warp=60, board="sim-s3")
        self._stop = threading.Event()
        self._sup = threading.Thread(target=self._supervise, daemon=True)

    def _supervise(self) -> None:
        # As `lanterna sim` does: a node that reset (an update, a rollback) is restarted.
        while not self._stop.wait(0.2):
            self.district.supervise()

    def start(self) -> None:
        self.district.start()
        self._sup.start()
        for n in self.nodes:
            self.obs.wait(lambda _m, n=n: events(self.obs, n.node, "boot"), 60, f"{n.node} boot")
            self.obs.wait(lambda _m, n=n: self.obs.json(PREFIX + n.node + "/state"), 60, "state")

    def stop(self) -> None:
        self._stop.set()
        self._sup.join(5)
        self.district.stop()
        self.obs.stop()

    def env(self) -> dict[str, str]:
        return dict(
            os.environ,
            LANTERNA_HOME=str(self.home),
            LANTERNA_BROKER=self.broker.url,
            LANTERNA_BROKER_PASSWORD=self.broker.users["controller"],
        )

    def lanterna(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [LANTERNA, *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def bundle(self, version: str, src: Path | None = None, **kw) -> Path:
        out = self.tmp / f"b-{version}-{len(list(self.tmp.glob('b-*')))}.ota"
        ob.build(src or firmware_dir(), out, version, self.key, **kw)
        return out

    def status(self) -> dict:
        p = self.lanterna("ota", "status", "--json")
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)


@pytest.fixture
def fleet(request, tmp_path, mosquitto) -> Iterator[Fleet]:
    mark = request.node.get_closest_marker("fleet")
    f = Fleet(tmp_path, mosquitto, mark.args[0] if mark else DEFAULT_NODES)
    try:
        f.start()
        yield f
    finally:
        f.stop()


def updates(f: Fleet, node: str, version: str) -> int:
    """How many times the node switched to `version` (its `ota` state 3 events)."""
    return sum(1 for e in events(f.obs, node, "ota") if e["state"] == 3 and e["version"] == version)


@pytest.mark.fleet(8)  # canary 1, then 25% and the rest: three waves, none empty
def test_a_rollout_in_canary_and_waves_updates_every_node(fleet):
    schedules = {n.node: last_state(fleet.obs, n.node)["schedule"] for n in fleet.nodes}
    b = fleet.bundle("0.2.0")
    p = fleet.lanterna(
        "ota",
        "rollout",
        str(b),
        "--site",
        SITE,
        "--canary",
        "1",
        "--waves",
        "25%,100%",
        "--health-window",
        "1",
        "--timeout",
        "240",
        "--json",
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    out = json.loads(p.stdout)
    assert out["rollout"]["state"] == "done"
    assert {n["state"] for n in out["nodes"]} == {"done"} and len(out["nodes"]) == len(fleet.nodes)
    assert sorted({n["wave"] for n in out["nodes"]}) == [0, 1, 2]
    for n in fleet.nodes:
        fleet.obs.wait(
            lambda _m, n=n: last_state(fleet.obs, n.node).get("fw") == "0.2.0",
            30,
            f"{n.node} on 0.2.0",
        )
        assert last_state(fleet.obs, n.node)["schedule"] == schedules[n.node]
        assert updates(fleet, n.node, "0.2.0") == 1
        ota = json.loads((n.dir / "ota.json").read_text())
        assert (ota["trial"], ota["result"]) == (False, 1), ota
    # The canary went first: its confirmation came before any other node's offer.
    canary = [n["node"] for n in out["nodes"] if n["wave"] == 0]
    assert len(canary) == 1


@pytest.mark.fleet(8)  # a first wave of 4: killed while most of it still downloads
def test_a_controller_killed_mid_rollout_resumes_without_updating_twice(fleet):
    b = fleet.bundle("0.2.0")
    proc = subprocess.Popen(
        [
            LANTERNA,
            "ota",
            "rollout",
            str(b),
            "--site",
            SITE,
            "--waves",
            "50%,100%",
            "--health-window",
            "0",
            "--timeout",
            "240",
        ],
        env=fleet.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # Killed once a node has confirmed and the first wave is still downloading.
        fleet.obs.wait(
            lambda _m: any(updates(fleet, n.node, "0.2.0") for n in fleet.nodes),
            120,
            "a first node switched",
        )
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    mid = fleet.status()
    assert mid["rollout"]["state"] == "running"
    p = fleet.lanterna("ota", "resume", "--json")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    out = json.loads(p.stdout)
    assert out["rollout"]["state"] == "done"
    for n in fleet.nodes:
        fleet.obs.wait(
            lambda _m, n=n: last_state(fleet.obs, n.node).get("fw") == "0.2.0",
            30,
            f"{n.node} on 0.2.0",
        )
        assert updates(fleet, n.node, "0.2.0") == 1, f"{n.node} updated more than once"


def test_a_bundle_that_crashes_is_rolled_back_and_the_rollout_halts(fleet):
    src = fleet.tmp / "crashing"
    shutil.copytree(firmware_dir(), src)
    main = src / "main.py"
    main.write_text('raise RuntimeError("the new app crashes at start")\n' + main.read_text())
    b = fleet.bundle("0.2.0", src)
    p = fleet.lanterna(
        "ota",
        "rollout",
        str(b),
        "--site",
        SITE,
        "--canary",
        "1",
        "--waves",
        "100%",
        "--max-failures",
        "0%",
        "--health-window",
        "0",
        "--timeout",
        "240",
        "--json",
    )
    assert p.returncode == 1, p.stdout[-3000:] + p.stderr[-3000:]
    out = json.loads(p.stdout)
    assert out["rollout"]["state"] == "halted", out["rollout"]
    canary = [n for n in out["nodes"] if n["wave"] == 0]
    assert len(canary) == 1 and canary[0]["state"] == "failed" and canary[0]["result"] == 8
    assert "rolled back" in canary[0]["detail"]
    assert {n["state"] for n in out["nodes"] if n["wave"] > 0} == {"pending"}
    c = canary[0]["node"]
    ota = json.loads((fleet.state / c / "ota.json").read_text())
    assert (ota["slot"], ota["trial"], ota["result"]) == ("a", False, 8)
    fleet.obs.wait(
        lambda _m: last_state(fleet.obs, c).get("fw") == "0.1.0", 30, "the canary on 0.1.0"
    )
    for n in fleet.nodes:
        if n.node != c:
            assert not (n.dir / "ota.json").exists(), f"{n.node} was touched"


@pytest.mark.parametrize(
    ("version", "boards", "result", "needle"),
    [("0.0.9", None, 6, "downgrade"), ("0.2.0", ["esp32-devkitc"], 6, "board")],
    ids=["downgrade", "foreign-board"],
)
def test_bundles_the_nodes_must_refuse(fleet, version, boards, result, needle):
    b = fleet.bundle(version, boards=boards) if boards else fleet.bundle(version)
    p = fleet.lanterna(
        "ota",
        "rollout",
        str(b),
        "--site",
        SITE,
        "--canary",
        "1",
        "--max-failures",
        "0%",
        "--health-window",
        "0",
        "--timeout",
        "120",
        "--json",
    )
    assert p.returncode == 1, p.stdout[-3000:] + p.stderr[-3000:]
    st = fleet.status()
    assert st["rollout"]["state"] == "halted"
    (canary,) = [n for n in st["nodes"] if n["wave"] == 0]
    assert canary["state"] == "refused" and canary["result"] == result, canary
    assert needle in canary["detail"], canary
    for n in fleet.nodes:
        assert not (n.dir / "ota.json").exists(), f"{n.node}: something was switched"
        assert last_state(fleet.obs, n.node)["fw"] == "0.1.0"


@pytest.mark.fleet(2)  # refused by the controller: no node may hear of it
def test_tampered_and_foreign_key_bundles_never_reach_a_node(fleet):
    good = fleet.bundle("0.2.0")
    tampered = fleet.tmp / "tampered.ota"
    data = bytearray(good.read_bytes())
    data[len(data) // 2] ^= 0x01  # a byte of the ROMFS image
    tampered.write_bytes(bytes(data))
    other = fleet.tmp / "other-key"
    other.mkdir()
    ota_keys.keygen(other)
    foreign = fleet.tmp / "foreign.ota"
    ob.build(firmware_dir(), foreign, "0.2.0", ota_keys.load_private(other / ota_keys.PRIVATE_NAME))
    for bad, needle in ((tampered, "sha256 mismatch"), (foreign, "does not verify")):
        p = fleet.lanterna("ota", "rollout", str(bad), "--site", SITE)
        assert p.returncode == 4, p.stderr
        assert needle in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
        st = fleet.status()
        assert st["rollout"]["state"] == "refused" and needle in st["rollout"]["detail"]
        assert st["nodes"] == []
    for n in fleet.nodes:
        assert not (n.dir / "ota.json").exists()
        assert last_state(fleet.obs, n.node)["fw"] == "0.1.0"
