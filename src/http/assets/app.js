// netstat_exporter landing page: refreshes from api/v1/snapshot and renders it as tables.
// Everything that comes from the host (process, service, user names, devices) is inserted
// with textContent only, never as HTML.
"use strict";

(function () {
  const SNAPSHOT_URL = "api/v1/snapshot";
  const body = document.body;

  // Refresh interval in seconds: ?refresh=N (1..3600), default 5.
  const refreshSeconds = (function () {
    const v = Number(new URLSearchParams(location.search).get("refresh"));
    return Number.isFinite(v) && v >= 1 && v <= 3600 ? v : 5;
  })();

  let paused = false;
  let timer = null;
  let inFlight = false;
  let previous = null; // last snapshot, for rates
  let refreshes = 0;
  // Network namespace filter (--netns=all): "all" or a netns label value ("" = the host's own).
  let netnsFilter = "all";
  let nsLabels = new Map(); // netns -> label shown in the selector and row titles
  let shown = null; // [snapshot, previous] last rendered, to re-render on a filter change

  const $ = (id) => document.getElementById(id);

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  // ---- formatting -------------------------------------------------------------------------

  function num(v) {
    if (v === null || v === undefined) return "–";
    return String(v);
  }

  function rate(v) {
    if (v === null || v === undefined || !Number.isFinite(v)) return "–";
    if (v === 0) return "0";
    if (v < 10) return v.toFixed(1);
    return Math.round(v).toString();
  }

  function bytesRate(v) {
    if (v === null || v === undefined || !Number.isFinite(v)) return "–";
    const units = ["B/s", "KiB/s", "MiB/s", "GiB/s", "TiB/s"];
    let i = 0;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i++;
    }
    // Under 10 B/s with two significant digits: a trickle is not shown as 0.
    const n = i > 0 ? v.toFixed(1) : v > 0 && v < 10 ? v.toPrecision(2) : Math.round(v);
    return n + " " + units[i];
  }

  // Events per second (closed connections, failed connects): two significant digits under
  // 10, so one connection a minute shows as 0.017, not 0.
  function perSecond(v) {
    if (v === null || v === undefined || !Number.isFinite(v)) return "–";
    if (v === 0) return "0";
    if (v < 10) return v.toPrecision(2);
    if (v < 100) return v.toFixed(1);
    return Math.round(v).toString();
  }

  // An RTT in seconds as ss shows it (milliseconds).
  function rtt(v) {
    if (v === null || v === undefined || !Number.isFinite(v)) return "–";
    const ms = v * 1000;
    return (ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : Math.round(ms).toString()) + " ms";
  }

  function duration(s) {
    if (s === null || s === undefined) return "–";
    s = Math.floor(s);
    const d = Math.floor(s / 86400);
    const h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60);
    if (d > 0) return d + "d " + h + "h " + m + "m";
    if (h > 0) return h + "h " + m + "m";
    if (m > 0) return m + "m " + (s % 60) + "s";
    return s + "s";
  }

  function clock(unix) {
    const t = new Date(unix * 1000);
    const p = (n) => String(n).padStart(2, "0");
    return p(t.getHours()) + ":" + p(t.getMinutes()) + ":" + p(t.getSeconds());
  }

  // ---- sortable tables --------------------------------------------------------------------

  // columns: [{key, label, title, num, value(row) -> sortable, text(row) -> string,
  //            cls(row) -> extra class}]
  const tables = {};

  function compare(a, b) {
    const na = a === null || a === undefined;
    const nb = b === null || b === undefined;
    if (na || nb) return na === nb ? 0 : na ? 1 : -1;
    if (typeof a === "number" && typeof b === "number") return a - b;
    return String(a).localeCompare(String(b), undefined, { numeric: true });
  }

  function setupTable(id, columns, sortKey, sortDir, rowClass) {
    const table = $(id);
    const state = { table, columns, sortKey, sortDir, rowClass, rows: [] };
    const thead = el("thead");
    const tr = el("tr");
    for (const c of columns) {
      const th = el("th");
      th.dataset.key = c.key;
      th.scope = "col";
      if (c.num) th.className = "num";
      const btn = el("button", c.label, "sort");
      btn.type = "button";
      if (c.title) btn.title = c.title;
      btn.addEventListener("click", () => {
        if (state.sortKey === c.key) {
          state.sortDir = state.sortDir === "ascending" ? "descending" : "ascending";
        } else {
          state.sortKey = c.key;
          state.sortDir = c.num ? "descending" : "ascending";
        }
        renderRows(state);
      });
      th.appendChild(btn);
      tr.appendChild(th);
    }
    thead.appendChild(tr);
    table.appendChild(thead);
    state.tbody = el("tbody");
    table.appendChild(state.tbody);
    tables[id] = state;
    return state;
  }

  function renderRows(state) {
    const col = state.columns.find((c) => c.key === state.sortKey) || state.columns[0];
    const get = col.value || ((r) => r[col.key]);
    const dir = state.sortDir === "descending" ? -1 : 1;
    // Cells without a value ("–") go last either way.
    const none = (v) => v === null || v === undefined;
    const rows = state.rows
      .map((r, i) => [r, i, get(r)])
      .sort((x, y) => {
        if (none(x[2]) || none(y[2])) return none(x[2]) === none(y[2]) ? x[1] - y[1] : none(x[2]) ? 1 : -1;
        return dir * compare(x[2], y[2]) || x[1] - y[1];
      })
      .map((x) => x[0]);
    for (const th of state.table.tHead.rows[0].cells) {
      if (th.dataset.key === col.key) th.setAttribute("aria-sort", state.sortDir);
      else th.removeAttribute("aria-sort");
    }
    const tbody = el("tbody");
    for (const r of rows) {
      const tr = el("tr");
      if (typeof r.netns === "string") {
        tr.dataset.netns = r.netns;
        if (nsLabels.size > 1) tr.title = "namespace: " + (nsLabels.get(r.netns) || r.netns);
      }
      if (state.rowClass) {
        const rc = state.rowClass(r);
        if (rc) tr.className = rc;
      }
      for (const c of state.columns) {
        const text = c.text ? c.text(r) : num(r[c.key]);
        const td = el("td", text);
        td.dataset.col = c.key;
        let cls = c.num ? "num" : "";
        if (c.cls) {
          const extra = c.cls(r);
          if (extra) cls += " " + extra;
        }
        if (cls) td.className = cls.trim();
        if (c.badge) {
          const b = c.badge(r);
          if (b) {
            td.appendChild(document.createTextNode(" "));
            td.appendChild(el("span", b, "badge"));
          }
        }
        tr.appendChild(td);
      }
      tbody.appendChild(tr);
    }
    if (rows.length === 0) {
      const tr = el("tr", null, "empty");
      const td = el("td", state.emptyText || "none");
      td.colSpan = state.columns.length;
      tr.appendChild(td);
      tbody.appendChild(tr);
    }
    state.table.replaceChild(tbody, state.tbody);
    state.tbody = tbody;
  }

  // ---- the three tables -------------------------------------------------------------------

  const queueClass = (r) => {
    if (r.accept_queue === null || r.accept_queue_limit === null || !r.accept_queue_limit) return "";
    const f = r.accept_queue / r.accept_queue_limit;
    return f >= 1 ? "bad" : f >= 0.5 ? "warn" : "";
  };
  const nonZero = (k) => (r) => (r[k] > 0 ? "bad" : "");

  // A rate column of the closed-connection counters (socket-destroy stream): `counter` is a
  // field of the snapshot's outbound_flows/inbound_flows rows.
  const flowRate = (counter) => (r) => (r.flow ? r.flow[counter] : null);
  function flowColumn(counter, label, format, title, bad) {
    const get = flowRate(counter);
    return {
      key: counter + "_rate",
      label,
      num: true,
      title,
      value: get,
      text: (r) => format(get(r)),
      cls: (r) => "rate" + (bad && bad(get(r)) ? " " + bad(get(r)) : ""),
    };
  }
  // A key with no open socket is muted while its counters stand still.
  const idle = (r) => r.closed_only && !(r.flow && Object.values(r.flow).some((v) => v > 0));
  const flowRowClass = (r) => [r.unexpected ? "unexpected" : "", idle(r) ? "zero" : ""].join(" ").trim();

  const listeners = setupTable(
    "listeners",
    [
      { key: "protocol", label: "Proto", text: (r) => r.protocol + (r.family === "ipv6" ? "6" : "") },
      { key: "address", label: "Local Address" },
      { key: "port", label: "Port", num: true },
      { key: "service", label: "Service", text: (r) => r.service || "–" },
      {
        key: "process",
        label: "Process",
        text: (r) => r.process || "–",
        badge: (r) => (r.unexpected ? "unexpected" : ""),
      },
      { key: "user", label: "User", text: (r) => r.user || "–" },
      { key: "accept_queue", label: "Accept-Q", num: true, title: "connections waiting for accept() (ss Recv-Q)", cls: queueClass },
      { key: "accept_queue_limit", label: "Limit", num: true, title: "accept queue limit: listen() backlog capped by somaxconn (ss Send-Q)" },
      { key: "connections", label: "Conns", num: true, title: "established connections to this listener" },
      { key: "receive_queue_bytes", label: "Recv-Q", num: true, title: "UDP: bytes waiting to be read" },
      { key: "drops", label: "Drops", num: true, title: "UDP: datagrams dropped", cls: nonZero("drops") },
      { key: "sockets", label: "Sockets", num: true, title: "sockets bound (more than 1 with SO_REUSEPORT)" },
      { key: "rtt_p50_seconds", label: "RTT p50", num: true, text: (r) => rtt(r.rtt_p50_seconds), title: "median smoothed RTT of the established connections (tcpi_rtt, ss -ti rtt:), from the gauge histogram; needs --collector.connections.health" },
      { key: "rtt_p99_seconds", label: "RTT p99", num: true, text: (r) => rtt(r.rtt_p99_seconds), title: "99th percentile of the same" },
      { key: "retransmitting", label: "Retrans", num: true, title: "established connections retransmitting now (in loss recovery or with unacknowledged retransmissions); needs --collector.connections.health", cls: nonZero("retransmitting") },
    ],
    "port",
    "ascending",
    (r) => (r.unexpected ? "unexpected" : "")
  );
  listeners.emptyText = "no listeners (or the listeners collector is disabled)";

  const outbound = setupTable(
    "outbound",
    [
      { key: "protocol", label: "Proto" },
      {
        key: "process",
        label: "Process",
        text: (r) => r.process || "–",
        badge: (r) => (r.unexpected ? "unexpected" : ""),
      },
      { key: "remote_port", label: "Remote port" },
      { key: "service", label: "Service", text: (r) => r.service || "–" },
      { key: "remote_network", label: "Network" },
      { key: "state", label: "State", title: "TCP state of the open sockets; closed: a key with closed connections or failed connects and no open socket" },
      { key: "count", label: "Count", num: true },
      flowColumn("closed", "closed/s", perSecond, "connections of this key closed per second between the last two refreshes (netstat_outbound_connections_closed_total, every connection however short); on the key's established row, else its first"),
      flowColumn("failed", "failed/s", perSecond, "connects that never completed the handshake per second, refused or timed out (netstat_outbound_connect_failures_total)", (v) => (v > 0 ? "bad" : "")),
      flowColumn("sent", "sent/s", bytesRate, "payload bytes sent per second by the connections that closed (netstat_outbound_bytes_total{direction=\"sent\"}, counted when a connection closes)"),
      flowColumn("received", "received/s", bytesRate, "payload bytes received per second by the connections that closed (netstat_outbound_bytes_total{direction=\"received\"})"),
      { key: "rtt_p50_seconds", label: "RTT p50", num: true, text: (r) => rtt(r.rtt_p50_seconds), title: "median smoothed RTT of the series' established connections (on its established row) (tcpi_rtt, ss -ti rtt:), from the gauge histogram; needs --collector.connections.health" },
      { key: "rtt_p99_seconds", label: "RTT p99", num: true, text: (r) => rtt(r.rtt_p99_seconds), title: "99th percentile of the same" },
      { key: "retransmitting", label: "Retrans", num: true, title: "established connections retransmitting now (in loss recovery or with unacknowledged retransmissions); needs --collector.connections.health", cls: nonZero("retransmitting") },
    ],
    "count",
    "descending",
    flowRowClass
  );
  outbound.emptyText = "no outbound connections (or the connections collector is disabled)";

  const inbound = setupTable(
    "inbound",
    [
      { key: "protocol", label: "Proto" },
      { key: "port", label: "Port", num: true, value: (r) => (r.port === "other" ? null : Number(r.port)), text: (r) => r.port },
      { key: "service", label: "Service", text: (r) => r.service || "–" },
      { key: "process", label: "Process", text: (r) => r.process || "–" },
      {
        key: "remote_network",
        label: "From network",
        badge: (r) => (r.unexpected ? "unexpected" : ""),
      },
      { key: "state", label: "State", title: "TCP state of the accepted sockets; closed: a key with closed connections and no open socket" },
      { key: "count", label: "Count", num: true },
      flowColumn("closed", "closed/s", perSecond, "connections accepted by this listener (from this network) closed per second between the last two refreshes (netstat_inbound_connections_closed_total); on the key's established row, else its first"),
      flowColumn("sent", "sent/s", bytesRate, "payload bytes this host sent per second on the connections that closed (netstat_inbound_bytes_total{direction=\"sent\"}, counted when a connection closes)"),
      flowColumn("received", "received/s", bytesRate, "payload bytes this host received per second on the connections that closed (netstat_inbound_bytes_total{direction=\"received\"})"),
    ],
    "count",
    "descending",
    flowRowClass
  );
  inbound.emptyText = "no inbound connections (or the listeners collector is disabled)";

  const ifaceRate = (k) => (r) => r.rates ? r.rates[k] : null;
  const interfaces = setupTable(
    "interfaces",
    [
      { key: "device", label: "Iface" },
      { key: "mtu", label: "MTU", num: true },
      { key: "rx_ok", label: "RX-OK", num: true },
      { key: "rx_err", label: "RX-ERR", num: true, cls: nonZero("rx_err") },
      { key: "rx_drp", label: "RX-DRP", num: true, cls: nonZero("rx_drp") },
      { key: "rx_ovr", label: "RX-OVR", num: true, cls: nonZero("rx_ovr") },
      { key: "tx_ok", label: "TX-OK", num: true },
      { key: "tx_err", label: "TX-ERR", num: true, cls: nonZero("tx_err") },
      { key: "tx_drp", label: "TX-DRP", num: true, cls: nonZero("tx_drp") },
      { key: "tx_ovr", label: "TX-OVR", num: true, cls: nonZero("tx_ovr") },
      { key: "flags", label: "Flg", text: (r) => r.flags || "–" },
      { key: "rx_pps", label: "RX pkt/s", num: true, value: ifaceRate("rx_ok"), text: (r) => rate(ifaceRate("rx_ok")(r)), cls: () => "rate" },
      { key: "tx_pps", label: "TX pkt/s", num: true, value: ifaceRate("tx_ok"), text: (r) => rate(ifaceRate("tx_ok")(r)), cls: () => "rate" },
      { key: "rx_eps", label: "RX err/s", num: true, value: ifaceRate("rx_err"), text: (r) => rate(ifaceRate("rx_err")(r)), cls: (r) => "rate" + (ifaceRate("rx_err")(r) > 0 ? " bad" : "") },
      { key: "tx_eps", label: "TX err/s", num: true, value: ifaceRate("tx_err"), text: (r) => rate(ifaceRate("tx_err")(r)), cls: (r) => "rate" + (ifaceRate("tx_err")(r) > 0 ? " bad" : "") },
      { key: "rx_bps", label: "RX rate", num: true, value: ifaceRate("rx_bytes"), text: (r) => bytesRate(ifaceRate("rx_bytes")(r)), cls: () => "rate" },
      { key: "tx_bps", label: "TX rate", num: true, value: ifaceRate("tx_bytes"), text: (r) => bytesRate(ifaceRate("tx_bytes")(r)), cls: () => "rate" },
    ],
    "device",
    "ascending"
  );
  interfaces.emptyText = "no interfaces (or the interfaces collector is disabled)";

  const sockets = setupTable(
    "sockets",
    [
      { key: "protocol", label: "Proto" },
      { key: "family", label: "Family" },
      { key: "total", label: "Total", num: true },
      { key: "states", label: "States (non-zero)", value: (r) => r.states.length, text: (r) => r.states.join(" · ") || "–" },
    ],
    "protocol",
    "ascending",
    (r) => (r.total === 0 ? "zero" : "")
  );
  sockets.emptyText = "no sockets (or the sockets collector is disabled)";

  // ---- snapshot -> rows -------------------------------------------------------------------

  const RATE_KEYS = ["rx_ok", "tx_ok", "rx_err", "tx_err", "rx_bytes", "tx_bytes"];

  // ---- network namespaces ----------------------------------------------------------------

  // A namespace as a person knows it: its ip-netns name, its pod, its container, or "host".
  function nsLabel(n) {
    if (!n.netns) return "host";
    if (n.name) return n.name;
    if (n.pod_uid) return "pod " + n.pod_uid;
    if (n.container_id) return "container " + n.container_id.slice(0, 12);
    return "netns " + n.netns;
  }

  const inNs = (r) => netnsFilter === "all" || (r.netns || "") === netnsFilter;

  // The selector lists All and every namespace of the snapshot; hidden with one or none
  // (--netns=self). The choice survives refreshes while its namespace exists.
  function updateNamespaces(snap) {
    const list = (snap.namespaces || []).map((n) => ({ netns: n.netns || "", label: nsLabel(n) }));
    list.sort((a, b) => (a.netns === "" ? -1 : b.netns === "" ? 1 : compare(a.label, b.label)));
    nsLabels = new Map(list.map((n) => [n.netns, n.label]));
    const pick = $("netns-pick");
    const select = $("netns-filter");
    if (list.length <= 1) {
      pick.hidden = true;
      netnsFilter = "all";
      return;
    }
    if (netnsFilter !== "all" && !nsLabels.has(netnsFilter)) netnsFilter = "all";
    const key = JSON.stringify(list);
    if (select.dataset.key !== key) {
      select.textContent = "";
      select.appendChild(el("option", "All (" + list.length + ")")).value = "all";
      for (const n of list) {
        const o = el("option", n.label);
        o.value = n.netns;
        if (n.netns) o.title = "netns " + n.netns;
        select.appendChild(o);
      }
      select.dataset.key = key;
    }
    select.value = netnsFilter;
    pick.hidden = false;
  }

  $("netns-filter").addEventListener("change", (ev) => {
    netnsFilter = ev.target.value;
    if (shown) render(shown[0], shown[1]);
  });

  // ---- closed connections: rates of the socket-destroy counters --------------------------

  const OUT_FLOW_KEY = ["protocol", "remote_port", "service", "remote_network", "process", "container_id", "pod_uid"];
  const IN_FLOW_KEY = ["protocol", "port", "service", "process", "remote_network"];
  const OUT_FLOW_COUNTERS = ["closed", "failed", "sent", "received"];
  const IN_FLOW_COUNTERS = ["closed", "sent", "received"];

  const flowKey = (r, names) =>
    JSON.stringify([r.netns || ""].concat(names.map((n) => (r[n] === null || r[n] === undefined ? "" : String(r[n])))));

  // Per-second rates of each key's counters between the previous snapshot and this one:
  // { key -> { row, rates: { counter -> rate or null } } }. Null on the first snapshot, for
  // a counter that went down (exporter restart, namespace forgotten: never a negative rate)
  // and after a restart (another start time). A key the previous snapshot lacks counted
  // from 0 when that snapshot is of the same exporter run and held its namespace.
  function flowRates(rows, prevRows, names, counters, snap, prev) {
    const dt = prev ? snap.time - prev.time : 0;
    const known = (t) => t !== null && t !== undefined;
    const sameRun = !!prev && known(prev.start_time_seconds) && prev.start_time_seconds === snap.start_time_seconds;
    const restarted = !!prev && known(prev.start_time_seconds) && known(snap.start_time_seconds) && !sameRun;
    const before = new Map();
    for (const r of prevRows || []) before.set(flowKey(r, names), r);
    const covered = new Set((prev && prev.flows_netns) || []);
    const out = new Map();
    for (const r of rows || []) {
      const k = flowKey(r, names);
      const p = before.get(k);
      const rates = {};
      for (const c of counters) {
        const base = p ? p[c] : sameRun && covered.has(r.netns || "") ? 0 : null;
        rates[c] = dt > 0 && !restarted && base !== null && r[c] >= base ? (r[c] - base) / dt : null;
      }
      out.set(k, { row: r, rates });
    }
    // A key with open sockets and no counters in either snapshot closed nothing: 0.
    const zero = {};
    for (const c of counters) zero[c] = 0;
    const zeroFor = (netns) =>
      dt > 0 && sameRun && covered.has(netns) && (snap.flows_netns || []).includes(netns) ? zero : null;
    return { rates: out, zeroFor };
  }

  // The rows of the outbound or inbound table: the socket rows (by state) and the counters'
  // rates on one row per key, its established row, else its first; a key with counters but
  // no open socket (a beacon that connects for 200 ms a minute) gets a row of its own, state
  // "closed", count 0.
  function withFlows(sockRows, flows, names) {
    const rows = sockRows.map((r) => Object.assign({}, r));
    const byKey = new Map();
    for (const r of rows) {
      const k = flowKey(r, names);
      const cur = byKey.get(k);
      if (!cur || (cur.state !== "established" && r.state === "established")) byKey.set(k, r);
    }
    for (const [k, f] of flows.rates) {
      if (!inNs(f.row)) continue;
      let r = byKey.get(k);
      if (!r) {
        r = { netns: f.row.netns || "", state: "closed", count: 0, closed_only: true };
        for (const n of names) r[n] = f.row[n];
        rows.push(r);
        byKey.set(k, r);
      }
      r.flow = f.rates;
    }
    // The counters are TCP's: a UDP row has none ("–").
    for (const r of byKey.values()) if (!r.flow && r.protocol === "tcp") r.flow = flows.zeroFor(r.netns || "");
    return rows;
  }

  // "0.5 closed/s" ... for a section's note: the sum of the shown rates (none when unknown).
  function flowNote(rows, counter, format, what) {
    let sum = null;
    for (const r of rows) {
      const v = flowRate(counter)(r);
      if (v !== null && v !== undefined) sum = (sum || 0) + v;
    }
    return sum === null ? null : format(sum) + " " + what;
  }

  function interfaceRows(snap, prev) {
    const ifKey = (i) => (i.netns || "") + "/" + i.device;
    const before = new Map();
    if (prev) for (const i of prev.interfaces) before.set(ifKey(i), i);
    const dt = prev ? snap.time - prev.time : 0;
    return snap.interfaces.filter(inNs).map((i) => {
      const row = Object.assign({}, i);
      const p = before.get(ifKey(i));
      if (p && dt > 0) {
        row.rates = {};
        for (const k of RATE_KEYS) {
          // A counter that went backwards was reset (device re-created): no rate.
          row.rates[k] = i[k] >= p[k] ? (i[k] - p[k]) / dt : null;
        }
      }
      return row;
    });
  }

  function socketRows(snap) {
    const groups = new Map();
    const add = (proto, fam, state, count) => {
      const k = proto + "/" + fam;
      let g = groups.get(k);
      if (!g) {
        g = { protocol: proto, family: fam, total: 0, states: [] };
        groups.set(k, g);
      }
      g.total += count;
      if (count > 0) g.states.push(state.toUpperCase() + " " + count);
    };
    for (const s of snap.sockets.filter(inNs)) add(s.protocol, s.family, s.state, s.count);
    for (const s of snap.unix_sockets.filter(inNs)) add("unix", s.type, s.state, s.count);
    return Array.from(groups.values());
  }

  function render(snap, prev) {
    shown = [snap, prev];
    updateNamespaces(snap);
    const shownListeners = snap.listeners.filter(inNs);
    $("uptime").textContent = duration(snap.uptime_seconds);
    $("n-listeners").textContent = String(shownListeners.length);
    $("n-interfaces").textContent = String(snap.interfaces.filter(inNs).length);
    const est = snap.sockets
      .filter((s) => inNs(s) && s.protocol === "tcp" && s.state === "established")
      .reduce((a, s) => a + s.count, 0);
    $("n-established").textContent = String(est);
    $("build").textContent = "· v" + snap.version + " (" + snap.revision + ", rustc " + snap.rustc + ")";

    const chips = $("collectors");
    chips.textContent = "";
    for (const c of snap.collectors) {
      const chip = el("span", null, "chip " + (c.success ? "ok" : "fail"));
      chip.dataset.collector = c.name;
      chip.title = c.success
        ? "collected in " + (c.duration_seconds * 1000).toFixed(1) + " ms"
        : "failed in this scrape: see the exporter log";
      chip.appendChild(el("span", c.success ? "●" : "✕", "dot"));
      chip.appendChild(document.createTextNode(" " + c.name + " "));
      chip.appendChild(el("span", (c.duration_seconds * 1000).toFixed(1) + "ms", "muted"));
      chips.appendChild(chip);
    }
    if (snap.collectors.length === 0) chips.textContent = "none";

    listeners.rows = shownListeners;
    renderRows(listeners);
    const unexpected = shownListeners.filter((l) => l.unexpected).length;
    const notes = [];
    if (snap.expected_listeners_policy) {
      notes.push(unexpected === 0 ? "all listeners expected by policy" : unexpected + " unexpected by policy");
    }
    if (snap.listeners_dropped) notes.push(snap.listeners_dropped + " more not shown (--collector.listeners.max)");
    $("listeners-note").textContent = notes.join(" · ");
    $("listeners-note").className = "note" + (unexpected > 0 ? " bad" : "");

    const out = (snap.outbound || []).filter(inNs);
    const outFlows = flowRates(snap.outbound_flows, prev && prev.outbound_flows, OUT_FLOW_KEY, OUT_FLOW_COUNTERS, snap, prev);
    outbound.rows = withFlows(out, outFlows, OUT_FLOW_KEY);
    renderRows(outbound);
    const flagged = out.filter((r) => r.unexpected);
    const outNotes = [out.reduce((n, r) => n + r.count, 0) + " outbound sockets"];
    for (const n of [
      flowNote(outbound.rows, "closed", perSecond, "closed/s"),
      flowNote(outbound.rows, "failed", perSecond, "failed/s"),
    ]) {
      if (n !== null) outNotes.push(n);
    }
    if (snap.outbound_policy) {
      outNotes.push(flagged.length === 0 ? "all expected by policy" : flagged.length + " unexpected by policy");
    }
    if (snap.outbound_folded) outNotes.push(snap.outbound_folded + " in folded series (--collector.connections.max)");
    $("outbound-note").textContent = outNotes.join(" · ");
    $("outbound-note").className = "note" + (flagged.length > 0 ? " bad" : "");

    const inb = (snap.inbound || []).filter(inNs);
    const inFlows = flowRates(snap.inbound_flows, prev && prev.inbound_flows, IN_FLOW_KEY, IN_FLOW_COUNTERS, snap, prev);
    inbound.rows = withFlows(inb, inFlows, IN_FLOW_KEY);
    renderRows(inbound);
    const inFlagged = inb.filter((r) => r.unexpected);
    const sources = (snap.inbound_sources || []).filter(inNs).filter((r) => r.count > 0);
    const inNotes = [inb.reduce((n, r) => n + r.count, 0) + " inbound sockets"];
    const inClosed = flowNote(inbound.rows, "closed", perSecond, "closed/s");
    if (inClosed !== null) inNotes.push(inClosed);
    if (sources.length > 0) {
      inNotes.push("sources: " + sources.map((r) => r.count + " " + r.remote_network).join(", "));
    }
    if (snap.inbound_policy) {
      inNotes.push(inFlagged.length === 0 ? "all expected by policy" : inFlagged.length + " unexpected by policy");
    }
    if (snap.inbound_folded) inNotes.push(snap.inbound_folded + " in folded series (--collector.listeners.inbound-max)");
    $("inbound-note").textContent = inNotes.join(" · ");
    $("inbound-note").className = "note" + (inFlagged.length > 0 ? " bad" : "");

    interfaces.rows = interfaceRows(snap, prev);
    renderRows(interfaces);

    sockets.rows = socketRows(snap);
    renderRows(sockets);
  }

  function setStatus(state, text) {
    const s = $("status");
    s.dataset.state = state;
    s.textContent = text;
  }

  function statusText(snap) {
    return (paused ? "paused" : "live · every " + refreshSeconds + " s") + " · updated " + clock(snap.time);
  }

  async function refresh() {
    if (inFlight) return;
    inFlight = true;
    try {
      const resp = await fetch(SNAPSHOT_URL, { cache: "no-store", credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!resp.ok) throw new Error("HTTP " + resp.status + " from " + SNAPSHOT_URL);
      const snap = await resp.json();
      const t0 = performance.now(); // events: render time, shown in data-render-ms
      render(snap, previous);
      body.dataset.renderMs = (performance.now() - t0).toFixed(1); // events
      previous = snap;
      refreshes++;
      body.dataset.refreshes = String(refreshes);
      // events: capture.js draws the charts and reads the change log on each snapshot.
      document.dispatchEvent(new CustomEvent("netstat:snapshot", { detail: { snapshot: snap, refreshes } }));
      $("error").hidden = true;
      setStatus(paused ? "paused" : "ok", statusText(snap));
    } catch (e) {
      $("error").textContent = "Cannot refresh: " + (e && e.message ? e.message : String(e)) + ". Showing the last data; retrying.";
      $("error").hidden = false;
      setStatus("error", "error · retrying every " + refreshSeconds + " s");
    } finally {
      inFlight = false;
      schedule();
    }
  }

  function schedule() {
    clearTimeout(timer);
    timer = null;
    if (!paused) timer = setTimeout(refresh, refreshSeconds * 1000);
  }

  $("pause").addEventListener("click", () => {
    paused = !paused;
    const b = $("pause");
    b.textContent = paused ? "Resume" : "Pause";
    b.setAttribute("aria-pressed", String(paused));
    if (paused) {
      clearTimeout(timer);
      timer = null;
      if (previous) setStatus("paused", statusText(previous));
    } else {
      refresh();
    }
  });

  refresh();
})();
