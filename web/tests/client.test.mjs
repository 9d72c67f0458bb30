// The browser client's decisions, in virtual time: a scripted socket stands
// in for the browser's WebSocket and node's mock timers for the clock.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { TetherClient, TetherError, reconnectDelay, refreshDelay, DEFAULTS } from '../tether.js';
import { ScriptedSocket } from './scripted-socket.mjs';

/** Every socket the client under test opened, oldest first. */
let sockets = [];

/** A client on scripted sockets with fixed jitter (half of the range), and its events. */
async function start(t, options = {}) {
  if (options.getToken === undefined) {
    t.mock.timers.enable({ apis: ['setTimeout'] });
  }
  sockets = ScriptedSocket.reset();
  const events = [];
  const client = new TetherClient('ws://127.0.0.1:1/ws', {
    token: 'alice',
    random: () => 0.5,
    WebSocket: ScriptedSocket,
    ...options,
  });
  for (const type of ['message', 'presence', 'join', 'leave', 'subscribed', 'unsubscribed', 'refreshed', 'refresh-failed', 'state', 'error']) {
    client.on(type, (event) => events.push({ type, ...event }));
  }
  await Promise.resolve();
  return { client, events, states: () => events.filter((e) => e.type === 'state').map((e) => e.state) };
}

/** Opens the newest socket and accepts its `auth`. */
function accept(user = 'alice') {
  const socket = sockets.at(-1);
  socket.open();
  socket.receive({ type: 'auth_ack', user, session: 's', heartbeat_ms: 30000, max_payload: 65536 });
  return socket;
}

/** A sent publish without its `idempotency_key`, after checking that it has one. */
function withoutKey({ idempotency_key: key, ...message }) {
  assert.match(key, /^[0-9a-f]{32}$/);
  return message;
}

/** Settles rejections into values so that they can be compared. */
function outcome(promise) {
  return promise.then(
    (value) => ({ ok: value }),
    (error) => ({ kind: error.kind, code: error.code }),
  );
}

test('auth goes first, on the tether.v1 subprotocol, and nothing else before auth_ack', async (t) => {
  const { client, states } = await start(t);
  client.subscribe('room');
  client.send({ type: 'publish', channel: 'room', payload: 1 });
  const socket = sockets[0];
  assert.deepEqual(socket.protocols, ['tether.v1']);
  socket.open();
  assert.deepEqual(socket.sent, [{ type: 'auth', token: 'alice' }]);
  socket.receive({ type: 'auth_ack', user: 'alice', session: 's1' });
  assert.deepEqual(socket.types(), ['auth', 'subscribe', 'publish']);
  assert.equal(client.user, 'alice');
  assert.deepEqual(states(), ['connecting', 'open']);
});

test('reconnect delays double from base to cap plus jitter, and auth_ack resets them', async (t) => {
  const { events } = await start(t);
  const delays = () => events.filter((e) => e.state === 'reconnecting').map((e) => e.delay);
  for (let n = 0; n < 7; n += 1) {
    sockets.at(-1).drop(1006);
    t.mock.timers.tick(delays().at(-1));
  }
  assert.deepEqual(delays(), [1500, 2500, 4500, 8500, 16500, 30500, 30500]);
  accept();
  sockets.at(-1).drop(1001);
  assert.equal(delays().at(-1), 1500);
  assert.equal(reconnectDelay(5000, DEFAULTS.backoff, () => 0), 30000);
  assert.equal(reconnectDelay(2000, { base: 0, cap: 10, jitter: 0 }, () => 0), 0);
});

test('a dial waits for its delay and not a millisecond less', async (t) => {
  const { events } = await start(t);
  sockets[0].drop(1006);
  assert.deepEqual(events.at(-1).reason, { code: 1006, reason: 'connect failed or refused' });
  t.mock.timers.tick(1499);
  assert.equal(sockets.length, 1);
  t.mock.timers.tick(1);
  assert.equal(sockets.length, 2);
});

test('final close codes end the client; the others are retried', async (t) => {
  for (const code of [1002, 1003, 1007, 1008, 1009, 4001, 4003, 4029, 4500, 4999]) {
    const { client, events } = await start(t);
    accept();
    sockets[0].drop(code, 'because');
    t.mock.timers.tick(120000);
    assert.equal(client.state, 'closed', `close code ${code}`);
    assert.equal(sockets.length, 1, `no dial after ${code}`);
    assert.deepEqual(events.at(-1), { type: 'state', state: 'closed', reason: { code, reason: 'because' } });
    t.mock.timers.reset();
  }
  for (const code of [1000, 1001, 1006, 1011, 1013, 4008, 4100, 4499]) {
    const { client, events } = await start(t);
    accept();
    sockets[0].drop(code);
    assert.equal(client.state, 'reconnecting', `close code ${code}`);
    assert.equal(events.at(-1).reason.code, code);
    t.mock.timers.tick(1500);
    assert.equal(sockets.length, 2, `a dial after ${code}`);
    t.mock.timers.reset();
  }
});

