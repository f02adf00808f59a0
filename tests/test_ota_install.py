"""The node installs signed bundles (lamp.ota.install, issue 7): refusals, the switch, power cuts.

CPython builds real bundles with `lanterna.ota.bundle` and a throwaway fleet key
(`lanterna.ota.keys.keygen`); tests/firmware/check_ota.py installs them inside MicroPython
under the pole's heap budget, in random chunk sizes. Every refusal must carry its LwM2M
Update Result code and a detail naming the member or field, switch nothing, leave the
running slot's files as they were and no partial file behind.

The power-cut test kills (SIGKILL) the installing MicroPython process at random points,
restarts it (it resumes from `Install(...).offset`), and checks after every kill that the
node would boot a complete, verified slot. bench/bench_ota_powercut.py runs 1,000 of the
same trials through `powercut_trial` below.
"""

from __future__ import annotations

import hashlib
import json
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

import mpharness
from lanterna.ota import bundle as ob
from lanterna.ota.keys import keygen, load_private

CHECK = Path(__file__).parent / "firmware" / "check_ota.py"
REPO = Path(__file__).resolve().parents[1]
OLD = "1.0.0"
CREATED = "2026-11-25T17:20:28Z"
NO_FLASH, INTEGRITY, UNSUPPORTED, DEFERRED = 2, 5, 6, 11


# -- bundles -------------------------------------------------------------------------------


def kid(key) -> str:
    return ob.key_id(key.public_key().public_numbers().n)


def manifest(key_id: str, files: dict[str, bytes], version: str, **over) -> dict:
    m = {
        "format": ob.FORMAT,
        "version": version,
        "min_version": None,
        "boards": ["esp32-devkitc", "sim"],
        "created": CREATED,
        "alg": ob.ALG,
        "key_id": key_id,
        "files": [
            {"path": p, "size": len(files[p]), "sha256": hashlib.sha256(files[p]).hexdigest()}
            for p in ob.PAYLOAD
        ],
        "size": sum(len(b) for b in files.values()),
    }
    m.update(over)
    return m


def payload(seed: int, romfs: int = 6000) -> dict[str, bytes]:
    rng = random.Random(seed)
    return {
        "main.py": b"# lanterna test app %d\nimport lamp.start\n" % seed,
        "lanterna.romfs": rng.randbytes(romfs),
    }


def small_bundle(key, version: str, seed: int = 1, romfs: int = 6000, **over) -> bytes:
    files = payload(seed, romfs)
    return ob.pack(manifest(kid(key), files, version, **over), key, files)


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("keys")
    keygen(d / "fleet", False)
    keygen(d / "other", False)
    fleet = load_private(d / "fleet" / ob.PRIVATE_NAME)
    n = fleet.public_key().public_numbers().n.to_bytes(ob.SIG_BYTES, "big")
    (d / "fleet.hex").write_text(n.hex())
    return {"fleet": fleet, "other": load_private(d / "other" / ob.PRIVATE_NAME),
            "n_file": d / "fleet.hex"}  # fmt: skip


# -- the node's flash, seen from outside ------------------------------------------------------


def install_slot(root: Path, slot: str, version: str, seed: int) -> None:
    """A complete slot, as a finished install leaves it (what boot.py may start)."""
    d = root / "slots" / slot
    d.mkdir(parents=True, exist_ok=True)
    files = payload(seed, 3000)
    for p, b in files.items():
        (d / p).write_bytes(b)
    m = manifest("0" * 16, files, version)
    (d / "manifest.json").write_bytes(ob.manifest_bytes(m))


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def slot_files(root: Path, slot: str) -> dict[str, bytes]:
    return {p: b for p, b in snapshot(root).items() if p.startswith(f"slots/{slot}/")}


def boot_state(root: Path) -> dict:
    p = root / "ota.json"
    st = {"slot": "a", "prev": None, "trial": False, "boots": 0, "result": 0, "detail": ""}
    if p.exists():
        st.update(json.loads(p.read_text()))  # must always parse: replaced whole only
    return st


