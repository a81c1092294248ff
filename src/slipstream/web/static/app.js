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
  function poll(fn, keepGoing = () => true) {
    let timer = null;
    const tick = async () => {
      timer = null;
      try { await fn(); } catch (err) { console.warn("refresh failed:", err); }
      if (keepGoing() && !document.hidden) timer = setTimeout(tick, refreshMs());
    };
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && timer === null && keepGoing()) tick();
    });
    tick();
  }

  function setState(el, state) {
    for (const cls of [...el.classList]) if (cls.startsWith("state-")) el.classList.remove(cls);
    el.classList.add("state-" + (state || "none"));
    el.dataset.state = state || "none";
  }

  return { api, poll, setState, csrf };
})();
