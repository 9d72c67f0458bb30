// The demo page and /tether.js in real headless Chromium against the real
// server: chat and presence, a server restart, a refused token.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';

import pixelmatch from 'pixelmatch';
import { PNG } from 'pngjs';

import {
  DEMO_ARGS,
  TetherServer,
  buildServer,
  configFile,
  launchBrowser,
  withServer,
} from './harness.mjs';

const ARTIFACTS = new URL('./artifacts/', import.meta.url);
/** Reference pictures; `UPDATE_SCREENSHOTS=1` writes them anew. */
const SCREENSHOTS = new URL('./screenshots/', import.meta.url);

let browser;

before(async () => {
  buildServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
});

/** Opens the demo page as `token` and waits until it is connected. */
async function joinAs(server, token) {
  const page = await browser.context.newPage();
  await page.goto(`${server.url}/?token=${encodeURIComponent(token)}`);
  await waitForState(page, 'open');
  return page;
}

function waitForState(page, state) {
  return page.locator(`#state[data-state="${state}"]`).waitFor();
}

async function say(page, text) {
  await page.fill('#text', text);
  await page.press('#text', 'Enter');
}

/** Waits for a chat line with `text` and returns its sender and offset. */
async function line(page, text) {
  const item = page.locator('#messages li.message', { hasText: text });
  await item.waitFor();
  return {
    sender: await item.locator('.sender').textContent(),
    offset: Number(await item.getAttribute('data-offset')),
  };
}

/** Waits until the page's user list is exactly `users`. */
async function waitForUsers(page, users) {
  await page.waitForFunction(
    (expected) => [...document.querySelectorAll('#users li')].map((li) => li.textContent).join() === expected,
    users.join(),
  );
}

before(() => mkdir(ARTIFACTS, { recursive: true }));

test('two pages chat and see each other arrive in the user list', async () => {
  const server = await TetherServer.start({ args: DEMO_ARGS });
  await withServer(server, async () => {
    const alice = await joinAs(server, 'alice');
    const bob = await joinAs(server, 'bob');
    await waitForUsers(alice, ['alice', 'bob']);
    await waitForUsers(bob, ['alice', 'bob']);
    await alice.locator('#messages li.notice', { hasText: 'bob joined' }).waitFor();

    await say(alice, 'hello from alice');
    assert.deepEqual(await line(bob, 'hello from alice'), { sender: 'alice', offset: 1 });
    await say(bob, 'hi alice');
    assert.deepEqual(await line(alice, 'hi alice'), { sender: 'bob', offset: 2 });
    assert.deepEqual(await line(alice, 'hello from alice'), { sender: 'alice', offset: 1 });
    assert.match(await alice.textContent('#state'), /connected as alice/);

    await alice.screenshot({ path: new URL('demo.png', ARTIFACTS).pathname });

    await bob.close();
    await waitForUsers(alice, ['alice']);
    await alice.locator('#messages li.notice', { hasText: 'bob left' }).waitFor();
    await alice.close();
  });
  assert.equal(await server.stop(), 0);
});

test('Chromium negotiates permessage-deflate with both no-context-takeovers', async () => {
  const server = await TetherServer.start({ args: DEMO_ARGS });
  await withServer(server, async () => {
    const page = await browser.context.newPage();
    await page.goto(server.url);
    const extensions = await page.evaluate(
      (url) =>
        new Promise((resolve, reject) => {
          const socket = new WebSocket(url, 'tether.v1');
          socket.onopen = () => {
            resolve(socket.extensions);
            socket.close();
          };
          socket.onerror = () => reject(new Error('the WebSocket failed'));
        }),
      `${server.url.replace('http:', 'ws:')}/ws`,
    );
    assert.equal(extensions, 'permessage-deflate; server_no_context_takeover; client_no_context_takeover');
    await page.close();
  });
  assert.equal(await server.stop(), 0);
});

