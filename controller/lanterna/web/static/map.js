// The map page: filters, the canvas (mapview.js), the legend with counts, the hover
// tip, and live updates from /api/live (Server-Sent Events) applied in place.

import { config, get, query } from "./api.js";
import { clear, h, select, showError } from "./dom.js";
import { MapView, project } from "./mapview.js";
import { shapeIcon, STATES } from "./shapes.js";

const KNOWN_FAULTS = [
  "lampFailure",
  "relayFailure",
  "supplyLoss",
  "lampUnexpectedOn",
  "cyclingFailure",
  "sensorFault",
];

export async function render(root, _params, ctx) {
  const cfg = await config();
  const params = new URLSearchParams(location.search);
  const filter = {
    site: params.get("site") || "all",
    group: params.get("group") || "all",
    state: params.get("state") || "all",
    fault: params.get("fault") || "all",
  };
  const faultNames = new Set(KNOWN_FAULTS);
  if (filter.fault !== "all") faultNames.add(filter.fault);

  const bar = h("div", { class: "toolbar", role: "group", "aria-label": "Filters" });
  const count = h("span", { id: "map-count", class: "count", "aria-live": "polite" });
  const unplaced = h("span", { id: "map-unplaced", class: "muted" });
  const error = h("p", { id: "map-error", class: "result", hidden: true });
  const canvas = h("canvas", {
    id: "map",
    tabindex: "0",
    "aria-label": "Map of the lamp posts; drag to pan, wheel or + and - to zoom",
  });
  const base = h("canvas", { id: "map-base", "aria-hidden": "true" });
  const tip = h("div", { id: "map-tip", class: "tip", hidden: true, role: "tooltip" });
  const zoomIn = h("button", { id: "map-zoom-in", type: "button", title: "Zoom in" }, "+");
  const zoomOut = h("button", { id: "map-zoom-out", type: "button", title: "Zoom out" }, "−");
  const fitBtn = h("button", { id: "map-fit", type: "button", title: "Fit to the nodes" }, "Fit");
  const legend = h("ul", { id: "map-legend", class: "legend", "aria-label": "Legend" });
  const wrap = h(
    "div",
    { class: "map-wrap" },
    base,
    canvas,
    h("div", { class: "map-zoom" }, zoomIn, zoomOut, fitBtn),
    tip,
  );
  root.append(
    h("h1", { class: "sr-only" }, "Map"),
    bar,
    h("div", { class: "map-status" }, count, unplaced),
    error,
    wrap,
    legend,
  );

  const view = new MapView(canvas, base, {
    tiles: cfg.tiles,
    sites: cfg.sites || [],
    onHover: (n, x, y) => showTip(n, x, y),
    onClick: (n) => ctx.navigate(`/nodes/${encodeURIComponent(n.id)}`),
  });
  const ro = new ResizeObserver(() => view.resize());
  ro.observe(canvas);
  view.resize();
  zoomIn.addEventListener("click", () => view.zoomAt(1.6));
  zoomOut.addEventListener("click", () => view.zoomAt(1 / 1.6));
  fitBtn.addEventListener("click", () => view.fit());

  // All nodes of the current filter by id; `placed` is what the view draws.
  let byId = new Map();
  let sites = [];
  let groups = [];
  let cursor = null;
  let source = null;
  let retry = 0;

  function showTip(n, x, y) {
    if (!n) {
      tip.hidden = true;
      return;
    }
    clear(tip);
    tip.append(
      h("strong", {}, n.id),
      h("span", {}, shapeIcon(n.state, 12), ` ${n.state}`),
      h("span", {}, n.level === null || n.level === undefined ? "level —" : `level ${n.level} %`),
    );
    if (n.faults && n.faults.length) tip.append(h("span", {}, n.faults.join(", ")));
    tip.hidden = false;
    const left = Math.min(x + 14, view.w - tip.offsetWidth - 4);
    const top = y + 14 + tip.offsetHeight > view.h ? y - tip.offsetHeight - 10 : y + 14;
    tip.style.left = `${Math.max(4, left)}px`;
    tip.style.top = `${Math.max(4, top)}px`;
  }

  // A row's site and groups are indexes into the lists of the answer it came in (each
  // live batch has its own).
  function fromRow(row, siteList, groupList) {
    const [id, lat, lon, state, level, site, gs, faults] = row;
    const n = { id, lat, lon, state, level, faults: faults || [] };
    n.site = typeof site === "number" ? siteList[site] : site;
    n.groups = (gs || []).map((g) => (typeof g === "number" ? groupList[g] : g));
    if (lat !== null && lon !== null && lat !== undefined && lon !== undefined) {
      [n.wx, n.wy] = project(lat, lon);
    }
    for (const f of n.faults) faultNames.add(f);
    return n;
  }

  function matches(n) {
    if (filter.site !== "all" && n.site !== undefined && n.site !== filter.site) return false;
    if (filter.group !== "all" && !n.groups.includes(filter.group)) return false;
    if (filter.state !== "all" && n.state !== filter.state) return false;
    if (filter.fault !== "all" && !n.faults.includes(filter.fault)) return false;
    return true;
  }

  function refresh() {
    const placed = [];
    const counts = Object.fromEntries(STATES.map((s) => [s, 0]));
    let away = 0;
    for (const n of byId.values()) {
      counts[n.state in counts ? n.state : "unknown"] += 1;
      if (n.wx === undefined) away += 1;
      else placed.push(n);
    }
    view.hover = -1;
    view.setNodes(placed);
    count.textContent = `${placed.length} ${placed.length === 1 ? "node" : "nodes"}`;
    unplaced.textContent = away ? `${away} without a location (not drawn)` : "all placed";
    clear(legend);
    for (const s of STATES) {
      legend.append(
        h(
          "li",
          { dataset: { state: s }, "data-testid": `legend-${s}` },
          shapeIcon(s, 16),
          h("span", { class: "word" }, s),
          h("span", { class: "n" }, String(counts[s])),
        ),
      );
    }
  }

  function fillFilters() {
    const names = (xs) => xs.map((x) => (typeof x === "string" ? x : x.name));
    const siteNames = [...new Set([...names(cfg.sites || []), ...sites])].sort();
    const groupNames = [...new Set([...names(cfg.groups || []), ...groups])].sort();
    const pick = [
      ["filter-site", "Site", siteNames],
      ["filter-group", "Group", groupNames],
      ["filter-state", "State", cfg.states || STATES],
      ["filter-fault", "Fault", [...faultNames].sort()],
    ];
    const focused = document.activeElement && document.activeElement.id;
    clear(bar);
    for (const [id, label, opts] of pick) {
      const key = id.slice(7);
      const el = select(id, [["all", "all"], ...opts], filter[key], label);
      el.querySelector("select").addEventListener("change", (ev) => {
        filter[key] = ev.target.value;
        load(key === "site");
      });
      bar.append(el);
    }
    if (focused && focused.startsWith("filter-")) document.getElementById(focused).focus();
  }

  // The first load's failure is the page's (app.js shows it); a filter's is shown here.
  async function load(refit, first = false) {
    ctx.busy();
    const q = query(filter);
    history.replaceState(null, "", `/${q}`);
    error.hidden = true;
    let data;
    try {
      data = await get(`/api/map${q}`);
    } catch (err) {
      if (first) throw err;
      if (!ctx.isCurrent()) return;
      error.hidden = false;
      showError(error, err);
      ctx.ready();
      return;
    }
    if (!ctx.isCurrent()) return;
    sites = data.sites || [];
    groups = data.groups || [];
    byId = new Map();
    for (const row of data.nodes || []) {
      const n = fromRow(row, sites, groups);
      byId.set(n.id, n);
    }
    cursor = data.cursor;
    fillFilters();
    refresh();
    if (refit) view.fit();
    view.draw(); // at once, so drawn and ids() are right when "ready" is seen
    live();
    ctx.ready();
  }

  function applyLive(msg) {
    if (msg.cursor !== undefined) cursor = msg.cursor;
    for (const row of msg.nodes || []) {
      const n = fromRow(row, msg.sites || sites, msg.groups || groups);
      if (matches(n)) byId.set(n.id, n);
      else byId.delete(n.id);
    }
    refresh();
  }

  function live() {
    if (source) source.close();
    const q = cursor === null || cursor === undefined ? "" : `?cursor=${encodeURIComponent(cursor)}`;
    source = new EventSource(`/api/live${q}`);
    source.addEventListener("nodes", (ev) => {
      retry = 0;
      try {
        applyLive(JSON.parse(ev.data));
      } catch (err) {
        console.error("live update not understood", err);
      }
    });
    // Reconnect ourselves, from the latest cursor, with a growing pause.
    source.onerror = () => {
      source.close();
      source = null;
      retry = Math.min(retry + 1, 6);
      const timer = setTimeout(() => ctx.isCurrent() && live(), 1000 * 2 ** (retry - 1));
      ctx.onLeave(() => clearTimeout(timer));
    };
  }

  ctx.onLeave(() => {
    if (source) source.close();
    ro.disconnect();
    view.destroy();
    delete window.lanternaMap;
  });

  window.lanternaMap = {
    get drawn() {
      return view.drawn;
    },
    get total() {
      return view.nodes.length;
    },
    get painted() {
      return view.painted;
    },
    get frameMs() {
      return view.lastFrameMs;
    },
    get zoom() {
      return view.zoom;
    },
    screenOf(id) {
      const i = view.nodes.findIndex((n) => n.id === id);
      if (i < 0) return null;
      const [x, y] = view.toScreen(view.nodes[i].wx, view.nodes[i].wy);
      if (x < 0 || y < 0 || x > view.w || y > view.h) return null;
      return { x, y };
    },
    ids() {
      return Array.from(view.drawnIdx.subarray(0, view.drawn), (i) => view.nodes[i].id);
    },
    // One frame drawn now; its time in ms including the raster work (getImageData
    // waits for it), for the benchmark.
    redraw() {
      const t0 = performance.now();
      view.draw();
      view.ctx.getImageData(0, 0, 1, 1); // waits for the raster work of the frame
      return performance.now() - t0;
    },
    zoomBy(factor) {
      view.zoomAt(factor);
      view.draw();
    },
  };

  await load(true, true);
}
