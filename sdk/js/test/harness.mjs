// Test harness: starts the real natter binary (NATTER_BIN, default ../../bin/natter from `make
// build`) on free ports with a temporary data directory, and a TCP proxy whose connections a test
// can cut, to drop a client's socket without stopping the server.
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { NatterApi } from "../dist/index.js";

/**
 * The WebSocket the tests use: node's global one where there is one (node 22, node 20 with
 * --experimental-websocket: the same WHATWG API as browsers), else the ws package's.
 */
export const WebSocketImpl = globalThis.WebSocket ?? (await import("ws")).WebSocket;
// node 18 has no global crypto; the SDK's ulid() needs crypto.getRandomValues, as browsers have.
if (!globalThis.crypto) globalThis.crypto = (await import("node:crypto")).webcrypto;

const here = path.dirname(fileURLToPath(import.meta.url));
export const natterBin = process.env.NATTER_BIN || path.resolve(here, "../../../bin/natter");

/** Polls cond until it is truthy (and returns it) or the deadline passes. */
export async function waitFor(cond, what, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A running `natter run`. start() again after stop() reuses the data directory. */
export class Natter {
  /** Starts natter; extraArgs are more `natter run` flags. */
  static async start(extraArgs = []) {
    const n = new Natter(await mkdtemp(path.join(tmpdir(), "natter-sdkjs-")), extraArgs);
    await n.start();
    return n;
  }

  constructor(dataDir, extraArgs = []) {
    this.dataDir = dataDir;
    this.extraArgs = extraArgs;
    this.output = "";
  }

  async start() {
    const addrFile = path.join(this.dataDir, `addrs-${Date.now()}.json`);
    const args = ["run", "--data-dir", path.join(this.dataDir, "data"), "--api-addr", "127.0.0.1:0", "--ws-addr", "127.0.0.1:0",
      "--nats-port", "-1", "--metrics-addr", "127.0.0.1:0", "--addr-file", addrFile, "--log-format", "json",
      "--log-level", "warn", "--rate-limits=false", "--hash-concurrency", "2", "--hash-wait", "30s", "--password-cost", "4", ...this.extraArgs];
    this.proc = spawn(natterBin, args, { stdio: ["ignore", "pipe", "pipe"] });
    const collect = (b) => (this.output += b.toString());
    this.proc.stdout.on("data", collect);
    this.proc.stderr.on("data", collect);
    this.exited = new Promise((resolve) => this.proc.on("exit", (code, signal) => resolve({ code, signal })));
    let exited = false;
    this.exited.then(() => (exited = true));
    const addrs = await waitFor(async () => {
      if (exited) throw new Error(`natter exited during start-up:\n${this.output}`);
      try {
        return JSON.parse(await readFile(addrFile, "utf8"));
      } catch {
        return undefined;
      }
    }, "natter to write its addresses", 60_000);
    this.apiUrl = addrs.api; // http://host:port
    this.wsUrl = addrs.websocket; // ws://host:port/v1/ws
    this.wsAddr = new URL(addrs.websocket).host;
  }

  /** Ctrl-C, and wait for the exit. */
  async stop() {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill("SIGINT");
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), 30_000);
    await this.exited;
    clearTimeout(timer);
  }

  async destroy() {
    await this.stop();
    await rm(this.dataDir, { recursive: true, force: true });
  }

  api(token) {
    return new NatterApi({ baseUrl: this.apiUrl, token });
  }

  /** Signs up a fresh user: { api, user, token, handle, password }. */
  async user(prefix) {
    const handle = `${prefix}_${Math.random().toString(36).slice(2, 10)}`;
    const password = "correct horse battery";
    const api = this.api();
    const s = await api.signup(handle, password, prefix);
    return { api, user: s.user, token: s.token, handle, password };
  }
}

/**
 * A TCP proxy to host:port. cut() destroys every open connection (the client sees its socket
 * drop: 1006, no close frame); refuse(true) also stops listening, so that new connections are
 * refused, until refuse(false) listens on the same port again; mute(true) loses what the server
 * sends, as a connection that dies one way does.
 */
export async function startProxy(target) {
  const [host, port] = [target.slice(0, target.lastIndexOf(":")), Number(target.slice(target.lastIndexOf(":") + 1))];
  const open = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(port, host);
    const pair = { client, upstream };
    open.add(pair);
    const end = () => {
      client.destroy();
      upstream.destroy();
      open.delete(pair);
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
    client.pipe(upstream);
    upstream.on("data", (chunk) => {
      if (!muted) client.write(chunk);
    });
  });
  let muted = false;
  const listen = (p) => new Promise((resolve, reject) => server.once("error", reject).listen(p, "127.0.0.1", () => resolve()));
  await listen(0);
  const listenPort = server.address().port;
  return {
    url: `ws://127.0.0.1:${listenPort}/v1/ws`,
    cut() {
      for (const { client, upstream } of open) {
        client.destroy();
        upstream.destroy();
      }
      open.clear();
    },
    /** on: drop everything the server sends (its answers are lost; the client's frames still arrive). */
    mute(on) {
      muted = on;
    },
    /** on: stop listening and cut every connection; off: listen again. */
    async refuse(on) {
      if (!on) return listen(listenPort);
      const closed = new Promise((r) => server.close(r)); // called once every connection is gone
      this.cut();
      await closed;
    },
    async close() {
      if (server.listening) await this.refuse(true);
    },
  };
}

/** Collects a client's timeline events and other frames for assertions. */
export function record(client) {
  const rec = { events: [], receipts: [], typing: [], presence: [], states: [], errors: [] };
  client.on("event", (e) => void rec.events.push(e));
  client.on("receipt", (f) => void rec.receipts.push(f));
  client.on("typing", (f) => void rec.typing.push(f));
  client.on("presence", (f) => void rec.presence.push(f));
  client.on("state", (s) => void rec.states.push(s.state));
  client.on("error", (e) => void rec.errors.push(e));
  return rec;
}
