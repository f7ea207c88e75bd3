// The form that sets a flow-memory value of a paused, failed or stopped flow (POST
// /edit): the value is read as JSON when it parses, else as text, as `qm flows edit
// --set KEY=VALUE` reads it. Then a retry (history.js) or an answer runs with it.
"use strict";
(function () {
  const EDITABLE = new Set(["paused", "failed", "stopped"]);

  // api(method, path, body): app.js's API call; flowId(): the flow shown;
  // refresh(): read the flow again (its history follows).
  function wire(api, flowId, refresh) {
    const $ = (sel) => document.querySelector(sel);
    $("#edit-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      $("#edit-error").textContent = "";
      $("#edit-done").textContent = "";
      const text = $("#edit-value").value;
      let value;
      try { value = JSON.parse(text); } catch (e) { value = text; }
      try {
        const data = await api("POST", `/api/flows/${flowId()}/edit`, { memory: { [$("#edit-key").value]: value } });
        $("#edit-done").textContent = `set at checkpoint ${data.checkpoint}`;
        refresh();
      } catch (e) { $("#edit-error").textContent = e.message; }
    });
    return {
      show(status) { $("#edit-form").hidden = !EDITABLE.has(status); },
      reset() { for (const sel of ["#edit-error", "#edit-done"]) $(sel).textContent = ""; },
    };
  }

  window.QMEdit = { wire };
})();
