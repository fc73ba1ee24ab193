// The run page: the step graph (dagre layout, drawn as SVG), live states from the run's event
// stream, a step panel (facts, parameters, inputs, outputs, metrics with uPlot, the log as it
// grows) and a timeline of step durations.
//
// Every string that comes from the run (step names, titles, messages, log lines, parameter and
// metric values) goes into the DOM as text (textContent / createTextNode / SVG text nodes);
// nothing here assigns innerHTML.

import { el, svg, svgText } from "./dom.js";

const TERMINAL = new Set(["succeeded", "failed", "stopped", "skipped"]);
const RUN_TERMINAL = new Set(["succeeded", "failed", "stopped"]);
const STATE_ORDER = ["running", "waiting_input", "pending", "failed", "stopped", "succeeded", "skipped", "not in run"];
const NODE_W = 176;
const NODE_H = 42;
// Beyond this many steps the graph is first shown collapsed by state (one box per state).
const COLLAPSE_AT = 1500;
// Beyond this many steps dagre ranks with longest-path (network simplex is too slow on big graphs).
const FAST_RANK_AT = 60;
const LOG_MAX_LINES = 5000;

const data = JSON.parse(document.getElementById("run-data").textContent);
const urls = data.urls;
const run = data.run;
const steps = new Map(data.steps.map((s) => [s.name, { ...s, el: null }]));
const $ = (id) => document.getElementById(id);

// -- small DOM helpers ---------------------------------------------------------------------------

function shown(value) {
  if (value === null || value === undefined) return "";
  return typeof value === "string" ? value : JSON.stringify(value);
}

function seconds(a, b) {
  if (!a) return null;
  const end = b ? Date.parse(b) : Date.now();
  return Math.max(0, (end - Date.parse(a)) / 1000);
}

