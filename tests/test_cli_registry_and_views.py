"""The fleet views of `lanterna`: sites, nodes, groups, status, faults, telemetry tail.

The store is fed the way `lanterna serve` feeds it, through Store.ingest with the payloads
a node publishes (docs/protocol.md).
"""

from __future__ import annotations

import json
import queue
import threading
import time

import pytest
from click.testing import CliRunner

from lanterna.cli import cli
from lanterna.cli import format as fleet_format
from lanterna.cli import views as cli_views
from lanterna.store.db import Store

KEYS = {
    "gw-001": "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
    "gw-002": "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90",
    "gw-003": "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100",
}


@pytest.fixture
def db(tmp_path):
    return tmp_path / "x.db"


@pytest.fixture
def run(db):
    def run(*args: str, code: int = 0, input: str | None = None):
        result = CliRunner().invoke(cli, ["--db", str(db), *args], input=input)
        assert result.exit_code == code, result.output
        assert "Traceback" not in result.output
        return result

    return run


@pytest.fixture
def fleet(run, db, tmp_path):
    """Greenwich with three nodes; gw-001 and gw-002 in group high-street."""
    run("site", "add", "greenwich")
    for node, key in KEYS.items():
        f = tmp_path / f"{node}.hex"
        f.write_text(key + "\n")
        run("node", "add", node, "--site", "greenwich", "--board", "sim", "--key-file", str(f))
    run("group", "create", "high-street", "--description", "Trafalgar Road")
    run("group", "add", "high-street", "gw-001", "gw-002")
    return db


def ingest(db, *msgs):
    with Store(db) as store:
        store.ingest(
            [
                (n, leaf, p if isinstance(p, bytes) else json.dumps(p).encode(), t)
                for n, leaf, p, t in msgs
            ]
        )


def state(level, faults=(), ts="2026-11-25T17:00:00Z"):
    return {
        "v": 1,
        "ts": ts,
        "level": level,
        "mode": "schedule",
        "schedule": "greenwich-2026",
        "override": None,
        "fw": "0.1.0",
        "clock": "ntp",
        "faults": list(faults),
    }


def tele(level, kwh, power_w, ts="2026-11-25T17:01:00Z", bme280_fault=None):
    return {
        "v": 1,
        "ts": ts,
        "level": level,
        "source": "schedule",
        "energy": {"kwh": kwh, "power_w": power_w, "switch_on": 3, "burn_h": 12.5},
        "faults": [],
        "sensors": {
            "bme280": {
                "fault": bme280_fault,
                "temp_x10": [80, 85, 90, 4],
                "rh_x10": [700, 710, 720, 4],
                "pressure_x10": [10120, 10121, 10122, 4],
            }
        },
        "heap_free": 41234,
        "uptime_s": 3600,
    }


def event(name, active, detail, ts):
    return {"v": 1, "ts": ts, "event": name, "active": active, "detail": detail}


@pytest.fixture
def reported(fleet):
    """gw-001 online and lit with a failed sensor; gw-002 offline with a lamp failure;
    gw-003 never heard from."""
    now = time.time()
    ingest(
        fleet,
        ("gw-001", "status", b"online", now - 20),
        ("gw-001", "state", state(30), now - 15),
        ("gw-001", "tele", tele(30, 12.345, 15.2, bme280_fault="ENODEV"), now - 12),
        (
            "gw-001",
            "event",
            event("sensorFault", True, "bme280: ENODEV", "2026-11-25T16:59:00Z"),
            now - 12,
        ),
        ("gw-002", "status", b"online", now - 4000),
        ("gw-002", "state", state(70, ["lampFailure"]), now - 3900),
        (
            "gw-002",
            "event",
            event("lampFailure", True, "asked 70 %, dark", "2026-11-25T15:00:00Z"),
            now - 3900,
        ),
        ("gw-002", "event", event("lampFailure", False, "lit", "2026-11-25T15:10:00Z"), now - 3800),
        (
            "gw-002",
            "event",
            event("lampFailure", True, "asked 70 %, dark", "2026-11-25T16:00:00Z"),
            now - 3700,
        ),
        ("gw-002", "status", b"offline", now - 3600),
    )
    return fleet


# -- sites ---------------------------------------------------------------------------------


