// The map canvas: Web Mercator, pan by drag, zoom by wheel, keys or buttons, optional
// XYZ raster tiles, and the markers batched by state: each state's shape is drawn once
// per frame size as a Path2D sprite and stamped at its points (stamp()), off-screen
// points skipped, crowded ones smaller. A frame is drawn only when something changed
// (invalidate() asks for one animation frame).
// Clicks and hovers are hit-tested through a grid of screen cells built while drawing,
// so a mousemove looks at a few cells, never at all 20,000 nodes.

import { addShape, paint, STATES } from "./shapes.js";

const TILE = 256;
const MIN_SCALE = TILE * 2; // zoom 1
const MAX_SCALE = TILE * 2 ** 20;
const CELL = 24; // px, the hit-test grid
const MAX_LAT = 85.05112878;
// Draw order: the states that need attention last, so they sit on top.
const ORDER = ["off", "unknown", "on", "dimmed", "offline", "fault"];
const STATE_INDEX = Object.fromEntries(STATES.map((s, i) => [s, i]));
const UNKNOWN = STATE_INDEX.unknown;

export function project(lat, lon) {
  const la = Math.max(-MAX_LAT, Math.min(MAX_LAT, lat)) * (Math.PI / 180);
  return [(lon + 180) / 360, (1 - Math.log(Math.tan(la) + 1 / Math.cos(la)) / Math.PI) / 2];
}

// Degrees as text, without the "-0.00" a sum of float steps gives at zero.
function degrees(v, digits) {
  const t = v.toFixed(digits);
  return Number(t) === 0 ? (0).toFixed(digits) : t;
}

function unprojectLat(wy) {
  return (Math.atan(Math.sinh(Math.PI * (1 - 2 * wy))) * 180) / Math.PI;
}

export class MapView {
  // `canvas` takes the markers and the pointer; `base`, a canvas under it, the background
  // and the tiles. Two canvases because the markers are written as pixels (stamp())
  // and tiles from another origin would forbid reading a shared canvas back.
  constructor(canvas, base, { tiles = null, sites = [], onHover = () => {}, onClick = () => {} } = {}) {
    this.canvas = canvas;
    this.base = base;
    this.ctx = canvas.getContext("2d");
    this.bctx = base.getContext("2d");
    this.sprites = new Map();
    this.tiles = tiles;
    this.sites = sites.filter((s) => s.lat !== null && s.lon !== null);
    this.onHover = onHover;
    this.onClick = onClick;
    this.nodes = []; // placed nodes {id, state, level, wx, wy, ...}
    this.cx = 0.5;
    this.cy = 0.5;
    this.scale = MIN_SCALE;
    this.w = 0;
    this.h = 0;
    this.dpr = 1;
    this.frame = 0;
    this.drawn = 0; // markers on screen in the last frame
    this.painted = 0; // of which painted (the rest lie under one of their state)
    this.drawnIdx = new Int32Array(0);
    this.sx = new Float32Array(0);
    this.sy = new Float32Array(0);
    this.radius = 4;
    this.grid = new Map();
    this.tileCache = new Map();
    this.lastFrameMs = 0;
    this.hover = -1;
    this.bind();
  }

  setNodes(nodes) {
    this.nodes = nodes;
    this.invalidate();
  }

