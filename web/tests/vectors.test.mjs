// The shared client test vectors (core/src/client/vectors.json) played
// against this client with a scripted socket in virtual time. The core's
// ClientSession plays the same file (core/src/client/tests/vectors.rs), so
// the two clients cannot drift apart, and the file's defaults are this
// client's DEFAULTS. Every case runs twice, with the smallest and the
// largest jitter, so that every wait is checked against both bounds.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import { DEFAULTS, TetherClient } from '../tether.js';
import { ScriptedSocket } from './scripted-socket.mjs';

const VECTORS = JSON.parse(readFileSync(new URL('../../core/src/client/vectors.json', import.meta.url), 'utf8'));

/** The draws of the jitter: its lower bound, and as close to its upper one as a double gets. */
const DRAWS = [0, 1 - Number.EPSILON];

test('DEFAULTS are the vectors\' defaults', () => {
  const { backoff, ...rest } = VECTORS.defaults;
  assert.deepEqual(DEFAULTS, {
    backoff: { base: backoff.base_ms, cap: backoff.cap_ms, jitter: backoff.jitter_ms, maxAttempts: backoff.max_attempts },
    pingIdle: rest.ping_idle_ms,
    pongTimeout: rest.pong_timeout_ms,
    requestTimeout: rest.request_timeout_ms,
    connectTimeout: rest.connect_timeout_ms,
    closeTimeout: rest.close_timeout_ms,
    offlineQueue: rest.offline_queue,
  });
});

for (const vector of VECTORS.cases) {
  test(vector.name, async (t) => {
    for (const draw of DRAWS) {
      for (const value of vector.each ?? [undefined]) {
        t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
        const steps = value === undefined ? vector.steps : withEach(vector.steps, value);
        const run = await Run.start(vector.config ?? {}, draw);
        for (const [number, step] of steps.entries()) {
          await run.step(t, step, `${value ?? ''} jitter ${draw}, step ${number}: ${JSON.stringify(step)}`);
        }
        t.mock.timers.reset();
      }
    }
  });
}

/** `steps` with every `"$each"` replaced by `value`. */
function withEach(steps, value) {
  return JSON.parse(JSON.stringify(steps), (_, item) => (item === '$each' ? value : item));
}

/** Lets every settled promise run its callbacks (`setImmediate` is not mocked). */
function settle() {
  return new Promise((resolve) => setImmediate(resolve));
}

/** One case on a fresh client: its sockets, events and named requests. */
class Run {
  static async start(config, draw) {
    const run = new Run();
    run.sockets = ScriptedSocket.reset();
    run.client = new TetherClient('ws://127.0.0.1:1/ws', {
      token: 'secret',
      WebSocket: ScriptedSocket,
      random: () => draw,
      backoff: config.max_attempts === undefined ? {} : { maxAttempts: config.max_attempts },
      ...(config.offline_queue === undefined ? {} : { offlineQueue: config.offline_queue }),
    });
    run.client.on('message', ({ channel, offset }) => run.messages.push([channel, offset]));
    run.client.on('state', (event) => run.states.push(event));
    await Promise.resolve();
    return run;
  }

  constructor() {
    this.messages = [];
    this.states = [];
    /** @type {Map<string, {outcome: string}>} */
    this.requests = new Map();
    this.refused = null;
    /** How many messages of each socket were already looked at. */
    this.seen = new Map();
  }

  get socket() {
    return this.sockets.at(-1);
  }

  async step(t, step, at) {
    if (step.accept) {
      this.socket.open();
      this.socket.receive({ type: 'auth_ack', user: 'ann', session: 's1', heartbeat_ms: 30000, max_payload: 65536 });
    } else if (step.fail_dial) {
      this.socket.drop(1006);
    } else if (step.dial) {
      const dials = this.sockets.length;
      t.mock.timers.tick(this.states.at(-1).delay);
      assert.equal(this.sockets.length, dials + 1, `${at}: a dial`);
    } else if (step.drop) {
      this.socket.drop(1006);
    } else if (step.close !== undefined) {
      this.socket.drop(step.close, 'bye');
    } else if (step.receive) {
      this.socket.receive(step.receive);
    } else if (step.subscribe) {
      this.client.subscribe(step.subscribe);
    } else if (step.send) {
      try {
        this.client.send(step.send);
        this.refused = null;
      } catch (error) {
        this.refused = error.kind;
      }
    } else if (step.request) {
      await this.keep(step.as, this.client.request(step.request));
    } else if (step.publish) {
      await this.keep(step.as, this.client.publish(step.publish.channel, step.publish.payload));
    } else if (step.expect) {
      await settle();
      this.check(t, step.expect, at);
    } else {
      assert.fail(`${at}: an unknown step`);
    }
  }

  /** Names the request `promise` stands for, or keeps why it was refused at once. */
  async keep(name, promise) {
    const request = { outcome: 'pending' };
    promise.then(
      () => {
        request.outcome = 'ok';
      },
      (error) => {
        request.outcome = error.kind;
      },
    );
    await settle();
    if (request.outcome === 'queue-full' || request.outcome === 'closed') {
      this.refused = request.outcome;
    } else {
      this.requests.set(name, request);
      this.refused = null;
    }
  }

  check(t, expected, at) {
    if (expected.sent) {
      assert.deepEqual(this.sent(), expected.sent, at);
    }
    if (expected.messages) {
      assert.deepEqual(this.messages.splice(0), expected.messages, at);
    }
    if (expected.reconnect) {
      const last = this.states.at(-1);
      assert.equal(last.state, 'reconnecting', at);
      assert.equal(last.attempt, expected.reconnect.attempt, at);
      const { min_ms: min, max_ms: max } = expected.reconnect;
      assert.ok(last.delay >= min && last.delay < max, `${at}: ${last.delay}`);
    }
    if (expected.closed) {
      assert.equal(this.client.state, 'closed', at);
      const dials = this.sockets.length;
      t.mock.timers.tick(3_600_000);
      assert.equal(this.sockets.length, dials, `${at}: no dial after the end`);
    }
    if (expected.outcomes) {
      for (const [name, outcome] of Object.entries(expected.outcomes)) {
        assert.equal(this.requests.get(name).outcome, outcome, `${at}: ${name}`);
      }
    }
    if (expected.refused) {
      assert.equal(this.refused, expected.refused, at);
      this.refused = null;
    }
  }

  /** What the sockets carried since the last look, idempotency keys as `<key>`. */
  sent() {
    const sent = [];
    for (const socket of this.sockets) {
      const seen = this.seen.get(socket) ?? 0;
      sent.push(...socket.sent.slice(seen));
      this.seen.set(socket, socket.sent.length);
    }
    return sent.map((message) => {
      if (message.idempotency_key === undefined) {
        return message;
      }
      assert.match(message.idempotency_key, /^[0-9a-f]{32}$/);
      return { ...message, idempotency_key: '<key>' };
    });
  }
}
