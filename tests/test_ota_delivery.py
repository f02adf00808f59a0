"""Delivery of a signed bundle to a node over MQTT (docs/ota.md, "Delivery"), against
real mosquitto: the signed `ota` command offers a bundle, the node pulls it in chunks
from the controller's ChunkServer, installs it, resets into it on trial and confirms it;
a drop is resumed at the byte; a downgrade, a foreign board, another key or a tampered
byte are refused with their LwM2M result while the node keeps running its version."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from observer import Observer

from lanterna.device import firmware as fw
from lanterna.ota import bundle as ota_bundle
from lanterna.ota import keys as ota_keys
from lanterna.ota.server import ChunkServer
from lanterna.paths import ROMBOOT, board_file, tool
from lanterna.sim.district import prepare

ROMBOOT = str(ROMBOOT)
NODE = "greenwich-001"
BASE = f"lanterna/v1/greenwich/{NODE}/"
RUNNING = fw.firmware_version()
_v = [int(x) for x in RUNNING.split(".")]
NEW = f"{_v[0]}.{_v[1] + 1}.0"
WAIT_CHUNKS_S = 4 * 10  # the node's 10 s per try, 1 request and 3 re-requests


def boot(spawn, d: Path):
    """One reset of the node in `d` (as tests/test_ota_slots.py): it boots the slot
    boot.py picks, on the sim-s3 board (a connected node needs more than 110K here)."""
    env = dict(os.environ, MICROPYPATH=".frozen")
    env.pop("LANTERNA_ROMFS", None)
    heap = fw.romfs_heap(2 * 1024 * 1024, d / "slots" / "a" / fw.ROMFS_NAME)
    args = [tool("micropython"), "-X", f"heapsize={heap}", ROMBOOT]
    args += ["--board", str(board_file("sim-s3")), "--config", "config.json"]
    return spawn(args, cwd=d, env=env)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict:
    """One real bundle of the firmware as NEW, and its spoilt variants (packed from the
    same files: one mpy-cross build for all)."""
    tmp = tmp_path_factory.mktemp("ota")
    pub = ota_keys.keygen(tmp / "keys")
    key = ota_keys.load_private(tmp / "keys" / ota_keys.PRIVATE_NAME)
    good = ota_bundle.build(fw.firmware_dir(), tmp / "good.ota", NEW, key)
    data = good.path.read_bytes()
    files = {
        path[len("slot/") :]: body
        for path, body in ota_bundle.members(data)
        if path.startswith("slot/")
    }
    m = good.manifest
    other = ota_keys.keygen(tmp / "other")
    other_key = ota_keys.load_private(tmp / "other" / ota_keys.PRIVATE_NAME)
    other_m = m | {"key_id": other.key_id}
    # one byte of the ROMFS image changed: the manifest (and so the bundle's id) is the same
    romfs_at = len(data) - 1024 - (-len(files[fw.ROMFS_NAME]) % 512) - len(files[fw.ROMFS_NAME])
    tampered = bytearray(data)
    tampered[romfs_at + 5000] ^= 0x01
    return {
        "n": f"{pub.n:0768x}",
        "good": data,
        "downgrade": ota_bundle.pack(m | {"version": "0.0.9"}, key, files),
        "foreign": ota_bundle.pack(m | {"boards": ["esp32-devkitc"]}, key, files),
        "other_key": ota_bundle.pack(other_m, other_key, files),
        "tampered": bytes(tampered),
    }


class Controller(Observer):
    """The controller's side in a few lines: the node's topics (not ota/: the chunks),
    commands signed with the node's key and its counter, the OTA events."""

    def __init__(self, broker, key: bytes) -> None:
        super().__init__(broker, [BASE + "+"])
        self.key = key
        self.ctr = 0

    def leaf(self, leaf: str) -> list[dict]:
        return self.json(BASE + leaf)

    def online(self, since: int = 0) -> None:
        # the retained status of an earlier life is no proof: count fresh ones
        self.first(BASE + "status", b"online", since)

    def offer(self, args: dict) -> dict:
        self.ctr += 1
        env = self.command(BASE + "cmd", self.key, NODE, "ota", args, self.ctr)
        return self.ack(BASE + "ack", env["id"])

    def ota_events(self, since: int = 0) -> list[dict]:
        return [e for e in self.json(BASE + "event", since) if e["event"] == "ota"]

    def wait_ota(self, pred, since: int = 0, timeout: float = 30.0, what: str = "") -> dict:
        self.wait(lambda _m: any(pred(e) for e in self.ota_events(since)), timeout, what)
        return next(e for e in self.ota_events(since) if pred(e))