def complete_version(root: Path, slot: str) -> str:
    """The slot's version if it is complete (manifest.json, every file's size and sha256)."""
    d = root / "slots" / slot
    m = json.loads((d / "manifest.json").read_bytes())
    for f in m["files"]:
        data = (d / f["path"]).read_bytes()
        assert len(data) == f["size"], f"{slot}/{f['path']}: {len(data)} bytes"
        assert hashlib.sha256(data).hexdigest() == f["sha256"], f"{slot}/{f['path']}: sha256"
    return m["version"]


def bootable(root: Path) -> tuple[str, str]:
    """-> (slot, version) boot.py would start; fails unless that slot is complete, and,
    on trial, the slot it would revert to is complete too."""
    st = boot_state(root)
    v = complete_version(root, st["slot"])
    if st["trial"]:
        complete_version(root, st["prev"])
    return st["slot"], v


def node_root(tmp: Path, name: str) -> Path:
    root = tmp / name
    install_slot(root, "a", OLD, 100)
    return root


# -- refusals and the good case ---------------------------------------------------------------


def run_cases(tmp_path: Path, keys: dict, cases: list[dict]) -> dict[str, dict]:
    path = tmp_path / "cases.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in cases))
    proc = mpharness.run_firmware(
        CHECK, "check_cases", extra_env={"OTA_CASES": str(path), "OTA_KEY": str(keys["n_file"])}
    )
    if proc.returncode != 0 or "MPRUNNER-PASS" not in proc.stdout:
        raise mpharness.FirmwareTestError(proc.stdout + proc.stderr)
    out = [json.loads(line[4:]) for line in proc.stdout.splitlines() if line.startswith("OTA ")]
    assert [o["what"] for o in out] == [c["what"] for c in cases], proc.stdout
    return {o["what"]: o for o in out}


def tamper(data: bytes, member: str, at: int = 0) -> bytes:
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        pos = t.getmember(member).offset_data + at
    b = bytearray(data)
    b[pos] ^= 0x01
    return bytes(b)