function duration(s) {
  if (s === null) return "";
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} m ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} m`;
}

function ellipsis(text, n) {
  return text.length > n ? text.slice(0, n - 1) + "…" : text;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function getJSON(url) {
  const answer = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!answer.ok) throw new Error(`${answer.status} ${url}`);
  return answer.json();
}

// -- the graph -----------------------------------------------------------------------------------
let collapsed = data.steps.length > COLLAPSE_AT;

function layout(nodes, edges) {
  const g = new window.dagre.graphlib.Graph();
  g.setGraph({
    rankdir: "LR", nodesep: 12, ranksep: 44, marginx: 10, marginy: 10,
    ranker: nodes.length > FAST_RANK_AT ? "longest-path" : "network-simplex",
  });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of nodes) g.setNode(n.id, { width: n.width || NODE_W, height: NODE_H });
  for (const [a, b] of edges) g.setEdge(a, b);
  window.dagre.layout(g);
  return g;
}

function drawGraph() {
  const box = $("run-graph");
  const t0 = performance.now();
  let nodes;
  let edges;
  if (collapsed) {
    const counts = new Map();
    for (const s of steps.values()) counts.set(s.status, (counts.get(s.status) || 0) + 1);
    nodes = STATE_ORDER.filter((st) => counts.has(st)).map((st) => ({ id: `state:${st}`, state: st, count: counts.get(st) }));
    edges = [];
  } else {
    nodes = [...steps.values()].map((s) => ({ id: s.name, step: s }));
    edges = data.edges;
  }
  const g = layout(nodes, edges);
  const t1 = performance.now();
  const info = g.graph();
  const root = svg("svg", {
    class: "graph", width: Math.ceil(info.width || 0), height: Math.ceil(info.height || 0),
    viewBox: `0 0 ${Math.ceil(info.width || 0)} ${Math.ceil(info.height || 0)}`, role: "img",
  });
  const defs = svg("defs");
  const marker = svg("marker", { id: "arrow", viewBox: "0 0 8 8", refX: 8, refY: 4, markerWidth: 7, markerHeight: 7, orient: "auto" });
  marker.append(svg("path", { d: "M0,0 L8,4 L0,8 z", class: "arrow" }));
  defs.append(marker);
  root.append(defs);
  const edgeLayer = svg("g", { class: "edges" });
  const kinds = new Map(data.edges.map(([a, b, k]) => [`${a}\u0000${b}`, k]));
  for (const e of g.edges()) {
    const pts = g.edge(e).points || [];
    if (!pts.length) continue;
    const d = pts.map((p, i) => `${i ? "L" : "M"}${p.x.toFixed(1)},${p.y.toFixed(1)}`).join(" ");
    edgeLayer.append(svg("path", { d, class: `edge edge-${kinds.get(`${e.v}\u0000${e.w}`) || "depend"}`, "marker-end": "url(#arrow)" }));
  }
  root.append(edgeLayer);
  const nodeLayer = svg("g", { class: "nodes" });
  for (const n of nodes) {
    const pos = g.node(n.id);
    const x = pos.x - pos.width / 2;
    const y = pos.y - pos.height / 2;
    const group = svg("g", { class: "node", transform: `translate(${x.toFixed(1)},${y.toFixed(1)})`, tabindex: 0, role: "button" });
    group.append(svg("rect", { width: pos.width, height: pos.height, rx: 6, ry: 6 }));
    if (n.step) {
      const s = n.step;
      group.setAttribute("data-step", s.name);
      group.setAttribute("data-state", s.status);
      const tip = svg("title");
      tip.textContent = `${s.name}${s.title ? " — " + s.title : ""} (${s.type}): ${s.status}`;
      group.append(tip);
      group.append(svgText(10, 17, ellipsis(s.name, 24), "node-name"));
      const dur = svgText(10, 33, "", "node-dur");
      group.append(dur);
      s.el = group;
      s.durEl = dur;
      s.tipEl = tip;
      paintNode(s);
    } else {
      group.setAttribute("data-group", n.state);
      group.setAttribute("data-state", n.state);
      group.append(svgText(10, 17, n.state, "node-name"));
      group.append(svgText(10, 33, `${n.count} steps`, "node-dur"));
    }
    nodeLayer.append(group);
  }
  root.append(nodeLayer);
  box.replaceChildren(root);
  if (!collapsed) {
    const selected = panel.name && steps.get(panel.name);
    if (selected && selected.el) selected.el.classList.add("selected");
  }
  const t2 = performance.now();
  const total = t2 - t0;
  window.runPage.graph = { steps: steps.size, nodes: nodes.length, layoutMs: t1 - t0, drawMs: t2 - t1, totalMs: total, collapsed };
  root.setAttribute("data-layout-ms", (t1 - t0).toFixed(1));
  root.setAttribute("data-total-ms", total.toFixed(1));
  const infoText = `${steps.size} steps · laid out and drawn in ${Math.round(total)} ms`;
  $("graph-info").replaceChildren(document.createTextNode(infoText));
  if (steps.size > COLLAPSE_AT) {
    const toggle = el("button", { type: "button", class: "link", text: collapsed ? "show every step" : "collapse by state" });
    toggle.addEventListener("click", () => { collapsed = !collapsed; drawGraph(); });
    $("graph-info").append(" ", toggle);
  }
}

function paintNode(s) {
  if (!s.el) return;
  if (s.el.getAttribute("data-state") !== s.status) s.el.setAttribute("data-state", s.status);
  const d = seconds(s.started_at, TERMINAL.has(s.status) ? s.finished_at || s.started_at : null);
  const text = d === null ? s.status : `${s.status} · ${duration(d)}`;
  if (s.durEl.textContent !== text) s.durEl.textContent = text;
  s.tipEl.textContent = `${s.name}${s.title ? " — " + s.title : ""} (${s.type}): ${s.status}${s.message ? " — " + s.message : ""}`;
}

function drawLegend() {
  const legend = $("graph-legend");
  const counts = new Map();
  for (const s of steps.values()) counts.set(s.status, (counts.get(s.status) || 0) + 1);
  const items = STATE_ORDER.filter((st) => counts.has(st)).map((st) =>
    el("span", { class: "legend-item", "data-state": st }, el("i", { class: "swatch" }), `${st} ${counts.get(st)}`));
  legend.replaceChildren(...items);
}

// -- the timeline --------------------------------------------------------------------------------
function drawTimeline() {
  const box = $("run-timeline");
  const started = [...steps.values()].filter((s) => s.started_at).sort((a, b) => Date.parse(a.started_at) - Date.parse(b.started_at));
  if (!started.length) {
    box.replaceChildren(el("p", { class: "muted", text: "no step has started yet" }));
    return;
  }
  const t0 = Date.parse(started[0].started_at);
  const now = Date.now();
  const ends = started.map((s) => (s.finished_at && TERMINAL.has(s.status) ? Date.parse(s.finished_at) : now));
  const span = Math.max(1, Math.max(...ends) - t0);
  const label = 170;
  const width = Math.max(400, box.clientWidth || 700);
  const barW = width - label - 70;
  const row = 18;
  const root = svg("svg", { class: "timeline", width, height: started.length * row + 24, viewBox: `0 0 ${width} ${started.length * row + 24}` });
  started.forEach((s, i) => {
    const x0 = label + ((Date.parse(s.started_at) - t0) / span) * barW;
    const w = Math.max(2, ((ends[i] - Date.parse(s.started_at)) / span) * barW);
    const y = i * row + 4;
    const g = svg("g", { class: "bar", "data-step": s.name, "data-state": s.status });
    g.append(svgText(0, y + 12, ellipsis(s.name, 24), "bar-name"));
    g.append(svg("rect", { x: x0.toFixed(1), y, width: w.toFixed(1), height: row - 5, rx: 2 }));
    g.append(svgText((x0 + w + 4).toFixed(1), y + 12, duration((ends[i] - Date.parse(s.started_at)) / 1000), "bar-dur"));
    g.addEventListener("click", () => openStep(s.name));
    root.append(g);
  });
  root.append(svgText(label, started.length * row + 18, `0 — ${duration(span / 1000)}`, "axis"));
  box.replaceChildren(root);
}

// -- the run header and actions ------------------------------------------------------------------
let reloadedForInput = false;

function paintRun() {
  // A run that starts waiting for input while the page is open: the page is drawn again once,
  // with the form of what the run asks for (drawn on the server, with the same checks as the API).
  if (run.status === "waiting_input" && !document.querySelector("[data-testid=waiting]") && !reloadedForInput) {
    reloadedForInput = true;
    setTimeout(() => location.reload(), 300);
  }
  const status = $("run-status");
  status.textContent = run.status + (run.queued ? " (queued)" : "");
  status.setAttribute("data-state", run.status);
  $("run-message").textContent = run.message || "";
  const stop = $("stop-button");
  const retry = $("retry-button");
  if (stop) stop.disabled = RUN_TERMINAL.has(run.status);
  if (retry) retry.disabled = !(run.status === "failed" || run.status === "stopped");
  const remove = $("delete-button");
  if (remove) remove.disabled = !RUN_TERMINAL.has(run.status);
}

// Deleting asks first (a form's submit is the one place the page waits for a person).
const deleteForm = $("delete-form");
if (deleteForm) {
  deleteForm.addEventListener("submit", (event) => {
    if (!window.confirm("Delete this run and its files? This cannot be undone.")) event.preventDefault();
  });
}

// -- live updates --------------------------------------------------------------------------------
let refreshTimer = null;
let redrawTimer = null;

function scheduleRedraw() {
  if (redrawTimer) return;
  redrawTimer = setTimeout(() => {
    redrawTimer = null;
    drawLegend();
    drawTimeline();
    if (collapsed) drawGraph();
  }, 150);
}

function scheduleRefresh() {
  // Events carry the state at once; the full state (messages, exact times) follows shortly.
  if (refreshTimer) return;
  refreshTimer = setTimeout(async () => {
    refreshTimer = null;
    try {
      applyState(await getJSON(urls.state));
    } catch (err) {
      console.warn("run state", err);
    }
  }, 400);
}

function applyState(state) {
  Object.assign(run, state.run);
  paintRun();
  for (const rec of state.steps) {
    const s = steps.get(rec.name);
    if (!s) continue;
    const changed = s.status !== rec.status;
    Object.assign(s, rec);
    paintNode(s);
    if (changed && panel.name === s.name) refreshPanel();
  }
  scheduleRedraw();
}

function applyEvent(ev) {
  window.runPage.events += 1;
  if (ev.step === null || ev.step === undefined) {
    run.status = ev.to;
    if (ev.message) run.message = ev.message;
    paintRun();
  } else {
    const s = steps.get(ev.step);
    if (s) {
      const was = s.status;
      s.status = ev.to;
      if (ev.to === "running" && (was !== "running" || !s.started_at)) {
        s.started_at = ev.at;
        s.finished_at = null;
      }
      if (TERMINAL.has(ev.to)) s.finished_at = ev.at;
      if (ev.message) s.message = ev.message;
      paintNode(s);
      if (panel.name === s.name) paintPanelStatus(s);
      if (was !== ev.to && panel.name === s.name && TERMINAL.has(ev.to)) refreshPanel();
    }
  }
  scheduleRedraw();
  scheduleRefresh();
}

function follow() {
  const source = new EventSource(`${urls.events}?after=${data.last_event_id}`);
  source.addEventListener("transition", (e) => applyEvent(JSON.parse(e.data)));
  source.addEventListener("end", () => {
    source.close();
    window.runPage.streamEnded = true;
    scheduleRefresh();
  });
  source.addEventListener("open", () => { window.runPage.streamOpen = true; });
  window.runPage.source = source;
}

setInterval(() => {
  let any = false;
  for (const s of steps.values()) {
    if (s.status === "running") {
      paintNode(s);
      if (panel.name === s.name) paintPanelStatus(s);
      any = true;
    }
  }
  if (any) drawTimeline();
}, 1000);

// -- the step panel ------------------------------------------------------------------------------
const panel = { name: null, token: 0, charts: new Map(), logOffset: 0, logLines: 0 };

function kvTable(rows, empty) {
  if (!rows.length) return el("p", { class: "muted", text: empty });
  const body = el("tbody");
  for (const [k, v] of rows) body.append(el("tr", {}, el("th", { text: k }), el("td", { text: shown(v) })));
  return el("table", { class: "kv" }, body);
}

function paintPanelStatus(s) {
  const status = $("step-status");
  status.textContent = s.status;
  status.setAttribute("data-state", s.status);
  $("step-message").textContent = s.message || "";
  const facts = $("step-facts");
  const rows = [["type", s.type], ["attempt", s.attempt], ["started", s.started_at || "—"],
    ["finished", s.finished_at || "—"], ["duration", duration(seconds(s.started_at, TERMINAL.has(s.status) ? s.finished_at : null)) || "—"]];
  if (s.exit_code !== null && s.exit_code !== undefined) rows.push(["exit code", s.exit_code]);
  facts.replaceChildren(...rows.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: shown(v) })]));
}

async function openStep(name) {
  const s = steps.get(name);
  if (!s) return;
  for (const other of steps.values()) if (other.el) other.el.classList.remove("selected");
  if (s.el) s.el.classList.add("selected");
  panel.name = name;
  panel.token += 1;
  panel.logOffset = 0;
  panel.logLines = 0;
  for (const chart of panel.charts.values()) chart.plot.destroy();
  panel.charts.clear();
  $("step-panel").hidden = false;
  $("step-panel").setAttribute("data-step", name);
  $("step-name").textContent = name;
  $("step-title").textContent = s.title && s.title !== name ? s.title : "";
  $("step-log").replaceChildren();
  $("step-charts").replaceChildren();
  $("step-metrics").replaceChildren();
  for (const id of ["step-parameters", "step-inputs", "step-outputs"]) $(id).replaceChildren();
  paintPanelStatus(s);
  if (history.replaceState) history.replaceState(null, "", `#step=${encodeURIComponent(name)}`);
  const token = panel.token;
  if (s.status === "not in run") {
    $("step-log").textContent = "this step is not part of this run";
    return;
  }
  const drawn = refreshPanel();
  followLog(token);
  followPoints(token);
  return drawn;
}

