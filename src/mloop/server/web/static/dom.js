// Small DOM helpers shared by the console's page modules. Text goes in as text (textContent),
// never as HTML: every string from a run (names, values, log lines) passes through here.

// An element with attributes (``class``, ``text`` for its text, others as attributes) and children.
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

const SVG_NS = "http://www.w3.org/2000/svg";

// An SVG element with attributes (set as they are).
export function svg(tag, attrs) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

// An SVG text element at (x, y) holding ``text`` as text.
export function svgText(x, y, text, cls) {
  const t = svg("text", { x, y, class: cls });
  t.textContent = text;
  return t;
}