test('a refused token before auth_ack is final', async (t) => {
  const { client, states } = await start(t, { token: '' });
  sockets[0].open();
  sockets[0].drop(4003, 'forbidden');
  t.mock.timers.tick(60000);
  assert.equal(client.state, 'closed');
  assert.equal(sockets.length, 1);
  assert.deepEqual(states(), ['connecting', 'closed']);
});

test('max_attempts bounds the retries in a row', async (t) => {
  const { client } = await start(t, { backoff: { maxAttempts: 2, jitter: 0 } });
  sockets[0].drop();
  t.mock.timers.tick(1000);
  sockets[1].drop();
  t.mock.timers.tick(2000);
  sockets[2].drop();
  assert.equal(client.state, 'closed');
  t.mock.timers.tick(60000);
  assert.equal(sockets.length, 3);
});

test('re-subscriptions resume with since, in name order, before the offline queue', async (t) => {
  const { client, events } = await start(t);
  client.subscribe('b');
  client.subscribe('a');
  const first = accept();
  assert.deepEqual(
    first.sent.slice(1).map((m) => m.channel),
    ['a', 'b'],
  );
  first.receive({ type: 'subscribed', channel: 'a', id: first.sent[1].id, epoch: 'e1', offset: 3 });
  first.receive({ type: 'message', channel: 'a', payload: 'x', sender: 'bob', offset: 4 });
  first.drop(1001);
  client.send({ type: 'publish', channel: 'a', payload: 'queued' });
  t.mock.timers.tick(1500);
  const second = accept();
  assert.deepEqual(second.sent.slice(1), [
    { type: 'subscribe', channel: 'a', id: 'r3', since: { epoch: 'e1', offset: 4 } },
    { type: 'subscribe', channel: 'b', id: 'r4' },
    { type: 'publish', channel: 'a', payload: 'queued' },
  ]);
  second.receive({ type: 'message', channel: 'a', payload: 'again', sender: 'bob', offset: 4 });
  second.receive({ type: 'message', channel: 'a', payload: 'y', sender: 'bob', offset: 5 });
  second.receive({ type: 'subscribed', channel: 'a', id: 'r3', epoch: 'e1', offset: 5, recovered: true });
  second.receive({ type: 'message', channel: 'a', payload: 'y', sender: 'bob', offset: 5 });
  const offsets = events.filter((e) => e.type === 'message').map((e) => e.offset);
  assert.deepEqual(offsets, [4, 5], 'duplicates around the reconnect are dropped');
  assert.deepEqual(events.filter((e) => e.type === 'subscribed').at(-1).recovered, true);
});

test('a new epoch restarts the offsets', async (t) => {
  const { client, events } = await start(t);
  client.subscribe('a');
  const first = accept();
  first.receive({ type: 'subscribed', channel: 'a', id: 'r1', epoch: 'e1', offset: 9 });
  first.drop(1001);
  t.mock.timers.tick(1500);
  const second = accept();
  assert.deepEqual(second.sent[1].since, { epoch: 'e1', offset: 9 });
  second.receive({ type: 'subscribed', channel: 'a', id: 'r2', epoch: 'e2', offset: 0, recovered: false });
  second.receive({ type: 'message', channel: 'a', payload: 'fresh', offset: 1 });
  assert.deepEqual(
    events.filter((e) => e.type === 'message').map((e) => [e.offset, e.payload, e.sender]),
    [[1, 'fresh', undefined]],
  );
  const subscribed = events.filter((e) => e.type === 'subscribed').at(-1);
  assert.deepEqual([subscribed.epoch, subscribed.recovered], ['e2', false]);
});

