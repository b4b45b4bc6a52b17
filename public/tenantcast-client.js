// tenantcast client SDK, generated from client/ by `npm run build:client`. Do not edit.

// client/alarms.ts
var RECEIPT_BATCH = 100;
var RECEIPT_DELAY_MS = 100;
var RANK = { open: 0, acknowledged: 1 };
function newestFirst(a, b) {
  const byTime = Date.parse(b.createdAt) - Date.parse(a.createdAt);
  return byTime !== 0 ? byTime : a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}
function isRecord(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
var AlarmState = class {
  constructor(host) {
    this.host = host;
  }
  host;
  alarms = /* @__PURE__ */ new Map();
  /** Ids resolved or expired since the last `authenticated`: a snapshot does not revive them. */
  closed = /* @__PURE__ */ new Set();
  /** Ids confirmed (or queued) once: never confirmed again. */
  confirmed = /* @__PURE__ */ new Set();
  queue = [];
  timer;
  /** Unresolved alarms, newest first. */
  list() {
    return [...this.alarms.values()].sort(newestFirst);
  }
  /** A new socket authenticated: its `open-alarms` pages come next, or none when there are none. */
  authenticated() {
    this.closed.clear();
    const had = this.alarms.size > 0;
    this.alarms.clear();
    if (had) this.changed();
    if (this.queue.length > 0) this.arm();
  }
  snapshot(frame) {
    let changed = false;
    for (const record of Array.isArray(frame.alarms) ? frame.alarms : []) {
      if (!isRecord(record) || typeof record.id !== "string" || this.closed.has(record.id)) continue;
      changed = this.merge(record) || changed;
      this.receive(record.id);
    }
    if (changed) this.changed();
  }
  event(frame) {
    const data = frame.data;
    if (!isRecord(data) || typeof data.id !== "string") return;
    const id = data.id;
    if (frame.event === "alarm:created") {
      if (data.ackable !== true) return;
      this.receive(id);
      if (this.closed.has(id) || this.alarms.has(id)) return;
      this.alarms.set(id, { id, status: "open", alarm: data, createdAt: frame.timestamp, escalations: [] });
      this.changed();
    } else if (frame.event === "alarm:updated" && typeof data.status === "string") {
      const current = this.alarms.get(id);
      if (data.status === "resolved" || data.status === "expired") {
        this.close(id);
        return;
      }
      if (current === void 0 || data.status !== "acknowledged" || current.status === "acknowledged") return;
      const next = { ...current, status: "acknowledged" };
      if (typeof data.by === "string") next.acknowledgedBy = data.by;
      if (typeof data.at === "string") next.acknowledgedAt = data.at;
      if (typeof data.note === "string") next.note = data.note;
      this.alarms.set(id, next);
      this.changed();
    } else if (frame.event === "alarm:escalated" && typeof data.level === "number") {
      const current = this.alarms.get(id);
      if (current === void 0 || current.escalations.includes(data.level)) return;
      this.alarms.set(id, { ...current, escalations: [...current.escalations, data.level] });
      this.changed();
    }
  }
  /** The reply to this client's own `ack` or `resolve`: the alarm as the server holds it. */
  replied(frame) {
    const record = frame.alarm;
    if (!isRecord(record) || typeof record.id !== "string") return;
    if (record.status === "resolved" || record.status === "expired") this.close(record.id);
    else if (this.merge(record)) this.changed();
  }
  /** The client closed for good: nothing more is sent. */
  stop() {
    this.host.clearTimeout(this.timer);
    this.timer = void 0;
  }
  /** Takes a record unless the one held is as far along; true when the list changed. */
  merge(record) {
    const status = String(record.status);
    const rank = RANK[status];
    if (rank === void 0) return false;
    const current = this.alarms.get(record.id);
    if (current !== void 0 && (RANK[current.status] ?? 0) >= rank) return false;
    this.alarms.set(record.id, { escalations: [], ...record });
    return true;
  }
  close(id) {
    this.closed.add(id);
    this.confirmed.delete(id);
    if (this.alarms.delete(id)) this.changed();
  }
  receive(id) {
    if (this.confirmed.has(id)) return;
    this.confirmed.add(id);
    this.queue.push(id);
    if (this.queue.length >= RECEIPT_BATCH) this.flush();
    else this.arm();
  }
  arm() {
    if (this.timer !== void 0) return;
    this.timer = this.host.setTimeout(() => {
      this.timer = void 0;
      this.flush();
    }, RECEIPT_DELAY_MS);
  }
  flush() {
    this.host.clearTimeout(this.timer);
    this.timer = void 0;
    while (this.queue.length > 0) {
      const ids = this.queue.slice(0, RECEIPT_BATCH);
      if (!this.host.notify({ type: "received", ids })) return;
      this.queue = this.queue.slice(ids.length);
    }
  }
  changed() {
    this.host.changed(this.list());
  }
};

// client/backoff.ts
var DEFAULT_BACKOFF = { initialDelay: 1e3, maxDelay: 5e3, factor: 2, maxAttempts: Infinity, minUptime: 5e3 };
function backoffCeiling(policy, attempt) {
  return Math.min(policy.maxDelay, policy.initialDelay * policy.factor ** attempt);
}
function backoffDelay(policy, attempt, random) {
  return Math.floor(random() * backoffCeiling(policy, attempt));
}
function rateLimitedDelay(policy, random) {
  return Math.floor(policy.maxDelay / 2 + random() * policy.maxDelay / 2);
}
function retryHint(reason) {
  const match = /\bretry=(\d+)\b/.exec(reason);
  return match === null ? void 0 : Number(match[1]);
}

// client/token.ts
function decodeTokenPayload(token) {
  const part = token.split(".")[1];
  if (part === void 0 || part === "") return void 0;
  try {
    const base64 = part.replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "=".repeat((4 - base64.length % 4) % 4);
    const binary = atob(padded);
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    const payload = JSON.parse(new TextDecoder().decode(bytes));
    return typeof payload === "object" && payload !== null && !Array.isArray(payload) ? payload : void 0;
  } catch {
    return void 0;
  }
}
function tokenTimes(token) {
  const payload = decodeTokenPayload(token);
  const times = {};
  if (typeof payload?.exp === "number") times.expiresAt = payload.exp * 1e3;
  if (typeof payload?.iat === "number") times.issuedAt = payload.iat * 1e3;
  return times;
}
function refreshAt(token, now, margin) {
  const { expiresAt, issuedAt } = tokenTimes(token);
  if (expiresAt === void 0) return void 0;
  const lifetime = Math.max(0, expiresAt - (issuedAt ?? now));
  return expiresAt - (margin ?? Math.min(3e4, lifetime / 10));
}

// client/wake.ts
function browserWakeSources() {
  const scope = globalThis;
  const sources = {};
  const document = scope.document;
  if (typeof document?.addEventListener === "function") sources.document = document;
  if (typeof scope.addEventListener === "function") sources.window = scope;
  return sources;
}
function onWake(sources, wake) {
  const { document, window } = sources;
  const visible = () => {
    if (document?.visibilityState === "visible") wake();
  };
  document?.addEventListener("visibilitychange", visible);
  window?.addEventListener("online", wake);
  return () => {
    document?.removeEventListener("visibilitychange", visible);
    window?.removeEventListener("online", wake);
  };
}

// client/types.ts
var TenantcastError = class extends Error {
  constructor(code, message, ref, options) {
    super(message, options);
    this.code = code;
    this.ref = ref;
  }
  code;
  ref;
  name = "TenantcastError";
};
var ClientErrorCode = {
  /** A request was made while the client was not open. */
  NOT_CONNECTED: "NOT_CONNECTED",
  /** The socket closed before the reply arrived. */
  CONNECTION_CLOSED: "CONNECTION_CLOSED",
  /** `getToken` threw or returned nothing usable. */
  TOKEN_UNAVAILABLE: "TOKEN_UNAVAILABLE",
  /** A handler registered with `on` threw. */
  HANDLER_FAILED: "HANDLER_FAILED",
  /** The server sent something that is not a JSON object with a type. */
  INVALID_SERVER_FRAME: "INVALID_SERVER_FRAME",
  /** No reply came within the request's timeout (`requestTimeout`, or the request's own). */
  REQUEST_TIMEOUT: "REQUEST_TIMEOUT",
  /** The request's AbortSignal aborted it. */
  REQUEST_ABORTED: "REQUEST_ABORTED"
};

// client/client.ts
var SUBPROTOCOL = "tenantcast.v1";
var TENANT_STREAM = "tenant";
var MAX_TIMER_MS = 2 ** 31 - 1;
var MIN_REFRESH_INTERVAL_MS = 5e3;
var JOIN_BATCH = 100;
var JOIN_RETRY_MS = 1e3;
var OPEN = 1;
var systemTimers = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => {
    clearTimeout(handle);
  }
};
var MAX_HEAL_TRIES = 3;
var LIFECYCLE = /* @__PURE__ */ new Set(["state", "authenticated", "event", "recovered", "gap", "healed", "presence", "alarms", "close", "error", "frame"]);
var STOP_CODES = /* @__PURE__ */ new Set([1e3, 1002, 1003, 1007, 1008, 1009, 1010]);
function parsePosition(text) {
  const at = text.lastIndexOf(":");
  const offset = Number(text.slice(at + 1));
  if (at <= 0 || !Number.isSafeInteger(offset) || offset < 0 || text.slice(at + 1) === "") {
    throw new TypeError(`a position is <epoch>:<offset>, not ${JSON.stringify(text)}`);
  }
  return { epoch: text.slice(0, at), offset };
}
function formatPosition(position) {
  return `${position.epoch}:${position.offset}`;
}
function channelStream(channel) {
  return `channel:${channel}`;
}
function channelOf(stream) {
  return stream.startsWith("channel:") ? stream.slice("channel:".length) : void 0;
}
var TenantcastClient = class {
  constructor(options) {
    this.options = options;
    const url = new URL(options.url);
    if (url.protocol === "http:") url.protocol = "ws:";
    else if (url.protocol === "https:") url.protocol = "wss:";
    if (url.protocol !== "ws:" && url.protocol !== "wss:") throw new TypeError(`url must be ws:, wss:, http: or https:, not ${url.protocol}`);
    if (options.token === void 0 && options.getToken === void 0) throw new TypeError("connect needs a token or a getToken function");
    this.url = url.toString();
    this.token = options.token;
    this.policy = options.reconnect === false ? void 0 : { ...DEFAULT_BACKOFF, ...options.reconnect };
    this.timers = options.timers ?? systemTimers;
    this.random = options.random ?? Math.random;
    this.heartbeatInterval = options.heartbeatInterval ?? 3e4;
    this.maxHeld = options.maxHeldEvents ?? 5e3;
    this.alarmState = new AlarmState({
      setTimeout: (fn, ms) => this.timers.setTimeout(fn, ms),
      clearTimeout: (handle) => {
        this.timers.clearTimeout(handle);
      },
      notify: (frame) => this.notify(frame),
      changed: (alarms) => {
        this.emit("alarms", alarms);
      }
    });
    if (options.since !== void 0) this.positions.set(TENANT_STREAM, parsePosition(options.since));
    for (const channel of options.channels ?? []) this.channelEntries.set(channel, { waiters: [] });
    this.unwatchWake = options.wake === false ? () => {
    } : onWake(options.wake ?? browserWakeSources(), () => {
      this.woke();
    });
    void this.open();
  }
  options;
  url;
  currentState = "connecting";
  link;
  token;
  attempt = 0;
  nextId = 1;
  reconnectTimer;
  refreshTimer;
  probeTimer;
  /** Rejoin batches in flight, by request id, and timers of batches waiting to be sent again. */
  batches = /* @__PURE__ */ new Map();
  joinTimers = /* @__PURE__ */ new Set();
  unwatchWake;
  /** When the last refresh began (the timers' clock). */
  refreshedAt = -Infinity;
  sessionInfo;
  /** Per stream, the last position delivered to the handlers: they saw every offset up to it. */
  positions = /* @__PURE__ */ new Map();
  heals = /* @__PURE__ */ new Map();
  maxHeld;
  channelEntries = /* @__PURE__ */ new Map();
  pending = /* @__PURE__ */ new Map();
  lifecycleHandlers = /* @__PURE__ */ new Map();
  eventHandlers = /* @__PURE__ */ new Map();
  policy;
  timers;
  random;
  heartbeatInterval;
  alarmState;
  /** `connecting`, `open`, `reconnecting` or `closed`. */
  get state() {
    return this.currentState;
  }
  /** The identity of the current (or last) authenticated connection. */
  get session() {
    return this.sessionInfo;
  }
  /** The channels this client is in, or will rejoin on reconnect. */
  get channels() {
    return [...this.channelEntries.keys()];
  }
  /** The tenant's unresolved ackable alarms, newest first (see AlarmState); the `alarms` event says when they change. */
  get openAlarms() {
    return this.alarmState.list();
  }
  /** Acknowledges an alarm; a repeat resolves with `changed: false` and the first ack. Rejects with ALARM_NOT_FOUND for an id the tenant does not have. */
  async ack(alarmId, note, options) {
    const reply = await this.request(note === void 0 ? { type: "ack", alarmId } : { type: "ack", alarmId, note }, options);
    this.alarmState.replied(reply);
    return reply;
  }
  /** Resolves an alarm (open or acknowledged); a repeat resolves with `changed: false`. */
  async resolve(alarmId, note, options) {
    const reply = await this.request(note === void 0 ? { type: "resolve", alarmId } : { type: "resolve", alarmId, note }, options);
    this.alarmState.replied(reply);
    return reply;
  }
  /** The last position delivered on a stream (`tenant` by default, `user:<id>` or `channel:<name>`), as `<epoch>:<offset>`. */
  position(stream = TENANT_STREAM) {
    const position = this.positions.get(stream);
    return position === void 0 ? void 0 : formatPosition(position);
  }
  on(name, handler) {
    const map = LIFECYCLE.has(name) ? this.lifecycleHandlers : this.eventHandlers;
    let set = map.get(name);
    if (set === void 0) {
      set = /* @__PURE__ */ new Set();
      map.set(name, set);
    }
    set.add(handler);
    return () => {
      this.off(name, handler);
    };
  }
  off(name, handler) {
    const map = LIFECYCLE.has(name) ? this.lifecycleHandlers : this.eventHandlers;
    map.get(name)?.delete(handler);
  }
  /**
   * Joins a channel now if open, else on the next connect; it is rejoined, resuming from its
   * last position, after every reconnect. Resolves with the `subscribed` reply; rejects when
   * the server refuses (the channel is then dropped) or the client closes.
   */
  async subscribe(channel, options = {}) {
    if (this.currentState === "closed") throw new TenantcastError(ClientErrorCode.NOT_CONNECTED, "the client is closed");
    let entry = this.channelEntries.get(channel);
    if (entry === void 0) {
      const since = options.since === void 0 ? void 0 : parsePosition(options.since);
      entry = { waiters: [] };
      this.channelEntries.set(channel, entry);
      if (since !== void 0) this.positions.set(channelStream(channel), since);
    }
    const current = entry;
    if (current.link === this.link && current.reply !== void 0) return current.reply;
    const reply = new Promise((resolve, reject) => {
      current.waiters.push({ resolve, reject });
    });
    if (this.live() !== void 0 && current.link !== this.link) this.sendSubscribe(channel, current);
    return await reply;
  }
  /** Leaves a channel and forgets its position. */
  async unsubscribe(channel) {
    const entry = this.channelEntries.get(channel);
    if (entry === void 0) return;
    this.channelEntries.delete(channel);
    this.positions.delete(channelStream(channel));
    this.heals.delete(channelStream(channel));
    this.caughtUp(this.link, channelStream(channel));
    for (const waiter of entry.waiters.splice(0)) waiter.reject(new TenantcastError("NOT_SUBSCRIBED", `unsubscribed from ${channel} before the subscription completed`));
    if (this.live() !== void 0 && entry.link === this.link) await this.request({ type: "unsubscribe", channel });
  }
  async publish(channel, event, data, options = {}) {
    return await this.request({ type: "publish", channel, event, data }, options);
  }
  /**
   * Sends a request with a fresh `id` and resolves with the first reply carrying it as `ref`.
   * Rejects with the server's code on an `error` with that ref, with CONNECTION_CLOSED when
   * the socket closes first, with REQUEST_TIMEOUT when no reply came in time, with
   * REQUEST_ABORTED when `signal` aborts, and with NOT_CONNECTED unless the client is open.
   * A reply that comes after a timeout or an abort is ignored.
   */
  async request(frame, options = {}) {
    return await this.send(frame, options).reply;
  }
  /** `request`, with the id it was sent with. */
  send(frame, options = {}) {
    const link = this.live();
    const socket = link?.socket;
    if (link === void 0 || socket === void 0) {
      const error = new TenantcastError(ClientErrorCode.NOT_CONNECTED, `cannot send "${frame.type}": the client is ${this.currentState}`);
      return { id: "", reply: Promise.reject(error) };
    }
    const signal = options.signal;
    if (signal?.aborted === true) return { id: "", reply: Promise.reject(new TenantcastError(ClientErrorCode.REQUEST_ABORTED, `"${frame.type}" was aborted before it was sent`)) };
    const id = `r${this.nextId++}`;
    const timeout = options.timeout ?? this.options.requestTimeout ?? 1e4;
    let timer;
    let onAbort = () => {
    };
    const reply = new Promise((resolve, reject) => {
      const settle = () => {
        this.pending.delete(id);
        this.timers.clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      this.pending.set(id, {
        resolve: (value) => {
          settle();
          resolve(value);
        },
        reject: (error) => {
          settle();
          reject(error);
        }
      });
      if (timeout > 0) {
        timer = this.timers.setTimeout(() => {
          settle();
          reject(new TenantcastError(ClientErrorCode.REQUEST_TIMEOUT, `no reply to "${frame.type}" within ${timeout} ms`));
        }, Math.min(timeout, MAX_TIMER_MS));
      }
      onAbort = () => {
        settle();
        reject(new TenantcastError(ClientErrorCode.REQUEST_ABORTED, `"${frame.type}" was aborted`));
      };
      signal?.addEventListener("abort", onAbort);
    });
    socket.send(JSON.stringify({ ...frame, id }));
    return { id, reply };
  }
  /** Sends a frame that has no reply (`received`) on the live socket; false when there is none. */
  notify(frame) {
    const socket = this.live()?.socket;
    if (socket === void 0 || socket.readyState !== OPEN) return false;
    socket.send(JSON.stringify(frame));
    return true;
  }
  /**
   * Reconnects now: a reconnect waiting out its backoff goes at once, and a socket that is open
   * or opening is replaced (closed with 1000 `RECONNECT`; every stream resumes from its last
   * position). Does nothing once closed, or while a 4401's getToken decides what comes next.
   */
  reconnect() {
    if (this.currentState === "closed") return;
    this.timers.clearTimeout(this.probeTimer);
    if (this.reconnectTimer !== void 0) {
      this.timers.clearTimeout(this.reconnectTimer);
      this.reconnectTimer = void 0;
      void this.open();
      return;
    }
    const link = this.link;
    if (link === void 0 || link.done) return;
    link.done = true;
    this.abandon(link, { code: 1e3, reason: "RECONNECT" });
    this.timers.clearTimeout(this.refreshTimer);
    this.rejectPending("the connection closed (reconnect)");
    this.setState("reconnecting");
    if (this.link === link) this.emit("close", { code: 1e3, reason: "RECONNECT", willReconnect: true, delay: 0, attempt: this.attempt });
    void this.open();
  }
  /** A wake-up signal: skip a backoff wait, or check that an open socket still answers. */
  woke() {
    if (this.reconnectTimer !== void 0) {
      this.reconnect();
      return;
    }
    const link = this.live();
    if (link === void 0 || link.socket?.readyState !== OPEN) return;
    this.timers.clearTimeout(this.probeTimer);
    link.sawFrame = false;
    link.socket.send('{"type":"ping"}');
    this.probeTimer = this.timers.setTimeout(() => {
      this.probeTimer = void 0;
      if (link === this.link && !link.done && !link.sawFrame) this.reconnect();
    }, this.options.wakeProbeTimeout ?? 3e3);
  }
  /** Closes for good: no reconnect. Pending requests reject with CONNECTION_CLOSED. */
  close(code = 1e3, reason = "") {
    if (this.currentState === "closed") return;
    const link = this.link;
    this.link = void 0;
    if (link !== void 0) {
      link.done = true;
      this.abandon(link, { code, reason });
    }
    this.stop({ code, reason, willReconnect: false });
  }
  /** The current link if it is authenticated and not yet closed. */
  live() {
    const link = this.link;
    return link !== void 0 && link.authenticated && !link.done ? link : void 0;
  }
  // ---------------------------------------------------------------- connection life
  async open() {
    if (this.currentState === "closed") return;
    const link = { authenticated: false, sawFrame: false, done: false };
    this.link = link;
    let token;
    try {
      token = await this.obtainToken();
    } catch (err) {
      if (this.link !== link) return;
      this.emitError(new TenantcastError(ClientErrorCode.TOKEN_UNAVAILABLE, `getToken failed: ${err.message}`, void 0, { cause: err }));
      this.lost(link, 1006, "TOKEN_UNAVAILABLE");
      return;
    }
    link.token = token;
    const WebSocketClass = this.options.WebSocket ?? await webSocketClass();
    if (this.link !== link) return;
    let socket;
    try {
      socket = new WebSocketClass(this.socketUrl(link), [SUBPROTOCOL, `bearer.${token}`]);
    } catch (err) {
      this.emitError(new TenantcastError(ClientErrorCode.TOKEN_UNAVAILABLE, `cannot open the socket: ${err.message}`, void 0, { cause: err }));
      this.link = void 0;
      link.done = true;
      this.stop({ code: 1006, reason: "CONNECT_FAILED", willReconnect: false });
      return;
    }
    link.socket = socket;
    socket.onopen = null;
    socket.onmessage = (event) => {
      this.receive(link, event.data);
    };
    socket.onclose = (event) => {
      this.lost(link, event.code, event.reason);
    };
    socket.onerror = () => {
    };
    this.armHeartbeat(link);
  }
  /** The token for a new socket: the current one while it is fresh, else a new one from getToken. */
  async obtainToken() {
    const getToken = this.options.getToken;
    const token = this.token;
    if (token !== void 0 && (getToken === void 0 || !this.tokenStale(token))) return token;
    const fresh = await getToken();
    if (typeof fresh !== "string" || fresh === "") throw new Error("getToken returned no token");
    this.token = fresh;
    return fresh;
  }
  tokenStale(token) {
    const at = refreshAt(token, this.timers.now(), this.options.tokenRefreshMargin);
    return at !== void 0 && at <= this.timers.now();
  }
  /**
   * The socket URL, with one `since.<stream>` per stream attached at auth (tenant, user) that
   * has a position, so the server replays what was missed. Channels resume on subscribe.
   */
  socketUrl(link) {
    const url = new URL(this.url);
    link.resumed = [];
    for (const [stream, position] of this.positions) {
      if (channelOf(stream) !== void 0) continue;
      url.searchParams.set(`since.${stream}`, formatPosition(position));
      link.resumed.push(stream);
    }
    return url.toString();
  }
  /**
   * Dead-connection detection: every window, a link that received nothing since the last
   * tick is dead; otherwise it is pinged, so a live server always has something to answer.
   */
  armHeartbeat(link) {
    if (this.heartbeatInterval <= 0) return;
    link.heartbeat = this.timers.setTimeout(() => {
      if (link.done) return;
      if (!link.sawFrame) {
        this.abandon(link, "terminate");
        this.lost(link, 1006, "HEARTBEAT_TIMEOUT");
        return;
      }
      link.sawFrame = false;
      if (link.socket?.readyState === OPEN) link.socket.send('{"type":"ping"}');
      this.armHeartbeat(link);
    }, this.heartbeatInterval);
  }
  /**
   * Detaches a socket and closes it: with a close handshake when asked to close, or at once
   * when the socket is presumed dead (`ws` can terminate; a browser socket can only close).
   */
  abandon(link, how) {
    this.timers.clearTimeout(link.heartbeat);
    const socket = link.socket;
    if (socket === void 0) return;
    socket.onmessage = null;
    socket.onclose = null;
    const terminate = socket.terminate;
    try {
      if (how !== "terminate") socket.close(how.code, how.reason);
      else if (typeof terminate === "function") terminate.call(socket);
      else socket.close(4e3, "HEARTBEAT_TIMEOUT");
    } catch {
      socket.close();
    }
  }
  /** A socket ended (closed, failed, timed out): decide whether and when to come back. */
  lost(link, code, reason) {
    if (link !== this.link || link.done) return;
    link.done = true;
    this.timers.clearTimeout(link.heartbeat);
    this.timers.clearTimeout(this.refreshTimer);
    this.heals.clear();
    this.rejectPending(`the connection closed (${code}${reason === "" ? "" : ` ${reason}`})`);
    if (link.authenticatedAt !== void 0 && this.policy !== void 0 && this.timers.now() - link.authenticatedAt >= this.policy.minUptime) this.attempt = 0;
    if (code === 4401) {
      void this.afterUnauthorized(link, code, reason);
      return;
    }
    if (STOP_CODES.has(code) || code >= 4400 && code < 4500) {
      this.stop({ code, reason, willReconnect: false });
      return;
    }
    this.scheduleReconnect(code, reason, code === 1001 || code === 1013 ? retryHint(reason) : void 0);
  }
  /**
   * 4401: come back only with a token other than the refused one. Refresh and reconnect share
   * one token state, so a refresh that stored a new token while the link was down counts. A
   * getToken that fails goes through backoff, as at the first connect: the next attempt asks again.
   */
  async afterUnauthorized(link, code, reason) {
    const getToken = this.options.getToken;
    if (getToken === void 0) {
      this.stop({ code, reason, willReconnect: false });
      return;
    }
    const refused = link.token;
    let fresh;
    try {
      fresh = await getToken();
    } catch (err) {
      if (this.link !== link) return;
      this.emitError(new TenantcastError(ClientErrorCode.TOKEN_UNAVAILABLE, `getToken failed: ${err.message}`, void 0, { cause: err }));
    }
    if (this.link !== link) return;
    if (typeof fresh === "string" && fresh !== "" && fresh !== refused) this.token = fresh;
    else if (fresh !== void 0 && this.token === refused) {
      this.stop({ code, reason, willReconnect: false });
      return;
    }
    if (this.token === refused) this.token = void 0;
    this.scheduleReconnect(code, reason, void 0);
  }
  scheduleReconnect(code, reason, hint) {
    const policy = this.policy;
    if (policy === void 0 || this.attempt >= policy.maxAttempts) {
      this.stop({ code, reason, willReconnect: false });
      return;
    }
    const delay = hint ?? (code === 4029 ? rateLimitedDelay(policy, this.random) : backoffDelay(policy, this.attempt, this.random));
    this.attempt++;
    this.reconnectTimer = this.timers.setTimeout(() => {
      this.reconnectTimer = void 0;
      void this.open();
    }, delay);
    this.setState("reconnecting");
    this.emit("close", { code, reason, willReconnect: true, delay, attempt: this.attempt });
  }
  /** The terminal state: nothing reconnects, every waiter is told. */
  stop(info) {
    this.unwatchWake();
    this.timers.clearTimeout(this.probeTimer);
    this.timers.clearTimeout(this.reconnectTimer);
    this.timers.clearTimeout(this.refreshTimer);
    this.reconnectTimer = void 0;
    this.alarmState.stop();
    this.rejectPending("the client is closed");
    for (const entry of this.channelEntries.values()) {
      for (const waiter of entry.waiters.splice(0)) waiter.reject(new TenantcastError(ClientErrorCode.CONNECTION_CLOSED, "the client is closed"));
    }
    this.setState("closed");
    this.emit("close", info);
  }
  rejectPending(message) {
    for (const batch of this.batches.values()) this.timers.clearTimeout(batch.timer);
    this.batches.clear();
    for (const timer of this.joinTimers) this.timers.clearTimeout(timer);
    this.joinTimers.clear();
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const waiter of pending) waiter.reject(new TenantcastError(ClientErrorCode.CONNECTION_CLOSED, message));
  }
  setState(next) {
    const previous = this.currentState;
    if (previous === next) return;
    this.currentState = next;
    this.emit("state", next, previous);
  }
  // ---------------------------------------------------------------- frames
  receive(link, data) {
    if (link !== this.link || link.done) return;
    link.sawFrame = true;
    let frame;
    try {
      frame = JSON.parse(String(data));
    } catch {
      frame = void 0;
    }
    if (typeof frame !== "object" || frame === null || typeof frame.type !== "string") {
      this.emitError(new TenantcastError(ClientErrorCode.INVALID_SERVER_FRAME, "the server sent a frame that is not a JSON object with a type"));
      return;
    }
    this.emit("frame", frame);
    const batchRef = frame.ref;
    const batch = batchRef === void 0 ? void 0 : this.batches.get(String(batchRef));
    if (batch !== void 0 && (frame.type === "subscribed" || frame.type === "error")) {
      if (frame.type === "subscribed") this.subscribed(frame);
      this.batchAnswer(String(batchRef), batch, frame);
      return;
    }
    switch (frame.type) {
      case "authenticated":
        if (!link.authenticated) this.authenticated(link, frame);
        else if (this.sessionInfo !== void 0) this.sessionInfo.connectionCount = frame.connectionCount;
        break;
      case "event":
        this.event(frame);
        break;
      case "recovered":
        if (!this.recovered(frame)) this.caughtUp(link, frame.stream);
        break;
      case "subscribed":
        this.subscribed(frame);
        break;
      case "unsubscribed":
        if (frame.reason !== void 0) this.removed(frame.channel, frame.reason);
        break;
      case "user-joined":
      case "user-left":
        this.emit("presence", frame);
        break;
      case "open-alarms":
        this.alarmState.snapshot(frame);
        break;
      case "error":
        this.failed(frame);
        return;
    }
    const ref = frame.ref;
    if (ref !== void 0) {
      const waiter = this.pending.get(String(ref));
      this.pending.delete(String(ref));
      waiter?.resolve(frame);
    }
  }
  authenticated(link, frame) {
    link.authenticated = true;
    link.authenticatedAt = this.timers.now();
    this.alarmState.authenticated();
    this.sessionInfo = { userId: frame.userId, tenantId: frame.tenantId, clientId: frame.clientId, connectionCount: frame.connectionCount };
    const attached = frame.positions ?? { [TENANT_STREAM]: frame.position };
    const catchingUp = new Set(frame.positions === void 0 ? [] : (link.resumed ?? []).filter((stream) => Object.hasOwn(attached, stream)));
    for (const [channel, entry] of this.channelEntries) {
      if (entry.link !== link && this.positions.has(channelStream(channel))) catchingUp.add(channelStream(channel));
    }
    for (const [stream, position] of Object.entries(attached)) {
      if (!this.positions.has(stream)) this.positions.set(stream, position);
    }
    if (catchingUp.size === 0) this.setState("open");
    else link.catchingUp = catchingUp;
    if (link.done) return;
    this.rejoin(link);
    this.emit("authenticated", frame);
    if (link.done) return;
    this.scheduleRefresh();
  }
  /** A stream resumed on this link caught up (or will not be: refused, left): the last one makes the client `open`. */
  caughtUp(link, stream) {
    const waiting = link?.catchingUp;
    if (link === void 0 || waiting === void 0 || !waiting.delete(stream) || waiting.size > 0) return;
    link.catchingUp = void 0;
    if (link === this.live()) this.setState("open");
  }
  /**
   * Verifies continuity per stream. An offset one above the last delivered is delivered; one at
   * or below it is a repeat and dropped; one further above is a jump: it is held, with every
   * later event of the stream, while `resume` fetches the missing ones on this connection.
   */
  event(frame) {
    const { stream, offset, epoch } = frame;
    if (stream === void 0 || offset === void 0 || epoch === void 0) {
      this.deliver(frame);
      return;
    }
    const channel = channelOf(stream);
    if (channel !== void 0 && !this.channelEntries.has(channel)) {
      this.deliver(frame);
      return;
    }
    const current = this.positions.get(stream);
    const comparable = current !== void 0 && (current.epoch === epoch || current.offset === 0);
    if (current !== void 0 && comparable && offset <= current.offset) return;
    if (current !== void 0 && comparable && offset > current.offset + 1) {
      this.hold(stream, current, frame);
      return;
    }
    if (!comparable) this.heals.delete(stream);
    this.positions.set(stream, { epoch, offset });
    this.deliver(frame);
    this.release(stream);
  }
  deliver(frame) {
    this.alarmState.event(frame);
    this.emit("event", frame);
    const handlers = this.eventHandlers.get(frame.event);
    if (handlers !== void 0) this.call(frame.event, handlers, [frame.data, frame]);
  }
  /** Holds an event above a jump and asks for the missing ones, once per heal. */
  hold(stream, current, frame) {
    let heal = this.heals.get(stream);
    if (heal === void 0) {
      heal = { held: /* @__PURE__ */ new Map(), from: current.offset + 1, to: frame.offset - 1, tries: 0 };
      this.heals.set(stream, heal);
    }
    if (heal.held.size >= this.maxHeld) {
      this.reconnectNow("HEAL_LIMIT");
      return;
    }
    heal.held.set(frame.offset, frame);
    if (heal.ref === void 0) this.askResume(stream, current, heal);
  }
  /** Sends `resume {stream, since}` on the live connection for a heal. */
  askResume(stream, since, heal) {
    if (++heal.tries > MAX_HEAL_TRIES) {
      this.reconnectNow("HEAL_STALLED");
      return;
    }
    const { id, reply } = this.send({ type: "resume", stream, since: formatPosition(since) });
    heal.ref = id;
    reply.catch((error) => {
      if (heal.ref === id) heal.ref = void 0;
      if (error.code !== ClientErrorCode.CONNECTION_CLOSED && error.code !== ClientErrorCode.NOT_CONNECTED) this.emitError(error);
    });
  }
  /** Drops the current socket and comes back at once, resuming every stream from its position. */
  reconnectNow(reason) {
    const link = this.link;
    if (link === void 0 || link.done) return;
    this.abandon(link, { code: 4e3, reason });
    this.lost(link, 4e3, reason);
  }
  /**
   * After a contiguous event: delivers the held events that are now contiguous too, and reports
   * `healed` once the missing range is filled. A hole still left above starts the next heal.
   */
  release(stream) {
    const heal = this.heals.get(stream);
    if (heal === void 0) return;
    heal.tries = 0;
    let position = this.positions.get(stream);
    for (let next = heal.held.get(position.offset + 1); next !== void 0; next = heal.held.get(position.offset + 1)) {
      heal.held.delete(position.offset + 1);
      position = { epoch: next.epoch, offset: next.offset };
      this.positions.set(stream, position);
      this.deliver(next);
    }
    for (const offset of heal.held.keys()) if (offset <= position.offset) heal.held.delete(offset);
    if (position.offset < heal.to) return;
    if (heal.refill !== true) this.emit("healed", { stream, from: heal.from, to: heal.to });
    if (heal.held.size === 0) {
      this.heals.delete(stream);
      return;
    }
    heal.from = position.offset + 1;
    heal.to = Math.min(...heal.held.keys()) - 1;
    heal.refill = void 0;
    if (heal.ref === void 0) this.askResume(stream, position, heal);
  }
  /** Handles a `recovered`; true when it started a replay of a new epoch, whose own `recovered` is the stream's catch-up. */
  recovered(frame) {
    if (frame.stream.startsWith("channel:") && !this.channelEntries.has(frame.stream.slice("channel:".length))) return false;
    const since = this.positions.get(frame.stream);
    const heal = this.heals.get(frame.stream);
    const answersHeal = heal !== void 0 && frame.ref !== void 0 && String(frame.ref) === heal.ref;
    if (answersHeal) heal.ref = void 0;
    if (frame.recovered) {
      this.emit("recovered", frame);
      if (since === void 0) this.positions.set(frame.stream, { epoch: frame.epoch, offset: frame.to });
      else if ((since.epoch === frame.epoch || since.offset === 0) && since.offset < frame.to) this.reheal(frame.stream, since, frame.to);
      else if (heal !== void 0 && heal.ref === void 0 && heal.held.size > 0) this.askResume(frame.stream, since, heal);
      return false;
    }
    this.heals.delete(frame.stream);
    const channel = channelOf(frame.stream);
    const oldest = Math.max(frame.oldest.offset, 1);
    if (since !== void 0 && since.epoch !== frame.epoch && frame.latest.offset >= oldest) {
      const from = { epoch: frame.epoch, offset: oldest - 1 };
      const refill = { held: /* @__PURE__ */ new Map(), from: oldest, to: frame.latest.offset, tries: 0, refill: true };
      this.positions.set(frame.stream, from);
      this.heals.set(frame.stream, refill);
      this.emit("recovered", frame);
      this.emit("gap", { stream: frame.stream, ...channel === void 0 ? {} : { channel }, since, oldest: frame.oldest, latest: frame.latest, replaying: true });
      if (this.heals.get(frame.stream) !== refill) return false;
      this.askResume(frame.stream, from, refill);
      return true;
    }
    this.positions.set(frame.stream, frame.latest);
    this.emit("recovered", frame);
    this.emit("gap", { stream: frame.stream, ...channel === void 0 ? {} : { channel }, since, oldest: frame.oldest, latest: frame.latest, replaying: false });
    return false;
  }
  /** A replay ended above the last delivered offset: its missing events are fetched again. */
  reheal(stream, since, to) {
    let heal = this.heals.get(stream);
    if (heal === void 0) {
      heal = { held: /* @__PURE__ */ new Map(), from: since.offset + 1, to, tries: 0 };
      this.heals.set(stream, heal);
    }
    const held = [...heal.held.keys()];
    heal.to = Math.max(heal.to, held.length === 0 ? to : Math.min(to, Math.min(...held) - 1));
    if (heal.ref === void 0) this.askResume(stream, since, heal);
  }
  subscribed(frame) {
    const stream = channelStream(frame.channel);
    if (frame.position !== void 0 && this.channelEntries.has(frame.channel) && !this.positions.has(stream)) {
      this.positions.set(stream, frame.position);
    }
  }
  /** The server took the connection out of a channel (a refresh narrowed the channels claim): forget it, so no reconnect rejoins it. */
  removed(channel, reason) {
    const entry = this.channelEntries.get(channel);
    if (entry === void 0) return;
    this.channelEntries.delete(channel);
    this.positions.delete(channelStream(channel));
    this.heals.delete(channelStream(channel));
    this.caughtUp(this.link, channelStream(channel));
    const error = new TenantcastError(reason, `the server removed this client from channel ${channel} (${reason})`);
    const waiters = entry.waiters.splice(0);
    if (waiters.length === 0) this.emitError(error);
    for (const waiter of waiters) waiter.reject(error);
  }
  failed(frame) {
    const error = new TenantcastError(frame.code, frame.message, frame.ref);
    const waiter = frame.ref === void 0 ? void 0 : this.pending.get(String(frame.ref));
    if (waiter === void 0) {
      this.emitError(error);
      return;
    }
    this.pending.delete(String(frame.ref));
    waiter.reject(error);
  }
  /** Joins every channel not yet joined on this link, JOIN_BATCH channels per `subscribe {channels}` frame. */
  rejoin(link) {
    const waiting = [...this.channelEntries].filter(([, entry]) => entry.link !== link);
    for (let i = 0; i < waiting.length; i += JOIN_BATCH) this.sendBatch(link, new Map(waiting.slice(i, i + JOIN_BATCH)));
  }
  /** Sends one rejoin batch, each channel resuming from its last position. */
  sendBatch(link, channels) {
    const socket = link.socket;
    if (link !== this.live() || socket === void 0) return;
    const waiting = /* @__PURE__ */ new Map();
    const frame = [];
    for (const [channel, entry] of channels) {
      if (this.channelEntries.get(channel) !== entry || entry.link === link) continue;
      entry.link = link;
      entry.reply = void 0;
      waiting.set(channel, entry);
      const since = this.positions.get(channelStream(channel));
      frame.push(since === void 0 ? { channel } : { channel, since: formatPosition(since) });
    }
    if (frame.length === 0) return;
    const id = `r${this.nextId++}`;
    const batch = { link, waiting };
    this.batches.set(id, batch);
    const timeout = this.options.requestTimeout ?? 1e4;
    if (timeout > 0) batch.timer = this.timers.setTimeout(() => {
      this.retryBatch(id, batch, 0);
    }, Math.min(timeout, MAX_TIMER_MS));
    socket.send(JSON.stringify({ type: "subscribe", id, channels: frame }));
  }
  /** Drops a batch and, after `delay` ms, sends its unanswered channels again on the same link. */
  retryBatch(id, batch, delay) {
    if (this.batches.get(id) !== batch) return;
    this.batches.delete(id);
    this.timers.clearTimeout(batch.timer);
    for (const entry of batch.waiting.values()) entry.link = void 0;
    const resend = () => {
      this.sendBatch(batch.link, batch.waiting);
    };
    if (delay === 0) {
      resend();
      return;
    }
    const timer = this.timers.setTimeout(() => {
      this.joinTimers.delete(timer);
      resend();
    }, delay);
    this.joinTimers.add(timer);
  }
  /**
   * One answer within a rejoin batch: a `subscribed` or an `error` naming its channel. An error
   * naming no channel refused the whole frame: RATE_LIMITED is retried, anything else fails
   * every channel still waiting, each visibly.
   */
  batchAnswer(id, batch, frame) {
    const channel = frame.channel;
    if (frame.type === "error" && channel === void 0) {
      if (frame.code === "RATE_LIMITED") {
        this.retryBatch(id, batch, JOIN_RETRY_MS);
        return;
      }
      this.batches.delete(id);
      this.timers.clearTimeout(batch.timer);
      for (const [name, entry2] of batch.waiting) this.joinFailed(name, entry2, new TenantcastError(frame.code, frame.message, frame.ref));
      return;
    }
    const entry = channel === void 0 ? void 0 : batch.waiting.get(channel);
    if (channel === void 0 || entry === void 0) return;
    batch.waiting.delete(channel);
    if (batch.waiting.size === 0) {
      this.batches.delete(id);
      this.timers.clearTimeout(batch.timer);
    }
    if (frame.type === "subscribed") this.joined(channel, entry, frame);
    else this.joinFailed(channel, entry, new TenantcastError(frame.code, frame.message, frame.ref));
  }
  joined(channel, entry, reply) {
    if (this.channelEntries.get(channel) !== entry) return;
    entry.reply = reply;
    for (const waiter of entry.waiters.splice(0)) waiter.resolve(reply);
  }
  /** The server refused a channel: it is dropped, and its waiters, or else the `error` handlers, are told. */
  joinFailed(channel, entry, error) {
    if (this.channelEntries.get(channel) !== entry) return;
    this.channelEntries.delete(channel);
    this.positions.delete(channelStream(channel));
    this.caughtUp(entry.link, channelStream(channel));
    const waiters = entry.waiters.splice(0);
    if (waiters.length === 0) this.emitError(error);
    for (const waiter of waiters) waiter.reject(error);
  }
  sendSubscribe(channel, entry) {
    entry.link = this.link;
    entry.reply = void 0;
    const since = this.positions.get(channelStream(channel));
    const frame = since === void 0 ? { type: "subscribe", channel } : { type: "subscribe", channel, since: formatPosition(since) };
    this.request(frame).then((reply) => {
      this.joined(channel, entry, reply);
    }, (error) => {
      if (this.channelEntries.get(channel) !== entry || error.code === ClientErrorCode.CONNECTION_CLOSED) return;
      if (error.code === ClientErrorCode.REQUEST_TIMEOUT) {
        if (entry.link === this.live()) this.sendSubscribe(channel, entry);
        return;
      }
      if (error.code === "RATE_LIMITED") {
        const link = entry.link;
        const timer = this.timers.setTimeout(() => {
          this.joinTimers.delete(timer);
          if (this.channelEntries.get(channel) === entry && entry.link === link && link === this.live()) this.sendSubscribe(channel, entry);
        }, JOIN_RETRY_MS);
        this.joinTimers.add(timer);
        return;
      }
      this.joinFailed(channel, entry, error);
    });
  }
  // ---------------------------------------------------------------- token refresh
  scheduleRefresh() {
    this.timers.clearTimeout(this.refreshTimer);
    this.refreshTimer = void 0;
    const token = this.token;
    if (this.options.getToken === void 0 || token === void 0) return;
    const at = refreshAt(token, this.timers.now(), this.options.tokenRefreshMargin);
    if (at === void 0) return;
    const now = this.timers.now();
    const delay = Math.min(Math.max(0, at - now, this.refreshedAt + MIN_REFRESH_INTERVAL_MS - now), MAX_TIMER_MS);
    this.refreshTimer = this.timers.setTimeout(() => {
      this.refreshTimer = void 0;
      if (at > this.timers.now() || this.refreshedAt + MIN_REFRESH_INTERVAL_MS > this.timers.now()) this.scheduleRefresh();
      else void this.refresh();
    }, delay);
  }
  /**
   * Gets a new token and sends it as `authenticate` on the live connection. If that fails the
   * connection keeps its current token until the server closes it at `exp` with 4401, and the
   * reconnect asks getToken again.
   */
  async refresh() {
    const link = this.link;
    this.refreshedAt = this.timers.now();
    let token;
    try {
      token = await this.options.getToken();
      if (typeof token !== "string" || token === "") throw new Error("getToken returned no token");
    } catch (err) {
      this.emitError(new TenantcastError(ClientErrorCode.TOKEN_UNAVAILABLE, `token refresh failed: ${err.message}`, void 0, { cause: err }));
      return;
    }
    if (token === this.token) return;
    if (link === void 0 || link !== this.live()) {
      this.token = token;
      return;
    }
    try {
      await this.request({ type: "authenticate", token });
    } catch (err) {
      if (err.code !== ClientErrorCode.CONNECTION_CLOSED) this.emitError(err);
      return;
    }
    this.token = token;
    link.token = token;
    this.scheduleRefresh();
  }
  // ---------------------------------------------------------------- handlers
  emit(name, ...args) {
    const handlers = this.lifecycleHandlers.get(name);
    if (handlers !== void 0) this.call(name, handlers, args);
  }
  /** Calls each handler; one that throws is reported as an `error` and the others still run. */
  call(name, handlers, args) {
    const failed = (err) => {
      if (name === "error") return;
      this.emitError(new TenantcastError(ClientErrorCode.HANDLER_FAILED, `a "${name}" handler threw: ${err.message}`, void 0, { cause: err }));
    };
    for (const handler of [...handlers]) {
      try {
        const result = handler(...args);
        if (typeof result?.then === "function") result.then(void 0, failed);
      } catch (err) {
        failed(err);
      }
    }
  }
  emitError(error) {
    const handlers = this.lifecycleHandlers.get("error");
    if (handlers === void 0 || handlers.size === 0) {
      console.error(`tenantcast: ${error.code}: ${error.message}`);
      return;
    }
    this.call("error", handlers, [error]);
  }
};
async function webSocketClass() {
  const global = globalThis.WebSocket;
  if (typeof global === "function") return global;
  const ws = await import("ws");
  return ws.default;
}
function connect(options) {
  return new TenantcastClient(options);
}
export {
  ClientErrorCode,
  DEFAULT_BACKOFF,
  RECEIPT_BATCH,
  RECEIPT_DELAY_MS,
  SUBPROTOCOL,
  TENANT_STREAM,
  TenantcastClient,
  TenantcastError,
  backoffCeiling,
  backoffDelay,
  connect,
  decodeTokenPayload,
  formatPosition,
  parsePosition,
  rateLimitedDelay,
  refreshAt,
  retryHint,
  tokenTimes
};
