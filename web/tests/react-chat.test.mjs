// A small React page on the hooks of tether-client (react-chat/), built
// with Vite, in headless Chromium against real servers: two tabs chat, the
// server of one restarts, and what was published while it was down
// reaches that tab marked recovered.
//
// The tabs talk to two `tether serve --dev` nodes sharing one Redis: a
// node keeps the history only in memory without a backplane, so across a
// restart only the backplane's history can recover the gap.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { build, preview } from 'vite';

import { RedisServer, TetherServer, buildServer, launchBrowser, withServer } from './harness.mjs';

const PAGE = fileURLToPath(new URL('./react-chat/', import.meta.url));

let browser;
let redis;
let site;
let dist;

before(async () => {
  buildServer();
  dist = await mkdtemp(join(tmpdir(), 'tether-react-chat-'));
  await build({ root: PAGE, configFile: false, logLevel: 'warn', build: { outDir: dist, emptyOutDir: true } });
  site = await preview({
    root: PAGE,
    configFile: false,
    logLevel: 'warn',
    build: { outDir: dist },
    preview: { host: '127.0.0.1', port: 0, strictPort: false, open: false },
  });
  redis = await RedisServer.start();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await site?.close();
  await redis?.stop();
  if (dist !== undefined) {
    await rm(dist, { recursive: true, force: true });
  }
});

/** A node of the test's Redis; `port` 0 picks one. */
function node(port = 0) {
  return TetherServer.start({ args: ['--dev', '--redis', redis.url], port });
}

/** Opens the page as `user` on `server` and waits until it is connected. */
async function open(server, user) {
  const page = await browser.context.newPage();
  const query = new URLSearchParams({ server: `ws://127.0.0.1:${server.port}/ws`, user });
  await page.goto(`${site.resolvedUrls.local[0]}?${query}`);
  await page.locator('#state[data-state="open"]').waitFor();
  return page;
}

async function say(page, text) {
  await page.fill('#text', text);
  await page.press('#text', 'Enter');
}

/** The page's chat lines: offset, sender, text and whether it was recovered. */
function lines(page) {
  return page.locator('#messages li.message').evaluateAll((items) => items.map((item) => ({
    offset: Number(item.dataset.offset),
    sender: item.querySelector('.sender').textContent,
    text: item.querySelector('.text').textContent,
    recovered: item.dataset.recovered === 'true',
  })));
}

/** Waits until the page shows `count` chat lines. */
function waitForLines(page, count) {
  return page.locator('#messages li.message').nth(count - 1).waitFor();
}

test('two tabs chat; after a restart, what was published meanwhile arrives marked recovered', async () => {
  const first = await node();
  let second = await node();
  await withServer(first, () => withServer(second, async () => {
    const alice = await open(first, 'alice');
    const bob = await open(second, 'bob');
    await bob.locator('#users li', { hasText: 'alice' }).waitFor();
    await alice.locator('#users li', { hasText: 'bob' }).waitFor();

    await say(alice, 'hello bob');
    await waitForLines(bob, 1);
    await say(bob, 'hi alice');
    await waitForLines(alice, 2);
    const chat = [
      { offset: 1, sender: 'alice', text: 'hello bob', recovered: false },
      { offset: 2, sender: 'bob', text: 'hi alice', recovered: false },
    ];
    assert.deepEqual(await lines(alice), chat);
    assert.deepEqual(await lines(bob), chat);

    const port = second.port;
    assert.equal(await second.stop(), 0);
    await bob.locator('#state[data-state="reconnecting"]').waitFor();
    await say(alice, 'while you were away');
    await say(alice, 'and once more');
    await waitForLines(alice, 4);

    second = await node(port);
    await bob.locator('#state[data-state="open"]').waitFor();
    await waitForLines(bob, 4);
    assert.deepEqual(await lines(bob), [
      ...chat,
      { offset: 3, sender: 'alice', text: 'while you were away', recovered: true },
      { offset: 4, sender: 'alice', text: 'and once more', recovered: true },
    ]);
    assert.deepEqual(
      await bob.locator('#notices li').evaluateAll((items) => items.map((item) => [item.dataset.kind, item.textContent])),
      [['recovered', 'reconnected: 2 missed messages recovered']],
    );
    await say(bob, 'back');
    await waitForLines(alice, 5);
    assert.deepEqual((await lines(alice)).at(-1), { offset: 5, sender: 'bob', text: 'back', recovered: false });
    await alice.close();
    await bob.close();
  }));
  assert.equal(await first.stop(), 0);
  assert.equal(await second.stop(), 0);
});
