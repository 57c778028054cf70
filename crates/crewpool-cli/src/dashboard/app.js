// The crewpool dashboard: reads the JSON API of the server that served it, draws the
// queues overview and the queue pages, and posts requeue/delete actions with the
// session's CSRF token. No framework, no build step. Every value from Redis goes into
// the page as text (textContent), never as HTML.
"use strict";

const REFRESH_MS = 2000;
const PAGE_SIZE = 20;
const COLORS = ["#1f6feb", "#1a7f37", "#bf8700", "#8250df", "#cf222e", "#0a7ea4", "#bc4c00", "#6e7781"];
const STATES = ["pending", "scheduled", "delayed", "leased", "dead"];
// The queue page's tabs: a tab per job state, then the periodic schedules.
const TABS = STATES.concat(["schedules"]);

let session = null;
let busy = false;
const opened = new Set(); // job payloads the user expanded, kept across refreshes

// Builds an element: h("td", {class: "num"}, "12", child, ...). Strings become text.
function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    // Through the CSSOM: the page's content security policy forbids style attributes.
    else if (key === "color") node.style.setProperty("background-color", value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// SVG elements need their namespace.
function s(tag, attrs, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
  for (const child of children.flat()) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(path, options) {
  const response = await fetch(path, Object.assign({ credentials: "same-origin" }, options || {}));
  let body = null;
  try { body = await response.json(); } catch (_) { /* not JSON */ }
  if (!response.ok) {
    throw new Error((body && body.error) || `${response.status} ${response.statusText}`);
  }
  return body;
}

function post(path, body) {
  return api(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Crewpool-Csrf": session.csrf },
    body: JSON.stringify(body),
  });
}

function status(text, isError) {
  const node = document.getElementById("status");
  node.textContent = text;
  node.className = "status" + (isError ? " error" : "");
}

// 850ms, 12.3s, 4m05s, 3h12m, 2d04h
function duration(ms) {
  if (ms === null || ms === undefined) return "–";
  ms = Math.max(0, ms);
  const sec = Math.floor(ms / 1000);
  if (ms < 1000) return `${ms}ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)}s`;
  if (ms < 3600000) return `${Math.floor(sec / 60)}m${String(sec % 60).padStart(2, "0")}s`;
  if (ms < 86400000) return `${Math.floor(sec / 3600)}h${String(Math.floor(sec / 60) % 60).padStart(2, "0")}m`;
  return `${Math.floor(sec / 86400)}d${String(Math.floor(sec / 3600) % 24).padStart(2, "0")}h`;
}
function ago(at, now) { return at <= now ? `${duration(now - at)} ago` : `in ${duration(at - now)}`; }
function number(n) { return Number(n).toLocaleString("en-US"); }

function route() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  const match = path.match(/^\/queues\/(.+)$/);
  if (match) {
    const state = TABS.includes(params.get("state")) ? params.get("state") : "pending";
    return { page: "queue", queue: decodeURIComponent(match[1]), state, offset: Math.max(0, parseInt(params.get("offset") || "0", 10) || 0) };
  }
  return { page: "overview" };
}

function queueHref(name, state, offset) {
  let href = `#/queues/${encodeURIComponent(name)}`;
  if (state) href += `?state=${state}` + (offset ? `&offset=${offset}` : "");
  return href;
}

// Tick steps for the time axis, in ms.
const TIME_STEPS = [10e3, 15e3, 30e3, 60e3, 120e3, 300e3];

