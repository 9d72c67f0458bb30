// Type declarations of the Tether client (the npm package `tether-client`),
// served at /tether.d.ts next to the module at /tether.js.

/** The reconnect schedule: `min(base * 2^n, cap)` plus whole ms drawn from [0, jitter) with `random()`. */
export interface Backoff {
  /** Delay before the first retry (1000). */
  base: number;
  /** Largest delay before jitter (30000). */
  cap: number;
  /** Exclusive bound of the random part (1000). */
  jitter: number;
  /** Retries in a row before giving up; null retries for ever, 0 never retries. */
  maxAttempts: number | null;
}

/** Where the token sent in `auth` comes from: a fixed `token`, or `getToken`. */
export type TokenOptions =
  | {
      /** Sent in `auth` on every connection; never refreshed. */
      token: string;
      getToken?: undefined;
    }
  | {
      token?: undefined;
      /**
       * Gives a fresh token: called before every connection and for every
       * refresh of a token that expires; a failure is retried with backoff.
       */
      getToken: () => Promise<string> | string;
    };

/** Settings of a {@link TetherClient}; every duration is in milliseconds. */
export type ClientOptions = TokenOptions & OtherOptions;

/** The settings of a {@link TetherClient} besides its token. */
export interface OtherOptions {
  /** The reconnect schedule; missing fields keep their defaults. */
  backoff?: Partial<Backoff>;
  /** Silence before the client sends `{"type":"ping"}` (25000). */
  pingIdle?: number;
  /** Further silence after which the connection is dead (10000). */
  pongTimeout?: number;
  /** Deadline of a request made without one (10000). */
  requestTimeout?: number;
  /** Longest time from a dial to `auth_ack` (10000). */
  connectTimeout?: number;
  /** How long `close()` waits for the server's close frame (5000). */
  closeTimeout?: number;
  /** Messages kept while not connected; one more fails (1000). */
  offlineQueue?: number;
  /** Source of jitter in [0, 1) (`Math.random`). */
  random?: () => number;
  /**
   * The WebSocket constructor: `globalThis.WebSocket` when omitted (every
   * browser, Node.js 22 and later). Node.js before 22 has none: pass the
   * `WebSocket` of the `ws` package, or the constructor throws a TypeError
   * saying so.
   */
  WebSocket?: typeof WebSocket;
}

/** The protocol's defaults. */
export const DEFAULTS: Readonly<Required<Omit<OtherOptions, 'random' | 'WebSocket' | 'backoff'>> & { backoff: Readonly<Backoff> }>;

/** When to refresh a token with `remaining` ms of life, in ms from now; null once expired. */
export function refreshDelay(remaining: number): number | null;

/** The wait before retry `attempt` (from 0), in ms: `min(base * 2^attempt, cap)` plus whole ms drawn from [0, jitter). */
export function reconnectDelay(attempt: number, backoff: Backoff, random: () => number): number;

/** How a connection ended. */
export interface CloseInfo {
  /** The close code; 1006 when no close frame came (which includes every refused handshake). */
  code: number;
  /** The close reason, or a description. */
  reason: string;
}

/** Where the client stands. */
export type State = 'connecting' | 'open' | 'reconnecting' | 'closing' | 'closed';

/** A change of {@link State}. */
export type StateEvent =
  | { state: 'connecting'; /** Retries made in a row so far. */ attempt: number }
  | {
      state: 'open';
      user: string;
      session: string;
      /** When the token expires, as a `Date.now()` value; absent when it does not. */
      expiresAt?: number;
    }
  | {
      state: 'reconnecting';
      /** 1 for the first retry since the last `auth_ack`, then 2, 3, ... */
      attempt: number;
      /** The wait before the dial, jitter included. */
      delay: number;
      /** When the dial happens, as a `Date.now()` value. */
      retryAt: number;
      /** Why the connection (or attempt) ended. */
      reason: CloseInfo;
    }
  | { state: 'closing' }
  | { state: 'closed'; /** 1000 after `close()`, else the final close code. */ reason: CloseInfo };

/** A publication; each offset is delivered at most once per epoch. */
export interface MessageEvent {
  channel: string;
  /** The published JSON value. */
  payload: unknown;
  /** The publishing user; absent for the HTTP publish API. */
  sender?: string;
  offset: number;
}

/** A channel's users: after every snapshot and every join or leave. */
export interface PresenceEvent {
  channel: string;
  /** Sorted. */
  users: string[];
}

/** A user joined or left a channel. */
export interface MemberEvent {
  channel: string;
  user: string;
}

