// embedsearch serve: the page. Plain JS, no build step, nothing loaded from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { indexes: [], index: null, query: null, page: 0, maxK: 500, dedupOffset: 0 };
const DEDUP_PAGE = 10;

function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "text") node.textContent = value;
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function tokenFromHash() {
  // a link to the page ending in #token=T hands it the token without the token reaching a log
  const match = location.hash.match(/token=([^&]+)/);
  if (match) {
    setToken(decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname);
  }
}

function setToken(token) {
  document.cookie = `embedsearch_token=${encodeURIComponent(token)}; path=/; SameSite=Strict`;
}

async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (response.status === 401) {
    $("token-form").hidden = false;
    throw new Error("this server needs a token: enter it below");
  }
  if (!response.ok) throw new Error((body && body.error) || `HTTP ${response.status}`);
  return body;
}

function showError(message) {
  $("error").textContent = message || "";
  $("error").hidden = !message;
}

function imageUrl(key, size = 256) {
  return `/api/indexes/${encodeURIComponent(state.index.name)}/image/${key}?size=${size}`;
}

function fmt(value) {
  if (value === null || value === undefined) return "";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

function basename(source) {
  const parts = String(source).split(/[\\/]/);
  return parts[parts.length - 1] || String(source);
}

function thumb(url, text, textOnly) {
  const box = el("div", { class: "thumb" });
  if (textOnly) {
    box.append(el("div", { class: "text", text }));
    return box;
  }
  const img = el("img", { src: url, alt: basename(text), loading: "lazy" });
  img.addEventListener("error", () => img.replaceWith(el("div", { class: "text", text })));
  box.append(img);
  return box;
}

function hitCard(hit) {
  const isText = state.index.modality === "text";
  const meta = Object.entries(hit.metadata || {}).filter(([name]) => name !== "content_hash")
    .map(([name, value]) => `${name}: ${fmt(value)}`).join(" · ");
  const card = el("div", { class: "hit", tabindex: "0", "data-id": hit.id, "data-dir": hit.dir,
                           "data-key": hit.key, title: `${hit.source}\nclick: search by this hit` }, [
    thumb(imageUrl(hit.key), hit.source, isText),
    el("div", { class: "meta" }, [
      el("span", { class: "score", text: `#${hit.rank} ${hit.score.toFixed(3)}` }),
      el("div", { text: isText ? `id ${hit.id}` : basename(hit.source) }),
      el("div", { class: "muted", text: meta }),
    ]),
  ]);
  const open = () => search({ kind: "id", id: hit.id, dir: hit.dir, label: hit.source, key: hit.key });
  card.addEventListener("click", open);
  card.addEventListener("keydown", (e) => { if (e.key === "Enter") open(); });
  return card;
}

function pageSize() {
  const k = parseInt($("k").value, 10);
  return Number.isFinite(k) && k > 0 ? Math.min(k, state.maxK) : 20;
}

async function fetchHits(query, k) {
  const base = `/api/indexes/${encodeURIComponent(state.index.name)}/search`;
  if (query.kind === "text") return api(`${base}?text=${encodeURIComponent(query.text)}&k=${k}`);
  if (query.kind === "id") return api(`${base}?id=${query.id}&dir=${query.dir}&k=${k}`);
  const form = new FormData();
  form.append("file", query.file, query.file.name || "query");
  return api(`${base}/image?k=${k}`, { method: "POST", body: form });
}

function showQuery(query) {
  const card = $("query-card");
  card.replaceChildren();
  if (query.kind === "image") {
    card.append(el("img", { src: URL.createObjectURL(query.file), alt: "query image" }),
                el("span", { text: `image: ${query.file.name || "upload"}` }));
  } else if (query.kind === "id") {
    if (state.index.modality !== "text") card.append(el("img", { src: imageUrl(query.key, 128), alt: "query" }));
    card.append(el("span", { text: `like: ${query.label}` }));
  }
  card.hidden = query.kind === "text";
}

async function search(query, page = 0) {
  if (!state.index) return;
  state.query = query;
  state.page = page;
  const size = pageSize();
  const k = Math.min(size * (page + 1), state.maxK);
  showError("");
  showQuery(query);
  $("status").textContent = "searching…";
  const started = performance.now();
  try {
    const answer = await fetchHits(query, k);
    const hits = answer.hits.slice(size * page);
    $("results").replaceChildren(...hits.map(hitCard));
    const ms = Math.round(performance.now() - started);
    $("status").textContent = `${answer.hits.length ? hits.length : 0} hits (ranks ${size * page + 1}–${size * page + hits.length}) in ${ms} ms`;
    $("page").textContent = `page ${page + 1}`;
    $("prev").disabled = page === 0;
    $("next").disabled = answer.hits.length < k || k >= state.maxK;
  } catch (e) {
    $("results").replaceChildren();
    $("status").textContent = "";
    showError(e.message);
  }
}

function describeIndex() {
  const i = state.index;
  const recall = i.recall_at_k === null || i.recall_at_k === undefined ? "" : ` · recall@${i.recall_k} ${i.recall_at_k}`;
  $("index-info").textContent = `${i.name}: ${i.rows} rows · ${i.kind} · ${i.model}${recall}`;
}

async function loadIndexes() {
  const answer = await api("/api/indexes");
  state.indexes = answer.indexes;
  state.maxK = answer.limits.max_k;
  const select = $("index-select");
  select.replaceChildren(...state.indexes.map((i) => el("option", { value: i.name, text: i.name })));
  select.hidden = state.indexes.length < 2;
  state.index = state.indexes[0];
  describeIndex();
  $("tab-dedup").hidden = !answer.dedup;
}

function dedupMember(member) {
  const score = member.keep ? "kept" : (member.score_to_kept === null ? "" : `${member.score_to_kept.toFixed(3)} to kept`);
  const card = el("div", { class: member.keep ? "hit kept" : "hit", title: member.source }, [
    thumb(`/api/dedup/image/${member.key}?size=200`, member.source, false),
    el("div", { class: "meta" }, [
      member.keep ? el("span", { class: "badge", text: "kept" }) : el("span", { class: "score", text: score }),
      el("div", { text: basename(member.source) }),
    ]),
  ]);
  return card;
}

async function loadDedup(offset = 0) {
  showError("");
  try {
    const answer = await api(`/api/dedup?offset=${offset}&limit=${DEDUP_PAGE}`);
    state.dedupOffset = offset;
    const s = answer.summary;
    $("dedup-summary").textContent = `${answer.total_groups} groups · ${s.to_remove} to remove of ${s.rows} · threshold ${s.threshold} (${s.scores || ""})`;
    const groups = answer.groups.map((g) => {
      const pairs = g.pairs.map((p) => p.score.toFixed(3)).join(", ");
      return el("div", { class: "group", "data-group": g.group }, [
        el("div", { class: "muted", text: `group ${g.group} · ${g.members.length} images` }),
        el("div", { class: "grid" }, g.members.map(dedupMember)),
        el("p", { class: "pairs", text: pairs ? `pair scores: ${pairs}` : "" }),
      ]);
    });
    $("dedup").replaceChildren(...groups);
    $("dedup-page").textContent = `groups ${offset + 1}–${offset + answer.groups.length} of ${answer.total_groups}`;
    $("dedup-prev").disabled = offset === 0;
    $("dedup-next").disabled = offset + DEDUP_PAGE >= answer.total_groups;
  } catch (e) {
    showError(e.message);
  }
}

function switchTab(name) {
  $("search-view").hidden = name !== "search";
  $("dedup-view").hidden = name !== "dedup";
  $("tab-search").classList.toggle("active", name === "search");
  $("tab-dedup").classList.toggle("active", name === "dedup");
  if (name === "dedup") loadDedup(state.dedupOffset);
}

function searchFile(file) {
  if (file) search({ kind: "image", file });
}

function wire() {
  $("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("query").value.trim();
    if (text) search({ kind: "text", text });
  });
  $("index-select").addEventListener("change", () => {
    state.index = state.indexes.find((i) => i.name === $("index-select").value);
    describeIndex();
    if (state.query && state.query.kind !== "id") search(state.query);
  });
  $("file").addEventListener("change", () => searchFile($("file").files[0]));
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    searchFile(e.dataTransfer.files[0]);
  });
  $("prev").addEventListener("click", () => search(state.query, state.page - 1));
  $("next").addEventListener("click", () => search(state.query, state.page + 1));
  $("tab-search").addEventListener("click", () => switchTab("search"));
  $("tab-dedup").addEventListener("click", () => switchTab("dedup"));
  $("dedup-prev").addEventListener("click", () => loadDedup(Math.max(0, state.dedupOffset - DEDUP_PAGE)));
  $("dedup-next").addEventListener("click", () => loadDedup(state.dedupOffset + DEDUP_PAGE));
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    setToken($("token").value);
    $("token-form").hidden = true;
    start();
  });
}

async function start() {
  try {
    await loadIndexes();
    document.body.dataset.ready = "1";
  } catch (e) {
    showError(e.message);
  }
}

tokenFromHash();
wire();
start();
