// The list pages: energy, faults, rollouts, audit. Each is {render(root, params, ctx)}
// resolving once its data is on screen.

import { config, get, post, query } from "./api.js";
import { barChart } from "./charts.js";
import {
  clear,
  duration,
  faultWords,
  h,
  isoDate,
  localTime,
  num,
  select,
  showError,
  showText,
  table,
  working,
} from "./dom.js";

const names = (xs) => (xs || []).map((x) => (typeof x === "string" ? x : x.name));

// -- energy ----------------------------------------------------------------------------------

export const energy = {
  async render(root, _params, ctx) {
    const cfg = await config();
    const today = new Date();
    const week = new Date(today.getTime() - 7 * 86400e3);
    const site = select("energy-site", [["all", "all"], ...names(cfg.sites)], "all", "site");
    const group = select("energy-group", [["all", "all"], ...names(cfg.groups)], "all", "group");
    const since = h("input", { id: "energy-since", type: "date", value: isoDate(week) });
    const until = h("input", { id: "energy-until", type: "date", value: isoDate(today) });
    const run = h("button", { id: "energy-run", type: "button", class: "primary" }, "Show");
    const chart = h("canvas", { id: "energy-chart", class: "chart" });
    const result = h("p", { id: "energy-result", class: "result", "aria-live": "polite" });
    const note = h("p", { id: "energy-note", class: "result" });
    const tableWrap = h("div", { id: "energy-table-wrap" });
    root.append(
      h("h1", {}, "Energy"),
      h(
        "div",
        { class: "toolbar" },
        site,
        group,
        h("label", { class: "field" }, h("span", {}, "from"), since),
        h("label", { class: "field" }, h("span", {}, "to (inclusive)"), until),
        run,
      ),
      result,
      note,
      h("section", { class: "card" }, h("h2", {}, "Energy per day"), chart),
      h("section", { class: "card" }, h("h2", {}, "By site and group"), tableWrap),
    );

    async function load() {
      ctx.busy();
      if (!since.value || !until.value || until.value < since.value) {
        showError(result, new Error("choose a from date on or before the to date"));
        return;
      }
      // The "to" day is included: the interval ends at the next midnight, or now for
      // today (a baseline must not count a night that has not come yet).
      const end = new Date(`${until.value}T00:00:00`);
      end.setDate(end.getDate() + 1);
      const q = query({
        site: site.querySelector("select").value,
        group: group.querySelector("select").value,
        since: since.value,
        until: until.value >= isoDate(new Date()) ? "" : isoDate(end),
      });
      working(result);
      let r;
      try {
        r = await get(`/api/energy${q}`);
      } catch (err) {
        showError(result, err);
        ctx.ready();
        return;
      }
      const t = r.total || {};
      showText(
        result,
        `${localTime(r.since)} to ${localTime(r.until)}: used ${num(t.kwh, 2, "kWh")} against ${num(t.baseline_kwh, 2, "kWh")} ` +
          `(baseline: ${r.baseline || "full power sunset to sunrise"}), saved ${num(t.saved_kwh, 2, "kWh")}` +
          `${t.saved_pct === null || t.saved_pct === undefined ? "" : ` (${t.saved_pct} %)`}, ` +
          `${num(t.saved_eur, 2, r.currency || "EUR")}, ${num(t.saved_co2_kg, 1, "kg CO2")}`,
        "ok",
      );
      // As `lanterna energy report` notes it: a saving over hours without data is not a
      // saving, so a period the nodes did not cover says so, with the covered figure.
      clear(note);
      note.classList.remove("warn");
      if (t.nodes && t.coverage !== undefined && t.coverage < 0.95) {
        const c = t.covered || {};
        const pct = c.saved_pct === null || c.saved_pct === undefined ? "—" : `${c.saved_pct} %`;
        note.classList.add("warn");
        note.textContent =
          `note: the nodes reported for ${num(100 * t.coverage, 0)} % of the period, so the ` +
          `saving above counts hours without data; over the hours with data they used ` +
          `${num(c.kwh, 2, "kWh")} against ${num(c.baseline_kwh, 2, "kWh")}: ${pct} saved`;
      }
      const days = r.days || [];
      barChart(chart, {
        title: "energy per day",
        labels: days.map((d) => String(d.date).slice(5)),
        series: [
          { label: "used", values: days.map((d) => d.kwh), color: "#c98a00" },
          { label: "baseline (full power sunset to sunrise)", values: days.map((d) => d.baseline_kwh), color: "#9aa5b1" },
        ],
        unit: "kWh",
        empty: r.days ? "no days" : "per-day bars are left out for this many nodes and days: narrow the site, group or dates",
      });
      const row = (scope, x) => [
        scope,
        x.name,
        String(x.nodes ?? ""),
        num(x.kwh, 2),
        num(x.baseline_kwh, 2),
        num(x.saved_kwh, 2),
        x.saved_pct === null || x.saved_pct === undefined ? "—" : `${num(x.saved_pct, 1)} %`,
        num(x.saved_eur, 2),
        num(x.saved_co2_kg, 1),
        x.coverage === undefined ? "—" : `${num(100 * x.coverage, 0)} %`,
      ];
      clear(tableWrap).append(
        table(
          "energy-table",
          [
            "by",
            "name",
            "nodes",
            "used (kWh)",
            "baseline (kWh)",
            "saved (kWh)",
            "saved (%)",
            `saved (${r.currency || "EUR"})`,
            "saved CO2 (kg)",
            "coverage",
          ],
          [
            row("total", { ...t, name: "all selected" }),
            ...(r.sites || []).map((x) => row("site", x)),
            ...(r.groups || []).map((x) => row("group", x)),
          ],
        ),
      );
      ctx.ready();
    }
    run.addEventListener("click", load);
    await load();
  },
};

