// The fleet dashboard: state from the hub's snapshot and stream, drawn once per frame.
//
// The page never decides a status: every status it shows came from the hub (the
// snapshot, a transition, a device message). "Last seen 3 s ago" ticks locally, but
// only as a relative-time display of the time the hub sent.

import { Live } from "./live.js";
import { ago, badge, h, labelText, local, parseLabels, percent, span, STATUSES } from "./format.js";

const ROW = 40; // px: must match --row in style.css
const OVERSCAN = 8;
const KEY = "lastseen.key";
const ORDER = { online: 0, stale: 1, offline: 2, unknown: 3 };
const DETAIL_FETCHES = 50; // more unknown ids than this at once: one listing instead
const TIMELINE = 200; // newest transitions kept on the device page
const collator = new Intl.Collator(undefined, { numeric: true });
const $ = (id) => document.getElementById(id);

const state = {
  key: localStorage.getItem(KEY),
  mode: null,
  admin: false,
  devices: new Map(),
  view: [],
  sort: { key: "id", dir: 1 },
  filter: { status: "", label: "", text: "" },
  active: 0,
  dirty: true,
  frame: 0,
  live: null,
  profiles: ["default"],
  page: null,
  pending: new Set(),
  pendingTimer: 0,
  resyncTimer: 0,
  uptimeTimer: 0,
};
const pool = [];

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const headers = {};
  if (state.key && state.mode === "keys") headers.Authorization = `Bearer ${state.key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const answer = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  let data = null;
  if (answer.status !== 204) {
    try {
      data = await answer.json();
    } catch {
      data = null;
    }
  }
  if (!answer.ok) {
    throw new ApiError(answer.status, data?.code, data?.message || `HTTP ${answer.status}`);
  }
  return data;
}

// ------------------------------------------------------------------ connection state

const CONN_TEXT = {
  connecting: "connecting…",
  live: "live",
  reconnecting: "reconnecting…",
  resynced: "resynced",
};

function setConn(which) {
  const node = $("conn");
  clearTimeout(state.resyncTimer);
  node.dataset.state = which;
  node.textContent = CONN_TEXT[which];
  if (which === "resynced") state.resyncTimer = setTimeout(() => setConn("live"), 5000);
}

// ------------------------------------------------------------------ sign-in

function show(section) {
  for (const id of ["signin", "fleet", "device"]) $(id).hidden = id !== section;
}

function showSignin(message = "") {
  state.live?.stop();
  state.live = null;
  show("signin");
  $("signout").hidden = true;
  $("who").textContent = "";
  $("signin-error").textContent = message;
  $("key").focus();
}

function signOut(message = "") {
  localStorage.removeItem(KEY);
  state.key = null;
  state.devices = new Map();
  markDirty();
  showSignin(message);
}

async function signIn(key) {
  state.key = key;
  try {
    await api("GET", "/v1/devices?limit=1");
  } catch (error) {
    state.key = null;
    if (error.status === 401) return showSignin("That key is not valid.");
    if (error.status === 403) return showSignin("That key may not read devices: use a read or admin key.");
    return showSignin(error.message);
  }
  localStorage.setItem(KEY, key);
  let admin = true;
  try {
    await api("GET", "/v1/keys");
  } catch {
    admin = false;
  }
  state.admin = admin;
  $("who").textContent = admin ? "admin key" : "read-only key";
  $("signout").hidden = false;
  start();
}

// ------------------------------------------------------------------ the stream

function start() {
  document.body.classList.toggle("is-admin", state.admin);
  for (const node of document.querySelectorAll(".admin-only")) {
    if (node.id !== "add-form") node.hidden = !state.admin;
  }
  const transport = new URLSearchParams(location.search).get("transport") || "ws";
  state.live = new Live({
    token: state.mode === "keys" ? state.key : null,
    transport,
    onMessage: receive,
    onState: setConn,
    onAuth: () => signOut("The key was refused (revoked?). Sign in again."),
  });
  state.live.start();
  route();
}

function receive(message) {
  const live = state.live;
  switch (message.type) {
    case "snapshot":
      state.devices = new Map(message.devices.map((d) => [d.id, d]));
      live.seq = message.seq;
      break;
    case "transition":
      if (live.seq !== null && message.seq <= live.seq) return; // already applied
      live.saw(message.seq);
      applyTransition(message);
      break;
    case "seen":
      for (const [id, time] of Object.entries(message.devices)) {
        const device = state.devices.get(id);
        if (device && (!device.last_seen || time > device.last_seen)) device.last_seen = time;
      }
      // Only the "seen" sort and the device page depend on last_seen: otherwise
      // repainting the visible rows is enough, without re-deriving the whole view.
      if (state.sort.key === "seen" || state.page) break;
      if (!state.frame) state.frame = requestAnimationFrame(frame);
      return;
    case "device":
      if (message.action === "deleted") state.devices.delete(message.device_id);
      else state.devices.set(message.device_id, message.device);
      pageEvent(message);
      break;
    case "reset":
      live.resnapshot();
      return;
    default:
      return;
  }
  markDirty();
}

function applyTransition(event) {
  let device = state.devices.get(event.device_id);
  if (!device) {
    device = { id: event.device_id, profile: "", labels: {}, attributes: {}, metrics: {}, last_seen: null };
    state.devices.set(device.id, device);
    wantDetails(device.id);
  }
  device.status = event.to;
  device.status_since = event.at;
  device.reason = event.reason;
  device.source = event.source;
  device.flapping = Boolean(event.flapping);
  if (event.to === "online" && (!device.last_seen || event.at > device.last_seen)) {
    device.last_seen = event.at;
  }
  pageEvent(event);
}

// A device first met in a transition (registered by its first heartbeat): fetch
// what the stream does not carry (profile, labels). Presence stays the stream's.
function wantDetails(id) {
  state.pending.add(id);
  if (!state.pendingTimer) state.pendingTimer = setTimeout(fetchDetails, 100);
}

function merge(found) {
  const device = state.devices.get(found.id);
  if (!device) return;
  for (const field of ["profile", "labels", "attributes", "metrics", "created_at"]) {
    device[field] = found[field];
  }
  if (found.last_seen && (!device.last_seen || found.last_seen > device.last_seen)) {
    device.last_seen = found.last_seen;
  }
}

async function fetchDetails() {
  state.pendingTimer = 0;
  const ids = [...state.pending];
  state.pending.clear();
  try {
    if (ids.length > DETAIL_FETCHES) {
      let after = "";
      for (;;) {
        const page = await api("GET", `/v1/devices?limit=1000${after ? `&after=${encodeURIComponent(after)}` : ""}`);
        page.devices.forEach(merge);
        if (!page.next) break;
        after = page.next;
      }
    } else {
      await Promise.all(
        ids.map((id) => api("GET", `/v1/devices/${encodeURIComponent(id)}`).then(merge, () => {})),
      );
    }
  } catch {
    // the next snapshot brings them
  }
  markDirty();
}

// ------------------------------------------------------------------ fleet view

function markDirty() {
  state.dirty = true;
  if (!state.frame) state.frame = requestAnimationFrame(frame);
}

function frame() {
  state.frame = 0;
  if (state.dirty) {
    state.dirty = false;
    derive();
  }
  render();
}

function sortValue(device, key) {
  switch (key) {
    case "status":
      return ORDER[device.status] ?? 9;
    case "since":
      return device.status_since || "";
    case "seen":
      return device.last_seen || "";
    case "profile":
      return device.profile || "";
    case "labels":
      return labelText(device.labels);
    default:
      return device.id;
  }
}

function derive() {
  const { status, label, text } = state.filter;
  let labelKey = null;
  let labelValue = null;
  if (label) {
    const at = label.indexOf(":");
    labelKey = at > 0 ? label.slice(0, at) : label;
    labelValue = at > 0 ? label.slice(at + 1) : null;
  }
  const needle = text.trim().toLowerCase();
  const counts = { online: 0, stale: 0, offline: 0, unknown: 0 };
  let flapping = 0;
  const view = [];
  let unranked = false;
  for (const device of state.devices.values()) {
    if (device.rank === undefined) unranked = true;
    counts[device.status] = (counts[device.status] || 0) + 1;
    if (device.flapping) flapping += 1;
    if (status && device.status !== status) continue;
    if (labelKey !== null) {
      const value = device.labels?.[labelKey];
      if (value === undefined || (labelValue !== null && value !== labelValue)) continue;
    }
    if (
      needle &&
      !device.id.toLowerCase().includes(needle) &&
      !(device.profile || "").toLowerCase().includes(needle) &&
      !labelText(device.labels).toLowerCase().includes(needle)
    ) {
      continue;
    }
    view.push(device);
  }
  // Collating ids is the expensive comparison: rank every device by id once, when
  // one is new, so that each frame's sort compares numbers (10 000 devices: ~10x).
  if (unranked) {
    const all = [...state.devices.values()].sort((a, b) => collator.compare(a.id, b.id));
    all.forEach((device, index) => {
      device.rank = index;
    });
  }
  const { key, dir } = state.sort;
  const keyed = view.map((device) => [key === "id" ? device.rank : sortValue(device, key), device]);
  keyed.sort((a, b) => {
    let order;
    if (typeof a[0] === "number") order = a[0] - b[0];
    else order = a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;
    return order * dir || a[1].rank - b[1].rank;
  });
  state.view = keyed.map((pair) => pair[1]);
  $("n-all").textContent = state.devices.size.toLocaleString();
  for (const name of STATUSES) $(`n-${name}`).textContent = counts[name].toLocaleString();
  $("n-flapping").textContent = flapping.toLocaleString();
  const shown = state.view.length;
  $("shown").textContent =
    shown === state.devices.size ? `${shown.toLocaleString()} shown` : `${shown.toLocaleString()} of ${state.devices.size.toLocaleString()} shown`;
  $("grid").setAttribute("aria-rowcount", String(shown + 1));
  $("empty").hidden = shown > 0 || state.devices.size === 0;
  if (state.active >= shown) state.active = Math.max(0, shown - 1);
  if (state.page) renderDevice();
}

function makeRow() {
  const row = h("div", { class: "row", role: "row", tabindex: "-1" });
  for (const name of ["id", "status", "since", "seen", "profile", "labels"]) {
    row.append(h("div", { class: `c-${name}`, role: "cell" }));
  }
  row.addEventListener("click", () => openDevice(row.dataset.id));
  $("spacer").append(row);
  return row;
}

function fillRow(row, device, index, now) {
  row.style.transform = `translateY(${index * ROW}px)`;
  row.dataset.id = device.id;
  row.dataset.index = String(index);
  row.setAttribute("aria-rowindex", String(index + 2));
  row.tabIndex = index === state.active ? 0 : -1;
  const [idCell, statusCell, sinceCell, seenCell, profileCell, labelsCell] = row.children;
  const signature = `${device.id}\u0000${device.status}\u0000${device.flapping}\u0000${device.profile}\u0000${labelText(device.labels)}`;
  if (row.signature !== signature) {
    row.signature = signature;
    row.dataset.status = device.status;
    idCell.textContent = device.id;
    statusCell.replaceChildren(
      badge(device.status),
      device.flapping ? h("span", { class: "flapping", title: "changing status often" }, "↯ flapping") : "",
    );
    profileCell.textContent = device.profile || "";
    labelsCell.replaceChildren(
      ...Object.entries(device.labels || {}).map(([k, v]) => h("span", { class: "chip" }, `${k}=${v}`)),
    );
  }
  sinceCell.textContent = device.status_since ? span(now - Date.parse(device.status_since)) : "";
  sinceCell.title = local(device.status_since);
  seenCell.textContent = ago(device.last_seen, now);
  seenCell.title = local(device.last_seen);
}

function render() {
  if ($("fleet").hidden) return;
  const viewport = $("viewport");
  const total = state.view.length;
  $("spacer").style.height = `${total * ROW}px`;
  const top = viewport.scrollTop;
  const first = Math.max(0, Math.floor(top / ROW) - OVERSCAN);
  const last = Math.min(total, Math.ceil((top + viewport.clientHeight) / ROW) + OVERSCAN);
  const visibleFirst = Math.floor(top / ROW);
  const visibleLast = Math.floor((top + viewport.clientHeight - 1) / ROW);
  if (total && (state.active < visibleFirst || state.active > visibleLast) && !viewport.contains(document.activeElement)) {
    state.active = Math.min(total - 1, Math.max(0, visibleFirst));
  }
  while (pool.length < last - first) pool.push(makeRow());
  const now = Date.now();
  pool.forEach((row, k) => {
    const index = first + k;
    if (index < last) {
      row.hidden = false;
      fillRow(row, state.view[index], index, now);
    } else {
      row.hidden = true;
      row.dataset.index = "";
    }
  });
}

function tick() {
  if (!$("fleet").hidden) render();
  if (state.page) updateDeviceTimes();
}

function setActive(index) {
  const total = state.view.length;
  if (!total) return;
  state.active = Math.min(total - 1, Math.max(0, index));
  const viewport = $("viewport");
  const top = state.active * ROW;
  if (top < viewport.scrollTop) viewport.scrollTop = top;
  else if (top + ROW > viewport.scrollTop + viewport.clientHeight) {
    viewport.scrollTop = top + ROW - viewport.clientHeight;
  }
  render();
  pool.find((row) => row.dataset.index === String(state.active))?.focus({ preventScroll: true });
}

function onGridKey(event) {
  const pageRows = Math.max(1, Math.floor($("viewport").clientHeight / ROW) - 1);
  const moves = {
    ArrowDown: 1,
    ArrowUp: -1,
    PageDown: pageRows,
    PageUp: -pageRows,
    Home: -Infinity,
    End: Infinity,
  };
  if (event.key in moves) {
    event.preventDefault();
    const target = state.active + moves[event.key];
    setActive(Number.isFinite(target) ? target : target > 0 ? state.view.length - 1 : 0);
  } else if (event.key === "Enter") {
    const id = event.target.closest?.(".row")?.dataset.id;
    if (id) openDevice(id);
  }
}

function setSort(key) {
  state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : 1 };
  for (const header of document.querySelectorAll("[role=columnheader]")) {
    const mine = header.querySelector("button").dataset.sort === key;
    header.setAttribute("aria-sort", mine ? (state.sort.dir > 0 ? "ascending" : "descending") : "none");
  }
  markDirty();
}

function setStatusFilter(status) {
  state.filter.status = status;
  $("f-status").value = status;
  for (const button of document.querySelectorAll(".count[data-status]")) {
    button.setAttribute("aria-pressed", String(button.dataset.status === status));
  }
  markDirty();
}

// ------------------------------------------------------------------ routes

function openDevice(id) {
  location.hash = `#/devices/${encodeURIComponent(id)}`;
}

