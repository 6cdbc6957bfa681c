// nodekeeper's dashboard: renders the status the daemon pushes (server-sent events from
// /v1/events), the restart log and the heights' history, and sends the operator's actions to the
// API's token-protected endpoints. The token lives in sessionStorage and travels only in the
// Authorization header. Text is set with textContent, never parsed as HTML.
//
// The sparklines' history is loaded from /v1/history at each (re)connect and then kept growing
// from the live `status` events by `recordHistory`, the rule of src/api/dashboard/history.rs, so a
// page left open shows the whole window. `window.nkHistory` exposes it for the browser test:
// `record(history, status, now)` (pure) and `current()` (the page's copy).
//
// `/?snapshot` shows one status (GET /v1/status) with its history and restart log, without the
// live feed: a page whose loading ends, for screenshots (scripts/demo.sh) and printing.
"use strict";

(() => {
  const TOKEN_KEY = "nodekeeper.api-token";
  const RESTART_ROWS = 50;
  const byId = (id) => document.getElementById(id);
  // A name, not an address: nothing is fetched from it.
  const SVG_NS = "http://www.w3.org/2000/svg";

  let status = null;
  let receivedAt = 0;
  let history = { step_secs: 10, window_secs: 3600, nodes: {} };
  let restartsKey = null;
  let chartVersion = 0;
  const cards = new Map();

  const token = () => sessionStorage.getItem(TOKEN_KEY) || "";

  function say(text, error) {
    const message = byId("message");
    message.textContent = text;
    message.className = error ? "error" : "";
  }

  function showMode() {
    const operator = token() !== "";
    const mode = byId("mode");
    mode.textContent = operator
      ? "operator: actions are sent with your token, each after a confirmation"
      : "read-only: enter the API token to act";
    mode.className = operator ? "operator" : "readonly";
    document.body.classList.toggle("readonly", !operator);
    byId("token-forget").hidden = !operator;
    for (const button of document.querySelectorAll(".actions button")) {
      button.disabled = !operator;
    }
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // --- actions ---------------------------------------------------------------------------------

  async function act(path, what) {
    if (token() === "") {
      say(`${what}: the page is read-only (no token)`, true);
      return;
    }
    if (!window.confirm(`${what}?`)) return;
    say(`${what}: sent`);
    let response;
    try {
      response = await fetch(path, {
        method: "POST",
        headers: { Authorization: `Bearer ${token()}`, "Content-Type": "application/json" },
        body: JSON.stringify({ reason: "from the dashboard" }),
        cache: "no-store",
        credentials: "omit",
      });
    } catch (error) {
      say(`${what}: ${error.message}`, true);
      return;
    }
    let body = {};
    try {
      body = await response.json();
    } catch (_) {
      body = {};
    }
    if (response.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      showMode();
      say(`${what}: refused, the token is wrong; the page is read-only`, true);
      return;
    }
    if (!response.ok && response.status !== 202) {
      say(`${what}: refused (${response.status}): ${body.error || "no reason given"}`, true);
      return;
    }
    say(`${what}: ${body.message || body.state || "accepted"}`);
  }

  function actionButton(label, title, onClick) {
    const button = element("button", `act-${label.split(" ")[0]}`, label);
    button.type = "button";
    button.title = title;
    button.disabled = token() === "";
    button.addEventListener("click", onClick);
    return button;
  }

  // --- nodes -----------------------------------------------------------------------------------

  function card(name) {
    let entry = cards.get(name);
    if (entry) return entry;
    const root = element("article", "node");
    root.dataset.node = name;
    const title = element("h3");
    const fields = {
      name: element("span", "name", name),
      instance: element("span", "instance"),
      role: element("span", "badge role"),
      held: element("span", "badge held"),
      busy: element("span", "badge busy", "busy"),
      archive: element("span", "badge archive"),
    };
    title.append(fields.name, fields.instance, fields.role, fields.held, fields.busy, fields.archive);
    const list = element("dl");
    for (const [key, label] of [
      ["program", "program"],
      ["state", "node"],
      ["height", "height"],
      ["lag", "lag"],
      ["restart", "last restart"],
    ]) {
      fields[key] = element("dd", key);
      list.append(element("dt", "", label), fields[key]);
    }
    const spark = document.createElementNS(SVG_NS, "svg");
    spark.setAttribute("class", "spark");
    spark.setAttribute("viewBox", "0 0 120 24");
    spark.setAttribute("preserveAspectRatio", "none");
    spark.setAttribute("role", "img");
    spark.setAttribute("aria-label", "height over the last hour");
    const line = document.createElementNS(SVG_NS, "polyline");
    spark.append(line);
    const node = encodeURIComponent(name);
    const actions = element("div", "actions");
    const buttons = {
      restart: actionButton("restart", "stop then start", () => act(`/v1/nodes/${node}/restart`, `restart ${name}`)),
      start: actionButton("start", "start the program", () => act(`/v1/nodes/${node}/start`, `start ${name}`)),
      stop: actionButton("stop", "stop and hold", () => act(`/v1/nodes/${node}/stop`, `stop ${name}`)),
      hold: actionButton("hold", "leave it alone until released", () => act(`/v1/nodes/${node}/hold`, `hold ${name}`)),
      release: actionButton("release", "manage it again", () => act(`/v1/nodes/${node}/release`, `release ${name}`)),
      backup: actionButton("back up", "stop, archive the data directory, start (never the key holder)", () => act(`/v1/nodes/${node}/backup`, `back up ${name} (it stops meanwhile)`)),
      leader: actionButton("hand the key over", "a slot-aware hand-over to this node", () => act(`/v1/leader/${node}`, `hand the key over to ${name}`)),
    };
    actions.append(...Object.values(buttons));
    root.append(title, list, spark, actions);
    byId("nodes").append(root);
    entry = { root, fields, line, buttons };
    cards.set(name, entry);
    return entry;
  }

  function renderNode(node, words, leadership) {
    const { root, fields, line, buttons } = card(node.name);
    fields.instance.textContent = node.instance ? `@${node.instance}` : "";
    fields.role.textContent = node.leader ? node.role || words.role : "";
    fields.role.hidden = !node.leader;
    fields.held.textContent = node.held ? `held: ${node.held}` : "";
    fields.held.hidden = !node.held;
    fields.busy.hidden = !node.busy;
    fields.program.textContent = node.variant === "fallback"
      ? `${node.program_state} (fallback config)`
      : node.program_state;
    fields.state.textContent = node.node_state;
    fields.height.textContent = node.height ?? "–";
    fields.lag.textContent = node.lag ?? "–";
    const last = node.last_restart;
    fields.restart.textContent = last ? `${last.at} ${last.action}: ${last.reason}` : "none";
    root.classList.toggle("bad", node.program_state !== "RUNNING");
    root.classList.toggle("lagging", node.program_state === "RUNNING" && (node.lag || 0) > 0);
    // A node of another instance ([cluster]) is acted on from its own instance's page; only the
    // hand-over goes through any instance (the elected one records it in etcd).
    const remote = Boolean(status.cluster && node.instance && node.instance !== status.cluster.instance);
    buttons.restart.hidden = remote;
    buttons.start.hidden = remote;
    buttons.stop.hidden = remote;
    buttons.hold.hidden = remote || Boolean(node.held);
    buttons.release.hidden = remote || !node.held;
    buttons.leader.hidden = !leadership || node.leader;
    // A backup stops the node: never offered for the node that holds the key.
    buttons.backup.hidden = remote || Boolean(node.leader);
    // The backup or restore in flight (one at a time), with how far it has come.
    const archive = status.archive && status.archive.node === node.name ? status.archive : null;
    fields.archive.hidden = !archive;
    fields.archive.textContent = archive
      ? `${archive.kind} ${archive.phase}: ${Math.floor(archive.bytes / 1e6)} MB, ${archive.files} files, ${archive.elapsed_secs} s`
      : "";
    root.classList.toggle("remote", remote);
    root.title = remote ? `managed by ${node.instance}: restart, stop and hold it from that instance's page` : "";
    line.setAttribute("points", sparkPoints(node));
  }

  // The history after `status` taken at `now` (unix seconds), as History::record does it: a
  // node's sample when its last one is at least a step old, nodes gone from the status forgotten,
  // samples older than the window (or beyond its capacity) dropped, samples from the future (a
  // clock that went back) dropped. Pure: a new object, `history` untouched.
  function recordHistory(history, status, now) {
    const step = Math.max(1, history.step_secs);
    const span = Math.max(1, history.window_secs);
    const capacity = Math.floor(span / step) + 1;
    const nodes = {};
    for (const node of status.nodes) {
      const samples = (history.nodes[node.name] || []).filter(([time]) => time <= now);
      const last = samples[samples.length - 1];
      if (node.height !== null && node.height !== undefined && (!last || now - last[0] >= step)) {
        samples.push([now, node.height]);
      }
      const kept = samples.filter(([time]) => now - time <= span);
      nodes[node.name] = kept.slice(Math.max(0, kept.length - capacity));
    }
    return { step_secs: step, window_secs: span, nodes };
  }

  function sparkPoints(node) {
    const samples = (history.nodes[node.name] || []).slice();
    const now = Date.now() / 1000;
    if (node.height !== null && node.height !== undefined) samples.push([now, node.height]);
    const recent = samples.filter(([time]) => now - time <= history.window_secs);
    if (recent.length < 2) return "";
    const heights = recent.map(([, height]) => height);
    const low = Math.min(...heights);
    const span = Math.max(Math.max(...heights) - low, 1);
    return recent
      .map(([time, height]) => {
        const x = 120 - ((now - time) / history.window_secs) * 120;
        const y = 22 - ((height - low) / span) * 20;
        return `${x.toFixed(1)},${y.toFixed(1)}`;
      })
      .join(" ");
  }

  // --- lines above the nodes -------------------------------------------------------------------

  function countdown(secs) {
    if (secs === null || secs === undefined) return "";
    const left = Math.max(0, Math.round(secs - (Date.now() - receivedAt) / 1000));
    const minutes = Math.floor(left / 60);
    return minutes > 0 ? ` in ${minutes} min ${left % 60} s` : ` in ${left} s`;
  }

  function renderLeadership(words) {
    const leadership = status.leadership;
    byId("leadership").hidden = !leadership;
    if (!leadership) return;
    const parts = [`${words.holder}: ${leadership.leader || "none"}`];
    if (leadership.epoch !== null && leadership.epoch !== undefined) {
      parts.push(`${words.epoch} ${leadership.epoch}`);
    }
    parts.push(leadership.next_slot
      ? `next ${words.next} ${leadership.next_slot}${countdown(leadership.next_slot_in_secs)}`
      : `no known next ${words.next}`);
    byId("leader-line").textContent = parts.join(" · ");
    byId("guard-line").textContent = leadership.guard
      ? `a hand-over waits: ${leadership.guard}`
      : "a hand-over can go now";
  }

  function renderCluster() {
    const cluster = status.cluster;
    byId("cluster").hidden = !cluster;
    if (!cluster) return;
    byId("cluster-line").textContent = [
      `instance ${cluster.instance}`,
      `election: ${cluster.election}`,
      `elected: ${cluster.leader || "none"}`,
      `etcd ${cluster.etcd_reachable ? "reachable" : "unreachable"}`,
      `producer in etcd: ${cluster.producer || "none"}`,
      `instances: ${cluster.instances.join(", ") || "none"}`,
    ].join(" · ");
  }

  function renderHealth() {
    const external = status.external_reference ?? "none fresh";
    byId("reference-line").textContent =
      `reference height: ${status.reference ?? "none"} (external: ${external}) · taken ${status.taken_at}`;
    const list = byId("unreachable");
    list.replaceChildren(
      ...(status.unreachable.length
        ? status.unreachable.map((why) => element("li", "", `unreachable: ${why}`))
        : [element("li", "muted", "every supervisord answers")]),
    );
    list.className = status.unreachable.length ? "" : "ok";
  }

  function render() {
    if (!status) return;
    const words = status.chain || { name: "jormungandr", role: "leader", holder: "leader", epoch: "epoch", next: "slot" };
    byId("chain").textContent = `${words.name}${words.producer ? ` · ${words.producer}` : ""}`;
    renderLeadership(words);
    renderCluster();
    renderHealth();
    const names = new Set(status.nodes.map((node) => node.name));
    for (const [name, entry] of cards) {
      if (!names.has(name)) {
        entry.root.remove();
        cards.delete(name);
      }
    }
    for (const node of status.nodes) renderNode(node, words, Boolean(status.leadership));
    // Keep the cards in the configuration's order.
    for (const node of status.nodes) byId("nodes").append(cards.get(node.name).root);
    filterOptions(status.nodes.map((node) => node.name));
    const key = JSON.stringify(status.nodes.map((node) => node.last_restart));
    if (key !== restartsKey) {
      restartsKey = key;
      loadRestarts();
      chartVersion += 1;
      byId("chart").src = `/v1/restarts.svg?v=${chartVersion}`;
    }
  }

  // --- the restart log -------------------------------------------------------------------------

  function filterOptions(names) {
    const select = byId("restart-node");
    const have = new Set([...select.options].map((option) => option.value));
    for (const name of names) {
      if (!have.has(name)) select.append(new Option(name, name));
    }
  }

  async function loadRestarts() {
    const node = byId("restart-node").value;
    const query = new URLSearchParams({ limit: String(RESTART_ROWS) });
    if (node) query.set("node", node);
    try {
      const response = await fetch(`/v1/restarts?${query}`, { cache: "no-store" });
      if (!response.ok) return;
      const answer = await response.json();
      const rows = answer.rows.slice().reverse().map((row) => {
        const line = element("tr");
        line.dataset.node = row.node;
        line.append(
          element("td", "", row.timestamp.replace("T", " ").replace("Z", "")),
          element("td", "", row.node),
          element("td", "", row.action),
          element("td", "reason", row.reason),
          element("td", "", row.supervisor_state),
        );
        return line;
      });
      byId("restart-rows").replaceChildren(...rows);
    } catch (_) {
      // The next change tries again.
    }
  }

  async function loadHistory() {
    try {
      const response = await fetch("/v1/history", { cache: "no-store" });
      if (response.ok) history = await response.json();
      render();
    } catch (_) {
      // Sparklines fill from the live feed meanwhile.
    }
  }

  // --- the live feed ---------------------------------------------------------------------------

  function live(on, text) {
    const badge = byId("live");
    badge.textContent = text;
    badge.className = `live ${on ? "on" : "off"}`;
  }

  async function snapshotOnce() {
    live(false, "snapshot");
    try {
      const response = await fetch("/v1/status", { cache: "no-store" });
      if (!response.ok) throw new Error(`status ${response.status}`);
      status = await response.json();
      receivedAt = Date.now();
      await loadHistory(); // renders, which loads the restart log and the chart
    } catch (error) {
      say(`could not read the status: ${error.message}`, true);
    }
  }

  function connect() {
    const source = new EventSource("/v1/events");
    source.addEventListener("open", () => {
      live(true, "live");
      loadHistory();
    });
    source.addEventListener("status", (event) => {
      status = JSON.parse(event.data);
      receivedAt = Date.now();
      const takenAt = Math.floor(Date.parse(status.taken_at) / 1000);
      if (Number.isFinite(takenAt)) history = recordHistory(history, status, takenAt);
      live(true, "live");
      render();
    });
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        // Refused (every place taken, or an old daemon): try again later ourselves.
        live(false, "disconnected, retrying");
        setTimeout(connect, 5000);
      } else {
        live(false, "reconnecting");
      }
    });
  }

  function start() {
    byId("token-save").addEventListener("click", () => {
      const input = byId("token");
      const value = input.value.trim();
      input.value = "";
      if (value === "") return;
      sessionStorage.setItem(TOKEN_KEY, value);
      showMode();
      say("token kept for this tab; the API checks it on the first action");
    });
    byId("token-forget").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      showMode();
      say("token forgotten: read-only");
    });
    byId("restart-node").addEventListener("change", loadRestarts);
    setInterval(() => {
      if (status && status.leadership) renderLeadership(status.chain || { holder: "leader", epoch: "epoch", next: "slot" });
    }, 1000);
    showMode();
    if (new URLSearchParams(window.location.search).has("snapshot")) {
      snapshotOnce();
    } else {
      connect();
    }
  }

  window.nkHistory = Object.freeze({ record: recordHistory, current: () => history });
  start();
})();
