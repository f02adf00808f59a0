"""The web console in a real browser (Debian's chromium through Playwright) against a
real district: six nodes of real firmware over two sites (`lanterna sim`), `lanterna
serve` into the store through mosquitto, and `lanterna web` on a loopback port, as
test_platform_e2e runs them (tests/test_commander_e2e.py's Fleet). What each test proves
is in its name; every page is loaded with the network cut off for all but the console's
own origin (tests/webconsole.py).

LANTERNA_SCREENSHOTS=1 also writes the screenshots of docs/web/ (1280x800)."""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from test_commander_e2e import Fleet
from webconsole import Tab, Web, add_user, chromium, start_web, tabs, text_of  # noqa: F401

from lanterna.broker.mosquitto import Mosquitto

SITES = [("greenwich", 3), ("baixa", 3)]
NODES = [f"{site}-{i:03d}" for site, n in SITES for i in range(1, n + 1)]
USERS = {"olga": "operator", "vic": "viewer"}
DOCS = Path(__file__).resolve().parents[1] / "docs"
DOCS_WEB = DOCS / "web"
EXAMPLE = DOCS / "examples" / "schedule-greenwich.json"
SCREENSHOTS = os.environ.get("LANTERNA_SCREENSHOTS") == "1"
PAGES = [
    ("/", "map"),
    ("/nodes/greenwich-001", "node"),
    ("/schedules", "schedules"),
    ("/energy", "energy"),
    ("/faults", "faults"),
    ("/rollouts", "rollouts"),
    ("/audit", "audit"),
]
OK = re.compile(r"\bok\b", re.I)
DONE = r"^(?!computing)\S"  # a result line once the page has its answer (or error)
ALL_OK = re.compile(r"ok|(\d+) of \1 ok")  # an audit entry's result: every node answered ok


def level_of(s, node: str) -> int | None:  # s: lanterna.store.Store
    return s.status(s.nodes(ids=[node]))[0]["level"]


@dataclass
class Console:
    fleet: Fleet
    web: Web
    passwords: dict[str, str]

    @property
    def url(self) -> str:
        return self.web.url

    def level(self, node: str) -> int | None:
        with self.fleet.store() as s:
            return level_of(s, node)

    def commands(self, node: str) -> int:
        with self.fleet.store() as s:
            return len(s.commands(node=node, limit=1000))

    def tab(self, tabs, user: str | None = None) -> Tab:  # noqa: F811
        tab = tabs(self.url)
        if user is not None:
            tab.sign_in(user, self.passwords[user])
        return tab


def spread(fleet: Fleet) -> None:
    """Each site's nodes on an arc below it (its name is written above it), far enough
    apart that a marker is clicked alone at the map's first view (which shows both
    cities: the sim's poles, metres apart, are one on another there). The same key:
    command counters are kept."""
    with fleet.store() as s:
        for site in s.sites():
            nodes = s.nodes(site=site["name"])
            for k, n in enumerate(nodes):
                a = -math.radians(20 + 140 * k / max(1, len(nodes) - 1))
                lat, lon = site["lat"] + 0.4 * math.sin(a), site["lon"] + 0.6 * math.cos(a)
                s.put_node(
                    n.id, n.site, n.board, n.key, lat, lon, n.rated_w, n.coap_host, n.coap_port
                )


@pytest.fixture(scope="module")
def console(tmp_path_factory) -> Iterator[Console]:
    tmp = tmp_path_factory.mktemp("console")
    broker = Mosquitto(tmp / "broker")
    broker.start()
    fleet = Fleet(tmp, broker)
    web = None
    try:
        fleet.sims(SITES, tele_s=10)
        fleet.spawn("serve", "--report-s", "60")
        passwords = {name: add_user(fleet.env, name, role) for name, role in USERS.items()}
        web = start_web(fleet.env)

        def reported(s) -> bool:
            return all(r["online"] and r["level"] is not None for r in s.status(s.nodes()))

        fleet.wait(reported, 120, f"{len(NODES)} nodes online with their level")
        spread(fleet)  # after the sims have registered their nodes (on their own point)
        yield Console(fleet, web, passwords)
    finally:
        if web is not None:
            web.stop()
        fleet.stop()
        broker.stop()


SHOT_SITES = [("greenwich", 10)]  # a street of ten poles (lanterna.sim.district)
SHOT_WARP = 720  # node time: an hour in 5 s
SHOT_HOURS = 6  # of telemetry on every node before the pictures: an evening


