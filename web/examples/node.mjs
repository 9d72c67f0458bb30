#!/usr/bin/env node
// The Tether client on Node.js: subscribes to a channel and prints what
// arrives, or publishes one message.
//
//   node examples/node.mjs URL TOKEN CHANNEL          listen until SIGINT or SIGTERM
//   node examples/node.mjs URL TOKEN CHANNEL TEXT     publish {"text": TEXT} once
//
// URL is the server's WebSocket endpoint (ws://127.0.0.1:8080/ws for
// `tether serve --dev`, where the token is the user id). Every line it
// prints is one JSON object: {"subscribed":...}, {"message":...} or
// {"published":...}.
//
// Node.js 22 and later have a global WebSocket, which the client takes by
// itself; before 22 the client needs one passed in, here the `ws` package's.

import { TetherClient } from 'tether-client';

const [url, token, channel, text] = process.argv.slice(2);
if (channel === undefined) {
  console.error('usage: node examples/node.mjs URL TOKEN CHANNEL [TEXT]');
  process.exit(2);
}

const WebSocket = globalThis.WebSocket ?? (await import('ws')).WebSocket;
const client = new TetherClient(url, { token, WebSocket });
const print = (line) => console.log(JSON.stringify(line));

client.on('state', (event) => {
  if (event.state === 'closed' && event.reason.code !== 1000) {
    console.error(`closed: ${event.reason.code} ${event.reason.reason}`);
    process.exitCode = 1;
  }
});
client.on('error', ({ code, message }) => console.error(`error: ${code} ${message}`));

if (text === undefined) {
  client.on('subscribed', ({ channel: name, offset, recovered }) => print({ subscribed: name, offset, recovered }));
  client.on('message', ({ sender, payload, offset }) => print({ message: { sender, payload, offset } }));
  client.subscribe(channel);
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => client.close());
  }
} else {
  const { offset } = await client.publish(channel, { text });
  print({ published: offset });
  await client.close();
}
