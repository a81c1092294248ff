// The grid's live refresh: while a run is queued or running (and, on the newest runs,
// always, so that a run triggered elsewhere appears), re-read the runs and cell states
// and update the table in place: new runs become new columns, the oldest drop off.
"use strict";

(() => {
  const table = document.getElementById("grid");
  if (!table) return;
  const follow = table.dataset.follow === "true";
  let live = table.dataset.live === "true";
  const { el } = slipstream;
  const SEP = "\u001f";

  function runHeader(run) {
    const title = [run.run_id, run.state, run.run_type, run.logical_date].filter(Boolean).join(" · ");
    return el("th", { class: "run-cell", dataset: { runId: run.run_id, state: run.state } }, [
      el("a", { href: run.url, title }),
    ]);
  }

  function cellFor(run, taskId, cell) {
    if (!cell) return el("td", { class: "no-ti", dataset: { runId: run.run_id } });
    const state = cell.state || "none";
    return el("td", { class: "ti-cell", dataset: { runId: run.run_id, taskId, state } }, [
      el("a", { href: cell.url, title: taskId + " · " + state + (cell.try_number ? " · try " + cell.try_number : "") }),
    ]);
  }

  function update(data) {
    const headRow = table.tHead.rows[0];
    const rows = [...table.tBodies[0].querySelectorAll("tr[data-task-id]")];
    const shownTasks = rows.map((tr) => tr.dataset.taskId).join(SEP);
    if (shownTasks !== data.tasks.join(SEP)) {
      window.location.reload(); // the DAG's tasks changed: the rows need the server
      return;
    }
    const wanted = new Set(data.runs.map((r) => r.run_id));
    // header: update, add, drop, and keep the runs' order
    const headers = new Map([...headRow.querySelectorAll("th.run-cell")].map((th) => [th.dataset.runId, th]));
    for (const [runId, th] of headers) if (!wanted.has(runId)) th.remove();
    for (const run of data.runs) {
      let th = headers.get(run.run_id);
      if (!th) th = runHeader(run);
      else {
        th.dataset.state = run.state;
        th.firstElementChild.title = [run.run_id, run.state, run.run_type, run.logical_date].filter(Boolean).join(" · ");
      }
      headRow.append(th);
    }
    for (const tr of rows) {
      const taskId = tr.dataset.taskId;
      const cells = new Map([...tr.querySelectorAll("td[data-run-id]")].map((td) => [td.dataset.runId, td]));
      for (const [runId, td] of cells) if (!wanted.has(runId)) td.remove();
      for (const run of data.runs) {
        const cell = data.cells[run.run_id + SEP + taskId];
        let td = cells.get(run.run_id);
        const isCell = td && td.classList.contains("ti-cell");
        if (!td || isCell !== Boolean(cell)) td = cellFor(run, taskId, cell);
        else if (cell) {
          const state = cell.state || "none";
          td.dataset.state = state;
          td.firstElementChild.title = taskId + " · " + state + (cell.try_number ? " · try " + cell.try_number : "");
        }
        tr.append(td);
      }
    }
    for (const td of table.querySelectorAll("tr.group-row td:last-child")) td.colSpan = Math.max(1, data.runs.length);
    const count = document.getElementById("grid-count");
    if (count) count.textContent = `${data.runs.length} run${data.runs.length === 1 ? "" : "s"}, oldest on the left`;
    const empty = document.getElementById("no-runs");
    if (empty && data.runs.length) empty.remove();
    live = data.live;
    table.dataset.live = String(live);
    const note = document.getElementById("grid-live");
    if (note) note.hidden = !live;
  }

  slipstream.poll(async () => update(await slipstream.ui(table.dataset.source)), () => follow || live, {
    immediate: false,
  });
})();
