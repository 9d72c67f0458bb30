// Tether client: an ES module with no dependencies, for browsers and
// Node.js, served by every Tether server at /tether.js and published as the
// npm package `tether-client`. Types: /tether.d.ts.
//
// It needs a WebSocket constructor: the global one (every browser, Node.js
// 22 and later), or the `WebSocket` option (the `ws` package on older
// Node.js); without either the constructor throws a TypeError that says so.
//
// It behaves like the Rust client session (PROTOCOL.md section 10 and the
// client decisions of section 11):
//
// - It connects, sends `auth` first and waits for `auth_ack`; the time from
//   the dial to `auth_ack` is bounded by `connectTimeout`.
// - After an unexpected close or a failed connect it waits
//   `min(base * 2^n, cap) + jitter`, the jitter a whole number of ms in
//   [0, jitter) (n counts retries in a row from 0, reset
//   only by `auth_ack`) and dials again, up to `maxAttempts` retries in a
//   row (unlimited by default).
// - It never reconnects after its own `close()` nor after the final close
//   codes 1002, 1003, 1007, 1008, 1009, 4001, 4003, 4029 and 4500-4999 (an
//   application's final disconnect). A 1000 the server
//   sends unasked is reconnected after.
// - Tokens: a fixed `token`, or `getToken`, an async function called before
//   every connection (within `connectTimeout`; a failure is a failed
//   attempt) and for every refresh. With `getToken`, a token that expires
//   (`expires_at` in `auth_ack` or `refreshed`, placed on `Date.now()`) is
//   refreshed on the open connection at the later of four fifths of its
//   remaining life and one minute before it expires; a refused or failed
//   refresh (no token or no answer within `requestTimeout`) is retried with
//   the reconnect backoff while the retry comes before the expiry. A close
//   4004 (token expired) is reconnected after with a new token; with a
//   fixed token it is final unless `setToken` replaced it since.
// - An unsolicited `unsubscribed` (the server's grants no longer allow the
//   channel) ends the tracking of the channel: reported as `unsubscribed`,
//   never subscribed again by itself.
// - After `auth_ack` it re-subscribes to every tracked channel in name order,
//   with `since` set to the last position seen, then sends the offline queue
//   oldest first. A publication at or below the last offset seen on its
//   channel (same epoch) is dropped; a new epoch restarts the count.
// - Only received messages count as life: `pingIdle` after the last one it
//   sends {"type":"ping"}; `pongTimeout` more of silence and the connection
//   is dead.
// - Requests get ids r1, r2, ... from one counter per client; ids only
//   correlate replies. Those written to a connection that drops fail at
//   once; those still in the offline queue wait, and one that times out
//   there is never sent.
// - Every publication carries an `idempotency_key` of its own: 128 random
//   bits from `crypto.getRandomValues` (which, unlike `randomUUID`, pages
//   outside a secure context have too), so two tabs of one user never
//   share keys. A publication written to a connection that drops does not
//   fail: after the next `auth_ack` it goes out again, with the same key
//   and id, before the offline queue, until its deadline; the server
//   publishes it once. A `publish` sent with `request` is retried this way
//   only when it carries a key.
// - `rpc` calls the application (PROTOCOL.md section 13) as a request like
//   the others: it resolves with the `data` of the `rpc_result` and rejects
//   with the application's code and message; one written to a connection
//   that drops fails with it and is never sent again, since the application
//   may have carried it out. A close 1013 (the application did not decide
//   the token in time) is retried like any close that is not final.
//
// What a browser cannot know, and what the client does about it:
//
// - A refused handshake (HTTP 403 for a bad origin, 400, 503 while the server
//   drains) reaches a page only as close code 1006, exactly like a server
//   that is down. The Rust client stops after a 4xx refusal; this client
//   cannot tell and retries every 1006 with backoff (bound it with
//   `maxAttempts`).
// - The browser answers the server's WebSocket Pings itself and hides them,
//   so on a quiet connection the application `ping` is what keeps the
//   client's own heartbeat informed.
// - The browser enforces RFC 6455 itself: a malformed frame or invalid UTF-8
//   from the server fails the connection, reported as 1006, and is retried.
// - A page may only send close codes 1000 and 3000-4999, so where the Rust
//   client would close with 1003 (a binary message from the server) this
//   client closes without a code, reports 1003 and reconnects. A dead
//   connection (heartbeat or connect timeout) is closed the same way and
//   reported as 1006.