@pytest.fixture
def rig(tmp_path, mosquitto, bundles):
    """A node with the fleet key, a chunk server and the controller's client; the node is
    not booted yet (rig.boot)."""

    class Rig:
        pass

    r = Rig()
    r.node = prepare(tmp_path / "state", 1, "greenwich", mosquitto.url, ota_key=bundles["n"])[0]
    creds = json.loads((tmp_path / "state/credentials.json").read_text())
    mosquitto.add_users({NODE: creds[NODE]["password"]})
    cfg_path = r.node.dir / "config.json"
    cfg = json.loads(cfg_path.read_text()) | {"ota_health_s": 2}
    cfg_path.write_text(json.dumps(cfg))
    r.server = ChunkServer(mosquitto.url, "controller", mosquitto.users["controller"]).start()
    r.ctl = Controller(mosquitto, bytes.fromhex(creds[NODE]["key"]))
    try:
        yield r
    finally:
        r.ctl.stop()
        r.server.stop()


def args(bundle: bytes, version: str = NEW, **more) -> dict:
    from lanterna.ota.server import bundle_id

    return {"version": version, "bundle": bundle_id(bundle), "size": len(bundle)} | more


def ota_state(d: Path) -> dict:
    return json.loads((d / "ota.json").read_text())


def test_an_offered_bundle_is_downloaded_installed_and_confirmed(spawn, rig, bundles):
    good = bundles["good"]
    rig.server.add(good)
    p = boot(spawn, rig.node.dir)
    rig.ctl.online()
    t0 = time.monotonic()
    ack = rig.ctl.offer(args(good))
    assert ack["ok"] and ack["result"] == {"state": 1, "offset": 0}, ack
    rig.ctl.wait_ota(lambda e: e["state"] == 3, timeout=60, what="state 3")
    took = time.monotonic() - t0
    assert p.p.wait(15) == 3, "a soft reset into the new slot"
    evs = rig.ctl.ota_events()
    states = [e["state"] for e in evs]
    assert states[-2:] == [2, 3] and set(states[:-2]) == {1}, evs
    progress = [e["progress"] for e in evs if e["state"] == 1]
    assert progress[0] == 0 and progress[-1] == 100 and progress == sorted(progress), progress
    assert len(progress) == 11, progress  # at the start and at every 10 %
    assert all(e["result"] == 0 and e["version"] == NEW for e in evs)
    offsets = [o for _n, o in rig.server.requests]
    assert offsets == list(range(0, len(good), 1024)), "each chunk once, in order"
    s = ota_state(rig.node.dir)
    assert (s["slot"], s["prev"], s["trial"]) == ("b", "a", True), s

    mark = rig.ctl.mark()
    p = boot(spawn, rig.node.dir)  # the pole restarts itself
    p.wait_for(f'"fw": "{NEW}"')
    ok = rig.ctl.wait_ota(lambda e: e["result"] == 1, since=mark, what="confirmed")
    assert ok == ok | {"state": 0, "version": NEW}
    boot_ev = [e for e in rig.ctl.leaf("event") if e["event"] == "boot"][-1]
    assert boot_ev["fw"] == NEW and boot_ev["ota"]["trial"] is True, boot_ev
    s = ota_state(rig.node.dir)
    assert (s["slot"], s["trial"], s["result"]) == ("b", False, 1), s
    print(f"bundle {len(good)} bytes: offer to state 3 in {took:.1f} s")

    # The controller restarts and offers it again: done already, nothing is fetched.
    asked = len(rig.server.requests)
    ack = rig.ctl.offer(args(good))
    assert ack["ok"] and ack["result"] == {"state": 0, "result": 1, "version": NEW}, ack
    time.sleep(1)
    assert len(rig.server.requests) == asked and p.p.poll() is None


