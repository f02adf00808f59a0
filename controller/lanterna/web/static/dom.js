// Small DOM and formatting helpers shared by the pages. No innerHTML with data: every
// value from the server goes in as text.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

// A real table: head cells are <th scope="col">, rows are arrays of cells (text or nodes).
export function table(id, head, rows, empty = "nothing to show") {
  const t = h("table", { id, class: "data" });
  t.appendChild(h("thead", {}, h("tr", {}, head.map((c) => h("th", { scope: "col" }, c)))));
  const body = h("tbody");
  if (!rows.length) {
    body.appendChild(h("tr", { class: "empty" }, h("td", { colspan: head.length }, empty)));
  }
  for (const r of rows) body.appendChild(h("tr", {}, r.map((c) => h("td", {}, c))));
  t.appendChild(body);
  return t;
}

export function select(id, options, value, label) {
  const s = h("select", { id, name: id });
  for (const o of options) {
    const [v, text] = Array.isArray(o) ? o : [o, o];
    s.appendChild(h("option", { value: v, selected: String(v) === String(value) }, text));
  }
  return label ? h("label", { class: "field" }, h("span", {}, label), s) : s;
}

// Show an error (an ApiError or any Error) in a result element, with its path if any.
export function showError(el, err) {
  clear(el);
  el.classList.remove("ok", "busy");
  el.classList.add("error");
  el.setAttribute("role", "alert");
  el.removeAttribute("aria-busy");
  const where = err && err.where ? ` (at ${err.where})` : "";
  const status = err && err.status ? `HTTP ${err.status}: ` : "";
  el.textContent = `${status}${err && err.message ? err.message : String(err)}${where}`;
}

export function showText(el, text, kind = "ok") {
  el.classList.remove("ok", "error", "busy");
  if (kind) el.classList.add(kind);
  el.removeAttribute("role");
  el.removeAttribute("aria-busy");
  el.textContent = text;
}

// A request is on its way: the element is emptied, and style.css shows "working…" as
// generated content, so the element's text is only ever an answer (the browser tests
// wait for the first text to appear and read it as the outcome).
export function working(el) {
  clear(el);
  el.classList.remove("ok", "error");
  el.classList.add("busy");
  el.removeAttribute("role");
  el.setAttribute("aria-busy", "true");
}

// -- time and numbers --------------------------------------------------------------------

export function toDate(v) {
  if (v === null || v === undefined || v === "") return null;
  const d = typeof v === "number" ? new Date(v * 1000) : new Date(v);
  return Number.isNaN(d.getTime()) ? null : d;
}

const pad = (n) => String(n).padStart(2, "0");

export function localTime(v) {
  const d = toDate(v);
  if (!d) return "—";
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  );
}

export function isoDate(d) {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "—";
  let s = Math.max(0, Math.round(seconds));
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const hh = Math.floor(s / 3600);
  s -= hh * 3600;
  const mm = Math.floor(s / 60);
  if (d) return `${d} d ${hh} h`;
  if (hh) return `${hh} h ${mm} min`;
  if (mm) return `${mm} min`;
  return `${s} s`;
}

export function ago(v) {
  const d = toDate(v);
  if (!d) return "never";
  const s = (Date.now() - d.getTime()) / 1000;
  if (s < 60) return "just now";
  return `${duration(s)} ago`;
}

export function num(v, digits = 2, unit = "") {
  if (v === null || v === undefined || Number.isNaN(Number(v))) return "—";
  const s = Number(v).toLocaleString("en-GB", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
  return unit ? `${s} ${unit}` : s;
}

// TALQ fault names in words (controller/lanterna/wire/numbers.py FAULTS), others split
// from camelCase.
const FAULT_WORDS = {
  supplyLoss: "supply lost",
  relayFailure: "relay failure",
  lampFailure: "lamp failure",
  lampUnexpectedOn: "lamp on when it should be off",
  cyclingFailure: "lamp cycling on and off",
  sensorFault: "sensor fault",
};

export function faultWords(name) {
  if (FAULT_WORDS[name]) return FAULT_WORDS[name];
  if (String(name).startsWith("sensor:")) return `sensor ${name.slice(7)} failed`;
  return String(name)
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .toLowerCase();
}