/** Close codes after which the client does not reconnect (PROTOCOL.md 7). */
const FINAL_CLOSE_CODES = new Set([1002, 1003, 1007, 1008, 1009, 4001, 4003, 4029]);

/**
 * Whether a close code is final: one of FINAL_CLOSE_CODES, or in the
 * application's final range 4500-4999 (a disconnect by the HTTP API).
 */
const isFinalCloseCode = (code) => FINAL_CLOSE_CODES.has(code) || (code >= 4500 && code <= 4999);

/** The close code of a token that expired on an open connection. */
const TOKEN_EXPIRED = 4004;

/** A refresh is due no later than this long before the token expires, in ms. */
const REFRESH_MARGIN = 60000;

/** What the constructor says where there is no WebSocket to dial with. */
const NO_GLOBAL_WEBSOCKET = 'this runtime has no global WebSocket (Node.js before 22): '
  + "pass one as the WebSocket option, e.g. import { WebSocket } from 'ws'; "
  + 'new TetherClient(url, { token, WebSocket })';

/** Request ids this client hands out: `r` and a number without leading 0. */
const REQUEST_ID = /^r[1-9][0-9]*$/;

/**
 * @typedef {object} Backoff
 * @property {number} base Delay before the first retry, in ms (1000).
 * @property {number} cap Largest delay before jitter, in ms (30000).
 * @property {number} jitter Exclusive bound of the random part, in ms (1000).
 * @property {number | null} maxAttempts Retries in a row before giving up;
 *   null retries for ever, 0 never retries.
 */

/**
 * @typedef {object} ClientOptions
 * @property {string} [token] Sent in `auth` on every connection.
 * @property {() => Promise<string> | string} [getToken] Gives a fresh token:
 *   called before every connection and for every refresh; instead of `token`.
 * @property {Partial<Backoff>} [backoff] The reconnect schedule.
 * @property {number} [pingIdle] Silence in ms before a `ping` (25000).
 * @property {number} [pongTimeout] Further silence in ms that means the
 *   connection is dead (10000).
 * @property {number} [requestTimeout] Default request deadline in ms (10000).
 * @property {number} [connectTimeout] Longest time in ms from a dial to
 *   `auth_ack` (10000).
 * @property {number} [closeTimeout] How long `close()` waits in ms for the
 *   server's close frame (5000).
 * @property {number} [offlineQueue] Messages kept while not connected (1000).
 * @property {() => number} [random] Source of jitter in [0, 1).
 * @property {typeof WebSocket} [WebSocket] The WebSocket constructor:
 *   `globalThis.WebSocket` when omitted; on Node.js before 22, which has
 *   none, the `WebSocket` of the `ws` package.
 */

/**
 * @typedef {object} CloseInfo
 * @property {number} code The close code; 1006 when no close frame came.
 * @property {string} reason The close reason or a description.
 */

/**
 * @typedef {{state: 'connecting', attempt: number}
 *   | {state: 'open', user: string, session: string, expiresAt?: number}
 *   | {state: 'reconnecting', attempt: number, delay: number, retryAt: number, reason: CloseInfo}
 *   | {state: 'closing'}
 *   | {state: 'closed', reason: CloseInfo}} StateEvent
 */

/** The protocol's defaults (PROTOCOL.md section 10). */
export const DEFAULTS = Object.freeze({
  backoff: Object.freeze({ base: 1000, cap: 30000, jitter: 1000, maxAttempts: null }),
  pingIdle: 25000,
  pongTimeout: 10000,
  requestTimeout: 10000,
  connectTimeout: 10000,
  closeTimeout: 5000,
  offlineQueue: 1000,
});

/**
 * When to refresh, in ms from now, a token with `remaining` ms of life: the
 * later of four fifths of it and {@link REFRESH_MARGIN} before the expiry;
 * null once it has expired.
 *
 * @param {number} remaining
 * @returns {number | null}
 */
export function refreshDelay(remaining) {
  if (!(remaining > 0)) {
    return null;
  }
  return Math.max(remaining - remaining / 5, remaining - REFRESH_MARGIN);
}

/**
 * The wait before retry `attempt` (from 0): `min(base * 2^attempt, cap)`
 * plus a whole number of ms drawn from [0, jitter) with `random()`. Whole
 * ms, as the Rust session draws whole ns: `jitter * random()` itself may
 * round up to `jitter` for a draw just below 1.
 *
 * @param {number} attempt Retries already made in a row.
 * @param {Backoff} backoff The schedule.
 * @param {() => number} random A draw from [0, 1).
 * @returns {number}
 */
