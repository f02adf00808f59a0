// A node's story: its facts, sensors, charge point, energy, 24 h and 30 d charts, events
// and commands, and the dim / identify actions (every one shown; the server decides
// who may, and its 403 message is shown as it comes).

import { get, pollJob, post } from "./api.js";
import { timeChart } from "./charts.js";
import { ago, clear, faultWords, h, localTime, num, showError, showText, table, working } from "./dom.js";
import { shapeIcon } from "./shapes.js";

const DURATIONS = [
  ["0", "no limit"],
  ["900", "15 min"],
  ["3600", "1 h"],
  ["14400", "4 h"],
  ["43200", "until morning (12 h)"],
  ["custom", "custom…"],
];

export async function render(root, [id], ctx) {
  const enc = encodeURIComponent(id);
  const title = h("h1", { id: "node-title" }, id);
  const stateEl = h("p", { id: "node-state", class: "state" });
  const levelEl = h("p", { id: "node-level", class: "level" });
  const facts = h("dl", { id: "node-facts", class: "facts" });
  const sensors = h("div", { id: "node-sensors-wrap" });
  const evse = h("div", { id: "node-evse" });
  const energy = h("dl", { id: "node-energy", class: "facts" });
  const c24 = h("canvas", { id: "chart-24h", class: "chart" });
  const c30 = h("canvas", { id: "chart-30d", class: "chart" });
  const events = h("div", { id: "node-events-wrap" });
  const commands = h("div", { id: "node-commands-wrap" });
  const result = h("p", { id: "action-result", class: "result", "aria-live": "polite" });

  root.append(
    h("p", { class: "crumbs" }, h("a", { href: "/" }, "Map"), " / node"),
    h("div", { class: "node-head" }, title, stateEl, levelEl),
    h(
      "div",
      { class: "grid2" },
      h("section", { class: "card" }, h("h2", {}, "Facts"), facts),
      actions(id, result, () => refreshFacts(), ctx),
    ),
    h(
      "div",
      { class: "grid2" },
      h("section", { class: "card" }, h("h2", {}, "Sensors"), sensors),
      h(
        "section",
        { class: "card" },
        h("h2", {}, "Energy"),
        energy,
        h("h2", {}, "Charge point"),
        evse,
      ),
    ),
    h("section", { class: "card" }, h("h2", {}, "Last 24 hours"), c24),
    h("section", { class: "card" }, h("h2", {}, "Last 30 days"), c30),
    h("section", { class: "card" }, h("h2", {}, "Events"), events),
    h("section", { class: "card" }, h("h2", {}, "Commands"), commands),
  );

  async function refreshFacts() {
    const [node, cmds] = await Promise.all([
      get(`/api/nodes/${enc}`),
      get(`/api/nodes/${enc}/commands?limit=50`),
    ]);
    if (!ctx.isCurrent()) return;
    showNode(node);
    showCommands(cmds);
  }

  function showNode(n) {
    clear(stateEl).append(shapeIcon(n.state, 16), ` ${n.state}`);
    stateEl.dataset.state = n.state;
    levelEl.textContent =
      n.level === null || n.level === undefined ? "level —" : `level ${n.level} %`;
    if (n.mode) levelEl.append(h("span", { class: "muted" }, ` (${n.mode})`));
    const rows = [
      ["site", n.site],
      ["groups", (n.groups || []).join(", ") || "none"],
      ["board", n.board],
      ["firmware", n.firmware],
      ["slot", n.slot],
      ["online", n.online === null || n.online === undefined ? "—" : n.online ? "yes" : "no"],
      ["last seen", n.last_seen ? `${localTime(n.last_seen)} (${ago(n.last_seen)})` : "never"],
      ["rated power", num(n.rated_w, 0, "W")],
      [
        "location",
        n.lat === null || n.lat === undefined
          ? "none"
          : `${Number(n.lat).toFixed(5)}, ${Number(n.lon).toFixed(5)}`,
      ],
      [
        "faults",
        (n.faults || []).length ? n.faults.map((f) => `${faultWords(f)} (${f})`).join(", ") : "none",
      ],
    ];
    clear(facts);
    for (const [k, v] of rows) {
      facts.append(h("dt", {}, k), h("dd", {}, v === null || v === undefined ? "—" : String(v)));
    }
    clear(sensors).append(
      table(
        "node-sensors",
        ["name", "value", "unit", "at"],
        (n.sensors || []).map((s) => [
          s.sensor ? `${s.name} (${s.sensor})` : s.name,
          s.fault ? `fault: ${s.fault}` : num(s.value, s.value !== null && Math.abs(s.value) >= 100 ? 0 : 1),
          s.unit || "",
          localTime(s.at),
        ]),
        "no sensors",
      ),
    );
    clear(evse);
    if (!n.evse) evse.append(h("p", { class: "muted" }, "no charge point"));
    else {
      const sessions = n.evse.sessions || [];
      evse.append(
        h("p", {}, `status ${n.evse.status || "—"}, total ${num(n.evse.kwh, 3, "kWh")}`),
        table(
          "node-evse-sessions",
          ["start", "end", "energy (kWh)"],
          sessions.map((s) => [localTime(s.start), s.end ? localTime(s.end) : "charging", num(s.kwh, 3)]),
          "no sessions",
        ),
      );
    }
    const e = n.energy || {};
    clear(energy).append(
      h("dt", {}, "energy counter"),
      h("dd", {}, num(e.kwh, 3, "kWh")),
      h("dt", {}, "burn time"),
      h("dd", {}, num(e.burn_h, 1, "h")),
    );
  }

  function showCommands(list) {
    clear(commands).append(
      table(
        "node-commands",
        ["cmd", "args", "sent", "via", "status", "acked"],
        (list || []).map((c) => [
          c.cmd,
          h("code", {}, c.args ? JSON.stringify(c.args) : ""),
          localTime(c.sent),
          c.via || "—",
          c.status + (c.result && typeof c.result === "string" ? `: ${c.result}` : ""),
          c.acked ? localTime(c.acked) : "—",
        ]),
        "no commands yet",
      ),
    );
  }

  const [node, s24, s30, evs, cmds] = await Promise.all([
    get(`/api/nodes/${enc}`),
    get(`/api/nodes/${enc}/series?span=24h`),
    get(`/api/nodes/${enc}/series?span=30d`),
    get(`/api/nodes/${enc}/events?limit=100`),
    get(`/api/nodes/${enc}/commands?limit=50`),
  ]);
  showNode(node);
  showCommands(cmds);
  for (const [canvas, s, label] of [
    [c24, s24, "last 24 hours"],
    [c30, s30, "last 30 days"],
  ]) {
    timeChart(canvas, {
      title: `${id}, ${label}`,
      t: s.t || [],
      xMin: s.start,
      xMax: s.end,
      series: [
        { label: "level", unit: "%", values: s.level || [], step: true, min: 0, max: 100 },
        { label: "power", unit: "W", values: s.power_w || [], axis: "right", color: "#2d6cdf" },
      ],
    });
  }
  clear(events).append(
    table(
      "node-events",
      ["at", "event", "detail"],
      (evs || []).map((e) => [localTime(e.ts), eventWords(e), e.detail || payloadWords(e.payload)]),
      "no events",
    ),
  );
}