@pytest.fixture(scope="module")
def pictured(console, tmp_path_factory) -> Iterator[Console]:
    """The console the screenshots show. Without LANTERNA_SCREENSHOTS, the tests' own;
    with it, a district of its own at time warp, its poles where the sim puts them,
    shown once every node has SHOT_HOURS of telemetry (charts and energy with data)."""
    if not SCREENSHOTS:
        yield console
        return
    tmp = tmp_path_factory.mktemp("pictured")
    broker = Mosquitto(tmp / "broker")
    broker.start()
    fleet = Fleet(tmp, broker)
    web = None
    try:
        fleet.sims(SHOT_SITES, tele_s=60, warp=SHOT_WARP)
        fleet.spawn("serve", "--report-s", "60")
        passwords = {name: add_user(fleet.env, name, role) for name, role in USERS.items()}
        web = start_web(fleet.env)
        want = sum(n for _, n in SHOT_SITES)

        def covered(s) -> bool:
            spans = s.tuples("SELECT node, MAX(ts) - MIN(ts) FROM telemetry GROUP BY node")
            return len(spans) == want and all(span >= SHOT_HOURS * 3600 for _, span in spans)

        fleet.wait(covered, 60 + SHOT_HOURS * 3600 / SHOT_WARP * 10, f"{SHOT_HOURS} h of data")
        yield Console(fleet, web, passwords)
    finally:
        if web is not None:
            web.stop()
        fleet.stop()
        broker.stop()


def set_level(tab: Tab, level: int) -> None:
    """#dim-level as a person sets it: a number or range input, or a select."""
    el = tab.page.locator("#dim-level")
    if el.evaluate("e => e.tagName") == "SELECT":
        el.select_option(str(level))
    else:
        el.fill(str(level))


def wait_text(tab: Tab, selector: str, pattern: str, timeout_ms: int = 30_000) -> str:
    """Wait until the element's text matches `pattern` (a JS regex, case-insensitive)."""
    tab.page.wait_for_function(
        """([sel, pat]) => {
            const e = document.querySelector(sel);
            return e !== null && new RegExp(pat, "i").test(e.textContent);
        }""",
        arg=[selector, pattern],
        timeout=timeout_ms,
    )
    return text_of(tab, selector)


def map_state(tab: Tab) -> dict:
    return tab.page.evaluate(
        "() => ({total: window.lanternaMap.total, drawn: window.lanternaMap.drawn,"
        " ids: Array.from(window.lanternaMap.ids())})"
    )


def screen_of(tab: Tab, node: str) -> tuple[float, float] | None:
    """The node's marker in page pixels: the canvas's box plus lanternaMap.screenOf."""
    p = tab.page.evaluate("id => window.lanternaMap.screenOf(id)", node)
    if p is None:
        return None
    x, y = (p["x"], p["y"]) if isinstance(p, dict) else (p[0], p[1])
    box = tab.page.locator("canvas#map").bounding_box()
    assert box is not None, "the map has no canvas on the page"
    return box["x"] + x, box["y"] + y


def audit_rows(tab: Tab) -> list[str]:
    return [
        re.sub(r"\s+", " ", t).strip()
        for t in tab.page.locator("#audit-table tr").all_inner_texts()
    ]


# -- sign-in -----------------------------------------------------------------------------


def test_sign_in_through_the_form_lands_on_the_map_and_a_wrong_password_stays_out(
    console,
    tabs,  # noqa: F811
):
    tab = console.tab(tabs)
    tab.sign_in_form("olga", "not-" + console.passwords["olga"])
    error = wait_text(tab, "#signin-error", r"\S")
    assert "wrong user name or password" in error.lower(), error
    assert urlsplit(tab.page.url).path == "/signin"
    assert tab.fetch("GET", "/api/me")["status"] == 401

    tab.sign_in_form("olga", console.passwords["olga"])
    tab.wait_ready("map")
    assert urlsplit(tab.page.url).path == "/"
    me = tab.fetch("GET", "/api/me")
    assert me["status"] == 200 and me["body"]["user"] == "olga", me
    assert me["body"]["role"] == "operator"
    who = text_of(tab, "#whoami")
    assert "olga" in who and "operator" in who, who


# -- the map -----------------------------------------------------------------------------


def test_the_map_draws_one_marker_per_node_of_the_store(console, tabs):  # noqa: F811
    tab = console.tab(tabs, "olga")
    tab.goto("/", "map")
    with console.fleet.store() as s:
        stored = sorted(n.id for n in s.nodes())
    assert stored == sorted(NODES)
    m = map_state(tab)
    assert m["total"] == len(stored) and m["drawn"] == len(stored), m
    assert sorted(m["ids"]) == stored


def test_clicking_a_marker_opens_its_node(console, tabs):  # noqa: F811
    tab = console.tab(tabs, "olga")
    tab.goto("/", "map")
    at = {n: screen_of(tab, n) for n in NODES}
    assert all(p is not None for p in at.values()), at

    def alone(n: str) -> float:  # the distance to its nearest neighbour, in pixels
        return min(math.dist(at[n], at[o]) for o in NODES if o != n)

    node = max(NODES, key=alone)
    assert alone(node) >= 8, at  # spread() puts them apart: a click hits one marker
    tab.page.mouse.click(*at[node])
    tab.page.wait_for_url(f"**/nodes/{node}")
    tab.wait_ready("node")
    assert node in tab.page.inner_text("body")


