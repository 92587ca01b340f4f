// The operator's status page: one authenticated Server-Sent Events stream read with fetch (so
// the key travels in a header, never in a URL), an inline SVG chart, no framework.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const HOUR = 3600 * 1000;
  let key = null;
  let status = null;
  let history = [];
  let events = [];
  let receivedAt = 0;
  let aborter = null;

  function takeKey() {
    const m = /(?:^#|&)key=([^&]+)/.exec(location.hash);
    if (m) {
      sessionStorage.setItem("crowdcore-admin-key", decodeURIComponent(m[1]));
      history_replace();
    }
    return sessionStorage.getItem("crowdcore-admin-key");
  }
  function history_replace() {
    window.history.replaceState(null, "", location.pathname + location.search);
  }

  function fmt(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    const r = String(s % 60).padStart(2, "0");
    return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${r}` : `${m}:${r}`;
  }
  function money(m) {
    if (!m) return "—";
    const v = (m.minor / 100).toFixed(2);
    return m.currency === "USD" ? `$${v}` : `${v} ${m.currency}`;
  }
  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text != null) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }
  function setLink(text, cls) { $("link").textContent = text; $("link").className = "link-state " + (cls || ""); }
  function elapsed() { return performance.now() - receivedAt; }

  function showLogin(error) {
    $("cockpit").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = error || "";
    document.body.dataset.ready = "login";
  }

  // ----- rendering ---------------------------------------------------------------------------
  function renderStatus() {
    if (!status) return;
    const s = status;
    $("phase").textContent = s.phase;
    $("phase").className = "phase " + s.phase;
    $("session").textContent = s.session;
    $("n-active").textContent = s.active.length;
    $("n-waiting").textContent = s.waiting.length;
    $("t-active").textContent = `target ${s.targets.min_active}–${s.targets.max_active}`;
    $("t-waiting").textContent = `target ${s.targets.min_waiting}–${s.targets.max_waiting}`;
    $("n-open").textContent = s.open_slots;
    $("n-hiring").textContent = s.hiring > 0 ? `${s.hiring} being posted` : (s.hiring_closed ? "hiring closed" : "");
    const left = Object.values(s.departed).reduce((a, b) => a + b, 0);
    $("n-left").textContent = left;
    $("left-by").textContent = Object.entries(s.departed).map(([k, v]) => `${v} ${k.replace("_", " ")}`).join(" · ");
    $("spent").textContent = money(s.spent);
    if (s.budget) {
      $("budget-text").textContent = `committed ${money(s.committed)} of ${money(s.budget)}`;
      const pct = (m) => Math.min(100, s.budget.minor > 0 ? (100 * m.minor) / s.budget.minor : 0);
      $("meter-committed").style.width = pct(s.committed) + "%";
      $("meter-spent").style.width = pct(s.spent) + "%";
    } else {
      $("budget-text").textContent = `committed ${money(s.committed)} · no budget cap`;
      $("meter-committed").style.width = "0%";
      $("meter-spent").style.width = "0%";
    }
    $("c-active").textContent = `${s.active.length} / ${s.targets.max_active}`;
    $("c-waiting").textContent = `${s.waiting.length} / ${s.targets.max_waiting}`;
    for (const [id, v] of [["t-min-active", s.targets.min_active], ["t-max-active", s.targets.max_active],
      ["t-min-waiting", s.targets.min_waiting], ["t-max-waiting", s.targets.max_waiting]]) {
      if (document.activeElement !== $(id)) $(id).value = v;
    }
    renderQueues();
    document.body.dataset.ready = "yes";
  }

  function renderQueues() {
    if (!status) return;
    const dt = elapsed();
    const rows = (list, body, empty, active) => {
      const tb = $(body);
      tb.replaceChildren();
      list.forEach((e, i) => {
        const tr = document.createElement("tr");
        if (!active) tr.appendChild(el("td", String(i + 1), "mono"));
        tr.appendChild(el("td", e.worker, "mono"));
        tr.appendChild(el("td", e.assignment, "mono muted"));
        tr.appendChild(el("td", fmt(e.waited_ms + (active ? 0 : dt))));
        if (active) tr.appendChild(el("td", fmt(e.active_ms + dt)));
        const silent = e.silent_ms + dt;
        tr.appendChild(el("td", fmt(silent) + " ago", silent > 15000 ? "warn" : "muted"));
        tb.appendChild(tr);
      });
      $(empty).hidden = list.length > 0;
    };
    rows(status.active, "active-rows", "active-empty", true);
    rows(status.waiting, "waiting-rows", "waiting-empty", false);
  }

  function renderChart() {
    const svg = $("chart");
    const W = 800, H = 220, L = 36, R = 8, T = 10, B = 24;
    const now = status ? status.now + elapsed() : Date.now();
    const from = now - HOUR;
    const pts = history.filter((p) => p.t >= from);
    const cap = status ? status.targets.max_active + status.targets.max_waiting : 1;
    const top = Math.max(1, cap, ...pts.map((p) => Math.max(p.waiting, p.active)));
    const x = (t) => L + ((t - from) / HOUR) * (W - L - R);
    const y = (v) => T + (1 - v / top) * (H - T - B);
    const ns = "http://www.w3.org/2000/svg";
    const node = (tag, attrs, text) => {
      const n = document.createElementNS(ns, tag);
      for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
      if (text != null) n.textContent = text;
      return n;
    };
    svg.replaceChildren();
    const step = top <= 5 ? 1 : Math.ceil(top / 5);
    for (let v = 0; v <= top; v += step) {
      svg.appendChild(node("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }));
      svg.appendChild(node("text", { x: L - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" }, String(v)));
    }
    for (let m = 0; m <= 60; m += 10) {
      const t = from + m * 60000;
      svg.appendChild(node("text", { x: x(t), y: H - 6, class: "axis", "text-anchor": m === 60 ? "end" : "middle" },
        m === 60 ? "now" : `-${60 - m}m`));
    }
    for (const [field, cls] of [["waiting", "line waiting"], ["active", "line active"]]) {
      if (pts.length === 0) continue;
      // A step line: a queue holds its size until the next point.
      let d = "";
      pts.forEach((p, i) => {
        d += i === 0 ? `M${x(p.t)},${y(p[field])}` : `H${x(p.t)}V${y(p[field])}`;
      });
      const last = status ? status[field].length : pts[pts.length - 1][field];
      d += `H${x(now)}V${y(last)}`;
      svg.appendChild(node("path", { d, class: cls }));
    }
  }

  function describe(e) {
    const ev = e.event;
    if (ev.event === "effect") {
      const who = ev.worker ? `${ev.worker}` : "";
      switch (ev.type) {
        case "hire": return ["hire", `hiring ${ev.count} worker${ev.count === 1 ? "" : "s"}`];
        case "promote": return ["promote", `${who} promoted to active`];
        case "release": return ["release", `${who} released (${ev.reason.replace("_", " ")})`];
        case "turn_away": return ["away", `${who} turned away (${ev.reason.replace("_", " ")})`];
        case "timed_out": return ["away", `${who} timed out`];
        case "pay": return ["pay", `pay ${who} ${money({ minor: ev.amount_cents !== undefined ? ev.amount_cents : ev.minor, currency: ev.currency || "USD" })} · ${ev.kind.replace("_", " ")}`];
        case "expire_hits": return ["expire", `expire ${ev.hits.length} HIT${ev.hits.length === 1 ? "" : "s"}`];
        case "notify": return ["notify", ev.notice.replace(/_/g, " ")];
        default: return ["other", ev.type];
      }
    }
    if (ev.event === "rejected") return ["refused", `refused ${ev.input.type}: ${ev.reason}`];
    if (ev.event === "effect_failed") return ["failed", `failed ${ev.effect.type}: ${ev.error}`];
    return ["other", ev.event];
  }

  function renderEvents() {
    const ol = $("events");
    ol.replaceChildren();
    for (const e of events.slice(-60).reverse()) {
      const [cls, text] = describe(e);
      const li = el("li", null, "ev " + cls);
      li.appendChild(el("time", new Date(e.at).toLocaleTimeString()));
      li.appendChild(el("span", text));
      ol.appendChild(li);
    }
  }

  // Every amount owed and not yet paid (pending at the platform, or failed), with what to do.
  function renderOwed(owed) {
    const rows = $("owed-rows");
    rows.textContent = "";
    for (const o of owed || []) {
      const tr = el("tr");
      const cents = o.amount_cents || 0;
      const amount = o.currency === "USD" ? `$${(cents / 100).toFixed(2)}` : `${cents} ${o.currency}`;
      for (const text of [o.worker, o.assignment || "—", o.kind, amount, o.state, o.manual]) tr.appendChild(el("td", text));
      rows.appendChild(tr);
    }
    $("c-owed").textContent = owed && owed.length ? String(owed.length) : "";
    $("owed").hidden = !(owed && owed.length);
  }

  async function refreshOwed() {
    if (!key || $("cockpit").hidden) return;
    try {
      const r = await fetch("api/owed", { headers: { authorization: "Bearer " + key } });
      if (r.ok) renderOwed(await r.json());
    } catch (_) { /* next round */ }
  }

  // ----- the stream --------------------------------------------------------------------------
  function onMessage(type, data) {
    const v = JSON.parse(data);
    if (type === "page") {
      status = v.status; history = v.history; events = v.events; receivedAt = performance.now();
      $("login").hidden = true; $("cockpit").hidden = false;
      renderStatus(); renderChart(); renderEvents(); renderOwed(v.owed);
    } else if (type === "status") {
      status = v; receivedAt = performance.now(); renderStatus(); renderChart();
    } else if (type === "point") {
      history.push(v);
      const from = v.t - HOUR;
      while (history.length && history[0].t < from) history.shift();
      renderChart();
    } else if (type === "engine") {
      events.push(v);
      if (events.length > 500) events.shift();
      renderEvents();
    }
  }

  async function connect() {
    if (aborter) aborter.abort();
    aborter = new AbortController();
    setLink("connecting…", "warn");
    let r;
    try {
      r = await fetch("api/status/stream", {
        headers: { authorization: "Bearer " + key, accept: "text/event-stream" },
        signal: aborter.signal,
      });
    } catch (_) {
      setLink("offline — retrying", "warn");
      setTimeout(connect, 2000);
      return;
    }
    if (r.status === 401) {
      sessionStorage.removeItem("crowdcore-admin-key");
      showLogin("That key was refused.");
      setLink("not connected", "");
      return;
    }
    if (!r.ok || !r.body) { setLink(`error ${r.status} — retrying`, "warn"); setTimeout(connect, 3000); return; }
    setLink("live", "ok");
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const frame = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          let type = "message", data = [];
          for (const line of frame.split("\n")) {
            if (line.startsWith("event:")) type = line.slice(6).trim();
            else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
          }
          if (data.length) onMessage(type, data.join("\n"));
        }
      }
    } catch (_) { /* dropped */ }
    setLink("reconnecting…", "warn");
    setTimeout(connect, 2000);
  }

  // ----- operator actions --------------------------------------------------------------------
  async function admin(method, path, body) {
    const r = await fetch(path, {
      method,
      headers: { authorization: "Bearer " + key, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let json = null;
    try { json = await r.json(); } catch (_) { /* empty */ }
    $("op-result").textContent = r.ok ? `${path.replace("api/", "")}: done` : `${json ? json.code + ": " + json.message : r.status}`;
    $("op-result").className = r.ok ? "muted" : "error";
    return r.ok;
  }

  async function board() {
    if (!key || $("cockpit").hidden) return;
    try {
      const r = await fetch("api/leaderboard", { headers: { authorization: "Bearer " + key } });
      if (!r.ok) return;
      const rows = (await r.json()).slice(0, 10);
      const tb = $("board-rows");
      tb.replaceChildren();
      for (const e of rows) {
        const tr = document.createElement("tr");
        tr.appendChild(el("td", String(e.rank)));
        tr.appendChild(el("td", e.worker, "mono"));
        tr.appendChild(el("td", money({ minor: e.paid_cents, currency: status && status.spent ? status.spent.currency : "USD" })));
        tr.appendChild(el("td", String(e.assignments)));
        tb.appendChild(tr);
      }
    } catch (_) { /* next round */ }
  }

  // Reservations and their routing, when the host serves the retainer's routes.
  async function reservations() {
    if (!key || $("cockpit").hidden) return;
    try {
      const r = await fetch("api/reservations", { headers: { authorization: "Bearer " + key } });
      if (!r.ok) { $("reservations").hidden = true; return; }
      const list = await r.json();
      $("reservations").hidden = list.length === 0;
      const tb = $("reservation-rows");
      tb.replaceChildren();
      for (const { reservation: v } of list) {
        const tr = document.createElement("tr");
        tr.appendChild(el("td", v.reservation, "mono"));
        tr.appendChild(el("td", v.template, "mono muted"));
        tr.appendChild(el("td", v.foreign_id, "mono"));
        tr.appendChild(el("td", v.state, "state " + v.state));
        tr.appendChild(el("td", String(v.needed)));
        tr.appendChild(el("td", String(v.working)));
        tr.appendChild(el("td", String(v.submitted)));
        tr.appendChild(el("td", new Date(v.start_at_ms).toLocaleString()));
        tb.appendChild(tr);
      }
    } catch (_) { /* next round */ }
  }

  document.querySelectorAll("button[data-cmd]").forEach((b) => {
    b.addEventListener("click", () => {
      if (b.dataset.confirm && !window.confirm(b.dataset.confirm)) return;
      admin("POST", "api/" + b.dataset.cmd);
    });
  });
  $("migrate-form").addEventListener("submit", (e) => {
    e.preventDefault();
    admin("POST", "api/migrate", { count: Number($("migrate-count").value) });
  });
  $("targets-form").addEventListener("submit", (e) => {
    e.preventDefault();
    admin("PUT", "api/targets", {
      min_active: Number($("t-min-active").value), max_active: Number($("t-max-active").value),
      min_waiting: Number($("t-min-waiting").value), max_waiting: Number($("t-max-waiting").value),
    });
  });
  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    key = $("key").value;
    sessionStorage.setItem("crowdcore-admin-key", key);
    $("key").value = "";
    $("login").hidden = true;
    connect();
  });

  window.addEventListener("hashchange", () => {
    const k = takeKey();
    if (k) { key = k; $("login").hidden = true; connect(); }
  });
  setInterval(() => { renderQueues(); renderChart(); }, 1000);
  setInterval(board, 5000);
  setInterval(refreshOwed, 5000);
  setInterval(reservations, 3000);
  key = takeKey();
  if (key) { connect(); setTimeout(board, 500); setTimeout(reservations, 700); } else showLogin();
})();
