"""The console's HTTP API against a real `lanterna web` (uvicorn on loopback) over a real
store on both backends: sign-in and its cookie, CSRF, roles enforced by the server, the
sign-in limiter, bad input refused with what and where, the map's states, a node's
story, the live feed, faults, schedules (the node's own code, as the CLI), rollouts and
the audit log. A dim reaching a real node is tests/test_web_browser.py's."""

from __future__ import annotations

import http.client
import json
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from conftest import WAIT_S
from webconsole import LANTERNA, Web, add_user, start_web

from lanterna.ota.plan import Plan
from lanterna.ota.rollout_store import Rollouts
from lanterna.store import Store

KEY = bytes(range(32))
T0 = 1796200000.0  # node time of the stored telemetry
EXAMPLE = Path(__file__).parent.parent / "docs" / "examples" / "schedule-greenwich.json"


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def state(level, faults=(), mode="schedule") -> bytes:
    return json.dumps(
        {"v": 1, "ts": iso(T0), "level": level, "mode": mode, "fw": "1.2.0", "faults": faults}
    ).encode()


def tele(t: float, level: int, kwh: float) -> bytes:
    return json.dumps(
        {
            "v": 1,
            "ts": iso(t),
            "level": level,
            "source": "schedule",
            "energy": {"kwh": kwh, "power_w": 31.5, "switch_on": 2, "burn_h": 3.25},
            "faults": [],
            "sensors": {"bme280": {"fault": None, "temp_x10": [80, 85, 90, 6]}},
            "units": {"temp_x10": "degC"},
            "evse": None,
            "heap_free": 41234,
            "uptime_s": 600,
        }
    ).encode()


# node -> (level, faults, online): one of each state the map draws
FLEET = {
    "gw-001": (100, [], True),  # on
    "gw-002": (40, [], True),  # dimmed
    "gw-003": (0, [], True),  # off
    "gw-004": (80, ["lampFailure"], True),  # fault
    "gw-005": (60, [], False),  # offline
    "gw-006": None,  # unknown: never heard from
}
STATE_OF = {"gw-001": "on", "gw-002": "dimmed", "gw-003": "off", "gw-004": "fault",
            "gw-005": "offline", "gw-006": "unknown"}  # fmt: skip


class Client:
    """One browser's worth of HTTP: its cookie, its CSRF token."""

    def __init__(self, url: str, context: ssl.SSLContext | None = None) -> None:
        self.host, self.port = url.split("://")[1].split(":")
        self.tls = context
        self.cookie: str | None = None
        self.csrf: str | None = None
        self.set_cookie: str | None = None

    def req(self, method: str, path: str, body=None, headers=None, raw: bytes | None = None):
        if self.tls is not None:
            c = http.client.HTTPSConnection(self.host, int(self.port), timeout=WAIT_S,
                                            context=self.tls)  # fmt: skip
        else:
            c = http.client.HTTPConnection(self.host, int(self.port), timeout=WAIT_S)
        h = dict(headers or {})
        if self.cookie:
            h["Cookie"] = self.cookie
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        try:
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            text = r.read()
            sc = r.getheader("set-cookie")
            if sc:
                self.set_cookie = sc
                value = sc.split(";", 1)[0]
                self.cookie = None if value.endswith("=") or '=""' in value else value
            packed = r.getheader("content-encoding") is not None
            is_json = r.getheader("content-type", "").startswith("application/json")
            out = json.loads(text) if is_json and not packed else text
            return r.status, r, out
        finally:
            c.close()

    def write(self, path: str, body=None, token: str | None = "mine", **kw):
        h = dict(kw.pop("headers", {}))
        if token == "mine":
            token = self.csrf
        if token is not None:
            h["X-CSRF-Token"] = token
        if body is None and kw.get("raw") is None:
            body = {}
        return self.req("POST", path, body, headers=h, **kw)

    def sign_in(self, user: str, password: str) -> None:
        code, _, out = self.req("POST", "/api/signin", {"user": user, "password": password})
        assert code == 200, out
        self.csrf = out["csrf"]


