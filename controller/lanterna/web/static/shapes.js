// Node states drawn with both a colour and a shape, so the map and its legend never
// rely on colour alone: on = filled circle, dimmed = half-filled circle, off = hollow
// circle, fault = triangle, offline = cross, unknown = small square.

export const STATES = ["on", "dimmed", "off", "fault", "offline", "unknown"];

export const COLOURS = {
  on: "#e8a400",
  dimmed: "#b27c00",
  off: "#4d5964",
  fault: "#c62828",
  offline: "#6a3d9a",
  unknown: "#7b8794",
};

// Add one marker of `state` centred at (x, y) with radius r to the fill and stroke paths.
export function addShape(state, fill, stroke, x, y, r) {
  switch (state) {
    case "on":
      fill.moveTo(x + r, y);
      fill.arc(x, y, r, 0, 2 * Math.PI);
      break;
    case "dimmed":
      // the lower half filled, the whole outline stroked
      fill.moveTo(x + r, y);
      fill.arc(x, y, r, 0, Math.PI);
      fill.closePath();
      stroke.moveTo(x + r, y);
      stroke.arc(x, y, r, 0, 2 * Math.PI);
      break;
    case "off":
      stroke.moveTo(x + r, y);
      stroke.arc(x, y, r, 0, 2 * Math.PI);
      break;
    case "fault": {
      const t = r * 1.25;
      fill.moveTo(x, y - t);
      fill.lineTo(x + t * 0.95, y + t * 0.7);
      fill.lineTo(x - t * 0.95, y + t * 0.7);
      fill.closePath();
      break;
    }
    case "offline": {
      const c = r * 0.85;
      stroke.moveTo(x - c, y - c);
      stroke.lineTo(x + c, y + c);
      stroke.moveTo(x + c, y - c);
      stroke.lineTo(x - c, y + c);
      break;
    }
    default: {
      const s = r * 0.7;
      fill.rect(x - s, y - s, 2 * s, 2 * s);
    }
  }
}

// Stroke width for a marker radius: hollow shapes must stay visible when small.
export function lineWidth(state, r) {
  if (state === "offline") return Math.max(1.2, r * 0.45);
  return Math.max(1, r * 0.32);
}

export function paint(ctx, state, fill, stroke, r) {
  ctx.fillStyle = COLOURS[state] || COLOURS.unknown;
  ctx.strokeStyle = COLOURS[state] || COLOURS.unknown;
  ctx.lineWidth = lineWidth(state, r);
  ctx.fill(fill);
  ctx.stroke(stroke);
}

// A small canvas with one marker, for legends and the node page (CSS px size `size`).
export function shapeIcon(state, size = 16) {
  const c = document.createElement("canvas");
  const dpr = window.devicePixelRatio || 1;
  c.width = Math.round(size * dpr);
  c.height = Math.round(size * dpr);
  c.className = "shape";
  c.style.width = `${size}px`;
  c.style.height = `${size}px`;
  c.setAttribute("aria-hidden", "true");
  const ctx = c.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  const fill = new Path2D();
  const stroke = new Path2D();
  const r = size * 0.34;
  addShape(state, fill, stroke, size / 2, size / 2, r);
  paint(ctx, state, fill, stroke, r);
  return c;
}
