// The climb-ray web page: sliders over the super-clusters, the predicted score of the chosen
// mixture, a bar chart of it, the cluster map (click a cluster to read examples) and the best
// mixtures of the search. Plain JS, no build step.
"use strict";

const TOKEN_KEY = "climb-ray-token";
const SVG = "http://www.w3.org/2000/svg";
const state = { clusters: [], timer: null, seq: 0 };
const $ = (id) => document.getElementById(id);
const pct = (x) => `${(100 * x).toFixed(1)}%`;
const color = (i) => `hsl(${(i * 137.5 + 205) % 360} 55% 50%)`;

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

// -- the API ---------------------------------------------------------------------------------------
async function api(path, body) {
  const headers = { Accept: "application/json" };
  const token = $("token").value.trim();
  if (token) headers.Authorization = `Bearer ${token}`;
  const init = { headers };
  if (body !== undefined) {
    Object.assign(init, { method: "POST", body: JSON.stringify(body) });
    headers["Content-Type"] = "application/json";
  }
  let res;
  try {
    res = await fetch(path.replace(/^\//, ""), init);  // relative to the page: works under a route prefix
  } catch (err) {
    throw new ApiError(0, `cannot reach the server: ${err.message}`);
  }
  const data = await res.json().catch(() => null);
  if (res.status === 401) askForToken();
  if (!res.ok) throw new ApiError(res.status, `${res.status}: ${detailOf(data) || res.statusText || "request failed"}`);
  return data;
}

function detailOf(data) {
  const detail = data && data.detail;
  if (!detail) return "";
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) return detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
  return JSON.stringify(detail);
}

function setStatus(message, kind = "error") {
  const el = $("status");
  el.textContent = message || "";
  el.className = `status ${message ? kind : ""}`;
}

function askForToken() {
  $("auth").hidden = false;
  $("token").focus();
}

// -- sliders ----------------------------------------------------------------------------------------
function sliders() {
  return state.clusters.map((c) => $(`w-${c.name}`));
}

function mixture() {  // the slider values rescaled to sum to 1 (all 0 when every slider is at 0)
  const raw = sliders().map((s) => Number(s.value));
  const total = raw.reduce((a, b) => a + b, 0);
  return raw.map((v) => (total > 0 ? v / total : 0));
}

function buildSliders(clusters) {
  const box = $("sliders");
  box.replaceChildren();
  clusters.forEach((c, i) => {
    const row = document.createElement("div");
    row.className = "slider-row";
    row.style.setProperty("--swatch", color(i));
    const label = document.createElement("label");
    label.htmlFor = `w-${c.name}`;
    label.title = c.label || c.name;
    label.innerHTML = '<span class="name"></span><span class="terms"></span>';
    label.firstChild.textContent = c.name;
    label.lastChild.textContent = (c.top_terms || []).slice(0, 3).join(" · ");
    const input = Object.assign(document.createElement("input"),
      { type: "range", id: `w-${c.name}`, min: 0, max: 100, step: "any" });
    input.dataset.cluster = c.name;
    input.addEventListener("input", onSliderInput);
    const out = Object.assign(document.createElement("output"), { className: "pct", id: `pct-${c.name}` });
    out.htmlFor = input.id;
    row.append(label, input, out);
    box.append(row);
  });
}

function setSliders(weights) {  // weights: {name: weight}, any scale; clusters left out get 0
  const max = Math.max(...state.clusters.map((c) => Number(weights[c.name]) || 0));
  const scale = max > 1 ? 100 / max : 100;
  state.clusters.forEach((c) => { $(`w-${c.name}`).value = scale * (Number(weights[c.name]) || 0); });
  onSliderInput();
}

function onSliderInput() {
  const w = mixture();
  state.clusters.forEach((c, i) => { $(`pct-${c.name}`).textContent = pct(w[i]); });
  sliders().forEach((s) => s.style.setProperty("--fill", `${s.value}%`));
  drawChart(w);
  state.seq++;  // an answer still on its way is for an older mixture: not shown
  $("score").classList.add("busy");
  clearTimeout(state.timer);
  state.timer = setTimeout(predict, 100);
}

// -- the predicted score ------------------------------------------------------------------------------
async function predict() {
  const seq = ++state.seq;
  const raw = sliders().map((s) => Number(s.value));
  if (!raw.some((v) => v > 0)) {
    $("score").textContent = "—";
    $("score").classList.remove("busy");
    setStatus("every weight is 0: raise at least one slider");
    return;
  }
  try {
    const weights = Object.fromEntries(state.clusters.map((c, i) => [c.name, raw[i]]));
    const res = await api("/v1/predict", { weights, normalize: true });
    if (seq !== state.seq) return;  // the sliders moved since
    $("score").textContent = res.predicted.toFixed(4);
    showMeta(res.direction, res.uncertainty);
    setStatus("");
  } catch (err) {
    if (seq === state.seq) setStatus(err.message);
  } finally {
    if (seq === state.seq) $("score").classList.remove("busy");
  }
}

function showMeta(direction, uncertainty) {
  const parts = [(direction || "").replaceAll("_", " ")];
  if (uncertainty !== null && uncertainty !== undefined) parts.push(`± ${uncertainty.toFixed(4)}`);
  $("score-meta").textContent = parts.filter(Boolean).join(" · ");
  $("score-meta").title = "± the predictor's typical error on held-out trials";
}

// -- the bar chart (inline SVG) -----------------------------------------------------------------------
function svg(tag, attrs, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

function drawChart(w) {
  const shares = state.clusters.map((c) => c.token_share || 0);
  const rowH = 26, left = 56, right = 58, width = 420, height = rowH * w.length + 18;
  const top = Math.max(...w, ...shares, 0.01);
  const x = (v) => left + (v / top) * (width - left - right);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "bars" });
  w.forEach((v, i) => {
    const name = state.clusters[i].name, y = 4 + i * rowH;
    chart.append(svg("text", { x: left - 8, y: y + 15, class: "label", "text-anchor": "end" }, name));
    const bar = svg("rect", { x: left, y: y + 2, height: rowH - 8, rx: 3, width: Math.max(x(v) - left, 0),
                              fill: color(i), class: "bar", "data-cluster": name, "data-weight": v.toFixed(6) });
    bar.append(svg("title", {}, `${name}: ${pct(v)} (token share ${pct(shares[i])})`));
    chart.append(bar, svg("line", { x1: x(shares[i]), x2: x(shares[i]), y1: y, y2: y + rowH - 4, class: "share" }));
    chart.append(svg("text", { x: width - 4, y: y + 15, class: "value", "text-anchor": "end", "data-cluster": name },
                     pct(v)));
  });
  chart.append(svg("text", { x: left, y: height - 2, class: "legend" }, "| token share"));
  $("chart").replaceChildren(chart);
}

