// slipstream web UI: shared helpers. No framework, no build step.
"use strict";

const slipstream = (() => {
  const csrf = () => document.querySelector('meta[name="csrf-token"]').content;
  const refreshMs = () =>
    parseInt(document.querySelector('meta[name="refresh-interval"]').content, 10) || 2000;

  // fetch() against the REST API with the session cookie and the CSRF token; throws an
  // Error carrying the API's message on a non-2xx answer.
  async function api(path, options = {}) {
    const init = Object.assign({ credentials: "same-origin", headers: {} }, options);
    init.headers = Object.assign({ Accept: "application/json" }, init.headers);
    if (init.body !== undefined && typeof init.body !== "string") {
      init.body = JSON.stringify(init.body);
      init.headers["Content-Type"] = "application/json";
    }
    if (init.method && init.method !== "GET") init.headers["X-CSRFToken"] = csrf();
    const response = await fetch("/api/v1" + path, init);
    const type = response.headers.get("Content-Type") || "";
    const data = type.includes("json") ? await response.json() : await response.text();
    if (!response.ok) throw new Error((data && data.detail) || response.statusText);
    return data;
  }

  // Call fn now and every refresh interval while keepGoing() says so; stops on its own
  // when the page is hidden and picks up when it is shown again.
  // With immediate=false the first call waits one interval (the page is fresh already).
  function poll(fn, keepGoing = () => true, { immediate = true } = {}) {
    let timer = null;
    const tick = async () => {
      timer = null;
      try { await fn(); } catch (err) { console.warn("refresh failed:", err); }
      if (keepGoing() && !document.hidden) timer = setTimeout(tick, refreshMs());
    };
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && timer === null && keepGoing()) tick();
    });
    if (immediate) tick();
    else timer = setTimeout(tick, refreshMs());
  }

  function setState(el, state) {
    for (const cls of [...el.classList]) if (cls.startsWith("state-")) el.classList.remove(cls);
    el.classList.add("state-" + (state || "none"));
    el.dataset.state = state || "none";
  }

  // GET one of the pages' own JSON routes (under /ui/), which the REST API does not offer.
  async function ui(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) {
      const data = await response.json().catch(() => ({}));
      throw new Error(data.detail || response.statusText);
    }
    return response.json();
  }

  // A DOM element with attributes and children (strings become text nodes, never HTML).
  function build(node, attrs, children) {
    for (const [name, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of [].concat(children)) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }
  const el = (tag, attrs = {}, children = []) => build(document.createElement(tag), attrs, children);
  const svg = (tag, attrs = {}, children = []) =>
    build(document.createElementNS("http://www.w3.org/2000/svg", tag), attrs, children);

  // Show a message the way the server's flashes look.
  function flash(message, category = "info") {
    const box = document.getElementById("flashes");
    if (!box) return;
    box.append(el("div", { class: "flash flash-" + category, role: "alert" }, [message]));
  }

  // The data the page passed in a <script type="application/json" id=...> block.
  function pageData(id) {
    const node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  // A time as the server shows it: UTC to the second, the full ISO value as the title.
  function when(iso) {
    if (!iso) return el("span", { class: "muted" }, ["–"]);
    const short = new Date(iso).toISOString().slice(0, 19).replace("T", " ");
    return el("time", { datetime: iso, title: iso }, [short]);
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    if (seconds < 60) return seconds < 10 ? seconds.toFixed(1) + "s" : Math.round(seconds) + "s";
    const total = Math.round(seconds);
    const minutes = Math.floor(total / 60);
    if (minutes < 60) return `${minutes}m ${String(total % 60).padStart(2, "0")}s`;
    return `${Math.floor(minutes / 60)}h ${String(minutes % 60).padStart(2, "0")}m`;
  }

  // A state badge like the server's |state filter.
  function badge(state) {
    const s = state || "none";
    return el("span", { class: "state state-" + s, dataset: { state: s } }, [s.replace(/_/g, " ")]);
  }

  return { when, duration, badge, api, poll, refreshMs, setState, csrf, ui, el, svg, flash, pageData };
})();

// Pause toggles: each is a form that works without JavaScript; with it, the toggle asks
// the REST API and flips in place instead of reloading the page.
document.addEventListener("submit", async (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.classList.contains("pause-form")) return;
  const button = form.querySelector(".pause-toggle");
  if (!button) return;
  event.preventDefault();
  const paused = button.dataset.paused !== "true";
  button.disabled = true;
  try {
    const dag = await slipstream.api("/dags/" + encodeURIComponent(button.dataset.dagId), {
      method: "PATCH",
      body: { is_paused: paused },
    });
    const now = dag && typeof dag.is_paused === "boolean" ? dag.is_paused : paused;
    button.dataset.paused = String(now);
    button.textContent = now ? "Paused" : "Active";
    button.title = now ? "Paused: click to unpause" : "Active: click to pause";
    form.querySelector('input[name="paused"]').value = String(!now);
  } catch (err) {
    slipstream.flash("Could not change the pause state: " + err.message, "error");
  } finally {
    button.disabled = false;
  }
});