// -- faults ----------------------------------------------------------------------------------

export const faults = {
  async render(root, _params, ctx) {
    const cfg = await config();
    const params = new URLSearchParams(location.search);
    const site = select("faults-site", [["all", "all"], ...names(cfg.sites)], params.get("site") || "all", "site");
    const csv = h("a", { id: "faults-csv", href: "/api/faults.csv", download: "faults.csv" }, "Download CSV");
    const result = h("p", { id: "faults-result", class: "result", "aria-live": "polite" });
    const wrap = h("div", { id: "faults-table-wrap" });
    root.append(h("h1", {}, "Faults"), h("div", { class: "toolbar" }, site, csv), result, wrap);

    async function load() {
      ctx.busy();
      const q = query({ site: site.querySelector("select").value });
      history.replaceState(null, "", `/faults${q}`);
      csv.href = `/api/faults.csv${q}`;
      let list;
      try {
        list = await get(`/api/faults${q}`);
      } catch (err) {
        showError(result, err);
        ctx.ready();
        return;
      }
      showText(result, `${list.length} active ${list.length === 1 ? "fault" : "faults"}`, "");
      clear(wrap).append(
        table(
          "faults-table",
          ["node", "site", "fault", "since", "age", "detail", "acknowledged"],
          list.map((f) => [
            h("a", { href: `/nodes/${encodeURIComponent(f.node)}` }, f.node),
            f.site || "",
            h("span", {}, faultWords(f.fault), " ", h("code", {}, f.fault)),
            localTime(f.since),
            duration(f.age_s),
            f.detail || "",
            ackCell(f, result),
          ]),
          "no active faults",
        ),
      );
      ctx.ready();
    }
    site.querySelector("select").addEventListener("change", load);
    await load();
  },
};

function ackCell(f, result) {
  const cell = h("span", { class: "ack" });
  const shown = (a) => clear(cell).append(`${a.by} at ${localTime(a.at)}`);
  if (f.acknowledged) {
    shown(f.acknowledged);
    return cell;
  }
  const b = h("button", { type: "button", "data-testid": `ack-${f.node}-${f.fault}` }, "Acknowledge");
  b.addEventListener("click", async () => {
    b.disabled = true;
    try {
      const r = await post("/api/faults/ack", { node: f.node, fault: f.fault });
      shown(r.acknowledged);
      showText(result, `acknowledged ${f.fault} on ${f.node}`, "ok");
    } catch (err) {
      b.disabled = false;
      showError(result, err);
    }
  });
  cell.append(b);
  return cell;
}

// -- rollouts --------------------------------------------------------------------------------