// -- the cluster map ------------------------------------------------------------------------------------
function drawMap(clusters) {
  const placed = clusters.filter((c) => Array.isArray(c.map_xy));
  if (!placed.length) {  // a pre-clustered corpus has no centroids, so no map
    $("map").replaceChildren(Object.assign(document.createElement("p"),
      { className: "hint", textContent: "no map: the clusters were given as labels, not found by k-means" }));
  }
  const size = 360, pad = 46;
  const at = (v) => pad + ((v + 1) / 2) * (size - 2 * pad);
  const map = svg("svg", { viewBox: `0 0 ${size} ${size}`, role: "img", class: "bubbles" });
  const top = Math.max(...clusters.map((c) => c.token_share || 0), 1e-9);
  clusters.forEach((c, i) => {
    if (!Array.isArray(c.map_xy)) return;
    const [x, y] = c.map_xy, r = 6 + 30 * Math.sqrt((c.token_share || 0) / top);
    const dot = svg("circle", { cx: at(x), cy: at(-y), r, fill: color(i), class: "bubble", tabindex: 0,
                                role: "button", "data-cluster": c.name });
    dot.append(svg("title", {}, `${c.name}: ${(c.top_terms || []).slice(0, 4).join(", ")}`));
    const show = () => showCluster(c, i);
    dot.addEventListener("click", show);
    dot.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); show(); } });
    map.append(dot, svg("text", { x: at(x), y: at(-y) + 4, class: "bubble-label", "text-anchor": "middle" }, c.name));
  });
  if (placed.length) $("map").replaceChildren(map);
  if (clusters.length) showCluster(clusters[0], 0);
}

