"""The store on both backends: every Store method and the rollout tables, on SQLite and on
a real PostgreSQL server the suite starts (tests/pgserver.py); ids ``sqlite`` and
``postgresql``. What differs between the two is said where it is tested (partitions)."""

from __future__ import annotations

import json
import threading
import time

import pytest

from lanterna.ota.plan import Plan, RolloutError
from lanterna.ota.rollout_store import Rollouts, summary
from lanterna.store import Store, StoreError, UnknownGroup, UnknownNode
from lanterna.store import tele as tele_codec
from lanterna.store.migrations import MIGRATIONS

KEY = bytes(range(32))
T0 = 1795600000  # 2026-11-25T07:06:40Z
DAY = 86400


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def tele(t: float, level: int = 50, kwh: float = 1.5, **more) -> bytes:
    p = {
        "v": 1,
        "ts": iso(t),
        "level": level,
        "source": "schedule",
        "energy": {"kwh": kwh, "power_w": 31.5, "switch_on": 2, "burn_h": 3.25, "source": "model"},
        "faults": [],
        "sensors": {"bme280": {"fault": None, "temp_x10": [80, 85, 90, 6]}},
        "units": {"temp_x10": "degC"},
        "evse": None,
        "heap_free": 41234,
        "uptime_s": 600,
    }
    p.update(more)
    return json.dumps(p).encode()


def state(t: float, level: int = 40, faults=(), mode="schedule", fw="1.2.0") -> bytes:
    return json.dumps(
        {"v": 1, "ts": iso(t), "level": level, "mode": mode, "fw": fw, "faults": list(faults)}
    ).encode()


def event(t: float, name: str, active: bool = True, detail: str = "x") -> bytes:
    return json.dumps(
        {"v": 1, "ts": iso(t), "event": name, "active": active, "detail": detail}
    ).encode()


@pytest.fixture
def store(store_target):
    with Store(store_target) as s:
        yield s


@pytest.fixture
def fleet(store):
    store.put_site("gw", 51.48, 0.0, "Europe/London")
    store.put_site("li", 38.72, -9.14, "Europe/Lisbon")
    for i in range(6):
        store.put_node(f"gw-{i:03d}", "gw", "sim", KEY, rated_w=40.0)
    for i in range(3):
        store.put_node(f"li-{i:03d}", "li", "sim", KEY)
    store.put_group("high-street", "the lamps of the high street")
    store.group_add("high-street", ["gw-001", "gw-003", "li-002"])
    return store


# -- schema ------------------------------------------------------------------------------


def test_a_new_store_has_every_migration_and_reopens_unchanged(store_target):
    with Store(store_target) as s:
        assert s.version == len(MIGRATIONS)
        s.put_site("gw", 1.0, 2.0, "UTC")
    with Store(store_target) as s:
        assert s.version == len(MIGRATIONS)
        assert s.sites() == [{"name": "gw", "lat": 1.0, "lon": 2.0, "tz": "UTC"}]


def test_two_stores_opening_a_new_database_at_once_migrate_it_once(store_target):
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            with Store(store_target) as s:
                assert s.version == len(MIGRATIONS)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=open_it) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []


def test_postgresql_errors_name_the_url_without_its_password(postgres):
    host_part = postgres.split("@", 1)[1]
    bad = f"postgresql://postgres:s3cret@{host_part.rsplit('/', 1)[0]}/no_such_db"
    with pytest.raises(StoreError) as e:
        Store(bad)
    assert "no_such_db" in str(e.value)
    assert "s3cret" not in str(e.value)
    assert "postgresql://postgres@" in str(e.value)


def test_postgres_scheme_and_a_path_folded_url_are_accepted(postgres):
    from pathlib import Path

    with Store(postgres.replace("postgresql://", "postgres://")) as s:
        assert s.backend == "postgresql"
    with Store(Path(postgres)) as s:  # click.Path folds '//'
        assert s.backend == "postgresql"


# -- sites, nodes, groups ----------------------------------------------------------------


def test_sites_are_added_updated_and_listed(store):
    store.put_site("li", 38.7, -9.1, "Europe/Lisbon")
    store.put_site("gw", 51.4, 0.0, "Europe/London")
    store.put_site("gw", 51.5, 0.1, "Europe/London")
    assert [s["name"] for s in store.sites()] == ["gw", "li"]
    assert store.site("gw") == {"name": "gw", "lat": 51.5, "lon": 0.1, "tz": "Europe/London"}
    assert store.site("nowhere") is None


