"""The CLI on both store backends: --db and LANTERNA_DB with a path or a PostgreSQL URL,
the fleet views' filters and pages, the store commands, and a store that cannot be
reached named without its password."""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

from lanterna.cli import cli
from lanterna.store import Store
from lanterna.store.migrations import MIGRATIONS

KEY = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"


@pytest.fixture
def run(store_target):
    def run(*args: str, code: int = 0, env: dict[str, str] | None = None, db: bool = True):
        argv = (["--db", store_target] if db else []) + list(args)
        r = CliRunner().invoke(cli, argv, env=env)
        assert r.exit_code == code, r.output
        assert "Traceback" not in r.output
        return r

    return run


@pytest.fixture
def fleet(run, store_target, tmp_path):
    run("site", "add", "greenwich")
    key = tmp_path / "k.hex"
    key.write_text(KEY + "\n")
    for i in range(7):
        run("node", "add", f"gw-{i:03d}", "--site", "greenwich", "--board", "sim",
            "--key-file", str(key))  # fmt: skip
    run("group", "create", "high-street")
    run("group", "add", "high-street", "gw-001", "gw-002", "gw-005")
    now = time.time()
    st = {"v": 1, "ts": "2026-11-25T17:00:00Z", "level": 30, "mode": "schedule", "fw": "1.2.0",
          "faults": ["lampFailure"]}  # fmt: skip
    with Store(store_target) as s:
        s.ingest(
            [(f"gw-{i:03d}", "status", b"online" if i % 2 else b"offline", now) for i in range(5)]
            + [("gw-003", "state", json.dumps(st).encode(), now)]
        )
    return store_target


def _ids(r) -> list[str]:
    return [row["node"] for row in json.loads(r.stdout)]


def test_status_filters_and_pages_in_the_store(fleet, run):
    assert _ids(run("status", "--json")) == [f"gw-{i:03d}" for i in range(7)]
    assert _ids(run("status", "--state", "online", "--json")) == ["gw-001", "gw-003"]
    assert _ids(run("status", "--offline", "--json")) == ["gw-000", "gw-002", "gw-004",
                                                           "gw-005", "gw-006"]  # fmt: skip
    assert _ids(run("status", "--state", "unknown", "--json")) == ["gw-005", "gw-006"]
    assert _ids(run("status", "--faulty", "--online", "--json")) == ["gw-003"]
    assert _ids(run("status", "--group", "high-street", "--state", "offline", "--json")) == [
        "gw-002"
    ]
    page = run("status", "--limit", "3", "--after", "gw-002", "--json")
    assert _ids(page) == ["gw-003", "gw-004", "gw-005"]
    # the summary is the whole selection's, counted in SQL; the page names the next one
    assert "7 nodes, 2 online, 1 with faults; 3 shown (next page: --after gw-005;" in page.stderr
    last = run("status", "--limit", "3", "--after", "gw-003", "--json")
    assert _ids(last) == ["gw-004", "gw-005", "gw-006"] and "next page" not in last.stderr
    r = run("status", "--all", "--limit", "3", code=4)
    assert "--all and --limit" in r.output
    run("status", "--state", "sleepy", code=2)
    r = run("status", "--site", "nowhere", code=3)
    assert "unknown site 'nowhere'" in r.output


def test_node_list_and_faults_page_too(fleet, run):
    r = run("node", "list", "--limit", "2", "--after", "gw-000", "--json")
    assert [n["node"] for n in json.loads(r.stdout)] == ["gw-001", "gw-002"]
    assert "2 shown (next page: --after gw-002; every node: --all)" in r.stderr
    assert len(json.loads(run("node", "list", "--all", "--json").stdout)) == 7
    assert json.loads(r.stdout)[0]["groups"] == ["high-street"]
    r = run("node", "list", "--state", "online", "--group", "high-street", "--json")
    assert [n["node"] for n in json.loads(r.stdout)] == ["gw-001"]
    faults = json.loads(run("faults", "--json").stdout)
    assert [(f["node"], f["fault"]) for f in faults] == [("gw-003", "lampFailure")]
    assert json.loads(run("faults", "--after", "gw-003", "--json").stdout) == []


def test_store_retention_is_set_shown_and_applied(fleet, run):
    info = json.loads(run("store", "info", "--json").stdout)
    assert info["schema_version"] == len(MIGRATIONS) and info["retention_days"] is None
    assert info["backend"] == ("sqlite" if "://" not in fleet else "postgresql")
    r = run("store", "retention", "--days", "0", code=4)
    assert "at least 1" in r.output
    run("store", "retention", "--days", "30", "--off", code=4)
    assert json.loads(run("store", "info", "--json").stdout)["retention_days"] is None
    assert "30 days" in run("store", "retention", "--days", "30").stdout
    out = json.loads(run("store", "prune", "--json").stdout)
    assert out["retention_days"] == 30 and out["deleted"] == 0
    assert "all telemetry is kept" in run("store", "retention", "--off").stdout


def test_lanterna_db_names_the_store(fleet, run):
    r = run("node", "list", "--json", db=False, env={"LANTERNA_DB": fleet})
    assert len(json.loads(r.stdout)) == 7


def test_an_unreachable_postgresql_is_named_without_its_password(run):
    r = run(
        "node", "list", db=False, code=6,
        env={"LANTERNA_DB": "postgresql://lamp:hunter2@127.0.0.1:1/city"},
    )  # fmt: skip
    assert "postgresql://lamp@127.0.0.1:1/city" in r.output
    assert "hunter2" not in r.output