function showCluster(c, i) {
  document.querySelectorAll(".bubble").forEach((b) => b.classList.toggle("chosen", b.dataset.cluster === c.name));
  const box = $("cluster-detail");
  const head = Object.assign(document.createElement("h3"), { textContent: c.label || c.name });
  head.style.borderLeft = `4px solid ${color(i)}`;
  const facts = Object.assign(document.createElement("p"), { className: "hint",
    textContent: `${c.documents} documents · ${pct(c.token_share || 0)} of the tokens` +
      (typeof c.mean_quality === "number" ? ` · mean quality ${c.mean_quality.toFixed(2)}` : "") +
      ((c.top_terms || []).length ? ` · ${c.top_terms.join(", ")}` : "") });
  const list = document.createElement("ol");
  list.className = "examples";
  (c.examples || []).forEach((t) => list.append(Object.assign(document.createElement("li"), { textContent: t })));
  if (!(c.examples || []).length) list.append(Object.assign(document.createElement("li"), { textContent: "no examples" }));
  box.replaceChildren(head, facts, list);
  box.dataset.cluster = c.name;
}

// -- the best mixtures ----------------------------------------------------------------------------------
function mixtureCell(weights) {  // a stacked bar of one mixture (the colours of the chart) + its top 3
  const bar = svg("svg", { viewBox: "0 0 100 10", class: "mini", preserveAspectRatio: "none" });
  let at = 0;
  state.clusters.forEach((c, i) => {
    const v = 100 * (weights[c.name] || 0);
    bar.append(svg("rect", { x: at, y: 0, width: v, height: 10, fill: color(i) }));
    at += v;
  });
  const names = state.clusters.map((c) => `${c.name} ${pct(weights[c.name] || 0)}`).join(" · ");
  bar.append(svg("title", {}, names));
  const top = state.clusters.map((c) => [c.name, weights[c.name] || 0]).sort((a, b) => b[1] - a[1]).slice(0, 3);
  const text = Object.assign(document.createElement("span"),
    { className: "top", textContent: top.map(([n, v]) => `${n} ${(100 * v).toFixed(0)}%`).join(" · ") });
  const cell = Object.assign(document.createElement("div"), { className: "mixture" });
  cell.append(bar, text);
  return cell;
}

function fmt(x) { return typeof x === "number" ? x.toFixed(4) : "—"; }

function showBest(best) {
  const table = $("best");
  table.querySelectorAll("tbody").forEach((b) => b.remove());
  const groups = [["search answer", "answer", best.answer && best.answer.weights ? [best.answer] : []],
                  ["measured by proxy runs, best first", "measured", best.measured || []],
                  ["predicted best, not measured", "predicted", best.predicted || []]];
  for (const [title, kind, rows] of groups) {
    if (!rows.length) continue;
    const body = table.createTBody();
    body.dataset.kind = kind;
    const head = body.insertRow();
    head.className = "group";
    Object.assign(head.insertCell(), { colSpan: 4, textContent: title });
    rows.forEach((m, i) => {
      const tr = body.insertRow();
      Object.assign(tr.dataset, { kind, index: i });
      tr.insertCell().append(mixtureCell(m.weights));
      Object.assign(tr.insertCell(), { className: "num", textContent: fmt(m.score) });
      Object.assign(tr.insertCell(), { className: "num", textContent: fmt(m.predicted) });
      const use = Object.assign(document.createElement("button"), { type: "button", textContent: "use" });
      use.title = "set the sliders to this mixture";
      use.addEventListener("click", () => setSliders(m.weights));
      tr.insertCell().append(use);
    });
  }
}

// -- start ------------------------------------------------------------------------------------------------
function showModel(m) {
  const rho = typeof m.spearman === "number" ? m.spearman.toFixed(3) : "n/a";
  $("model").textContent = `model ${m.version} · ${m.trials} trials · held-out Spearman ${rho} ` +
    `(${m.held_out} held out)`;
  $("model").title = `fitted ${m.fitted_at || "at an unknown time"}`;
}

async function load() {
  setStatus("loading…", "info");
  try {
    const [model, clusters, best] = await Promise.all([api("/v1/model"), api("/v1/clusters"), api("/v1/best?k=5")]);
    showModel(model);
    state.clusters = clusters.clusters;
    buildSliders(state.clusters);
    drawMap(state.clusters);
    showBest(best);
    showMeta(best.direction, best.uncertainty);
    const start = best.answer && best.answer.weights
      ? best.answer.weights : Object.fromEntries(state.clusters.map((c) => [c.name, c.token_share]));
    setSliders(start);
    setStatus("");
  } catch (err) {
    setStatus(err.message);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) {
    $("token").value = token;
    $("auth").hidden = false;
  }
  $("auth").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    load();
  });
  load();
});
