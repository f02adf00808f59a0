"""The web console's map at city scale: cold loads of `/` with 20,000 nodes (JSON on stdout).

A SQLite store is filled through the Store API: three sites (greenwich, porta-romana,
baixa: London, Milan, Lisbon), --nodes nodes spread over a few kilometres around them,
two groups, then one batch of `ingest` with every node's status and state message (5 %
offline, 2 % with a lamp fault, levels across 0-100), shaped as docs/protocol.md says and
tests/test_store.py sends. One node stands a little out of Lisbon, alone on the map, so
that a click at its marker has one node under it. An operator is added through the CLI
(`lanterna user add --generate`) and `lanterna web` serves the store on a loopback port
(tests/webconsole.py starts both, as the browser tests do).

Debian's chromium (Playwright, headless) then loads `/` --runs times (5), each in a new
browser context (an empty cache: a cold load), signed in beforehand through
/api/signin (not timed). Per run, from navigation start (the page's performance clock):

- ready_s: `document.body.dataset.ready` becomes "map" (the nodes are in the view);
- interactive_s: the first animation frame after that (the drawn map on screen);
- frame_ms: the map's own draw time (`lanternaMap.frameMs`);
- click_s: a click at `lanternaMap.screenOf(node)` of the lone node until the browser is
  at /nodes/{node} (the hit test over every drawn marker), from the click;
- api_map: the /api/map resource as the page fetched it (Resource Timing): bytes on the
  wire and decoded, and the server's time (request sent to first byte).

Baseline in the same run, the same way: cold loads of /signin to data-ready "signin" (the
same shell, scripts and stylesheet, no data), and of /static/app.js alone.
"goal_s" is 3 s from navigation start to an interactive map; compare ratio_to_baseline
between runs, not the seconds of a shared machine on different days.

    .venv/bin/python bench/bench_web_map.py                  # 20,000 nodes, 5 runs
    .venv/bin/python bench/bench_web_map.py --nodes 5000 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from webconsole import CHROMIUM, Tab, add_user, launch, start_web  # noqa: E402

from lanterna.fleet.registry import SITES  # noqa: E402
from lanterna.store import Store  # noqa: E402

GOAL_S = 3.0
KEY = bytes(range(32))
LONE = "baixa-lone"
# When data-ready turns to a page name: that moment, and the next frame's, on the page's
# own clock (performance.now(): milliseconds from navigation start). Playwright puts it
# in before the page's scripts (the CSP does not apply to it).
CLOCK = """(() => {
  const t = (window.__benchT = {});
  const seen = () => {
    const r = document.body && document.body.dataset.ready;
    if (r && !(r in t)) {
      t[r] = performance.now();
      requestAnimationFrame(() => { t[r + "_frame"] = performance.now(); });
    }
  };
  new MutationObserver(seen).observe(document, {subtree: true, childList: true,
    attributes: true, attributeFilter: ["data-ready"]});
})();"""


def populate(s: Store, n: int) -> list[str]:
    """--nodes nodes over the three built-in sites; their ids, the lone one last."""
    rnd = random.Random(17)
    sites = list(SITES)
    for name in sites:
        lat, lon, tz = SITES[name]
        s.put_site(name, lat, lon, tz)
    ids = []
    for k in range(n - 1):
        site = sites[k % len(sites)]
        lat, lon, _ = SITES[site]
        node = f"{site}-{k // len(sites) + 1:05d}"
        # a few kilometres of streets around the site's point
        lat, lon = lat + rnd.uniform(-0.03, 0.03), lon + rnd.uniform(-0.045, 0.045)
        s.put_node(node, site, "sim", KEY, lat, lon, rated_w=rnd.choice((30.0, 50.0, 70.0)))
        ids.append(node)
    lat, lon, _ = SITES["baixa"]
    s.put_node(LONE, "baixa", "sim", KEY, lat + 0.6, lon, rated_w=50.0)
    ids.append(LONE)
    s.put_group("high-street", "the high streets")
    s.group_add("high-street", ids[::40])
    s.put_group("parks", "paths in the parks")
    s.group_add("parks", ids[7::60])
    now = time.time()
    ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 60))
    msgs = []
    for k, node in enumerate(ids):
        faults = ["lampFailure"] if k % 50 == 3 else []
        state = {"v": 1, "ts": ts, "level": (k * 7) % 101, "mode": "schedule",
                 "fw": "1.2.0", "faults": faults}  # fmt: skip
        msgs.append((node, "status", b"offline" if k % 20 == 1 else b"online", now))
        msgs.append((node, "state", json.dumps(state).encode(), now))
    s.ingest(msgs)
    return ids


def cold_load(browser, origin: str, path: str, ready: str, signin: tuple[str, str] | None):
    """One load of `path` in a new context: the page's clock at ready and the frame after,
    and the page (open) to go on with."""
    tab = Tab(browser, origin, route=False)
    if signin is not None:
        tab.sign_in(*signin)
    tab.page.add_init_script(CLOCK)
    tab.page.goto(path, wait_until="commit")
    tab.page.wait_for_function(
        "key => window.__benchT && window.__benchT[key]", arg=f"{ready}_frame"
    )
    t = tab.page.evaluate("window.__benchT")
    return tab, t[ready] / 1000, t[f"{ready}_frame"] / 1000


def map_run(browser, origin: str, signin: tuple[str, str]) -> dict:
    tab, ready_s, frame_s = cold_load(browser, origin, "/", "map", signin)
    try:
        page = tab.page
        m = page.evaluate(
            """() => {
              const e = performance.getEntriesByType("resource")
                .filter(r => new URL(r.name).pathname === "/api/map")[0];
              return {total: lanternaMap.total, drawn: lanternaMap.drawn,
                      frame_ms: lanternaMap.frameMs,
                      api: e && {wire: e.transferSize, body: e.decodedBodySize,
                                 encoded: e.encodedBodySize,
                                 server_s: (e.responseStart - e.requestStart) / 1000,
                                 total_s: e.duration / 1000}};
            }"""
        )
        p = page.evaluate(f"lanternaMap.screenOf({json.dumps(LONE)})")
        box = page.locator("canvas#map").bounding_box()
        hit = None
        if p is not None and box is not None:
            t0 = time.perf_counter()
            page.mouse.click(box["x"] + p["x"], box["y"] + p["y"])
            page.wait_for_url(f"**/nodes/{LONE}", timeout=10_000)
            hit = round(time.perf_counter() - t0, 3)
        return {
            "ready_s": round(ready_s, 3),
            "interactive_s": round(frame_s, 3),
            "frame_ms": round(m["frame_ms"], 1),
            "click_s": hit,
            "total": m["total"],
            "drawn": m["drawn"],
            "api_map": m["api"] and {k: round(v, 4) for k, v in m["api"].items()},
        }
    finally:
        tab.close()


def static_run(browser, origin: str) -> float:
    tab = Tab(browser, origin, route=False)
    try:
        t0 = time.perf_counter()
        r = tab.page.goto("/static/app.js")
        assert r is not None and r.status == 200, "GET /static/app.js failed"
        return time.perf_counter() - t0
    finally:
        tab.close()


def summary(xs: list[float]) -> dict:
    return {"median_s": round(statistics.median(xs), 3), "max_s": round(max(xs), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=20_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    if not os.access(CHROMIUM, os.X_OK):
        sys.exit(f"bench_web_map: chromium is not installed ({CHROMIUM}): apt-get install chromium")
    from playwright.sync_api import sync_playwright

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as t:
        home = Path(t) / "home"
        env = dict(os.environ, LANTERNA_HOME=str(home))
        env.pop("LANTERNA_DB", None)
        t0 = time.perf_counter()
        with Store(home / "lanterna.db") as s:
            ids = populate(s, args.nodes)
        populate_s = time.perf_counter() - t0
        password = add_user(env, "bench", "operator")
        web = start_web(env)
        try:
            with sync_playwright() as p:
                browser = launch(p)
                try:
                    signin = ("bench", password)
                    map_run(browser, web.url, signin)  # warm the server's caches and code
                    runs = [map_run(browser, web.url, signin) for _ in range(args.runs)]
                    base = [
                        cold_load(browser, web.url, "/signin", "signin", None)
                        for _ in range(args.runs)
                    ]
                    for tab, *_ in base:
                        tab.close()
                    css = [static_run(browser, web.url) for _ in range(args.runs)]
                finally:
                    browser.close()
        finally:
            web.stop()
    inter = [r["interactive_s"] for r in runs]
    signin_s = [b[2] for b in base]
    apis = [r["api_map"] for r in runs if r["api_map"]]
    out = {
        "bench": "web_map",
        "nodes": len(ids),
        "runs": runs,
        **summary(inter),
        "goal_s": GOAL_S,
        "within_goal": max(inter) <= GOAL_S,
        "all_drawn": all(r["drawn"] == len(ids) == r["total"] for r in runs),
        "clicks_hit": all(r["click_s"] is not None for r in runs),
        "api_map_bytes": apis[0]["body"] if apis else None,
        "api_map_wire_bytes": apis[0]["wire"] if apis else None,
        "api_map_s": round(statistics.median(a["server_s"] for a in apis), 3) if apis else None,
        "baseline": {
            "signin_page_to_ready": summary(signin_s),
            "static_app_js": summary(css),
        },
        "ratio_to_baseline": round(statistics.median(inter) / statistics.median(signin_s), 2),
        "populate_s": round(populate_s, 1),
        "load_avg_before": load_before,
        "load_avg_after": os.getloadavg(),
        "os_cpus": os.cpu_count(),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
