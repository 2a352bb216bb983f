// remem memory inspector: plain JS against the /v1 API. User data is only ever inserted as text (no innerHTML).
// The graph tab lives in graph.js (it uses $, el, api, state, userPath, fmt and toast from here).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { key: sessionStorage.getItem("remem.key") || "", user: null, offset: 0, mode: "list" };
const PAGE = 25;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function toast(message, isError = false) {
  const t = $("toast");
  t.textContent = message;
  t.className = "toast" + (isError ? " error" : "");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.classList.add("hidden"), isError ? 6000 : 2500);
}

async function api(method, path, body) {
  const headers = { "X-API-Key": state.key };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = res.headers.get("content-type")?.includes("json") ? await res.json() : null;
  if (!res.ok) throw new Error(data?.message || `${res.status} ${res.statusText}`);
  return data;
}

const userPath = () => `/v1/users/${encodeURIComponent(state.user)}`;
const fmt = (iso) => (iso ? new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }) : "");

async function connect(ev) {
  ev?.preventDefault();
  state.key = $("api-key").value.trim() || state.key;
  if (!state.key) return toast("Enter an API key", true);
  try {
    const who = await api("GET", "/v1/whoami");
    sessionStorage.setItem("remem.key", state.key);
    $("tenant-badge").textContent = `tenant: ${who.tenant}`;
    $("tenant-badge").classList.remove("hidden");
    await loadUsers();
  } catch (e) {
    $("tenant-badge").classList.add("hidden");
    toast(`Cannot connect: ${e.message}`, true);
  }
}

async function loadUsers() {
  const { users } = await api("GET", "/v1/users");
  const list = $("users");
  list.replaceChildren(...users.map((u) =>
    el("li", {}, el("button", { class: u === state.user ? "active" : "", "data-user": u, onclick: () => openUser(u) }, u))));
  $("users-empty").textContent = users.length ? "" : "No users yet: open one by id to add memories.";
}

function openUser(user) {
  state.user = user;
  $("welcome").classList.add("hidden");
  $("workspace").classList.remove("hidden");
  $("user-title").textContent = user;
  for (const b of document.querySelectorAll("#users button")) b.classList.toggle("active", b.dataset.user === user);
  closeHistory();
  refresh();
  window.remem?.onUser?.(user);  // graph.js redraws the graph when its tab is open
}

// Dates are days of the browser's calendar: their first and last instants, sent as UTC ISO times.
function filters() {
  const since = $("since").value, until = $("until").value, category = $("category").value.trim();
  return {
    since: since ? new Date(`${since}T00:00:00`).toISOString() : null,
    until: until ? new Date(`${until}T23:59:59.999`).toISOString() : null,
    category: category || null,
  };
}

// The browser's IANA zone: "yesterday" in a search is counted on the user's calendar, not UTC's.
const TIMEZONE = (() => {
  const tz = Intl.DateTimeFormat().resolvedOptions().timeZone;
  return tz && tz !== "Etc/Unknown" ? tz : null;
})();

async function refresh(append = false) {
  if (!state.user) return;
  const q = $("query").value.trim();
  const f = filters();
  if (!append) state.offset = 0;
  try {
    if (q) {
      state.mode = "search";
      const body = { query: q, limit: 50 };
      if (TIMEZONE) body.timezone = TIMEZONE;
      if (f.category) body.categories = [f.category];
      if (f.since) body.since = f.since;
      if (f.until) body.until = f.until;
      const { hits } = await api("POST", `${userPath()}/search`, body);
      render(hits.map((h) => ({ record: h.record, score: h.score })), false);
      $("count").textContent = `${hits.length} result${hits.length === 1 ? "" : "s"}`;
      $("mode").textContent = `Search results for “${q}” (live memories, best first)`;
      $("more").classList.add("hidden");
    } else {
      state.mode = "list";
      const params = new URLSearchParams({ offset: state.offset, limit: PAGE, state: $("state").value });
      if (f.category) params.append("category", f.category);
      if (f.since) params.set("since", f.since);
      if (f.until) params.set("until", f.until);
      const page = await api("GET", `${userPath()}/memories?${params}`);
      render(page.items.map((r) => ({ record: r })), append);
      $("count").textContent = `${page.total} memor${page.total === 1 ? "y" : "ies"}`;
      $("mode").textContent = { live: "Newest first", deleted: "Trash: deleted memories can be restored",
        all: "All memories, deleted included" }[$("state").value];
      state.offset = page.next_offset ?? state.offset;
      $("more").classList.toggle("hidden", page.next_offset === null);
      collectCategories(page.items);
    }
  } catch (e) {
    toast(e.message, true);
  }
}

function collectCategories(items) {
  const list = $("category-list");
  const known = new Set([...list.options].map((o) => o.value));
  for (const r of items) for (const c of r.categories) if (!known.has(c)) { known.add(c); list.append(el("option", { value: c })); }
}

function render(items, append) {
  const ul = $("memories");
  if (!append) ul.replaceChildren();
  for (const item of items) ul.append(card(item.record, item.score));
  $("empty").classList.toggle("hidden", ul.children.length > 0);
}

