// What the browser tests stand on: the real `tether` binary on 127.0.0.1
// and Debian's headless Chromium driven by playwright-core.

import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

/** The repository's root. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

const BINARY = join(ROOT, 'target', 'debug', 'tether');
const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Builds the binary (a no-op when it is up to date). */
export function buildServer() {
  const build = spawnSync('cargo', ['build', '--quiet', '--bin', 'tether'], { cwd: ROOT, stdio: 'inherit' });
  if (build.status !== 0) {
    throw new Error('cargo build failed');
  }
}

/**
 * The arguments of the demo page's server: `demo.toml` declares its
 * channels as an explicit namespace, and `--dev` gives development tokens
 * (its open namespace comes after the declared one, so it governs nothing).
 */
export const DEMO_ARGS = ['--config', join(ROOT, 'web', 'tests', 'demo.toml'), '--dev'];

/** A running `tether serve`, learnt port included. */
export class TetherServer {
  /**
   * Starts `tether serve` with `args` on 127.0.0.1:`port` (0 picks one) and
   * waits for its "listening on" line.
   *
   * @param {{args?: string[], port?: number}} options
   */
  static async start({ args = ['--dev'], port = 0 } = {}) {
    const child = spawn(BINARY, ['serve', ...args, '--listen', `127.0.0.1:${port}`], {
      cwd: ROOT,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, RUST_LOG: 'info' },
    });
    const server = new TetherServer(child);
    server.port = await server.#listening();
    return server;
  }

  constructor(child) {
    this.child = child;
    this.log = '';
    this.exited = once(child, 'exit');
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => {
      this.log += chunk;
    });
  }

  #listening() {
    return new Promise((resolve, reject) => {
      const look = () => {
        const found = this.log.match(/listening on 127\.0\.0\.1:(\d+)/);
        if (found) {
          this.child.stderr.off('data', look);
          resolve(Number(found[1]));
        }
      };
      this.child.stderr.on('data', look);
      this.exited.then(([code]) => reject(new Error(`tether exited with ${code}:\n${this.log}`)));
    });
  }

  /** The server's base URL. */
  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  /** SIGTERM, then the exit code once the drain is over. */
  async stop() {
    if (this.child.exitCode === null) {
      this.child.kill('SIGTERM');
    }
    const [code] = await this.exited;
    return code;
  }

  /** One counter from `/metrics`. */
  async metric(name) {
    const text = await (await fetch(`${this.url}/metrics`)).text();
    const line = text.split('\n').find((row) => row.startsWith(`${name} `));
    return line === undefined ? undefined : Number(line.split(' ')[1]);
  }
}

/** A port of 127.0.0.1 that was free a moment ago. */
async function freePort() {
  const probe = createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address();
  probe.close();
  await once(probe, 'close');
  return port;
}

/** A `redis-server` of the test's own on 127.0.0.1, keeping nothing on disk. */
export class RedisServer {
  /** Starts it and waits until it accepts connections. */
  static async start() {
    const port = await freePort();
    const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const redis = new RedisServer(child, port);
    let log = '';
    child.stdout.setEncoding('utf8');
    await new Promise((resolve, reject) => {
      child.stdout.on('data', (chunk) => {
        log += chunk;
        if (log.includes('Ready to accept connections')) {
          resolve();
        }
      });
      redis.exited.then(([code]) => reject(new Error(`redis-server exited with ${code}:\n${log}`)));
    });
    child.stdout.resume();
    return redis;
  }

  constructor(child, port) {
    this.child = child;
    this.port = port;
    this.exited = once(child, 'exit');
  }

  /** Its URL, for `tether serve --redis`. */
  get url() {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** SIGTERM, and waits for the exit. */
  async stop() {
    if (this.child.exitCode === null) {
      this.child.kill('SIGTERM');
    }
    await this.exited;
  }
}

/** A config file with `text` in a fresh temporary folder. */
export async function configFile(text) {
  const folder = await mkdtemp(join(tmpdir(), 'tether-config-'));
  const path = join(folder, 'tether.toml');
  await writeFile(path, text);
  return { path, remove: () => rm(folder, { recursive: true, force: true }) };
}

/** Headless Chromium with a fresh profile; `close()` removes it. */
export async function launchBrowser() {
  const profile = await mkdtemp(join(tmpdir(), 'tether-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 960, height: 600 },
  });
  context.setDefaultTimeout(15000);
  return {
    context,
    async close() {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/** Runs `body` and, when it fails, adds the server's log to the error. */
export async function withServer(server, body) {
  try {
    await body();
  } catch (error) {
    error.message += `\n--- server log ---\n${server.log}`;
    throw error;
  }
}
