// The DAG list's live dots: while any shown run is queued or running, re-read the recent
// runs of the DAGs on the page and redraw their dots.
"use strict";

(() => {
  const groups = [...document.querySelectorAll(".run-dots[data-dag-id]")];
  if (!groups.length) return;
  const anyActive = () => document.querySelector(".run-dots .run-dot[data-state='queued'], .run-dots .run-dot[data-state='running']") !== null;
  const query = groups.map((g) => "dag_id=" + encodeURIComponent(g.dataset.dagId)).join("&");

  function dot(run) {
    return slipstream.el("a", {
      class: "run-dot state-" + run.state,
      href: run.url,
      title: run.run_id + ": " + run.state,
      dataset: { runId: run.run_id, state: run.state },
    });
  }

  async function refresh() {
    const recent = await slipstream.ui("/ui/dags/recent-runs?" + query);
    for (const group of groups) {
      const runs = recent[group.dataset.dagId] || [];
      group.replaceChildren(...runs.map(dot));
    }
  }

  if (anyActive()) slipstream.poll(refresh, anyActive, { immediate: false });
})();
