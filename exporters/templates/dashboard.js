// memscope dashboard: draws the panels described by the JSON model embedded in the page
// (or fetched from the server in live mode). Every traced string reaches the DOM through
// textContent or Vega's own escaping; nothing here assigns HTML.
(function () {
  "use strict";

  const PAGE = 100;
  const state = { model: null, active: null, rendered: new Set(), tables: {}, views: [] };

  function readJson(id) {
    const node = document.getElementById(id);
    return JSON.parse(node ? node.textContent : "null");
  }

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    }
    for (const child of children || []) {
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  function bytes(v) {
    let n = Math.abs(v), u = 0;
    while (n >= 1024 && u < UNITS.length - 1) { n /= 1024; u++; }
    const sign = v < 0 ? "-" : "";
    if (u === 0) return sign + Math.trunc(n) + " B";
    return sign + (n < 100 ? n.toFixed(1) : n.toFixed(0)) + " " + UNITS[u];
  }
  function duration(ns) {
    if (ns < 1e3) return ns.toFixed(0) + " ns";
    if (ns < 1e6) return (ns / 1e3).toFixed(1) + " µs";
    if (ns < 1e9) return (ns / 1e6).toFixed(1) + " ms";
    const s = ns / 1e9;
    if (s < 120) return s.toFixed(2) + " s";
    const m = Math.floor(s / 60);
    return m + " min " + (s - 60 * m).toFixed(0) + " s";
  }
  const FORMAT = {
    bytes: bytes,
    count: (v) => Number.isInteger(v) ? v.toLocaleString("en-US")
      : v.toLocaleString("en-US", { maximumFractionDigits: 2 }),
    percent: (v) => v.toFixed(1) + "%",
    ratio: (v) => v.toLocaleString("en-US", { maximumFractionDigits: 2 }),
    rate: (v) => (v >= 10 ? Math.round(v).toLocaleString("en-US") : v.toFixed(2)) + "/s",
    duration_ns: duration,
    seconds: (v) => "+" + duration(v * 1e9),
    text: (v) => String(v),
  };
  function format(value, type) {
    if (value === null || value === undefined || value === "") return null;
    if (type !== "text" && typeof value !== "number") return String(value);
    return (FORMAT[type] || FORMAT.text)(value);
  }
  const NUMERIC = new Set(["bytes", "count", "percent", "ratio", "rate", "duration_ns", "seconds"]);

  // ---- items -------------------------------------------------------------------------

  function renderCards(item) {
    const box = el("div", { class: "cards" });
    const n = item.cards.length;
    const columns = n <= 5 ? n : Math.ceil(n / 2);
    box.style.gridTemplateColumns = "repeat(" + columns + ", minmax(0, 1fr))";
    for (const c of item.cards) {
      const text = format(c.value, c.unit);
      const tone = c.tone === "bad" || c.tone === "warn" ? " " + c.tone : "";
      const card = el("div", { class: "card" + (text === null ? " unmeasured" : tone) }, [
        el("div", { class: "label", text: c.label }),
        el("div", { class: "value", text: text === null ? "not measured" : text }),
      ]);
      if (text !== null) card.title = c.label + ": " + text;
      if (c.note) card.appendChild(el("div", { class: "note", text: c.note }));
      box.appendChild(card);
    }
    return box;
  }

  function renderChart(item, pending) {
    const box = el("div", { class: "chart", id: "chart-" + item.id });
    const target = el("div");
    box.appendChild(target);
    const done = window.vegaEmbed(target, item.spec, {
      actions: false, renderer: "svg", tooltip: { theme: "light" },
    }).then((result) => {
      state.views.push(result.view);
      if (item.filters) {
        // Clicking a mark filters the linked table by that mark's field (a value, not markup).
        result.view.addEventListener("click", (_event, mark) => {
          const value = mark && mark.datum ? mark.datum[item.filters.field] : null;
          const table = state.tables[item.filters.table];
          if (typeof value === "string" && value && table && table.setFilter) {
            table.setFilter(value);
            document.getElementById("table-" + item.filters.table).scrollIntoView({ block: "nearest" });
          }
        });
        box.appendChild(el("p", { class: "hint", text: item.filters.hint }));
      }
    })
      .catch((err) => {
        box.appendChild(el("p", { class: "error", text: "This chart could not be drawn: " + err }));
        console.error("memscope chart", item.id, err);
      });
    pending.push(done);
    return box;
  }

  function renderNote(item) {
    return el("p", { class: "note" + (item.level === "warn" ? " warn" : ""), text: item.text });
  }

  function renderTable(item) {
    const saved = state.tables[item.id] || {};
    const t = {
      item: item, filter: saved.filter || "", sortKey: saved.sortKey ?? null,
      sortDir: saved.sortDir || -1, shown: PAGE, rows: item.rows, text: null,
    };
    if (t.sortKey === null && item.sort) t.sortKey = item.columns.findIndex((c) => c.key === item.sort);
    state.tables[item.id] = t;
    const input = el("input", { type: "search", placeholder: "filter…", "aria-label": "filter " + item.title });
    input.value = t.filter;
    const count = el("span", { class: "count" });
    const csv = el("button", { class: "csv", type: "button", text: "CSV",
                               title: "download the rows shown (filtered, sorted, raw values) as CSV" });
    const box = el("div", { class: "tablebox", id: "table-" + item.id }, [
      el("div", { class: "bar" }, [el("h3", { text: item.title }), count, input, csv]),
    ]);
    if (!item.rows.length) {
      csv.disabled = true;
      box.appendChild(el("div", { class: "empty", text: "nothing recorded" }));
      count.textContent = "0 rows";
      input.disabled = true;
      return box;
    }
    const headRow = el("tr");
    item.columns.forEach((col, i) => {
      const button = el("button", { type: "button", text: col.label });
      button.addEventListener("click", () => {
        t.sortDir = t.sortKey === i ? -t.sortDir : (NUMERIC.has(col.type) ? -1 : 1);
        t.sortKey = i;
        t.shown = PAGE;
        draw();
      });
      headRow.appendChild(el("th", { class: NUMERIC.has(col.type) ? "num" : "" }, [button]));
    });
    const tbody = el("tbody");
    const more = el("button", { class: "more", type: "button" });
    more.addEventListener("click", () => { t.shown += 4 * PAGE; draw(); });
    box.appendChild(el("div", { class: "scroll" }, [el("table", {}, [el("thead", {}, [headRow]), tbody])]));
    box.appendChild(more);
    t.setFilter = (text) => { input.value = text; t.filter = text; t.shown = PAGE; draw(); };
    let timer = null;
    input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => { t.filter = input.value; t.shown = PAGE; draw(); }, 120);
    });

    function rowText(i) {
      if (!t.text) {
        t.text = item.rows.map((row) => row.map((v, c) => {
          const s = format(v, item.columns[c].type);
          return s === null ? "" : s;
        }).join("\u0001").toLowerCase());
      }
      return t.text[i];
    }

    csv.addEventListener("click", () => download(item, t.order || item.rows.map((_, i) => i)));

    function draw() {
      const needle = t.filter.trim().toLowerCase();
      let order = item.rows.map((_, i) => i);
      if (needle) order = order.filter((i) => rowText(i).includes(needle));
      if (t.sortKey !== null && t.sortKey >= 0) {
        const k = t.sortKey, dir = t.sortDir, numeric = NUMERIC.has(item.columns[k].type);
        order.sort((a, b) => {
          const x = item.rows[a][k], y = item.rows[b][k];
          if (x === null || x === undefined || x === "") return (y === null || y === undefined || y === "") ? a - b : 1;
          if (y === null || y === undefined || y === "") return -1;
          const c = numeric && typeof x === "number" && typeof y === "number" ? x - y
            : String(x).localeCompare(String(y));
          return c === 0 ? a - b : dir * c;
        });
      }
      t.order = order;
      headRow.querySelectorAll("button").forEach((b, i) => {
        if (i === t.sortKey) b.setAttribute("aria-sort", t.sortDir > 0 ? "ascending" : "descending");
        else b.removeAttribute("aria-sort");
      });
      const frag = document.createDocumentFragment();
      for (const i of order.slice(0, t.shown)) {
        const tr = el("tr");
        item.rows[i].forEach((v, c) => {
          const col = item.columns[c];
          const s = format(v, col.type);
          let cls = NUMERIC.has(col.type) ? "num" : "";
          if (s === null) cls += " none";
          if (col.key === "severity" && s) cls += " sev-" + s.toLowerCase().replace(/[^a-z]/g, "");
          tr.appendChild(el("td", { class: cls.trim(), text: s === null ? "—" : s }));
        });
        frag.appendChild(tr);
      }
      tbody.replaceChildren(frag);
      const total = item.rows.length;
      count.textContent = (needle ? order.length.toLocaleString("en-US") + " of " : "")
        + total.toLocaleString("en-US") + (total === 1 ? " row" : " rows");
      const left = order.length - t.shown;
      more.hidden = left <= 0;
      more.textContent = left > 0 ? "show " + Math.min(left, 4 * PAGE) + " more of " + left : "";
    }
    draw();
    return box;
  }

  function csvCell(value) {
    if (value === null || value === undefined) return "";
    let s = String(value);
    if (typeof value === "string" && /^[=+\-@\t\r]/.test(s)) s = "'" + s;  // no spreadsheet formulas
    return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  }

  function download(item, order) {
    const lines = [item.columns.map((c) => csvCell(c.label)).join(",")];
    for (const i of order) lines.push(item.rows[i].map(csvCell).join(","));
    const blob = new Blob([lines.join("\r\n") + "\r\n"], { type: "text/csv;charset=utf-8" });
    const link = el("a", { href: URL.createObjectURL(blob), download: "memscope-" + item.id + ".csv" });
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  }

  // ---- panels ------------------------------------------------------------------------

  function renderPanel(panel, section) {
    const pending = [];
    section.replaceChildren(el("h2", { text: panel.title }));
    if (panel.problem) {
      section.appendChild(el("div", { class: "problem", role: "alert" }, [
        el("b", { text: "Data for this panel is unavailable" }), panel.problem]));
    }
    for (const item of panel.items) {
      if (item.type === "cards") section.appendChild(renderCards(item));
      else if (item.type === "chart") section.appendChild(renderChart(item, pending));
      else if (item.type === "table") section.appendChild(renderTable(item));
      else if (item.type === "note") section.appendChild(renderNote(item));
      else if (item.type === "flame") {
        const box = el("div", { class: "flamebox", id: "flame-" + item.id });
        section.appendChild(box);
        window.MemscopeFlame.mount(box, item.model);
      }
    }
    return Promise.all(pending);
  }

  function show(id) {
    state.active = id;
    let ready = Promise.resolve();
    for (const panel of state.model.panels) {
      const section = document.getElementById("panel-" + panel.id);
      const on = panel.id === id;
      section.classList.toggle("active", on);
      document.getElementById("nav-" + panel.id).classList.toggle("active", on);
      if (on && !state.rendered.has(panel.id)) {
        state.rendered.add(panel.id);
        ready = renderPanel(panel, section).then(() => { section.dataset.ready = "1"; });
      }
    }
    if (history.replaceState) history.replaceState(null, "", "#" + id);
    return ready;
  }

  function renderHeader(model) {
    const info = document.getElementById("run-info");
    const lines = [];
    for (const p of model.meta.processes.slice(0, 2)) lines.push("pid " + p.pid + " · " + p.argv);
    if (model.meta.processes.length > 2) lines.push("+ " + (model.meta.processes.length - 2) + " more processes");
    const when = model.meta.generated_at ? "analysed " + model.meta.generated_at : "";
    lines.push([when, model.meta.log_id ? "log " + model.meta.log_id : ""].filter(Boolean).join(" · "));
    info.replaceChildren(...lines.filter(Boolean).map((l) => el("div", { text: l })));
  }

  function render(model) {
    for (const view of state.views) view.finalize();
    state.views = [];
    state.model = model;
    state.rendered = new Set();
    renderHeader(model);
    const nav = document.getElementById("nav");
    const main = document.getElementById("main");
    nav.replaceChildren();
    main.replaceChildren();
    for (const panel of model.panels) {
      const button = el("button", { type: "button", id: "nav-" + panel.id }, [el("span", { text: panel.title })]);
      if (panel.problem) button.appendChild(el("span", { class: "badge", text: "!", title: panel.problem }));
      button.addEventListener("click", () => { show(panel.id); });
      nav.appendChild(button);
      main.appendChild(el("section", { class: "panel", id: "panel-" + panel.id, "data-panel": panel.id }));
    }
    const wanted = decodeURIComponent(location.hash.slice(1));
    const first = model.panels.some((p) => p.id === (state.active || wanted))
      ? (state.active || wanted) : model.panels[0].id;
    return show(first);
  }

  function setStatus(text, cls) {
    const node = document.getElementById("status");
    node.textContent = text;
    node.className = "status " + (cls || "");
  }

  function live(config) {
    let updates = 0;
    const source = new EventSource(config.api + "/events");
    source.addEventListener("open", () => setStatus("live", "live"));
    source.addEventListener("error", () => setStatus("reconnecting…", "down"));
    source.addEventListener("update", async () => {
      try {
        const response = await fetch(config.api + "/dashboard", { cache: "no-store" });
        if (!response.ok) throw new Error("HTTP " + response.status);
        const model = await response.json();
        await render(model);
        updates += 1;
        document.body.dataset.updates = String(updates);
        setStatus("live · updated " + new Date().toLocaleTimeString(), "live");
      } catch (err) {
        setStatus("update failed: " + err.message, "down");
      }
    });
  }

  function start() {
    const config = readJson("memscope-config") || {};
    const model = readJson("memscope-data");
    setStatus(config.live ? "connecting…" : "static snapshot");
    render(model).then(() => {
      window.memscopeReady = performance.now();
      document.body.dataset.ready = "1";
    });
    if (config.live) live(config);
  }

  start();
})();