def refusals(keys: dict) -> list[tuple[str, bytes, int, str, dict]]:
    """(what, bundle, result, a substring of the detail, case extras); extras["late"]: the
    refusal comes after the manifest was accepted, when the inactive slot began to change."""
    k = keys["fleet"]
    good = small_bundle(k, "1.1.0")
    one_block = small_bundle(k, "1.1.0", romfs=100)
    extra = bytearray(good[:-1024])
    extra += ob._ustar("slot/evil.py", b"print(1)", 0) + bytes(1024)
    bad_header = bytearray(good)
    bad_header[0] ^= 0x02  # first byte of member 1's name: checksum no longer matches
    files = payload(7)
    m = manifest(kid(k), files, "1.1.0")
    n = m["files"][0]["size"]
    m["files"][0]["size"] += 1
    m["size"] += 1
    late = {"late": True}
    return [
        ("tampered manifest", tamper(good, "manifest.json", 30), INTEGRITY, "manifest.sig: signature does not verify", {}),  # noqa: E501
        ("tampered signature", tamper(good, "manifest.sig", 100), INTEGRITY, "manifest.sig", {}),
        ("tampered main.py", tamper(good, "slot/main.py", 3), INTEGRITY, "slot/main.py: sha256 mismatch", late),  # noqa: E501
        ("tampered romfs", tamper(good, "slot/lanterna.romfs", 5999), INTEGRITY, "slot/lanterna.romfs: sha256 mismatch", late),  # noqa: E501
        ("wrong key", small_bundle(keys["other"], "1.1.0"), UNSUPPORTED, "signed by key", {}),
        ("downgrade", small_bundle(k, "0.9.9"), UNSUPPORTED, "downgrade", {}),
        ("same version", small_bundle(k, OLD), UNSUPPORTED, "version 1.0.0, running 1.0.0: downgrade", {}),  # noqa: E501
        ("below min_version", small_bundle(k, "1.1.0", min_version="1.0.1"), UNSUPPORTED, "needs 1.0.1 or later, running 1.0.0", {}),  # noqa: E501
        ("foreign board", small_bundle(k, "1.1.0", boards=["esp32-s3-devkitc-1"]), UNSUPPORTED, "not for board sim", {}),  # noqa: E501
        ("other format", small_bundle(k, "1.1.0", format="lanterna-ota/2"), UNSUPPORTED, "manifest.json: format", {}),  # noqa: E501
        ("not enough flash", good, NO_FLASH, "flash: 28672 bytes needed, 16384 free", {"free": [4096, 1]}),  # noqa: E501
        ("garbage", random.Random(3).randbytes(3000), UNSUPPORTED, "not a bundle: member 1 has no ustar header", {}),  # noqa: E501
        ("empty", b"", INTEGRITY, "truncated: member 1 (manifest.json) is missing", {}),
        ("bad header checksum", bytes(bad_header), UNSUPPORTED, "header checksum does not match", {}),  # noqa: E501
        ("truncated in romfs", good[: len(good) - 3000], INTEGRITY, "truncated: slot/lanterna.romfs needs", late),  # noqa: E501
        ("no end-of-archive", good[:-1024], INTEGRITY, "truncated: no end-of-archive marker", late),  # noqa: E501
        ("end marker cut short", good[:-100], INTEGRITY, "truncated: the end-of-archive marker is cut short", late),  # noqa: E501
        ("data after the end", one_block + b"\x00" * 10 + b"x", UNSUPPORTED, "data after the end-of-archive marker", late),  # noqa: E501
        ("extra member", bytes(extra), UNSUPPORTED, "extra member 5 'slot/evil.py'", late),
        ("member size differs from manifest", ob.pack(m, k, files), INTEGRITY, f"slot/main.py: {n} bytes, the manifest says {n + 1}", late),  # noqa: E501
    ]  # fmt: skip


def test_refused_bundles_switch_nothing_and_leave_nothing(tmp_path, keys):
    cases, before = [], {}
    table = refusals(keys)
    for i, (what, data, _, _, extra) in enumerate(table):
        root = node_root(tmp_path, f"n{i}")
        install_slot(root, "b", "0.9.0", 200)  # a previous version in the inactive slot
        (root / "ota.json").write_text(json.dumps({"slot": "a", "prev": "b", "trial": False}))
        (tmp_path / f"b{i}.ota").write_bytes(data)
        before[what] = snapshot(root)
        cases.append({"what": what, "bundle": str(tmp_path / f"b{i}.ota"), "root": f"{root}/",
                      "seed": i, "chunk": 1 + 97 * i, "free": extra.get("free")})  # fmt: skip
    got = run_cases(tmp_path, keys, cases)
    for i, (what, _, result, detail, extra) in enumerate(table):
        root = tmp_path / f"n{i}"
        o = got[what]
        assert (what, o["result"]) == (what, result), o
        assert detail in o["detail"], (what, o["detail"])
        after = snapshot(root)
        assert [p for p in after if p.endswith(".part") or "ota-manifest" in p] == [], what
        assert after["ota.json"] == before[what]["ota.json"], what
        assert slot_files(root, "a") == {
            p: b for p, b in before[what].items() if p.startswith("slots/a/")}, what  # fmt: skip
        assert bootable(root) == ("a", OLD), what
        if extra.get("late"):  # the inactive slot is left empty, never half-written
            assert [p for p in after if p.startswith("slots/b/")] == [], (what, list(after))
        else:  # refused before anything was written: the inactive slot untouched too
            assert after == before[what], what


