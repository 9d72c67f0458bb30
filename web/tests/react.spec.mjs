// The React hooks in virtual time: React Testing Library renders them in
// happy-dom under StrictMode, a scripted socket plays the server and
// Vitest's fake timers the clock.

import { StrictMode, createElement as h } from 'react';
import { act, cleanup, render } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';

import { TetherClient } from '../tether.js';
import { TetherProvider, useChannel, usePresence, useTether } from '../react.js';
import { ScriptedSocket } from './scripted-socket.mjs';

const URL = 'ws://127.0.0.1:1/ws';

/** Every socket opened in the current test. */
let sockets;
/** What the probe's hooks gave at its last render. */
let seen;
/** Listeners the clients hold: added by `on`, less those stopped. */
let listening;

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'], now: 1_700_000_000_000 });
  sockets = ScriptedSocket.reset();
  seen = undefined;
  listening = 0;
  const on = TetherClient.prototype.on;
  vi.spyOn(TetherClient.prototype, 'on').mockImplementation(function counted(type, listener) {
    const stop = on.call(this, type, listener);
    listening += 1;
    let stopped = false;
    return () => {
      if (!stopped) {
        stopped = true;
        listening -= 1;
      }
      return stop();
    };
  });
});

afterEach(() => {
  cleanup();
  vi.restoreAllMocks();
  vi.useRealTimers();
});

/** Renders every hook on `channel`, keeping what they give in `seen`. */
function Probe({ channel = 'room' }) {
  seen = { tether: useTether(), channel: useChannel(channel), users: usePresence(channel) };
  return null;
}

/** The application: a provider in StrictMode around `children` (a probe). */
function app(props = {}, children = h(Probe)) {
  const options = { random: () => 0.5, WebSocket: ScriptedSocket };
  const tokens = props.getToken === undefined ? { token: 'alice' } : {};
  return h(StrictMode, null, h(TetherProvider, { url: URL, options, ...tokens, ...props }, children));
}

/** Lets the client's queued dial and settled promises run. */
async function flush() {
  await act(async () => {});
}

/** Runs `change` (a server message, a drop, time passing) as React sees it. */
function server(change) {
  act(change);
}

/** Opens the newest socket and accepts its `auth`. */
function accept(extra = {}) {
  const socket = sockets.at(-1);
  server(() => {
    socket.open();
    socket.receive({ type: 'auth_ack', user: 'alice', session: 's', ...extra });
  });
  return socket;
}

/** The `subscribe` messages `socket` carried. */
function subscribes(socket) {
  return socket.sent.filter((message) => message.type === 'subscribe');
}

describe('TetherProvider under StrictMode', () => {
  test('the double mount opens one socket and subscribes once per channel', async () => {
    const close = vi.spyOn(TetherClient.prototype, 'close');
    render(app());
    await flush();
    expect(close, 'StrictMode mounted twice: the first client was closed').toHaveBeenCalledTimes(1);
    expect(sockets).toHaveLength(1);
    expect(seen.tether.state).toBe('connecting');
    const socket = accept();
    expect(seen.tether).toMatchObject({ state: 'open', user: 'alice', session: 's', retryIn: null });
    expect(subscribes(socket)).toEqual([{ type: 'subscribe', channel: 'room', id: 'r1' }]);
    server(() => {
      socket.receive({ type: 'subscribed', channel: 'room', id: 'r1', epoch: 'e1', offset: 4 });
      socket.receive({ type: 'presence', channel: 'room', users: ['bob', 'alice'] });
      socket.receive({ type: 'message', channel: 'room', payload: { text: 'hi' }, sender: 'bob', offset: 5 });
      socket.receive({ type: 'join', channel: 'room', user: 'carol' });
    });
    expect(seen.channel.subscribed).toEqual({ epoch: 'e1', offset: 4 });
    expect(seen.channel.messages).toEqual([
      { payload: { text: 'hi' }, sender: 'bob', offset: 5, epoch: 'e1', recovered: false },
    ]);
    expect(seen.users).toEqual(['alice', 'bob', 'carol']);
  });

  test('publish goes out on the shared connection and resolves with the offset', async () => {
    render(app());
    await flush();
    const socket = accept();
    let acked;
    server(() => {
      seen.channel.publish({ text: 'hello' }).then((ack) => {
        acked = ack;
      });
    });
    const sent = socket.sent.at(-1);
    expect(sent).toMatchObject({ type: 'publish', channel: 'room', payload: { text: 'hello' } });
    server(() => socket.receive({ type: 'ack', id: sent.id, offset: 9 }));
    await flush();
    expect(acked).toEqual({ type: 'ack', id: sent.id, offset: 9 });
  });
});