test('the heartbeat pings after 25 s of silence and gives up 10 s later', async (t) => {
  const { client } = await start(t);
  const socket = accept();
  t.mock.timers.tick(24999);
  socket.receive({ type: 'pong' });
  t.mock.timers.tick(24999);
  assert.deepEqual(socket.types(), ['auth'], 'anything received counts as life');
  t.mock.timers.tick(1);
  assert.deepEqual(socket.types(), ['auth', 'ping']);
  t.mock.timers.tick(9999);
  assert.equal(client.state, 'open');
  t.mock.timers.tick(1);
  assert.equal(client.state, 'reconnecting');
  assert.equal(socket.closedWith, null, 'the dead socket is dropped without a code');
  socket.receive({ type: 'pong' });
  assert.equal(client.state, 'reconnecting', 'a forgotten socket is not heard');
});

test('the connect deadline covers the dial up to auth_ack', async (t) => {
  const { client, events } = await start(t);
  sockets[0].open();
  t.mock.timers.tick(9999);
  assert.equal(client.state, 'connecting');
  t.mock.timers.tick(1);
  assert.equal(client.state, 'reconnecting');
  assert.deepEqual(events.at(-1).reason, { code: 1006, reason: 'connect timeout' });
});

test('requests settle by id: reply, server error, timeout, drop, close', async (t) => {
  const { client } = await start(t);
  const socket = accept();
  const acked = outcome(client.publish('room', { n: 1 }));
  const refused = outcome(client.request({ type: 'subscribe', channel: '!' }));
  const slow = outcome(client.request({ type: 'presence', channel: 'room' }, { timeout: 50 }));
  const dropped = outcome(client.request({ type: 'ping' }));
  assert.deepEqual(socket.sent.slice(1).map((m) => m.id), ['r1', 'r2', 'r3', 'r4']);
  socket.receive({ type: 'ack', id: 'r1', offset: 7 });
  socket.receive({ type: 'error', id: 'r2', code: 'INVALID_CHANNEL', message: 'bad' });
  t.mock.timers.tick(50);
  socket.receive({ type: 'presence', id: 'r3', channel: 'room', users: [] });
  socket.drop(1006);
  assert.deepEqual(await acked, { ok: { type: 'ack', id: 'r1', offset: 7 } });
  assert.deepEqual(await refused, { kind: 'server', code: 'INVALID_CHANNEL' });
  assert.deepEqual(await slow, { kind: 'timeout', code: undefined });
  assert.deepEqual(await dropped, { kind: 'disconnected', code: undefined });
  const queued = outcome(client.request({ type: 'ping' }));
  await client.close();
  assert.deepEqual(await queued, { kind: 'closed', code: undefined });
  assert.throws(() => client.send({ type: 'ping' }), (e) => e instanceof TetherError && e.kind === 'closed');
});

test('rpc resolves with the application\'s data and rejects with its code and message', async (t) => {
  const { client } = await start(t);
  const first = accept();
  const answered = outcome(client.rpc('orders.create', { item: 'tea' }));
  const unknown = client.rpc('orders.cancel').catch((error) => error);
  const slow = outcome(client.rpc('report', [1], { timeout: 50 }));
  const dropped = outcome(client.rpc('pay', 5));
  assert.deepEqual(first.sent.slice(1), [
    { type: 'rpc', method: 'orders.create', data: { item: 'tea' }, id: 'r1' },
    { type: 'rpc', method: 'orders.cancel', data: null, id: 'r2' },
    { type: 'rpc', method: 'report', data: [1], id: 'r3' },
    { type: 'rpc', method: 'pay', data: 5, id: 'r4' },
  ]);
  first.receive({ type: 'rpc_result', id: 'r1', data: { order: 7 } });
  first.receive({ type: 'error', id: 'r2', code: 'NOT_FOUND', message: 'unknown method' });
  t.mock.timers.tick(50);
  first.drop(1006);
  assert.deepEqual(await answered, { ok: { order: 7 } });
  const error = await unknown;
  assert.ok(error instanceof TetherError);
  assert.deepEqual([error.kind, error.code, error.message], ['server', 'NOT_FOUND', 'unknown method']);
  assert.deepEqual(await slow, { kind: 'timeout', code: undefined });
  assert.deepEqual(await dropped, { kind: 'disconnected', code: undefined });
  t.mock.timers.tick(1500);
  const second = accept();
  assert.deepEqual(second.types(), ['auth'], 'an rpc is never sent twice');
});

