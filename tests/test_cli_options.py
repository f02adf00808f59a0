"""What every `lanterna` command shares: the global options, where they may stand, and
one line with its exit status for every error (docs/cli.md, "Exit statuses")."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lanterna.cli import cli
from lanterna.context import Ctx, write_config
from lanterna.errors import EXIT_MALFORMED, LanternaError
from lanterna.store import Store, StoreError


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("LANTERNA_HOME", str(tmp_path / "home"))
    for k in ("LANTERNA_BROKER", "LANTERNA_BROKER_PASSWORD", "LANTERNA_BROKER_USER"):
        monkeypatch.delenv(k, raising=False)
    return tmp_path / "home"


def invoke(*args: str):
    r = CliRunner().invoke(cli, list(args))
    assert "Traceback" not in r.output, r.output
    return r


@pytest.mark.parametrize("where", ["before", "after"])
def test_the_global_broker_option_works_before_and_after_the_command(where):
    # `lanterna serve --broker URL` used to be refused (no such option) while
    # `lanterna --broker URL serve` worked. A bad URL shows the option was read.
    opt = ["--broker", "http://nowhere:1"]
    args = [*opt, "serve"] if where == "before" else ["serve", *opt]
    r = invoke(*args)
    assert r.exit_code == EXIT_MALFORMED, r.output
    assert r.output.splitlines() == [
        "Error: broker: expected mqtt://HOST:PORT or mqtts://HOST:PORT, got 'http://nowhere:1'"
    ]


def test_the_global_db_option_works_after_the_command(tmp_path):
    db = tmp_path / "elsewhere.db"
    r = invoke("site", "add", "greenwich", "--db", str(db))
    assert r.exit_code == 0, r.output
    assert [s["name"] for s in Store(db).sites()] == ["greenwich"]
    assert not (tmp_path / "home" / "lanterna.db").exists()


def test_every_subcommand_says_it_takes_the_global_options():
    for args in (["serve"], ["status"], ["dim"], ["ota", "status"], ["node", "list"]):
        r = invoke(*args, "--help")
        assert r.exit_code == 0 and "--db FILE" in r.output and "--broker" in r.output, args
    # `lanterna sim --broker` is the nodes' broker (default: the global one), its own.
    brokers = [p for p in cli.commands["sim"].params if "--broker" in getattr(p, "opts", ())]
    assert [p.name for p in brokers] == ["sim_broker"]


def test_a_library_error_is_one_line_with_its_own_status(monkeypatch):
    def boom(_self):
        raise LanternaError("the store is on fire", 6)

    monkeypatch.setattr(Ctx, "store", boom)
    r = invoke("site", "list")
    assert (r.exit_code, r.output) == (6, "Error: the store is on fire\n")


def test_a_corrupt_config_file_is_refused_and_left_as_it_was(home):
    home.mkdir(parents=True)
    cfg = home / "config.json"
    cfg.write_text('{"broker": "mqtt://127.0.0.1:1883",')
    with pytest.raises(LanternaError) as e:
        write_config(home, {"broker_password": "x"})
    assert e.value.exit_code == EXIT_MALFORMED and "config.json" in str(e.value)
    assert cfg.read_text() == '{"broker": "mqtt://127.0.0.1:1883",'
    # A command that reads it says so in one line, with status 4.
    r = invoke("serve")
    assert r.exit_code == EXIT_MALFORMED and r.output.count("\n") == 1, r.output


def test_provisioning_does_not_rekey_a_node_when_the_store_fails(monkeypatch, tmp_path):
    # A store error while looking up the node used to be taken for "a new node" and gave
    # it a fresh key, so the pole and the store no longer agreed on it.
    from lanterna.device import provision as pv

    made = []
    monkeypatch.setattr(pv, "new_key", lambda: made.append(1) or b"\0" * 32)

    def broken(self, node):
        raise StoreError("database disk image is malformed")

    monkeypatch.setattr(Store, "node", broken)
    r = invoke(
        "--broker", "mqtt://127.0.0.1:1883",
        "provision", "--port", "socket://127.0.0.1:9", "--board", "sim-s3",
        "--node", "greenwich-101", "--site", "greenwich", "--dry-run",
    )  # fmt: skip
    assert r.exit_code == 6 and "malformed" in r.output, r.output
    assert made == []


def test_malformed_values_exit_4_with_the_option_named():
    for args, says in [
        (["dim", "150", "--all"], "level: 150 is outside 0-100"),
        (["dim", "half", "--all"], "level: 'half' is not 0-100 or auto"),
        (["dim", "30", "--for", "8d", "--all"], "--for: at most 7 days"),
        (["dim", "30", "--for", "soon", "--all"], "--for: 'soon' is not a duration"),
        (["ota", "rollout", __file__, "--all", "--max-failures", "lots"], "--max-failures"),
    ]:
        r = invoke(*args)
        assert r.exit_code == EXIT_MALFORMED and says in r.output, (args, r.output)
        assert r.output.count("\n") == 1, r.output


def test_json_output_is_clean_json(tmp_path):
    r = invoke("site", "add", "greenwich", "--json")
    assert r.exit_code == 0 and json.loads(r.output)["name"] == "greenwich"
