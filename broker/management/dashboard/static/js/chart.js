// A line chart in SVG, from samples the dashboard accumulates itself (one per poll).

import { h } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 640;
const HEIGHT = 180;
const PAD = { left: 48, right: 10, top: 10, bottom: 22 };

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Samples of several named values over time, at most `limit` of them. */
export class Samples {
  constructor(names, limit = 180) {
    this.names = names;
    this.limit = limit;
    this.times = [];
    this.values = Object.fromEntries(names.map((name) => [name, []]));
  }

  add(time, values) {
    this.times.push(time);
    for (const name of this.names) this.values[name].push(Number(values[name] ?? 0));
    if (this.times.length > this.limit) {
      this.times.shift();
      for (const name of this.names) this.values[name].shift();
    }
  }

  get length() {
    return this.times.length;
  }
}

function niceCeiling(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * power >= value) return step * power;
  }
  return 10 * power;
}

function shortNumber(value) {
  if (value >= 1e6) return `${+(value / 1e6).toFixed(1)}M`;
  if (value >= 1e3) return `${+(value / 1e3).toFixed(1)}k`;
  return `${+value.toFixed(value < 10 ? 2 : 0)}`;
}

/**
 * The chart: series [{name, label, color, dashed}] drawn from `samples`, with a
 * legend giving each series' latest value through format(value).
 */
export function lineChart(samples, series, { format = String, id, title } = {}) {
  const root = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": title || "chart" });
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  let highest = 0;
  for (const s of series) for (const v of samples.values[s.name]) highest = Math.max(highest, v);
  // Four steps of a round size (1, 2, 2.5 or 5 times a power of ten) above the highest value.
  const top = niceCeiling(highest / 4) * 4;
  for (let i = 0; i <= 4; i += 1) {
    const y = PAD.top + plotH - (plotH * i) / 4;
    root.append(svg("line", { class: "axis", x1: PAD.left, x2: WIDTH - PAD.right, y1: y, y2: y }));
    root.append(svg("text", { class: "tick", x: PAD.left - 6, y: y + 3, "text-anchor": "end" },
      shortNumber((top * i) / 4)));
  }
  const times = samples.times;
  const n = times.length;
  if (n) {
    const t0 = times[0];
    const span = Math.max(times[n - 1] - t0, 1);
    root.append(svg("text", { class: "tick", x: PAD.left, y: HEIGHT - 6 },
      n > 1 ? `${Math.round(span / 1000)} s ago` : "now"));
    root.append(svg("text", { class: "tick", x: WIDTH - PAD.right, y: HEIGHT - 6, "text-anchor": "end" }, "now"));
    for (const s of series) {
      const values = samples.values[s.name];
      const points = values.map((v, i) => {
        const x = n > 1 ? PAD.left + (plotW * (times[i] - t0)) / span : PAD.left + plotW;
        const y = PAD.top + plotH - (plotH * v) / top;
        return `${x.toFixed(1)},${y.toFixed(1)}`;
      });
      if (n === 1) points.unshift(`${PAD.left},${points[0].split(",")[1]}`);
      const line = svg("polyline", {
        points: points.join(" "), fill: "none", stroke: s.color, "stroke-width": 2,
        "stroke-linejoin": "round", "data-series": s.name,
      });
      if (s.dashed) line.setAttribute("stroke-dasharray", "6 4"); // visible over an equal series
      root.append(line);
    }
  } else {
    root.append(svg("text", { class: "tick", x: WIDTH / 2, y: HEIGHT / 2, "text-anchor": "middle" },
      "collecting samples\u2026"));
  }
  const legend = h("div", { class: "legend" }, series.map((s) => {
    const values = samples.values[s.name];
    const latest = values.length ? values[values.length - 1] : undefined;
    return h("span", { "data-series": s.name },
      h("span", { class: "swatch", style: `background:${s.color}` }),
      `${s.label}: `, h("strong", { class: "latest" }, latest === undefined ? "\u2013" : format(latest)));
  }));
  return h("div", { class: "chart", id, "data-samples": String(n) }, root, legend);
}
