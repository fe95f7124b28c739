// Small pure helpers: DOM building without innerHTML, and how times read.

/** An element; children are nodes or strings (always text, never markup). */
export function h(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export const STATUSES = ["online", "stale", "offline", "unknown"];
export const GLYPHS = { online: "●", stale: "◐", offline: "○", unknown: "?" };

/** A status badge: a shape and a word, coloured; colour is never the only cue. */
export function badge(status) {
  return h(
    "span",
    { class: `badge s-${status}` },
    h("span", { class: "glyph", "aria-hidden": "true" }, GLYPHS[status] || "?"),
    ` ${status}`,
  );
}

/** "just now", "3 s", "5 min", "2 h", "4 d" for a duration in milliseconds. */
export function span(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 1) return "just now";
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const hours = Math.floor(m / 60);
  if (hours < 48) return `${hours} h`;
  return `${Math.floor(hours / 24)} d`;
}

/** "3 s ago" for an RFC 3339 time, relative to ``now`` (ms); "never" for null. */
export function ago(time, now) {
  if (!time) return "never";
  const text = span(now - Date.parse(time));
  return text === "just now" ? text : `${text} ago`;
}

/** A time as the reader's local date and time, for titles and the timeline. */
export function local(time) {
  if (!time) return "";
  const date = new Date(time);
  return date.toLocaleString(undefined, {
    year: "numeric",
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });
}

export function labelText(labels) {
  return Object.entries(labels || {})
    .map(([key, value]) => `${key}=${value}`)
    .join(", ");
}

/** "a=1, b=2" → {a: "1", b: "2"}; throws on an entry without "=". */
export function parseLabels(text) {
  const labels = {};
  for (const part of text.split(/[,\n]/)) {
    const item = part.trim();
    if (!item) continue;
    const at = item.indexOf("=");
    if (at <= 0) throw new Error(`label "${item}" must be key=value`);
    labels[item.slice(0, at).trim()] = item.slice(at + 1).trim();
  }
  return labels;
}

export function percent(fraction) {
  const value = fraction * 100;
  if (value === 0 || value === 100) return `${value} %`;
  if (value < 0.1) return "< 0.1 %";
  if (value > 99.9) return "> 99.9 %";
  return `${value.toFixed(1)} %`;
}
