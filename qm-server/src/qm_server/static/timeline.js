// Time and usage of a flow: its pending timers (a wait's deadline, a sleep's wake time,
// a retry's next attempt), the timer and schedule events of its log (TimerSet,
// TimerFired, DeadlinePassed, ScheduleFired), its usage (node runs, tokens, cost) and its
// budget keys' usage across flows.
// Times are in UTC, as `qm flows show` gives them.
"use strict";
(function () {
  const { utc } = window.QMDom;

  //: What each kind of pending timer does when due (pending_timers.TIMER_VERBS).
  const VERBS = { sleep: "sleeps until", retry: "retries at", deadline: "times out at" };

  //: The events shown, each as one line.
  const LINES = {
    TimerSet: (e) => `${e.node_name} sleeps until ${utc(e.wake_at)}`,
    TimerFired: (e) => `${e.node_name} woke at ${utc(e.ts)} (${e.late.toFixed(1)} s late)`,
    DeadlinePassed: (e) => `${e.node_name}'s deadline ${utc(e.deadline)} passed: answered "${e.answer}"`,
    ScheduleFired: (e) => `started by schedule ${e.schedule} for its tick ${utc(e.tick)}` +
      (e.missed ? ` (stands for ${e.missed} missed)` : ""),
  };

  function lines(list, texts, cls) {
    list.replaceChildren();
    for (const text of texts) {
      const li = document.createElement("li");
      li.className = cls;
      li.textContent = text;
      list.appendChild(li);
    }
  }

  function usageText(u) {
    if (!u) return "";
    const cost = u.currency ? `, cost ${Number(u.cost.toPrecision(6))} ${u.currency}` : "";
    return `Usage: ${u.node_runs} node run${u.node_runs === 1 ? "" : "s"}, ${u.tokens} tokens ` +
      `(${u.input_tokens} in, ${u.output_tokens} out)${cost}`;
  }

  // A budget key's totals across flows and its budget (the flow JSON's key_usage).
  function keyUsageText(key, k) {
    const budget = [];
    if (k.max_node_runs != null) budget.push(`${k.max_node_runs} node runs`);
    if (k.max_tokens != null) budget.push(`${k.max_tokens} tokens`);
    if (k.max_cost != null) budget.push(`cost ${k.max_cost} ${k.currency}`);
    return `Key ${key} (all flows): ${k.node_runs} node run${k.node_runs === 1 ? "" : "s"}, ` +
      `${k.tokens} tokens, cost ${Number(k.cost.toPrecision(6))} ${k.currency}; ` +
      `budget ${budget.join(", ")} (${k.on_exceeded})`;
  }

  // view: the flow JSON; events: the logged events of the kinds in LINES, in order.
  function render(view, events) {
    lines(document.querySelector("#flow-timers"),
      view.timers.map((t) => `${t.node} ${VERBS[t.kind] || t.kind} ${utc(t.wakes_at)}`), "timer");
    lines(document.querySelector("#flow-timeline"), events.map((e) => LINES[e.type](e)), "time-event");
    document.querySelector("#flow-usage").textContent = usageText(view.usage);
    lines(document.querySelector("#flow-key-usage"),
      Object.entries(view.key_usage || {}).map(([key, k]) => keyUsageText(key, k)), "key-usage");
  }

  window.QMTimeline = { render, types: Object.keys(LINES) };
})();