  invalidate() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.draw();
    });
  }

  resize() {
    this.sprites.clear(); // devicePixelRatio may have changed with the window
    const rect = this.canvas.getBoundingClientRect();
    this.dpr = window.devicePixelRatio || 1;
    this.w = Math.max(1, Math.round(rect.width));
    this.h = Math.max(1, Math.round(rect.height));
    for (const c of [this.canvas, this.base]) {
      c.width = Math.round(this.w * this.dpr);
      c.height = Math.round(this.h * this.dpr);
    }
    this.invalidate();
  }

  // Fit the view to the nodes (or, with none placed, the sites; or Europe).
  fit() {
    let pts = this.nodes.map((n) => [n.wx, n.wy]);
    if (!pts.length) pts = this.sites.map((s) => project(s.lat, s.lon));
    if (!pts.length) pts = [project(35, -12), project(62, 30)];
    let x0 = Infinity;
    let y0 = Infinity;
    let x1 = -Infinity;
    let y1 = -Infinity;
    for (const [x, y] of pts) {
      x0 = Math.min(x0, x);
      x1 = Math.max(x1, x);
      y0 = Math.min(y0, y);
      y1 = Math.max(y1, y);
    }
    this.cx = (x0 + x1) / 2;
    this.cy = (y0 + y1) / 2;
    const dx = x1 - x0;
    const dy = y1 - y0;
    const pad = Math.min(48, this.w / 8, this.h / 8); // px kept free around the extent
    const fitScale = Math.min((this.w - 2 * pad) / (dx || 1e-9), (this.h - 2 * pad) / (dy || 1e-9));
    this.scale = dx || dy ? fitScale : TILE * 2 ** 16;
    this.clampScale();
    this.invalidate();
  }

  clampScale() {
    this.scale = Math.max(MIN_SCALE, Math.min(MAX_SCALE, this.scale));
  }

  get zoom() {
    return Math.log2(this.scale / TILE);
  }

  // Zoom by `factor` keeping the point at CSS px (mx, my) where it is.
  zoomAt(factor, mx = this.w / 2, my = this.h / 2) {
    const wx = this.cx + (mx - this.w / 2) / this.scale;
    const wy = this.cy + (my - this.h / 2) / this.scale;
    this.scale *= factor;
    this.clampScale();
    this.cx = wx - (mx - this.w / 2) / this.scale;
    this.cy = wy - (my - this.h / 2) / this.scale;
    this.invalidate();
  }

  panBy(dx, dy) {
    this.cx -= dx / this.scale;
    this.cy = Math.max(0, Math.min(1, this.cy - dy / this.scale));
    this.invalidate();
  }

  toScreen(wx, wy) {
    return [(wx - this.cx) * this.scale + this.w / 2, (wy - this.cy) * this.scale + this.h / 2];
  }

  // -- drawing -----------------------------------------------------------------------------

  draw() {
    const t0 = performance.now();
    const { bctx, w, h } = this;
    bctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    bctx.fillStyle = "#eef1f4";
    bctx.fillRect(0, 0, w, h);
    if (this.tiles) this.drawTiles();
    else this.drawGraticule();
    this.ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    this.drawMarkers();
    if (!this.tiles) this.drawSiteNames();
    this.lastFrameMs = performance.now() - t0;
  }

  drawMarkers() {
    const n = this.nodes.length;
    if (this.sx.length < n) {
      this.sx = new Float32Array(n + 1024);
      this.sy = new Float32Array(n + 1024);
      this.drawnIdx = new Int32Array(n + 1024);
    }
    const { sx, sy, drawnIdx, w, h, scale } = this;
    const ox = w / 2 - this.cx * scale;
    const oy = h / 2 - this.cy * scale;
    const m = 8; // px margin: a marker half off the edge still shows
    let k = 0;
    for (let i = 0; i < n; i++) {
      const p = this.nodes[i];
      const x = p.wx * scale + ox;
      const y = p.wy * scale + oy;
      if (x < -m || y < -m || x > w + m || y > h + m) continue;
      sx[i] = x;
      sy[i] = y;
      drawnIdx[k++] = i;
    }
    this.drawn = k;
    // Where points crowd, draw them smaller: radius from the mean spacing on screen.
    const spacing = k ? Math.sqrt((w * h) / k) : 100;
    const fitR = Math.max(1.6, Math.min(5.5, spacing * 0.3, 1.2 + this.zoom * 0.25));
    const r = Math.round(fitR * 4) / 4; // quarter pixels: the sprites are reused
    this.radius = r;
    // A marker that would land on one already drawn of its state (within ~r) adds
    // nothing to see: one bit per state per cell says the spot is taken, so where
    // thousands pile up at low zoom only a few hundred are painted.
    const spot = Math.max(1, r * 0.8);
    const cols = Math.ceil((w + 2 * m) / spot) + 1;
    const cells = cols * (Math.ceil((h + 2 * m) / spot) + 1);
    if (!this.taken || this.taken.length < cells) this.taken = new Uint8Array(cells);
    const taken = this.taken;
    taken.fill(0, 0, cells);
    const byState = STATES.map(() => []);
    const grid = new Map();
    for (let j = 0; j < k; j++) {
      const i = drawnIdx[j];
      const si = STATE_INDEX[this.nodes[i].state] ?? UNKNOWN;
      const c = Math.floor((sx[i] + m) / spot) + Math.floor((sy[i] + m) / spot) * cols;
      if (!(taken[c] & (1 << si))) {
        taken[c] |= 1 << si;
        byState[si].push(i);
      }
      const key = Math.floor(sx[i] / CELL) + 1 + (Math.floor(sy[i] / CELL) + 1) * 4096;
      const cell = grid.get(key);
      if (cell) cell.push(i);
      else grid.set(key, [i]);
    }
    this.grid = grid;
    this.painted = byState.reduce((a, x) => a + x.length, 0);
    this.stamp(byState, r);
    if (this.hover >= 0 && this.hover < n) {
      const p = this.nodes[this.hover];
      const [x, y] = this.toScreen(p.wx, p.wy);
      this.ctx.strokeStyle = "#111";
      this.ctx.lineWidth = 1.5;
      this.ctx.beginPath();
      this.ctx.arc(x, y, r + 4, 0, 2 * Math.PI);
      this.ctx.stroke();
    }
  }

  // Markers are stamped into the frame's pixels: each state's shape is drawn once per
  // radius with Path2D (shapes.js) into a sprite, whose pixels are then blended in at
  // every point. Chromium's software rasterizer (headless, or without a GPU) takes
  // ~1 s to fill 20,000 triangles as one Path2D; stamping takes a few ms.
  stamp(byState, r) {
    const W = this.canvas.width;
    const H = this.canvas.height;
    const dpr = this.dpr;
    if (!this.frameImg || this.frameImg.width !== W || this.frameImg.height !== H) {
      this.frameImg = this.ctx.createImageData(W, H);
      this.frame32 = new Uint32Array(this.frameImg.data.buffer);
    }
    const img = this.frameImg;
    const d = img.data;
    const d32 = this.frame32;
    d32.fill(0); // transparent: the base canvas shows through
    for (const state of ORDER) {
      const list = byState[STATE_INDEX[state]];
      if (!list.length) continue;
      const { off, rgba, px32 } = this.sprite(state, r);
      const npx = px32.length;
      for (const i of list) {
        const cx = Math.floor(this.sx[i] * dpr);
        const cy = Math.floor(this.sy[i] * dpr);
        for (let q = 0; q < npx; q++) {
          const x = cx + off[2 * q];
          const y = cy + off[2 * q + 1];
          if (x < 0 || y < 0 || x >= W || y >= H) continue;
          const p = y * W + x;
          const a = rgba[4 * q + 3];
          if (a === 255 || d32[p] === 0) {
            d32[p] = px32[q]; // the sprite's pixel as it is, in one write
            continue;
          }
          // "source over" of straight (not premultiplied) RGBA
          const o = 4 * p;
          const t = a / 255;
          const k = (d[o + 3] / 255) * (1 - t);
          const out = t + k;
          d[o] = (rgba[4 * q] * t + d[o] * k) / out;
          d[o + 1] = (rgba[4 * q + 1] * t + d[o + 1] * k) / out;
          d[o + 2] = (rgba[4 * q + 2] * t + d[o + 2] * k) / out;
          d[o + 3] = out * 255;
        }
      }
    }
    this.ctx.putImageData(img, 0, 0);
  }

  // The pixels of one marker: offsets from its centre pixel and their RGBA.
  sprite(state, r) {
    const key = `${state} ${r} ${this.dpr}`;
    const had = this.sprites.get(key);
    if (had) return had;
    const dpr = this.dpr;
    const half = Math.ceil((r * 1.4 + 2) * dpr);
    const size = 2 * half + 1;
    const c = document.createElement("canvas");
    c.width = size;
    c.height = size;
    const g = c.getContext("2d", { willReadFrequently: true });
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    const fill = new Path2D();
    const stroke = new Path2D();
    addShape(state, fill, stroke, (half + 0.5) / dpr, (half + 0.5) / dpr, r);
    paint(g, state, fill, stroke, r);
    const px = g.getImageData(0, 0, size, size).data;
    const off = [];
    const rgba = [];
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const o = (y * size + x) * 4;
        if (px[o + 3] < 8) continue;
        off.push(x - half, y - half);
        rgba.push(px[o], px[o + 1], px[o + 2], px[o + 3]);
      }
    }
    const bytes = Uint8Array.from(rgba);
    // the same pixels as 32-bit words in the platform's byte order, as ImageData's
    const out = { off: Int16Array.from(off), rgba: bytes, px32: new Uint32Array(bytes.buffer) };
    this.sprites.set(key, out);
    if (this.sprites.size > 120) this.sprites.delete(this.sprites.keys().next().value);
    return out;
  }

  drawGraticule() {
    const { bctx: ctx, w, h, scale } = this;
    const lon0 = (this.cx - w / 2 / scale) * 360 - 180;
    const lon1 = (this.cx + w / 2 / scale) * 360 - 180;
    const latTop = unprojectLat(this.cy - h / 2 / scale);
    const latBot = unprojectLat(this.cy + h / 2 / scale);
    // A step of 1, 2 or 5 x 10^n degrees giving lines ~120 px apart.
    const raw = ((lon1 - lon0) * 120) / w;
    const p10 = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 5, 10].map((f) => f * p10).find((s) => s >= raw) || 10 * p10;
    const digits = Math.max(0, -Math.floor(Math.log10(step)));
    ctx.strokeStyle = "rgba(60, 80, 100, 0.14)";
    ctx.fillStyle = "rgba(60, 80, 100, 0.6)";
    ctx.lineWidth = 1;
    ctx.font = "11px system-ui, sans-serif";
    ctx.beginPath();
    for (let lon = Math.ceil(lon0 / step) * step; lon <= lon1; lon += step) {
      const [x] = this.toScreen((lon + 180) / 360, 0);
      ctx.moveTo(Math.round(x) + 0.5, 0);
      ctx.lineTo(Math.round(x) + 0.5, h);
      ctx.fillText(`${degrees(lon, digits)}°`, x + 3, h - 4);
    }
    for (let lat = Math.ceil(latBot / step) * step; lat <= latTop; lat += step) {
      const [, y] = this.toScreen(0, project(lat, 0)[1]);
      ctx.moveTo(0, Math.round(y) + 0.5);
      ctx.lineTo(w, Math.round(y) + 0.5);
      ctx.fillText(`${degrees(lat, digits)}°`, 3, y - 3);
    }
    ctx.stroke();
  }

  drawSiteNames() {
    const { ctx } = this;
    ctx.font = "600 13px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.lineJoin = "round";
    for (const s of this.sites) {
      const [wx, wy] = project(s.lat, s.lon);
      const [x, y] = this.toScreen(wx, wy);
      if (x < -100 || y < -20 || x > this.w + 100 || y > this.h + 20) continue;
      ctx.lineWidth = 4;
      ctx.strokeStyle = "rgba(255, 255, 255, 0.85)";
      ctx.strokeText(s.name, x, y - 10);
      ctx.fillStyle = "#23303c";
      ctx.fillText(s.name, x, y - 10);
    }
    ctx.textAlign = "start";
  }

  drawTiles() {
    const { bctx: ctx, w, h, scale } = this;
    const z = Math.max(0, Math.min(19, Math.round(this.zoom)));
    const n = 2 ** z;
    const size = scale / n; // CSS px of one tile at this scale
    const ox = w / 2 - this.cx * scale;
    const oy = h / 2 - this.cy * scale;
    const tx0 = Math.floor(-ox / size);
    const tx1 = Math.floor((w - ox) / size);
    const ty0 = Math.max(0, Math.floor(-oy / size));
    const ty1 = Math.min(n - 1, Math.floor((h - oy) / size));
    for (let ty = ty0; ty <= ty1; ty++) {
      for (let tx = tx0; tx <= tx1; tx++) {
        const img = this.tile(z, ((tx % n) + n) % n, ty);
        if (img.complete && img.naturalWidth) {
          // +0.5 px overlap hides the seams between tiles
          ctx.drawImage(img, ox + tx * size, oy + ty * size, size + 0.5, size + 0.5);
        }
      }
    }
  }

  tile(z, x, y) {
    const key = `${z}/${x}/${y}`;
    let img = this.tileCache.get(key);
    if (img) {
      this.tileCache.delete(key); // move to the newest end: the cache is an LRU
      this.tileCache.set(key, img);
      return img;
    }
    img = new Image();
    img.decoding = "async";
    img.onload = () => this.invalidate();
    img.src = this.tiles.replace("{z}", z).replace("{x}", x).replace("{y}", y);
    this.tileCache.set(key, img);
    while (this.tileCache.size > 400) this.tileCache.delete(this.tileCache.keys().next().value);
    return img;
  }

  // -- hit testing and input ---------------------------------------------------------------

  // The index of the node nearest (x, y) in CSS px within reach, or -1.
  hit(x, y) {
    const reach = this.radius + 4;
    const gx = Math.floor(x / CELL) + 1;
    const gy = Math.floor(y / CELL) + 1;
    let best = -1;
    let bestD = reach * reach;
    for (let dy = -1; dy <= 1; dy++) {
      for (let dx = -1; dx <= 1; dx++) {
        const cell = this.grid.get(gx + dx + (gy + dy) * 4096);
        if (!cell) continue;
        for (const i of cell) {
          const d = (this.sx[i] - x) ** 2 + (this.sy[i] - y) ** 2;
          if (d <= bestD) {
            bestD = d;
            best = i;
          }
        }
      }
    }
    return best;
  }

  bind() {
    const c = this.canvas;
    let drag = null;
    const local = (ev) => {
      const r = c.getBoundingClientRect();
      return [ev.clientX - r.left, ev.clientY - r.top];
    };
    c.addEventListener("pointerdown", (ev) => {
      if (ev.button !== 0) return;
      const [x, y] = local(ev);
      drag = { x, y, x0: x, y0: y, moved: false };
      c.setPointerCapture(ev.pointerId);
    });
    c.addEventListener("pointermove", (ev) => {
      const [x, y] = local(ev);
      if (drag) {
        if (Math.abs(x - drag.x0) + Math.abs(y - drag.y0) > 4) drag.moved = true;
        if (drag.moved) {
          this.panBy(x - drag.x, y - drag.y);
          drag.x = x;
          drag.y = y;
          this.setHover(-1, x, y);
          return;
        }
      }
      this.setHover(this.hit(x, y), x, y);
    });
    c.addEventListener("pointerup", (ev) => {
      const [x, y] = local(ev);
      const wasClick = drag && !drag.moved;
      drag = null;
      if (wasClick) {
        const i = this.hit(x, y);
        if (i >= 0) this.onClick(this.nodes[i]);
      }
    });
    c.addEventListener("pointercancel", () => {
      drag = null;
    });
    c.addEventListener("pointerleave", () => {
      if (!drag) this.setHover(-1, 0, 0);
    });
    c.addEventListener(
      "wheel",
      (ev) => {
        ev.preventDefault();
        const [x, y] = local(ev);
        const delta = ev.deltaMode === 1 ? ev.deltaY * 16 : ev.deltaY;
        this.zoomAt(Math.exp(-delta * 0.0015), x, y);
        this.setHover(-1, x, y);
      },
      { passive: false },
    );
    c.addEventListener("keydown", (ev) => {
      const keys = {
        ArrowLeft: () => this.panBy(80, 0),
        ArrowRight: () => this.panBy(-80, 0),
        ArrowUp: () => this.panBy(0, 80),
        ArrowDown: () => this.panBy(0, -80),
        "+": () => this.zoomAt(1.5),
        "=": () => this.zoomAt(1.5),
        "-": () => this.zoomAt(1 / 1.5),
      };
      if (keys[ev.key]) {
        ev.preventDefault();
        keys[ev.key]();
      }
    });
  }

  setHover(i, x, y) {
    if (i !== this.hover) {
      this.hover = i;
      this.canvas.style.cursor = i >= 0 ? "pointer" : "grab";
      this.invalidate();
    }
    this.onHover(i >= 0 ? this.nodes[i] : null, x, y);
  }

  destroy() {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
    for (const img of this.tileCache.values()) img.onload = null;
    this.tileCache.clear();
  }
}