// Lamp faults and sensorFault come as events whose payload says `active` (raised) or
// not (cleared); other events (boot, ota, evse_status, ...) by name.
function eventWords(e) {
  const p = e.payload || {};
  if (typeof p.active === "boolean") {
    return `${faultWords(e.event)} (${e.event}) ${p.active ? "raised" : "cleared"}`;
  }
  return e.event;
}

// An event without a detail: its payload's own fields, short (evse_status's status,
// boot's reset cause, ota's state and progress...).
function payloadWords(p) {
  if (!p || typeof p !== "object") return "";
  const skip = new Set(["v", "ts", "event", "active", "detail", "timestamp"]);
  const text = Object.entries(p)
    .filter(([k]) => !skip.has(k))
    .map(([k, v]) => `${k} ${typeof v === "object" ? JSON.stringify(v) : v}`)
    .join(", ");
  return text.length > 140 ? `${text.slice(0, 139)}…` : text;
}

function actions(id, result, refreshFacts, ctx) {
  const level = h("input", {
    id: "dim-level",
    type: "number",
    min: "0",
    max: "100",
    step: "1",
    value: "50",
    required: true,
  });
  const dur = h("select", { id: "dim-duration" });
  for (const [v, t] of DURATIONS) dur.append(h("option", { value: v }, t));
  const custom = h("input", {
    id: "dim-custom",
    type: "number",
    min: "1",
    max: "10080",
    step: "1",
    value: "30",
    "aria-label": "custom duration in minutes",
  });
  const customWrap = h("label", { class: "field", hidden: true }, h("span", {}, "minutes"), custom);
  dur.addEventListener("change", () => {
    customWrap.hidden = dur.value !== "custom";
  });
  const submit = h("button", { id: "dim-submit", type: "submit", class: "primary" }, "Dim");
  const auto = h("button", { id: "dim-auto", type: "button" }, "Back to schedule");
  const identify = h("button", { id: "identify", type: "button" }, "Identify (blink)");
  const buttons = [submit, auto, identify];

  async function send(body, label) {
    buttons.forEach((b) => (b.disabled = true));
    working(result);
    try {
      const { job, total } = await post("/api/commands", body);
      showText(result, `${label}: 0/${total} settled`, "busy");
      const done = await pollJob(
        job,
        (j) => showText(result, `${label}: ${j.settled}/${j.total} settled`, "busy"),
        ctx.signal,
      );
      const outs = done.outcomes || [];
      // one outcome per node: ok, timeout, or error with the node's code and detail
      const words = outs.map((o) => {
        if (o.status === "ok") return "ok";
        const why = [o.error, o.detail].filter(Boolean).join(", ");
        return `${o.status}${why ? `: ${why}` : ""}`;
      });
      if (done.error) words.push(`error: ${done.error}`);
      const ok = !done.error && outs.length > 0 && outs.every((o) => o.status === "ok");
      const settled = `${label}: ${done.settled}/${done.total} settled`;
      showText(result, `${settled} — ${words.join("; ") || "error: no outcome"}`, ok ? "ok" : "error");
      if (ok && body.cmd === "dim") await refreshFacts();
    } catch (err) {
      if (ctx.isCurrent()) showError(result, err);
    } finally {
      buttons.forEach((b) => (b.disabled = false));
    }
  }

  const form = h(
    "form",
    { class: "actions", novalidate: true },
    h("label", { class: "field" }, h("span", {}, "level (%)"), level),
    h("label", { class: "field" }, h("span", {}, "for"), dur),
    customWrap,
    h("div", { class: "buttons" }, submit, auto, identify),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = Number(level.value);
    if (level.value === "" || !Number.isInteger(v) || v < 0 || v > 100) {
      showError(result, new Error("level: a whole number from 0 to 100 %"));
      return;
    }
    let until = Number(dur.value);
    if (dur.value === "custom") {
      const m = Number(custom.value);
      if (!Number.isInteger(m) || m < 1 || m > 10080) {
        showError(result, new Error("minutes: a whole number from 1 to 10080 (7 days)"));
        return;
      }
      until = m * 60;
    }
    const what = until ? `dim to ${v} % for ${until / 60} min` : `dim to ${v} %`;
    send({ cmd: "dim", target: { node: id }, args: { level: v, fade_s: 0, until_s: until } }, what);
  });
  auto.addEventListener("click", () =>
    send({ cmd: "dim", target: { node: id }, args: { level: null, fade_s: 0 } }, "back to schedule"),
  );
  identify.addEventListener("click", () =>
    send({ cmd: "identify", target: { node: id }, args: {} }, "identify"),
  );
  return h("section", { class: "card" }, h("h2", {}, "Actions"), form, result);
}
