// Small canvas charts, no library: a time chart (lines or step lines on up to two y
// axes, vertical markers) and grouped bars. devicePixelRatio aware; every chart is
// redrawn when its canvas changes size. Units are always written on the axes.

const FONT = "12px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
const INK = "#1f2a35";
const MUTED = "#5f6b77";
const GRID = "rgba(31, 42, 53, 0.10)";
export const PALETTE = ["#c98a00", "#2d6cdf", "#7a8793", "#2e8b57", "#a23b72"];

const specs = new WeakMap();
const observer = new ResizeObserver((entries) => {
  for (const e of entries) {
    const s = specs.get(e.target);
    if (s) s.draw();
  }
});

function setup(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(120, Math.round(canvas.clientWidth));
  const h = Math.max(100, Math.round(canvas.clientHeight));
  if (canvas.width !== Math.round(w * dpr)) canvas.width = Math.round(w * dpr);
  if (canvas.height !== Math.round(h * dpr)) canvas.height = Math.round(h * dpr);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  ctx.font = FONT;
  return { ctx, w, h };
}

function register(canvas, draw) {
  specs.set(canvas, { draw });
  observer.observe(canvas);
  draw();
}

// Round ticks covering [lo, hi]: steps of 1, 2, 2.5 or 5 x 10^n.
export function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) hi = lo + 1;
  const raw = (hi - lo) / count;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * p).find((s) => s >= raw);
  const ticks = [];
  for (let v = Math.floor(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    ticks.push(Math.round(v / step) * step);
  }
  if (ticks[ticks.length - 1] < hi) ticks.push(ticks[ticks.length - 1] + step);
  return { ticks, step };
}

function tickText(v, step) {
  const digits = step >= 1 ? 0 : Math.min(3, Math.ceil(-Math.log10(step)));
  return v.toFixed(digits);
}

const pad2 = (n) => String(n).padStart(2, "0");
const TIME_STEPS = [900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800];

// Wall-clock text of epoch t at a fixed UTC offset (seconds).
export function clockText(t, offset, withDate = false) {
  const d = new Date((t + offset) * 1000);
  const hm = `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}`;
  return withDate ? `${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())}` : hm;
}

function legend(ctx, items, x0, y, maxX) {
  let x = x0;
  for (const it of items) {
    const text = it.unit ? `${it.label} (${it.unit})` : it.label;
    const tw = ctx.measureText(text).width + 30;
    if (x + tw > maxX && x > x0) {
      x = x0;
      y += 16;
    }
    ctx.fillStyle = it.color;
    ctx.strokeStyle = it.color;
    if (it.kind === "line") {
      ctx.lineWidth = 2;
      ctx.setLineDash(it.dash || []);
      ctx.beginPath();
      ctx.moveTo(x, y - 4);
      ctx.lineTo(x + 18, y - 4);
      ctx.stroke();
      ctx.setLineDash([]);
    } else {
      ctx.fillRect(x + 3, y - 10, 12, 10);
    }
    ctx.fillStyle = INK;
    ctx.fillText(text, x + 22, y);
    x += tw + 8;
  }
  return y;
}

// spec: {t: [epoch s], series: [{label, unit, values, axis: "left"|"right", step, color,
// min, max, dash}], markers: [{t, label}], tzOffset: seconds east of UTC for the labels
// (default the browser's), xMin, xMax, empty: text when there is nothing to draw}
export function timeChart(canvas, spec) {
  register(canvas, () => drawTime(canvas, spec));
  canvas.setAttribute("role", "img");
  const names = spec.series.map((s) => `${s.label} (${s.unit})`).join(", ");
  canvas.setAttribute("aria-label", `${spec.title || "chart"}: ${names} over time`);
}

