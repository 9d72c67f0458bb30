// /tether.js with `getToken` in real headless Chromium against the real
// server checking JWTs that live a few seconds: refreshes keep one
// connection open, and a close 4004 is followed by a new token and a
// reconnect.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';

import { TetherServer, buildServer, configFile, launchBrowser, withServer } from './harness.mjs';

const SECRET = 'browser-test-secret-of-32-bytes-at-least';

let browser;
let config;

before(async () => {
  buildServer();
  browser = await launchBrowser();
  config = await configFile('demo = true\n');
});

after(async () => {
  await browser?.close();
  await config?.remove();
});

/** An HS256 JWT for `sub` expiring `life` seconds from now (whole seconds, as `exp` counts). */
function mint(sub, life) {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const head = part({ alg: 'HS256', typ: 'JWT' });
  const body = part({ sub, exp: Math.floor(Date.now() / 1000) + life });
  const signature = createHmac('sha256', SECRET).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${signature}`;
}

/**
 * A page of the server's origin whose `window.mintToken()` mints a token
 * for alice living `life` seconds, refused while `window.refusing` is set;
 * `window.log` keeps the client's state and refresh events.
 */
async function pageWithClient(server, life, refusingAfterFirst) {
  const page = await browser.context.newPage();
  await page.exposeFunction('mintAlice', () => mint('alice', life));
  await page.goto(server.url);
  await page.evaluate(async (refusing) => {
    const { TetherClient } = await import('/tether.js');
    window.log = [];
    let calls = 0;
    const getToken = async () => {
      calls += 1;
      if (refusing && calls > 1 && !window.expired) {
        throw new Error('no token now');
      }
      return window.mintAlice();
    };
    const client = new TetherClient(`ws://${location.host}/ws`, { getToken, backoff: { base: 100, cap: 200, jitter: 10 } });
    for (const type of ['state', 'refreshed', 'refresh-failed']) {
      client.on(type, (event) => {
        window.log.push({ type, ...event });
        if (type === 'state' && event.state === 'reconnecting' && event.reason.code === 4004) {
          window.expired = true;
        }
      });
    }
  }, refusingAfterFirst);
  return page;
}

test('a token from getToken is refreshed before each expiry on one connection', async () => {
  const server = await TetherServer.start({ args: ['--config', config.path, '--jwt-secret', SECRET] });
  await withServer(server, async () => {
    const page = await pageWithClient(server, 3, false);
    await page.waitForFunction(() => window.log.filter((e) => e.type === 'refreshed').length >= 3, null, { timeout: 20000 });
    const log = await page.evaluate(() => window.log);
    const open = log.filter((e) => e.type === 'state');
    assert.deepEqual(open.map((e) => e.state), ['connecting', 'open'], 'one connection throughout');
    const expiries = [open[1].expiresAt, ...log.filter((e) => e.type === 'refreshed').map((e) => e.expiresAt)];
    assert.ok(expiries.every((at, n) => n === 0 || at > expiries[n - 1]), `${expiries}`);
    assert.ok(Date.now() > expiries[1], 'the connection outlived two tokens');
    await page.close();
  });
  assert.equal(await server.stop(), 0);
});

test('a close 4004 makes the client get a new token and reconnect', async () => {
  const server = await TetherServer.start({ args: ['--config', config.path, '--jwt-secret', SECRET] });
  await withServer(server, async () => {
    const page = await pageWithClient(server, 2, true);
    await page.waitForFunction(() => window.log.filter((e) => e.state === 'open').length >= 2, null, { timeout: 20000 });
    const log = await page.evaluate(() => window.log);
    const states = log.filter((e) => e.type === 'state');
    const lost = states.find((e) => e.state === 'reconnecting');
    assert.deepEqual(lost.reason, { code: 4004, reason: 'token expired' });
    assert.ok(log.some((e) => e.type === 'refresh-failed' && e.message === 'token provider failed'));
    assert.deepEqual(states.filter((e) => e.state === 'open').map((e) => e.user), ['alice', 'alice']);
    await page.close();
  });
  assert.equal(await server.stop(), 0);
});