export function reconnectDelay(attempt, backoff, random) {
  const floor = Math.min(backoff.base * 2 ** Math.min(attempt, 1023), backoff.cap);
  const drawn = Math.floor(backoff.jitter * random());
  return floor + Math.min(drawn, Math.max(0, Math.ceil(backoff.jitter) - 1));
}

/** Why a request, a send or a subscription failed. */
export class TetherError extends Error {
  /**
   * @param {'server' | 'timeout' | 'disconnected' | 'closed' | 'queue-full' | 'not-a-request'} kind
   * @param {string} message
   * @param {string} [code] The server's error code, for kind `server`.
   */
  constructor(kind, message, code) {
    super(message);
    this.name = 'TetherError';
    /** What went wrong. */
    this.kind = kind;
    /** The server's error code (`INVALID_CHANNEL`, ...), for kind `server`. */
    this.code = code;
  }
}

/** A Tether connection that survives reconnects. */
export class TetherClient {
  #url;
  #options;
  #backoff;
  #token;
  /** @type {(() => Promise<string> | string) | null} */
  #getToken;
  /** `setToken` replaced the token since it was last sent in `auth`. */
  #tokenReplaced = false;
  /** Counts dials, so that a token that comes late is recognised. */
  #dials = 0;
  /** When the connection's token expires (a `Date.now()` value), if it does. */
  #expiresAt = null;
  /** @type {null | 'fetching' | number} The refresh under way: fetching its token, or its request number. */
  #refreshing = null;
  #refreshAttempt = 0;
  #random;
  #WebSocket;
  /** @type {WebSocket | null} */
  #ws = null;
  /** @type {'connecting' | 'open' | 'reconnecting' | 'closing' | 'closed'} */
  #state = 'connecting';
  #attempt = 0;
  #user = '';
  #session = '';
  /** @type {Map<string, Set<Function>>} */
  #listeners = new Map();
  /** @type {Map<string, ReturnType<typeof setTimeout>>} */
  #timers = new Map();
  #lastId = 0;
  /** @type {Map<number, {resolve: Function, reject: Function, timer: ReturnType<typeof setTimeout>, queued: boolean, resend: string | null}>} */
  #requests = new Map();
  /** @type {{text: string, request: number | null}[]} */
  #offline = [];
  /** @type {Map<string, {epoch: string, offset: number} | null>} */
  #positions = new Map();
  /** @type {Map<string, number>} */
  #subscribing = new Map();
  /** @type {Map<string, Set<string>>} */
  #presence = new Map();
  /** @type {(() => void)[]} */
  #onClosed = [];

  /**
   * Starts connecting to `url` (a `ws:` or `wss:` URL of the `/ws`
   * endpoint) right after the current task, so listeners added now see
   * every event.
   *
   * @param {string} url
   * @param {ClientOptions} options
   */
  constructor(url, options) {
    const parsed = new URL(url);
    if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') {
      throw new TypeError(`not a WebSocket URL: ${url}`);
    }
    const getToken = options?.getToken;
    if (typeof options?.token !== 'string' && typeof getToken !== 'function') {
      throw new TypeError('options.token must be a string, or options.getToken a function');
    }
    this.#url = parsed.href;
    this.#options = { ...DEFAULTS, ...options };
    this.#backoff = { ...DEFAULTS.backoff, ...options.backoff };
    this.#token = options.token ?? '';
    this.#getToken = typeof getToken === 'function' ? getToken : null;
    this.#random = options.random ?? Math.random;
    this.#WebSocket = webSocketConstructor(options.WebSocket);
    queueMicrotask(() => this.#dial());
  }

  /** Where the client stands: `connecting`, `open`, `reconnecting`, `closing` or `closed`. */
  get state() {
    return this.#state;
  }

  /** The user of the last `auth_ack`, empty before the first. */
  get user() {
    return this.#user;
  }

  /** The server's id of the current connection, empty before the first. */
  get session() {
    return this.#session;
  }

