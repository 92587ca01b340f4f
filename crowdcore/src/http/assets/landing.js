// The worker landing page: arrive, heartbeat, follow the page's state over Server-Sent Events
// (polling when the stream is down), submit or return. No framework, no build step.
//
// The page token never goes into a URL: calls carry it in their JSON body, the polling
// fallback in the X-Page-Token header, and the event stream (EventSource cannot set headers)
// opens with a short-lived ticket from w/ticket instead.
"use strict";
(function () {
  const q = new URLSearchParams(location.search);
  // MTurk's names, or Prolific's (SESSION_ID is the submission, STUDY_ID the HIT,
  // PROLIFIC_PID the participant).
  const ids = {
    assignment: q.get("assignmentId") || q.get("SESSION_ID"),
    hit: q.get("hitId") || q.get("STUDY_ID"),
    worker: q.get("workerId") || q.get("PROLIFIC_PID"),
    submitTo: q.get("turkSubmitTo"),
  };
  const $ = (id) => document.getElementById(id);
  let token = null;
  let state = null;
  let receivedAt = 0; // performance.now() when `state` came
  let heartbeat = null;
  let poller = null;
  let stream = null;
  let reconnecting = null; // the timer that reopens a closed event stream
  let units = 0;
  let busy = false;

  const sections = ["preview", "problem", "waiting", "active", "over"];
  function show(id) {
    for (const s of sections) $(s).hidden = s !== id;
  }
  function setLink(text, cls) {
    const el = $("link");
    el.textContent = text;
    el.className = "link-state " + (cls || "");
  }
  function fmt(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const r = String(s % 60).padStart(2, "0");
    return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${r}` : `${m}:${r}`;
  }
  // Server time now, from the last state's clock plus local time since.
  function serverNow() {
    return state.now + (performance.now() - receivedAt);
  }

  const OVER = {
    job_full: ["Sorry, this job is full", "Every seat is taken. Please return the HIT.", "bad"],
    job_ended: ["The job has ended", "Please return the HIT.", "bad"],
    over_budget: ["Sorry, this job is full", "Please return the HIT.", "bad"],
    already_seated: ["You already have a seat", "You hold this job under another assignment; please return this one.", "bad"],
    released: ["The job has ended", "Thank you! Your work is being submitted for you and will be paid.", "neutral"],
    timed_out: ["You were away too long", "This page stopped responding, so your seat went to someone else.", "bad"],
    submitted: ["Submitted — thank you!", "Your work is in. You may close this page.", "go"],
    returned: ["Returned", "You gave the HIT back. You may close this page.", "neutral"],
    abandoned: ["Time ran out", "The assignment expired on the platform.", "bad"],
  };

  // Sends the platform's own finishing form once (MTurk externalSubmit, posted; or a
  // completion redirect such as Prolific's, a GET the page follows): after a submission,
  // when the operator released this page (the job stopped), and again on a reload or a retry
  // after a restart, so the platform and the engine agree and the worker gets paid. Its
  // address comes from the server, which only ever sends an allow-listed platform origin.
  let posted = false;
  function finish(form) {
    if (posted || !form) return;
    posted = true;
    const f = document.createElement("form");
    f.method = form.method === "get" ? "GET" : "POST";
    f.action = form.action;
    for (const [name, value] of form.fields) {
      const i = document.createElement("input");
      i.type = "hidden"; i.name = name; i.value = value;
      f.appendChild(i);
    }
    document.body.appendChild(f);
    f.submit();
  }

  function render(next) {
    if (!next) return;
    state = next;
    receivedAt = performance.now();
    document.body.dataset.status = state.status;
    const over = OVER[state.status];
    if (state.status === "waiting" || state.status === "arriving") {
      show("waiting");
      document.title = "Waiting… " + document.title.replace(/^(Waiting… |▶ Your turn! )/, "");
    } else if (state.status === "active") {
      show("active");
      document.title = "▶ Your turn! " + document.title.replace(/^(Waiting… |▶ Your turn! )/, "");
    } else if (over) {
      show("over");
      $("over-title").textContent = over[0];
      $("over-text").textContent = over[1];
      $("over-badge").textContent = state.status.replace("_", " ");
      $("over-badge").className = "badge " + over[2];
      stopAll();
    }
    if (state.earned_cents > 0) {
      $("earned").textContent = `Paid so far: $${(state.earned_cents / 100).toFixed(2)}`;
    }
    tick();
    finish(state.form);
  }

  function tick() {
    if (!state || state.arrived_at == null) return;
    const now = serverNow();
    const waitedUntil = state.promoted_at != null ? state.promoted_at : now;
    $("waited").textContent = fmt(waitedUntil - state.arrived_at);
    $("waited-final").textContent = fmt(waitedUntil - state.arrived_at);
    if (state.promoted_at != null) $("active-for").textContent = fmt(now - state.promoted_at);
  }

  function stopAll() {
    if (heartbeat) clearInterval(heartbeat);
    if (poller) clearInterval(poller);
    if (stream) stream.close();
    if (reconnecting) clearTimeout(reconnecting);
    heartbeat = poller = stream = reconnecting = null;
    setLink("", "");
  }

  function problem(text) {
    show("problem");
    document.body.dataset.status = "problem";
    $("problem-text").textContent = text;
    setLink("", "");
  }

  async function call(path, body) {
    const r = await fetch(path, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    let json = null;
    try { json = await r.json(); } catch (_) { /* not JSON */ }
    return { ok: r.ok, status: r.status, json };
  }

  function page() {
    return { assignment_id: ids.assignment, token };
  }

  // The token lasts the assignment's duration; past it, arriving again (as a reload would)
  // gets a new one.
  async function renew(r) {
    if (r.status !== 401 || !r.json || r.json.code !== "token_expired") return false;
    const again = await call("w/arrive", arrival());
    if (!again.ok) return false;
    token = again.json.token;
    return true;
  }

  async function beat() {
    try {
      const r = await call("w/heartbeat", page());
      if (r.ok) render(r.json);
      else if (r.json && r.json.state) render(r.json.state);
      else await renew(r);
    } catch (_) {
      setLink("offline — retrying", "warn");
    }
  }

  // The polling fallback while the event stream is down.
  function startPolling() {
    if (poller) return;
    poller = setInterval(async () => {
      try {
        const qs = new URLSearchParams({ assignment_id: ids.assignment }).toString();
        const r = await fetch("w/state?" + qs, { headers: { "x-page-token": token } });
        if (r.ok) render(await r.json());
      } catch (_) { /* the next round retries */ }
    }, 2000);
  }
  function stopPolling() {
    if (poller) clearInterval(poller);
    poller = null;
  }

  // Opens the event stream with a fresh ticket (single-purpose, short-lived, bound to this
  // page like its token). A stream the server closed for good (its ticket expired before a
  // reconnect) is opened again with a new ticket; meanwhile the page polls.
  async function connect() {
    if (!window.EventSource) { startPolling(); setLink("polling", "warn"); return; }
    let ticket;
    try {
      const r = await call("w/ticket", page());
      if (!r.ok) {
        if (await renew(r)) return connect();
        throw new Error("no ticket");
      }
      ticket = r.json.ticket;
    } catch (_) {
      setLink("reconnecting…", "warn");
      startPolling();
      reopenLater();
      return;
    }
    if (state && OVER[state.status]) return;
    const qs = new URLSearchParams({ assignment_id: ids.assignment, ticket }).toString();
    stream = new EventSource("w/events?" + qs);
    stream.addEventListener("state", (e) => render(JSON.parse(e.data)));
    stream.onopen = () => { stopPolling(); setLink("live", "ok"); };
    stream.onerror = () => {
      if (!stream) return;
      setLink("reconnecting…", "warn");
      startPolling();
      if (stream.readyState === EventSource.CLOSED) {
        stream = null;
        reopenLater();
      }
    };
  }
  function reopenLater() {
    if (reconnecting) return;
    reconnecting = setTimeout(() => { reconnecting = null; if (!stream && token) connect(); }, 3000);
  }

  async function leave(kind) {
    if (busy) return;
    busy = true;
    try {
      const body = page();
      if (kind === "submit") body.contributions = units;
      const r = await call(kind === "submit" ? "w/submit" : "w/return", body);
      const result = r.ok ? r.json : null;
      if (result) render(result.state);
      else if (r.json && r.json.state) render(r.json.state);
      else problem((r.json && r.json.message) || "Something went wrong; please try again.");
    } catch (_) {
      setLink("offline — try again", "warn");
    } finally {
      busy = false;
    }
  }

  function arrival() {
    const body = {
      assignment_id: ids.assignment,
      hit_id: ids.hit,
      worker_id: ids.worker,
    };
    if (ids.submitTo) body.turk_submit_to = ids.submitTo;
    return body;
  }

  async function start() {
    if (!ids.assignment || ids.assignment === "ASSIGNMENT_ID_NOT_AVAILABLE") {
      show("preview");
      document.body.dataset.status = "preview";
      setLink("", "");
      return;
    }
    if (!ids.hit || !ids.worker) {
      problem("This link is missing its hitId or workerId.");
      return;
    }
    let r;
    try {
      r = await call("w/arrive", arrival());
    } catch (_) {
      setLink("offline — retrying", "warn");
      setTimeout(start, 3000);
      return;
    }
    if (!r.ok) {
      problem((r.json && r.json.message) || `The server refused this page (${r.status}).`);
      return;
    }
    token = r.json.token;
    render(r.json.state);
    if (state.status && OVER[state.status]) return;
    heartbeat = setInterval(beat, r.json.heartbeat_every_ms || 5000);
    connect();
  }

  $("unit").addEventListener("click", () => { units += 1; $("units").textContent = String(units); });
  $("submit-active").addEventListener("click", () => leave("submit"));
  $("submit-waiting").addEventListener("click", () => leave("submit"));
  $("return-active").addEventListener("click", () => leave("return"));
  $("return-waiting").addEventListener("click", () => leave("return"));
  setInterval(tick, 1000);
  start();
})();