function drawTime(canvas, spec) {
  const { ctx, w, h } = setup(canvas);
  const t = spec.t || [];
  const hasRight = spec.series.some((s) => s.axis === "right");
  const items = spec.series.map((s, i) => ({
    label: s.label,
    unit: s.unit,
    color: s.color || PALETTE[i],
    kind: "line",
    dash: s.dash,
  }));
  const legendBottom = legend(ctx, items, 48, 14, w - 10);
  const top = legendBottom + 26; // room for the axes' units above the top ticks
  const left = 48;
  const right = hasRight ? w - 50 : w - 14;
  const bottom = h - 24;
  if (!t.length) {
    ctx.fillStyle = MUTED;
    ctx.textAlign = "center";
    ctx.fillText(spec.empty || "no data for this span", (left + right) / 2, (top + bottom) / 2);
    ctx.textAlign = "start";
    return;
  }
  const x0 = spec.xMin ?? t[0];
  const x1 = spec.xMax ?? t[t.length - 1];
  const span = Math.max(1, x1 - x0);
  const X = (v) => left + ((v - x0) / span) * (right - left);
  const axis = (side) => {
    const ss = spec.series.filter((s) => (s.axis || "left") === side);
    if (!ss.length) return null;
    let lo = Math.min(...ss.map((s) => s.min ?? Infinity));
    let hi = Math.max(...ss.map((s) => s.max ?? -Infinity));
    for (const s of ss) {
      for (const v of s.values) {
        if (v === null || v === undefined) continue;
        if (s.min === undefined) lo = Math.min(lo, v);
        if (s.max === undefined) hi = Math.max(hi, v);
      }
    }
    if (!Number.isFinite(lo)) lo = 0;
    if (!Number.isFinite(hi)) hi = lo + 1;
    lo = Math.min(lo, 0);
    const nt = niceTicks(lo, hi, 4);
    const a = { ticks: nt.ticks, step: nt.step, lo: nt.ticks[0], hi: nt.ticks.at(-1), ss };
    a.Y = (v) => bottom - ((v - a.lo) / (a.hi - a.lo || 1)) * (bottom - top);
    a.unit = ss[0].unit;
    return a;
  };
  const L = axis("left");
  const R = axis("right");
  // grid and y ticks
  ctx.lineWidth = 1;
  ctx.strokeStyle = GRID;
  ctx.fillStyle = MUTED;
  for (const [a, x, align] of [
    [L, left - 6, "right"],
    [R, right + 6, "left"],
  ]) {
    if (!a) continue;
    ctx.textAlign = align;
    for (const v of a.ticks) {
      const y = Math.round(a.Y(v)) + 0.5;
      if (a === L || !L) {
        ctx.beginPath();
        ctx.moveTo(left, y);
        ctx.lineTo(right, y);
        ctx.stroke();
      }
      ctx.fillText(tickText(v, a.step), x, y + 4);
    }
    ctx.fillText(a.unit, x, top - 12);
  }
  // x ticks at round local times
  const offset = spec.tzOffset ?? -new Date().getTimezoneOffset() * 60;
  const want = (span * 80) / (right - left);
  const step = TIME_STEPS.find((s) => s >= want) || TIME_STEPS.at(-1);
  const withDate = step >= 86400;
  ctx.textAlign = "center";
  for (let v = Math.ceil((x0 + offset) / step) * step - offset; v <= x1; v += step) {
    const x = Math.round(X(v)) + 0.5;
    ctx.strokeStyle = GRID;
    ctx.beginPath();
    ctx.moveTo(x, top);
    ctx.lineTo(x, bottom);
    ctx.stroke();
    ctx.fillStyle = MUTED;
    ctx.textAlign = x > w - 20 ? "right" : "center";
    ctx.fillText(clockText(v, offset, withDate), Math.min(x, w - 2), bottom + 16);
  }
  ctx.strokeStyle = INK;
  ctx.beginPath();
  ctx.moveTo(left, bottom + 0.5);
  ctx.lineTo(right, bottom + 0.5);
  ctx.stroke();
  // vertical markers (sunset, sunrise)
  for (const m of spec.markers || []) {
    if (m.t < x0 || m.t > x1) continue;
    const x = Math.round(X(m.t)) + 0.5;
    ctx.strokeStyle = m.color || "#6a3d9a";
    ctx.setLineDash([4, 3]);
    ctx.beginPath();
    ctx.moveTo(x, top);
    ctx.lineTo(x, bottom);
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = m.color || "#6a3d9a";
    ctx.textAlign = x > right - 60 ? "right" : "left";
    ctx.fillText(m.label, x + (x > right - 60 ? -4 : 4), top + 12 + (m.row || 0) * 14);
  }
  // the series
  ctx.save();
  ctx.beginPath();
  ctx.rect(left, top - 2, right - left, bottom - top + 4);
  ctx.clip();
  spec.series.forEach((s, i) => {
    const a = (s.axis || "left") === "right" ? R : L;
    ctx.strokeStyle = s.color || PALETTE[i];
    ctx.lineWidth = 2;
    ctx.setLineDash(s.dash || []);
    ctx.beginPath();
    let pen = false;
    let prevY = 0;
    for (let k = 0; k < t.length; k++) {
      const v = s.values[k];
      if (v === null || v === undefined) {
        pen = false;
        continue;
      }
      const x = X(t[k]);
      const y = a.Y(v);
      if (!pen) ctx.moveTo(x, y);
      else if (s.step) {
        ctx.lineTo(x, prevY);
        ctx.lineTo(x, y);
      } else ctx.lineTo(x, y);
      pen = true;
      prevY = y;
    }
    if (pen && s.step && spec.xMax !== undefined) ctx.lineTo(X(x1), prevY);
    ctx.stroke();
    ctx.setLineDash([]);
  });
  ctx.restore();
  ctx.textAlign = "start";
}

