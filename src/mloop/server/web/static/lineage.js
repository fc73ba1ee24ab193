// The model page's lineage graph: dataset version → run → model version → service, laid out
// left to right with dagre and drawn as SVG (the run page's approach), from the nodes and edges
// the server wrote into <script type="application/json" id="lineage-data">. Each box is a link
// to its page (run, dataset version, service; a model version to its row in the table).
//
// Workflow, step, dataset and service names and aliases come from users: they go into the SVG
// as text nodes (textContent), and links are set as attributes; nothing here assigns innerHTML.

import { el, svg, svgText } from "./dom.js";
import { pageData } from "./console.js";

const NODE_W = 184;
const NODE_H = 42;
const LABEL_CHARS = 26;
// Beyond this many nodes dagre ranks with longest-path (network simplex is slow on big graphs).
const FAST_RANK_AT = 60;
// The column of each kind: an edge that skips a column (dataset → a version registered by
// hand) gets a longer minimum length, so the kinds stay in their columns.
const COLUMN = { dataset: 0, run: 1, model: 2, service: 3 };

function ellipsis(text, n) {
  return text.length > n ? text.slice(0, n - 1) + "…" : text;
}

function layout(nodes, edges) {
  const g = new window.dagre.graphlib.Graph();
  g.setGraph({
    rankdir: "LR", nodesep: 12, ranksep: 56, marginx: 10, marginy: 10,
    ranker: nodes.length > FAST_RANK_AT ? "longest-path" : "network-simplex",
  });
  g.setDefaultEdgeLabel(() => ({}));
  const kinds = new Map(nodes.map((n) => [n.id, n.kind]));
  for (const n of nodes) g.setNode(n.id, { width: NODE_W, height: NODE_H });
  for (const [a, b] of edges) {
    const span = (COLUMN[kinds.get(b)] ?? 1) - (COLUMN[kinds.get(a)] ?? 0);
    g.setEdge(a, b, { minlen: Math.max(1, span) });
  }
  window.dagre.layout(g);
  return g;
}

function drawNode(n, pos) {
  const x = pos.x - pos.width / 2;
  const y = pos.y - pos.height / 2;
  // A link when there is a page to open (an SVG <a> is focusable and opens like any link).
  const group = n.href ? svg("a", { href: n.href }) : svg("g", { tabindex: 0 });
  group.setAttribute("class", `lnode lnode-${n.kind}`);
  group.setAttribute("transform", `translate(${x.toFixed(1)},${y.toFixed(1)})`);
  group.setAttribute("data-node", n.id);
  group.setAttribute("data-kind", n.kind);
  if (n.state) group.setAttribute("data-state", n.state);
  group.setAttribute("aria-label", n.title);
  const tip = svg("title");
  tip.textContent = n.title;
  group.append(tip);
  group.append(svg("rect", { width: pos.width, height: pos.height, rx: 6, ry: 6 }));
  group.append(svgText(10, 17, ellipsis(n.label, LABEL_CHARS), "lnode-label"));
  group.append(svgText(10, 33, ellipsis(n.sub || "", LABEL_CHARS + 4), "lnode-sub"));
  return group;
}

function draw() {
  const box = document.getElementById("lineage-graph");
  const data = pageData("lineage-data");
  if (!box || !data || !data.nodes.length) return;
  if (!window.dagre) {
    box.replaceChildren(el("p", { class: "dim", text: "The graph needs dagre (static/vendor); the table below says the same." }));
    return;
  }
  const g = layout(data.nodes, data.edges);
  const info = g.graph();
  const width = Math.ceil(info.width || 0);
  const height = Math.ceil(info.height || 0);
  const root = svg("svg", { class: "lineage", width, height, viewBox: `0 0 ${width} ${height}`, role: "group" });
  const defs = svg("defs");
  const marker = svg("marker", { id: "lineage-arrow", viewBox: "0 0 8 8", refX: 8, refY: 4, markerWidth: 7, markerHeight: 7, orient: "auto" });
  marker.append(svg("path", { d: "M0,0 L8,4 L0,8 z", class: "arrow" }));
  defs.append(marker);
  root.append(defs);
  const edgeLayer = svg("g", { class: "edges" });
  for (const e of g.edges()) {
    const pts = g.edge(e).points || [];
    if (!pts.length) continue;
    const d = pts.map((p, i) => `${i ? "L" : "M"}${p.x.toFixed(1)},${p.y.toFixed(1)}`).join(" ");
    edgeLayer.append(svg("path", { d, class: "edge", "data-from": e.v, "data-to": e.w, "marker-end": "url(#lineage-arrow)" }));
  }
  root.append(edgeLayer);
  const nodeLayer = svg("g", { class: "nodes" });
  for (const n of data.nodes) nodeLayer.append(drawNode(n, g.node(n.id)));
  root.append(nodeLayer);
  box.replaceChildren(root);
}

draw();