/** The server confirmed a tracked subscription (first time and after every reconnect). */
export interface SubscribedEvent {
  channel: string;
  epoch: string;
  /** The channel's offset when subscribed. */
  offset: number;
  /**
   * Absent for a first subscription; after a reconnect, whether the server
   * replayed everything missed. `false` means publications were lost (for
   * example, the server restarted with an in-memory hub): resync.
   */
  recovered?: boolean;
  /**
   * What the application gave with its consent, on a channel whose
   * subscriptions it decides; absent otherwise.
   */
  data?: unknown;
}

/** The server ended a subscription by itself; the channel is no longer tracked. */
export interface UnsubscribedEvent {
  channel: string;
  /** Why: `forbidden` when the connection's grants no longer allow the channel. */
  reason: string;
}

/** The server accepted a fresh token from `getToken` on the open connection. */
export interface RefreshedEvent {
  /** When the new token expires, as a `Date.now()` value; absent when it does not. */
  expiresAt?: number;
}

/** A refresh failed; it is tried again, with backoff, until the token expires. */
export interface RefreshFailedEvent {
  /** The server's error code; absent when `getToken` gave no token or the server no answer in time. */
  code?: string;
  message: string;
}

/** A server `error` that answers no pending request. */
export interface ErrorEvent {
  /** `FORBIDDEN`, `INVALID_CHANNEL`, `RATE_LIMITED`, ... */
  code: string;
  message: string;
  id?: string;
  /** Set when a subscription was refused: the channel is no longer tracked. */
  channel?: string;
}

/** Every event type and what its listeners receive. */
export interface EventMap {
  message: MessageEvent;
  presence: PresenceEvent;
  join: MemberEvent;
  leave: MemberEvent;
  subscribed: SubscribedEvent;
  unsubscribed: UnsubscribedEvent;
  refreshed: RefreshedEvent;
  'refresh-failed': RefreshFailedEvent;
  state: StateEvent;
  error: ErrorEvent;
}

/** A message to the server: `type` and its fields (PROTOCOL.md section 4). */
export interface ClientMessage {
  type: string;
  [field: string]: unknown;
}

/** Why a request, a send or a subscription failed. */
export class TetherError extends Error {
  constructor(kind: TetherError['kind'], message: string, code?: string);
  /** What went wrong: the server refused, no reply in time, the connection carrying it dropped, the client closed, the offline queue is full, or the message cannot carry an id. */
  readonly kind: 'server' | 'timeout' | 'disconnected' | 'closed' | 'queue-full' | 'not-a-request';
  /** The server's error code, for kind `server`. */
  readonly code?: string;
}

/** A Tether connection that survives reconnects. */
export class TetherClient {
  /** Starts connecting to `url` (`ws:` or `wss:`, the `/ws` endpoint) after the current task. */
  constructor(url: string, options: ClientOptions);
  readonly state: State;
  /** The user of the last `auth_ack`. */
  readonly user: string;
  /** The server's id of the current connection. */
  readonly session: string;
  /** Calls `listener` for every event of `type`; returns the function that stops it. */
  on<K extends keyof EventMap>(type: K, listener: (event: EventMap[K]) => void): () => void;
  /** Tracks `channel`, subscribing now or after the next `auth_ack`, and after every reconnect. */
  subscribe(channel: string): void;
  /** Stops tracking `channel`. */
  unsubscribe(channel: string): void;
  /** The channel's users, sorted. */
  presence(channel: string): string[];
  /**
   * Publishes `payload` with a fresh random `idempotency_key`, kept when a
   * reconnect makes the client send it again; resolves with the `ack` and
   * its offset.
   */
  publish(
    channel: string,
    payload: unknown,
    options?: { timeout?: number },
  ): Promise<{ type: 'ack'; id: string; offset: number }>;
  /**
   * Calls the application's `method` (1 to 64 characters of
   * `A-Z a-z 0-9 _ - : . @ /`) with `data` (`null` when omitted); resolves
   * with its answer, the `data` of the `rpc_result`. Rejects with a
   * {@link TetherError}: kind `server` with the application's `code` and
   * message, or a timeout, a dropped connection (an `rpc` is never sent
   * twice), the client's close or a full offline queue.
   */
  rpc(method: string, data?: unknown, options?: { timeout?: number }): Promise<unknown>;
  /**
   * Sends `message` with a fresh id; resolves with the reply carrying it.
   * A `publish` with an `idempotency_key` is sent again after a reconnect;
   * any other request fails with the connection that carried it.
   */
  request(message: ClientMessage, options?: { timeout?: number }): Promise<any>;
  /** Sends `message` as it is, now or after the next `auth_ack`; throws when closed or when the queue is full. */
  send(message: ClientMessage): void;
  /** The fixed token for the next connection on; `getToken` is called no more. */
  setToken(token: string): void;
  /** Closes for good with 1000; resolves once closed. */
  close(): Promise<void>;
}
