"""The store at city scale, on SQLite and on PostgreSQL (JSON on stdout).

For each backend, in one run:

- views: a fleet of --nodes nodes (250,000 by default) across 10 sites, every node with
  a status and a state (ingested through Store.ingest), 5 % of them faulty; the time of
  the fleet views as the CLI runs them (``status``: the whole fleet and a page of 100;
  ``status --site --state offline --limit 100``; ``faults``; ``node list --limit 100
  --after``), each the best of --repeat. Baselines in the same run: the view path this
  replaced (one status query and one group query per node, the state's JSON parsed per
  node), and the site page with its index dropped;
- ingest: --rows telemetry rows (the payload lamp.telemetry.snapshot sends) through
  Store.ingest in batches of --batch: rows per second, and again for the same batches
  redelivered (all skipped as already there);
- storage: bytes per telemetry row, table and indexes (SQLite: dbstat; PostgreSQL:
  pg_total_relation_size over the partitions), against the layout before migration 4
  (the whole JSON payload beside its columns, a unique (node, ts) index) filled with
  the same rows in the same database.

PostgreSQL is a throw-away cluster (tests/pgserver.py: initdb on a free port, fsync
off, removed at the end). Timings are wall clock on a shared machine: compare the ratios
of the same run, not runs on different days.

    .venv/bin/python bench/bench_store.py                       # 250,000 nodes, both
    .venv/bin/python bench/bench_store.py --nodes 20000 --rows 20000 --backends sqlite
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_ingest import tele  # noqa: E402  (the snapshot's fields, as bench_ingest sends)

from lanterna.store import Store  # noqa: E402

T0 = 1795600000
SITES = 10
KEY_HEX = "00" * 32


def best(fn, repeat: int) -> tuple[float, object]:
    out, t = None, float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        t = min(t, time.perf_counter() - t0)
    return t, out


def populate(s: Store, n: int) -> None:
    now = time.time()
    for i in range(SITES):
        s.put_site(f"site{i}", 51.0 + i / 10, 0.0, "Europe/London")
    rows = [(f"node-{k:06d}", f"site{k % SITES}", "sim", KEY_HEX, 50.0, 0, now) for k in range(n)]
    with s.tx() as db:
        db.executemany(
            "INSERT INTO nodes (id, site, board, key_hex, rated_w, ctr, added)"
            " VALUES (?,?,?,?,?,?,?)",
            rows,
        )
        db.execute("INSERT INTO groups VALUES ('high-street', '')")
        db.executemany(
            "INSERT INTO group_members VALUES ('high-street', ?)",
            [(r[0],) for r in rows[::50]],
        )
    msgs = []
    for k in range(n):
        node = f"node-{k:06d}"
        faults = ["lampFailure"] if k % 20 == 0 else []
        st = {"v": 1, "ts": "2026-11-25T17:00:00Z", "level": k % 101, "mode": "schedule",
              "fw": "1.2.0", "faults": faults}  # fmt: skip
        msgs.append((node, "status", b"offline" if k % 7 == 0 else b"online", now))
        msgs.append((node, "state", json.dumps(st).encode(), now))
    for i in range(0, len(msgs), 10000):
        s.ingest(msgs[i : i + 10000])
    s.db.execute("ANALYZE")  # both backends: plan the views on the filled tables


def old_status(s: Store) -> int:
    """The view path before: every node, then one group query and one status query per
    node, and its JSON parsed (what Store.nodes + Store.status did)."""
    out = 0
    for r in s.db.execute("SELECT * FROM nodes ORDER BY id").fetchall():
        s.db.execute("SELECT grp FROM group_members WHERE node=? ORDER BY grp", (r["id"],))
        st = s.db.execute("SELECT * FROM node_status WHERE node=?", (r["id"],)).fetchone()
        state = json.loads(st["state"]) if st and st["state"] else {}
        out += bool(state.get("faults"))
    return out


def cli_time(target: str, args: list[str], repeat: int) -> float:
    from click.testing import CliRunner

    from lanterna.cli import cli

    def once() -> None:
        r = CliRunner().invoke(cli, ["--db", target, *args])
        assert r.exit_code == 0, r.output[-500:]

    return best(once, repeat)[0]


def views(s: Store, target: str, n: int, repeat: int) -> dict[str, object]:
    out: dict[str, object] = {}
    last = f"node-{n // 2:06d}"
    out["store_fleet_status_all_s"], rows = best(lambda: s.fleet_status(), repeat)
    assert len(rows) == n  # type: ignore[arg-type]
    out["store_fleet_status_page100_s"] = best(lambda: s.fleet_status(limit=100), repeat)[0]
    site_page = lambda: s.fleet_status(site="site3", state="offline", limit=100, after=last)  # noqa: E731
    out["store_site_offline_page100_s"] = best(site_page, repeat)[0]
    out["store_faulty_all_s"] = best(lambda: s.fleet_status(state="faulty"), repeat)[0]
    out["store_nodes_page100_s"] = best(lambda: s.nodes(limit=100, after=last), repeat)[0]
    out["store_nodes_all_s"] = best(lambda: s.nodes(), repeat)[0]
    out["baseline_old_per_node_status_s"] = best(lambda: old_status(s), 1)[0]
    out["ratio_old_vs_fleet_status_all"] = round(
        out["baseline_old_per_node_status_s"] / out["store_fleet_status_all_s"],  # type: ignore[operator]
        1,
    )
    # the site page without its index (nodes_site), then the index back
    s.db.execute("DROP INDEX nodes_site")
    out["baseline_site_offline_page100_no_index_s"] = best(site_page, repeat)[0]
    s.db.execute("CREATE INDEX nodes_site ON nodes(site, id)")
    cli: dict[str, float] = {}
    for name, args in (
        ("status", ["status"]),  # the default: the first page and the whole fleet's counts
        ("status_json", ["status", "--json"]),
        ("status_all_json", ["status", "--all", "--json"]),
        ("status_all_table", ["status", "--all"]),
        ("status_limit100", ["status", "--limit", "100"]),
        ("status_site_offline_limit100", ["status", "--site", "site3", "--state", "offline",
                                          "--limit", "100", "--after", last]),
        ("faults", ["faults"]),
        ("node_list_limit100_after", ["node", "list", "--limit", "100", "--after", last]),
    ):  # fmt: skip
        cli[name + "_s"] = round(cli_time(target, args, repeat), 4)
    out["cli"] = cli
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


OLD_SQLITE = (
    "CREATE TABLE tele_old (id INTEGER PRIMARY KEY, node TEXT NOT NULL, ts REAL NOT NULL,"
    " received REAL NOT NULL, level INTEGER, kwh REAL, power_w REAL, payload TEXT NOT NULL)"
)
OLD_PG = (
    "CREATE TABLE tele_old (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    " node TEXT NOT NULL, ts DOUBLE PRECISION NOT NULL, received DOUBLE PRECISION NOT NULL,"
    " level INTEGER, kwh DOUBLE PRECISION, power_w DOUBLE PRECISION, payload TEXT NOT NULL)"
)


def old_bytes(s: Store, msgs: list[tuple[str, str, bytes, float]]) -> float:
    """Bytes per row of the layout before migration 4, with the same rows."""
    with s.tx() as db:
        db.execute(OLD_PG if s.pg else OLD_SQLITE)
        db.execute("CREATE UNIQUE INDEX tele_old_node_ts ON tele_old(node, ts)")
        rows = []
        for node, _, raw, received in msgs:
            p = json.loads(raw)
            ts = time.mktime(time.strptime(p["ts"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
            e = p["energy"]
            rows.append((node, ts, received, p["level"], e["kwh"], e["power_w"], json.dumps(p)))
        db.executemany(
            "INSERT INTO tele_old (node, ts, received, level, kwh, power_w, payload)"
            " VALUES (?,?,?,?,?,?,?)",
            rows,
        )
    if s.pg:
        s.db.execute("VACUUM ANALYZE tele_old")
        r = s.db.execute("SELECT pg_total_relation_size('tele_old')").fetchone()
    else:
        r = s.db.execute(
            "SELECT SUM(pgsize) FROM dbstat WHERE name IN ('tele_old', 'tele_old_node_ts')"
        ).fetchone()
    size = int(r[0])
    s.db.execute("DROP TABLE tele_old")
    return size / len(msgs)


def ingest(s: Store, n_rows: int, batch: int) -> dict[str, object]:
    nodes = max(1, n_rows // 100)
    now = time.time()
    msgs = [
        (f"node-{k % nodes:06d}", "tele", tele(k // nodes).encode(), now) for k in range(n_rows)
    ]
    batches = [msgs[i : i + batch] for i in range(0, len(msgs), batch)]
    t0 = time.perf_counter()
    written = sum(s.ingest(b) for b in batches)
    dt = time.perf_counter() - t0
    assert written == n_rows, (written, n_rows)
    t0 = time.perf_counter()
    again = sum(s.ingest(b) for b in batches)
    dt_again = time.perf_counter() - t0
    assert again == 0
    if s.pg:
        s.db.execute("VACUUM ANALYZE telemetry")
    rows = s.telemetry_count()
    new_b = s.telemetry_bytes() / rows
    old_b = old_bytes(s, msgs)
    days = len(s.partitions()) if s.pg else None
    return {
        "rows": rows,
        "batch": batch,
        "rows_per_s": round(n_rows / dt),
        "us_per_row": round(dt / n_rows * 1e6, 1),
        "redelivered_rows_per_s": round(n_rows / dt_again),
        "bytes_per_row": round(new_b, 1),
        "baseline_bytes_per_row_before_migration_4": round(old_b, 1),
        "ratio_bytes_before_vs_now": round(old_b / new_b, 2),
        "partitions": days,
        "payload_bytes_json": len(msgs[0][2]),
    }


def run_backend(target: str, args: argparse.Namespace) -> dict[str, object]:
    with Store(target) as s:
        t0 = time.perf_counter()
        populate(s, args.nodes)
        fill = time.perf_counter() - t0
        out: dict[str, object] = {"nodes": args.nodes, "populate_s": round(fill, 1)}
        out["views"] = views(s, target, args.nodes, args.repeat)
        out["ingest"] = ingest(s, args.rows, args.batch)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", type=int, default=250_000)
    ap.add_argument("--rows", type=int, default=100_000, help="telemetry rows ingested")
    ap.add_argument("--batch", type=int, default=500, help="messages per Store.ingest")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--backends", default="sqlite,postgresql")
    args = ap.parse_args()
    result: dict[str, object] = {"bench": "store", "args": vars(args)}
    for b in args.backends.split(","):
        if b == "sqlite":
            with tempfile.TemporaryDirectory() as d:
                result["sqlite"] = run_backend(str(Path(d) / "lanterna.db"), args)
        elif b == "postgresql":
            import pgserver

            with pgserver.PgServer() as server:
                result["postgresql"] = run_backend(server.create_db(), args)
        else:
            ap.error(f"unknown backend {b!r}")
        print(json.dumps({b: result[b]}), file=sys.stderr, flush=True)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
