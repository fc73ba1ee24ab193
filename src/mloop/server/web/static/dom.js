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
