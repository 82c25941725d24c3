// The live inbox: one websocket per tab, opened with a single-use ticket (no
// token in the URL), reconnecting with jittered backoff and resuming from the
// last cursor so nothing that happened meanwhile is missed.

import { api } from "./api.js";

export class Live extends EventTarget {
  constructor() {
    super();
    this.socket = null;
    this.cursor = null;
    this.backoff = 500;
    this.stopped = true;
    this.queue = [];
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    this.cursor = null;
    this.socket?.close(1000, "signed out");
    this.socket = null;
  }

  get connected() {
    return this.socket?.readyState === WebSocket.OPEN;
  }

  async connect() {
    if (this.stopped) return;
    let ticket;
    try {
      ({ ticket } = await api("POST", "/auth/ws-ticket"));
    } catch (error) {
      if (error.status === 401) return; // signed out: the app goes to the login page
      return this.retry();
    }
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const since = this.cursor ? `&since=${encodeURIComponent(this.cursor)}` : "";
    const socket = new WebSocket(`${scheme}//${location.host}/ws?ticket=${encodeURIComponent(ticket)}${since}`);
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.backoff = 500;
      for (const message of this.queue.splice(0)) socket.send(JSON.stringify(message));
      this.dispatchEvent(new CustomEvent("connection", { detail: { connected: true } }));
    });
    socket.addEventListener("message", (event) => {
      const message = JSON.parse(event.data);
      if (message.cursor) this.cursor = message.cursor;
      this.dispatchEvent(new CustomEvent(message.type, { detail: message }));
    });
    socket.addEventListener("close", () => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.dispatchEvent(new CustomEvent("connection", { detail: { connected: false } }));
      this.retry();
    });
  }

  retry() {
    if (this.stopped) return;
    // Jittered: when a node restarts, every open tab loses its socket at the
    // same moment; spread over half to one and a half times the backoff,
    // they come back over a window instead of all at once.
    const delay = this.backoff * (0.5 + Math.random());
    setTimeout(() => this.connect(), delay);
    this.backoff = Math.min(this.backoff * 2, 10_000);
  }

  /** Sends now, or as soon as the socket is back. */
  send(message) {
    if (this.connected) this.socket.send(JSON.stringify(message));
    else this.queue.push(message);
  }
}
