// Compiled, never run: what an editor should accept and refuse when a page
// uses the declarations of /tether.d.ts.

import { DEFAULTS, TetherClient, TetherError, reconnectDelay, refreshDelay } from '../../tether.js';
import type { StateEvent } from '../../tether.js';

const client = new TetherClient('ws://127.0.0.1:8080/ws', {
  token: 'alice',
  backoff: { maxAttempts: 5 },
  offlineQueue: 10,
});

client.on('message', ({ channel, payload, sender, offset }) => {
  const where: string = channel;
  const from: string | undefined = sender;
  const at: number = offset;
  console.log(where, from, at, payload);
});
client.on('presence', ({ users }) => users.map((user) => user.toUpperCase()));
client.on('subscribed', ({ recovered, data }) => recovered === false || data !== undefined);
client.on('state', (event: StateEvent) => {
  if (event.state === 'reconnecting') {
    const wait: number = event.retryAt - Date.now() + event.delay;
    const code: number = event.reason.code;
    console.log(wait, code, event.attempt);
  }
});
const stop: () => void = client.on('error', ({ code, channel }) => console.log(code, channel));
stop();

const refreshing = new TetherClient('ws://127.0.0.1:8080/ws', {
  getToken: async () => (await fetch('/token')).text(),
});
refreshing.on('state', (event) => event.state === 'open' && event.expiresAt !== undefined);
refreshing.on('refreshed', ({ expiresAt }) => expiresAt === undefined || expiresAt > Date.now());
refreshing.on('refresh-failed', ({ code, message }) => console.log(code ?? 'no token', message));
refreshing.on('unsubscribed', ({ channel, reason }) => console.log(channel, reason));
const soon: number | null = refreshDelay(120000);
console.log(soon);

client.subscribe('chat');
client.send({ type: 'presence', channel: 'chat' });
client.publish('chat', { text: 'hi' }).then(({ offset }) => offset + 1);
client.request({ type: 'ping' }, { timeout: 500 }).catch((error: TetherError) => error.kind === 'timeout');
client.rpc('orders.create', { item: 'tea' }, { timeout: 500 }).then((result: unknown) => result);
client.rpc('orders.list').catch((error: TetherError) => error.code === 'NOT_FOUND');
const users: string[] = client.presence('chat');
const cap: number = DEFAULTS.backoff.cap + reconnectDelay(2, DEFAULTS.backoff, Math.random);
client.close().then(() => client.state === 'closed');
console.log(users, cap, client.user, client.session);

// @ts-expect-error: there is no such event
client.on('messages', () => {});
// @ts-expect-error: the token is required
new TetherClient('ws://127.0.0.1:8080/ws', {});
// @ts-expect-error: a fixed token or a provider, not both
new TetherClient('ws://127.0.0.1:8080/ws', { token: 'alice', getToken: () => 'alice' });
// @ts-expect-error: a message needs a type
client.send({ channel: 'chat' });
// @ts-expect-error: a method is a string
client.rpc(7);
// @ts-expect-error: presence lists are strings
client.on('presence', ({ users }) => users.map((user: number) => user));
