#!/usr/bin/env node
// An application backend for `tether serve` with a [proxy] table
// (PROTOCOL.md section 13, "The HTTP proxy"), on Node.js's standard
// library only. It decides who connects (a session cookie or a token),
// who may subscribe to premium channels (with a welcome as the initial
// data), what may be published (no empty messages, no bad words) and
// answers one rpc method, `whoami`.
//
//   node examples/backend.mjs [HOST:PORT]    default 127.0.0.1:3000; port 0 picks a free one
//
// When BACKEND_KEY is set, every request must carry it in the
// x-backend-key header (set it in the server's proxy.headers): only the
// server may ask. The sessions, tokens and profiles below stand in for a
// real application's database.

import http from "node:http";

const SESSIONS = new Map([["s-alice", "alice"], ["s-bob", "bob"]]);
const TOKENS = new Map([["alice-token", "alice"], ["bob-token", "bob"]]);
const PROFILES = {
  alice: { name: "Alice", plan: "pro" },
  bob: { name: "Bob", plan: "free" },
};
// When a connection's session ends, in Unix milliseconds (here 2100-01-01;
// a real backend gives its session's or token's expiry).
const EXPIRES_AT = 4102444800000;
const BAD_WORDS = /\b(darn|heck)\b/gi;
const MAX_BODY = 1 << 20;

const result = (value) => ({ result: value });
const error = (code, message) => ({ error: { code, message } });

/** The value of cookie `name` in a Cookie header, if any. */
function cookie(header, name) {
  for (const pair of (header ?? "").split(";")) {
    const [key, ...value] = pair.trim().split("=");
    if (key === name) return value.join("=");
  }
  return undefined;
}

const decisions = {
  // {"conn","token","headers":{...},"refresh"} -> the user, expiry, grants and info.
  "/connect": ({ token, headers }) => {
    const user = SESSIONS.get(cookie(headers.cookie, "session")) ?? TOKENS.get(token);
    if (!user) return error("FORBIDDEN", "unknown session or token");
    const profile = PROFILES[user];
    const channels = profile.plan === "pro" ? { "team:*": ["subscribe", "presence"] } : {};
    return result({ user, expires_at: EXPIRES_AT, channels, info: profile });
  },
  // {"conn","user","info","channel"} -> allowed (with data) or refused.
  "/subscribe": ({ info, channel }) => {
    if (channel.startsWith("premium:") && info?.plan !== "pro") {
      return error("FORBIDDEN", "premium channels are for pro users");
    }
    return result({ data: { welcome: `Hello, ${info?.name ?? "guest"}` } });
  },
  // {"conn","user","info","channel","data"} -> as sent, another payload, or refused.
  "/publish": ({ data }) => {
    if (typeof data !== "string" || data.trim() === "") {
      return error("BAD_REQUEST", "empty message");
    }
    const clean = data.replace(BAD_WORDS, (word) => "*".repeat(word.length));
    return result(clean === data ? {} : { data: clean });
  },
  // {"conn","user","info","method","data"} -> the result, or NOT_FOUND.
  "/rpc": ({ user, info, method }) => {
    if (method === "whoami") return result({ data: { user, ...info } });
    return error("NOT_FOUND", "unknown method");
  },
};

function send(response, status, body) {
  response.writeHead(status, { "content-type": "application/json" });
  response.end(JSON.stringify(body));
}

const server = http.createServer((request, response) => {
  const decide = decisions[request.url];
  if (request.method !== "POST" || !decide) return send(response, 404, { error: "no such decision" });
  const key = process.env.BACKEND_KEY;
  if (key && request.headers["x-backend-key"] !== key) return send(response, 401, { error: "who is asking?" });
  const chunks = [];
  let size = 0;
  request.on("data", (chunk) => {
    size += chunk.length;
    if (size > MAX_BODY) request.destroy();
    else chunks.push(chunk);
  });
  request.on("end", () => {
    let asked;
    try {
      asked = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {
      return send(response, 400, { error: "not JSON" });
    }
    send(response, 200, decide(asked));
  });
});

const [host, port] = (process.argv[2] ?? "127.0.0.1:3000").split(/:(?=\d+$)/);
server.listen(Number(port), host, () => {
  const { address, port } = server.address();
  console.log(`listening on ${address}:${port}`);
});