function route() {
  const match = location.hash.match(/^#\/devices\/(.+)$/);
  if (match) {
    showDevice(decodeURIComponent(match[1]));
  } else {
    state.page = null;
    show("fleet");
    markDirty();
  }
}

// ------------------------------------------------------------------ device page

async function showDevice(id) {
  show("device");
  const root = $("device");
  const back = h("a", { href: "#/", class: "back" }, "← Fleet");
  root.replaceChildren(back, h("p", {}, "Loading…"));
  state.page = { id, device: null, events: [], uptime: {}, gone: false };
  let device;
  let events;
  try {
    [device, events] = await Promise.all([
      api("GET", `/v1/devices/${encodeURIComponent(id)}`),
      loadTimeline(id),
    ]);
  } catch (error) {
    root.replaceChildren(back, h("p", { class: "error", role: "alert" }, error.status === 404 ? `There is no device “${id}”.` : error.message));
    state.page = null;
    return;
  }
  if (state.page?.id !== id) return;
  state.page.device = device;
  state.page.events = events;
  renderDevice();
  loadUptime();
  root.querySelector("h1")?.focus();
}

async function loadTimeline(id) {
  // Oldest first from the API; keep the newest TIMELINE (at most 20 pages read).
  let after = 0;
  let kept = [];
  for (let pages = 0; pages < 20; pages += 1) {
    const page = await api("GET", `/v1/devices/${encodeURIComponent(id)}/transitions?after=${after}&limit=1000`);
    kept = kept.concat(page.events).slice(-TIMELINE);
    if (page.events.length < 1000) break;
    after = page.events[page.events.length - 1].seq;
  }
  return kept.reverse();
}

async function loadUptime() {
  const page = state.page;
  if (!page) return;
  const id = encodeURIComponent(page.id);
  try {
    const [day, week] = await Promise.all([
      api("GET", `/v1/devices/${id}/uptime?window=24h`),
      api("GET", `/v1/devices/${id}/uptime?window=7d`),
    ]);
    if (state.page !== page) return;
    page.uptime = { day, week };
    renderDevice();
  } catch {
    // shown as missing
  }
}

// A stream message on the device page: the timeline grows, the uptime is re-read
// (once a second at most: it is computed from the durable history).
function pageEvent(message) {
  const page = state.page;
  if (!page || message.device_id !== page.id || !page.device) return;
  if (message.type === "transition") {
    page.events.unshift(message);
    page.events.length = Math.min(page.events.length, TIMELINE);
    clearTimeout(state.uptimeTimer);
    state.uptimeTimer = setTimeout(loadUptime, 1000);
  } else if (message.action === "deleted") {
    page.gone = true;
  } else if (message.device) {
    Object.assign(page.device, message.device);
  }
}

function uptimeBar(title, answer) {
  if (!answer) return h("div", { class: "uptime" }, h("h3", {}, title), h("p", { class: "muted" }, "…"));
  const bar = h("div", { class: "bar-track", role: "img", "aria-label": `${title}: ${STATUSES.map((s) => `${percent(answer.fractions[s])} ${s}`).join(", ")}` });
  for (const status of STATUSES) {
    const fraction = answer.fractions[status];
    if (fraction <= 0) continue;
    const part = h("span", { class: `seg s-${status}`, title: `${status} ${percent(fraction)}` });
    part.style.width = `${fraction * 100}%`;
    bar.append(part);
  }
  const legend = h(
    "p",
    { class: "legend" },
    ...STATUSES.filter((s) => answer.fractions[s] > 0).map((s) => h("span", { class: `key s-${s}` }, `${percent(answer.fractions[s])} ${s}`)),
    h("span", { class: "muted" }, `${answer.transitions} transition${answer.transitions === 1 ? "" : "s"}`),
  );
  return h("div", { class: "uptime" }, h("h3", {}, title), bar, legend);
}

function table(entries) {
  if (!entries.length) return h("p", { class: "muted" }, "none reported");
  return h(
    "table",
    { class: "kv" },
    h("tbody", {}, ...entries.map(([key, value]) => h("tr", {}, h("th", { scope: "row" }, key), h("td", {}, typeof value === "string" ? value : JSON.stringify(value))))),
  );
}

function renderDevice() {
  const page = state.page;
  if (!page || !page.device) return;
  const root = $("device");
  const live = state.devices.get(page.id);
  // Presence from the stream when it has the device, else from the page's own read.
  const device = { ...page.device, ...(live ? pick(live) : {}) };
  const now = Date.now();
  const facts = [
    ["Status since", h("span", { "data-time": device.status_since, "data-kind": "span" }, span(now - Date.parse(device.status_since))), ` (${local(device.status_since)})`],
    ["Last seen", h("span", { "data-time": device.last_seen || "", "data-kind": "ago" }, ago(device.last_seen, now)), device.last_seen ? ` (${local(device.last_seen)})` : ""],
    ["Reason", device.reason || "—"],
    ["Source", device.source || "—"],
    ["Profile", device.profile],
    ["Labels", labelText(device.labels) || "—"],
    ["Registered", local(device.created_at)],
    ["Next deadline", device.next_deadline ? local(device.next_deadline) : "—"],
  ];
  const children = [
    h("a", { href: "#/", class: "back" }, "← Fleet"),
    h("div", { class: "title" }, h("h1", { tabindex: "-1" }, device.id), badge(device.status), device.flapping ? h("span", { class: "flapping" }, "↯ flapping") : ""),
    page.gone ? h("p", { class: "error", role: "alert" }, "This device was removed.") : "",
    h("div", { class: "panels" },
      h("section", { class: "panel" }, h("h2", {}, "Presence"), h("dl", { class: "facts" }, ...facts.flatMap(([k, ...v]) => [h("dt", {}, k), h("dd", {}, ...v)]))),
      h("section", { class: "panel" }, h("h2", {}, "Uptime"), uptimeBar("Last 24 hours", page.uptime.day), uptimeBar("Last 7 days", page.uptime.week)),
      h("section", { class: "panel" }, h("h2", {}, "Attributes"), table(Object.entries(device.attributes || {}))),
      h("section", { class: "panel" }, h("h2", {}, "Metrics"), table(Object.entries(device.metrics || {}))),
    ),
    state.admin && !page.gone ? editForm(device) : "",
    h("section", { class: "panel timeline" }, h("h2", {}, "Transitions"), timeline(page.events)),
  ];
  const focused = root.contains(document.activeElement) && document.activeElement.closest("form");
  if (focused) {
    // Do not redraw under someone typing: only the live parts move.
    updateDeviceTimes();
    return;
  }
  root.replaceChildren(...children);
}

function pick(live) {
  const presence = {};
  for (const field of ["status", "status_since", "last_seen", "reason", "source", "flapping", "profile", "labels"]) {
    if (live[field] !== undefined) presence[field] = live[field];
  }
  return presence;
}

function timeline(events) {
  if (!events.length) return h("p", { class: "muted" }, "No transitions yet.");
  return h(
    "ol",
    { class: "events" },
    ...events.map((event) =>
      h(
        "li",
        {},
        h("time", { datetime: event.at }, local(event.at)),
        h("span", { class: "move" }, badge(event.from), h("span", { "aria-hidden": "true" }, " → "), h("span", { class: "sr" }, " to "), badge(event.to)),
        h("span", { class: "reason" }, event.reason),
        h("span", { class: "muted" }, `${event.source} · seq ${event.seq}`),
      ),
    ),
  );
}

function updateDeviceTimes() {
  const now = Date.now();
  for (const node of $("device").querySelectorAll("[data-time]")) {
    const time = node.dataset.time;
    node.textContent = node.dataset.kind === "ago" ? ago(time || null, now) : span(now - Date.parse(time));
  }
}

function profileOptions(select, current) {
  select.replaceChildren(...state.profiles.map((name) => h("option", { value: name, selected: name === current }, name)));
  return select;
}

function editForm(device) {
  const profile = profileOptions(h("select", { id: "edit-profile" }), device.profile);
  const labels = h("input", { id: "edit-labels", value: labelText(device.labels), spellcheck: "false" });
  const problem = h("p", { class: "error", role: "alert" });
  const form = h(
    "form",
    { class: "panel edit", "aria-label": "Edit device" },
    h("h2", {}, "Edit"),
    h("label", {}, "Profile ", profile),
    h("label", { class: "grow" }, "Labels ", labels),
    h("button", { type: "submit" }, "Save"),
    h("button", { type: "button", class: "danger", id: "remove" }, "Remove device"),
    problem,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const body = { profile: profile.value, labels: parseLabels(labels.value) };
      const saved = await api("PUT", `/v1/devices/${encodeURIComponent(device.id)}`, body);
      Object.assign(state.page.device, saved);
      problem.textContent = "Saved.";
      document.activeElement.blur();
      renderDevice();
    } catch (error) {
      problem.textContent = error.message;
    }
  });
  form.querySelector("#remove").addEventListener("click", async () => {
    if (!confirm(`Remove ${device.id}? Its history stays; its tokens are revoked.`)) return;
    try {
      await api("DELETE", `/v1/devices/${encodeURIComponent(device.id)}`);
      location.hash = "#/";
    } catch (error) {
      problem.textContent = error.message;
    }
  });
  return form;
}