// Resolves once the panel's facts, tables and charts (a long chart's first downsampled fetch
// included) are drawn.
async function refreshPanel() {
  const name = panel.name;
  const token = panel.token;
  let detail;
  try {
    detail = await getJSON(`${urls.step}?name=${encodeURIComponent(name)}`);
  } catch (err) {
    return;
  }
  if (token !== panel.token) return;
  const s = steps.get(name);
  Object.assign(s, { status: detail.status, message: detail.message, started_at: detail.started_at,
    finished_at: detail.finished_at, attempt: detail.attempt, exit_code: detail.exit_code });
  paintPanelStatus(s);
  paintNode(s);
  $("step-parameters").replaceChildren(kvTable(detail.parameters.map((p) => [p.name, p.value]), "no parameters"));
  $("step-inputs").replaceChildren(kvTable(Object.entries(detail.inputs || {}), "no inputs"));
  $("step-outputs").replaceChildren(kvTable(Object.entries(detail.outputs || {}), "no outputs"));
  await paintMetrics(detail.metrics || []);
}

function paintMetrics(metrics) {
  const floats = metrics.filter((m) => m.type === "float");
  const box = $("step-metrics");
  const parts = [];
  const fetching = [];
  if (floats.length) {
    parts.push(kvTable(floats.map((m) => [m.title && m.title !== m.key ? `${m.key} (${m.title})` : m.key, m.value]), ""));
  }
  for (const m of metrics) {
    if (m.type === "line chart") {
      if (panel.charts.has(m.key) && panel.charts.get(m.key).live) continue; // the live points are the same series
      if (m.data === null && m.points) {
        fetching.push(chartFor(m.key, false).remote(panel.name, m.points)); // long: downsampled by the server
        continue;
      }
      const x = ((m.data.x_axis || [])[0] || {}).value || [];
      const y = ((m.data.y_axis || [])[0] || {}).value || [];
      chartFor(m.key, false).set(x.map(Number), y.map((v) => (typeof v === "number" ? v : null)));
    } else if (m.type === "histogram") {
      parts.push(histogramChart(m));
    } else if (m.type === "table" || m.type === "one-dimensional-table") {
      parts.push(el("h4", { text: m.key }), matrixTable(m));
    }
  }
  if (!parts.length && !panel.charts.size) parts.push(el("p", { class: "muted", text: "no metrics yet" }));
  box.replaceChildren(...parts);
  return Promise.allSettled(fetching);
}