def test_nodes_are_added_updated_removed_and_a_new_key_restarts_the_counter(store):
    store.put_site("gw", 51.5, 0.0, "UTC")
    with pytest.raises(StoreError, match="unknown site 'xx'"):
        store.put_node("n1", "xx", "sim", KEY)
    store.put_node("n1", "gw", "sim", KEY, lat=1.5, lon=2.5, coap_host="10.0.0.1", coap_port=5683)
    n = store.node("n1")
    assert (n.site, n.board, n.lat, n.lon, n.key, n.rated_w) == ("gw", "sim", 1.5, 2.5, KEY, 50.0)
    assert n.public()["coap"] == "10.0.0.1:5683" and "key" not in n.public()
    assert store.next_ctrs(["n1"]) == {"n1": 1}
    store.put_node("n1", "gw", "esp32", KEY)  # same key: the counter stays
    assert store.node("n1").board == "esp32"
    assert store.next_ctrs(["n1"]) == {"n1": 2}
    store.put_node("n1", "gw", "esp32", b"\x01" * 32)  # a new key: it restarts
    assert store.next_ctrs(["n1"]) == {"n1": 1}
    store.remove_node("n1")
    with pytest.raises(UnknownNode):
        store.node("n1")
    with pytest.raises(UnknownNode):
        store.remove_node("n1")


def test_nodes_are_selected_by_site_group_ids_and_unknown_names_raise(fleet):
    assert [n.id for n in fleet.nodes(site="li")] == ["li-000", "li-001", "li-002"]
    assert [n.id for n in fleet.nodes(group="high-street")] == ["gw-001", "gw-003", "li-002"]
    assert [n.id for n in fleet.nodes(site="gw", group="high-street")] == ["gw-001", "gw-003"]
    assert [n.id for n in fleet.nodes(ids=["li-001", "gw-002"])] == ["gw-002", "li-001"]
    assert fleet.node("gw-003").groups == ("high-street",)
    with pytest.raises(StoreError, match="unknown site"):
        fleet.nodes(site="nowhere")
    with pytest.raises(UnknownGroup):
        fleet.nodes(group="nope")
    with pytest.raises(UnknownNode, match="gw-999"):
        fleet.nodes(ids=["gw-001", "gw-999"])


def test_groups_add_remove_count_and_cascade(fleet):
    fleet.group_add("high-street", ["gw-001", "gw-004"])  # gw-001 again: no second row
    assert fleet.groups() == [
        {"group": "high-street", "description": "the lamps of the high street", "nodes": 4}
    ]
    with pytest.raises(UnknownNode):
        fleet.group_add("high-street", ["gw-404"])
    with pytest.raises(UnknownGroup):
        fleet.group_add("nope", ["gw-001"])
    fleet.group_remove("high-street", ["gw-001", "li-002"])
    assert [n.id for n in fleet.nodes(group="high-street")] == ["gw-003", "gw-004"]
    fleet.remove_node("gw-003")
    assert fleet.groups()[0]["nodes"] == 1
    fleet.remove_group("high-street")
    assert fleet.groups() == []
    assert fleet.node("gw-004").groups == ()
    with pytest.raises(UnknownGroup):
        fleet.remove_group("high-street")


# -- commands and schedules --------------------------------------------------------------


def test_counters_are_reserved_together_and_an_unknown_node_moves_none(fleet):
    assert fleet.next_ctrs(["gw-001", "gw-002"]) == {"gw-001": 1, "gw-002": 1}
    with pytest.raises(UnknownNode, match="gw-404"):
        fleet.next_ctrs(["gw-001", "gw-404"])
    assert fleet.next_ctrs(["gw-001"]) == {"gw-001": 2}
    fleet.raise_ctr("gw-001", 10)
    fleet.raise_ctr("gw-001", 5)  # never down
    assert fleet.next_ctrs(["gw-001"]) == {"gw-001": 11}


def test_commands_are_recorded_finished_and_listed_newest_first(fleet):
    fleet.add_commands(
        [
            {
                "id": "c1",
                "node": "gw-001",
                "ctr": 1,
                "cmd": "dim",
                "args": {"level": 30},
                "via": "mqtt",
            }
        ]
    )
    fleet.add_commands(
        [{"id": "c2", "node": "gw-002", "ctr": 1, "cmd": "ping", "args": {}, "via": "coap"}]
    )
    fleet.finish_command("c1", "ok", {"level": 30})
    fleet.finish_command("c2", "timeout", None)
    rows = {r["id"]: r for r in fleet.commands()}
    assert rows["c1"]["status"] == "ok" and json.loads(rows["c1"]["result"]) == {"level": 30}
    assert json.loads(rows["c1"]["args"]) == {"level": 30} and rows["c1"]["acked"] is not None
    assert rows["c2"]["status"] == "timeout" and rows["c2"]["result"] is None
    assert [r["id"] for r in fleet.commands("gw-002")] == ["c2"]
    assert len(fleet.commands(limit=1)) == 1


