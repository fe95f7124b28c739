// The live connection: a snapshot, then the stream, resumed by seq. Never polls.
//
// WebSocket first (/v1/ws: it opens with a snapshot, or replays what a resume
// missed); Server-Sent Events (/v1/stream) when a WebSocket cannot be opened while
// the hub itself answers (a proxy that does not pass upgrades). For SSE the
// snapshot is GET /v1/devices, paged, resumed from the seq of its first page:
// replaying a transition the snapshot already shows is harmless, missing one is not.
//
// States shown to the user: "connecting…", "live", "reconnecting…" and "resynced"
// (back, with everything missed applied). Reconnects wait a capped exponential
// backoff with jitter, so a restarted hub is not hit by every browser at once.

const BACKOFF_BASE = 500; // ms
const BACKOFF_CAP = 10000; // ms
const PAGE = 1000;

export class Live {
  /**
   * @param {{token: string|null, transport: string, onMessage: (m: object) => void,
   *          onState: (state: string) => void, onAuth: () => void}} options
   */
  constructor(options) {
    this.token = options.token;
    this.onMessage = options.onMessage;
    this.onState = options.onState;
    this.onAuth = options.onAuth;
    this.transport = options.transport === "sse" ? "sse" : "ws";
    this.seq = null; // the last seq applied; null: a snapshot is needed
    this.attempt = 0;
    this.everLive = false;
    this.stopped = false;
    this.socket = null;
    this.source = null;
    this.timer = null;
  }

  start() {
    this.stopped = false;
    this.onState("connecting");
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.closeTransports();
  }

  /** The stream said the history is gone (or we fell behind): take a new snapshot. */
  resnapshot() {
    this.seq = null;
    this.closeTransports();
    this.onState("reconnecting");
    this.schedule(0);
  }

  /** Called by the page for every transition it applied. */
  saw(seq) {
    if (this.seq === null || seq > this.seq) this.seq = seq;
  }

  query(extra) {
    const params = new URLSearchParams(extra);
    if (this.token) params.set("token", this.token);
    const text = params.toString();
    return text ? "?" + text : "";
  }

  closeTransports() {
    if (this.socket) {
      this.socket.onclose = this.socket.onmessage = this.socket.onerror = null;
      this.socket.close();
      this.socket = null;
    }
    if (this.source) {
      this.source.close();
      this.source = null;
    }
  }

  opened() {
    this.attempt = 0;
    this.onState(this.everLive ? "resynced" : "live");
    this.everLive = true;
  }

  lost() {
    if (this.stopped) return;
    this.closeTransports();
    this.onState("reconnecting");
    const delay = Math.min(BACKOFF_CAP, BACKOFF_BASE * 2 ** this.attempt);
    this.attempt += 1;
    this.schedule(delay * (0.5 + Math.random() / 2));
  }

  schedule(delay) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  connect() {
    if (this.stopped) return;
    if (this.transport === "sse") this.connectSse();
    else this.connectWs();
  }

  connectWs() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const extra = this.seq === null ? {} : { after: String(this.seq) };
    let socket;
    try {
      socket = new WebSocket(`${scheme}//${location.host}/v1/ws${this.query(extra)}`);
    } catch {
      this.transport = "sse";
      this.schedule(0);
      return;
    }
    this.socket = socket;
    let open = false;
    socket.onopen = () => {
      open = true;
      this.opened();
    };
    socket.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      this.onMessage(message);
    };
    socket.onclose = (event) => {
      this.socket = null;
      if (event.code === 1008 && event.reason === "key revoked") {
        this.stop();
        this.onAuth();
        return;
      }
      if (!open) {
        this.checkFallback();
        return;
      }
      this.lost();
    };
  }

  // A WebSocket that never opened: if the hub answers plain HTTP, something between
  // us refuses upgrades, so use SSE from now on; otherwise the hub is just away.
  async checkFallback() {
    try {
      const answer = await fetch("/healthz", { cache: "no-store" });
      if (answer.ok) this.transport = "sse";
    } catch {
      // the hub is down: keep the transport, back off
    }
    this.lost();
  }

  async snapshotOverHttp() {
    const headers = this.token ? { Authorization: `Bearer ${this.token}` } : {};
    const devices = [];
    let seq = null;
    let after = "";
    for (;;) {
      const params = new URLSearchParams({ limit: String(PAGE) });
      if (after) params.set("after", after);
      const answer = await fetch(`/v1/devices?${params}`, { headers, cache: "no-store" });
      if (answer.status === 401 || answer.status === 403) throw new AuthError();
      if (!answer.ok) throw new Error(`GET /v1/devices: ${answer.status}`);
      const page = await answer.json();
      if (seq === null) seq = page.seq;
      devices.push(...page.devices);
      if (!page.next) break;
      after = page.next;
    }
    return { type: "snapshot", seq, devices };
  }

  async connectSse() {
    if (this.seq === null) {
      try {
        this.onMessage(await this.snapshotOverHttp());
      } catch (error) {
        if (error instanceof AuthError) {
          this.stop();
          this.onAuth();
        } else {
          this.lost();
        }
        return;
      }
    }
    if (this.stopped) return;
    const source = new EventSource(`/v1/stream${this.query({ after: String(this.seq) })}`);
    this.source = source;
    const handle = (event) => {
      try {
        this.onMessage(JSON.parse(event.data));
      } catch {
        // not JSON: ignore
      }
    };
    for (const kind of ["transition", "seen", "device"]) source.addEventListener(kind, handle);
    source.addEventListener("reset", (event) => {
      handle(event);
    });
    source.onopen = () => this.opened();
    // EventSource reconnects by itself (with Last-Event-ID) only after a dropped
    // stream; we take over so the backoff, jitter and the resume seq are ours.
    source.onerror = () => this.lost();
  }
}

class AuthError extends Error {}