# -- commands ----------------------------------------------------------------------------


def test_a_dim_from_a_node_page_reaches_the_node_and_the_audit_log(console, tabs):  # noqa: F811
    node = "greenwich-002"
    level = 37 if console.level(node) != 37 else 38
    tab = console.tab(tabs, "olga")
    tab.goto(f"/nodes/{node}", "node")
    set_level(tab, level)
    tab.page.click("#dim-submit")
    result = wait_text(tab, "#action-result", r"\bok\b|fail|error|refused|denied|timeout")
    assert OK.search(result), result
    console.fleet.wait(lambda s: level_of(s, node) == level, 30, f"{node} at {level}")

    def audited(entries: list[dict]) -> dict | None:
        for e in entries:
            where = [*(e.get("nodes") or []), json.dumps(e.get("target"))]
            if (
                e.get("who") == "olga"
                and "dim" in str(e.get("action"))
                and any(node in w for w in where)
                and ALL_OK.fullmatch(str(e.get("result")))
            ):
                return e
        return None

    last: list[dict] = []

    def cli_audit(_s) -> dict | None:
        r = console.fleet.cli("audit", "--json")
        assert r.returncode == 0, r.stderr
        last[:] = json.loads(r.stdout)
        return audited(last)

    try:
        entry = console.fleet.wait(cli_audit, 20, "the dim in `lanterna audit --json`")
    except AssertionError as e:
        raise AssertionError(f"{e}; the audit log: {last[:5]}") from None
    assert entry["via"] == "web", entry

    tab.goto("/audit", "audit")
    rows = [r for r in audit_rows(tab) if "olga" in r and node in r and "dim" in r.lower()]
    assert rows and OK.search(rows[0]), audit_rows(tab)


def test_a_viewer_may_not_dim_the_server_refuses_and_nothing_is_sent(console, tabs):  # noqa: F811
    node = "baixa-002"
    before, sent = console.level(node), console.commands(node)
    level = 12 if before != 12 else 13
    tab = console.tab(tabs)
    tab.sign_in_form("vic", console.passwords["vic"])
    tab.wait_ready("map")
    csrf = tab.fetch("GET", "/api/me")["body"]["csrf"]
    body = {"cmd": "dim", "target": {"node": node}, "args": {"level": level}}
    r = tab.fetch("POST", "/api/commands", body, {"X-CSRF-Token": csrf})
    assert r["status"] == 403, r
    assert "viewer" in r["body"]["error"], r

    tab.goto(f"/nodes/{node}", "node")
    assert not tab.page.locator("#dim-submit").is_disabled(), "#dim-submit disabled for viewer"
    set_level(tab, level)
    tab.page.click("#dim-submit")
    refused = re.escape(r["body"]["error"])
    shown = wait_text(tab, "#action-result", rf"{refused}|403|may not|refused|denied|forbidden")
    assert r["body"]["error"] in shown, shown
    assert not OK.search(shown), shown

    assert console.commands(node) == sent, "a command was sent for a viewer"
    assert console.level(node) == before


def test_a_write_without_the_right_csrf_token_is_refused_and_changes_nothing(
    console,
    tabs,  # noqa: F811
):
    node = "baixa-001"
    before, sent = console.level(node), console.commands(node)
    level = 23 if before != 23 else 24
    tab = console.tab(tabs, "olga")
    tab.goto(f"/nodes/{node}", "node")
    body = {"cmd": "dim", "target": {"node": node}, "args": {"level": level}}
    for headers in ({}, {"X-CSRF-Token": "0" * 43}, {"X-CSRF-Token": ""}):
        r = tab.fetch("POST", "/api/commands", body, headers)
        assert r["status"] == 403, (headers, r)
        assert "CSRF" in r["body"]["error"], r
    assert console.commands(node) == sent
    assert console.level(node) == before
    # The same request with the session's token is taken: the refusals were the token's.
    csrf = tab.fetch("GET", "/api/me")["body"]["csrf"]
    r = tab.fetch("POST", "/api/commands", body, {"X-CSRF-Token": csrf})
    assert r["status"] == 202, r
    console.fleet.wait(lambda s: level_of(s, node) == level, 30, f"{node} at {level}")


# -- every page, offline -----------------------------------------------------------------