describe('reconnecting', () => {
  test('counts down to the dial, then marks the replayed messages recovered', async () => {
    render(app());
    await flush();
    const first = accept();
    server(() => first.receive({ type: 'subscribed', channel: 'room', id: 'r1', epoch: 'e1', offset: 4 }));
    server(() => first.drop(1006));
    expect(seen.tether).toMatchObject({ state: 'reconnecting', attempt: 1, retryIn: 2, reason: { code: 1006, reason: 'connection lost' } });
    server(() => vi.advanceTimersByTime(500));
    expect(seen.tether.retryIn).toBe(1);
    server(() => vi.advanceTimersByTime(999));
    expect(seen.tether.retryIn).toBe(1);
    expect(sockets).toHaveLength(1);
    server(() => vi.advanceTimersByTime(1));
    expect(sockets).toHaveLength(2);
    expect(seen.tether).toMatchObject({ state: 'connecting', retryIn: null });
    const second = accept();
    expect(subscribes(second)).toEqual([{ type: 'subscribe', channel: 'room', id: 'r2', since: { epoch: 'e1', offset: 4 } }]);
    server(() => {
      second.receive({ type: 'message', channel: 'room', payload: 'a', sender: 'bob', offset: 5 });
      second.receive({ type: 'message', channel: 'room', payload: 'b', sender: 'bob', offset: 6 });
    });
    expect(seen.channel.messages, 'held until the server says the gap was covered').toEqual([]);
    server(() => {
      second.receive({ type: 'subscribed', channel: 'room', id: 'r2', epoch: 'e1', offset: 6, recovered: true });
      second.receive({ type: 'message', channel: 'room', payload: 'c', sender: 'bob', offset: 7 });
    });
    expect(seen.channel.messages.map(({ offset, recovered }) => [offset, recovered])).toEqual([[5, true], [6, true], [7, false]]);
    expect(seen.channel.notices).toEqual([{ kind: 'recovered', epoch: 'e1', offset: 6, count: 2 }]);

    server(() => second.drop(1001));
    server(() => vi.advanceTimersByTime(1500));
    const third = accept();
    server(() => third.receive({ type: 'subscribed', channel: 'room', id: 'r3', epoch: 'e2', offset: 0, recovered: false }));
    expect(seen.channel.notices.at(-1)).toEqual({ kind: 'lost', epoch: 'e2', offset: 0 });
    expect(seen.channel.subscribed).toEqual({ epoch: 'e2', offset: 0 });
  });

  test('a final close code closes for good: no dial, no countdown', async () => {
    for (const code of [1008, 4003, 4500]) {
      render(app());
      await flush();
      server(() => accept().drop(code, 'because'));
      expect(seen.tether).toMatchObject({ state: 'closed', retryIn: null, reason: { code, reason: 'because' } });
      server(() => vi.advanceTimersByTime(120000));
      expect(sockets).toHaveLength(1);
      expect(vi.getTimerCount()).toBe(0);
      cleanup();
      sockets = ScriptedSocket.reset();
    }
  });

  test('a refused subscription and one the server ended are notices', async () => {
    render(app());
    await flush();
    const socket = accept();
    server(() => {
      socket.receive({ type: 'subscribed', channel: 'room', id: 'r1', epoch: 'e1', offset: 0 });
      socket.receive({ type: 'unsubscribed', channel: 'room', reason: 'forbidden' });
    });
    expect(seen.channel.notices).toEqual([{ kind: 'ended', reason: 'forbidden' }]);
    expect(seen.channel.subscribed).toBe(null);
    cleanup();
    render(app({}, h(Probe, { channel: 'user:bob' })));
    await flush();
    const next = sockets.at(-1);
    server(() => {
      next.open();
      next.receive({ type: 'auth_ack', user: 'alice', session: 's' });
    });
    server(() => next.receive({ type: 'error', id: subscribes(next)[0].id, code: 'FORBIDDEN', message: 'private channel' }));
    expect(seen.channel.notices).toEqual([{ kind: 'refused', code: 'FORBIDDEN', message: 'private channel' }]);
  });
});