def test_a_good_bundle_installs_in_any_chunks_and_switches_on_trial(tmp_path, keys):
    data = small_bundle(keys["fleet"], "1.1.0", romfs=20000)
    (tmp_path / "good.ota").write_bytes(data)
    cases = []
    for i, chunk in enumerate((1, 7, 512, 513, 2048)):
        root = node_root(tmp_path, f"n{i}")
        cases.append({"what": f"chunks up to {chunk}", "bundle": str(tmp_path / "good.ota"),
                      "root": f"{root}/", "seed": i, "chunk": chunk})  # fmt: skip
    root = node_root(tmp_path, "trial")
    (root / "ota.json").write_text(json.dumps({"slot": "a", "prev": None, "trial": True}))
    cases.append({"what": "on trial", "bundle": str(tmp_path / "good.ota"),
                  "root": f"{root}/", "seed": 9, "chunk": 512})  # fmt: skip
    got = run_cases(tmp_path, keys, cases)
    for i in range(5):
        root = tmp_path / f"n{i}"
        o = got[cases[i]["what"]]
        assert (o["result"], o["version"]) == (1, "1.1.0"), o
        assert bootable(root) == ("b", "1.1.0")
        st = boot_state(root)
        assert st == {"slot": "b", "prev": "a", "trial": True, "boots": 0, "result": 0,
                      "detail": "installing 1.1.0"}  # fmt: skip
        assert sorted(p.name for p in (root / "slots/b").iterdir()) == [
            "lanterna.romfs", "main.py", "manifest.json"]  # fmt: skip
        assert (root / "slots/b/manifest.json").read_bytes() == ob.members(data)[0][1]
        assert complete_version(root, "a") == OLD
    o = got["on trial"]
    assert o["result"] == DEFERRED and "on trial: confirm it first" in o["detail"], o
    assert not (tmp_path / "trial/slots/b").exists()


def test_the_real_firmware_bundle_installs_under_the_heap_budget(tmp_path, keys):
    built = ob.build(REPO / "firmware", tmp_path / "real.ota", "1.2.3", keys["fleet"],
                     min_version="1.0.0", boards=["sim"])  # fmt: skip
    root = node_root(tmp_path, "real")
    got = run_cases(tmp_path, keys, [{"what": "real", "bundle": str(built.path),
                                      "root": f"{root}/", "seed": 5, "chunk": 1024}])  # fmt: skip
    assert got["real"]["result"] == 1, got
    assert bootable(root) == ("b", "1.2.3")
    print(f"OTA install heap (mem_alloc peak above the start): {got['real']['heap']} bytes,"
          f" bundle {built.bytes} bytes")  # fmt: skip
    assert got["real"]["heap"] < 16 * 1024


# -- power cuts ------------------------------------------------------------------------------