test('a subscribed event carries the data the application gave with its consent', async (t) => {
  const { client, events } = await start(t);
  client.subscribe('app:room');
  client.subscribe('chat');
  const socket = accept();
  const [room, chat] = socket.sent.slice(1);
  socket.receive({ type: 'subscribed', id: room.id, channel: 'app:room', epoch: 'e', offset: 0, data: { welcome: 'alice' } });
  socket.receive({ type: 'subscribed', id: chat.id, channel: 'chat', epoch: 'e', offset: 0 });
  assert.deepEqual(events.filter((e) => e.type === 'subscribed'), [
    { type: 'subscribed', channel: 'app:room', epoch: 'e', offset: 0, recovered: undefined, data: { welcome: 'alice' } },
    { type: 'subscribed', channel: 'chat', epoch: 'e', offset: 0, recovered: undefined },
  ]);
});

test('a publication keeps its idempotency key when sent again after a reconnect', async (t) => {
  const { client } = await start(t);
  const first = accept();
  const acked = outcome(client.publish('room', 1));
  const retried = outcome(client.publish('room', 2, { timeout: 60000 }));
  const plain = outcome(client.request({ type: 'publish', channel: 'room', payload: 3 }));
  const [one, two, three] = first.sent.slice(1);
  assert.match(one.idempotency_key, /^[0-9a-f]{32}$/, 'a random key of 128 bits');
  assert.match(two.idempotency_key, /^[0-9a-f]{32}$/);
  assert.notEqual(one.idempotency_key, two.idempotency_key, 'one key per publication');
  assert.equal(three.idempotency_key, undefined, 'a request is sent as written');
  first.receive({ type: 'ack', id: one.id, offset: 1 });
  first.drop(1006);
  assert.deepEqual(await plain, { kind: 'disconnected', code: undefined });
  t.mock.timers.tick(1500);
  const second = accept();
  assert.deepEqual(second.sent.slice(1), [two], 'sent again, same key and id');
  second.receive({ type: 'ack', id: two.id, offset: 2 });
  assert.deepEqual(await acked, { ok: { type: 'ack', id: one.id, offset: 1 } });
  assert.deepEqual(await retried, { ok: { type: 'ack', id: two.id, offset: 2 } });
});

test('queued requests survive a drop, and one that times out is never sent', async (t) => {
  const { client } = await start(t);
  const first = accept();
  first.drop(1001);
  const survives = outcome(client.publish('room', 'kept', { timeout: 60000 }));
  const expires = outcome(client.publish('room', 'late', { timeout: 1000 }));
  t.mock.timers.tick(1000);
  assert.deepEqual(await expires, { kind: 'timeout', code: undefined });
  t.mock.timers.tick(500);
  sockets.at(-1).drop(1006);
  t.mock.timers.tick(2500);
  const second = accept();
  assert.deepEqual(second.sent.slice(1).map(withoutKey), [{ type: 'publish', channel: 'room', payload: 'kept', id: 'r1' }]);
  second.receive({ type: 'ack', id: 'r1', offset: 1 });
  assert.deepEqual(await survives, { ok: { type: 'ack', id: 'r1', offset: 1 } });
});

test('the offline queue holds 1,000 messages and refuses the next', async (t) => {
  const { client } = await start(t);
  for (let n = 0; n < 999; n += 1) {
    client.send({ type: 'publish', channel: 'room', payload: n });
  }
  const last = outcome(client.publish('room', 999));
  assert.throws(() => client.send({ type: 'ping' }), (e) => e.kind === 'queue-full');
  assert.deepEqual(await outcome(client.publish('room', 'over')), { kind: 'queue-full', code: undefined });
  const socket = accept();
  assert.equal(socket.sent.length, 1001);
  assert.deepEqual(withoutKey(socket.sent.at(-1)), { type: 'publish', channel: 'room', payload: 999, id: 'r1' });
  socket.receive({ type: 'ack', id: 'r1', offset: 1000 });
  assert.equal((await last).ok.offset, 1000);
});

test('presence is kept per channel from the snapshot and the deltas', async (t) => {
  const { client, events } = await start(t);
  client.subscribe('room');
  const socket = accept();
  socket.receive({ type: 'subscribed', channel: 'room', id: 'r1', epoch: 'e', offset: 0 });
  socket.receive({ type: 'presence', channel: 'room', users: ['bob', 'alice'] });
  socket.receive({ type: 'join', channel: 'room', user: 'carol' });
  socket.receive({ type: 'leave', channel: 'room', user: 'bob' });
  assert.deepEqual(client.presence('room'), ['alice', 'carol']);
  const lists = events.filter((e) => e.type === 'presence').map((e) => e.users);
  assert.deepEqual(lists, [['alice', 'bob'], ['alice', 'bob', 'carol'], ['alice', 'carol']]);
  assert.deepEqual(
    events.filter((e) => e.type === 'join' || e.type === 'leave').map((e) => `${e.type} ${e.user}`),
    ['join carol', 'leave bob'],
  );
});