// A line chart of series [{name, color, points: [{at_ms, value}]}] ending at `now`,
// over the time sampled so far (at least a minute, at most `historyMs`).
function chart(series, historyMs, now, unit) {
  const first = Math.min(now, ...series.flatMap((line) => line.points.map((p) => p.at_ms)));
  const windowMs = Math.min(historyMs, Math.max(60e3, now - first));
  const W = 960, H = 180, left = 44, right = 8, top = 8, bottom = 20;
  const max = Math.max(1, ...series.flatMap((line) => line.points.map((p) => p.value)));
  const scale = niceMax(max);
  const x = (at) => left + (W - left - right) * (1 - (now - at) / windowMs);
  const y = (v) => top + (H - top - bottom) * (1 - v / scale);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img", "aria-label": "throughput chart" });
  for (let i = 0; i <= 4; i++) {
    const v = (scale * i) / 4;
    svg.append(s("line", { class: "axis", x1: left, x2: W - right, y1: y(v), y2: y(v) }));
    svg.append(s("text", { class: "tick", x: left - 6, y: y(v) + 3, "text-anchor": "end" }, formatRate(v)));
  }
  const step = TIME_STEPS.find((ms) => windowMs / ms <= 6) || 300e3;
  for (let back = 0; back <= windowMs; back += step) {
    const label = back === 0 ? "now" : back < 60e3 ? `-${back / 1000}s` : `-${back / 60e3}m`;
    svg.append(s("text", { class: "tick", x: x(now - back), y: H - 4, "text-anchor": back === 0 ? "end" : "middle" }, label));
  }
  for (const line of series) {
    const points = line.points.filter((p) => now - p.at_ms <= windowMs);
    if (points.length === 0) continue;
    const d = points.map((p) => `${x(p.at_ms).toFixed(1)},${y(p.value).toFixed(1)}`).join(" ");
    svg.append(s("polyline", { points: d, fill: "none", stroke: line.color, "stroke-width": 2, "vector-effect": "non-scaling-stroke" }));
  }
  const legend = h("div", { class: "legend" },
    series.map((line) => h("span", {}, h("i", { color: line.color }), line.name)),
    h("span", { class: "muted" }, `${unit}, sampled every ${duration(session.sample_interval_ms)}`));
  return h("div", { class: "chart" }, svg, legend);
}
function niceMax(max) {
  const power = Math.pow(10, Math.floor(Math.log10(max)));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= max) return step * power;
  return 10 * power;
}
function formatRate(v) { return v >= 10 ? Math.round(v).toString() : v >= 1 ? v.toFixed(1) : v.toFixed(2); }

function throughputPanel(throughput, names, now, perQueueFailures) {
  const series = [];
  names.forEach((name, i) => {
    const points = throughput.series[name] || [];
    series.push({ name: perQueueFailures ? "processed" : name, color: COLORS[i % COLORS.length], points: points.map((p) => ({ at_ms: p.at_ms, value: p.processed_per_s })) });
    if (perQueueFailures) {
      series.push({ name: "failed", color: "#cf222e", points: points.map((p) => ({ at_ms: p.at_ms, value: p.failed_per_s })) });
    }
  });
  const anyPoint = series.some((line) => line.points.length > 0);
  const title = h("h2", {}, "Throughput");
  if (!anyPoint) {
    return h("section", { class: "panel" }, title,
      h("p", { class: "empty" }, `Collecting samples (one every ${duration(throughput.interval_ms)}); the chart starts with the second.`));
  }
  return h("section", { class: "panel" }, title, chart(series, throughput.history_ms, now, "jobs/s"));
}

