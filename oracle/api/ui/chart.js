// Line charts drawn as SVG by hand. Why not a library: the dashboard needs only a few time
// series with axes and a legend; ~100 lines here avoid an npm dependency, a build step and a
// lockfile to keep up, and every label goes through textContent (dom.js) like the rest.

import { h, s } from "./dom.js";

const W = 720;
const H = 240;
const PAD = { left: 64, right: 12, top: 12, bottom: 28 };

function ticks(lo, hi, count) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((x) => x >= raw) ?? raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(v);
  return out;
}

function label(v) {
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(2);
  return String(Number(v.toPrecision(6)));
}

function timeLabel(ms) {
  return new Date(ms).toLocaleTimeString([], { hour12: false });
}

/**
 * series: [{name, points: [[x, y], ...], kind?: "line" | "dots", color?: 0..7}]; x is ms since the epoch
 * when opts.time, else an index. Returns a <figure> with the SVG, a legend and a caption.
 */
export function lineChart(series, opts = {}) {
  const all = series.flatMap((x) => x.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const figure = h("figure", { class: "chart", "data-points": all.length });
  if (opts.caption) figure.append(h("figcaption", {}, opts.caption));
  if (all.length === 0) {
    figure.append(h("p", { class: "empty" }, opts.empty ?? "No data yet."));
    return figure;
  }
  let [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
  if (x1 === x0) [x0, x1] = [x0 - 1, x1 + 1];
  if (y1 === y0) [y0, y1] = [y0 - Math.abs(y0 || 1) * 0.01, y1 + Math.abs(y1 || 1) * 0.01];
  const sx = (x) => PAD.left + ((x - x0) / (x1 - x0)) * (W - PAD.left - PAD.right);
  const sy = (y) => H - PAD.bottom - ((y - y0) / (y1 - y0)) * (H - PAD.top - PAD.bottom);
  const svg = s("svg", {
    viewBox: `0 0 ${W} ${H}`,
    role: "img",
    "aria-label": opts.label ?? opts.caption ?? "chart",
    class: "plot",
  });
  for (const v of ticks(y0, y1, 4)) {
    svg.append(s("line", { x1: PAD.left, x2: W - PAD.right, y1: sy(v), y2: sy(v), class: "grid" }));
    svg.append(s("text", { x: PAD.left - 6, y: sy(v) + 4, "text-anchor": "end", class: "tick" }, label(v)));
  }
  const xs = opts.time ? ticks(x0, x1, 5) : ticks(x0, x1, 6);
  for (const v of xs) {
    svg.append(s("text", { x: sx(v), y: H - 8, "text-anchor": "middle", class: "tick" }, opts.time ? timeLabel(v) : label(v)));
  }
  svg.append(s("line", { x1: PAD.left, x2: PAD.left, y1: PAD.top, y2: H - PAD.bottom, class: "axis" }));
  svg.append(s("line", { x1: PAD.left, x2: W - PAD.right, y1: H - PAD.bottom, y2: H - PAD.bottom, class: "axis" }));
  const legend = h("ul", { class: "legend" });
  series.forEach((ser, i) => {
    const pts = ser.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)).sort((a, b) => a[0] - b[0]);
    const cls = `series s${(ser.color ?? i) % 8}`;
    if (ser.kind === "dots") {
      const g = s("g", { class: cls, "data-series": ser.name });
      for (const [x, y] of pts) g.append(s("circle", { cx: sx(x), cy: sy(y), r: 2.5 }));
      svg.append(g);
    } else if (pts.length > 0) {
      const d = pts.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" ");
      svg.append(s("polyline", { points: d, class: cls, fill: "none", "data-series": ser.name }));
    }
    legend.append(h("li", { class: cls }, h("span", { class: "swatch", "aria-hidden": "true" }), `${ser.name} (${pts.length})`));
  });
  figure.append(svg, legend);
  return figure;
}