@pytest.fixture
def console(store_target, tmp_path):
    """A fleet of one node per map state, an operator and a viewer, and the server."""
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANTERNA_HOME": str(home),
           "LANTERNA_DB": store_target}  # fmt: skip
    with Store(store_target) as s:
        s.put_site("gw", 51.48, 0.0, "Europe/London")
        for i, (node, spec) in enumerate(FLEET.items()):
            s.put_node(node, "gw", "sim", KEY, lat=51.48 + i * 1e-3, lon=0.01)
            if spec is None:
                continue
            level, faults, online = spec
            now = time.time()
            s.ingest(
                [
                    (node, "status", b"online" if online else b"offline", now),
                    (node, "state", state(level, faults), now),
                    (node, "tele", tele(T0, level, 1.5), now),
                ]
            )
        fault = {"v": 1, "ts": iso(T0), "event": "lampFailure", "active": True,
                 "detail": "no current at 80 %"}  # fmt: skip
        s.ingest([("gw-004", "event", json.dumps(fault).encode(), time.time())])
        s.put_group("high-street", "")
        s.group_add("high-street", ["gw-001", "gw-002"])
    passwords = {"olga": add_user(env, "olga", "operator"), "vic": add_user(env, "vic", "viewer")}
    web = start_web(env)
    try:
        yield web, env, passwords, store_target
    finally:
        web.stop()


def signed_in(console, user: str) -> Client:
    web, _, passwords, _ = console
    c = Client(web.url)
    c.sign_in(user, passwords[user])
    return c


def audit(target: str) -> list[dict]:
    from lanterna.audit import Audit

    with Store(target) as s:
        return Audit(s).list()