async function renderOverview() {
  const [rows, throughput] = await Promise.all([api("/api/queues"), api("/api/throughput")]);
  const now = rows.length ? rows[0].now_ms : Date.now();
  const main = [h("h1", {}, "Queues")];
  main.push(throughputPanel(throughput, rows.map((r) => r.name), now, false));
  if (rows.length === 0) {
    main.push(h("p", { class: "empty" }, `No queues under prefix "${session.prefix}" yet: a queue is listed once a process connects to it.`));
    return main;
  }
  const head = h("tr", {}, h("th", {}, "Queue"), h("th", {}, "State"),
    ["Pending", "Scheduled", "Delayed", "Leased", "Dead", "Oldest pending", "Processed", "Failed", "Lease expired"].map((t) => h("th", { class: "num" }, t)),
    h("th", {}, "Last connect"));
  const body = rows.map((r) => h("tr", { "data-queue": r.name },
    h("td", {}, h("a", { href: queueHref(r.name) }, r.name)),
    h("td", { "data-field": "state", class: r.paused ? "paused" : "" }, r.paused ? "paused" : "running"),
    h("td", { class: "num", "data-count": "pending" }, number(r.pending)),
    h("td", { class: "num", "data-count": "scheduled" }, number(r.scheduled)),
    h("td", { class: "num", "data-count": "delayed" }, number(r.delayed)),
    h("td", { class: "num", "data-count": "leased" }, number(r.leased)),
    h("td", { class: "num dead-count" + (r.dead > 0 ? " nonzero" : ""), "data-count": "dead" },
      r.dead > 0 ? h("a", { href: queueHref(r.name, "dead") }, number(r.dead)) : "0"),
    h("td", { class: "num" }, duration(r.oldest_pending_age_ms)),
    h("td", { class: "num", "data-count": "processed" }, number(r.processed)),
    h("td", { class: "num", "data-count": "failed" }, number(r.failed)),
    h("td", { class: "num" }, number(r.lease_expired)),
    h("td", { class: "muted" }, r.last_connect_ms ? ago(r.last_connect_ms, now) : "–")));
  main.push(h("section", { class: "panel" }, h("table", { id: "queues" }, h("thead", {}, head), h("tbody", {}, body))));
  return main;
}

function payload(job) {
  const key = `${job.id}`;
  const short = job.job !== null ? JSON.stringify(job.job) : `<${job.error}>`;
  const full = job.job !== null ? JSON.stringify(job.job, null, 2) : job.error;
  const details = h("details", { open: opened.has(key), ontoggle: (e) => { if (e.target.open) opened.add(key); else opened.delete(key); } },
    h("summary", { class: job.job === null ? "error-text" : "" }, short), h("pre", {}, full));
  return details;
}

function jobRow(state, job, now) {
  const cells = [h("td", { class: "num mono" }, job.id), h("td", { class: "num" }, job.attempt)];
  if (state === "pending") {
    cells.push(h("td", { class: "num" }, job.enqueued_at_ms ? duration(now - job.enqueued_at_ms) : "–"));
    cells.push(h("td", { class: "num" }, job.priority));
  } else if (state === "scheduled") {
    cells.push(h("td", {}, job.due_at_ms ? ago(job.due_at_ms, now) : "–"));
    cells.push(h("td", { class: "num" }, job.priority));
    cells.push(h("td", { class: "mono" }, job.unique_key || "–"));
  } else if (state === "delayed") {
    cells.push(h("td", {}, job.due_at_ms ? ago(job.due_at_ms, now) : "–"));
  } else if (state === "leased") {
    const lease = job.lease || {};
    cells.push(h("td", { class: "mono" }, lease.token || "–"));
    cells.push(h("td", { class: "num" }, lease.leased_at_ms ? duration(now - lease.leased_at_ms) : "–"));
    cells.push(h("td", {}, lease.deadline_ms ? ago(lease.deadline_ms, now) : "–"));
  } else {
    const death = job.death || {};
    cells.push(h("td", {}, death.at_ms ? ago(death.at_ms, now) : "–"));
    cells.push(h("td", { class: "reason" }, death.reason || ""));
  }
  cells.push(h("td", {}, payload(job)));
  if (!session.read_only && state !== "leased") {
    const actions = [];
    if (state === "dead") actions.push(h("button", { "data-action": "requeue", "data-id": job.id, title: "Back to the queue as a fresh job" }, "Requeue"));
    actions.push(h("button", { class: "danger", "data-action": "delete", "data-id": job.id, "data-state": state }, "Delete"));
    cells.push(h("td", {}, actions));
  }
  return h("tr", { "data-job-id": job.id }, cells);
}

const HEADERS = {
  pending: ["ID", "Attempt", "Age", "Level", "Job"],
  scheduled: ["ID", "Attempt", "Due", "Level", "Unique key", "Job"],
  delayed: ["ID", "Next attempt", "Due", "Job"],
  leased: ["ID", "Attempt", "Lease token", "Leased for", "Expires", "Job"],
  dead: ["ID", "Attempt", "Died", "Reason", "Job"],
};

