// Draws a graph as SVG: nodes in columns by their longest forward distance from the
// start node; edges back to an earlier column (loops) are dashed curves.
"use strict";
(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const W = 132, H = 42, GAP_X = 44, GAP_Y = 22, PAD = 16;

  function el(name, attrs, parent) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (parent) parent.appendChild(node);
    return node;
  }

  // Back edges: edges closing a cycle in a depth-first walk from the start node.
  function backEdges(view, out) {
    const back = new Set(), state = new Map();
    const stack = [[view.start_node_id, 0]];
    state.set(view.start_node_id, 1);
    while (stack.length) {
      const top = stack[stack.length - 1];
      const edges = out.get(top[0]) || [];
      if (top[1] >= edges.length) { state.set(top[0], 2); stack.pop(); continue; }
      const edge = edges[top[1]++];
      const s = state.get(edge.target);
      if (s === 1) back.add(edge);
      else if (!s) { state.set(edge.target, 1); stack.push([edge.target, 0]); }
    }
    return back;
  }

  function layout(view) {
    const out = new Map();
    for (const e of view.edges) {
      if (!out.has(e.source)) out.set(e.source, []);
      out.get(e.source).push(e);
    }
    const back = backEdges(view, out);
    const indeg = new Map(view.nodes.map((n) => [n.id, 0]));
    for (const e of view.edges) if (!back.has(e)) indeg.set(e.target, (indeg.get(e.target) || 0) + 1);
    const layer = new Map(view.nodes.map((n) => [n.id, 0]));
    const queue = view.nodes.filter((n) => indeg.get(n.id) === 0).map((n) => n.id);
    while (queue.length) {
      const id = queue.shift();
      for (const e of out.get(id) || []) {
        if (back.has(e)) continue;
        layer.set(e.target, Math.max(layer.get(e.target), layer.get(id) + 1));
        indeg.set(e.target, indeg.get(e.target) - 1);
        if (indeg.get(e.target) === 0) queue.push(e.target);
      }
    }
    const rows = new Map(), pos = new Map();
    for (const n of view.nodes) {
      const l = layer.get(n.id), row = rows.get(l) || 0;
      rows.set(l, row + 1);
      pos.set(n.id, { x: PAD + l * (W + GAP_X), y: PAD + row * (H + GAP_Y) });
    }
    const width = PAD * 2 + (Math.max(0, ...layer.values()) + 1) * (W + GAP_X) - GAP_X;
    const height = PAD * 2 + Math.max(1, ...rows.values()) * (H + GAP_Y) - GAP_Y + 30;
    return { pos, back, width, height };
  }

  function draw(container, view, onClick) {
    const { pos, back, width, height } = layout(view);
    const svg = el("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
    const defs = el("defs", {}, svg);
    const marker = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5,
      markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, defs);
    el("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow" }, marker);
    for (const e of view.edges) {
      const a = pos.get(e.source), b = pos.get(e.target);
      if (!a || !b) continue;
      let d, lx, ly;
      if (back.has(e)) {
        const y = Math.max(a.y, b.y) + H + 18;
        d = `M ${a.x + W / 2} ${a.y + H} C ${a.x + W / 2} ${y}, ${b.x + W / 2} ${y}, ${b.x + W / 2} ${b.y + H}`;
        lx = (a.x + b.x + W) / 2; ly = y - 2;
      } else {
        const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2, mx = (x1 + x2) / 2;
        d = `M ${x1} ${y1} C ${mx} ${y1}, ${mx} ${y2}, ${x2} ${y2}`;
        lx = mx; ly = (y1 + y2) / 2 - 4;
      }
      el("path", { d, class: back.has(e) ? "edge back" : "edge", "marker-end": "url(#arrow)" }, svg);
      if (e.label) el("text", { x: lx, y: ly, class: "edge-label", "text-anchor": "middle" }, svg).textContent = e.label;
    }
    const groups = new Map();
    for (const n of view.nodes) {
      const p = pos.get(n.id);
      const g = el("g", { class: "node state-pending", "data-node-id": n.id, "data-node-name": n.name,
        transform: `translate(${p.x} ${p.y})` }, svg);
      el("rect", { width: W, height: H }, g);
      const title = n.name.length > 18 ? n.name.slice(0, 17) + "…" : n.name;
      el("text", { x: 8, y: 17 }, g).textContent = title;
      el("text", { x: 8, y: 33, class: "type" }, g).textContent = n.type;
      el("title", {}, g).textContent = `${n.name} (${n.type})`;
      g.addEventListener("click", () => onClick(n.id));
      groups.set(n.id, g);
    }
    container.replaceChildren(svg);
    return {
      setState(id, state) {
        const g = groups.get(id);
        if (!g) return;
        const selected = g.classList.contains("selected");
        g.setAttribute("class", `node state-${state}${selected ? " selected" : ""}`);
        g.dataset.state = state;
      },
      select(id) {
        for (const [nid, g] of groups) g.classList.toggle("selected", nid === id);
      },
    };
  }

  window.QMGraph = { draw };
})();
