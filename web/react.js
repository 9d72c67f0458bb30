// React hooks for the Tether client, the package's `tether-client/react`
// entry point (React 18 or later is a peer dependency; the browser module
// /tether.js does not need it):
//
// - <TetherProvider url token|getToken options> holds one connection for
//   everything below it. It opens the connection in an effect and closes it
//   in the effect's cleanup, so React's StrictMode double mount opens one
//   socket (the first client is closed before it dials) and an unmount
//   leaves no socket, listener or timer behind. A new `url` or fixed `token`
//   is a new connection; `getToken` and `options` are read when the
//   connection opens, and a new `getToken` function is used from its next
//   call on without reconnecting.
// - useTether() gives the connection's state (as the client's `state`
//   events say it), the reconnect countdown in whole seconds, the token's
//   expiry and the last refresh failure. After a final close code the client
//   does not reconnect and neither does the provider: the state stays
//   `closed`, with the reason.
// - useChannel(channel) subscribes while mounted and gives the channel's
//   messages with their offsets (the last `limit`), and notices: after a
//   reconnect, the messages the server replayed come marked `recovered`
//   (the server sends them before its `subscribed`, so they are held until
//   it says whether the gap was covered), `lost` when it was not, `ended`
//   when the server ended the subscription and `refused` when it refused it.
// - usePresence(channel) subscribes while mounted and gives the channel's
//   users, sorted.
//
// Several components may use one channel: the provider counts them, and
// the channel is unsubscribed when the last one unmounts.

import { createContext, createElement, useCallback, useContext, useEffect, useMemo, useRef, useState } from 'react';

import { TetherClient, TetherError } from './tether.js';

/**
 * @typedef {import('./tether.js').ClientOptions} ClientOptions
 * @typedef {import('./tether.js').CloseInfo} CloseInfo
 */

/**
 * @typedef {object} ConnectionStatus
 * @property {'connecting' | 'open' | 'reconnecting' | 'closing' | 'closed'} state
 * @property {string} user The user of the last `auth_ack`; empty before.
 * @property {string} session The server's id of the connection; empty before.
 * @property {number} attempt Retries in a row so far.
 * @property {number | null} retryAt When the next dial happens (a `Date.now()` value), while reconnecting.
 * @property {CloseInfo | null} reason Why the last connection ended, while reconnecting or closed.
 * @property {number | null} expiresAt When the token expires (a `Date.now()` value), if it does.
 * @property {{code?: string, message: string} | null} refreshError The last failed refresh, until one succeeds.
 */

/**
 * @typedef {object} ChannelMessage
 * @property {unknown} payload The published JSON value.
 * @property {string} [sender] The publishing user; absent for the HTTP API.
 * @property {number} offset Its offset in `epoch`.
 * @property {string | null} epoch The channel's epoch it belongs to; null before the first `subscribed`.
 * @property {boolean} recovered Replayed after a reconnect, from the history.
 */

/**
 * @typedef {{kind: 'recovered', epoch: string, offset: number, count: number}
 *   | {kind: 'lost', epoch: string, offset: number}
 *   | {kind: 'ended', reason: string}
 *   | {kind: 'refused', code: string, message: string}} ChannelNotice
 */

/** The status before the first event. */
const CONNECTING = Object.freeze({
  state: 'connecting',
  user: '',
  session: '',
  attempt: 0,
  retryAt: null,
  reason: null,
  expiresAt: null,
  refreshError: null,
});

/** What useChannel keeps at most by default, messages and notices each. */
const CHANNEL_LIMIT = 1000;

/** One connection and the components using each of its channels. */
class SharedClient {
  /** @param {TetherClient} client */
  constructor(client) {
    this.client = client;
    /** @type {Map<string, number>} */
    this.holders = new Map();
  }

  /**
   * Keeps `channel` subscribed until the returned function is called; the
   * last holder to let go unsubscribes.
   *
   * @param {string} channel
   * @returns {() => void}
   */
  hold(channel) {
    this.holders.set(channel, (this.holders.get(channel) ?? 0) + 1);
    if (this.#live()) {
      this.client.subscribe(channel);
    }
    let held = true;
    return () => {
      if (!held) {
        return;
      }
      held = false;
      const left = (this.holders.get(channel) ?? 1) - 1;
      if (left > 0) {
        this.holders.set(channel, left);
        return;
      }
      this.holders.delete(channel);
      if (this.#live()) {
        this.client.unsubscribe(channel);
      }
    };
  }

  #live() {
    return this.client.state !== 'closing' && this.client.state !== 'closed';
  }
}