// ------------------------------------------------------------------ wiring

function bind() {
  $("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("key").value.trim();
    $("key").value = "";
    if (key) signIn(key);
  });
  $("signout").addEventListener("click", () => signOut("Signed out."));
  $("f-status").addEventListener("change", (event) => setStatusFilter(event.target.value));
  for (const button of document.querySelectorAll(".count[data-status]")) {
    button.addEventListener("click", () => setStatusFilter(button.dataset.status));
  }
  $("f-label").addEventListener("input", (event) => {
    state.filter.label = event.target.value.trim();
    markDirty();
  });
  $("f-text").addEventListener("input", (event) => {
    state.filter.text = event.target.value;
    markDirty();
  });
  for (const button of document.querySelectorAll("[data-sort]")) {
    button.addEventListener("click", () => setSort(button.dataset.sort));
  }
  const viewport = $("viewport");
  viewport.addEventListener("scroll", () => {
    if (!state.frame) state.frame = requestAnimationFrame(frame);
  });
  viewport.addEventListener("keydown", onGridKey);
  viewport.addEventListener("focusin", (event) => {
    const index = event.target.dataset?.index;
    if (index) state.active = Number(index);
  });
  window.addEventListener("resize", () => markDirty());
  window.addEventListener("hashchange", route);
  $("add-toggle").addEventListener("click", () => {
    const form = $("add-form");
    form.hidden = !form.hidden;
    $("add-toggle").setAttribute("aria-expanded", String(!form.hidden));
    if (!form.hidden) $("add-id").focus();
  });
  $("add-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const id = $("add-id").value.trim();
    try {
      const body = { profile: $("add-profile").value, labels: parseLabels($("add-labels").value) };
      const device = await api("PUT", `/v1/devices/${encodeURIComponent(id)}`, body);
      state.devices.set(device.id, { ...device, ...(state.devices.get(device.id) || {}), labels: device.labels, profile: device.profile });
      $("add-error").textContent = `Added ${device.id}.`;
      $("add-id").value = "";
      $("add-labels").value = "";
      markDirty();
    } catch (error) {
      $("add-error").textContent = error.message;
    }
  });
  setInterval(tick, 1000);
}

async function loadProfiles() {
  try {
    const spec = await (await fetch("/openapi.json", { cache: "no-store" })).json();
    state.profiles = spec.components.schemas.Device.properties.profile.enum;
  } catch {
    state.profiles = ["default"];
  }
  profileOptions($("add-profile"), "default");
}

async function boot(attempt = 0) {
  let health;
  try {
    health = await (await fetch("/healthz", { cache: "no-store" })).json();
  } catch {
    setConn("reconnecting");
    setTimeout(() => boot(attempt + 1), Math.min(10000, 500 * 2 ** attempt) * (0.5 + Math.random() / 2));
    return;
  }
  state.mode = health.auth;
  await loadProfiles();
  if (state.mode === "open") {
    state.admin = true;
    $("who").textContent = "open hub: no key needed";
    start();
  } else if (state.key) {
    await signIn(state.key);
  } else {
    showSignin();
  }
}

bind();
boot();
