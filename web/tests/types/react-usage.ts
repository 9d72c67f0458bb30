// Compiled, never run: what an editor should accept and refuse when an
// application uses the declarations of tether-client/react.

import { createElement } from 'react';

import { TetherProvider, useChannel, usePresence, useTether } from '../../react.js';
import type { ChannelNotice } from '../../react.js';

function Room() {
  const { state, retryIn, reason, client, expiresAt } = useTether();
  const { messages, notices, subscribed, publish } = useChannel('chat', { limit: 50 });
  const users: string[] = usePresence('chat');
  const lines = messages.map(({ payload, sender, offset, epoch, recovered }) => `${epoch}:${offset} ${sender ?? 'api'} ${recovered} ${JSON.stringify(payload)}`);
  const lost = notices.filter((notice: ChannelNotice) => notice.kind === 'lost').map((notice) => notice.kind === 'lost' && notice.offset);
  publish({ text: 'hi' }).then(({ offset }) => offset + 1);
  client?.rpc('whoami');
  const wait: number | null = retryIn;
  console.log(state, wait, reason?.code, expiresAt, subscribed?.epoch, users, lines, lost);
  // @ts-expect-error: the state is one of five
  const wrong: boolean = state === 'lost';
  return createElement('p', null, wrong);
}

createElement(TetherProvider, { url: 'ws://127.0.0.1:8080/ws', token: 'alice' }, createElement(Room));
createElement(TetherProvider, { url: 'ws://127.0.0.1:8080/ws', getToken: async () => 'alice', options: { backoff: { maxAttempts: 3 } } });
// @ts-expect-error: a fixed token or a provider, not both
createElement(TetherProvider, { url: 'ws://127.0.0.1:8080/ws', token: 'alice', getToken: () => 'alice' });
// @ts-expect-error: a channel is a string
useChannel(7);
