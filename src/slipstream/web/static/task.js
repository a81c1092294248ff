// The task instance page, live: the state badge and the "why is it not running?" box follow
// the task while it may still change, and the log of a running try is tailed through the
// REST API (each answer says where the next read starts and whether the try still runs).
"use strict";

(() => {
  const section = document.getElementById("task-instance");
  if (!section) return;
  const stateEl = document.getElementById("ti-state");
  const ACTIVE = new Set(["none", "scheduled", "queued", "running", "restarting", "up_for_retry"]);
  const base = `/dags/${encodeURIComponent(section.dataset.dagId)}/dagRuns/${encodeURIComponent(section.dataset.runId)}` +
    `/taskInstances/${encodeURIComponent(section.dataset.taskId)}`;

  const isActive = () => ACTIVE.has(stateEl.dataset.state);

  // The parts of the page a state change alters, re-read from the server's own rendering
  // of this page (no reload: the log being tailed stays).
  const SECTIONS = ["ti-details", "template-panel", "xcoms-section", "tries-section"];
  async function refreshSections() {
    const response = await fetch(window.location.href, { credentials: "same-origin" });
    if (!response.ok) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const id of SECTIONS) {
      const now = document.getElementById(id);
      const next = fresh.getElementById(id);
      if (now && next) now.replaceWith(document.importNode(next, true));
    }
  }

  async function updateTask(data) {
    if (String(data.try_number) !== section.dataset.try) {
      window.location.reload(); // a new try began: its log and the try list are the server's
      return;
    }
    const changed = data.state !== stateEl.dataset.state;
    slipstream.setState(stateEl, data.state);
    stateEl.textContent = data.state;
    const box = document.getElementById("waiting");
    const list = document.getElementById("waiting-reasons");
    list.replaceChildren(...data.waiting.map((reason) => slipstream.el("li", {}, [reason])));
    box.hidden = data.waiting.length === 0;
    if (changed) await refreshSections();
  }

  slipstream.poll(async () => updateTask(await slipstream.ui(section.dataset.source)), isActive, { immediate: false });

  const log = document.getElementById("log");
  if (!log || log.dataset.live !== "true") return;
  const follow = () => log.scrollTop + log.clientHeight >= log.scrollHeight - 24;
  async function tail() {
    const data = await slipstream.api(`${base}/logs/${log.dataset.try}?offset=${log.dataset.offset}`);
    if (data.content) {
      const atEnd = follow();
      log.append(document.createTextNode(data.content));
      if (atEnd) log.scrollTop = log.scrollHeight;
    }
    log.dataset.offset = String(data.next_offset);
    log.dataset.live = String(Boolean(data.live || data.more));
    document.getElementById("log-live").hidden = !data.live;
  }
  slipstream.poll(tail, () => log.dataset.live === "true", { immediate: false });
})();