function card(r, score) {
  const deleted = !!r.deleted_at;
  const text = el("div", { class: "text", "data-testid": "memory-text" }, r.text);
  const meta = el("div", { class: "meta" },
    el("span", { class: "chip kind" }, r.kind),
    ...r.categories.map((c) => el("span", { class: "chip" }, c)),
    score !== undefined ? el("span", { class: "chip score" }, `score ${score.toFixed(3)}`) : null,
    deleted ? el("span", { class: "chip trash" }, "deleted") : null,
    el("span", {}, r.observed_at ? `observed ${fmt(r.observed_at)}` : `added ${fmt(r.created_at)}`),
    r.version > 1 ? el("span", {}, `· v${r.version}, edited ${fmt(r.updated_at)}`) : null,
  );
  const li = el("li", { class: "card" + (deleted ? " deleted" : ""), "data-id": r.id });
  const actions = el("div", { class: "actions" });
  if (deleted) {
    actions.append(el("button", { "data-action": "restore", onclick: () => act("POST", r.id, "/restore", "Restored") }, "Restore"));
  } else {
    actions.append(
      el("button", { "data-action": "edit", onclick: () => edit(li, r) }, "Edit"),
      el("button", { class: "danger", "data-action": "delete", onclick: () => act("DELETE", r.id, "", "Deleted — find it in Trash") }, "Delete"));
  }
  actions.append(el("button", { "data-action": "history", onclick: () => showHistory(r.id) }, "History"));
  li.append(text, actions, meta);
  return li;
}

function edit(li, r) {
  const area = el("textarea", { "aria-label": "Edit memory" });
  area.value = r.text;
  const cats = el("input", { "aria-label": "Edit categories", placeholder: "categories" });
  cats.value = r.categories.join(", ");
  const save = el("button", { class: "primary", "data-action": "save", onclick: async () => {
    try {
      await api("PATCH", `${userPath()}/memories/${r.id}`, { text: area.value, categories: splitCats(cats.value), reason: "edited in the web page" });
      toast("Saved");
      refresh();
    } catch (e) { toast(e.message, true); }
  } }, "Save");
  const cancel = el("button", { onclick: () => refresh() }, "Cancel");
  li.replaceChildren(el("div", { class: "text" }, area, el("div", { class: "meta" }, cats)), el("div", { class: "actions" }, save, cancel));
  area.focus();
}

const splitCats = (s) => s.split(",").map((c) => c.trim()).filter(Boolean);

async function act(method, id, suffix, message) {
  try {
    await api(method, `${userPath()}/memories/${id}${suffix}`);
    toast(message);
    await refresh();
    if (!$("history-panel").classList.contains("hidden")) showHistory(id);
  } catch (e) { toast(e.message, true); }
}

async function showHistory(id) {
  try {
    const { events } = await api("GET", `${userPath()}/memories/${id}/history`);
    $("history-id").textContent = id;
    $("history-relation").classList.add("hidden");
    $("timeline").replaceChildren(...events.slice().reverse().map((e) => el("li", { class: `ev-${e.event}` },
      el("div", {}, el("span", { class: "ev" }, e.event), el("span", { class: "when" }, fmt(e.created_at))),
      e.old_text && e.event === "UPDATE" ? el("div", { class: "old" }, e.old_text) : null,
      e.new_text ? el("div", { class: "new" }, e.new_text) : null,
      el("div", { class: "who" }, `by ${e.actor}${e.reason ? ` — ${e.reason}` : ""}`))));
    $("history-panel").classList.remove("hidden");
  } catch (e) { toast(e.message, true); }
}

function closeHistory() {
  $("history-panel").classList.add("hidden");
  $("history-relation").classList.add("hidden");
}

async function addMemory(ev) {
  ev.preventDefault();
  const text = $("new-text").value.trim();
  if (!text) return;
  try {
    const res = await api("POST", `${userPath()}/memories`, { messages: text, categories: splitCats($("new-cats").value) });
    const noop = res.events.every((e) => e.event === "NOOP");
    toast(noop ? "Already remembered" : "Added");
    $("new-text").value = "";
    $("new-cats").value = "";
    await refresh();
    await loadUsers();
  } catch (e) { toast(e.message, true); }
}

$("key-form").addEventListener("submit", connect);
$("user-form").addEventListener("submit", (ev) => { ev.preventDefault(); const u = $("user-input").value.trim(); if (u) openUser(u); });
$("search-form").addEventListener("submit", (ev) => { ev.preventDefault(); refresh(); });
$("clear-btn").addEventListener("click", () => { for (const id of ["query", "category", "since", "until"]) $(id).value = ""; $("state").value = "live"; refresh(); });
$("state").addEventListener("change", () => { $("query").value = ""; refresh(); });
$("add-form").addEventListener("submit", addMemory);
$("more").addEventListener("click", () => refresh(true));
$("history-close").addEventListener("click", closeHistory);
if (state.key) { $("api-key").value = state.key; connect(); }