// A table metric. A square one whose row and column labels are the same classes is a confusion
// matrix (ModelArts' layout: rows are predictions, columns the true labels): drawn as a heat map
// with counts, and per-class precision (diagonal / row sum) and recall (diagonal / column sum).
export function confusionStats(cells, rows, cols) {
  const n = rows.length;
  if (!n || n !== cols.length || rows.some((r, i) => String(r) !== String(cols[i]))) return null;
  if (cells.length !== n || cells.some((r) => !r || r.length !== n)) return null;
  const num = (v) => (typeof v === "number" && isFinite(v) ? v : 0);
  const rowSum = cells.map((r) => r.reduce((a, v) => a + num(v), 0));
  const colSum = cols.map((_, j) => cells.reduce((a, r) => a + num(r[j]), 0));
  const total = rowSum.reduce((a, v) => a + v, 0);
  const diag = rows.map((_, i) => num(cells[i][i]));
  return {
    precision: diag.map((d, i) => (rowSum[i] ? d / rowSum[i] : null)),
    recall: diag.map((d, i) => (colSum[i] ? d / colSum[i] : null)),
    accuracy: total ? diag.reduce((a, v) => a + v, 0) / total : null,
    max: Math.max(0, ...cells.flat().map(num)),
  };
}

const pct = (v) => (v === null || v === undefined ? "—" : `${(100 * v).toFixed(1)}%`);