// spec: {labels: [...], series: [{label, values, color}], unit, title}
export function barChart(canvas, spec) {
  register(canvas, () => drawBars(canvas, spec));
  canvas.setAttribute("role", "img");
  const names = spec.series.map((s) => s.label).join(", ");
  canvas.setAttribute("aria-label", `${spec.title || "chart"}: ${names} in ${spec.unit}`);
}

function drawBars(canvas, spec) {
  const { ctx, w, h } = setup(canvas);
  const items = spec.series.map((s, i) => ({
    label: s.label,
    color: s.color || PALETTE[i],
    kind: "box",
  }));
  const legendBottom = legend(ctx, items, 56, 14, w - 10);
  const top = legendBottom + 26;
  const left = 56;
  const right = w - 12;
  const bottom = h - 26;
  const n = spec.labels.length;
  if (!n) {
    ctx.fillStyle = MUTED;
    ctx.textAlign = "center";
    ctx.fillText(spec.empty || "no data", (left + right) / 2, (top + bottom) / 2);
    ctx.textAlign = "start";
    return;
  }
  let hi = 0;
  for (const s of spec.series) for (const v of s.values) if (v > hi) hi = v;
  const { ticks, step } = niceTicks(0, hi || 1, 4);
  const top1 = ticks.at(-1);
  const Y = (v) => bottom - (v / top1) * (bottom - top);
  ctx.lineWidth = 1;
  ctx.textAlign = "right";
  for (const v of ticks) {
    const y = Math.round(Y(v)) + 0.5;
    ctx.strokeStyle = GRID;
    ctx.beginPath();
    ctx.moveTo(left, y);
    ctx.lineTo(right, y);
    ctx.stroke();
    ctx.fillStyle = MUTED;
    ctx.fillText(tickText(v, step), left - 6, y + 4);
  }
  ctx.fillText(spec.unit, left - 6, top - 12);
  const band = (right - left) / n;
  const k = spec.series.length;
  const bw = Math.max(1, Math.min(28, (band * 0.8) / k));
  const every = Math.max(1, Math.ceil((n * 44) / (right - left)));
  ctx.textAlign = "center";
  for (let i = 0; i < n; i++) {
    const cx = left + band * (i + 0.5);
    spec.series.forEach((s, j) => {
      const v = s.values[i];
      if (v === null || v === undefined) return;
      ctx.fillStyle = s.color || PALETTE[j];
      const x = cx - (k * bw) / 2 + j * bw;
      ctx.fillRect(x, Y(v), bw - 1, bottom - Y(v));
    });
    if (i % every === 0) {
      ctx.fillStyle = MUTED;
      ctx.fillText(spec.labels[i], cx, bottom + 16);
    }
  }
  ctx.strokeStyle = INK;
  ctx.beginPath();
  ctx.moveTo(left, bottom + 0.5);
  ctx.lineTo(right, bottom + 0.5);
  ctx.stroke();
  ctx.textAlign = "start";
}