  /**
   * Calls `listener` for every event of `type` until the returned function
   * is called.
   *
   * @param {'message' | 'presence' | 'join' | 'leave' | 'subscribed' | 'unsubscribed' | 'refreshed' | 'refresh-failed' | 'state' | 'error'} type
   * @param {(event: any) => void} listener
   * @returns {() => void}
   */
  on(type, listener) {
    if (!this.#listeners.has(type)) {
      this.#listeners.set(type, new Set());
    }
    this.#listeners.get(type).add(listener);
    return () => this.#listeners.get(type)?.delete(listener);
  }

  /**
   * Tracks `channel`: subscribes now if connected, and after every
   * reconnection, resuming from the last offset seen. Subscribing to a
   * tracked channel again does nothing. A refusal is reported as an `error`
   * event with the channel, and the channel is no longer tracked.
   *
   * @param {string} channel
   */
  subscribe(channel) {
    this.#refuseIfClosed();
    if (this.#positions.has(channel)) {
      return;
    }
    this.#positions.set(channel, null);
    if (this.#state === 'open') {
      this.#sendSubscribe(channel);
    }
  }

  /**
   * Stops tracking `channel` and, if connected, unsubscribes from it.
   *
   * @param {string} channel
   */
  unsubscribe(channel) {
    this.#refuseIfClosed();
    this.#positions.delete(channel);
    this.#subscribing.delete(channel);
    this.#presence.delete(channel);
    if (this.#state === 'open') {
      this.#write({ type: 'unsubscribe', channel });
    }
  }

  /**
   * The users present in `channel`, sorted, from the last snapshot and the
   * `join`/`leave` deltas since.
   *
   * @param {string} channel
   * @returns {string[]}
   */
  presence(channel) {
    return [...(this.#presence.get(channel) ?? [])].sort();
  }

  /**
   * Publishes `payload` on `channel` with a fresh random `idempotency_key`,
   * which it keeps when a reconnect makes the client send it again;
   * resolves with the server's `ack` (which carries the offset).
   *
   * @param {string} channel
   * @param {unknown} payload Any JSON value.
   * @param {{timeout?: number}} [options]
   * @returns {Promise<{type: 'ack', id: string, offset: number}>}
   */
  publish(channel, payload, options) {
    const message = { type: 'publish', channel, payload, idempotency_key: idempotencyKey() };
    return this.request(message, options);
  }

  /**
   * Calls the application's `method` with `data` (any JSON value; `null`
   * when omitted) and resolves with its answer, the `data` of the
   * `rpc_result`. Rejects as {@link TetherClient#request} does: a
   * {@link TetherError} of kind `server` carries the application's `code`
   * (`NOT_FOUND` for a method it does not know, `UNAVAILABLE` when it did
   * not answer in time, ...) and message.
   *
   * @param {string} method 1 to 64 characters of `A-Z a-z 0-9 _ - : . @ /`.
   * @param {unknown} [data]
   * @param {{timeout?: number}} [options]
   * @returns {Promise<unknown>}
   */
  rpc(method, data = null, options = undefined) {
    return this.request({ type: 'rpc', method, data }, options).then((reply) => reply.data);
  }

  /**
   * Sends `message` with a fresh id and resolves with the reply carrying that
   * id. Rejects with a {@link TetherError}: the server's `error`, a timeout
   * (default `requestTimeout`), the loss of the connection that carried it
   * (unless it is a `publish` with an `idempotency_key`, which is sent again
   * after the next `auth_ack`), the client's close, or a full offline queue.
   *
   * @param {{type: string, [field: string]: unknown}} message
   * @param {{timeout?: number}} [options]
   * @returns {Promise<any>}
   */
  request(message, options = {}) {
    if (this.#isClosed()) {
      return Promise.reject(new TetherError('closed', 'client closed'));
    }
    if (message.type === 'auth') {
      return Promise.reject(new TetherError('not-a-request', 'auth cannot carry an id'));
    }
    const open = this.#state === 'open';
    if (!open && this.#offline.length >= this.#options.offlineQueue) {
      return Promise.reject(new TetherError('queue-full', 'offline queue full'));
    }
    const number = ++this.#lastId;
    const text = JSON.stringify({ ...message, id: `r${number}` });
    const resendable = message.type === 'publish' && typeof message.idempotency_key === 'string';
    if (open) {
      this.#ws.send(text);
    } else {
      this.#offline.push({ text, request: number });
    }
    const timeout = options.timeout ?? this.#options.requestTimeout;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.#expire(number), timeout);
      const resend = resendable ? text : null;
      this.#requests.set(number, { resolve, reject, timer, queued: !open, resend });
    });
  }