def test_web_refuses_to_start_without_an_operator_and_says_how_to_make_one(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANTERNA_HOME": str(tmp_path)}
    r = subprocess.run([LANTERNA, "web", "--listen", "127.0.0.1:0"], env=env,
                       capture_output=True, text=True, timeout=WAIT_S)  # fmt: skip
    assert r.returncode == 1
    assert "lanterna user add" in r.stderr and "no default account" in r.stderr


def test_tiles_must_be_a_template_of_an_http_server(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANTERNA_HOME": str(tmp_path)}
    add_user(env, "ada", "admin")
    for bad in ("file:///tiles/{z}/{x}/{y}.png", "https://tiles.example/{z}/{x}.png"):
        r = subprocess.run([LANTERNA, "web", "--tiles", bad], env=env, capture_output=True,
                           text=True, timeout=WAIT_S)  # fmt: skip
        assert r.returncode == 4, r.stderr
        assert "--tiles" in r.stderr


def test_sign_in_sets_a_strict_http_only_cookie_and_sign_out_ends_the_session(console):
    web, _, passwords, _ = console
    c = Client(web.url)
    code, r, _ = c.req("GET", "/")
    assert code == 303 and r.getheader("location") == "/signin?next=/"
    assert c.req("GET", "/api/map")[0] == 401
    code, _, out = c.req("POST", "/api/signin", {"user": "olga", "password": "not-hers-at-all"})
    assert code == 401 and out["error"] == "wrong user name or password" and c.cookie is None
    c.sign_in("olga", passwords["olga"])
    attrs = [a.strip().lower() for a in c.set_cookie.split(";")]
    assert "httponly" in attrs and "samesite=strict" in attrs and "path=/" in attrs
    assert "secure" not in attrs  # plain HTTP on loopback: Secure would drop it
    code, _, me = c.req("GET", "/api/me")
    assert code == 200 and me == {"user": "olga", "role": "operator", "csrf": c.csrf}
    assert c.req("GET", "/nodes/gw-001")[0] == 200
    assert c.write("/api/signout", token=None)[0] == 403  # signing out is a write too
    session = c.cookie
    assert c.write("/api/signout")[0] == 204
    assert c.cookie is None  # the browser is told to forget it
    c.cookie = session  # and the server has forgotten it
    assert c.req("GET", "/api/me")[0] == 401


def test_a_write_without_the_csrf_token_or_from_another_origin_changes_nothing(console):
    _, _, _, target = console
    c = signed_in(console, "olga")
    ack = {"node": "gw-004", "fault": "lampFailure"}
    assert c.write("/api/faults/ack", ack, token=None)[:1] == (403,)
    code, _, out = c.write("/api/faults/ack", ack, token="x" * 43)
    assert code == 403 and "CSRF" in out["error"]
    code, _, out = c.write("/api/faults/ack", ack, headers={"Origin": "http://evil.example"})
    assert code == 403 and "cross-origin" in out["error"]
    code, _, faults = c.req("GET", "/api/faults")
    assert [f["acknowledged"] for f in faults] == [None]
    assert not [a for a in audit(target) if a["action"] == "fault.ack"]
    code, _, out = c.write("/api/faults/ack", ack)  # the same request with its token
    assert code == 200 and out["acknowledged"]["by"] == "olga"


def test_a_viewer_is_refused_every_write_by_the_server_and_the_refusal_is_audited(console):
    _, _, _, target = console
    c = signed_in(console, "vic")
    with Store(target) as s:
        before = len(s.commands(limit=1000))
    dim = {"cmd": "dim", "target": {"node": "gw-001"}, "args": {"level": 10}}
    code, _, out = c.write("/api/commands", dim)
    assert code == 403 and out["error"] == "role viewer may not dim"
    push = {"body": json.loads(EXAMPLE.read_text()), "target": {"site": "gw"}}
    assert c.write("/api/schedules/push", push)[0] == 403
    assert c.write("/api/faults/ack", {"node": "gw-004", "fault": "lampFailure"})[0] == 403
    with Store(target) as s:
        assert len(s.commands(limit=1000)) == before  # nothing signed, nothing sent
        assert s.tuples("SELECT COUNT(*) FROM fault_acks")[0][0] == 0
        assert s.tuples("SELECT COUNT(*) FROM schedules")[0][0] == 0
    refused = [a for a in audit(target) if a["who"] == "vic"]
    assert {a["action"] for a in refused} == {"dim", "schedule", "fault.ack"}
    assert all(a["result"].startswith("refused") and a["via"] == "web" for a in refused)
    # reads and previews are a viewer's
    assert c.req("GET", "/api/map")[0] == 200
    pv = {"body": push["body"], "site": "gw", "date": "2026-12-21"}
    assert c.write("/api/schedules/preview", pv)[0] == 200


def test_sign_in_is_limited_per_name_and_per_address(console):
    web, _, passwords, _ = console
    c = Client(web.url)
    for _ in range(5):
        assert c.req("POST", "/api/signin", {"user": "olga", "password": "wrong-wrong-1"})[0] == 401
    code, r, out = c.req("POST", "/api/signin", {"user": "olga", "password": passwords["olga"]})
    assert code == 429 and int(r.getheader("retry-after")) > 0 and out["retry_after"] > 0
    assert c.cookie is None  # the right password, refused while limited
    # the address is limited too: another name from here waits as well
    assert c.req("POST", "/api/signin", {"user": "vic", "password": passwords["vic"]})[0] == 429


def test_bad_input_is_refused_with_what_and_where_and_changes_nothing(console):
    _, _, _, target = console
    c = signed_in(console, "olga")
    code, _, out = c.write("/api/commands", raw=b"{not json", headers={
        "Content-Type": "application/json"})  # fmt: skip
    assert code == 400 and out["where"] == "body"
    code, _, out = c.write("/api/commands", raw=b"level=5", headers={
        "Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert code == 415
    dim = {"cmd": "dim", "target": {"node": "gw-001"}, "args": {"level": 101}}
    code, _, out = c.write("/api/commands", dim)
    assert code == 400 and "args.level" in out["error"]
    dim["args"], dim["target"] = {"level": 10}, {"node": "gw-999"}
    code, _, out = c.write("/api/commands", dim)
    assert code == 404 and "gw-999" in out["error"]
    dim["target"] = {"street": "x"}
    assert c.write("/api/commands", dim)[0] == 400
    bad = json.loads(EXAMPLE.read_text())
    bad["profiles"][next(iter(bad["profiles"]))] = "dark"
    code, _, out = c.write("/api/schedules/validate", {"body": bad})
    assert code == 400 and out["where"].startswith("body.profiles")
    code, _, out = c.write("/api/schedules/validate", {"text": '{"version": 1,'})
    assert code == 400 and out["where"] == "text" and "line 1" in out["error"]
    pv = {"body": json.loads(EXAMPLE.read_text()), "site": "nowhere", "date": "2026-12-21"}
    assert c.write("/api/schedules/preview", pv)[0] == 404
    pv["site"], pv["date"] = "gw", "21/12/2026"
    code, _, out = c.write("/api/schedules/preview", pv)
    assert code == 400 and out["where"] == "date"
    code, _, out = c.write("/api/commands", raw=b"{" + b" " * (1 << 20) + b"}",
                           headers={"Content-Type": "application/json"})  # fmt: skip
    assert code == 413
    assert c.req("GET", "/api/nodes/gw-001/series?span=1y")[0] == 400
    assert c.req("GET", "/api/nodes/gw-999")[0] == 404
    assert c.req("GET", "/api/jobs/nope")[0] == 404
    assert c.req("GET", "/api/no-such-thing")[0] == 404
    with Store(target) as s:
        assert s.commands(limit=10) == []


def test_the_map_shows_every_node_in_its_state_and_filters(console):
    c = signed_in(console, "vic")
    code, r, m = c.req("GET", "/api/map")
    assert code == 200
    assert "default-src 'self'" in r.getheader("content-security-policy")
    rows = {row[0]: dict(zip(m["fields"], row, strict=True)) for row in m["nodes"]}
    assert {n: x["state"] for n, x in rows.items()} == STATE_OF
    assert m["counts"] == {s: 1 for s in STATE_OF.values()}
    assert m["sites"][rows["gw-001"]["site"]] == "gw"
    assert [m["groups"][g] for g in rows["gw-002"]["groups"]] == ["high-street"]
    assert rows["gw-004"]["faults"] == ["lampFailure"]
    _, _, f = c.req("GET", "/api/map?state=fault")
    assert [row[0] for row in f["nodes"]] == ["gw-004"]
    _, _, g = c.req("GET", "/api/map?group=high-street")
    assert sorted(row[0] for row in g["nodes"]) == ["gw-001", "gw-002"]
    _, _, lf = c.req("GET", "/api/map?fault=lampFailure")
    assert [row[0] for row in lf["nodes"]] == ["gw-004"]
    assert c.req("GET", "/api/map?state=purple")[0] == 400
    assert c.req("GET", "/api/map?group=nope")[0] == 404


def test_a_nodes_story_has_its_sensors_with_units_energy_and_series(console):
    c = signed_in(console, "vic")
    code, _, n = c.req("GET", "/api/nodes/gw-002")
    assert code == 200
    assert (n["state"], n["level"], n["firmware"], n["site"]) == ("dimmed", 40, "1.2.0", "gw")
    assert n["groups"] == ["high-street"] and "key" not in json.dumps(n).lower().split('"')
    t = next(x for x in n["sensors"] if x["name"] == "temperature")
    assert (t["value"], t["min"], t["max"], t["unit"]) == (8.5, 8.0, 9.0, "°C")
    assert n["energy"]["kwh"] == 1.5 and n["energy"]["burn_h"] == 3.25
    code, _, s = c.req("GET", "/api/nodes/gw-002/series?span=24h")
    assert code == 200 and s["t"] == [T0] and s["level"] == [40] and s["power_w"] == [31.5]


def test_the_live_feed_sends_a_node_that_changed(console):
    web, _, _, target = console
    c = signed_in(console, "vic")
    _, _, m = c.req("GET", "/api/map")
    host, port = web.url.split("://")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=WAIT_S)
    conn.request("GET", f"/api/live?cursor={m['cursor']}", headers={"Cookie": c.cookie})
    r = conn.getresponse()
    assert r.status == 200 and r.getheader("content-type").startswith("text/event-stream")
    with Store(target) as s:
        s.ingest([("gw-003", "state", state(75), time.time() + 1)])
    deadline = time.monotonic() + WAIT_S
    got = None
    try:
        while got is None and time.monotonic() < deadline:
            line = r.fp.readline().decode()
            if line.startswith("data: "):
                for row in json.loads(line[6:])["nodes"]:
                    if row[0] == "gw-003" and row[4] == 75:
                        got = row
    finally:
        conn.close()
    assert got is not None and got[3] == "dimmed"


def test_faults_are_listed_acknowledged_and_exported(console):
    _, _, _, target = console
    c = signed_in(console, "olga")
    _, _, faults = c.req("GET", "/api/faults")
    assert [(f["node"], f["fault"], f["detail"]) for f in faults] == [
        ("gw-004", "lampFailure", "no current at 80 %")
    ]
    assert faults[0]["since"] == T0 and faults[0]["acknowledged"] is None
    code, _, out = c.write("/api/faults/ack", {"node": "gw-001", "fault": "lampFailure"})
    assert code == 409 and "no active fault" in out["error"]
    assert c.write("/api/faults/ack", {"node": "gw-004", "fault": "lampFailure"})[0] == 200
    _, _, faults = c.req("GET", "/api/faults")
    assert faults[0]["acknowledged"]["by"] == "olga"
    code, r, csv = c.req("GET", "/api/faults.csv")
    lines = csv.decode().splitlines()
    assert code == 200 and r.getheader("content-type").startswith("text/csv")
    assert lines[0].startswith("node,site,fault,since") and lines[1].startswith("gw-004,gw,")
    assert ",olga," in lines[1]
    acks = [a for a in audit(target) if a["action"] == "fault.ack"]
    assert [(a["who"], a["nodes"], a["result"]) for a in acks] == [("olga", ["gw-004"], "ok")]


def test_previews_are_the_clis_own(console):
    web, env, _, _ = console
    c = signed_in(console, "vic")
    body = json.loads(EXAMPLE.read_text())
    code, _, web_p = c.write("/api/schedules/preview",
                             {"body": body, "site": "gw", "date": "2026-12-21"})  # fmt: skip
    assert code == 200
    r = subprocess.run([LANTERNA, "schedule", "preview", str(EXAMPLE), "--date", "2026-12-21",
                        "--lat", "51.48", "--lon", "0.0", "--tz", "Europe/London", "--json"],
                       env=env, capture_output=True, text=True, timeout=WAIT_S)  # fmt: skip
    cli = json.loads(r.stdout)
    assert web_p["transitions"] == cli["transitions"] and web_p["energy"] == cli["energy"]
    assert web_p["levels"][0][1] == cli["start_level"]
    code, _, y = c.write("/api/schedules/year", {"body": body, "site": "gw", "year": 2027,
                                                 "against": {"body": body}})  # fmt: skip
    assert code == 200 and len(y["nights"]) == 365
    assert y["against"]["totals"]["kwh"] == y["totals"]["kwh"]  # against itself: the same
    code, _, out = c.write("/api/schedules/year", {"body": body, "site": "gw", "year": 2027,
                                                   "against": {"text": "{"}})  # fmt: skip
    assert code == 400 and out["where"] == "against.text"


def test_rollouts_are_paused_resumed_and_aborted_as_their_state_allows(console):
    _, _, _, target = console
    with Store(target) as s:
        rid = Rollouts(s).create("b.bundle", "ab" * 32, "1.3.0", 1000, {"site": "gw"}, Plan(),
                                 {"gw-001": 0, "gw-002": 1})  # fmt: skip
    c = signed_in(console, "olga")
    _, _, rs = c.req("GET", "/api/rollouts")
    assert [(r["id"], r["state"], r["totals"]["pending"]) for r in rs] == [(rid, "running", 2)]
    assert [w["wave"] for w in rs[0]["waves"]] == [0, 1]
    assert c.write(f"/api/rollouts/{rid}/pause")[2] == {"id": rid, "state": "paused"}
    code, _, out = c.write(f"/api/rollouts/{rid}/pause")
    assert code == 409 and "paused" in out["error"]
    assert c.write(f"/api/rollouts/{rid}/resume")[2]["state"] == "running"
    assert c.write(f"/api/rollouts/{rid}/abort")[2]["state"] == "aborted"
    assert c.write(f"/api/rollouts/{rid}/resume")[0] == 409
    assert c.write(f"/api/rollouts/{rid}/explode")[0] == 404
    acts = [a["action"] for a in audit(target) if a["target"] == f"rollout {rid}"]
    assert acts == ["rollout.abort", "rollout.resume", "rollout.pause"]


def test_over_tls_the_session_cookie_is_secure(tmp_path):
    from lanterna.broker import tls

    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANTERNA_HOME": str(tmp_path)}
    password = add_user(env, "ada", "admin")
    ca, key, _ = tls.ensure_ca(tmp_path, False)
    tls.ensure_server(tmp_path, ca, key, ["127.0.0.1"], False)
    web = Web(env, "--tls-cert", str(tmp_path / tls.SERVER_CERT),
              "--tls-key", str(tmp_path / tls.SERVER_KEY))  # fmt: skip
    try:
        line = web.proc.wait_for("lanterna web: https://")
        ctx = ssl.create_default_context(cafile=str(tmp_path / tls.CA_CERT))
        c = Client(line.split()[2].rstrip("/"), ctx)
        c.sign_in("ada", password)
        attrs = [a.strip().lower() for a in c.set_cookie.split(";")]
        assert "secure" in attrs and "httponly" in attrs
        code, r, _ = c.req("GET", "/api/me")
        assert code == 200 and r.getheader("strict-transport-security")
    finally:
        web.stop()


def test_a_big_map_is_gzipped_for_a_browser_that_takes_it(console):
    _, _, _, target = console
    with Store(target) as s:
        for i in range(1000):
            s.put_node(f"gw-{i + 100:04d}", "gw", "sim", KEY, lat=51.5 + i * 1e-4, lon=0.02)
    c = signed_in(console, "vic")
    code, r, plain = c.req("GET", "/api/map")
    assert code == 200 and r.getheader("content-encoding") is None, len(json.dumps(plain))
    assert len(plain["nodes"]) == 1006
    code, r, packed = c.req("GET", "/api/map", headers={"Accept-Encoding": "gzip"})
    assert code == 200 and r.getheader("content-encoding") == "gzip"
    import gzip

    assert len(packed) < len(json.dumps(plain)) / 4
    assert json.loads(gzip.decompress(packed)) == plain
