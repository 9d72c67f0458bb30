// A small chat on the React hooks of tether-client, built with Vite for the
// browser test (react-chat.test.mjs). The query string names the server's
// WebSocket endpoint (`server`), the user (`user`, the token of a `--dev`
// server) and the room (`room`, `lobby` by default).

import { StrictMode, createElement as h, useState } from 'react';
import { createRoot } from 'react-dom/client';

import { TetherProvider, useChannel, usePresence, useTether } from 'tether-client/react';

const params = new URLSearchParams(location.search);
const room = params.get('room') ?? 'lobby';
/** Quick retries: the test restarts a server under the page. */
const options = { backoff: { base: 250, cap: 1000, jitter: 100 } };

/** The connection's state and, while reconnecting, the countdown. */
function Status() {
  const { state, retryIn, reason, user } = useTether();
  return h('p', { id: 'state', 'data-state': state },
    state === 'open' ? `connected as ${user}` : state,
    retryIn === null ? null : h('span', { id: 'retry' }, `, retrying in ${retryIn} s`),
    reason === null ? null : ` (${reason.code} ${reason.reason})`);
}

/** What a notice says. */
function describe(notice) {
  switch (notice.kind) {
    case 'recovered':
      return `reconnected: ${notice.count} missed messages recovered`;
    case 'lost':
      return 'reconnected: messages were lost';
    case 'ended':
      return `the server ended the subscription (${notice.reason})`;
    default:
      return `refused: ${notice.code} ${notice.message}`;
  }
}

/** The room: its users, its messages, its notices and a line to write in. */
function Room() {
  const { messages, notices, publish } = useChannel(room);
  const users = usePresence(room);
  const [text, setText] = useState('');
  const send = (event) => {
    event.preventDefault();
    if (text !== '') {
      publish({ text }).catch(() => {});
      setText('');
    }
  };
  return h('main', null,
    h('ul', { id: 'users' }, users.map((user) => h('li', { key: user }, user))),
    h('ol', { id: 'messages' }, messages.map((message) => h('li', {
      key: `${message.epoch}:${message.offset}`,
      className: 'message',
      'data-offset': message.offset,
      'data-recovered': String(message.recovered),
    }, h('b', { className: 'sender' }, message.sender ?? 'server'), ': ', h('span', { className: 'text' }, message.payload?.text)))),
    h('ul', { id: 'notices' }, notices.map((notice, n) => h('li', { key: n, 'data-kind': notice.kind }, describe(notice)))),
    h('form', { onSubmit: send }, h('input', { id: 'text', value: text, onChange: (event) => setText(event.target.value) })));
}

createRoot(document.getElementById('root')).render(
  h(StrictMode, null,
    h(TetherProvider, { url: params.get('server'), token: params.get('user'), options }, h(Status), h(Room))),
);