  /**
   * Sends `message` as it is: now if connected, else after the next
   * `auth_ack` through the offline queue. Throws a {@link TetherError} when
   * the client is closed or the queue is full.
   *
   * @param {{type: string, [field: string]: unknown}} message
   */
  send(message) {
    this.#refuseIfClosed();
    const text = JSON.stringify(message);
    if (this.#state === 'open') {
      this.#ws.send(text);
    } else if (this.#offline.length >= this.#options.offlineQueue) {
      throw new TetherError('queue-full', 'offline queue full');
    } else {
      this.#offline.push({ text, request: null });
    }
  }

  /**
   * Makes `token` the fixed token sent in `auth` from the next connection
   * on; `getToken` is called no more. A close 4004 that comes before that
   * connection is reconnected after, with this token.
   *
   * @param {string} token
   */
  setToken(token) {
    this.#token = token;
    this.#getToken = null;
    this.#tokenReplaced = true;
  }

  /**
   * Closes for good with 1000, waiting up to `closeTimeout` for the server's
   * answer; never reconnects. Resolves once closed.
   *
   * @returns {Promise<void>}
   */
  close() {
    /** @type {Promise<void>} */
    const closed = new Promise((resolve) => {
      if (this.#state === 'closed') {
        resolve();
      } else {
        this.#onClosed.push(resolve);
      }
    });
    const byClient = { code: 1000, reason: 'closed by client' };
    if (this.#state === 'open' || (this.#state === 'connecting' && this.#ws?.readyState === 1)) {
      this.#ws.close(1000);
      this.#state = 'closing';
      for (const name of ['connect', 'ping', 'pong', 'refresh']) {
        this.#stop(name);
      }
      this.#start('closing', this.#options.closeTimeout, () => {
        this.#abandon();
        this.#lose(byClient, false);
      });
      this.#emit('state', { state: 'closing' });
    } else if (this.#state === 'connecting' || this.#state === 'reconnecting') {
      this.#abandon();
      this.#lose(byClient, false);
    }
    return closed;
  }

  /** Starts the connect deadline, gets a token from `getToken` if given, and opens a socket. */
  #dial() {
    if (this.#state === 'closed' || this.#state === 'closing') {
      return;
    }
    this.#state = 'connecting';
    const dial = ++this.#dials;
    this.#emit('state', { state: 'connecting', attempt: this.#attempt });
    this.#start('connect', this.#options.connectTimeout, () => {
      this.#abandon();
      this.#lose({ code: 1006, reason: 'connect timeout' }, true);
    });
    if (this.#getToken === null) {
      this.#open(this.#token);
      return;
    }
    this.#fetchToken().then(
      (token) => {
        if (dial === this.#dials && this.#state === 'connecting') {
          this.#open(token);
        }
      },
      () => {
        if (dial === this.#dials && this.#state === 'connecting') {
          this.#lose({ code: 1006, reason: 'token provider failed' }, true);
        }
      },
    );
  }

  /** One call of `getToken`, as a promise of a string. */
  async #fetchToken() {
    const token = await this.#getToken();
    if (typeof token !== 'string') {
      throw new TypeError('getToken must give a string');
    }
    return token;
  }

  /** Opens a socket that authenticates with `token`. */
  #open(token) {
    let ws;
    try {
      ws = new this.#WebSocket(this.#url, ['tether.v1']);
    } catch (error) {
      this.#lose({ code: 1006, reason: `connect failed: ${error instanceof Error ? error.message : error}` }, true);
      return;
    }
    this.#ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.#tokenReplaced = false;
      ws.send(JSON.stringify({ type: 'auth', token }));
    };
    ws.onmessage = (event) => this.#receive(event.data);
    ws.onclose = (event) => this.#closed(event.code, event.reason, opened);
  }

  /** The socket closed: the answer to our close, or a loss. */
  #closed(code, reason, opened) {
    this.#ws = null;
    if (this.#state === 'closing') {
      this.#lose({ code: 1000, reason: 'closed by client' }, false);
      return;
    }
    const lost = opened ? 'connection lost' : 'connect failed or refused';
    const text = reason || (code === 1006 ? lost : '');
    const retry = code === TOKEN_EXPIRED
      ? this.#getToken !== null || this.#tokenReplaced
      : !isFinalCloseCode(code);
    this.#lose({ code, reason: text }, retry);
  }

  /** One message from the server. */
  #receive(data) {
    if (typeof data !== 'string') {
      this.#abandon();
      this.#lose({ code: 1003, reason: 'binary message' }, true);
      return;
    }
    if (this.#state === 'open') {
      this.#start('ping', this.#options.pingIdle, () => this.#pingIdle());
      this.#stop('pong');
    }
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    if (message !== null && typeof message === 'object' && typeof message.type === 'string') {
      this.#handle(message);
    }
  }

  /** Silence for `pingIdle`: ask for a `pong`, and wait `pongTimeout`. */
  #pingIdle() {
    this.#write({ type: 'ping' });
    this.#start('pong', this.#options.pongTimeout, () => {
      this.#abandon();
      this.#lose({ code: 1006, reason: 'heartbeat timeout' }, true);
    });
  }

  /** One Tether message; messages missing their fields are ignored. */
  #handle(message) {
    const { type, channel } = message;
    const onChannel = typeof channel === 'string';
    switch (type) {
      case 'auth_ack':
        this.#authenticated(message);
        break;
      case 'message':
        if (onChannel && Number.isInteger(message.offset) && this.#accept(channel, message.offset)) {
          const { payload, sender, offset } = message;
          this.#emit('message', { channel, payload, sender, offset });
        }
        break;
      case 'join':
      case 'leave':
        if (onChannel && typeof message.user === 'string') {
          this.#delta(type, channel, message.user);
        }
        break;
      case 'subscribed':
        if (onChannel && typeof message.epoch === 'string' && Number.isInteger(message.offset)) {
          this.#confirm(message);
        }
        break;
      case 'presence':
        if (onChannel && Array.isArray(message.users)) {
          this.#presence.set(channel, new Set(message.users));
          this.#settle(message.id, message);
          this.#emit('presence', { channel, users: this.presence(channel) });
        }
        break;
      case 'error':
        this.#error(message);
        break;
      case 'unsubscribed':
        if (message.id === undefined && onChannel && typeof message.reason === 'string') {
          this.#unsubscribed(channel, message.reason);
        } else {
          this.#settle(message.id, message);
        }
        break;
      case 'refreshed':
        if (this.#refreshing !== null && requestNumber(message.id) === this.#refreshing) {
          const expiresAt = Number.isInteger(message.expires_at) ? message.expires_at : undefined;
          this.#trackExpiry(expiresAt);
          this.#emit('refreshed', { expiresAt });
        } else {
          this.#settle(message.id, message);
        }
        break;
      case 'pong':
      case 'ack':
      case 'rpc_result':
        this.#settle(message.id, message);
        break;
      default:
    }
  }

  /** The server accepted the token: re-subscribe, then send what waited. */
  #authenticated({ user, session, expires_at: expiry }) {
    if (this.#state !== 'connecting') {
      return;
    }
    this.#state = 'open';
    this.#attempt = 0;
    this.#user = user;
    this.#session = session;
    this.#stop('connect');
    this.#start('ping', this.#options.pingIdle, () => this.#pingIdle());
    const expiresAt = Number.isInteger(expiry) ? expiry : undefined;
    this.#trackExpiry(expiresAt);
    this.#emit('state', expiresAt === undefined
      ? { state: 'open', user, session }
      : { state: 'open', user, session, expiresAt });
    for (const channel of [...this.#positions.keys()].sort()) {
      this.#sendSubscribe(channel);
    }
    const queued = this.#offline;
    this.#offline = [];
    for (const item of queued) {
      this.#ws.send(item.text);
      const request = this.#requests.get(item.request);
      if (request) {
        request.queued = false;
      }
    }
  }

  /**
   * The connection's token now expires at `expiresAt` (a `Date.now()`
   * value), or never: with `getToken`, schedules its refresh.
   */
  #trackExpiry(expiresAt) {
    this.#refreshing = null;
    this.#refreshAttempt = 0;
    this.#expiresAt = expiresAt ?? null;
    this.#stop('refresh');
    const delay = expiresAt === undefined ? null : refreshDelay(expiresAt - Date.now());
    if (delay !== null && this.#getToken !== null) {
      this.#start('refresh', delay, () => this.#refresh());
    }
  }

  /** The refresh is due: get a token and send it, within `requestTimeout`. */
  #refresh() {
    if (this.#state !== 'open' || this.#getToken === null) {
      return;
    }
    this.#refreshing = 'fetching';
    const ws = this.#ws;
    this.#start('refresh', this.#options.requestTimeout, () => {
      this.#refreshFailed(undefined, this.#refreshing === 'fetching' ? 'no token in time' : 'no answer in time');
    });
    this.#fetchToken().then(
      (token) => {
        if (this.#ws === ws && this.#refreshing === 'fetching') {
          const number = ++this.#lastId;
          this.#refreshing = number;
          this.#write({ type: 'refresh', token, id: `r${number}` });
          this.#start('refresh', this.#options.requestTimeout, () => this.#refreshFailed(undefined, 'no answer in time'));
        }
      },
      () => {
        if (this.#ws === ws && this.#refreshing === 'fetching') {
          this.#refreshFailed(undefined, 'token provider failed');
        }
      },
    );
  }

  /** A refresh failed: report it, and try again after the backoff unless the token has expired by then. */
  #refreshFailed(code, message) {
    this.#refreshing = null;
    this.#emit('refresh-failed', { code, message });
    const delay = reconnectDelay(this.#refreshAttempt, this.#backoff, this.#random);
    this.#refreshAttempt += 1;
    if (this.#expiresAt !== null && Date.now() + delay < this.#expiresAt) {
      this.#start('refresh', delay, () => this.#refresh());
    } else {
      this.#stop('refresh');
    }
  }

  /** The server ended the subscription by itself: stop tracking the channel and report it. */
  #unsubscribed(channel, reason) {
    this.#positions.delete(channel);
    this.#subscribing.delete(channel);
    this.#presence.delete(channel);
    this.#emit('unsubscribed', { channel, reason });
  }

  /** Whether a publication at `offset` is new, advancing the position. */
  #accept(channel, offset) {
    const position = this.#positions.get(channel);
    if (!position) {
      return true;
    }
    if (offset <= position.offset) {
      return false;
    }
    position.offset = offset;
    return true;
  }

  /**
   * A `subscribed`: a new epoch replaces the position, the same one keeps the
   * higher offset. Its `data`, when the application gave some, goes with the
   * event.
   */
  #confirm(message) {
    const { channel, epoch, offset, recovered, data } = message;
    if (this.#positions.has(channel)) {
      this.#subscribing.delete(channel);
      const position = this.#positions.get(channel);
      if (position && position.epoch === epoch) {
        position.offset = Math.max(position.offset, offset);
      } else {
        this.#positions.set(channel, { epoch, offset });
      }
    }
    if (!this.#settle(message.id, message)) {
      this.#emit('subscribed', data === undefined
        ? { channel, epoch, offset, recovered }
        : { channel, epoch, offset, recovered, data });
    }
  }

  /** A `join` or `leave`: update the channel's user list and report both. */
  #delta(type, channel, user) {
    const users = this.#presence.get(channel);
    if (users) {
      if (type === 'join') {
        users.add(user);
      } else {
        users.delete(user);
      }
    }
    this.#emit(type, { channel, user });
    if (users) {
      this.#emit('presence', { channel, users: this.presence(channel) });
    }
  }

  /** An `error`: settles the request, refresh or subscription it answers, or is reported. */
  #error({ id, code, message }) {
    const number = requestNumber(id);
    if (number !== undefined && number === this.#refreshing) {
      this.#refreshFailed(String(code), String(message));
      return;
    }
    const request = this.#requests.get(number);
    if (request) {
      this.#requests.delete(number);
      clearTimeout(request.timer);
      request.reject(new TetherError('server', String(message), String(code)));
      return;
    }
    for (const [channel, pending] of this.#subscribing) {
      if (pending === number) {
        this.#subscribing.delete(channel);
        this.#positions.delete(channel);
        this.#presence.delete(channel);
        this.#emit('error', { code, message, id, channel });
        return;
      }
    }
    this.#emit('error', { code, message, id });
  }

  /** Resolves the pending request `id` names; false if it names none. */
  #settle(id, message) {
    const number = requestNumber(id);
    const request = this.#requests.get(number);
    if (!request) {
      return false;
    }
    this.#requests.delete(number);
    clearTimeout(request.timer);
    request.resolve(message);
    return true;
  }

  /** A request's deadline came: fail it, and never send it if it still waits. */
  #expire(number) {
    const request = this.#requests.get(number);
    if (!request) {
      return;
    }
    this.#requests.delete(number);
    if (request.queued) {
      this.#offline = this.#offline.filter((item) => item.request !== number);
    }
    request.reject(new TetherError('timeout', 'request timed out'));
  }

  /**
   * The connection (or attempt) is over for `reason`: queue again the
   * publications it carried and fail the other requests, then wait and dial
   * again when `retry` allows and attempts are left, or close for good.
   */
  #lose(reason, retry) {
    this.#ws = null;
    for (const name of [...this.#timers.keys()]) {
      this.#stop(name);
    }
    this.#refreshing = null;
    this.#expiresAt = null;
    this.#subscribing.clear();
    const allowed = this.#backoff.maxAttempts == null || this.#attempt < this.#backoff.maxAttempts;
    const delay = retry && allowed ? reconnectDelay(this.#attempt, this.#backoff, this.#random) : null;
    this.#requeueResendable();
    this.#failRequests((request) => !request.queued, 'disconnected', 'connection dropped');
    if (delay !== null) {
      this.#attempt += 1;
      this.#state = 'reconnecting';
      this.#start('reconnect', delay, () => this.#dial());
      const retryAt = Date.now() + delay;
      this.#emit('state', { state: 'reconnecting', attempt: this.#attempt, delay, retryAt, reason });
      return;
    }
    this.#state = 'closed';
    this.#failRequests(() => true, 'closed', 'client closed');
    this.#offline = [];
    this.#emit('state', { state: 'closed', reason });
    for (const resolve of this.#onClosed.splice(0)) {
      resolve();
    }
  }

  /**
   * Puts every request written to the lost connection that may be sent
   * again back in front of the offline queue, in id order. They were
   * accepted once, so the queue's bound does not refuse them.
   */
  #requeueResendable() {
    const resent = [];
    for (const [number, request] of this.#requests) {
      if (!request.queued && request.resend !== null) {
        request.queued = true;
        resent.push({ text: request.resend, request: number });
      }
    }
    this.#offline = [...resent, ...this.#offline];
  }

  /** Rejects, in id order, every pending request that `select` picks. */
  #failRequests(select, kind, text) {
    for (const [number, request] of [...this.#requests]) {
      if (select(request)) {
        this.#requests.delete(number);
        clearTimeout(request.timer);
        request.reject(new TetherError(kind, text));
      }
    }
  }

  /** Sends a tracked subscription with a fresh id, resuming from its position. */
  #sendSubscribe(channel) {
    const number = ++this.#lastId;
    this.#subscribing.set(channel, number);
    const since = this.#positions.get(channel);
    const message = { type: 'subscribe', channel, id: `r${number}` };
    this.#write(since ? { ...message, since: { ...since } } : message);
  }

  /** Forgets the current socket: no more of its events reach the client. */
  #abandon() {
    const ws = this.#ws;
    this.#ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      ws.close();
    }
  }

  #write(message) {
    this.#ws.send(JSON.stringify(message));
  }

  #isClosed() {
    return this.#state === 'closing' || this.#state === 'closed';
  }

  #refuseIfClosed() {
    if (this.#isClosed()) {
      throw new TetherError('closed', 'client closed');
    }
  }

  #start(name, delay, fire) {
    this.#stop(name);
    this.#timers.set(
      name,
      setTimeout(() => {
        this.#timers.delete(name);
        fire();
      }, delay),
    );
  }

  #stop(name) {
    clearTimeout(this.#timers.get(name));
    this.#timers.delete(name);
  }

  /** Calls every listener of `type`; one that throws does not stop the client. */
  #emit(type, event) {
    for (const listener of [...(this.#listeners.get(type) ?? [])]) {
      try {
        listener(event);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}

/**
 * The WebSocket constructor the client dials with: `given`, else the
 * global one. Throws a TypeError naming the option when there is neither
 * (Node.js before 22), instead of failing at the first dial.
 *
 * @param {typeof WebSocket | undefined} given
 * @returns {typeof WebSocket}
 */
function webSocketConstructor(given) {
  const found = given ?? globalThis.WebSocket;
  if (typeof found !== 'function') {
    throw new TypeError(given === undefined
      ? NO_GLOBAL_WEBSOCKET
      : 'options.WebSocket must be a WebSocket constructor');
  }
  return found;
}

/** A fresh idempotency key: 128 random bits as 32 hex digits. */
function idempotencyKey() {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
}

/** The number inside an id this client handed out, or undefined. */
function requestNumber(id) {
  return typeof id === 'string' && REQUEST_ID.test(id) ? Number(id.slice(1)) : undefined;
}
