// The schedule editor's form (docs/schedules.md): id, profiles of steps (an anchor:
// a clock time or sunset / sunrise / dusk / dawn, an offset in minutes for sun anchors,
// a level), and the calendar (weekdays, dates, a from/to range, or the default). The
// form edits a model object and hands it to onChange after every edit; keys the form
// does not show (motion, photocell, ...) are kept as they are. The server validates.

import { clear, h } from "./dom.js";

const ANCHORS = ["clock", "sunset", "sunrise", "dusk", "dawn"];
const WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const KINDS = [
  ["weekdays", "on weekdays"],
  ["dates", "on dates"],
  ["range", "from … to"],
  ["default", "otherwise (default)"],
];

export function emptySchedule() {
  return {
    version: 1,
    id: "new-schedule",
    profiles: {
      night: [
        { at: "sunset", offset: -10, level: 100 },
        { at: "00:30", level: 50 },
        { at: "sunrise", offset: 10, level: 0 },
      ],
    },
    calendar: [{ profile: "night" }],
  };
}

function kindOf(entry) {
  if (entry.weekdays) return "weekdays";
  if (entry.dates) return "dates";
  if (entry.from !== undefined || entry.to !== undefined) return "range";
  return "default";
}

// JSON text a person reads: two-space indents, but a step, a calendar entry or any
// short object or list of plain values on one line.
export function pretty(v, indent = "") {
  if (v === null || typeof v !== "object") return JSON.stringify(v) ?? "null";
  const flat = inline(v);
  if (depth(v) <= 2 && flat.length + indent.length <= 80) return flat;
  const inner = `${indent}  `;
  const items = Array.isArray(v)
    ? v.map((x) => inner + pretty(x, inner))
    : defined(v).map(([k, x]) => `${inner}${JSON.stringify(k)}: ${pretty(x, inner)}`);
  if (!items.length) return Array.isArray(v) ? "[]" : "{}";
  const [open, close] = Array.isArray(v) ? ["[", "]"] : ["{", "}"];
  return `${open}\n${items.join(",\n")}\n${indent}${close}`;
}

function inline(v) {
  if (v === null || typeof v !== "object") return JSON.stringify(v) ?? "null";
  if (Array.isArray(v)) return `[${v.map(inline).join(", ")}]`;
  return `{${defined(v).map(([k, x]) => `${JSON.stringify(k)}: ${inline(x)}`).join(", ")}}`;
}

// An object's entries as JSON keeps them: a key whose value is undefined is left out.
const defined = (o) => Object.entries(o).filter(([, x]) => x !== undefined);

function depth(v) {
  if (v === null || typeof v !== "object") return 0;
  const xs = Array.isArray(v) ? v : Object.values(v);
  return 1 + xs.reduce((a, x) => Math.max(a, depth(x)), 0);
}

// The model in the documented key order (docs/schedules.md), for the JSON text: a
// stored schedule comes back with its keys sorted.
function ordered(m) {
  const out = { version: m.version ?? 1, id: m.id, profiles: {}, calendar: [] };
  for (const [name, steps] of Object.entries(m.profiles || {})) {
    out.profiles[name] = steps.map((st) => keyed(st, ["at", "offset", "level"]));
  }
  out.calendar = (m.calendar || []).map((e) => keyed(e, ["weekdays", "dates", "from", "to", "profile"]));
  for (const [k, v] of Object.entries(m)) if (!(k in out)) out[k] = v;
  return out;
}

function keyed(obj, order) {
  if (!obj || typeof obj !== "object" || Array.isArray(obj)) return obj;
  const out = {};
  for (const k of order) if (k in obj) out[k] = obj[k];
  for (const [k, v] of Object.entries(obj)) if (!(k in out)) out[k] = v;
  return out;
}

export class ScheduleForm {
  constructor(root, onChange) {
    this.root = root;
    this.onChange = onChange;
    this.model = emptySchedule();
  }

  // Show an object (from the JSON text). Anything that is not a schedule-shaped object
  // is still shown as far as it goes; the server's validation says what is wrong.
  set(obj) {
    const m = obj && typeof obj === "object" && !Array.isArray(obj) ? structuredClone(obj) : {};
    if (!m.profiles || typeof m.profiles !== "object" || Array.isArray(m.profiles)) m.profiles = {};
    for (const k of Object.keys(m.profiles)) {
      if (!Array.isArray(m.profiles[k])) m.profiles[k] = [];
    }
    if (!Array.isArray(m.calendar)) m.calendar = [];
    m.calendar = m.calendar.filter((e) => e && typeof e === "object");
    this.model = m;
    this.render();
  }

  value() {
    return ordered(this.model);
  }