function matrixTable(m) {
  const d = m.data || {};
  const cols = (d.col_labels && d.col_labels.value) || d.labels || [];
  const rows = (d.row_labels && d.row_labels.value) || [];
  const cells = d.cell_value || [];
  const stats = m.type === "table" ? confusionStats(cells, rows, cols) : null;
  const table = el("table", { class: stats ? "matrix heat" : "matrix" });
  const head = el("tr", {}, el("th", { text: stats ? `${(d.row_labels && d.row_labels.title) || "predicted"} \\ ${(d.col_labels && d.col_labels.title) || "actual"}` : "" }),
    ...cols.map((c) => el("th", { text: shown(c) })));
  if (stats) head.append(el("th", { text: "precision" }));
  table.append(el("thead", {}, head));
  const body = el("tbody");
  cells.forEach((r, i) => {
    const tr = el("tr", {}, el("th", { text: shown(rows[i] ?? "") }));
    (r || []).forEach((v, j) => {
      const td = el("td", { text: shown(v) });
      if (stats && typeof v === "number" && stats.max > 0) {
        const a = v / stats.max;
        td.style.backgroundColor = i === j ? `rgba(22, 163, 74, ${0.12 + 0.6 * a})` : `rgba(220, 38, 38, ${0.6 * a})`;
        td.title = `predicted ${rows[i]}, actual ${cols[j]}: ${v}`;
      }
      tr.append(td);
    });
    if (stats) tr.append(el("td", { class: "stat", text: pct(stats.precision[i]) }));
    body.append(tr);
  });
  if (stats) {
    body.append(el("tr", { class: "recall" }, el("th", { text: "recall" }),
      ...stats.recall.map((v) => el("td", { class: "stat", text: pct(v) })),
      el("td", { class: "stat", title: "accuracy", text: pct(stats.accuracy) })));
  }
  table.append(body);
  return table;
}

