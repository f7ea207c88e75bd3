// Small helpers the page's scripts share: SVG elements, and how times and durations read.
"use strict";
(function () {
  const SVG = "http://www.w3.org/2000/svg";

  // An SVG element with attributes, appended to ``parent`` when given.
  function svg(name, attrs, parent) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (parent) parent.appendChild(node);
    return node;
  }

  const seconds = (s) => (s == null ? "" : s < 1 ? `${(s * 1000).toFixed(1)} ms` : `${s.toFixed(2)} s`);
  const when = (ts) => (ts ? new Date(ts * 1000).toLocaleTimeString() : "");
  // A Unix time as "2030-01-01 01:00:00 UTC" (timers, checkpoints: exact and zone-free).
  const utc = (ts) => (ts ? new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC" : "");

  window.QMDom = { svg, seconds, when, utc };
})();
