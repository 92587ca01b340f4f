// The retainer's worker page: arrive, then poll `gettask` (which also counts as a heartbeat)
// until the worker is routed to a task; submit. No framework, no build step.
"use strict";
(function () {
  const q = new URLSearchParams(location.search);
  const ids = { assignment: q.get("assignmentId"), hit: q.get("hitId"), worker: q.get("workerId") };
  const $ = (id) => document.getElementById(id);
  const sections = ["preview", "problem", "waiting", "routed", "over"];
  let token = null, poller = null, started = performance.now(), busy = false;

  function show(id, status) {
    for (const s of sections) $(s).hidden = s !== id;
    document.body.dataset.status = status || id;
  }
  function setLink(text, cls) { $("link").textContent = text; $("link").className = "link-state " + (cls || ""); }
  function fmt(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  }
  async function call(path, body) {
    const r = await fetch(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    let json = null;
    try { json = await r.json(); } catch (_) { /* not JSON */ }
    return { ok: r.ok, status: r.status, json };
  }
  function over(title, badge) {
    if (poller) clearInterval(poller);
    poller = null;
    $("over-title").textContent = title;
    $("over-badge").textContent = badge;
    show("over", badge);
    setLink("", "");
  }

  async function poll() {
    try {
      const r = await call("r/gettask", { assignment_id: ids.assignment, token });
      setLink("on call", "ok");
      if (r.ok && r.json.task) {
        if (poller) clearInterval(poller);
        poller = null;
        $("task").textContent = r.json.task.task;
        const payload = r.json.task.payload;
        $("payload").hidden = payload === null || payload === undefined;
        $("payload").textContent = JSON.stringify(payload, null, 2);
        show("routed");
      } else if (!r.ok && r.json && r.json.code === "already_left") {
        over("You are no longer on call.", "left");
      } else if (!r.ok && r.json && r.json.code === "token_expired") {
        // The page token lasts the assignment's duration: arrive again for a new one.
        const again = await call("r/arrive", { assignment_id: ids.assignment, hit_id: ids.hit, worker_id: ids.worker });
        if (again.ok) token = again.json.token;
      }
    } catch (_) {
      setLink("offline — retrying", "warn");
    }
  }

  async function submit() {
    if (busy) return;
    busy = true;
    try {
      const r = await call("r/submit", { assignment_id: ids.assignment, token });
      if (r.ok) over("Submitted — thank you!", "submitted");
      else $("problem-text").textContent = (r.json && r.json.message) || "Please try again.";
    } finally { busy = false; }
  }

  async function start() {
    if (!ids.assignment || ids.assignment === "ASSIGNMENT_ID_NOT_AVAILABLE") { show("preview"); setLink("", ""); return; }
    if (!ids.hit || !ids.worker) { $("problem-text").textContent = "This link is missing its hitId or workerId."; show("problem"); return; }
    const r = await call("r/arrive", { assignment_id: ids.assignment, hit_id: ids.hit, worker_id: ids.worker });
    if (!r.ok) { $("problem-text").textContent = (r.json && r.json.message) || `Refused (${r.status}).`; show("problem"); return; }
    token = r.json.token;
    started = performance.now();
    show("waiting");
    poll();
    poller = setInterval(poll, 2000);
  }

  $("submit-waiting").addEventListener("click", submit);
  $("submit-routed").addEventListener("click", submit);
  setInterval(() => { $("waited").textContent = fmt(performance.now() - started); }, 1000);
  start();
})();