test('a refused subscription is reported with its channel and no longer tracked', async (t) => {
  const { client, events } = await start(t);
  client.subscribe('user:bob');
  const socket = accept();
  socket.receive({ type: 'error', id: 'r1', code: 'FORBIDDEN', message: 'private channel' });
  socket.receive({ type: 'error', code: 'RATE_LIMITED', message: 'slow down' });
  assert.deepEqual(
    events.filter((e) => e.type === 'error').map((e) => [e.code, e.channel]),
    [['FORBIDDEN', 'user:bob'], ['RATE_LIMITED', undefined]],
  );
  socket.drop(1001);
  t.mock.timers.tick(1500);
  assert.deepEqual(accept().types(), ['auth']);
  assert.equal(client.state, 'open');
});

test('close sends 1000, waits for the answer at most closeTimeout, and never reconnects', async (t) => {
  const { client, states } = await start(t);
  const socket = accept();
  const closed = client.close();
  assert.equal(socket.closedWith, 1000);
  assert.equal(client.state, 'closing');
  t.mock.timers.tick(4999);
  assert.equal(client.state, 'closing');
  t.mock.timers.tick(1);
  await closed;
  assert.deepEqual(states(), ['connecting', 'open', 'closing', 'closed']);
  t.mock.timers.tick(60000);
  assert.equal(sockets.length, 1);
});

test('a binary message drops the connection and is retried, reported as 1003', async (t) => {
  const { client, events } = await start(t);
  accept();
  sockets[0].onmessage({ data: new ArrayBuffer(1) });
  assert.equal(client.state, 'reconnecting');
  assert.deepEqual(events.at(-1).reason, { code: 1003, reason: 'binary message' });
});

/** Lets every settled promise run its callbacks (`setImmediate` is not mocked). */
function settle() {
  return new Promise((resolve) => setImmediate(resolve));
}

/** The wall clock the token tests start at. */
const EPOCH = 1_700_000_000_000;

/** A client with `getToken` handing out `t1`, `t2`, ... (or failing while `refusing`), its events and its calls. */
async function startWithTokens(t, options = {}) {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: EPOCH });
  const tokens = { calls: 0, refusing: false };
  const started = await start(t, {
    token: undefined,
    getToken: async () => {
      tokens.calls += 1;
      if (tokens.refusing) {
        throw new Error('no token now');
      }
      return `t${tokens.calls}`;
    },
    ...options,
  });
  await settle();
  return { ...started, tokens };
}

/**
 * Lets `ms` pass on an open `socket` in steps of at most 20 s, each ended
 * by a `pong` from the server, so that the heartbeat never finds it dead.
 */
async function live(t, socket, ms) {
  for (let left = ms; left > 0; left -= 20000) {
    t.mock.timers.tick(Math.min(left, 20000));
    await settle();
    socket.receive({ type: 'pong' });
  }
}

/** Opens the newest socket and accepts its `auth` with a token that lives `life` ms. */
function acceptUntil(life) {
  const socket = sockets.at(-1);
  socket.open();
  socket.receive({ type: 'auth_ack', user: 'alice', session: 's', expires_at: Date.now() + life });
  return socket;
}

test('getToken is asked before every connection and its token goes in auth', async (t) => {
  const { events, tokens } = await startWithTokens(t);
  assert.equal(tokens.calls, 1);
  const first = acceptUntil(120000);
  assert.deepEqual(first.sent[0], { type: 'auth', token: 't1' });
  assert.equal(events.at(-1).expiresAt, EPOCH + 120000);
  first.drop(1001);
  t.mock.timers.tick(1499);
  await settle();
  assert.equal(tokens.calls, 1, 'not before the reconnect delay');
  t.mock.timers.tick(1);
  await settle();
  assert.equal(tokens.calls, 2);
  sockets.at(-1).open();
  assert.deepEqual(sockets.at(-1).sent[0], { type: 'auth', token: 't2' });
});

test('a failed getToken is a failed attempt', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: EPOCH });
  const { client, events } = await start(t, { token: undefined, getToken: () => Promise.reject(new Error('down')) });
  await settle();
  assert.equal(sockets.length, 0, 'no socket without a token');
  assert.equal(client.state, 'reconnecting');
  assert.deepEqual(events.at(-1).reason, { code: 1006, reason: 'token provider failed' });
});