def test_built_in_site_takes_its_own_position_and_zone(run):
    run("site", "add", "porta-romana")
    run("site", "add", "bordeaux", "--lat", "44.8378", "--lon", "-0.5792", "--tz", "Europe/Paris")
    sites = json.loads(run("site", "list", "--json").stdout)
    assert sites == [
        {"name": "bordeaux", "lat": 44.8378, "lon": -0.5792, "tz": "Europe/Paris", "nodes": 0},
        {"name": "porta-romana", "lat": 45.4509, "lon": 9.2049, "tz": "Europe/Rome", "nodes": 0},
    ]
    table = run("site", "list").stdout
    assert "porta-romana" in table and "Europe/Rome" in table


def test_site_needs_position_and_iana_zone(run):
    assert "give --lat, --lon and --tz" in run("site", "add", "warsaw", code=2).output
    for tz in ("CET-1CEST,M3.5.0,M10.5.0/3", "Europe/Nowhere", "Europe", "../etc/passwd"):
        r = run("site", "add", "warsaw", "--lat", "52.2", "--lon", "21", "--tz", tz, code=4)
        assert r.output.count("\n") == 1 and "IANA" in r.output
    r = run("site", "add", "warsaw", "--lat", "95", "--lon", "21", "--tz", "Europe/Warsaw", code=4)
    assert "--lat: 95.0 is outside -90..90" in r.output
    run("site", "add", "bad/name", "--lat", "1", "--lon", "1", "--tz", "UTC", code=4)


# -- nodes ---------------------------------------------------------------------------------


def test_node_add_list_show_remove(fleet, run):
    nodes = json.loads(run("node", "list", "--json").stdout)
    assert [n["node"] for n in nodes] == ["gw-001", "gw-002", "gw-003"]
    assert nodes[0] == {
        "node": "gw-001",
        "site": "greenwich",
        "board": "sim",
        "lat": None,
        "lon": None,
        "rated_w": 50.0,
        "coap": None,
        "groups": ["high-street"],
    }
    assert [
        n["node"]
        for n in json.loads(run("node", "list", "--group", "high-street", "--json").stdout)
    ] == ["gw-001", "gw-002"]
    run(
        "node",
        "add",
        "gw-003",
        "--site",
        "greenwich",
        "--board",
        "sim",
        "--key",
        KEYS["gw-003"],
        "--lat",
        "51.48",
        "--lon",
        "0.01",
        "--rated-w",
        "70",
        "--coap",
        "10.0.4.23:5683",
    )
    shown = json.loads(run("node", "show", "gw-003", "--json").stdout)
    assert shown["coap"] == "10.0.4.23:5683" and shown["rated_w"] == 70.0
    assert shown["status"]["online"] is None and shown["events"] == []
    assert shown["commands"] == []
    assert "gw-003" in run("node", "list", "--site", "greenwich").stdout
    assert run("node", "remove", "gw-003").stdout == "removed node gw-003\n"
    assert run("node", "show", "gw-003", code=3).output == "Error: unknown node 'gw-003'\n"
    run("node", "remove", "gw-003", code=3)


def test_node_show_has_status_events_and_commands(reported, run, db):
    with Store(db) as store:
        store.add_commands(
            [
                {
                    "id": "c1",
                    "node": "gw-002",
                    "ctr": 1,
                    "cmd": "dim",
                    "args": {"level": 50},
                    "via": "mqtt",
                }
            ]
        )
        store.finish_command("c1", "ok", {"level": 50})
    shown = json.loads(run("node", "show", "gw-002", "--json").stdout)
    assert shown["status"]["online"] is False and shown["status"]["level"] == 70
    assert shown["status"]["faults"] == ["lampFailure"]
    assert [(e["ts"], e["payload"]["active"]) for e in shown["events"]] == [
        ("2026-11-25T16:00:00Z", True),
        ("2026-11-25T15:10:00Z", False),
        ("2026-11-25T15:00:00Z", True),
    ]
    (cmd,) = shown["commands"]
    assert cmd["cmd"] == "dim" and cmd["args"] == {"level": 50} and cmd["status"] == "ok"
    text = run("node", "show", "gw-002").stdout
    assert "raised asked 70 %, dark" in text and "lampFailure" in text and "dim" in text


GOOD_NODE = {"ID": "gw-009", "--board": "sim", "--key": KEYS["gw-001"]}


