// The run page's live refresh: while the run is queued or running, re-read its state, its
// task instances and its Gantt chart (drawn by the server) and update them in place.
"use strict";

(() => {
  const section = document.getElementById("run");
  if (!section || section.dataset.live !== "true") return;
  const { when, duration, badge } = slipstream;

  function update(data) {
    const state = document.getElementById("run-state");
    slipstream.setState(state, data.state);
    state.textContent = data.state;
    document.getElementById("run-start").replaceChildren(when(data.start_date));
    document.getElementById("run-end").replaceChildren(when(data.end_date));
    for (const ti of data.task_instances) {
      const row = section.querySelector(`#task-instances tr[data-task-id="${CSS.escape(ti.task_id)}"]`);
      if (!row) continue;
      row.querySelector(".ti-state").replaceChildren(badge(ti.state));
      row.querySelector(".ti-try").textContent = String(ti.try_number);
      row.querySelector(".ti-start").replaceChildren(when(ti.start_date));
      row.querySelector(".ti-end").replaceChildren(when(ti.end_date));
      const took = ti.duration ?? (ti.start_date ? ((ti.end_date ? Date.parse(ti.end_date) : Date.now()) - Date.parse(ti.start_date)) / 1000 : null);
      row.querySelector(".ti-duration").textContent = duration(took);
    }
    // the chart is the server's own markup (escaped by its template), not user input
    const chart = new DOMParser().parseFromString(data.gantt, "image/svg+xml").documentElement;
    if (chart && chart.id === "gantt") document.getElementById("gantt").replaceWith(document.importNode(chart, true));
    section.dataset.live = String(data.live);
    document.getElementById("run-live").hidden = !data.live;
  }

  slipstream.poll(async () => update(await slipstream.ui(section.dataset.source)), () => section.dataset.live === "true", {
    immediate: false,
  });
})();
