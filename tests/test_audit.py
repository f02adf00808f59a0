"""The audit log (lanterna.audit, `lanterna audit`): every command from the CLI is
recorded with who, what, which nodes and what came of it, never with a secret; a store
that cannot take the record does not hide the command's own result."""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from lanterna.audit import Audit, outcome_detail, outcome_result, schedule_args, target_of
from lanterna.broker.mosquitto import free_port
from lanterna.errors import EXIT_BROKER, EXIT_FAILED, EXIT_MALFORMED, LanternaError
from lanterna.fleet.outcome import Outcome
from lanterna.ota.plan import Plan
from lanterna.ota.rollout_store import Rollouts
from lanterna.store import Store

REPO = Path(__file__).resolve().parents[1]
KEY = "11" * 32


@pytest.fixture
def store(store_target):
    with Store(store_target) as s:
        yield s


# -- the library --------------------------------------------------------------------------


def test_records_come_back_newest_first_with_their_nodes_and_args(store):
    a = Audit(store)
    first = a.record(
        "alice", "web", "dim", "site milan", ["m-1", "m-2"], {"level": 30}, "2 of 2 ok"
    )
    second = a.record("bob", "cli", "rollout.pause", "rollout 3", [], {}, "paused", "by hand")
    assert second > first
    rows = a.list()
    assert [r["id"] for r in rows] == [second, first]
    assert rows[1] == {
        "id": first,
        "at": pytest.approx(rows[1]["at"]),
        "who": "alice",
        "via": "web",
        "action": "dim",
        "target": "site milan",
        "nodes": ["m-1", "m-2"],
        "args": {"level": 30},
        "result": "2 of 2 ok",
        "detail": None,
    }
    assert rows[0]["detail"] == "by hand"


def test_the_log_is_filtered_by_who_action_family_time_and_limit(store):
    a = Audit(store)
    for who, action in [("alice", "dim"), ("bob", "rollout.pause"), ("alice", "rollout.abort"),
                        ("bob", "user.add"), ("alice", "rollouts_x")]:  # fmt: skip
        a.record(who, "cli", action, "t", [], {}, "ok")
    assert [r["action"] for r in a.list(who="alice")] == ["rollouts_x", "rollout.abort", "dim"]
    assert [r["action"] for r in a.list(action="rollout")] == ["rollout.abort", "rollout.pause"]
    assert [r["action"] for r in a.list(action="rollout.pause")] == ["rollout.pause"]
    assert [r["action"] for r in a.list(action="rollout_")] == []  # _ is not a wildcard
    assert len(a.list(limit=2)) == 2
    rows = a.list()
    mid = rows[2]["at"]
    assert all(r["at"] >= mid for r in a.list(since=mid))
    assert all(r["at"] < mid for r in a.list(until=mid))
    assert len(a.list(since=mid)) + len(a.list(until=mid)) == 5


def test_a_record_with_a_secret_or_an_unknown_channel_is_refused(store):
    a = Audit(store)
    for bad in ({"password": "hunter2hunter2"}, {"key": "00"}, {"token": "x"}):
        with pytest.raises(LanternaError) as e:
            a.record("alice", "cli", "user.add", "user bob", [], bad, "ok")
        assert e.value.exit_code == EXIT_MALFORMED and "secret" in e.value.message
        assert "hunter2" not in e.value.message
    with pytest.raises(LanternaError):
        a.record("alice", "phone", "dim", "all", [], {}, "ok")
    assert a.list() == []


def test_outcomes_are_summed_up_as_the_cli_summary_line_says_them():
    def outs(*statuses):
        return [Outcome(f"n{i}", s, error="busy" if s == "error" else None)
                for i, s in enumerate(statuses)]  # fmt: skip

    assert outcome_result(outs("ok", "ok", "ok")) == "3 of 3 ok"
    assert outcome_result(outs("ok", "timeout", "timeout")) == "1 of 3 ok, 2 timeout"
    assert outcome_result(outs("timeout", "error", "unsent", "ok")) == (
        "1 of 4 ok, 1 error, 1 timeout, 1 unsent"
    )
    assert outcome_detail(outs("ok", "ok")) is None
    assert outcome_detail(outs("ok", "error", "timeout")) == "n1 error (busy); n2 timeout"
    assert len(outcome_detail(outs(*["timeout"] * 200)) or "") <= 500