// A histogram metric as bars (uPlot's bar paths), its bins labelled on the x axis.
function histogramChart(m) {
  const x = ((m.data.x_axis || [])[0] || {}).value || [];
  const y = ((m.data.y_axis || [])[0] || {}).value || [];
  const holder = el("div", { class: "chart histogram", "data-key": m.key });
  holder.append(el("h4", { class: "chart-title", text: `${m.key} (histogram)` }));
  const labels = x.map(shown);
  const width = Math.max(260, ($("step-charts").clientWidth || 420) - 8);
  new window.uPlot({
    width, height: 160,
    scales: { x: { time: false, range: [-0.5, Math.max(0.5, labels.length - 0.5)] } },
    series: [{ label: "bin", value: (u, v) => (v === null ? "" : labels[v] ?? "") },
      { label: "count", stroke: "#2563eb", fill: "rgba(37, 99, 235, 0.35)", paths: window.uPlot.paths.bars({ size: [0.8] }) }],
    axes: [{ values: (u, splits) => splits.map((v) => (Number.isInteger(v) ? labels[v] ?? "" : "")) }, { size: 50 }],
  }, [labels.map((_, i) => i), y.map((v) => (typeof v === "number" ? v : null))], holder);
  return holder;
}

function chartFor(key, live) {
  let chart = panel.charts.get(key);
  if (chart) {
    chart.live = chart.live || live;
    return chart;
  }
  const holder = el("div", { class: "chart", "data-key": key });
  const title = el("h4", { class: "chart-title", text: key });
  const count = el("span", { class: "chart-count" });
  const logBox = el("input", { type: "checkbox", "aria-label": `${key}: logarithmic y axis` });
  title.append(" ", count, " ", el("label", { class: "log" }, logBox, " log y"));
  holder.append(title);
  $("step-charts").append(holder);
  const width = Math.max(260, ($("step-charts").clientWidth || 420) - 8);
  // Drag to zoom (x), double-click to reset; the legend shows the value under the cursor.
  const make = (log) => new window.uPlot({
    width, height: 180,
    scales: { x: { time: false }, y: log ? { distr: 3 } : {} },
    series: [{ label: "step" }, { label: "value", stroke: "#2563eb", width: 1.5, spanGaps: true }],
    axes: [{ label: "" }, { size: 56 }],
    cursor: { drag: { x: true, y: false } },
    hooks: { setScale: [(u, scale) => { if (scale === "x" && chart && chart.step) chart.zoomed(u.scales.x.min, u.scales.x.max); }] },
  }, [[], []], holder);
  chart = { key, plot: null, xs: [], ys: [], live, holder, count, step: null, total: 0, overview: null,
    view: null, note: "",
    set(xs, ys) { this.xs = xs; this.ys = ys; this.draw(); },
    // A long series: the server sends what the chart's width can show (M4 per pixel column) for
    // the whole range, and again for a zoomed range (full resolution once it is narrow enough).
    async remote(step, total) {
      this.step = step;
      this.total = total;
      await this.fetch(null, null);
    },
    async fetch(x0, x1) {
      const q = new URLSearchParams({ name: this.step, key: this.key, width: String(Math.round(width)) });
      if (x0 !== null) { q.set("x0", String(x0)); q.set("x1", String(x1)); }
      const answer = await getJSON(`${urls.series}?${q}`);
      if (x0 === null) {
        this.overview = answer;
        this.view = null;
        this.xs = answer.x; this.ys = answer.y;
      } else {
        // the zoomed window at its resolution, the overview around it (so a reset zooms out)
        const before = this.overview.x.map((x, i) => [x, this.overview.y[i]]).filter(([x]) => x < x0);
        const after = this.overview.x.map((x, i) => [x, this.overview.y[i]]).filter(([x]) => x > x1);
        const inside = answer.x.map((x, i) => [x, answer.y[i]]);
        const all = [...before, ...inside, ...after];
        this.view = [x0, x1];
        this.xs = all.map((p) => p[0]); this.ys = all.map((p) => p[1]);
      }
      this.note = answer.per_pixel ? ` · ${answer.per_pixel} points per pixel` : " · every point";
      this.holder.setAttribute("data-per-pixel", String(answer.per_pixel ?? 1));
      this.plot.setData([this.xs, logBox.checked ? this.ys.map((v) => (v > 0 ? v : null)) : this.ys], x0 === null);
      this.count.textContent = `${this.total} points${this.note}`;
      this.holder.setAttribute("data-points", String(this.xs.length));
    },
    zoomed(min, max) {
      if (!this.overview || this.busy) return;
      const full = [this.overview.x[0], this.overview.x[this.overview.x.length - 1]];
      const whole = min <= full[0] && max >= full[1];
      if (whole && this.view === null) return;
      if (this.view && Math.abs(this.view[0] - min) < 1e-9 && Math.abs(this.view[1] - max) < 1e-9) return;
      clearTimeout(this.timer);
      this.timer = setTimeout(async () => {
        this.busy = true;
        try { await (whole ? this.fetch(null, null) : this.fetch(min, max)); } finally { this.busy = false; }
      }, 150);
    },
    add(x, y) { this.xs.push(x); this.ys.push(y); },
    draw() {
      // log y: points at or below zero have no place on the axis
      const ys = logBox.checked ? this.ys.map((v) => (v > 0 ? v : null)) : this.ys;
      this.plot.setData([this.xs, ys]);
      this.count.textContent = this.step ? `${this.total} points${this.note}` : `${this.xs.length} points`;
      this.holder.setAttribute("data-points", String(this.xs.length));
    },
  };
  chart.plot = make(false);
  logBox.addEventListener("change", () => {
    chart.plot.destroy();
    chart.plot = make(logBox.checked);
    chart.draw();
  });
  panel.charts.set(key, chart);
  return chart;
}