def test_the_tab_records_what_the_page_tests_assert_on(console, tabs):  # noqa: F811
    # The guards of the next test can fail: the same server under another name is
    # another origin, and the page's errors are seen.
    tab = console.tab(tabs)
    tab.goto("/signin", "signin")
    assert tab.foreign() == [] and tab.console_errors == [] and tab.page_errors == []
    tab.page.evaluate("() => { console.error('seen'); setTimeout(() => { throw Error('boom') }); }")
    tab.page.evaluate("() => new Promise(r => setTimeout(r))")  # after the throw
    assert any("seen" in e for e in tab.console_errors), tab.console_errors
    assert any("boom" in e for e in tab.page_errors), tab.page_errors
    other = console.url.replace("127.0.0.1", "localhost") + "/signin"
    with pytest.raises(Exception, match="ERR_BLOCKED_BY_CLIENT"):
        tab.page.goto(other)
    assert tab.foreign() == [other]


@pytest.mark.parametrize(("path", "ready"), PAGES, ids=[r for _, r in PAGES])
def test_every_page_renders_with_only_its_own_origin(console, tabs, path, ready):  # noqa: F811
    tab = console.tab(tabs, "olga")
    tab.goto(path, ready)
    assert urlsplit(tab.page.url).path == path
    assert any(urlsplit(u).path.startswith("/static/") for u in tab.requests), tab.requests
    assert tab.foreign() == []
    assert tab.page_errors == []
    assert tab.console_errors == []


# -- previews, charts and the docs' screenshots ------------------------------------------


def shoot(tab: Tab, name: str, shots: list[Path]) -> None:
    if SCREENSHOTS:
        # one frame after ready: the canvas is painted
        tab.page.evaluate("() => new Promise(r => requestAnimationFrame(() => r()))")
        path = DOCS_WEB / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        tab.page.screenshot(path=str(path))
        shots.append(path)


def test_the_schedule_previews_and_the_energy_page_render(pictured, tabs):  # noqa: F811
    console = pictured
    tab = console.tab(tabs, "olga")
    shots: list[Path] = []
    tab.goto("/", "map")
    shoot(tab, "map.png", shots)
    tab.goto("/nodes/greenwich-001", "node")
    if SCREENSHOTS:  # the charts below the facts
        tab.page.evaluate("() => document.getElementById('chart-24h').scrollIntoView()")
    shoot(tab, "node.png", shots)

    tab.goto("/schedules", "schedules")
    # the example schedule, on a Wednesday night at Greenwich: its weeknight profile
    example = json.loads(EXAMPLE.read_text())
    tab.page.fill("#schedule-json", EXAMPLE.read_text())
    tab.page.locator("#preview-site select, select#preview-site").first.select_option("greenwich")
    tab.page.fill("#preview-date", "2027-01-13")
    with tab.page.expect_response(lambda r: r.url.endswith("/api/schedules/preview")) as night:
        tab.page.click("#preview-run")
    assert night.value.status == 200, night.value.text()
    levels = {lv for _, lv in night.value.json()["levels"]}
    assert {step["level"] for step in example["profiles"]["weeknight"]} <= levels, levels
    shown = wait_text(tab, "#preview-result", DONE)
    assert example["id"] in shown and "weeknight" in shown and "2027-01-13" in shown, shown
    assert "kWh" in text_of(tab, "#preview-energy")
    with tab.page.expect_response(lambda r: r.url.endswith("/api/schedules/year")) as year:
        tab.page.click("#year-run")
    assert year.value.status == 200, year.value.text()
    shown = wait_text(tab, "#year-result", DONE)
    assert shown.startswith("year 2027 at greenwich"), shown
    # the night preview's card at the top, the year's below it
    tab.page.evaluate(
        "() => { const c = document.getElementById('preview-chart');"
        " (c.closest('section') || c).scrollIntoView({block: 'start'});"
        " window.scrollBy(0, -8); }"
    )
    shoot(tab, "schedule-preview.png", shots)

    tab.goto("/energy", "energy")
    assert "kWh" in text_of(tab, "#energy-result")
    if SCREENSHOTS:  # the district's own days (node time), not the week before them
        with console.fleet.store() as s:
            first = s.tuples("SELECT MIN(ts) FROM telemetry")[0][0]
        day = time.strftime("%Y-%m-%d", time.localtime(first))
        tab.page.fill("#energy-since", day)
        with tab.page.expect_response(lambda r: "/api/energy" in r.url) as answer:
            tab.page.click("#energy-run")
        assert answer.value.status == 200
        wait_text(tab, "#energy-result", DONE)
    per_site = text_of(tab, "#energy-table-wrap")
    with console.fleet.store() as s:
        sites = [x["name"] for x in s.sites()]
    assert all(site in per_site for site in sites), per_site
    shoot(tab, "energy.png", shots)
    assert tab.foreign() == [] and tab.page_errors == [] and tab.console_errors == []
    if SCREENSHOTS:
        for p in shots:
            data = p.read_bytes()
            assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, p
        assert [p.name for p in shots] == [
            "map.png",
            "node.png",
            "schedule-preview.png",
            "energy.png",
        ]
