// remem graph view: a user's entities and time-aware relations, drawn with Cytoscape.js (vendor/, MIT), and the
// same relations as a list. Closing or deleting a relation is one click (here or in the side panel after
// clicking an edge) and shows up in its history. User data reaches the DOM only as text; Cytoscape draws
// labels on its canvas. Uses $, el, api, state, userPath, fmt and toast from app.js.
"use strict";

(() => {
  const g = { cy: null, tab: "memories", entities: new Map(), labels: new Map(), relations: new Map(), selected: null };
  window.remem = { get cy() { return g.cy; }, onUser };

  const words = (relation) => relation.replace(/_/g, " ");
  // As the server words it (remem.graph.names.sentence): sister_of → "is sister of".
  const phrase = (relation) => (/^(?!is_|was_)[a-z0-9]+(_[a-z0-9]+)?_of$/.test(relation) ? `is ${words(relation)}` : words(relation));
  const day = (iso) => (iso ? iso.slice(0, 10) : null);  // stored instants are UTC: their UTC calendar day
  const status = (r) => (r.deleted_at ? "deleted" : r.valid_to || r.expired_at ? "ended" : "holds");
  const graphPath = () => `${userPath()}/graph`;

  function dates(r) {
    const from = day(r.valid_from), to = day(r.valid_to);
    if (from && to) return `from ${from} until ${to}`;
    if (from) return `since ${from}`;
    if (to) return `until ${to}`;
    return r.expired_at ? `no longer true as of ${day(r.expired_at)}` : "";
  }

  // As the server shows it (remem.graph.names.labels): namesakes get their hint, else their type, else a short id.
  function labelsOf(entities) {
    const tags = [(x) => x.hint, (x) => x.type, (x) => `#${x.id.slice(0, 8)}`];
    const groups = new Map(), out = new Map();
    for (const e of entities) groups.set(e.name.toLowerCase(), [...(groups.get(e.name.toLowerCase()) || []), e]);
    for (const e of entities) {
      const group = groups.get(e.name.toLowerCase());
      const tag = group.length > 1 ? tags.map((f) => [f(e), group.filter((x) => f(x) === f(e)).length])
        .find(([t, n]) => t && n === 1) : null;
      out.set(e.id, tag ? `${e.name} (${tag[0]})` : e.name);
    }
    return out;
  }
  const label = (e) => (e ? g.labels.get(e.id) || e.name : "?");

  function sentence(r) {
    return `${label(g.entities.get(r.subject_id))} ${phrase(r.relation)} ${label(g.entities.get(r.object_id))}`;
  }

  function showTab(which) {
    g.tab = which;
    $("memories-view").classList.toggle("hidden", which !== "memories");
    $("graph-view").classList.toggle("hidden", which !== "graph");
    for (const [id, name] of [["tab-memories", "memories"], ["tab-graph", "graph"]]) {
      $(id).classList.toggle("active", which === name);
      $(id).setAttribute("aria-selected", String(which === name));
    }
    if (which === "graph") load();
  }

  function onUser() {
    g.selected = null;
    if (g.tab === "graph") load();
  }

  // A relation held at the end of `dayString` (a day of the browser's calendar).
  function holdsAt(r, dayString) {
    const t = new Date(`${dayString}T23:59:59.999`).getTime();
    if (r.deleted_at) return false;
    if (r.valid_from && Date.parse(r.valid_from) > t) return false;
    return !r.valid_to || t < Date.parse(r.valid_to);
  }

  async function load() {
    if (!state.user) return;
    const query = $("graph-query").value.trim(), asOf = $("graph-asof").value, withDeleted = $("graph-deleted").checked;
    let entities, relations;
    try {
      if (query) {
        const body = { query, hops: Number($("graph-hops").value), limit: 500 };
        if (asOf) body.as_of = new Date(`${asOf}T23:59:59.999`).toISOString();
        const found = await api("POST", `${graphPath()}/search`, body);
        const byId = new Map();
        for (const e of found.matched) byId.set(e.id, e);
        for (const f of found.facts) { byId.set(f.subject.id, f.subject); byId.set(f.object.id, f.object); }
        entities = [...byId.values()];
        relations = found.facts.map((f) => f.relation);
        $("graph-mode").textContent = found.matched.length
          ? `Within ${body.hops} hop${body.hops === 1 ? "" : "s"} of ${found.matched.map((e) => found.labels[e.id] || e.name).join(", ")}`
            + (asOf ? `, as of ${asOf}` : "")
          : `No entity matches “${query}”`;
      } else {
        const view = await api("GET", `${graphPath()}?deleted=${withDeleted}`);
        relations = asOf ? view.relations.filter((r) => holdsAt(r, asOf)) : view.relations;
        const touched = new Set(relations.flatMap((r) => [r.subject_id, r.object_id]));
        entities = asOf ? view.entities.filter((e) => touched.has(e.id)) : view.entities;
        const ended = relations.filter((r) => status(r) === "ended").length;
        $("graph-mode").textContent = `${entities.length} entities, ${relations.length} relations`
          + (ended ? ` (${ended} ended)` : "") + (asOf ? `, holding on ${asOf}` : "");
      }
      $("graph-off").classList.add("hidden");
      $("graph-canvas").classList.remove("hidden");
    } catch (e) {
      if (/graph memory is off/.test(e.message)) {
        $("graph-off").textContent = "Graph memory is off on this server: start it with REMEM_GRAPH=1.";
        $("graph-off").classList.remove("hidden");
        $("graph-canvas").classList.add("hidden");
        $("relations").replaceChildren();
        $("graph-mode").textContent = "";
        return;
      }
      return toast(e.message, true);
    }
    g.entities = new Map(entities.map((e) => [e.id, e]));
    g.labels = labelsOf(entities);
    g.relations = new Map(relations.map((r) => [r.id, r]));
    draw(entities, relations);
    list(relations);
    if (g.selected && g.relations.has(g.selected)) markSelected(g.selected);
  }

  function draw(entities, relations) {
    if (g.cy) g.cy.destroy();
    g.cy = cytoscape({
      container: $("graph-canvas"),
      elements: [
        ...entities.map((e) => ({ data: { id: e.id, label: label(e), name: e.name, type: e.type } })),
        ...relations.map((r) => ({ data: { id: r.id, source: r.subject_id, target: r.object_id, label: words(r.relation) },
          classes: status(r) })),
      ],
      style: [
        { selector: "node", style: { label: "data(label)", width: 24, height: 24, "background-color": "#7a5b9e",
          "font-size": 12, color: "#1d2330", "text-valign": "bottom", "text-margin-y": 5,
          "text-background-color": "#ffffff", "text-background-opacity": 0.85, "text-background-padding": 2 } },
        { selector: "node[type = 'person']", style: { "background-color": "#3456d1" } },
        { selector: "node[type = 'place']", style: { "background-color": "#1f8a5b" } },
        { selector: "node[type = 'organisation']", style: { "background-color": "#b7791f" } },
        { selector: "node[type = 'event']", style: { "background-color": "#c23b3b" } },
        { selector: "edge", style: { width: 2, label: "data(label)", "font-size": 10, color: "#3b4660",
          "curve-style": "bezier", "line-color": "#8e9bbd", "target-arrow-color": "#8e9bbd",
          "target-arrow-shape": "triangle", "text-rotation": "autorotate", "text-background-color": "#f6f7f9",
          "text-background-opacity": 1, "text-background-padding": 1 } },
        { selector: "edge.ended", style: { "line-style": "dashed", "line-color": "#c5cad6",
          "target-arrow-color": "#c5cad6", color: "#8a93a6" } },
        { selector: "edge.deleted", style: { "line-style": "dotted", "line-color": "#e3a5a5",
          "target-arrow-color": "#e3a5a5", color: "#c23b3b" } },
        { selector: "edge:selected", style: { width: 4, "line-color": "#141a2b", "target-arrow-color": "#141a2b" } },
        { selector: "node:selected", style: { "border-width": 3, "border-color": "#141a2b" } },
      ],
      // cose (force-directed, built into Cytoscape): strong repulsion and long edges keep labels apart
      layout: { name: "cose", animate: false, padding: 40, nodeRepulsion: () => 200000, idealEdgeLength: () => 80,
        edgeElasticity: () => 100, nodeOverlap: 40, gravity: 40, componentSpacing: 80, numIter: 2000 },
      wheelSensitivity: 0.3,
      maxZoom: 2.5,
    });
    g.cy.on("tap", "edge", (ev) => select(ev.target.id()));
    g.cy.on("tap", "node", (ev) => {
      $("graph-query").value = ev.target.data("name");
      load();
    });
  }

  function actions(r) {
    const out = [];
    const s = status(r);
    if (s === "holds") out.push(el("button", { "data-action": "close", onclick: () => act("close", r.id) }, "Close"));
    if (s !== "deleted") out.push(el("button", { class: "danger", "data-action": "delete", onclick: () => act("delete", r.id) }, "Delete"));
    else out.push(el("button", { "data-action": "restore", onclick: () => act("restore", r.id) }, "Restore"));
    return out;
  }

  function list(relations) {
    const order = { holds: 0, ended: 1, deleted: 2 };
    const sorted = [...relations].sort((a, b) => order[status(a)] - order[status(b)]);
    $("relations").replaceChildren(...sorted.map((r) => {
      const s = status(r);
      const li = el("li", { class: `card relation ${s}`, "data-id": r.id },
        el("div", { class: "text", "data-testid": "relation-text" }, sentence(r)),
        el("div", { class: "actions" }, ...actions(r),
          el("button", { "data-action": "history", onclick: () => select(r.id) }, "History")),
        el("div", { class: "meta" },
          el("span", { class: `chip state-${s}` }, s),
          dates(r) ? el("span", {}, dates(r)) : null,
          r.source_ids.length ? el("span", { class: "mono" }, `sources ${r.source_ids.join(", ")}`) : null));
      return li;
    }));
  }

  function markSelected(id) {
    for (const li of document.querySelectorAll("#relations .card")) li.classList.toggle("selected", li.dataset.id === id);
    if (g.cy) { g.cy.elements().unselect(); g.cy.getElementById(id).select(); }
  }

  async function select(id) {
    g.selected = id;
    markSelected(id);
    try {
      const [r, { events }] = await Promise.all([api("GET", `${graphPath()}/relations/${id}`),
        api("GET", `${graphPath()}/relations/${id}/history`)]);
      const known = g.relations.get(id);
      const label = known ? sentence(known) : phrase(r.relation);
      $("history-id").textContent = id;
      $("history-relation").replaceChildren(
        el("div", { class: "rel-title", "data-testid": "panel-relation" }, label),
        el("div", { class: "meta small muted" }, `${status(r)}${dates(r) ? ` · ${dates(r)}` : ""}`),
        el("div", { class: "actions" }, ...actions(r)));
      $("history-relation").classList.remove("hidden");
      $("timeline").replaceChildren(...events.slice().reverse().map((e) => el("li", { class: `ev-${e.event}` },
        el("div", {}, el("span", { class: "ev" }, e.event), el("span", { class: "when" }, fmt(e.created_at))),
        dates(e.snapshot) ? el("div", { class: "new" }, dates(e.snapshot)) : null,
        el("div", { class: "who" }, `by ${e.actor}${e.reason ? ` — ${e.reason}` : ""}`))));
      $("history-panel").classList.remove("hidden");
    } catch (e) { toast(e.message, true); }
  }

  async function act(kind, id) {
    const path = `${graphPath()}/relations/${id}`;
    try {
      if (kind === "close") await api("POST", `${path}/close`, { reason: "closed in the web page" });
      else if (kind === "delete") await api("DELETE", `${path}?reason=${encodeURIComponent("deleted in the web page")}`);
      else await api("POST", `${path}/restore`, { reason: "restored in the web page" });
      toast({ close: "Closed: kept as an ended relation", delete: "Deleted — tick “deleted” to see it",
        restore: "Restored" }[kind]);
      await load();
      await select(id);
    } catch (e) { toast(e.message, true); }
  }

  $("tab-memories").addEventListener("click", () => showTab("memories"));
  $("tab-graph").addEventListener("click", () => showTab("graph"));
  $("graph-form").addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
  $("graph-clear").addEventListener("click", () => {
    $("graph-query").value = ""; $("graph-asof").value = ""; $("graph-deleted").checked = false; load();
  });
  $("graph-deleted").addEventListener("change", load);
})();