async function followLog(token) {
  const pre = $("step-log");
  const name = panel.name;
  while (token === panel.token) {
    let answer;
    try {
      answer = await getJSON(`${urls.log}?name=${encodeURIComponent(name)}&offset=${panel.logOffset}`);
    } catch (err) {
      await sleep(2000);
      continue;
    }
    if (token !== panel.token) return;
    panel.logOffset = answer.offset;
    if (answer.lines.length) {
      const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
      pre.append(document.createTextNode(answer.lines.join("\n") + "\n"));
      panel.logLines += answer.lines.length;
      while (panel.logLines > LOG_MAX_LINES && pre.firstChild) {
        const first = pre.firstChild;
        panel.logLines -= (first.textContent.match(/\n/g) || []).length;
        first.remove();
      }
      if (atBottom) pre.scrollTop = pre.scrollHeight;
    }
    if (answer.more) continue;
    if (answer.done) return;
    await sleep(500);
  }
}

async function followPoints(token) {
  const name = panel.name;
  let after = 0;
  let last = false;
  while (token === panel.token) {
    const s = steps.get(name);
    const finished = TERMINAL.has(s.status);
    let answer;
    try {
      answer = await getJSON(`${urls.points}?name=${encodeURIComponent(name)}&after=${after}`);
    } catch (err) {
      await sleep(2000);
      continue;
    }
    if (token !== panel.token) return;
    after = answer.last;
    const touched = new Set();
    for (const p of answer.points) {
      const chart = chartFor(p.key, true);
      if (!chart.live) continue;
      chart.add(Number(p.step), typeof p.value === "number" ? p.value : null);
      touched.add(chart);
    }
    for (const chart of touched) chart.draw();
    if (answer.points.length >= 10000) continue;
    if (finished) {
      if (last) return;
      last = true; // one more read after the step ended: the job's last batch
    }
    await sleep(500);
  }
}