// The schedules tab: every periodic schedule, then the last ticks fired.
function schedulesPanel(list) {
  const now = list.now_ms;
  if (list.schedules.length === 0) return [h("p", { class: "empty" }, "No periodic schedules.")];
  const when = (s) => s.cron ? `cron ${s.cron}` : s.every_ms ? `every ${duration(s.every_ms)}` : "–";
  const rows = list.schedules.map((s) => h("tr", { "data-schedule": s.name },
    h("td", {}, s.name),
    h("td", { class: "mono", "data-field": "when" }, when(s)),
    h("td", { class: "num" }, s.priority),
    h("td", {}, s.grace_ms !== null && s.grace_ms !== undefined ? `skip after ${duration(s.grace_ms)}` : "fire latest"),
    h("td", {}, s.last_tick_ms > s.since_ms ? ago(s.last_tick_ms, now) : "–"),
    h("td", { "data-field": "next" }, s.next_tick_ms ? ago(s.next_tick_ms, now) : "–"),
    h("td", {}, s.error ? h("span", { class: "error-text" }, s.error) : h("code", {}, JSON.stringify(s.job)))));
  const out = [h("table", { id: "schedules" },
    h("thead", {}, h("tr", {}, ["Name", "When", "Level", "Missed ticks", "Last tick", "Next tick", "Job"].map((t) => h("th", { class: t === "Level" ? "num" : "" }, t)))),
    h("tbody", {}, rows))];
  if (list.fired.length > 0) {
    out.push(h("h2", {}, "Last ticks fired"));
    out.push(h("table", { id: "fired" },
      h("thead", {}, h("tr", {}, ["Schedule", "Tick", "Job", "Fired"].map((t) => h("th", {}, t)))),
      h("tbody", {}, list.fired.map((f) => h("tr", {},
        h("td", {}, f.schedule), h("td", {}, ago(f.tick_ms, now)), h("td", { class: "num mono" }, f.id),
        h("td", { class: "num" }, `+${duration(f.at_ms - f.tick_ms)}`))))));
  }
  return out;
}

async function renderQueue(r) {
  const base = `/api/queues/${encodeURIComponent(r.queue)}`;
  const onSchedules = r.state === "schedules";
  const [q, page, throughput] = await Promise.all([
    api(base),
    onSchedules ? api(`${base}/schedules`) : api(`${base}/jobs?state=${r.state}&offset=${r.offset}&limit=${PAGE_SIZE}`),
    api("/api/throughput"),
  ]);
  const now = page.now_ms;
  const card = (label, value, bad) => h("div", { class: "card" + (bad ? " bad" : ""), "data-card": label }, h("div", { class: "label" }, label), h("div", { class: "value" }, value));
  const main = [
    h("h1", {}, h("a", { href: "#/" }, "Queues"), " / ", r.queue, q.paused ? h("span", { class: "paused", "data-field": "state" }, " (paused)") : ""),
    h("div", { class: "cards" },
      card("pending", number(q.pending)), card("scheduled", number(q.scheduled)), card("delayed", number(q.delayed)),
      card("leased", number(q.leased)), card("dead", number(q.dead), q.dead > 0), card("oldest pending", duration(q.oldest_pending_age_ms)),
      card("processed", number(q.processed)), card("failed", number(q.failed), false), card("lease expired", number(q.lease_expired)),
      card("missed deadline", number(q.missed_deadline), q.missed_deadline > 0)),
    throughputPanel(throughput, [r.queue], now, true),
    h("nav", { class: "tabs" }, TABS.map((state) => h("a", { href: queueHref(r.queue, state), "data-tab": state, class: state === r.state ? "active" : "" },
      state, h("span", { class: "count" }, number(q[state]))))),
  ];
  if (onSchedules) return main.concat(schedulesPanel(page));
  const tools = [];
  if (!session.read_only) {
    tools.push(q.paused
      ? h("button", { "data-action": "resume", title: "Every worker process fetches again at once" }, "Resume")
      : h("button", { "data-action": "pause", title: "No worker process takes a job until resumed; running jobs finish" }, "Pause"));
  }
  if (r.state === "dead" && !session.read_only && q.dead > 0) {
    tools.push(h("button", { "data-action": "requeue-all" }, `Requeue all ${number(q.dead)}`));
  }
  const last = Math.min(page.offset + page.jobs.length, page.total);
  tools.push(h("span", { class: "pager" },
    h("span", { class: "muted" }, page.total ? `${page.offset + 1}–${last} of ${number(page.total)}` : ""),
    h("button", { "data-action": "page", "data-offset": Math.max(0, page.offset - PAGE_SIZE), disabled: page.offset === 0 }, "‹ Newer"),
    h("button", { "data-action": "page", "data-offset": page.offset + PAGE_SIZE, disabled: last >= page.total }, "Older ›")));
  main.push(h("div", { class: "toolbar" }, tools));
  if (page.jobs.length === 0) {
    main.push(h("p", { class: "empty" }, `No ${r.state} jobs.`));
  } else {
    const headers = HEADERS[r.state].map((t, i) => h("th", { class: i < 2 ? "num" : "" }, t));
    if (!session.read_only && r.state !== "leased") headers.push(h("th", {}, ""));
    main.push(h("table", { id: "jobs", "data-state": r.state },
      h("thead", {}, h("tr", {}, headers)),
      h("tbody", {}, page.jobs.map((job) => jobRow(r.state, job, now)))));
  }
  return main;
}

