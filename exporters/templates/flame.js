// memscope flame graph: draws the flame model (memscope.analyzers.flame) as an icicle or a
// flame graph, with zoom, search, hover details, an inverted (callers) view and, when the
// model has temporal data, a memory-over-time chart whose brushed window redraws the graph.
// Every traced string reaches the DOM through textContent; nothing here assigns HTML.
(function () {
  "use strict";

  const ROW = 18;
  const MIN_PX = 0.75;  // narrower frames are not drawn (nor their children)
  const MAX_DRAWN = 6000;  // frames drawn at most (the deepest are left out; zoom shows them)
  const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];
  const SVGNS = "http://www.w3.org/2000/svg";

  function bytes(v) {
    let n = Math.abs(v), u = 0;
    while (n >= 1024 && u < UNITS.length - 1) { n /= 1024; u++; }
    if (u === 0) return (v < 0 ? "-" : "") + Math.trunc(n) + " B";
    return (v < 0 ? "-" : "") + (n < 100 ? n.toFixed(1) : n.toFixed(0)) + " " + UNITS[u];
  }
  function pct(part, whole) { return whole > 0 ? (100 * part / whole).toFixed(1) + "%" : "-"; }
  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function svg(tag, attrs) {
    const node = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    return node;
  }
  // A warm colour per function name (stable across views), as flame graphs use.
  function colour(name) {
    let h = 0;
    for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) | 0;
    const r = 205 + (Math.abs(h) % 50), g = 90 + (Math.abs(h >> 8) % 120), b = 40 + (Math.abs(h >> 16) % 40);
    return "rgb(" + r + "," + g + "," + b + ")";
  }

  // A tree ready to draw: parent/frame/children/total/blocks per node, node 0 the root.
  function callTree(model, self, selfBlocks) {
    const n = model.parent.length;
    const total = Float64Array.from(self), blocks = Float64Array.from(selfBlocks);
    for (let i = n - 1; i > 0; i--) {
      total[model.parent[i]] += total[i];
      blocks[model.parent[i]] += blocks[i];
    }
    const children = Array.from({ length: n }, () => []);
    for (let i = 1; i < n; i++) if (total[i] > 0) children[model.parent[i]].push(i);
    return { parent: model.parent, frame: model.frame, total: total, blocks: blocks, children: children };
  }

  // The inverted tree: each site's stack read from the allocating frame outwards.
  function invertedTree(model, self, selfBlocks) {
    const parent = [-1], frame = [-1], total = [0], blocks = [0], children = [[]];
    const index = [new Map()];
    for (let k = 1; k < model.parent.length; k++) {
      if (!(self[k] > 0)) continue;
      let at = 0;
      total[0] += self[k]; blocks[0] += selfBlocks[k];
      for (let node = k; node > 0; node = model.parent[node]) {
        const f = model.frame[node];
        let next = index[at].get(f);
        if (next === undefined) {
          next = parent.length;
          parent.push(at); frame.push(f); total.push(0); blocks.push(0); children.push([]);
          index.push(new Map());
          index[at].set(f, next);
          children[at].push(next);
        }
        total[next] += self[k]; blocks[next] += selfBlocks[k];
        at = next;
      }
    }
    return { parent: parent, frame: frame, total: total, blocks: blocks, children: children };
  }

  function Flame(root, model) {
    this.root = root;
    this.model = model;
    this.n = model.parent.length;
    this.viewName = model.default;
    this.inverted = false;
    this.flame = false;  // false: icicle (roots on top); true: flame (roots at the bottom)
    this.zoom = 0;
    this.term = "";
    this.window = null;
    this.build();
    this.setView(model.default);
  }

  Flame.prototype.name = function (tree, node) {
    if (node === 0) return "all";
    const f = this.model.frames[tree.frame[node]];
    return f ? String(f[0]) : "?";
  };
  Flame.prototype.where = function (tree, node) {
    const f = node === 0 ? null : this.model.frames[tree.frame[node]];
    if (!f || !f[1]) return "";
    return f[2] ? f[1] + ":" + f[2] : String(f[1]);
  };

  Flame.prototype.build = function () {
    const m = this.model, root = this.root;
    root.classList.add("msflame");
    const bar = el("div", "msflame-bar");
    this.select = el("select", "msflame-view");
    this.select.setAttribute("aria-label", "snapshot");
    for (const [name, view] of Object.entries(m.views)) {
      const opt = el("option", "", view.label);
      opt.value = name;
      this.select.appendChild(opt);
    }
    if (m.temporal) {
      const opt = el("option", "", "the brushed window");
      opt.value = "window";
      opt.disabled = true;  // chosen by brushing the chart
      this.select.appendChild(opt);
    }
    this.select.addEventListener("change", () => { this.window = null; this.clearBrush(); this.setView(this.select.value); });
    const orient = el("button", "msflame-orient", "flame");
    orient.type = "button";
    orient.title = "toggle icicle (callers on top) / flame (callers at the bottom)";
    orient.addEventListener("click", () => {
      this.flame = !this.flame;
      orient.textContent = this.flame ? "icicle" : "flame";
      this.draw();
    });
    const invert = el("button", "msflame-invert", "inverted");
    invert.type = "button";
    invert.title = "toggle the inverted view: allocating frames at the root, their callers below";
    invert.addEventListener("click", () => {
      this.inverted = !this.inverted;
      invert.classList.toggle("on", this.inverted);
      this.zoom = 0;
      this.refresh();
    });
    const reset = el("button", "msflame-reset", "reset zoom");
    reset.type = "button";
    reset.addEventListener("click", () => { this.zoom = 0; this.draw(); });
    this.search = el("input", "msflame-search");
    this.search.type = "search";
    this.search.placeholder = "search function or file…";
    this.search.setAttribute("aria-label", "search frames");
    this.search.addEventListener("input", () => { this.term = this.search.value.trim().toLowerCase(); this.draw(); });
    this.totalBox = el("span", "msflame-total");
    this.matchBox = el("span", "msflame-match");
    bar.append(this.select, orient, invert, reset, this.search, this.totalBox, this.matchBox);
    root.appendChild(bar);
    if (m.temporal) root.appendChild(this.chart());
    this.details = el("div", "msflame-details", "Hover a frame for details; click it to zoom.");
    root.appendChild(this.details);
    this.canvas = el("div", "msflame-canvas");
    root.appendChild(this.canvas);
    this.tip = el("div", "msflame-tip");
    this.tip.hidden = true;
    root.appendChild(this.tip);
    this.canvas.addEventListener("mousemove", (ev) => this.hover(ev));
    this.canvas.addEventListener("mouseleave", () => { this.tip.hidden = true; });
    this.canvas.addEventListener("click", (ev) => {
      const node = this.nodeAt(ev);
      if (node !== null) { this.zoom = node; this.draw(); }
    });
    if (typeof ResizeObserver === "function") {
      let width = this.canvas.clientWidth;  // drawn at that width already (no second draw)
      new ResizeObserver(() => {
        if (this.canvas.clientWidth !== width) { width = this.canvas.clientWidth; this.draw(); }
      }).observe(this.canvas);
    }
  };

  // The memory-over-time chart with a brush (drag to choose a window).
  Flame.prototype.chart = function () {
    const t = this.model.temporal, W = 1000, H = 120, PAD = 4;
    const box = el("div", "msflame-chart");
    box.appendChild(el("div", "msflame-hint",
      "Drag across the chart to choose a window: the graph then shows the blocks allocated in it and still alive at its end."));
    const s = svg("svg", { viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "none", class: "msflame-brush" });
    const span = t.slots * t.slot_ns / 1e9;
    const xs = t.curve.t, ys = t.curve.max_bytes;
    const ymax = Math.max(1, ...ys);
    let d = "M0," + H;
    for (let i = 0; i < xs.length; i++) {
      d += " L" + (W * xs[i] / span).toFixed(1) + "," + (H - PAD - (H - 2 * PAD) * ys[i] / ymax).toFixed(1);
    }
    d += " L" + W + "," + H + " Z";
    s.appendChild(svg("path", { d: d, class: "msflame-area" }));
    this.brushRect = svg("rect", { x: 0, y: 0, width: 0, height: H, class: "msflame-window" });
    s.appendChild(this.brushRect);
    box.appendChild(s);
    this.wholeRun = "whole run: " + span.toFixed(3) + " s, peak " + bytes(ymax);
    this.windowBox = el("div", "msflame-windowlabel", this.wholeRun);
    box.appendChild(this.windowBox);
    let start = null;
    const at = (ev) => {
      const r = s.getBoundingClientRect();
      return Math.min(1, Math.max(0, (ev.clientX - r.left) / r.width));
    };
    s.addEventListener("mousedown", (ev) => { start = at(ev); ev.preventDefault(); });
    window.addEventListener("mousemove", (ev) => {
      if (start === null) return;
      const x = at(ev);
      this.brushRect.setAttribute("x", W * Math.min(start, x));
      this.brushRect.setAttribute("width", W * Math.abs(x - start));
    });
    window.addEventListener("mouseup", (ev) => {
      if (start === null) return;
      const x = at(ev), lo = Math.min(start, x), hi = Math.max(start, x);
      start = null;
      this.brush(lo * span, hi * span);
    });
    return box;
  };
  Flame.prototype.clearBrush = function () {
    if (this.brushRect) this.brushRect.setAttribute("width", 0);
    if (this.windowBox) this.windowBox.textContent = this.wholeRun;
    delete this.root.dataset.window;
  };

  // Redraw for the window [t0, t1] seconds: blocks allocated in its slots, alive at its end.
  Flame.prototype.brush = function (t0, t1) {
    const t = this.model.temporal, slot = t.slot_ns / 1e9;
    const i = Math.min(t.slots - 1, Math.floor(t0 / slot));
    const j = Math.min(t.slots - 1, Math.max(i, Math.floor(t1 / slot)));
    const self = new Float64Array(this.n), blocks = new Float64Array(this.n);
    const c = t.cells;
    for (let k = 0; k < c.node.length; k++) {
      if (c.a[k] >= i && c.a[k] <= j && c.e[k] > j) { self[c.node[k]] += c.bytes[k]; blocks[c.node[k]] += c.blocks[k]; }
    }
    this.window = { i: i, j: j, self: self, blocks: blocks };
    this.root.dataset.window = i + "-" + j;
    this.windowBox.textContent = "window +" + (i * slot).toFixed(3) + " s … +" + ((j + 1) * slot).toFixed(3) +
      " s: allocated in it and alive at its end";
    this.select.value = "window";
    this.brushRect.setAttribute("x", 1000 * i / t.slots);
    this.brushRect.setAttribute("width", 1000 * (j - i + 1) / t.slots);
    this.zoom = 0;
    this.refresh();
  };

  Flame.prototype.setView = function (name) {
    this.viewName = name;
    this.select.value = name;
    this.zoom = 0;
    this.refresh();
  };

  Flame.prototype.refresh = function () {
    let self, blocks;
    if (this.window) {
      self = this.window.self; blocks = this.window.blocks;
    } else {
      const v = this.model.views[this.viewName];
      self = new Float64Array(this.n); blocks = new Float64Array(this.n);
      for (let k = 0; k < v.node.length; k++) { self[v.node[k]] += v.bytes[k]; blocks[v.node[k]] += v.blocks[k]; }
    }
    this.tree = this.inverted ? invertedTree(this.model, self, blocks) : callTree(this.model, self, blocks);
    this.root.dataset.view = this.window ? "window" : this.viewName;
    this.details.textContent = "Hover a frame for details; click it to zoom.";
    delete this.details.dataset.node;
    this.root.dataset.inverted = this.inverted ? "1" : "0";
    this.totalBox.textContent = "total " + bytes(this.tree.total[0]);
    this.totalBox.dataset.bytes = String(this.tree.total[0]);
    this.draw();
  };

  // Which nodes match the search, and the bytes they cover (nested matches counted once).
  Flame.prototype.matches = function () {
    const tree = this.tree, hit = new Uint8Array(tree.parent.length);
    if (!this.term) return { hit: hit, bytes: 0, count: 0 };
    let covered = 0, count = 0;
    const stack = [[0, false]];
    while (stack.length) {
      const [node, inside] = stack.pop();
      const text = (this.name(tree, node) + " " + this.where(tree, node)).toLowerCase();
      const match = node !== 0 && text.includes(this.term);
      if (match) { hit[node] = 1; count++; if (!inside) covered += tree.total[node]; }
      for (const c of tree.children[node]) stack.push([c, inside || match]);
    }
    return { hit: hit, bytes: covered, count: count };
  };

  Flame.prototype.draw = function () {
    const tree = this.tree, canvas = this.canvas;
    if (!tree) return;
    const width = canvas.clientWidth || 1000;
    const found = this.matches();
    const items = [];
    // The zoomed node's ancestors, full width, above it.
    const path = [];
    for (let node = this.zoom; node >= 0; node = node === 0 ? -1 : tree.parent[node]) path.unshift(node);
    path.forEach((node, depth) => items.push([node, 0, width, depth, node !== this.zoom]));
    const base = path.length - 1, whole = tree.total[this.zoom] || 1;
    let maxDepth = base;
    // Level by level, so that past MAX_DRAWN frames (too many to paint quickly) it is the
    // deepest detail that is left out; zooming in shows it.
    const queue = [[this.zoom, 0, base]];
    for (let head = 0; head < queue.length && items.length < MAX_DRAWN; head++) {
      const [node, x, depth] = queue[head];
      let cx = x;
      const kids = tree.children[node].slice().sort((a, b) => tree.total[b] - tree.total[a]);
      for (const c of kids) {
        const w = width * tree.total[c] / whole;
        if (w >= MIN_PX && items.length < MAX_DRAWN) {
          items.push([c, cx, w, depth + 1, false]);
          maxDepth = Math.max(maxDepth, depth + 1);
          queue.push([c, cx, depth + 1]);
        }
        cx += w;
      }
    }
    const frag = document.createDocumentFragment();
    for (const [node, x, w, depth, ancestor] of items) {
      const d = el("div", "msflame-frame" + (ancestor ? " ancestor" : "") + (found.hit[node] ? " match" : ""));
      const name = this.name(tree, node);
      d.dataset.node = String(node);
      d.style.left = x.toFixed(2) + "px";
      d.style.width = Math.max(0, w - 0.5).toFixed(2) + "px";
      d.style.top = ((this.flame ? maxDepth - depth : depth) * ROW) + "px";
      if (!found.hit[node]) d.style.background = node === 0 ? "#c8c8d8" : colour(name);
      if (w > 30) d.textContent = name;
      frag.appendChild(d);
    }
    canvas.replaceChildren(frag);
    canvas.style.height = ((maxDepth + 1) * ROW) + "px";
    this.root.dataset.zoom = String(this.zoom);
    this.root.dataset.frames = String(items.length);
    this.matchBox.textContent = this.term
      ? found.count + " matching frames: " + bytes(found.bytes) + " (" + pct(found.bytes, tree.total[0]) + ")"
      : "";
    this.matchBox.dataset.bytes = String(found.bytes);
  };

  Flame.prototype.nodeAt = function (ev) {
    const target = ev.target.closest ? ev.target.closest(".msflame-frame") : null;
    return target ? Number(target.dataset.node) : null;
  };

  Flame.prototype.describe = function (node) {
    const tree = this.tree;
    const lines = [this.name(tree, node)];
    const where = this.where(tree, node);
    if (where) lines.push(where);
    lines.push(bytes(tree.total[node]) + " in " + tree.blocks[node].toLocaleString("en-US") + " blocks: " +
      pct(tree.total[node], tree.total[0]) + " of all" +
      (this.zoom ? ", " + pct(tree.total[node], tree.total[this.zoom]) + " of the zoomed frame" : ""));
    return lines;
  };

  Flame.prototype.hover = function (ev) {
    const node = this.nodeAt(ev);
    if (node === null) { this.tip.hidden = true; return; }
    const lines = this.describe(node);
    this.details.textContent = lines.join("  ·  ");
    this.details.dataset.node = String(node);
    this.tip.replaceChildren(...lines.map((l, i) => el("div", i === 0 ? "fn" : "", l)));
    this.tip.hidden = false;
    const r = this.root.getBoundingClientRect();
    this.tip.style.left = Math.min(ev.clientX - r.left + 12, r.width - 320) + "px";
    this.tip.style.top = (ev.clientY - r.top + 14) + "px";
  };

  window.MemscopeFlame = {
    /** Draw ``model`` into ``container``; returns the controller. */
    mount: function (container, model) {
      if (!model || model.format !== 1) {
        container.appendChild(el("p", "msflame-error", "No flame graph data in this report."));
        return null;
      }
      return new Flame(container, model);
    },
  };
})();