describe('unmounting', () => {
  test('leaves no listener and no timer, and closes the socket', async () => {
    const view = render(app());
    await flush();
    const socket = accept();
    server(() => socket.drop(1006));
    expect(seen.tether.state).toBe('reconnecting');
    expect(listening).toBeGreaterThan(0);
    expect(vi.getTimerCount(), 'the dial and the countdown').toBe(2);
    view.unmount();
    expect(listening).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
    server(() => vi.advanceTimersByTime(120000));
    expect(sockets).toHaveLength(1);
  });

  test('an open connection is closed with 1000', async () => {
    const view = render(app());
    await flush();
    const socket = accept();
    view.unmount();
    expect(socket.closedWith).toBe(1000);
    socket.drop(1000);
    expect(listening).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  test('the last component using a channel unsubscribes; the others keep it', async () => {
    const both = h('div', null, h(Probe), h(Probe, { key: 'second' }));
    const view = render(app({}, both));
    await flush();
    const socket = accept();
    expect(subscribes(socket)).toHaveLength(1);
    view.rerender(app({}, h('div', null, h(Probe))));
    expect(socket.sent.filter((message) => message.type === 'unsubscribe')).toEqual([]);
    view.rerender(app({}, h('div', null)));
    expect(socket.sent.filter((message) => message.type === 'unsubscribe')).toEqual([{ type: 'unsubscribe', channel: 'room' }]);
  });
});

describe('tokens', () => {
  test('getToken gives every token, a new function needs no reconnect, and refreshes show', async () => {
    const calls = [];
    const provider = (name) => async () => {
      calls.push(name);
      return `${name}-${calls.length}`;
    };
    const view = render(app({ getToken: provider('first') }));
    await flush();
    sockets.at(-1).open();
    expect(sockets.at(-1).sent[0]).toEqual({ type: 'auth', token: 'first-1' });
    const expiresAt = Date.now() + 120000;
    const socket = accept({ expires_at: expiresAt });
    expect(seen.tether.expiresAt).toBe(expiresAt);
    view.rerender(app({ getToken: provider('second') }));
    expect(sockets, 'a new provider function is no new connection').toHaveLength(1);
    for (let left = 96000; left > 0; left -= 20000) {
      server(() => vi.advanceTimersByTime(Math.min(left, 20000)));
      server(() => socket.receive({ type: 'pong' }));
    }
    await flush();
    const refresh = socket.sent.at(-1);
    expect(refresh).toEqual({ type: 'refresh', token: 'second-2', id: refresh.id });
    server(() => socket.receive({ type: 'error', id: refresh.id, code: 'FORBIDDEN', message: 'refused' }));
    expect(seen.tether.refreshError).toEqual({ code: 'FORBIDDEN', message: 'refused' });
    server(() => vi.advanceTimersByTime(1500));
    await flush();
    const again = socket.sent.at(-1);
    const renewed = Date.now() + 3600000;
    server(() => socket.receive({ type: 'refreshed', id: again.id, expires_at: renewed }));
    expect(seen.tether).toMatchObject({ state: 'open', expiresAt: renewed, refreshError: null });
  });

  test('a new fixed token is a new connection', async () => {
    const view = render(app({ token: 'alice' }));
    await flush();
    const first = accept();
    view.rerender(app({ token: 'bob' }));
    await flush();
    expect(first.closedWith).toBe(1000);
    expect(sockets).toHaveLength(2);
    sockets[1].open();
    expect(sockets[1].sent[0]).toEqual({ type: 'auth', token: 'bob' });
  });

  test('a hook outside a provider says where it belongs', () => {
    vi.spyOn(console, 'error').mockImplementation(() => {});
    expect(() => render(h(Probe))).toThrow('useTether must be used inside a <TetherProvider>');
  });
});
