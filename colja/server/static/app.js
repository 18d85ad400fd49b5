// colja search page: plain JS, no build step, no network beyond this server.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { query: "", index: "" };

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("apikey").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

async function api(method, path, body) {
  const r = await fetch(path, { method, headers: headers(), body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error((data.error && data.error.message) || ("HTTP " + r.status));
  return data;
}

function status(text, ok) {
  $("status").textContent = text;
  $("status").className = ok ? "ok" : "";
}

function el(tag, props, ...children) {
  const e = document.createElement(tag);
  Object.assign(e, props || {});
  for (const c of children) e.append(c);
  return e;
}

async function loadIndexes() {
  try {
    const data = await api("GET", "/v1/indexes");
    const select = $("index");
    select.replaceChildren(...data.indexes.map((i) => el("option", { value: i.name, textContent: `${i.name} (${i.live_passages})` })));
    status("", true);
  } catch (e) {
    status("Could not list the indexes: " + e.message + " (an API key may be needed)");
  }
}

async function search(event) {
  event.preventDefault();
  const query = $("query").value;
  const index = $("index").value;
  const k = parseInt($("k").value, 10) || 10;
  status("Searching…", true);
  $("explanation").hidden = true;
  const t0 = performance.now();
  try {
    const data = await api("POST", `/v1/indexes/${encodeURIComponent(index)}/search`, { query, k });
    state.query = query;
    state.index = index;
    showHits(data.hits);
    status(`${data.hits.length} hits in ${Math.round(performance.now() - t0)} ms`, true);
  } catch (e) {
    status(e.message);
  }
}

function showHits(hits) {
  $("hits").replaceChildren(...hits.map((h) => {
    const meta = Object.keys(h.metadata || {}).length ? JSON.stringify(h.metadata) : "";
    const button = el("button", { type: "button", className: "explain", textContent: "Why?" });
    button.addEventListener("click", () => explain(h.doc_id, li));
    const li = el("li", { className: "hit" },
      el("div", { className: "head" },
        el("span", { className: "score", textContent: h.score.toFixed(3) }),
        el("span", { className: "id", textContent: h.doc_id }),
        button),
      el("p", { className: "text", textContent: h.text || "" }),
      el("div", { className: "meta", textContent: meta }));
    li.dataset.docId = h.doc_id;
    return li;
  }));
}

async function explain(docId, li) {
  status("Explaining…", true);
  try {
    const e = await api("POST", `/v1/indexes/${encodeURIComponent(state.index)}/explain`, { query: state.query, doc_id: docId });
    for (const other of document.querySelectorAll(".hit.open")) other.classList.remove("open");
    li.classList.add("open");
    showExplanation(e);
    status("", true);
  } catch (err) {
    status(err.message);
  }
}

function showExplanation(e) {
  $("explain-doc").textContent = e.doc_id;
  $("explain-score").textContent = e.score.toFixed(3);
  // passage token -> the query tokens that matched it
  const byToken = new Map();
  for (const m of e.matches) {
    if (!byToken.has(m.passage_index)) byToken.set(m.passage_index, []);
    byToken.get(m.passage_index).push(m);
  }
  const best = Math.max(...e.matches.map((m) => m.score), 1e-6);
  const spans = [...byToken.entries()]
    .map(([i, ms]) => ({ i, ms, tok: e.passage_tokens[i] }))
    .filter((x) => x.tok.start !== null && x.tok.end !== null)
    .sort((a, b) => a.tok.start - b.tok.start);
  const parts = [];
  let at = 0;
  for (const s of spans) {
    if (s.tok.start < at) continue; // overlapping pieces: keep the first
    if (s.tok.start > at) parts.push(e.text.slice(at, s.tok.start));
    const top = Math.max(...s.ms.map((m) => m.score));
    const mark = el("mark", { className: "match", textContent: e.text.slice(s.tok.start, s.tok.end) });
    mark.dataset.passageIndex = s.i;
    mark.dataset.start = s.tok.start;
    mark.dataset.end = s.tok.end;
    mark.dataset.queryTokens = s.ms.map((m) => m.query_token).join(" ");
    mark.title = s.ms.map((m) => `${m.query_token} → ${m.score.toFixed(3)}`).join("\n");
    const alpha = 0.15 + 0.75 * Math.max(0, top) / best;
    mark.style.backgroundColor = `rgba(255, 170, 0, ${alpha.toFixed(2)})`;
    parts.push(mark);
    at = s.tok.end;
  }
  if (at < e.text.length) parts.push(e.text.slice(at));
  $("passage").replaceChildren(...parts);
  $("alignment").tBodies[0].replaceChildren(...e.matches.map((m) => {
    const chars = m.start === null ? "" : e.text.slice(m.start, m.end);
    const tr = el("tr", {},
      el("td", { className: "num", textContent: String(m.query_index) }),
      el("td", { textContent: m.query_token }),
      el("td", { textContent: m.passage_token }),
      el("td", { textContent: chars }),
      el("td", { className: "num", textContent: m.score.toFixed(3) }));
    tr.dataset.passageIndex = m.passage_index;
    return tr;
  }));
  $("explanation").hidden = false;
}

$("apikey").value = sessionStorage.getItem("colja-key") || "";
$("apikey").addEventListener("change", () => { sessionStorage.setItem("colja-key", $("apikey").value.trim()); loadIndexes(); });
$("form").addEventListener("submit", search);
loadIndexes();