@pytest.mark.parametrize(
    "change, says",
    [
        ({"--key": "abc"}, "--key: expected the key as 64 hex digits"),
        ({"--key": "zz" * 32}, "--key: expected the key as 64 hex digits"),
        ({"--board": "nope"}, "--board 'nope': no such board (known: esp32-devkitc"),
        ({"--board": "/nowhere/board.json"}, "cannot read"),
        ({"--coap": "10.0.0.1"}, "expected HOST:PORT"),
        ({"--coap": "h:70000"}, "expected HOST:PORT"),
        ({"--lat": "91", "--lon": "0"}, "--lat: 91.0 is outside -90..90"),
        ({"--rated-w": "0"}, "--rated-w: 0.0 is outside"),
        ({"ID": "a/b"}, "node 'a/b': use letters, digits"),
    ],
)
def test_node_add_refuses_malformed_input_with_exit_4(fleet, run, change, says):
    opts = {**GOOD_NODE, **change}
    node = opts.pop("ID")
    r = run(
        "node", "add", node, "--site", "greenwich", *[a for kv in opts.items() for a in kv], code=4
    )
    assert r.output.startswith("Error: ") and r.output.count("\n") == 1
    assert says in r.output
    assert "zz" * 32 not in r.output  # a bad key is not echoed either
    run("node", "show", node, code=3)  # nothing was stored


def test_node_add_key_file_errors_and_stdin(fleet, run, tmp_path):
    bad = tmp_path / "bad.hex"
    bad.write_text(KEYS["gw-001"][:-2])
    r = run(
        "node",
        "add",
        "gw-009",
        "--site",
        "greenwich",
        "--board",
        "sim",
        "--key-file",
        str(bad),
        code=4,
    )
    assert f"--key-file {bad}: expected the key as 64 hex digits" in r.output
    assert KEYS["gw-001"][:-2] not in r.output
    run(
        "node",
        "add",
        "gw-009",
        "--site",
        "greenwich",
        "--board",
        "sim",
        "--key-file",
        str(tmp_path / "missing.hex"),
        code=4,
    )
    run("node", "add", "gw-009", "--site", "greenwich", "--board", "sim", code=2)
    r = run(
        "node",
        "add",
        "gw-009",
        "--site",
        "greenwich",
        "--board",
        "sim",
        "--key-file",
        "-",
        input=KEYS["gw-001"] + "\n",
    )
    assert r.stdout == "added node gw-009 (site greenwich, board sim)\n"


def test_node_add_to_unknown_site_exits_3(run):
    r = run(
        "node", "add", "x-1", "--site", "nowhere", "--board", "sim", "--key", KEYS["gw-001"], code=3
    )
    assert r.output == "Error: unknown site 'nowhere': add it first\n"


# -- groups --------------------------------------------------------------------------------


def test_groups_create_fill_show_and_delete(fleet, run):
    groups = json.loads(run("group", "list", "--json").stdout)
    assert groups == [{"group": "high-street", "description": "Trafalgar Road", "nodes": 2}]
    run("group", "create", "park")
    assert run("group", "add", "park", "gw-003", "gw-001").stdout == "group park: 2 nodes\n"
    assert run("group", "remove", "park", "gw-001").stdout == "group park: 1 node\n"
    shown = json.loads(run("group", "show", "park", "--json").stdout)
    assert shown["group"] == "park" and [n["node"] for n in shown["nodes"]] == ["gw-003"]
    assert "gw-003" in run("group", "show", "park").stdout
    assert "park" in run("group", "list").stdout
    run("group", "delete", "park")
    run("group", "show", "park", code=3)
    run("group", "delete", "park", code=3)
    assert json.loads(run("node", "show", "gw-003", "--json").stdout)["groups"] == []


def test_group_commands_with_unknown_names_exit_3_and_change_nothing(fleet, run):
    r = run("group", "add", "high-street", "gw-003", "gw-404", code=3)
    assert r.output == "Error: unknown node 'gw-404'\n"
    run("group", "add", "nope", "gw-003", code=3)
    run("group", "remove", "high-street", "gw-001", "gw-404", code=3)
    members = json.loads(run("group", "show", "high-street", "--json").stdout)["nodes"]
    assert [n["node"] for n in members] == ["gw-001", "gw-002"]


