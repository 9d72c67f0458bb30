// A channel server on Node.js and the `ws` package, written in the classic
// style: an http server sharing its port with a WebSocketServer, a heartbeat
// by setInterval with isAlive flags and terminate(), a Map of channel -> Set
// of sockets, one JSON.stringify per broadcast and a bufferedAmount check
// before each send.
//
// It speaks the message shapes of Tether's PROTOCOL.md that the benchmark
// scenarios use: auth -> auth_ack (any token is the user id), subscribe ->
// subscribed, publish -> ack (with an id) and a message with an offset to
// every subscriber, ping -> pong.
//
// Usage: node server.js [PORT] (default 8081; listens on 127.0.0.1).

'use strict';

const http = require('http');
const { WebSocketServer, WebSocket } = require('ws');

const PORT = Number(process.argv[2] || 8081);
const HEARTBEAT_MS = 30000;
const MAX_PAYLOAD = 64 * 1024;
const HIGH_WATER = 256 * 1024;

const server = http.createServer((req, res) => {
  if (req.url === '/healthz') {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end('ok');
    return;
  }
  res.writeHead(404, { 'Content-Type': 'text/plain' });
  res.end('not found');
});

const wss = new WebSocketServer({
  server,
  path: '/ws',
  maxPayload: MAX_PAYLOAD,
  handleProtocols: (protocols) => (protocols.has('tether.v1') ? 'tether.v1' : false),
});

const channels = new Map(); // channel -> Set of sockets
const offsets = new Map(); // channel -> last offset
let nextSession = 1;
let dropped = 0;

function send(ws, msg) {
  if (ws.readyState === WebSocket.OPEN) {
    ws.send(JSON.stringify(msg));
  }
}

function broadcast(channel, msg) {
  const subscribers = channels.get(channel);
  if (!subscribers) return;
  const data = JSON.stringify(msg);
  subscribers.forEach((ws) => {
    if (ws.readyState !== WebSocket.OPEN) return;
    if (ws.bufferedAmount > HIGH_WATER) {
      dropped++;
      return;
    }
    ws.send(data);
  });
}

function subscribe(ws, channel) {
  if (!channels.has(channel)) {
    channels.set(channel, new Set());
  }
  channels.get(channel).add(ws);
  ws.channels.add(channel);
}

function leave(ws, channel) {
  const subscribers = channels.get(channel);
  if (!subscribers) return;
  subscribers.delete(ws);
  if (subscribers.size === 0 && !offsets.has(channel)) {
    channels.delete(channel);
  }
}

function handleMessage(ws, msg) {
  if (!ws.user) {
    if (msg.type === 'auth' && typeof msg.token === 'string') {
      ws.user = msg.token;
      send(ws, {
        type: 'auth_ack',
        user: ws.user,
        session: String(nextSession++),
        heartbeat_ms: HEARTBEAT_MS,
        max_payload: MAX_PAYLOAD,
      });
    } else if (msg.type === 'ping') {
      send(ws, { type: 'pong', id: msg.id });
    } else {
      ws.close(4001, 'auth required');
    }
    return;
  }
  switch (msg.type) {
    case 'ping':
      send(ws, { type: 'pong', id: msg.id });
      break;
    case 'subscribe':
      subscribe(ws, msg.channel);
      send(ws, {
        type: 'subscribed',
        id: msg.id,
        channel: msg.channel,
        epoch: 'node',
        offset: offsets.get(msg.channel) || 0,
      });
      break;
    case 'unsubscribe':
      leave(ws, msg.channel);
      ws.channels.delete(msg.channel);
      send(ws, { type: 'unsubscribed', id: msg.id, channel: msg.channel });
      break;
    case 'publish': {
      const offset = (offsets.get(msg.channel) || 0) + 1;
      offsets.set(msg.channel, offset);
      broadcast(msg.channel, {
        type: 'message',
        channel: msg.channel,
        payload: msg.payload,
        sender: ws.user,
        offset,
      });
      if (msg.id) send(ws, { type: 'ack', id: msg.id, offset });
      break;
    }
    default:
      send(ws, { type: 'error', id: msg.id, code: 'UNKNOWN_TYPE', message: 'unknown type' });
  }
}

wss.on('connection', (ws) => {
  ws.isAlive = true;
  ws.user = null;
  ws.channels = new Set();
  ws.on('pong', () => {
    ws.isAlive = true;
  });

  ws.on('message', (data, isBinary) => {
    if (isBinary) {
      ws.close(1003, 'binary');
      return;
    }
    let msg;
    try {
      msg = JSON.parse(data.toString());
    } catch {
      send(ws, { type: 'error', code: 'INVALID_JSON', message: 'invalid JSON' });
      return;
    }
    if (!msg || typeof msg.type !== 'string') {
      send(ws, { type: 'error', code: 'MISSING_TYPE', message: 'missing type' });
      return;
    }
    handleMessage(ws, msg);
  });

  ws.on('close', () => {
    ws.channels.forEach((channel) => leave(ws, channel));
  });

  ws.on('error', () => {});
});

const heartbeat = setInterval(() => {
  wss.clients.forEach((ws) => {
    if (ws.isAlive === false) return ws.terminate();
    ws.isAlive = false;
    ws.ping();
  });
}, HEARTBEAT_MS);

wss.on('close', () => clearInterval(heartbeat));

function stop() {
  if (dropped > 0) console.error(`dropped ${dropped} messages over bufferedAmount`);
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

server.listen(PORT, '127.0.0.1', () => {
  console.error(`node-ws peer listening on 127.0.0.1:${PORT}`);
});