def test_schedules_are_versioned_by_content_and_pushes_recorded_once(fleet):
    a = fleet.add_schedule("night", "body-1", "sha-1")
    assert fleet.add_schedule("night", "body-1", "sha-1") == a
    b = fleet.add_schedule("night", "body-2", "sha-2")
    other = fleet.add_schedule("day", "body-3", "sha-3")
    assert len({a, b, other}) == 3
    fleet.schedule_pushed(b, "gw-001", "c1")
    fleet.schedule_pushed(b, "gw-001", "c1")
    rows = fleet.db.execute("SELECT COUNT(*) FROM schedule_pushes").fetchone()
    assert rows[0] == 1
    versions = fleet.db.execute("SELECT name, version FROM schedules ORDER BY id").fetchall()
    assert [(r["name"], r["version"]) for r in versions] == [("night", 1), ("night", 2), ("day", 1)]


# -- ingest -------------------------------------------------------------------------------


def test_ingest_stores_each_leaf_and_skips_malformed_payloads(fleet):
    now = time.time()
    msgs = [
        ("gw-001", "status", b"online", now),
        ("gw-001", "state", state(T0, 40, ["lampFailure"]), now),
        ("gw-001", "tele", tele(T0), now),
        ("gw-001", "event", event(T0, "lampFailure"), now),
        # malformed: each skipped, none stops the batch
        ("gw-002", "status", b"maybe", now),
        ("gw-002", "tele", b"{not json", now),
        ("gw-002", "tele", b"[1, 2]", now),
        ("gw-002", "state", b"\xff\xfe", now),
        ("gw-002", "ack", b"{}", now),
    ]
    assert fleet.ingest(msgs) == 4
    assert fleet.telemetry_count() == 1 and fleet.telemetry_count("gw-002") == 0
    (ev,) = fleet.events("gw-001")
    assert (ev["event"], ev["ts"]) == ("lampFailure", T0)
    (st,) = fleet.status(fleet.nodes(ids=["gw-001"]))
    assert st["online"] is True and st["level"] == 40 and st["faults"] == ["lampFailure"]
    assert st["mode"] == "schedule" and st["firmware"] == "1.2.0" and st["last_seen"] == now


def test_a_tele_with_odd_fields_is_kept_as_it_came(fleet):
    now = time.time()
    odd = json.dumps({"v": 1, "ts": "yesterday", "level": "high", "energy": {"kwh": 2}}).encode()
    fleet.ingest([("gw-001", "tele", odd, now)])
    (r,) = fleet.telemetry_last(5)
    assert json.loads(r["payload"]) == {
        "v": 1,
        "ts": "yesterday",
        "level": "high",
        "energy": {"kwh": 2},
    }
    assert r["ts"] == now and r["level"] is None and r["kwh"] == 2.0


def test_a_redelivered_batch_writes_nothing_twice(fleet):
    now = time.time()
    batch = [
        ("gw-001", "tele", tele(T0), now),
        ("gw-001", "tele", tele(T0 + 60), now),
        ("gw-001", "event", event(T0, "lampFailure"), now),
        ("gw-002", "event", event(T0, "sensorFault", detail="bme280: no ack"), now),
    ]
    assert fleet.ingest(batch) == 4
    assert fleet.ingest(batch) == 0
    assert fleet.ingest(batch + [("gw-001", "tele", tele(T0 + 120), now)]) == 1
    assert fleet.telemetry_count("gw-001") == 3
    assert len(fleet.events()) == 2