  changed(rerender = false) {
    if (rerender) this.render();
    this.onChange(this.value());
  }

  render() {
    const m = this.model;
    const focusId = document.activeElement && this.root.contains(document.activeElement)
      ? document.activeElement.dataset.testid
      : null;
    clear(this.root);
    const id = h("input", { id: "sf-id", "data-testid": "sf-id", value: m.id ?? "", required: true });
    id.addEventListener("input", () => {
      m.id = id.value;
      this.changed();
    });
    this.root.append(
      h("label", { class: "field" }, h("span", {}, "schedule id"), id),
      h("h3", {}, "Profiles"),
    );
    const names = Object.keys(m.profiles);
    names.forEach((name) => this.root.append(this.profile(name)));
    const add = h("button", { type: "button", "data-testid": "sf-add-profile" }, "+ profile");
    add.addEventListener("click", () => {
      let n = 1;
      while (`profile-${n}` in m.profiles) n++;
      m.profiles[`profile-${n}`] = [{ at: "sunset", level: 100 }, { at: "sunrise", level: 0 }];
      this.changed(true);
    });
    this.root.append(add, h("h3", {}, "Calendar (the first entry that matches wins)"));
    const list = h("ol", { class: "calendar" });
    m.calendar.forEach((e, i) => list.append(this.entry(e, i, names)));
    const addEntry = h("button", { type: "button", "data-testid": "sf-add-entry" }, "+ entry");
    addEntry.addEventListener("click", () => {
      // new rules go before the default, which must stay last
      const last = m.calendar.at(-1);
      const at = last && kindOf(last) === "default" ? m.calendar.length - 1 : m.calendar.length;
      m.calendar.splice(at, 0, { weekdays: ["fri", "sat"], profile: names[0] || "" });
      this.changed(true);
    });
    this.root.append(list, addEntry);
    const extra = Object.keys(m).filter((k) => !["version", "id", "profiles", "calendar"].includes(k));
    if (extra.length) {
      this.root.append(
        h("p", { class: "muted" }, `Also in this schedule (edit in the JSON tab): ${extra.join(", ")}.`),
      );
    }
    if (focusId) {
      const el = this.root.querySelector(`[data-testid="${focusId}"]`);
      if (el) el.focus();
    }
  }

  profile(name) {
    const m = this.model;
    const steps = m.profiles[name];
    const tid = (s) => `sf-${name}-${s}`;
    const nameIn = h("input", { value: name, "data-testid": tid("name"), "aria-label": "profile name" });
    nameIn.addEventListener("change", () => {
      const to = nameIn.value.trim();
      if (!to || to === name || to in m.profiles) {
        nameIn.value = name;
        return;
      }
      // rename in place, keeping the order, and in every calendar entry
      m.profiles = Object.fromEntries(
        Object.entries(m.profiles).map(([k, v]) => [k === name ? to : k, v]),
      );
      for (const e of m.calendar) if (e.profile === name) e.profile = to;
      this.changed(true);
    });
    const del = h("button", { type: "button", class: "danger", "data-testid": tid("remove") }, "remove profile");
    del.addEventListener("click", () => {
      delete m.profiles[name];
      this.changed(true);
    });
    const rows = steps.map((st, i) => this.step(name, st, i));
    const add = h("button", { type: "button", "data-testid": tid("add-step") }, "+ step");
    add.addEventListener("click", () => {
      steps.push({ at: "22:00", level: 50 });
      this.changed(true);
    });
    return h(
      "fieldset",
      { class: "profile" },
      h("legend", {}, "profile ", nameIn),
      h(
        "table",
        { class: "steps" },
        h(
          "thead",
          {},
          h("tr", {}, ["anchor", "time", "offset (min)", "level (%)", ""].map((c) => h("th", { scope: "col" }, c))),
        ),
        h("tbody", {}, rows),
      ),
      h("div", { class: "buttons" }, add, del),
    );
  }