function waveBar(w) {
  const total = Math.max(1, w.total || 0);
  const bar = h("span", { class: "wavebar", role: "img" });
  const parts = [
    ["done", w.done],
    ["failed", w.failed],
    ["in_flight", w.in_flight],
    ["pending", w.pending],
  ];
  for (const [k, n] of parts) {
    if (!n) continue;
    const seg = h("span", { class: `seg ${k}` });
    seg.style.width = `${(100 * n) / total}%`;
    bar.append(seg);
  }
  const words = `done ${w.done || 0}, failed ${w.failed || 0}, in flight ${w.in_flight || 0}, pending ${w.pending || 0}`;
  bar.setAttribute("aria-label", words);
  return h("div", { class: "wave" }, h("span", { class: "wave-n" }, `wave ${w.wave}`), bar, h("span", { class: "wave-words" }, words));
}

export const rollouts = {
  async render(root, _params, ctx) {
    const result = h("p", { id: "rollout-result", class: "result", "aria-live": "polite" });
    const wrap = h("div", { id: "rollouts-table-wrap" });
    root.append(h("h1", {}, "Rollouts"), result, wrap);

    async function act(r, verb) {
      if (verb === "abort" && !window.confirm(`Abort rollout ${r.id} (version ${r.version})?`)) return;
      try {
        const out = await post(`/api/rollouts/${encodeURIComponent(r.id)}/${verb}`, {});
        showText(result, `rollout ${out.id}: ${out.state}`, "ok");
        await load();
      } catch (err) {
        showError(result, err);
      }
    }

    async function load() {
      const list = await get("/api/rollouts");
      clear(wrap).append(
        table(
          "rollouts-table",
          ["id", "version", "state", "created", "waves", ""],
          list.map((r) => {
            const buttons = ["pause", "resume", "abort"].map((v) => {
              const b = h(
                "button",
                { type: "button", class: v === "abort" ? "danger" : "", "data-testid": `rollout-${v}-${r.id}` },
                v,
              );
              b.addEventListener("click", () => act(r, v));
              return b;
            });
            return [
              String(r.id),
              r.version,
              h("span", {}, r.state, r.detail ? h("span", { class: "muted" }, ` (${r.detail})`) : null),
              localTime(r.created),
              h("div", { class: "waves" }, (r.waves || []).map(waveBar)),
              h("div", { class: "buttons" }, buttons),
            ];
          }),
          "no rollouts",
        ),
      );
    }
    await load();
  },
};

// -- audit -----------------------------------------------------------------------------------

export const audit = {
  async render(root, _params, ctx) {
    const who = h("select", { id: "audit-who", name: "who" });
    const result = h("p", { id: "audit-result", class: "result", "aria-live": "polite" });
    const wrap = h("div", { id: "audit-table-wrap" });
    root.append(
      h("h1", {}, "Audit"),
      h("div", { class: "toolbar" }, h("label", { class: "field" }, h("span", {}, "who"), who)),
      result,
      wrap,
    );
    const seen = new Set();
    const chosen = () => who.value || "all";
    function fillWho() {
      const keep = chosen();
      clear(who).append(h("option", { value: "all" }, "all"));
      for (const u of [...seen].sort()) who.append(h("option", { value: u, selected: u === keep }, u));
    }

    async function load() {
      ctx.busy();
      let list;
      try {
        list = await get(`/api/audit${query({ limit: 200, who: chosen() })}`);
      } catch (err) {
        showError(result, err);
        ctx.ready();
        return;
      }
      for (const e of list) if (e.who) seen.add(e.who);
      fillWho();
      showText(result, `${list.length} ${list.length === 1 ? "entry" : "entries"}, newest first`, "");
      clear(wrap).append(
        table(
          "audit-table",
          ["at", "who", "via", "action", "target", "nodes", "result"],
          list.map((e) => {
            const nodes = e.nodes || [];
            return [
              localTime(e.at),
              e.who || "",
              e.via || "",
              e.action || "",
              typeof e.target === "object" && e.target ? Object.entries(e.target).map(([k, v]) => `${k} ${v}`).join(", ") : String(e.target ?? ""),
              nodes.length === 0 ? "—" : nodes.length === 1 ? nodes[0] : `${nodes.length} nodes`,
              [e.result, e.detail].filter(Boolean).join(": "),
            ];
          }),
          "no entries",
        ),
      );
      ctx.ready();
    }
    who.addEventListener("change", load);
    fillWho();
    await load();
  },
};