test('a restarted server gets the pages back by themselves, with what waited offline', async () => {
  let server = await TetherServer.start({ args: DEMO_ARGS });
  const port = server.port;
  const alice = await joinAs(server, 'alice');
  const bob = await joinAs(server, 'bob');
  await withServer(server, async () => {
    await waitForUsers(bob, ['alice', 'bob']);
    await say(alice, 'before the restart');
    await line(bob, 'before the restart');
  });

  assert.equal(await server.stop(), 0, 'SIGTERM drains and exits 0');
  for (const page of [alice, bob]) {
    await waitForState(page, 'reconnecting');
    assert.match(await page.textContent('#state'), /reconnecting in \d+\.\d s \(attempt \d+; 1001/);
  }
  await say(alice, 'sent while the server was down');
  await alice.locator('#outbox li[data-status="queued"]', { hasText: 'sent while the server was down' }).waitFor();

  server = await TetherServer.start({ args: DEMO_ARGS, port });
  await withServer(server, async () => {
    for (const page of [alice, bob]) {
      await waitForState(page, 'open');
      // The in-memory hub lost its history: a new epoch, recovered:false.
      await page.locator('#messages li.notice.lost', { hasText: 'lost this room\'s history' }).waitFor();
      await waitForUsers(page, ['alice', 'bob']);
    }
    const queued = await line(alice, 'sent while the server was down');
    assert.equal(queued.sender, 'alice');
    await alice.locator('#outbox li').waitFor({ state: 'detached' });

    await say(bob, 'after the restart');
    const fresh = await line(alice, 'after the restart');
    assert.equal(fresh.sender, 'bob');
    assert.ok(fresh.offset > queued.offset, 'offsets of the new epoch keep increasing');
    assert.deepEqual(await line(bob, 'after the restart'), fresh);
    await alice.screenshot({ path: new URL('demo-restart.png', ARTIFACTS).pathname });
  });
  await alice.close();
  await bob.close();
  assert.equal(await server.stop(), 0);
});

/**
 * Compares a PNG with the reference picture `name`: at most 1% of the
 * pixels may differ (font hinting), and the sizes must be equal.
 */
async function assertLooksLike(png, name) {
  const reference = new URL(name, SCREENSHOTS);
  if (process.env.UPDATE_SCREENSHOTS === '1') {
    await mkdir(SCREENSHOTS, { recursive: true });
    await writeFile(reference, png);
  }
  const want = PNG.sync.read(await readFile(reference));
  const got = PNG.sync.read(png);
  await writeFile(new URL(name, ARTIFACTS), png);
  assert.deepEqual([got.width, got.height], [want.width, want.height], `${name}: size`);
  const differing = pixelmatch(got.data, want.data, null, got.width, got.height, { threshold: 0.2 });
  assert.ok(differing <= got.width * got.height / 100, `${name}: ${differing} pixels differ from the reference`);
}

test('without a token the page asks for a name in one tidy card, then joins', async () => {
  const server = await TetherServer.start({ args: DEMO_ARGS });
  await withServer(server, async () => {
    const page = await browser.context.newPage();
    await page.goto(server.url);
    const card = page.locator('#login');
    await card.waitFor();
    await page.fill('#name', 'alice');

    const box = await card.boundingBox();
    const inside = async (selector) => {
      const part = await page.locator(selector).boundingBox();
      return part.x >= box.x && part.y >= box.y &&
        part.x + part.width <= box.x + box.width && part.y + part.height <= box.y + box.height;
    };
    assert.ok(await inside('#login p'), 'the explanation is inside the card');
    assert.ok(await inside('#name'), 'the name field is inside the card');
    assert.ok(await inside('#login button'), 'the Join button is inside the card');
    const text = await page.locator('#login p').boundingBox();
    const lineHeight = await page.locator('#login p').evaluate((p) => parseFloat(getComputedStyle(p).lineHeight));
    assert.ok(text.height <= 3 * lineHeight, `the explanation wraps in at most 3 lines, not a word per line (${text.height} px)`);
    assert.ok((await page.locator('#name').boundingBox()).width >= box.width / 2, 'the name field takes most of the card');
    await assertLooksLike(await card.screenshot(), 'login.png');

    await page.click('#login button');
    await waitForState(page, 'open');
    assert.match(await page.textContent('#state'), /connected as alice/);
    await page.close();
  });
  assert.equal(await server.stop(), 0);
});

test('a refused token shows the auth error and is not retried', async () => {
  const config = await configFile('demo = true\n');
  const server = await TetherServer.start({
    args: ['--config', config.path, '--jwt-secret', 'browser-test-secret-of-32-bytes-at-least'],
  });
  await withServer(server, async () => {
    const page = await browser.context.newPage();
    await page.goto(`${server.url}/?token=not-a-jwt`);
    await waitForState(page, 'closed');
    assert.match(await page.textContent('#state'), /^auth error: 4003 forbidden, not retrying$/);
    await page.locator('#messages li.notice.bad', { hasText: 'refused the token' }).waitFor();
    assert.equal(await server.metric('tether_auth_failures_total'), 1);
    assert.equal(await server.metric('tether_connections_total'), 1);
    await page.close();
  });
  await config.remove();
  assert.equal(await server.stop(), 0);
});