  step(name, st, i) {
    const steps = this.model.profiles[name];
    const tid = (s) => `sf-${name}-${i}-${s}`;
    const clock = !ANCHORS.slice(1).includes(st.at);
    const anchor = h("select", { "data-testid": tid("anchor"), "aria-label": "anchor" });
    for (const a of ANCHORS) {
      anchor.append(h("option", { value: a, selected: clock ? a === "clock" : a === st.at }, a));
    }
    const time = h("input", {
      type: "time",
      value: clock ? st.at ?? "" : "",
      hidden: !clock,
      "data-testid": tid("time"),
      "aria-label": "clock time",
    });
    const offset = h("input", {
      type: "number",
      min: "-360",
      max: "360",
      step: "1",
      value: st.offset ?? "",
      placeholder: "0",
      hidden: clock,
      "data-testid": tid("offset"),
      "aria-label": "offset in minutes",
    });
    const level = h("input", {
      type: "number",
      min: "0",
      max: "100",
      step: "1",
      value: st.level ?? "",
      "data-testid": tid("level"),
      "aria-label": "level in percent",
    });
    const num = (v) => (v === "" ? undefined : Number(v));
    anchor.addEventListener("change", () => {
      if (anchor.value === "clock") {
        st.at = time.value || "22:00";
        delete st.offset;
      } else st.at = anchor.value;
      this.changed(true);
    });
    time.addEventListener("input", () => {
      if (time.value) st.at = time.value;
      this.changed();
    });
    offset.addEventListener("input", () => {
      const v = num(offset.value);
      if (v === undefined || v === 0) delete st.offset;
      else st.offset = v;
      this.changed();
    });
    level.addEventListener("input", () => {
      st.level = num(level.value);
      this.changed();
    });
    const del = h("button", { type: "button", class: "danger", "data-testid": tid("remove"), title: "remove step" }, "×");
    del.addEventListener("click", () => {
      steps.splice(i, 1);
      this.changed(true);
    });
    return h("tr", {}, [anchor, time, offset, level, del].map((c) => h("td", {}, c)));
  }

  entry(e, i, names) {
    const m = this.model;
    const tid = (s) => `sf-entry-${i}-${s}`;
    const kind = kindOf(e);
    const kindSel = h("select", { "data-testid": tid("kind"), "aria-label": "rule" });
    for (const [v, t] of KINDS) kindSel.append(h("option", { value: v, selected: v === kind }, t));
    kindSel.addEventListener("change", () => {
      for (const k of ["weekdays", "dates", "from", "to"]) delete e[k];
      if (kindSel.value === "weekdays") e.weekdays = ["sat", "sun"];
      if (kindSel.value === "dates") e.dates = ["--12-25"];
      if (kindSel.value === "range") Object.assign(e, { from: "--12-20", to: "--01-06" });
      // keep "profile" after the condition in the JSON
      const p = e.profile;
      delete e.profile;
      e.profile = p;
      this.changed(true);
    });
    const cond = h("span", { class: "cond" });
    if (kind === "weekdays") {
      for (const d of WEEKDAYS) {
        const box = h("input", { type: "checkbox", checked: e.weekdays.includes(d), "data-testid": tid(d) });
        box.addEventListener("change", () => {
          const set = new Set(e.weekdays);
          if (box.checked) set.add(d);
          else set.delete(d);
          e.weekdays = WEEKDAYS.filter((x) => set.has(x));
          this.changed();
        });
        cond.append(h("label", { class: "day" }, box, d));
      }
    } else if (kind === "dates") {
      const dates = h("input", {
        value: (e.dates || []).join(", "),
        placeholder: "--12-25, 2027-01-01",
        "data-testid": tid("dates"),
        "aria-label": "dates, YYYY-MM-DD or --MM-DD, comma separated",
      });
      dates.addEventListener("input", () => {
        e.dates = dates.value.split(/[\s,]+/).filter(Boolean);
        this.changed();
      });
      cond.append(dates);
    } else if (kind === "range") {
      for (const k of ["from", "to"]) {
        const inp = h("input", {
          value: e[k] ?? "",
          placeholder: "--12-20",
          size: "10",
          "data-testid": tid(k),
          "aria-label": `${k} date`,
        });
        inp.addEventListener("input", () => {
          e[k] = inp.value.trim();
          this.changed();
        });
        cond.append(h("label", { class: "day" }, `${k} `, inp));
      }
    }
    const prof = h("select", { "data-testid": tid("profile"), "aria-label": "profile" });
    const opts = names.includes(e.profile) || !e.profile ? names : [e.profile, ...names];
    for (const n of opts) prof.append(h("option", { value: n, selected: n === e.profile }, n));
    prof.addEventListener("change", () => {
      e.profile = prof.value;
      this.changed();
    });
    const move = (d, label, text) => {
      const b = h("button", { type: "button", title: label, "data-testid": tid(label) }, text);
      b.disabled = i + d < 0 || i + d >= m.calendar.length;
      b.addEventListener("click", () => {
        [m.calendar[i], m.calendar[i + d]] = [m.calendar[i + d], m.calendar[i]];
        this.changed(true);
      });
      return b;
    };
    const del = h("button", { type: "button", class: "danger", title: "remove", "data-testid": tid("remove") }, "×");
    del.addEventListener("click", () => {
      m.calendar.splice(i, 1);
      this.changed(true);
    });
    return h("li", {}, kindSel, cond, h("span", {}, " → "), prof, move(-1, "up", "↑"), move(1, "down", "↓"), del);
  }
}