# -- status and faults ---------------------------------------------------------------------


def test_status_table_one_row_per_node_and_summary_on_stderr(reported, run):
    r = run("status")
    lines = r.stdout.splitlines()
    assert lines[0].split() == [
        "node",
        "site",
        "online",
        "level",
        "mode",
        "firmware",
        "last",
        "seen",
        "faults",
    ]
    rows = {ln.split()[0]: ln.split() for ln in lines[2:]}
    assert rows["gw-001"][:6] == ["gw-001", "greenwich", "yes", "30", "schedule", "0.1.0"]
    assert rows["gw-001"][7:] == ["ago", "sensor:bme280"] and rows["gw-001"][6].endswith("s")
    assert rows["gw-002"][2:4] == ["no", "70"] and rows["gw-002"][-1] == "lampFailure"
    assert rows["gw-003"][2:] == ["?", "-", "-", "-", "never", "-"]
    assert r.stderr == "3 nodes, 1 online, 2 with faults\n"


def test_an_offline_node_keeps_its_last_seen(reported, run):
    gw2 = json.loads(run("status", "--node", "gw-002", "--json").stdout)[0]
    assert gw2["online"] is False and gw2["last_seen"] is not None


def test_status_json_shape(reported, run):
    out = json.loads(run("status", "--json").stdout)
    assert [s["node"] for s in out] == ["gw-001", "gw-002", "gw-003"]
    first = out[0]
    assert set(first) >= {
        "node",
        "site",
        "groups",
        "online",
        "level",
        "mode",
        "firmware",
        "last_seen",
        "faults",
    }
    assert first["groups"] == ["high-street"] and first["online"] is True
    assert first["faults"] == ["sensor:bme280"]
    assert first["last_seen"].endswith("Z") and abs(first["last_seen_epoch"] - time.time()) < 60
    assert out[2]["last_seen"] is None and out[2]["online"] is None


@pytest.mark.parametrize(
    "args, nodes",
    [
        (["--online"], ["gw-001"]),
        (["--offline"], ["gw-002", "gw-003"]),  # never heard from counts as not online
        (["--faulty"], ["gw-001", "gw-002"]),
        (["--offline", "--faulty"], ["gw-002"]),
        (["--group", "high-street"], ["gw-001", "gw-002"]),
        (["--node", "gw-003", "--node", "gw-001"], ["gw-001", "gw-003"]),
        (["--site", "greenwich", "--online"], ["gw-001"]),
    ],
)
def test_status_filters(reported, run, args, nodes):
    assert [s["node"] for s in json.loads(run("status", *args, "--json").stdout)] == nodes


@pytest.mark.parametrize("args", [["--site", "mars"], ["--group", "nope"], ["--node", "gw-404"]])
def test_views_of_unknown_names_exit_3(reported, run, args):
    for view in (["status"], ["faults"], ["telemetry", "tail"]):
        r = run(*view, *args, code=3)
        assert r.output.startswith("Error: unknown ") and r.output.count("\n") == 1


def test_faults_name_the_latest_event_that_raised_each(reported, run):
    out = json.loads(run("faults", "--json").stdout)
    assert out == [
        {
            "node": "gw-001",
            "site": "greenwich",
            "fault": "sensor:bme280",
            "raised": "2026-11-25T16:59:00Z",
            "detail": "bme280: ENODEV",
        },
        {
            "node": "gw-002",
            "site": "greenwich",
            "fault": "lampFailure",
            "raised": "2026-11-25T16:00:00Z",
            "detail": "asked 70 %, dark",
        },
    ]
    r = run("faults", "--node", "gw-002")
    assert "lampFailure" in r.stdout and "gw-001" not in r.stdout
    assert r.stderr == "1 fault on 1 node\n"
    assert json.loads(run("faults", "--node", "gw-003", "--json").stdout) == []


def test_no_key_appears_in_any_output(reported, run):
    outputs = [
        run(*args).output
        for args in (
            ["node", "show", "gw-001", "--json"],
            ["node", "show", "gw-001"],
            ["node", "list", "--json"],
            ["node", "list"],
            ["status", "--json"],
            ["status"],
            ["group", "show", "high-street", "--json"],
            ["faults", "--json"],
            [
                "node",
                "add",
                "gw-001",
                "--site",
                "greenwich",
                "--board",
                "sim",
                "--key",
                KEYS["gw-001"],
                "--json",
            ],
        )
    ]
    for out in outputs:
        for key in KEYS.values():
            assert key not in out.lower()