def powercut_trial(root: Path, bundle: Path, key_file: Path, seed: int, new: str) -> dict:
    """Install `bundle` into a node at `root` (slot a holds OLD), killing the installer
    with SIGKILL 1-4 times at random points first; after every kill the node must boot a
    complete slot (a until the switch, b after it) with slot a untouched.
    -> {"kills", "starts", "resumed", "bricked": 0 or 1, "why",
        "by": {kind: [kills, misses]}} (a miss: the install ended before the cut)."""
    rng = random.Random(seed)
    old_a = slot_files(root, "a")
    data = bundle.read_bytes()
    size, commit_end = len(data), 3 * 512 + len(ob.members(data)[0][1]) + 512
    kills, starts, resumed, last_fed = rng.randint(1, 4), 0, 0, 0
    env = {"OTA_ROOT": f"{root}/", "OTA_BUNDLE": str(bundle), "OTA_KEY": str(key_file),
           "OTA_PACE_US": "300"}  # fmt: skip
    out: dict = {"kills": 0, "starts": 0, "resumed": 0, "bricked": 0, "why": "", "by": {}}
    try:
        while True:
            env["OTA_SEED"] = str(rng.getrandbits(30))
            kill_now = out["kills"] < kills
            # where: the j-th "fed" line of this run, or the "finishing" line (the switch),
            # then maybe a few hundred microseconds more (seeded); or the process kills
            # itself just before its n-th rename/remove/mkdir (commit and switch steps)
            target = rng.choice(("finishing", "cut", "cut", "fed", "fed", "fed", "fed"))
            if kill_now and target == "cut":  # a fresh run does 11 such operations, a resumed
                env["OTA_CUT_AT"] = str(rng.randint(1, 6 if starts else 11))  # one up to 6
            else:
                env.pop("OTA_CUT_AT", None)
            cmd, penv, cwd = mpharness.firmware_command(CHECK, "powercut", extra_env=env)
            proc = subprocess.Popen(cmd, env=penv, cwd=cwd, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT)  # fmt: skip
            starts += 1
            j, seen, lines = 1, 0, []
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.decode().rstrip()
                lines.append(line)
                if line.startswith("start "):
                    off = int(line.split()[1])
                    resumed += off > 0
                    # resumed, not restarted: at most a header and padding are fed again
                    assert off >= last_fed - 1024 or last_fed <= commit_end, (off, last_fed)
                    j = rng.randint(1, max(1, (size - off) // 600))  # ~ the fed lines to come
                if line.startswith("fed "):
                    last_fed = int(line.split()[1])
                if not kill_now or target == "cut":
                    continue
                seen += line.startswith(target)
                if seen >= (j if target == "fed" else 1):
                    delay = rng.choice((0, 0, rng.random() * 0.002))
                    if delay:
                        time.sleep(delay)  # a random cut point, not a synchronisation
                    proc.send_signal(signal.SIGKILL)
                    break
            proc.wait(30)
            rest = proc.stdout.read().decode()
            proc.stdout.close()
            if kill_now:  # kills by kind, and the attempts that came too late (none at all)
                kind = out["by"].setdefault(target, [0, 0])
                kind[proc.returncode != -signal.SIGKILL] += 1
            if proc.returncode == -signal.SIGKILL:
                out["kills"] += 1
            elif proc.returncode != 0 or "MPRUNNER-PASS" not in rest + "\n".join(lines):
                raise AssertionError(f"installer failed ({proc.returncode}):\n" + "\n".join(lines)
                                     + rest)  # fmt: skip
            slot, v = bootable(root)  # the invariant, after every kill and every end
            assert (slot, v) in (("a", OLD), ("b", new)), (slot, v)
            assert slot_files(root, "a") == old_a  # the running slot is never written
            if any(line.startswith("switched ") for line in lines) and proc.returncode == 0:
                break
            assert starts < 40, "no switch after 40 starts"
        st = boot_state(root)
        assert (st["slot"], st["prev"], st["trial"]) == ("b", "a", True), st
        assert complete_version(root, "b") == new
    except (AssertionError, OSError, ValueError, KeyError) as e:
        out["bricked"], out["why"] = 1, f"{type(e).__name__}: {e}"
    out["starts"], out["resumed"] = starts, resumed
    return out


@pytest.fixture(scope="module")
def powercut_bundle(tmp_path_factory, keys) -> Path:
    p = tmp_path_factory.mktemp("pc") / "pc.ota"
    p.write_bytes(small_bundle(keys["fleet"], "1.1.0", romfs=9000))
    return p


def test_power_cuts_never_brick_the_node(tmp_path, keys, powercut_bundle):
    t0 = time.monotonic()
    results = []
    for trial in range(50):
        root = node_root(tmp_path, f"pc{trial}")
        r = powercut_trial(root, powercut_bundle, keys["n_file"], 7000 + trial, "1.1.0")
        assert r["bricked"] == 0, (trial, r)
        results.append(r)
    kills = sum(r["kills"] for r in results)
    assert kills >= 80, kills  # 1-4 planned per trial; a late one finds the node switched
    assert sum(r["resumed"] for r in results) >= 25  # resumed mid-download, not restarted
    print(f"power cuts: 50 trials, {kills} kills, 0 bricked, {time.monotonic() - t0:.1f} s")
