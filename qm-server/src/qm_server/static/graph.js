// Draws a graph as SVG, top-down, fitted to its container's width: nodes in rows by their
// longest forward distance from the start (a layer); a layer wider than the container wraps
// onto more rows. Edges that skip layers pass through gaps reserved for them; edges closing
// a loop run up the side as dashed lines. Nodes in a layer are ordered to cut crossings.
"use strict";
(function () {
  const H = 40, GAP_X = 18, GAP_Y = 34, PAD = 14, LANE = 14, DUMMY = 10, CHANNEL = 6;
  const MAX_W = 168, MIN_W = 104;

  const el = window.QMDom.svg;

  // Back edges: edges closing a cycle in a depth-first walk from the start node (then
  // from any node the start does not reach).
  function backEdges(view, out) {
    const back = new Set(), state = new Map();
    const roots = [view.start_node_id, ...view.nodes.map((n) => n.id)];
    for (const root of roots) {
      if (state.has(root)) continue;
      const stack = [[root, 0]];
      state.set(root, 1);
      while (stack.length) {
        const top = stack[stack.length - 1];
        const edges = out.get(top[0]) || [];
        if (top[1] >= edges.length) { state.set(top[0], 2); stack.pop(); continue; }
        const edge = edges[top[1]++];
        const s = state.get(edge.target);
        if (s === 1) back.add(edge);
        else if (!s) { state.set(edge.target, 1); stack.push([edge.target, 0]); }
      }
    }
    return back;
  }

  // Longest-path layers over the forward edges.
  function layers(view, out, back) {
    const indeg = new Map(view.nodes.map((n) => [n.id, 0]));
    for (const e of view.edges) if (!back.has(e) && indeg.has(e.target)) indeg.set(e.target, indeg.get(e.target) + 1);
    const layer = new Map(view.nodes.map((n) => [n.id, 0]));
    const queue = view.nodes.filter((n) => indeg.get(n.id) === 0).map((n) => n.id);
    while (queue.length) {
      const id = queue.shift();
      for (const e of out.get(id) || []) {
        if (back.has(e) || !layer.has(e.target)) continue;
        layer.set(e.target, Math.max(layer.get(e.target), layer.get(id) + 1));
        indeg.set(e.target, indeg.get(e.target) - 1);
        if (indeg.get(e.target) === 0) queue.push(e.target);
      }
    }
    return layer;
  }

  // Items per layer (nodes, and a dummy per layer an edge skips), ordered by the mean
  // position of their neighbours, sweeping down and up a few times.
  function order(view, forward, layer) {
    const count = Math.max(0, ...layer.values()) + 1;
    const rows = Array.from({ length: count }, () => []);
    const items = new Map();
    for (const n of view.nodes) {
      const item = { id: n.id, dummy: false, up: [], down: [] };
      items.set(n.id, item);
      rows[layer.get(n.id)].push(item);
    }
    const chains = new Map();
    for (const e of forward) {
      let prev = items.get(e.source);
      const chain = [];
      for (let l = layer.get(e.source) + 1; l < layer.get(e.target); l++) {
        const dummy = { id: `${e.source}>${e.target}#${l}`, dummy: true, up: [prev], down: [] };
        prev.down.push(dummy);
        rows[l].push(dummy);
        chain.push(dummy);
        prev = dummy;
      }
      const target = items.get(e.target);
      prev.down.push(target);
      target.up.push(prev);
      chains.set(e, chain);
    }
    const index = () => rows.forEach((row) => row.forEach((item, i) => { item.pos = i; }));
    index();
    const mean = (list, fallback) => (list.length ? list.reduce((s, x) => s + x.pos, 0) / list.length : fallback);
    for (let sweep = 0; sweep < 4; sweep++) {
      const down = sweep % 2 === 0;
      for (let k = 1; k < count; k++) {
        const row = rows[down ? k : count - 1 - k];
        const key = new Map(row.map((item) => [item, mean(down ? item.up : item.down, item.pos)]));
        row.sort((a, b) => key.get(a) - key.get(b) || a.pos - b.pos);
        row.forEach((item, i) => { item.pos = i; });
      }
    }
    return { rows, items, chains };
  }

  function layout(view, width) {
    const out = new Map();
    for (const e of view.edges) {
      if (!out.has(e.source)) out.set(e.source, []);
      out.get(e.source).push(e);
    }
    const back = backEdges(view, out);
    const known = new Set(view.nodes.map((n) => n.id));
    const forward = view.edges.filter((e) => !back.has(e) && known.has(e.source) && known.has(e.target));
    const layer = layers(view, out, back);
    const { rows, items, chains } = order(view, forward, layer);
    // Loops run up a lane on the left or the right: room for every one on each side.
    const lanes = back.size ? back.size * LANE + LANE : 0;
    const usable = Math.max(MIN_W + 2 * PAD, width) - 2 * PAD - 2 * lanes;
    // The node width: as wide as lets every layer fit on one row, within bounds.
    const fits = rows.map((row) => {
      const nodes = row.filter((i) => !i.dummy).length;
      const rest = usable - (row.length - nodes) * DUMMY - (row.length - 1) * GAP_X;
      return nodes ? Math.floor(rest / nodes) : MAX_W;
    });
    const w = Math.max(MIN_W, Math.min(MAX_W, ...fits));
    const span = (item) => (item.dummy ? DUMMY : w);
    let y = PAD;
    for (const row of rows) {
      const total = row.reduce((s, item, i) => s + span(item) + (i ? GAP_X : 0), 0);
      if (total <= usable) {
        let x = PAD + lanes + (usable - total) / 2;
        for (const item of row) {
          Object.assign(item, { x, y, w: span(item), lines: 1, line: 0 });
          x += span(item) + GAP_X;
        }
        y += H + GAP_Y;
        continue;
      }
      // Too wide: wrap the layer onto K lines of a grid. Right of each column runs a
      // channel of 2(K-1) lanes: edges into a lower line come down one, edges out of
      // a higher line go down another, so no edge crosses a node of the layer.
      let lines = 2, cap = 1, slot = 0;
      for (; lines < row.length; lines++) {
        slot = w + GAP_X + 2 * (lines - 1) * CHANNEL;
        cap = Math.max(1, Math.floor((usable + GAP_X) / slot));
        if (Math.ceil(row.length / cap) <= lines) break;
      }
      lines = Math.ceil(row.length / cap);
      const x0 = PAD + lanes + (usable - (cap * slot - GAP_X - 2 * (lines - 1) * CHANNEL)) / 2;
      const top = y, bottom = y + lines * (H + GAP_Y) - GAP_Y;
      row.forEach((item, i) => {
        const line = Math.floor(i / cap), column = i % cap, left = x0 + column * slot;
        const x = item.dummy ? left + (w - DUMMY) / 2 : left;
        Object.assign(item, { x, y: y + line * (H + GAP_Y), w: span(item), lines, line, top, bottom,
          channel: left + w + GAP_X / 2 });
      });
      y = bottom + GAP_Y;
    }
    const height = y - GAP_Y + PAD + 6;
    return { items, chains, back, w, height, left: PAD + lanes, right: PAD + lanes + usable };
  }

  // Where an edge leaves an item (a node or a dummy) and where it arrives, as points:
  // through a lane of the layer's channel when the layer is wrapped.
  const centre = (item) => item.x + item.w / 2;
  function exit(item) {
    const start = { x: centre(item), y: item.y + H };
    if (item.line === item.lines - 1) return [start];
    const x = item.channel + (item.lines - 1 + item.line) * CHANNEL;
    return [start, { x, y: item.y + H + GAP_Y * 0.45 }, { x, y: item.bottom + 3 }];
  }
  function entry(item) {
    const end = { x: centre(item), y: item.y };
    if (item.line === 0) return [end];
    const x = item.channel + (item.line - 1) * CHANNEL;
    return [{ x, y: item.top - 3 }, { x, y: item.y - GAP_Y * 0.45 }, end];
  }

  function edgePath(points) {
    let d = `M ${points[0].x} ${points[0].y}`;
    for (let i = 1; i < points.length; i++) {
      const p = points[i - 1], q = points[i];
      if (p.x === q.x) { d += ` L ${q.x} ${q.y}`; continue; }
      const my = (p.y + q.y) / 2;
      d += ` C ${p.x} ${my}, ${q.x} ${my}, ${q.x} ${q.y}`;
    }
    return d;
  }

  function draw(container, view, onClick) {
    const groups = new Map();
    let selected = null;
    const states = new Map();

    let drawnFor = -1; // the container width the drawing was laid out for
    function render() {
      drawnFor = container.clientWidth;
      const width = Math.max(320, drawnFor - 2);
      const { items, chains, back, w, height, left, right } = layout(view, width);
      const svg = el("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
        "aria-label": `graph ${view.title || view.name || ""}` });
      const defs = el("defs", {}, svg);
      const marker = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5,
        markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, defs);
      el("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow" }, marker);
      const labels = [];
      for (const [e, chain] of chains) {
        const a = items.get(e.source), b = items.get(e.target);
        const points = [...exit(a), ...chain.flatMap((d) => [...entry(d), ...exit(d)]), ...entry(b)];
        el("path", { d: edgePath(points), class: "edge", "marker-end": "url(#arrow)" }, svg);
        if (e.label) {
          // Near the source, where the branches leave a decision.
          const p = points[0], q = points[1];
          labels.push({ x: p.x + (q.x - p.x) * 0.45, y: p.y + (q.y - p.y) * 0.45 + 3, text: e.label });
        }
      }
      // A loop leaves its source on the side nearer the drawing's edge, runs up a lane
      // there, and enters its target from that side.
      const lane = { left: 0, right: 0 };
      for (const e of back) {
        const a = items.get(e.source), b = items.get(e.target);
        if (!a || !b) continue;
        const side = a.x + w / 2 < (left + right) / 2 ? "left" : "right";
        const r = 8, y1 = a.y + H / 2, y2 = b.y + H / 2;
        const x = side === "left" ? left - LANE * ++lane.left : right + LANE * ++lane.right;
        const out = side === "left" ? -r : r;
        const ax = side === "left" ? a.x : a.x + w, bx = side === "left" ? b.x : b.x + w;
        const d = `M ${ax} ${y1} L ${x - out} ${y1} Q ${x} ${y1} ${x} ${y1 - r} L ${x} ${y2 + r} ` +
          `Q ${x} ${y2} ${x - out} ${y2} L ${bx} ${y2}`;
        el("path", { d, class: "edge back", "marker-end": "url(#arrow)" }, svg);
        if (e.label) labels.push({ x: x + (side === "left" ? 4 : -4), y: (y1 + y2) / 2, text: e.label, anchor: side === "left" ? "start" : "end" });
      }
      for (const l of labels) {
        const t = el("text", { x: l.x, y: l.y, class: "edge-label", "text-anchor": l.anchor || "middle" }, svg);
        t.textContent = l.text;
      }
      groups.clear();
      const chars = Math.max(8, Math.floor((w - 14) / 6.6));
      for (const n of view.nodes) {
        const p = items.get(n.id);
        const g = el("g", { class: "node", "data-node-id": n.id, "data-node-name": n.name,
          transform: `translate(${p.x} ${p.y})` }, svg);
        el("rect", { width: w, height: H }, g);
        const title = n.name.length > chars ? n.name.slice(0, chars - 1) + "…" : n.name;
        el("text", { x: 8, y: 16 }, g).textContent = title;
        el("text", { x: 8, y: 31, class: "type" }, g).textContent = n.type;
        el("title", {}, g).textContent = `${n.name} (${n.type})`;
        g.addEventListener("click", () => onClick(n.id));
        groups.set(n.id, g);
        paint(n.id);
      }
      container.replaceChildren(svg);
    }

    function paint(id) {
      const g = groups.get(id);
      if (!g) return;
      const state = states.get(id) || "pending";
      g.setAttribute("class", `node state-${state}${selected === id ? " selected" : ""}`);
      g.dataset.state = state;
    }

    render();
    // Lay out again when the width changes (a window resize, a scroll bar appearing).
    const observer = new ResizeObserver(() => { if (container.clientWidth !== drawnFor) render(); });
    observer.observe(container);
    return {
      setState(id, state) { states.set(id, state); paint(id); },
      select(id) { const old = selected; selected = id; paint(old); paint(id); },
      close() { observer.disconnect(); },
    };
  }

  window.QMGraph = { draw, layout };
})();