/** @type {import('react').Context<{shared: SharedClient | null, status: ConnectionStatus, retryIn: number | null} | null>} */
const TetherContext = createContext(null);

/**
 * Holds one Tether connection for the components below it.
 *
 * @param {{
 *   url: string,
 *   token?: string,
 *   getToken?: () => Promise<string> | string,
 *   options?: Omit<ClientOptions, 'token' | 'getToken'>,
 *   children?: import('react').ReactNode,
 * }} props
 */
export function TetherProvider({ url, token, getToken, options, children }) {
  const latest = useRef({ getToken, options });
  useEffect(() => {
    latest.current = { getToken, options };
  });
  const [shared, setShared] = useState(/** @type {SharedClient | null} */ (null));
  const [status, setStatus] = useState(/** @type {ConnectionStatus} */ (CONNECTING));
  const provided = typeof getToken === 'function';

  useEffect(() => {
    const source = provided
      ? { getToken: () => latest.current.getToken() }
      : { token: token ?? '' };
    const client = new TetherClient(url, /** @type {ClientOptions} */ ({ ...latest.current.options, ...source }));
    const connection = new SharedClient(client);
    /** @param {(status: ConnectionStatus) => Partial<ConnectionStatus>} change */
    const update = (change) => setStatus((status) => ({ ...status, ...change(status) }));
    const stops = [
      client.on('state', (event) => update(() => stateChange(event))),
      client.on('refreshed', ({ expiresAt }) => update(() => ({ expiresAt: expiresAt ?? null, refreshError: null }))),
      client.on('refresh-failed', ({ code, message }) => update(() => ({ refreshError: { code, message } }))),
    ];
    setStatus(CONNECTING);
    setShared(connection);
    return () => {
      for (const stop of stops) {
        stop();
      }
      client.close();
    };
  }, [url, token, provided]);

  const retryIn = useCountdown(status.state === 'reconnecting' ? status.retryAt : null);
  const value = useMemo(() => ({ shared, status, retryIn }), [shared, status, retryIn]);
  return createElement(TetherContext.Provider, { value }, children);
}

/**
 * What a `state` event changes in the status.
 *
 * @param {import('./tether.js').StateEvent} event
 * @returns {Partial<ConnectionStatus>}
 */
function stateChange(event) {
  switch (event.state) {
    case 'connecting':
      return { state: 'connecting', attempt: event.attempt, retryAt: null };
    case 'open':
      return {
        state: 'open',
        user: event.user,
        session: event.session,
        attempt: 0,
        retryAt: null,
        reason: null,
        expiresAt: event.expiresAt ?? null,
        refreshError: null,
      };
    case 'reconnecting':
      return { state: 'reconnecting', attempt: event.attempt, retryAt: event.retryAt, reason: event.reason, expiresAt: null };
    case 'closing':
      return { state: 'closing', retryAt: null };
    default:
      return { state: 'closed', retryAt: null, reason: event.reason, expiresAt: null };
  }
}

/**
 * The whole seconds left until `at` (a `Date.now()` value), counted down
 * by one timer that ticks at each whole second before it; null without `at`.
 *
 * @param {number | null} at
 * @returns {number | null}
 */
function useCountdown(at) {
  const left = () => (at === null ? null : Math.max(0, Math.ceil((at - Date.now()) / 1000)));
  const [seconds, setSeconds] = useState(left);
  useEffect(() => {
    setSeconds(left());
    if (at === null) {
      return undefined;
    }
    let timer;
    const tick = () => {
      const remaining = at - Date.now();
      setSeconds(Math.max(0, Math.ceil(remaining / 1000)));
      if (remaining > 0) {
        timer = setTimeout(tick, remaining % 1000 || 1000);
      }
    };
    tick();
    return () => clearTimeout(timer);
  }, [at]);
  return seconds;
}

/**
 * The provider's context, or an error that says where the hook must be.
 *
 * @param {string} hook
 */
function useProvided(hook) {
  const context = useContext(TetherContext);
  if (context === null) {
    throw new Error(`${hook} must be used inside a <TetherProvider>`);
  }
  return context;
}

/**
 * The provider's connection: its client (null until the provider's effect
 * made it), its status and, while reconnecting, the seconds left before
 * the next dial.
 *
 * @returns {ConnectionStatus & {client: TetherClient | null, retryIn: number | null}}
 */
export function useTether() {
  const { shared, status, retryIn } = useProvided('useTether');
  return { ...status, client: shared?.client ?? null, retryIn };
}

