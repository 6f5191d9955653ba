// netstat_exporter landing page, continuous capture (netstat -c): charts of the interface
// and TCP numbers since the page opened, the exporter's change log (api/v1/events), and a
// JSON Lines download of what the page has seen. Everything is bounded; host data is only
// ever inserted with textContent. app.js announces each snapshot with a "netstat:snapshot"
// event.
"use strict";

(function () {
  const EVENTS_URL = "api/v1/events";
  const POINTS = 300; // chart window (points per series)
  const LIST_MAX = 500; // events shown
  const CAPTURE_EVENTS_MAX = 2000; // events kept for the download
  const CAPTURE_SNAPSHOTS_MAX = 120; // snapshots kept for the download ...
  const CAPTURE_BYTES_MAX = 16 * 1024 * 1024; // ... and at most this much of them
  const PAGES_PER_REFRESH = 5; // api/v1/events pages fetched per refresh at most
  const body = document.body;
  const $ = (id) => document.getElementById(id);
  const opened = Date.now() / 1000;

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  function clock(unix) {
    const t = new Date(unix * 1000);
    const p = (n) => String(n).padStart(2, "0");
    return p(t.getHours()) + ":" + p(t.getMinutes()) + ":" + p(t.getSeconds());
  }

  function short(v) {
    if (!Number.isFinite(v)) return "–";
    if (v >= 1e9) return (v / 1e9).toFixed(1) + "G";
    if (v >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (v >= 1e4) return (v / 1e3).toFixed(1) + "k";
    return v < 10 && v % 1 ? v.toFixed(1) : String(Math.round(v));
  }

  // ---- charts: hand-drawn SVG, one polyline per series ----------------------------------

  const CHARTS = [
    { id: "packets", unit: "/s", series: ["rx", "tx"] },
    { id: "errors", unit: "/s", series: ["errors", "drops"] },
    { id: "tcp", unit: "", series: ["established", "time_wait", "close_wait", "syn_recv"] },
  ];
  const W = 300;
  const H = 80;
  const charts = {};
  for (const c of CHARTS) {
    const svg = $("chart-" + c.id);
    if (!svg) continue;
    const ns = svg.namespaceURI; // the SVG namespace, as the HTML parser set it
    const state = { def: c, svg, times: [], data: c.series.map(() => []), lines: [], legend: $("legend-" + c.id) };
    const grid = document.createElementNS(ns, "path");
    grid.setAttribute("d", "M0 " + H / 2 + "H" + W + "M0 " + (H - 0.5) + "H" + W);
    grid.setAttribute("class", "grid");
    svg.appendChild(grid);
    c.series.forEach((name, i) => {
      const pl = document.createElementNS(ns, "polyline");
      pl.setAttribute("class", "s" + i);
      pl.setAttribute("vector-effect", "non-scaling-stroke");
      pl.dataset.series = name;
      svg.appendChild(pl);
      state.lines.push(pl);
    });
    charts[c.id] = state;
  }

  function addPoint(id, time, values) {
    const s = charts[id];
    if (!s) return;
    s.times.push(time);
    values.forEach((v, i) => s.data[i].push(Number.isFinite(v) ? v : null));
    if (s.times.length > POINTS) {
      s.times.shift();
      for (const d of s.data) d.shift();
    }
    drawChart(s);
  }

  function drawChart(s) {
    const n = s.times.length;
    let max = 0;
    for (const d of s.data) for (const v of d) if (v !== null && v > max) max = v;
    const top = max > 0 ? max * 1.1 : 1;
    const t0 = s.times[0];
    const span = n > 1 ? s.times[n - 1] - t0 : 1;
    s.data.forEach((d, i) => {
      const pts = [];
      for (let k = 0; k < n; k++) {
        if (d[k] === null) continue;
        const x = n > 1 ? ((s.times[k] - t0) / span) * W : W;
        const y = H - (d[k] / top) * (H - 2) - 1;
        pts.push(x.toFixed(1) + "," + y.toFixed(1));
      }
      s.lines[i].setAttribute("points", pts.join(" "));
    });
    s.svg.dataset.points = String(n);
    if (s.legend) {
      s.legend.textContent = "";
      s.def.series.forEach((name, i) => {
        const last = s.data[i][n - 1];
        const item = el("span", null, "item");
        item.appendChild(el("span", "", "key s" + i));
        item.appendChild(document.createTextNode(name + " " + (last === null || last === undefined ? "–" : short(last) + s.def.unit)));
        s.legend.appendChild(item);
      });
      s.legend.appendChild(el("span", "max " + short(max) + s.def.unit, "muted"));
    }
  }

  let prevSnap = null;

  function chartSnapshot(snap) {
    // Interfaces: sums over devices of the per-second deltas (a counter that went back was
    // reset: that device is left out of this point).
    if (prevSnap && snap.time > prevSnap.time) {
      const dt = snap.time - prevSnap.time;
      const before = new Map();
      for (const i of prevSnap.interfaces) before.set(i.device, i);
      const sum = { rx: 0, tx: 0, errors: 0, drops: 0 };
      const delta = (a, b) => (a >= b ? a - b : 0);
      for (const i of snap.interfaces) {
        const p = before.get(i.device);
        if (!p) continue;
        sum.rx += delta(i.rx_ok, p.rx_ok);
        sum.tx += delta(i.tx_ok, p.tx_ok);
        sum.errors += delta(i.rx_err, p.rx_err) + delta(i.tx_err, p.tx_err);
        sum.drops += delta(i.rx_drp, p.rx_drp) + delta(i.tx_drp, p.tx_drp);
      }
      addPoint("packets", snap.time, [sum.rx / dt, sum.tx / dt]);
      addPoint("errors", snap.time, [sum.errors / dt, sum.drops / dt]);
    }
    const tcp = {};
    for (const s of snap.sockets) if (s.protocol === "tcp") tcp[s.state] = (tcp[s.state] || 0) + s.count;
    addPoint("tcp", snap.time, charts.tcp ? charts.tcp.def.series.map((k) => tcp[k] || 0) : []);
    prevSnap = snap;
  }

  // ---- the capture (download) -----------------------------------------------------------

  const capture = { snapshots: [], bytes: 0, events: [], droppedSnapshots: 0, droppedEvents: 0 };

  function keepSnapshot(snap) {
    const line = JSON.stringify({ type: "snapshot", time: snap.time, snapshot: snap });
    capture.snapshots.push({ time: snap.time, line });
    capture.bytes += line.length;
    while (capture.snapshots.length > CAPTURE_SNAPSHOTS_MAX || (capture.bytes > CAPTURE_BYTES_MAX && capture.snapshots.length > 1)) {
      capture.bytes -= capture.snapshots.shift().line.length;
      capture.droppedSnapshots++;
    }
  }

  function keepEvent(ev) {
    capture.events.push({ time: ev.time, line: JSON.stringify({ type: "event", time: ev.time, event: ev }) });
    if (capture.events.length > CAPTURE_EVENTS_MAX) {
      capture.events.shift();
      capture.droppedEvents++;
    }
  }

  function download() {
    const records = capture.snapshots.concat(capture.events).sort((a, b) => a.time - b.time);
    const header = {
      type: "capture",
      schema: 1,
      version: body.dataset.version || "",
      page_opened: opened,
      saved: Date.now() / 1000,
      snapshots: capture.snapshots.length,
      events: capture.events.length,
      dropped_snapshots: capture.droppedSnapshots,
      dropped_events: capture.droppedEvents,
    };
    const lines = [JSON.stringify(header)].concat(records.map((r) => r.line));
    const blob = new Blob([lines.join("\n") + "\n"], { type: "application/x-ndjson" });
    const url = URL.createObjectURL(blob);
    const a = el("a");
    const stamp = new Date().toISOString().replace(/[:.]/g, "-");
    a.href = url;
    a.download = "netstat-capture-" + stamp + ".jsonl";
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    body.dataset.downloads = String(Number(body.dataset.downloads || 0) + 1);
  }
  const btn = $("download");
  if (btn) btn.addEventListener("click", download);

  // ---- the event log --------------------------------------------------------------------

  let cursor = 0;
  let startTime = null; // the exporter's start: another one means another log
  let refreshes = 0;
  let missed = 0;
  let fetching = false;
  const tbody = $("events-body");

  function proto(e) {
    return (e.protocol || "") + (e.family === "ipv6" ? "6" : "");
  }

  function describe(e) {
    switch (e.kind) {
      case "listener_opened":
      case "listener_closed":
      case "listener_unexpected":
      case "listener_owner_changed":
        return proto(e) + " " + (e.family === "ipv6" ? "[" + e.address + "]" : e.address) + ":" + e.port + (e.service ? " (" + e.service + ")" : "");
      case "outbound_unexpected":
        return e.protocol + " → " + e.remote_network + ":" + e.remote_port + (e.service ? " (" + e.service + ")" : "");
      case "interface_flag_changed":
        return e.device + " " + e.flag + " " + (e.value ? "on" : "off") + " · " + (e.flags || "–");
      case "interface_appeared":
      case "interface_vanished":
        return e.device + " · " + (e.flags || "–") + " · " + (e.operstate || "–");
      case "netns_appeared":
      case "netns_vanished":
        return [e.name, e.container_id && "container " + e.container_id, e.pod_uid && "pod " + e.pod_uid].filter(Boolean).join(" · ") || "–";
      default:
        return "";
    }
  }

  function who(e) {
    if (e.kind === "listener_owner_changed") return (e.previous_process || "–") + " → " + (e.process || "–");
    return e.process || "";
  }

  function addRows(events) {
    if (!tbody) return;
    const empty = tbody.querySelector("tr.empty");
    if (empty && events.length) empty.remove();
    const frag = document.createDocumentFragment();
    // Newest first: the page's events arrive oldest first.
    for (let i = events.length - 1; i >= 0; i--) {
      const e = events[i];
      const tr = el("tr", null, e.severity === "warning" ? "warning" : "");
      const d = tr.dataset;
      d.seq = String(e.seq);
      d.kind = e.kind;
      d.refresh = String(refreshes);
      if (e.port !== undefined) d.port = String(e.port);
      if (e.process !== undefined) d.process = e.process;
      if (e.device !== undefined) d.device = e.device;
      if (e.flag !== undefined) d.flag = e.flag;
      if (e.value !== undefined) d.value = String(e.value);
      const cells = [
        ["time", clock(e.time)],
        ["scrape", String(e.scrape)],
        ["kind", e.kind.replace(/_/g, " ")],
        ["what", describe(e)],
        ["process", who(e)],
        ["user", e.user || ""],
        ["netns", e.netns || "host"],
      ];
      for (const [k, v] of cells) {
        const td = el("td", v);
        td.dataset.col = k;
        if (k === "scrape") td.className = "num";
        tr.appendChild(td);
      }
      frag.appendChild(tr);
    }
    tbody.insertBefore(frag, tbody.firstChild);
    while (tbody.rows.length > LIST_MAX) tbody.deleteRow(tbody.rows.length - 1);
  }

  function note(page) {
    const n = $("events-note");
    if (!n) return;
    const parts = [tbody ? tbody.querySelectorAll("tr:not(.empty)").length + " shown (newest first, at most " + LIST_MAX + ")" : ""];
    if (page) parts.push("exporter keeps " + page.capacity + ", " + page.scrapes + " scrapes compared");
    if (missed) parts.push(missed + " missed (dropped by the exporter before this page saw them)");
    n.textContent = parts.filter(Boolean).join(" · ");
    n.className = "note" + (missed ? " bad" : "");
  }

  async function fetchEvents() {
    if (fetching) return;
    fetching = true;
    try {
      for (let i = 0; i < PAGES_PER_REFRESH; i++) {
        const resp = await fetch(EVENTS_URL + "?since=" + cursor, { cache: "no-store", credentials: "same-origin", headers: { Accept: "application/json" } });
        if (resp.status === 404) {
          const n = $("events-note");
          if (n) n.textContent = "the exporter keeps no change log (--events.capacity=0)";
          return;
        }
        if (!resp.ok) throw new Error("HTTP " + resp.status + " from " + EVENTS_URL);
        const page = await resp.json();
        if (page.truncated && cursor > 0 && page.oldest !== null) missed += page.oldest - cursor - 1;
        for (const e of page.events) keepEvent(e);
        addRows(page.events);
        cursor = page.next;
        note(page);
        body.dataset.eventsSeen = String(cursor);
        if (page.events.length < 1000) break; // 1000: the server's page size, more may follow
      }
    } catch (e) {
      const n = $("events-note");
      if (n) {
        n.textContent = "cannot read the events: " + (e && e.message ? e.message : String(e));
        n.className = "note bad";
      }
    } finally {
      fetching = false;
    }
  }

  document.addEventListener("netstat:snapshot", (ev) => {
    const snap = ev.detail.snapshot;
    refreshes = ev.detail.refreshes;
    const t0 = performance.now();
    if (snap.start_time_seconds !== null && startTime !== null && snap.start_time_seconds !== startTime) {
      cursor = 0; // a restarted exporter: its log starts over
      prevSnap = null;
    }
    startTime = snap.start_time_seconds;
    chartSnapshot(snap);
    keepSnapshot(snap);
    body.dataset.captureMs = (performance.now() - t0).toFixed(1);
    body.dataset.captured = String(capture.snapshots.length);
    fetchEvents();
  });
})();