test('a refresh is due at four fifths of the remaining life, not a millisecond before', async (t) => {
  const { events, tokens } = await startWithTokens(t);
  const socket = acceptUntil(120000);
  await live(t, socket, 95999);
  assert.equal(tokens.calls, 1);
  t.mock.timers.tick(1);
  await settle();
  assert.equal(tokens.calls, 2, 'asked at exactly 96 s');
  assert.deepEqual(socket.sent.at(-1), { type: 'refresh', token: 't2', id: 'r1' });
  // An hour's token is refreshed a minute before it expires.
  socket.receive({ type: 'refreshed', id: 'r1', expires_at: Date.now() + 3600000 });
  assert.deepEqual(events.at(-1), { type: 'refreshed', expiresAt: EPOCH + 96000 + 3600000 });
  assert.equal(refreshDelay(3600000), 3540000);
  assert.equal(refreshDelay(0), null);
});

test('a refused or failed refresh is retried with backoff until the expiry', async (t) => {
  const { events, tokens } = await startWithTokens(t);
  const socket = acceptUntil(120000);
  await live(t, socket, 96000);
  assert.deepEqual(socket.sent.at(-1), { type: 'refresh', token: 't2', id: 'r1' });
  socket.receive({ type: 'error', id: 'r1', code: 'FORBIDDEN', message: 'refused' });
  assert.deepEqual(events.at(-1), { type: 'refresh-failed', code: 'FORBIDDEN', message: 'refused' });
  tokens.refusing = true;
  t.mock.timers.tick(1500);
  await settle();
  assert.deepEqual(events.at(-1), { type: 'refresh-failed', code: undefined, message: 'token provider failed' });
  tokens.refusing = false;
  t.mock.timers.tick(2500);
  await settle();
  assert.deepEqual(socket.sent.at(-1), { type: 'refresh', token: 't4', id: 'r2' });
  socket.receive({ type: 'refreshed', id: 'r2' });
  assert.deepEqual(events.at(-1), { type: 'refreshed', expiresAt: undefined });
  await live(t, socket, 600000);
  assert.equal(tokens.calls, 4, 'a token without expiry is never refreshed');
});

test('no refresh is retried past the expiry', async (t) => {
  const { client, tokens } = await startWithTokens(t);
  const socket = acceptUntil(3000);
  t.mock.timers.tick(2400);
  await settle();
  socket.receive({ type: 'error', id: 'r1', code: 'FORBIDDEN', message: 'refused' });
  await live(t, socket, 60000);
  assert.equal(tokens.calls, 2);
  assert.equal(client.state, 'open');
});

test('a close 4004 gets a new token and reconnects; with a fixed token it is final', async (t) => {
  const { client, tokens } = await startWithTokens(t);
  acceptUntil(120000).drop(4004, 'token expired');
  assert.equal(client.state, 'reconnecting');
  t.mock.timers.tick(1500);
  await settle();
  assert.equal(tokens.calls, 2);
  sockets.at(-1).open();
  assert.deepEqual(sockets.at(-1).sent[0], { type: 'auth', token: 't2' });
  t.mock.timers.reset();

  const fixed = await start(t);
  accept().drop(4004, 'token expired');
  assert.equal(fixed.client.state, 'closed');
  t.mock.timers.reset();

  const replaced = await start(t);
  const socket = accept();
  replaced.client.setToken('renewed');
  socket.drop(4004, 'token expired');
  t.mock.timers.tick(1500);
  sockets.at(-1).open();
  assert.deepEqual(sockets.at(-1).sent[0], { type: 'auth', token: 'renewed' });
});

test('an unsolicited unsubscribed is reported and never resubscribed', async (t) => {
  const { client, events } = await start(t);
  client.subscribe('a');
  client.subscribe('b');
  const first = accept();
  first.receive({ type: 'subscribed', channel: 'a', id: 'r1', epoch: 'e', offset: 3 });
  first.receive({ type: 'subscribed', channel: 'b', id: 'r2', epoch: 'e', offset: 5 });
  first.receive({ type: 'unsubscribed', channel: 'a', reason: 'forbidden' });
  assert.deepEqual(events.at(-1), { type: 'unsubscribed', channel: 'a', reason: 'forbidden' });
  first.drop(1001);
  t.mock.timers.tick(1500);
  const second = accept();
  assert.deepEqual(second.sent.slice(1), [{ type: 'subscribe', channel: 'b', id: 'r3', since: { epoch: 'e', offset: 5 } }]);
});