def test_targets_and_schedules_are_kept_briefly():
    assert target_of(["g-4"]) == "node g-4"
    assert target_of(["g-4", "g-5", "g-4"]) == "nodes g-4, g-5"
    assert target_of([f"g-{i}" for i in range(10)]) == "nodes g-0, g-1, g-2 +7"
    assert target_of(group="high-street") == "group high-street"
    assert target_of(site="milan") == "site milan"
    assert target_of(all_nodes=True) == "all"
    obj = json.loads((REPO / "docs/examples/schedule-greenwich.json").read_text())
    body = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    assert schedule_args(obj) == {
        "schedule": "greenwich-2026",
        "sha256": hashlib.sha256(body.encode()).hexdigest(),
        "version": 1,
    }


# -- the CLI against a real broker ----------------------------------------------------------


class Cli:
    def __init__(self, cmd: list[str], db: str, broker) -> None:
        self.cmd, self.db = cmd, db
        self.env = dict(os.environ, LANTERNA_BROKER=broker.url,
                        LANTERNA_BROKER_PASSWORD=broker.users["controller"])  # fmt: skip
        self.env.pop("LANTERNA_DB", None)

    def __call__(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([*self.cmd, "--db", self.db, *args], input=stdin, env=self.env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip

    def audit(self, *args: str) -> list[dict]:
        r = self("audit", "--json", *args)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)


@pytest.fixture
def run(lanterna_cmd, store_target, mosquitto, tmp_path) -> Cli:
    """The CLI on a store with one registered node that does not answer (no firmware
    runs for it): a command to it reaches the broker and times out."""
    c = Cli(lanterna_cmd, store_target, mosquitto)
    c.env["LANTERNA_HOME"] = str(tmp_path / "home")  # the OTA keys
    for args in (("site", "add", "greenwich"),
                 ("node", "add", "gw-001", "--site", "greenwich", "--board", "sim",
                  "--key", KEY)):  # fmt: skip
        r = c(*args)
        assert r.returncode == 0, r.stderr
    return c


def test_a_dim_that_times_out_and_a_user_add_are_in_the_log(run, store_target):
    added = run("user", "add", "alice", "--role", "operator", "--generate")
    assert added.returncode == 0, added.stderr
    password = added.stdout.strip()
    r = run("dim", "30", "--node", "gw-001", "--timeout", "0.5", "--retries", "0")
    assert r.returncode == EXIT_FAILED, r.stderr
    assert "0 of 1 ok, 1 timeout" in r.stderr
    dim, add = run.audit()
    assert (dim["action"], dim["via"], dim["who"]) == ("dim", "cli", getpass.getuser())
    assert dim["target"] == "node gw-001" and dim["nodes"] == ["gw-001"]
    assert dim["args"] == {"level": 30, "fade_s": 0}
    assert dim["result"] == "0 of 1 ok, 1 timeout" and "gw-001 timeout" in dim["detail"]
    assert (add["action"], add["target"], add["args"]) == (
        "user.add", "user alice", {"role": "operator", "generated": True}
    )  # fmt: skip
    table = run("audit")
    assert table.returncode == 0 and "user.add" in table.stdout and "gw-001" in table.stdout
    for out in (table.stdout, table.stderr, r.stdout, r.stderr, json.dumps(run.audit())):
        assert password not in out
    if not store_target.startswith("postgresql"):
        assert password.encode() not in Path(store_target).read_bytes()
    assert [x["action"] for x in run.audit("--action", "user")] == ["user.add"]
    assert [x["action"] for x in run.audit("--who", "nobody-here")] == []
    bad = run("audit", "--since", "yesterday")
    assert bad.returncode == EXIT_MALFORMED and "--since" in bad.stderr


def test_a_schedule_push_is_logged_by_id_and_sha256_not_its_body(run):
    file = REPO / "docs/examples/schedule-greenwich.json"
    r = run("schedule", "push", str(file), "--group", "nobody", "--timeout", "0.5")
    assert r.returncode != 0  # an unknown group: nothing sent, nothing logged
    r = run("schedule", "push", str(file), "--site", "greenwich", "--timeout", "0.5",
            "--retries", "0")  # fmt: skip
    assert r.returncode == EXIT_FAILED, r.stderr
    (rec,) = run.audit()
    obj = json.loads(file.read_text())
    assert rec["action"] == "schedule" and rec["target"] == "site greenwich"
    assert rec["args"] == schedule_args(obj) and "profiles" not in json.dumps(rec)


def test_a_broker_that_cannot_be_reached_is_logged_as_not_sent(run):
    r = run("--broker", f"mqtt://127.0.0.1:{free_port()}", "identify", "--all", "--retries", "0")
    assert r.returncode == EXIT_BROKER, r.stderr
    (rec,) = run.audit()
    assert rec["action"] == "identify" and rec["target"] == "all"
    assert rec["result"].startswith("not sent: broker")


def test_a_store_that_refuses_the_record_warns_and_the_command_result_stands(run, store):
    # the audit table refuses every insert from now on
    if store.backend == "sqlite":
        store.db.execute(
            "CREATE TRIGGER no_audit BEFORE INSERT ON audit BEGIN"
            " SELECT RAISE(ABORT, 'audit refused for the test'); END"
        )
    else:
        store.db.execute(
            "CREATE FUNCTION no_audit() RETURNS trigger LANGUAGE plpgsql AS"
            " $$BEGIN RAISE EXCEPTION 'audit refused for the test'; END$$"
        )
        store.db.execute(
            "CREATE TRIGGER no_audit BEFORE INSERT ON audit FOR EACH ROW"
            " EXECUTE FUNCTION no_audit()"
        )
    r = run("dim", "40", "--node", "gw-001", "--timeout", "0.5", "--retries", "0", "--json")
    assert r.returncode == EXIT_FAILED
    assert [x["status"] for x in json.loads(r.stdout)] == ["timeout"]
    warnings = [ln for ln in r.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and "the audit record could not be written" in warnings[0]
    assert "audit refused for the test" in warnings[0]
    assert run.audit() == []


def test_rollout_pause_and_abort_are_logged(run, store):
    rid = Rollouts(store).create(
        "b.ota", "ab" * 32, "0.2.0", 100, {"all": True}, Plan(), {"gw-001": 0}
    )
    assert run("ota", "pause", str(rid)).returncode == 0
    assert run("ota", "abort", str(rid)).returncode == 0
    again = run("ota", "pause", str(rid))
    assert again.returncode == EXIT_FAILED  # aborted: nothing to pause, nothing logged
    abort, pause = run.audit("--action", "rollout")
    assert (pause["action"], pause["target"], pause["result"]) == (
        "rollout.pause", f"rollout {rid}", "paused"
    )  # fmt: skip
    assert (abort["action"], abort["result"], abort["nodes"]) == (
        "rollout.abort", "aborted", ["gw-001"]
    )  # fmt: skip
    assert abort["args"] == {"rollout": rid, "version": "0.2.0", "was": "paused"}


def test_a_refused_rollout_is_logged_with_why(run, tmp_path):
    assert run("ota", "keygen").returncode == 0
    bogus = tmp_path / "bogus.ota"
    bogus.write_bytes(b"not a bundle")
    r = run("ota", "rollout", str(bogus), "--site", "greenwich")
    assert r.returncode == EXIT_MALFORMED, r.stderr
    (rec,) = run.audit()
    assert (rec["action"], rec["target"], rec["result"]) == (
        "rollout.start", "site greenwich", "refused: the bundle"
    )  # fmt: skip
    assert rec["args"]["bundle"] == str(bogus) and rec["detail"]