def test_latest_state_never_moves_back_in_time(fleet):
    now = time.time()
    fleet.ingest([("gw-001", "state", state(T0 + 60, level=80), now)])
    fleet.ingest([("gw-001", "state", state(T0, level=10, faults=["lampFailure"]), now + 1)])
    (st,) = fleet.status(fleet.nodes(ids=["gw-001"]))
    assert st["level"] == 80 and st["faults"] == []
    # in one batch too, whatever the order: the newest state wins
    fleet.ingest(
        [
            ("gw-002", "state", state(T0 + 120, level=70), now),
            ("gw-002", "state", state(T0 + 60, level=20), now),
        ]
    )
    assert fleet.status(fleet.nodes(ids=["gw-002"]))[0]["level"] == 70
    # status: the last received wins; a node offline keeps when it was last seen
    fleet.ingest([("gw-003", "status", b"online", now), ("gw-003", "status", b"offline", now + 5)])
    (st,) = fleet.status(fleet.nodes(ids=["gw-003"]))
    assert st["online"] is False and st["last_seen"] == now


def test_without_state_the_view_takes_level_source_and_sensor_faults_from_tele(fleet):
    now = time.time()
    bad = {"bme280": {"fault": "no ack", "temp_x10": [None, None, None, 0]}}
    fleet.ingest([("gw-004", "tele", tele(T0, level=65, sensors=bad), now)])
    fleet.ingest([("gw-004", "tele", tele(T0 - 60, level=5), now + 1)])  # older: ignored
    (st,) = fleet.status(fleet.nodes(ids=["gw-004"]))
    assert (st["level"], st["mode"], st["faults"]) == (65, "schedule", ["sensor:bme280"])


def test_telemetry_reads_give_the_payload_back_whole(fleet):
    now = time.time()
    fleet.ingest(
        [("gw-001", "tele", tele(T0 + 60 * i, level=i, kwh=0.25 * i), now) for i in range(5)]
    )
    fleet.ingest([("gw-002", "tele", tele(T0, level=99), now)])
    rows = fleet.telemetry_last(3)
    assert [(r["node"], r["level"]) for r in rows] == [("gw-001", 3), ("gw-001", 4), ("gw-002", 99)]
    assert json.loads(rows[1]["payload"]) == json.loads(tele(T0 + 240, level=4, kwh=1.0))
    assert rows[1]["heap_free"] == 41234 and rows[1]["power_w"] == 31.5
    assert [r["level"] for r in fleet.telemetry_last(2, ["gw-001"])] == [3, 4]
    assert fleet.telemetry_last(5, []) == []
    first = rows[0]["id"]
    assert [r["level"] for r in fleet.telemetry_since(first)] == [4, 99]
    assert [r["level"] for r in fleet.telemetry_since(0, "gw-002")] == [99]
    series = fleet.energy_series("gw-001", T0 + 60, T0 + 180)
    assert series == [(T0 + 60, 0.25, 1), (T0 + 120, 0.5, 2), (T0 + 180, 0.75, 3)]


def test_fault_raises_finds_the_newest_raise_of_each_fault(fleet):
    now = time.time()
    fleet.ingest(
        [
            ("gw-001", "event", event(T0, "lampFailure", detail="first"), now),
            ("gw-001", "event", event(T0 + 60, "lampFailure", detail="second"), now),
            ("gw-001", "event", event(T0 + 120, "lampFailure", active=False), now),
            ("gw-001", "event", event(T0 + 30, "sensorFault", detail="bme280: no ack"), now),
        ]
    )
    raised = fleet.fault_raises("gw-001", ["lampFailure", "sensor:bme280", "relayFailure"])
    assert raised["lampFailure"]["payload"]["detail"] == "second"
    assert raised["sensor:bme280"]["ts"] == T0 + 30
    assert "relayFailure" not in raised
    assert fleet.fault_raises("gw-001", []) == {}
    fleet.ingest([("gw-002", "event", event(T0, "relayFailure", detail="relay"), now)])
    many = fleet.fault_raises_many(
        {"gw-001": ["lampFailure"], "gw-002": ["relayFailure", "lampFailure"], "gw-003": []}
    )
    assert {n: {f: e["payload"]["detail"] for f, e in fs.items()} for n, fs in many.items()} == {
        "gw-001": {"lampFailure": "second"},
        "gw-002": {"relayFailure": "relay"},
    }