async function refresh() {
  if (busy) return;
  busy = true;
  try {
    const r = route();
    const content = r.page === "queue" ? await renderQueue(r) : await renderOverview();
    document.getElementById("main").replaceChildren(...content);
    status(`updated ${new Date().toLocaleTimeString()}`);
  } catch (error) {
    status(`error: ${error.message}`, true);
  } finally {
    busy = false;
  }
}

async function act(button) {
  const r = route();
  const base = `/api/queues/${encodeURIComponent(r.queue)}`;
  const action = button.dataset.action;
  try {
    let done;
    if (action === "page") {
      location.hash = queueHref(r.queue, r.state, Number(button.dataset.offset));
      return;
    } else if (action === "requeue") {
      done = await post(`${base}/requeue`, { ids: [Number(button.dataset.id)] });
      status(`requeued ${done.done} job`);
    } else if (action === "requeue-all") {
      if (!confirm(`Requeue every dead letter of ${r.queue}?`)) return;
      done = await post(`${base}/requeue`, { all: true });
      status(`requeued ${done.done} jobs`);
    } else if (action === "pause") {
      if (!confirm(`Pause ${r.queue} for every worker process?`)) return;
      await post(`${base}/pause`, {});
      status(`paused ${r.queue}`);
    } else if (action === "resume") {
      await post(`${base}/resume`, {});
      status(`resumed ${r.queue}`);
    } else if (action === "delete") {
      if (!confirm(`Delete job ${button.dataset.id} of ${r.queue}? This cannot be undone.`)) return;
      done = await post(`${base}/delete`, { state: button.dataset.state, ids: [Number(button.dataset.id)] });
      status(`deleted ${done.done} job`);
    }
  } catch (error) {
    status(`error: ${error.message}`, true);
    return;
  }
  await refresh();
}

async function start() {
  try {
    session = await api("/api/session");
  } catch (error) {
    status(`error: ${error.message}`, true);
    return;
  }
  document.getElementById("where").textContent = `${session.redis} · prefix ${session.prefix}` + (session.read_only ? " · read-only" : "");
  // One listener for every button, so refreshes that redraw the page lose no click.
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (button && !button.disabled) act(button);
  });
  window.addEventListener("hashchange", refresh);
  await refresh();
  setInterval(refresh, REFRESH_MS);
}

start();