/**
 * Subscribes to `channel` while mounted and keeps its messages, the last
 * `limit` of them (1000), and its notices (as many).
 *
 * @param {string} channel
 * @param {{limit?: number}} [options]
 * @returns {{
 *   messages: ChannelMessage[],
 *   notices: ChannelNotice[],
 *   subscribed: {epoch: string, offset: number} | null,
 *   publish: (payload: unknown, options?: {timeout?: number}) => Promise<{type: 'ack', id: string, offset: number}>,
 * }}
 */
export function useChannel(channel, options = {}) {
  const limit = options.limit ?? CHANNEL_LIMIT;
  const { shared } = useProvided('useChannel');
  const [view, setView] = useState(emptyChannel);

  useEffect(() => {
    setView(emptyChannel());
    if (shared === null) {
      return undefined;
    }
    const { client } = shared;
    /** @type {string | null} */
    let epoch = null;
    /** After a reconnect, until the channel's `subscribed`: what arrives is the replay. */
    let resuming = false;
    /** @type {ChannelMessage[]} */
    let replayed = [];
    /** @param {ChannelMessage[]} messages @param {ChannelNotice[]} notices @param {{epoch: string, offset: number} | null} [subscribed] */
    const add = (messages, notices, subscribed) => setView((view) => ({
      messages: messages.length === 0 ? view.messages : [...view.messages, ...messages].slice(-limit),
      notices: notices.length === 0 ? view.notices : [...view.notices, ...notices].slice(-limit),
      subscribed: subscribed === undefined ? view.subscribed : subscribed,
    }));
    const stops = [
      client.on('state', (event) => {
        if (event.state === 'open' && epoch !== null) {
          resuming = true;
        }
      }),
      client.on('message', (event) => {
        if (event.channel !== channel) {
          return;
        }
        const message = { payload: event.payload, sender: event.sender, offset: event.offset, epoch, recovered: false };
        if (resuming) {
          replayed.push(message);
        } else {
          add([message], []);
        }
      }),
      client.on('subscribed', (event) => {
        if (event.channel !== channel) {
          return;
        }
        const held = replayed;
        replayed = [];
        resuming = false;
        epoch = event.epoch;
        const position = { epoch: event.epoch, offset: event.offset };
        if (event.recovered === true) {
          const messages = held.map((message) => ({ ...message, epoch: event.epoch, recovered: true }));
          add(messages, [{ kind: 'recovered', ...position, count: messages.length }], position);
        } else if (event.recovered === false) {
          add(held, [{ kind: 'lost', ...position }], position);
        } else {
          add(held, [], position);
        }
      }),
      client.on('unsubscribed', (event) => {
        if (event.channel === channel) {
          add([], [{ kind: 'ended', reason: event.reason }], null);
        }
      }),
      client.on('error', (event) => {
        if (event.channel === channel) {
          const held = replayed;
          replayed = [];
          resuming = false;
          add(held, [{ kind: 'refused', code: event.code, message: event.message }], null);
        }
      }),
    ];
    const release = shared.hold(channel);
    return () => {
      for (const stop of stops) {
        stop();
      }
      release();
    };
  }, [shared, channel, limit]);

  const publish = useCallback(
    /** @param {unknown} payload @param {{timeout?: number}} [options] */
    (payload, options) => (shared === null
      ? Promise.reject(new TetherError('disconnected', 'the provider has no connection yet'))
      : shared.client.publish(channel, payload, options)),
    [shared, channel],
  );
  return { ...view, publish };
}

/** A channel view before anything arrived. */
function emptyChannel() {
  return {
    messages: /** @type {ChannelMessage[]} */ ([]),
    notices: /** @type {ChannelNotice[]} */ ([]),
    subscribed: /** @type {{epoch: string, offset: number} | null} */ (null),
  };
}

/**
 * Subscribes to `channel` while mounted and gives its users, sorted, from
 * the server's snapshot and the joins and leaves since.
 *
 * @param {string} channel
 * @returns {string[]}
 */
export function usePresence(channel) {
  const { shared } = useProvided('usePresence');
  const [users, setUsers] = useState(/** @type {string[]} */ ([]));
  useEffect(() => {
    if (shared === null) {
      setUsers([]);
      return undefined;
    }
    const { client } = shared;
    setUsers(client.presence(channel));
    const stop = client.on('presence', (event) => {
      if (event.channel === channel) {
        setUsers(event.users);
      }
    });
    const release = shared.hold(channel);
    return () => {
      stop();
      release();
    };
  }, [shared, channel]);
  return users;
}