def test_two_workers_ingesting_overlapping_batches_store_each_row_once(store_target, fleet):
    """Two connections (as two serve workers) write batches that overlap in every table,
    in opposite orders: no deadlock, no failure, each row once."""
    now = time.time()
    nodes = [n.id for n in fleet.nodes()]
    msgs = []
    for k in range(40):
        for n in nodes:
            t = T0 + 60 * k
            msgs.append((n, "tele", tele(t, level=k % 100), now))
            msgs.append((n, "state", state(t, level=k % 100), now))
            if k % 10 == 0:
                msgs.append((n, "event", event(t, "lampFailure"), now))
    batches = [msgs[i : i + 50] for i in range(0, len(msgs), 50)]
    errors: list[BaseException] = []

    def work(order) -> None:
        try:
            with Store(store_target) as s:
                for b in order:
                    s.ingest(b)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [
        threading.Thread(target=work, args=(batches,)),
        threading.Thread(target=work, args=([b[::-1] for b in reversed(batches)],)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert fleet.telemetry_count() == 40 * len(nodes)
    assert len(fleet.events(limit=1000)) == 4 * len(nodes)
    assert {s["level"] for s in fleet.status(fleet.nodes())} == {39}


# -- partitions and retention ------------------------------------------------------------


def test_retention_is_a_setting_and_prune_keeps_the_last_days(store):
    today = int(time.time() // DAY)
    now = time.time()
    days = [today - 5, today - 3, today - 1, today]
    store.ingest([("n1", "tele", tele(d * DAY + 3600), now) for d in days])
    assert store.retention() is None
    assert store.prune()["deleted"] == 0
    with pytest.raises(StoreError, match="at least 1"):
        store.set_retention(0)
    store.set_retention(2)
    assert store.retention() == 2
    out = store.prune()
    assert out["deleted"] == 2 and out["cutoff"] == (today - 2) * DAY
    assert [r[0] for r in store.energy_series("n1", 0, 2e10)] == [
        (today - 1) * DAY + 3600,
        today * DAY + 3600,
    ]
    # telemetry older than the window is not stored again
    store.ingest([("n1", "tele", tele((today - 4) * DAY), now)])
    assert store.telemetry_count() == 2
    if store.pg:  # whole partitions went, one per day
        assert out["dropped"] == [iso((today - 5) * DAY)[:10], iso((today - 3) * DAY)[:10]]
        assert store.partitions() == [today - 1, today]
    store.set_retention(None)
    assert store.retention() is None


def test_postgresql_makes_a_partition_for_each_day_ingest_sees(postgres):
    with Store(postgres) as s:
        assert s.partitions() == []
        day = T0 // DAY
        now = time.time()
        s.ingest([("n1", "tele", tele(T0 + i * 43200), now) for i in range(5)])
        assert s.partitions() == [day, day + 1, day + 2]
        with Store(postgres) as other:  # another worker, its own partition cache
            other.ingest([("n2", "tele", tele(T0 + 86400), now)])
        rows = s.db.execute(
            "SELECT tableoid::regclass::text AS part, COUNT(*) AS n FROM telemetry"
            " GROUP BY 1 ORDER BY 1"
        ).fetchall()
        assert [(r["part"], r["n"]) for r in rows] == [
            (f"telemetry_p{iso(d * DAY)[:10].replace('-', '')}", n)
            for d, n in ((day, 2), (day + 1, 3), (day + 2, 1))
        ]


def test_partitions_dropped_by_another_store_are_made_again(postgres):
    today = int(time.time() // DAY)
    now = time.time()
    with Store(postgres) as a, Store(postgres) as b:
        a.ingest([("n1", "tele", tele(today * DAY - 3600), now)])  # yesterday
        b.set_retention(1)
        b.prune()
        b.set_retention(None)
        a.ingest([("n1", "tele", tele(today * DAY - 7200), now)])  # a's cache is stale
        assert a.telemetry_count() == 2


# -- views: filters and pages ------------------------------------------------------------


def test_fleet_status_filters_by_state_and_pages_by_node_id(fleet):
    now = time.time()
    fleet.ingest(
        [
            ("gw-000", "status", b"online", now),
            ("gw-001", "status", b"online", now),
            ("gw-002", "status", b"offline", now),
            ("gw-001", "state", state(T0, faults=["lampFailure"]), now),
            ("li-000", "status", b"online", now),
        ]
    )
    ids = lambda rows: [r["node"] if isinstance(r, dict) else r.id for r in rows]  # noqa: E731
    assert ids(fleet.fleet_status(state="online")) == ["gw-000", "gw-001", "li-000"]
    assert ids(fleet.fleet_status(state="offline")) == ["gw-002"]
    assert ids(fleet.fleet_status(site="gw", state="unknown")) == ["gw-003", "gw-004", "gw-005"]
    assert ids(fleet.fleet_status(state="not-online", site="li")) == ["li-001", "li-002"]
    assert ids(fleet.fleet_status(state="faulty")) == ["gw-001"]
    assert ids(fleet.nodes(group="high-street", state="online")) == ["gw-001"]
    with pytest.raises(StoreError, match="unknown state"):
        fleet.fleet_status(state="sleepy")
    pages, after = [], None
    while True:
        page = fleet.fleet_status(limit=4, after=after)
        if not page:
            break
        pages.append(ids(page))
        after = page[-1]["node"]
    assert pages == [
        ["gw-000", "gw-001", "gw-002", "gw-003"],
        ["gw-004", "gw-005", "li-000", "li-001"],
        ["li-002"],
    ]
    assert ids(fleet.nodes(site="gw", limit=2, after="gw-001")) == ["gw-002", "gw-003"]
    assert fleet.fleet_status(ids=["li-002"])[0]["groups"] == ["high-street"]
    assert fleet.fleet_status() == fleet.status(fleet.nodes())


# -- storage ------------------------------------------------------------------------------


def test_the_tele_codec_gives_back_what_it_took_apart():
    p = json.loads(tele(T0, evse={"present": True, "state": "B"}, rssi=-70))
    level, kwh, power, heap, rest = tele_codec.split(p, float(T0))
    assert (level, kwh, power, heap) == (50, 1.5, 31.5, 41234)
    assert "ts" not in rest and "level" not in rest and "kwh" not in rest["energy"]
    blob = tele_codec.pack(rest)
    assert len(blob) < len(json.dumps(rest)) / 2
    assert tele_codec.join(float(T0), level, kwh, power, heap, tele_codec.unpack(blob)) == p
    with pytest.raises(ValueError, match="unknown format"):
        tele_codec.unpack(b"\x09abc")


def test_telemetry_bytes_count_what_the_rows_take(store):
    before = store.telemetry_bytes()
    now = time.time()
    store.ingest([(f"n{i % 10}", "tele", tele(T0 + 60 * i), now) for i in range(2000)])
    assert store.telemetry_bytes() > before


# -- rollouts ------------------------------------------------------------------------------


def test_rollout_tables_on_each_backend(fleet):
    r = Rollouts(fleet)
    plan = Plan(canary="1", waves=(0.5, 1.0))
    rid = r.create(
        "b.bundle", "abc", "1.3.0", 1234, {"site": "gw"}, plan, {"gw-001": 0, "gw-002": 1}
    )
    with pytest.raises(RolloutError, match=f"rollout {rid} is running"):
        r.create("b.bundle", "abc", "1.3.0", 1234, {}, plan, {})
    got = r.get()
    assert (got["id"], got["state"], got["target"]) == (rid, "running", {"site": "gw"})
    assert r.plan(got) == plan
    r.set_node(rid, "gw-001", "downloading", progress=10, from_version="1.2.0")
    r.set_node(rid, "gw-002", "done", result=1)
    nodes = {n["node"]: n for n in r.nodes(rid)}
    assert nodes["gw-001"]["progress"] == 10 and nodes["gw-001"]["from_version"] == "1.2.0"
    assert summary(r.nodes(rid)) == {"downloading": 1, "done": 1}
    assert r.requeue(rid) == 1
    assert summary(r.nodes(rid)) == {"pending": 1, "done": 1}
    r.set_state(rid, "aborted", "by hand")
    refused = r.refuse("bad.bundle", "signature")
    assert r.get(refused)["state"] == "refused"
    assert r.get()["id"] == refused  # none active: the latest
    assert r.get(rid)["detail"] == "by hand"
    with pytest.raises(RolloutError, match="no rollout 999"):
        r.get(999)


def test_a_failed_batch_changes_nothing_and_the_next_one_is_stored(store, monkeypatch):
    """A batch that fails half-way (here: after its telemetry went in, before the latest
    state) is rolled back whole; the next batch is stored, on PostgreSQL through staging
    tables made again (the failed transaction took the ones it made with it)."""
    now = time.time()
    batch = [("n1", "tele", tele(T0 + 60 * i), now) for i in range(5)]
    real = store._upsert

    def fail(*a, **k):
        raise StoreError("disk full (injected)")

    monkeypatch.setattr(store, "_upsert", fail)
    with pytest.raises(StoreError, match="injected"):
        store.ingest(batch)
    assert store.telemetry_count() == 0
    monkeypatch.setattr(store, "_upsert", real)
    assert store.ingest(batch) == 5
    assert store.ingest(batch + [("n1", "tele", tele(T0 + 600), now)]) == 1
    assert store.telemetry_count() == 6