def test_a_file_that_is_not_a_store_exits_6(run, db):
    db.write_bytes(b"this is not SQLite" * 100)
    assert run("status", code=6).output.startswith("Error: store: ")


def test_age_is_short():
    assert [fleet_format.age(s) for s in (0, 12, 61, 3599, 3600, 86400 * 3)] == [
        "0s ago",
        "12s ago",
        "1m ago",
        "59m ago",
        "1h ago",
        "3d ago",
    ]


# -- telemetry -----------------------------------------------------------------------------


def _tele_rows(db, node, n, start=0):
    ingest(
        db,
        *[
            (
                node,
                "tele",
                tele(10 * i, 1.0 + i / 10, 5.0 * i, ts=f"2026-11-25T17:{i:02d}:00Z"),
                time.time(),
            )
            for i in range(start, start + n)
        ],
    )


def test_telemetry_tail_prints_the_last_rows(fleet, run):
    _tele_rows(fleet, "gw-001", 5)
    _tele_rows(fleet, "gw-002", 2)
    lines = run("telemetry", "tail", "--node", "gw-001", "--limit", "3").stdout.splitlines()
    assert lines[0].split() == ["time", "node", "level", "power", "W", "kWh", "heap_free"]
    assert [ln.split() for ln in lines[1:]] == [
        ["2026-11-25T17:02:00Z", "gw-001", "20", "10.0", "1.200", "41234"],
        ["2026-11-25T17:03:00Z", "gw-001", "30", "15.0", "1.300", "41234"],
        ["2026-11-25T17:04:00Z", "gw-001", "40", "20.0", "1.400", "41234"],
    ]
    out = run("telemetry", "tail", "--limit", "4", "--no-follow", "--json").stdout
    rows = [json.loads(ln) for ln in out.splitlines()]
    assert [(r["node"], r["level"]) for r in rows] == [
        ("gw-001", 30),
        ("gw-001", 40),
        ("gw-002", 0),
        ("gw-002", 10),
    ]
    assert rows[0]["kwh"] == 1.3 and rows[0]["power_w"] == 15.0 and rows[0]["heap_free"] == 41234
    assert rows[0]["ts"] == "2026-11-25T17:03:00Z" and rows[0]["tele"]["uptime_s"] == 3600
    site = run("telemetry", "tail", "--site", "greenwich", "--json").stdout
    assert len(site.splitlines()) == 7
    assert run("telemetry", "tail", "--limit", "0", "--json").stdout == ""


def test_follow_yields_rows_another_connection_stores(fleet):
    got: queue.Queue = queue.Queue()
    stop = threading.Event()

    def tail() -> None:
        with Store(fleet) as store:  # its own connection, as in another process
            for r in cli_views.follow(store, 0, stop, {"gw-001"}, interval=0.02):
                got.put((r["node"], r["level"]))

    t = threading.Thread(target=tail)
    t.start()
    try:
        _tele_rows(fleet, "gw-001", 1)
        assert got.get(timeout=10) == ("gw-001", 0)
        _tele_rows(fleet, "gw-002", 1)  # not followed
        _tele_rows(fleet, "gw-001", 2, start=1)
        assert [got.get(timeout=10) for _ in range(2)] == [("gw-001", 10), ("gw-001", 20)]
    finally:
        stop.set()
        t.join(10)
    assert not t.is_alive()
    assert got.empty()


def test_tail_follow_ends_cleanly_on_ctrl_c(fleet, run, monkeypatch):
    _tele_rows(fleet, "gw-001", 2)
    seen = {}

    def follow(store, after_id, stop, nodes=None):
        seen["after"], seen["nodes"] = after_id, nodes
        _tele_rows(fleet, "gw-001", 1, start=7)
        yield from store.telemetry_since(after_id)
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_views, "follow", follow)
    r = run("telemetry", "tail", "--node", "gw-001", "--limit", "1", "--follow", "--json")
    assert [json.loads(ln)["level"] for ln in r.stdout.splitlines()] == [10, 70]
    assert seen == {"after": 2, "nodes": {"gw-001"}}
    assert "Aborted" not in r.output
