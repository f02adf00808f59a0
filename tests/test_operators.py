"""The web console's operators (lanterna.operators, `lanterna user`): roles, scrypt
password hashes, and passwords that never show anywhere but where they are typed or,
with --generate, printed once."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess

import pytest
from click.testing import CliRunner

from lanterna import operators as op
from lanterna.cli import cli
from lanterna.errors import EXIT_FAILED, EXIT_MALFORMED, EXIT_UNKNOWN, LanternaError
from lanterna.operators import Operators, can
from lanterna.store import Store

PW = "correct horse battery staple"


@pytest.fixture
def store(store_target):
    with Store(store_target) as s:
        yield s


@pytest.fixture
def ops(store):
    return Operators(store)


def _hashes(store) -> dict[str, str]:
    return {r["name"]: r["hash"] for r in store.db.execute("SELECT name, hash FROM operators")}


# -- the library --------------------------------------------------------------------------


def test_verify_gives_the_role_for_the_right_password_only(ops):
    ops.add("alice", "operator", PW)
    assert ops.verify("alice", PW) == "operator"
    assert ops.verify("alice", PW + "!") is None
    assert ops.verify("alice", "") is None
    assert ops.verify("mallory", PW) is None


def test_the_stored_hash_is_salted_scrypt_and_never_the_password(ops, store):
    ops.add("alice", "viewer", PW)
    ops.add("bob", "viewer", PW)
    h = _hashes(store)
    assert h["alice"] != h["bob"]  # a salt each
    for name in ("alice", "bob"):
        scheme, n, r, p, salt, key = h[name].split("$")
        assert (scheme, n, r, p) == ("scrypt", str(2**14), "8", "1")
        assert len(bytes.fromhex(salt)) == 16 and len(bytes.fromhex(key)) == 32
        assert PW not in h[name]
        expect = hashlib.scrypt(PW.encode(), salt=bytes.fromhex(salt), n=2**14, r=8, p=1, dklen=32)
        assert key == expect.hex()
        assert ops.verify(name, PW) == "viewer"


def test_get_and_list_never_hold_the_hash(ops):
    ops.add("alice", "admin", PW)
    ops.add("bob", "viewer", PW)
    assert set(ops.get("alice")) == {"name", "role", "created", "changed"}
    assert [(o["name"], o["role"]) for o in ops.list()] == [("alice", "admin"), ("bob", "viewer")]
    assert all("hash" not in o for o in ops.list())
    assert ops.count() == 2


def test_a_hash_made_with_other_parameters_still_verifies_and_a_broken_one_never(ops):
    salt = bytes(range(16))
    key = hashlib.scrypt(PW.encode(), salt=salt, n=2**10, r=4, p=2, dklen=24)
    stored = f"scrypt${2**10}$4$2${salt.hex()}${key.hex()}"
    assert op.password_matches(PW, stored)
    assert not op.password_matches(PW + "x", stored)
    for broken in ("", "plain", stored.replace("scrypt", "bcrypt"), stored[:-2] + "zz",
                   f"scrypt$1000$4$2${salt.hex()}${key.hex()}",  # n not a power of 2
                   f"scrypt${2**30}$8$1${salt.hex()}${key.hex()}"):  # fmt: skip
        assert not op.password_matches(PW, broken), broken


def test_a_short_password_is_refused_and_nothing_is_stored(ops):
    with pytest.raises(LanternaError) as e:
        ops.add("alice", "admin", "elevenchars")
    assert e.value.exit_code == EXIT_MALFORMED
    assert "12 characters" in e.value.message and "elevenchars" not in e.value.message
    assert ops.count() == 0


@pytest.mark.parametrize("name", ["A", "a", "Alice", "1alice", "al ice", "al/ice", "a" * 33, ""])
def test_a_malformed_name_is_refused_with_exit_4(ops, name):
    with pytest.raises(LanternaError) as e:
        ops.add(name, "viewer", PW)
    assert e.value.exit_code == EXIT_MALFORMED and "operator name" in e.value.message
    assert ops.count() == 0


def test_names_of_the_allowed_shape_are_taken(ops):
    for name in ("al", "alice.smith", "ops_2", "j-doe", "a" * 32):
        ops.add(name, "viewer", PW)
    assert ops.count() == 5


def test_a_taken_name_is_refused_and_the_first_operator_is_unchanged(ops):
    ops.add("alice", "viewer", PW)
    with pytest.raises(LanternaError) as e:
        ops.add("alice", "admin", "another long password")
    assert e.value.exit_code == EXIT_FAILED and "exists" in e.value.message
    assert ops.get("alice")["role"] == "viewer"
    assert ops.verify("alice", PW) == "viewer"


def test_an_unknown_role_is_refused(ops):
    with pytest.raises(LanternaError) as e:
        ops.add("alice", "root", PW)
    assert e.value.exit_code == EXIT_MALFORMED and "viewer, operator, admin" in e.value.message
    ops.add("alice", "viewer", PW)
    with pytest.raises(LanternaError):
        ops.set_role("alice", "root")
    assert ops.get("alice")["role"] == "viewer"


def test_an_unknown_operator_is_exit_3_everywhere(ops):
    for call in (
        lambda: ops.get("zed"),
        lambda: ops.set_password("zed", PW),
        lambda: ops.set_role("zed", "viewer"),
        lambda: ops.remove("zed"),
    ):
        with pytest.raises(LanternaError) as e:
            call()
        assert e.value.exit_code == EXIT_UNKNOWN and "zed" in e.value.message


def test_a_new_password_replaces_the_old(ops):
    ops.add("alice", "operator", PW)
    ops.set_password("alice", "a different passphrase")
    assert ops.verify("alice", PW) is None
    assert ops.verify("alice", "a different passphrase") == "operator"
    with pytest.raises(LanternaError):
        ops.set_password("alice", "short")
    assert ops.verify("alice", "a different passphrase") == "operator"


def test_roles_change_and_the_last_admin_is_kept(ops):
    ops.add("alice", "admin", PW)
    ops.add("bob", "operator", PW)
    with pytest.raises(LanternaError) as e:
        ops.set_role("alice", "viewer")
    assert "last admin" in e.value.message
    with pytest.raises(LanternaError):
        ops.remove("alice")
    ops.set_role("bob", "admin")
    ops.set_role("alice", "viewer")
    assert ops.verify("alice", PW) == "viewer"
    ops.remove("alice")
    assert [o["name"] for o in ops.list()] == ["bob"]


def test_an_unknown_name_costs_one_scrypt_as_a_wrong_password_does(ops, monkeypatch):
    ops.add("alice", "viewer", PW)
    calls = []
    real = hashlib.scrypt

    def counted(*a, **kw):
        calls.append(kw["n"])
        return real(*a, **kw)

    monkeypatch.setattr(op.hashlib, "scrypt", counted)
    ops.verify("alice", "wrong password here")
    ops.verify("nobody", "wrong password here")
    ops.verify("Not A Name!", "wrong password here")
    assert calls == [2**14, 2**14, 2**14]


def test_who_may_do_what():
    assert can("viewer", "view") and not can("viewer", "dim")
    for action in ("dim", "identify", "schedule.push", "fault.ack", "rollout.pause",
                   "rollout.resume", "rollout.abort"):  # fmt: skip
        assert can("operator", action) and can("admin", action) and not can("viewer", action)
    for action in ("user.add", "user.remove", "user.passwd", "user.role"):
        assert can("admin", action) and not can("operator", action)
    assert not can("admin", "no.such.action") and not can("root", "view") and not can(None, "view")


def test_generated_passwords_are_long_random_and_accepted():
    pws = {op.generate_password() for _ in range(20)}
    assert len(pws) == 20
    assert all(len(p) == 20 and op.check_password(p) for p in pws)


# -- the CLI ------------------------------------------------------------------------------


def _run(cmd, db, *args, stdin=None):
    env = dict(os.environ)
    env.pop("LANTERNA_DB", None)
    return subprocess.run(
        [*cmd, "--db", db, *args], input=stdin, capture_output=True, text=True, timeout=60, env=env
    )


def test_user_add_generate_prints_the_password_once_and_it_verifies(lanterna_cmd, store_target):
    r = _run(lanterna_cmd, store_target, "user", "add", "alice", "--role", "admin", "--generate")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1 and len(lines[0]) == 20
    pw = lines[0]
    assert pw not in r.stderr and "alice" in r.stderr
    with Store(store_target) as s:
        assert Operators(s).verify("alice", pw) == "admin"
        assert pw not in json.dumps(Operators(s).list())
    listed = _run(lanterna_cmd, store_target, "user", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (got,) = json.loads(listed.stdout)
    assert set(got) == {"name", "role", "created", "changed"}
    assert (got["name"], got["role"]) == ("alice", "admin")
    assert "hash" not in listed.stdout and "scrypt" not in listed.stdout
    if not store_target.startswith("postgresql"):
        assert pw.encode() not in open(store_target, "rb").read()


def test_user_add_from_stdin_and_its_refusals(lanterna_cmd, store_target):
    ok = _run(lanterna_cmd, store_target, "user", "add", "bob", "--role", "operator",
              "--password-stdin", stdin=PW + "\n")  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert PW not in ok.stdout + ok.stderr
    short = _run(lanterna_cmd, store_target, "user", "add", "carol", "--role", "viewer",
                 "--password-stdin", stdin="tooshort\n")  # fmt: skip
    assert short.returncode == EXIT_MALFORMED and "tooshort" not in short.stdout + short.stderr
    bad = _run(lanterna_cmd, store_target, "user", "add", "Carol", "--role", "viewer", "--generate")
    assert bad.returncode == EXIT_MALFORMED and bad.stdout == ""  # no password made for it
    role = _run(lanterna_cmd, store_target, "user", "add", "dave", "--role", "god", "--generate")
    assert role.returncode == EXIT_MALFORMED and role.stdout == ""
    taken = _run(lanterna_cmd, store_target, "user", "add", "bob", "--role", "admin", "--generate")
    assert taken.returncode == EXIT_FAILED and "exists" in taken.stderr and taken.stdout == ""
    gone = _run(lanterna_cmd, store_target, "user", "remove", "zed")
    assert gone.returncode == EXIT_UNKNOWN and "zed" in gone.stderr
    with Store(store_target) as s:
        assert [(o["name"], o["role"]) for o in Operators(s).list()] == [("bob", "operator")]
        assert Operators(s).verify("bob", PW) == "operator"


def test_user_passwd_role_and_remove(lanterna_cmd, store_target):
    _run(lanterna_cmd, store_target, "user", "add", "alice", "--role", "admin", "--generate")
    _run(lanterna_cmd, store_target, "user", "add", "bob", "--role", "viewer", "--generate")
    r = _run(lanterna_cmd, store_target, "user", "passwd", "bob", "--generate")
    assert r.returncode == 0, r.stderr
    pw = r.stdout.strip()
    r = _run(lanterna_cmd, store_target, "user", "role", "bob", "operator")
    assert r.returncode == 0 and "bob is operator (was viewer)" in r.stdout
    with Store(store_target) as s:
        assert Operators(s).verify("bob", pw) == "operator"
    r = _run(lanterna_cmd, store_target, "user", "remove", "alice")
    assert r.returncode == EXIT_FAILED and "last admin" in r.stderr
    r = _run(lanterna_cmd, store_target, "user", "remove", "bob")
    assert r.returncode == 0, r.stderr
    r = _run(lanterna_cmd, store_target, "user", "list")
    assert "alice" in r.stdout and "bob" not in r.stdout


def test_the_prompt_asks_twice_and_never_echoes(tmp_path):
    db = str(tmp_path / "lanterna.db")
    runner = CliRunner()
    typed = f"{PW}\nnot the same one\n{PW}\n{PW}\n"
    r = runner.invoke(cli, ["--db", db, "user", "add", "alice", "--role", "admin"], input=typed)
    assert r.exit_code == 0, r.output
    assert "do not match" in r.output and PW not in r.output
    with Store(db) as s:
        assert Operators(s).verify("alice", PW) == "admin"
