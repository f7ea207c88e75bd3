// Progress of a flow's maps (Map1 nodes): one line per map, from its latest
// MapProgress event ("M: 3 done, 2 running, 1 failed of 10"; done counts the
// failed items too, as the event does).
"use strict";
(function () {
  // events: the flow's MapProgress events, in order.
  function render(events) {
    const latest = new Map(); // node id and visit -> the latest MapProgress
    for (const e of events) latest.set(`${e.node_id}:${e.visit}`, e);
    const list = document.querySelector("#flow-maps");
    list.replaceChildren();
    for (const e of latest.values()) {
      const li = document.createElement("li");
      li.className = "map-progress";
      li.textContent = `${e.node_name}: ${e.done} done, ${e.running} running, ${e.failed} failed of ${e.total}`;
      list.appendChild(li);
    }
  }

  window.QMMaps = { render };
})();