def test_a_dropped_download_resumes_at_the_byte(spawn, rig, bundles):
    good = bundles["good"]
    rig.server.add(good)
    p = boot(spawn, rig.node.dir)
    rig.ctl.online()
    ack = rig.ctl.offer(args(good, chunk=2048))
    assert ack["ok"] and ack["result"]["offset"] == 0, ack
    deadline = time.monotonic() + 30
    while len(rig.server.requests) < 20 and time.monotonic() < deadline:
        time.sleep(0.005)
    rig.server.paused = True  # the controller's link is gone; the node asks in vain
    again = rig.ctl.offer(args(good, chunk=2048))  # while downloading: no second task
    assert again["ok"] and again["result"]["state"] == 1 and again["result"]["offset"] > 0
    lost = rig.ctl.wait_ota(lambda e: e["result"] == 4, timeout=WAIT_CHUNKS_S + 15, what="4")
    at = lost["detail"].rsplit(" ", 1)[1]
    assert lost["state"] == 0 and lost["detail"] == f"connection lost at offset {at}", lost
    stuck = rig.server.requests[-4:]
    assert [o for _n, o in stuck] == [int(at)] * 4, "one request and 3 re-requests"
    assert p.p.poll() is None, "the node runs on"

    rig.server.paused = False
    n = len(rig.server.requests)
    ack = rig.ctl.offer(args(good, chunk=2048))
    assert ack["ok"] and ack["result"] == {"state": 1, "offset": int(at)}, ack
    rig.ctl.wait_ota(lambda e: e["state"] == 3, timeout=60, what="state 3")
    assert p.p.wait(15) == 3
    resumed = [o for _n, o in rig.server.requests[n:]]
    assert resumed[0] == int(at) > 0, resumed
    assert resumed == list(range(int(at), len(good), 2048))
    s = ota_state(rig.node.dir)
    assert (s["slot"], s["trial"]) == ("b", True), s


@pytest.mark.parametrize(
    "which,result,why",
    [
        ("downgrade", 6, f"0.0.9, running {RUNNING}: downgrade"),
        ("foreign", 6, "not for board sim-s3"),
        ("other_key", 6, "signed by key"),
        ("tampered", 5, "slot/lanterna.romfs: sha256 mismatch"),
    ],
)
def test_a_refused_bundle_changes_nothing(spawn, rig, bundles, which, result, why):
    # Offered as NEW: what the manifest says is found out by the node, not taken on trust.
    bundle = bundles[which]
    rig.server.add(bundle)
    p = boot(spawn, rig.node.dir)
    rig.ctl.online()
    ack = rig.ctl.offer(args(bundle))
    assert ack["ok"] and ack["result"]["state"] == 1, ack
    ev = rig.ctl.wait_ota(lambda e: e["state"] == 0, what="refusal")
    assert ev["result"] == result and why in ev["detail"], ev
    time.sleep(1)
    assert p.p.poll() is None, "no reset: the node runs its version"
    assert not (rig.node.dir / "ota.json").exists()
    assert not (rig.node.dir / "slots/b/manifest.json").exists()
    assert not (rig.node.dir / "slots/b/.ota-manifest").exists()
    assert rig.ctl.leaf("state")[-1]["fw"] == RUNNING


