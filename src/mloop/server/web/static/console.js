// The console's shared module (every page loads it): the CSRF header on htmx requests, and live
// "last seen ... ago" ages. No inline scripts anywhere: the CSP forbids them; page data comes in
// data-* attributes or <script type="application/json"> blocks.

const csrf = document.querySelector('meta[name="csrf-token"]')?.content;

document.addEventListener("htmx:configRequest", (event) => {
  if (csrf) event.detail.headers["X-CSRF-Token"] = csrf;
});

/** Seconds as the server writes spans: "4.2 s", "12 s", "3 min 4 s", "2 h 5 min", "1 d 3 h". */
export function span(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return seconds < 10 ? `${Math.max(0, seconds).toFixed(1)} s` : `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

/** Read a <script type="application/json" id=...> block (page data without inline scripts). */
export function pageData(id) {
  const el = document.getElementById(id);
  return el ? JSON.parse(el.textContent) : null;
}

function tickAges() {
  const now = Date.now();
  for (const el of document.querySelectorAll("time[data-live-age]")) {
    const at = Date.parse(el.getAttribute("datetime"));
    if (!Number.isNaN(at)) el.textContent = `${span((now - at) / 1000)} ago`;
  }
}

setInterval(tickAges, 1000);
