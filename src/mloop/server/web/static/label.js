// The labeling view: one sample at a time (a picture, or the text of a text sample), a button
// per label (keys 1-9), undo (the previous sample comes back to be labeled again), skip, and
// the task's progress by label after every answer. Labels are sent one sample at a time with
// the session's CSRF token; the server records the console user as the annotator.
//
// Sample ids, file names, texts and label names come from users: they go into the DOM as text.

import { el } from "./dom.js";

const data = JSON.parse(document.getElementById("label-data").textContent);
const $ = (id) => document.getElementById(id);
const state = { current: null, history: [], skipped: [], busy: false };

async function getJSON(url) {
  const answer = await fetch(url, { headers: { Accept: "application/json" } });
  if (!answer.ok) throw new Error(`${answer.status} ${url}`);
  return answer.json();
}

function showProgress(status) {
  $("progress").max = status.total;
  $("progress").value = status.labeled;
  $("progress-text").textContent = `${status.labeled} / ${status.total}`;
  const body = el("tbody");
  for (const [name, n] of Object.entries(status.by_label || {})) body.append(el("tr", {}, el("th", { text: name }), el("td", { text: String(n) })));
  $("by-label").replaceChildren(body);
}

function showSample(sample) {
  state.current = sample;
  const box = $("sample");
  if (!sample) {
    box.replaceChildren(el("p", { class: "done", "data-testid": "all-labeled", text: "Every sample has a label." }));
    document.body.setAttribute("data-sample", "");
    return;
  }
  const parts = [];
  if (sample.image) parts.push(el("img", { src: sample.image, alt: sample.file || sample.id, width: "256", height: "256" }));
  else parts.push(el("blockquote", { class: "text-sample", text: sample.text ?? sample.file ?? sample.id }));
  parts.push(el("p", { class: "mono dim", text: sample.id }));
  if (sample.labels && sample.labels.length) parts.push(el("p", { class: "dim", text: `labeled: ${sample.labels.join(", ")}` }));
  box.replaceChildren(...parts);
  document.body.setAttribute("data-sample", sample.id);
}

async function loadNext() {
  const query = state.skipped.map((id) => `skip=${encodeURIComponent(id)}`).join("&");
  const answer = await getJSON(data.urls.next + (query ? `?${query}` : ""));
  showSample(answer.sample);
}

async function give(label) {
  if (!state.current || state.busy || !data.can_label) return;
  state.busy = true;
  $("label-error").textContent = "";
  try {
    const answer = await fetch(data.urls.labels, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": data.csrf, Accept: "application/json" },
      body: JSON.stringify({ sample: state.current.id, labels: [label] }),
    });
    const body = await answer.json();
    if (!answer.ok) {
      $("label-error").textContent = body.error + (body.hint ? ` (${body.hint})` : "");
      return;
    }
    state.history.push(state.current.id);
    showProgress(body.status);
    await loadNext();
  } finally {
    state.busy = false;
  }
}

async function undo() {
  const previous = state.history.pop();
  if (!previous) return;
  const answer = await getJSON(`${data.urls.sample}?id=${encodeURIComponent(previous)}`);
  showSample(answer.sample);
}

async function skip() {
  if (!state.current) return;
  state.skipped.push(state.current.id);
  await loadNext();
}

function buttons() {
  const box = $("label-buttons");
  data.labels.forEach((name, i) => {
    const key = i < 9 ? String(i + 1) : "";
    const button = el("button", { type: "button", "data-label": name, text: key ? `${key} · ${name}` : name });
    if (!data.can_label) button.disabled = true;
    button.addEventListener("click", () => give(name));
    box.append(button);
  });
  if (data.can_label) {
    const back = el("button", { type: "button", class: "secondary", "data-action": "undo", text: "Undo" });
    back.addEventListener("click", undo);
    const pass = el("button", { type: "button", class: "secondary", "data-action": "skip", text: "Skip" });
    pass.addEventListener("click", skip);
    box.append(back, pass);
  }
}

document.addEventListener("keydown", (event) => {
  if (event.target instanceof HTMLInputElement || event.target instanceof HTMLTextAreaElement) return;
  if (/^[1-9]$/.test(event.key) && data.labels[Number(event.key) - 1] !== undefined) give(data.labels[Number(event.key) - 1]);
  else if (event.key === "u" || event.key === "U" || event.key === "Backspace") undo();
  else if (event.key === "s" || event.key === "S") skip();
});

buttons();
showProgress(data.status);
loadNext().then(() => document.body.setAttribute("data-ready", "1"));