$("step-close").addEventListener("click", () => {
  panel.name = null;
  panel.token += 1;
  $("step-panel").hidden = true;
  for (const s of steps.values()) if (s.el) s.el.classList.remove("selected");
  if (history.replaceState) history.replaceState(null, "", location.pathname + location.search);
});

$("run-graph").addEventListener("click", (e) => {
  const node = e.target.closest && e.target.closest("[data-step],[data-group]");
  if (!node) return;
  if (node.hasAttribute("data-group")) {
    collapsed = false;
    drawGraph();
    return;
  }
  openStep(node.getAttribute("data-step"));
});

$("run-graph").addEventListener("keydown", (e) => {
  if (e.key !== "Enter" && e.key !== " ") return;
  const node = e.target.closest && e.target.closest("[data-step]");
  if (node) {
    e.preventDefault();
    openStep(node.getAttribute("data-step"));
  }
});

// -- start ---------------------------------------------------------------------------------------
window.runPage = { events: 0, graph: null, source: null, streamOpen: false, streamEnded: false };
paintRun();
drawGraph();
drawLegend();
drawTimeline();
follow(); // a finished run's stream ends at once
const wanted = new URLSearchParams(location.hash.slice(1)).get("step");
const panelDrawn = wanted && steps.has(wanted) ? openStep(wanted) : null;
requestAnimationFrame(() => requestAnimationFrame(() => {
  window.runPage.paintedAt = performance.now();
  document.documentElement.setAttribute("data-run-page", "ready");
}));
// Fully drawn: the graph, and the step named in the address with its metrics and charts, on
// screen (two frames after the last of them). What a benchmark or a test waits for.
Promise.resolve(panelDrawn).catch(() => {}).then(() => requestAnimationFrame(() => requestAnimationFrame(() => {
  window.runPage.drawnAt = performance.now();
  document.documentElement.setAttribute("data-drawn", "ready");
})));
