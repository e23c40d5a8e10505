// tunelab dashboard: draws plotly charts from the JSON API and keeps the page live.
// Live: server-sent events from /api/events (the store's pub/sub); on a relevant event the page refetches
// itself and swaps the [data-refresh] blocks, then redraws the charts. No EventSource: polls every 5 s.
// Fetches revalidate ("no-cache"): the server answers 304 by ETag when what it would send has not changed.
"use strict";

const live = document.body.dataset.live || "all";
const status = document.getElementById("live-status");
const POLL_MS = 5000;
const DEBOUNCE_MS = 800;

function setStatus(text, cls) {
  if (!status) return;
  status.textContent = text;
  status.className = "live " + (cls || "");
}

// Charts a page carries itself: [data-figure=ID] is drawn from the JSON in the element #ID (a
// <script type="application/json">: data, never run), e.g. the leaderboard's accuracy-against-parameters chart.
async function drawInlineCharts() {
  if (typeof Plotly === "undefined") return;
  for (const div of document.querySelectorAll("[data-figure]")) {
    const source = document.getElementById(div.dataset.figure);
    if (!source) continue;
    let fig;
    try {
      fig = JSON.parse(source.textContent);
    } catch (err) {
      div.textContent = "chart unavailable: " + err.message;
      continue;
    }
    await Plotly.react(div, fig.data, fig.layout, { displaylogo: false, responsive: true });
    div.dataset.drawn = String(fig.data.length);
  }
}

async function drawCharts() {
  await drawInlineCharts();
  const divs = Array.from(document.querySelectorAll("[data-chart]"));
  if (!divs.length || typeof Plotly === "undefined") return;
  const byUrl = new Map();
  for (const div of divs) {
    if (!byUrl.has(div.dataset.chart)) byUrl.set(div.dataset.chart, []);
    byUrl.get(div.dataset.chart).push(div);
  }
  for (const [url, group] of byUrl) {
    let figs;
    try {
      const resp = await fetch(url, { cache: "no-cache" });
      if (!resp.ok) throw new Error(resp.status + " " + resp.statusText);
      figs = await resp.json();
    } catch (err) {
      for (const div of group) div.textContent = "chart unavailable: " + err.message;
      continue;
    }
    for (const div of group) {
      const fig = figs[div.dataset.key];
      if (!fig) continue;
      await Plotly.react(div, fig.data, fig.layout, { displaylogo: false, responsive: true });
      div.dataset.drawn = String(fig.data.length);
    }
    fillTexts(url, figs);
  }
}

// Words that come with a chart (its note): [data-chart-text=URL][data-key=KEY] gets the string at KEY of the same
// response, as text (never parsed as HTML).
function fillTexts(url, figs) {
  for (const el of document.querySelectorAll("[data-chart-text]")) {
    if (el.dataset.chartText !== url) continue;
    const text = figs[el.dataset.key];
    el.textContent = typeof text === "string" ? text : "";
    el.dataset.filled = "1";
  }
}

let pending = null;
let refreshes = 0;

async function refresh() {
  pending = null;
  try {
    const resp = await fetch(location.href, { cache: "no-cache" });
    if (!resp.ok) return;
    const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
    for (const block of document.querySelectorAll("[data-refresh]")) {
      const fresh = doc.getElementById(block.id);
      // Nodes parsed from the server's (escaped) HTML; parsed scripts never run.
      if (fresh) block.replaceChildren(...Array.from(fresh.childNodes).map((n) => document.importNode(n, true)));
    }
    refreshes += 1;
    document.body.dataset.refreshes = String(refreshes);
    await drawCharts();
  } catch (err) {
    setStatus("update failed: " + err.message, "off");
  }
}

function schedule() {
  if (pending === null) pending = setTimeout(refresh, DEBOUNCE_MS);
}

function relevant(ev) {
  return live === "all" || ev.run === live;
}

function poll() {
  setStatus("polling", "poll");
  setInterval(refresh, POLL_MS);
}

function connect() {
  if (!("EventSource" in window)) return poll();
  let failures = 0;
  const es = new EventSource("/api/events");
  es.onopen = () => { failures = 0; setStatus("live", "on"); };
  es.onmessage = (msg) => {
    let ev;
    try { ev = JSON.parse(msg.data); } catch (err) { return; }
    if (relevant(ev)) {
      setStatus("live · " + ev.type + " " + new Date().toLocaleTimeString(), "on");
      schedule();
    }
  };
  es.onerror = () => {
    failures += 1;
    if (failures >= 3) { es.close(); poll(); } else { setStatus("reconnecting…", "off"); }
  };
}

for (const input of document.querySelectorAll("select[data-autosubmit], input[data-autosubmit]")) {
  input.addEventListener("change", () => input.form.submit());
}

drawCharts();
connect();
