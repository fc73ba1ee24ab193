// The compare page: every line chart of the compared runs, one uPlot per chart with one series
// per run (their x values joined, gaps where a run has no point). Drag to zoom, double-click to
// reset, the legend shows the values under the cursor; "log y" switches the y scale.
//
// Run labels and chart keys come from users: they go into the DOM as text, never as HTML.

import { el } from "./dom.js";

const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f",
  "#7c2d12", "#1e3a8a", "#365314", "#701a75"];
const data = JSON.parse(document.getElementById("compare-data").textContent);
const box = document.getElementById("compare-charts");


// One x array (the sorted union of every series' x) and each series' y on it (null where absent).
export function joinSeries(series) {
  const xs = [...new Set(series.flatMap((s) => s.x.map(Number)))].sort((a, b) => a - b);
  const at = new Map(xs.map((x, i) => [x, i]));
  const ys = series.map((s) => {
    const y = new Array(xs.length).fill(null);
    s.x.forEach((x, i) => { const v = s.y[i]; y[at.get(Number(x))] = typeof v === "number" ? v : null; });
    return y;
  });
  return [xs, ...ys];
}

function chart(spec) {
  const labels = new Map(data.runs.map((r, i) => [r.id, { label: r.label, color: COLORS[i % COLORS.length] }]));
  const holder = el("div", { class: "chart", "data-key": spec.key });
  const logBox = el("input", { type: "checkbox" });
  const title = el("h4", { class: "chart-title", text: spec.key });
  const note = spec.every > 1 ? `every ${spec.every}th point shown` : "";
  title.append(" ", el("span", { class: "chart-count", text: note }), " ", el("label", { class: "log" }, logBox, " log y"));
  holder.append(title);
  box.append(holder);
  const joined = joinSeries(spec.series);
  holder.setAttribute("data-series", String(spec.series.length));
  holder.setAttribute("data-points", String(joined[0].length));
  const make = (log) => new window.uPlot({
    width: Math.max(320, Math.min(900, box.clientWidth - 8)), height: 220,
    scales: { x: { time: false }, y: log ? { distr: 3 } : {} },
    series: [{ label: "step" }, ...spec.series.map((s) => {
      const run = labels.get(s.run) || { label: s.run.slice(0, 8), color: "#555" };
      return { label: run.label, stroke: run.color, width: 1.5, spanGaps: true };
    })],
    axes: [{}, { size: 60 }],
    cursor: { drag: { x: true, y: false } },
  }, joined, holder);
  let plot = make(false);
  logBox.addEventListener("change", () => { plot.destroy(); plot = make(logBox.checked); });
}

for (const spec of data.charts) chart(spec);
document.body.setAttribute("data-charts-ready", String(data.charts.length));