def test_refusals_known_at_the_offer_are_in_the_ack(spawn, rig, bundles):
    good = bundles["good"]
    rig.server.add(good)
    p = boot(spawn, rig.node.dir)
    rig.ctl.online()
    down = rig.ctl.offer(args(good, "0.0.9"))
    assert (down["ok"], down["error"]) == (False, "failed"), down
    assert down["detail"] == f"6: version 0.0.9, running {RUNNING}: downgrade"
    same = rig.ctl.offer(args(good, RUNNING))
    assert same["ok"] and same["result"] == {"state": 0, "result": 1, "version": RUNNING}
    for bad in ({"size": 0}, {"chunk": 100}, {"bundle": "AB" * 32}, {"version": "1.02.0"}):
        ack = rig.ctl.offer(args(good) | bad)
        assert (ack["ok"], ack["error"]) == (False, "bad_args"), (bad, ack)
    ack = rig.ctl.offer({"version": NEW, "size": 1})
    assert ack["error"] == "bad_args" and ack["detail"] == "ota: bundle: missing", ack
    assert rig.server.requests == [] and p.p.poll() is None


def test_an_offer_while_on_trial_is_deferred(spawn, rig, bundles):
    d = rig.node.dir
    shutil.copytree(d / "slots/a", d / "slots/b")
    trial = {"slot": "b", "prev": "a", "trial": True, "boots": 0, "result": 0, "detail": ""}
    (d / "ota.json").write_text(json.dumps(trial))
    cfg = json.loads((d / "config.json").read_text()) | {"ota_health_s": 3600}
    (d / "config.json").write_text(json.dumps(cfg))
    rig.server.add(bundles["good"])
    boot(spawn, d)
    rig.ctl.online()
    ack = rig.ctl.offer(args(bundles["good"]))
    assert (ack["ok"], ack["error"]) == (False, "failed"), ack
    assert ack["detail"] == "11: slot b is on trial: confirm it first"
    assert rig.server.requests == []


def test_a_node_without_the_fleet_key_refuses_every_offer(spawn, rig, bundles):
    cfg_path = rig.node.dir / "config.json"
    cfg = json.loads(cfg_path.read_text())
    del cfg["ota_key"]
    cfg_path.write_text(json.dumps(cfg))
    boot(spawn, rig.node.dir)
    rig.ctl.online()
    ack = rig.ctl.offer(args(bundles["good"]))
    assert (ack["ok"], ack["detail"]) == (False, "6: no ota_key on this node"), ack


def test_a_malformed_ota_key_stops_the_boot_naming_the_key(spawn, rig):
    cfg_path = rig.node.dir / "config.json"
    cfg = json.loads(cfg_path.read_text()) | {"ota_key": "ab" * 10}
    cfg_path.write_text(json.dumps(cfg))
    p = boot(spawn, rig.node.dir)
    assert "config: ota_key: expected 768 lowercase hex digits" in p.wait_for("ota_key")
    assert p.p.wait(10) == 1


def test_an_offer_that_misnames_its_bundle_is_refused(spawn, rig, bundles):
    # The offer's version and size are the controller's word; the signed manifest decides.
    good = bundles["good"]
    rig.server.add(good)
    p = boot(spawn, rig.node.dir)
    rig.ctl.online()
    mark = rig.ctl.mark()
    assert rig.ctl.offer(args(good, "9.0.0"))["ok"]
    ev = rig.ctl.wait_ota(lambda e: e["state"] == 0, since=mark, what="refusal")
    assert (ev["result"], ev["detail"]) == (6, f"offered as 9.0.0, the bundle is {NEW}"), ev
    mark = rig.ctl.mark()
    assert rig.ctl.offer(args(good) | {"size": len(good) + 512})["ok"]
    ev = rig.ctl.wait_ota(lambda e: e["state"] == 0, since=mark, what="refusal")
    want = f"size {len(good) + 512} offered, the bundle is {len(good)}"
    assert (ev["result"], ev["detail"]) == (5, want), ev
    assert p.p.poll() is None and not (rig.node.dir / "slots/b/.ota-manifest").exists()
