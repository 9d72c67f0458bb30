// The client on Node.js against the real server: the example publishes and
// subscribes; the global WebSocket is taken when there is one, and without
// one the constructor says which option to pass.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { WebSocket } from 'ws';

import { TetherClient } from 'tether-client';
import { TetherServer, buildServer, withServer } from './harness.mjs';

const EXAMPLE = fileURLToPath(new URL('../examples/node.mjs', import.meta.url));

let server;

before(async () => {
  buildServer();
  server = await TetherServer.start();
});

after(async () => {
  await server?.stop();
});

/** The example as a child process, with its stdout read as JSON lines. */
function example(...args) {
  const child = spawn(process.execPath, [EXAMPLE, `ws://127.0.0.1:${server.port}/ws`, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  return {
    child,
    exited: once(child, 'exit'),
    async next() {
      const { value, done } = await lines.next();
      assert.ok(!done, 'the example printed no more');
      return JSON.parse(value);
    },
  };
}

test('the Node example publishes, and another one subscribed receives it', async () => {
  await withServer(server, async () => {
    const bob = example('bob', 'lobby');
    assert.deepEqual(await bob.next(), { subscribed: 'lobby', offset: 0 });
    const alice = example('alice', 'lobby', 'hello from node');
    assert.deepEqual(await alice.next(), { published: 1 });
    assert.deepEqual(await alice.exited, [0, null]);
    assert.deepEqual(await bob.next(), { message: { sender: 'alice', payload: { text: 'hello from node' }, offset: 1 } });
    bob.child.kill('SIGTERM');
    assert.deepEqual(await bob.exited, [0, null]);
  });
});

test('the client takes the global WebSocket when there is one', async () => {
  const global = globalThis.WebSocket;
  globalThis.WebSocket = WebSocket;
  try {
    const client = new TetherClient(`ws://127.0.0.1:${server.port}/ws`, { token: 'carol' });
    const [open] = await new Promise((resolve) => client.on('state', (event) => event.state === 'open' && resolve([event])));
    assert.equal(open.user, 'carol');
    await client.close();
  } finally {
    globalThis.WebSocket = global;
  }
});

test('without a global WebSocket the constructor names the option to pass', () => {
  const script = `
    delete globalThis.WebSocket;
    const { TetherClient } = await import('tether-client');
    try {
      new TetherClient('ws://127.0.0.1:1/ws', { token: 'dave' });
    } catch (error) {
      console.log(error.constructor.name + ': ' + error.message);
    }`;
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    encoding: 'utf8',
  });
  assert.equal(run.status, 0, run.stderr);
  assert.equal(
    run.stdout.trim(),
    "TypeError: this runtime has no global WebSocket (Node.js before 22): pass one as the WebSocket option, e.g. import { WebSocket } from 'ws'; new TetherClient(url, { token, WebSocket })",
  );
});
