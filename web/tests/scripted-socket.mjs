// A WebSocket the tests drive in place of the browser's: it records what
// the client sends, and the test opens it, delivers messages and drops it.
// The client tests, the shared client test vectors and the React hook
// tests use it.

/** A WebSocket the test drives: it records what the client sends. */
export class ScriptedSocket {
  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.sent = [];
    this.closedWith = undefined;
    this.readyState = 0;
    ScriptedSocket.opened.push(this);
  }

  send(text) {
    this.sent.push(JSON.parse(text));
  }

  close(code) {
    this.closedWith = code ?? null;
    this.readyState = 2;
  }

  /** The 101 arrived. */
  open() {
    this.readyState = 1;
    this.onopen?.();
  }

  receive(message) {
    this.onmessage?.({ data: typeof message === 'string' ? message : JSON.stringify(message) });
  }

  /** The socket ended with `code` (as the browser reports it). */
  drop(code = 1006, reason = '') {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  /** The types of what was sent, in order. */
  types() {
    return this.sent.map((message) => message.type);
  }

  /** Forgets the sockets opened so far; returns the list the next ones go to. */
  static reset() {
    ScriptedSocket.opened = [];
    return ScriptedSocket.opened;
  }
}

/** Every socket opened since the last reset, oldest first. */
ScriptedSocket.opened = [];
