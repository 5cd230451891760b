// The SDK's pure parts: backoff, ids, error classes, the memory store, and that src stays
// browser-safe. No server needed.
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "node:test";

import { WebSocketImpl, waitFor } from "./harness.mjs"; // also gives node 18 crypto for ulid()
import { AbortError, CloseError, ClosedError, MemoryCursorStore, MessageView, NatterClient, ProtocolError, backoff, reconnectable, retryable, ulid } from "../dist/index.js";

test("backoff is full jitter between base/2 and base/2 + min(ceiling, base * 2^attempt)", () => {
  assert.equal(backoff(0, 100, 10_000, () => 0), 50);
  assert.equal(backoff(0, 100, 10_000, () => 0.99999999), 50 + 100);
  assert.equal(backoff(3, 100, 10_000, () => 0.99999999), 50 + 800);
  assert.equal(backoff(10, 100, 10_000, () => 0.99999999), 50 + 10_000);
  assert.equal(backoff(500, 100, 10_000, () => 0.99999999), 50 + 10_000);
  const seen = new Set();
  for (let i = 0; i < 200; i++) {
    const d = backoff(4, 100, 10_000);
    assert.ok(d >= 50 && d <= 50 + 1600, String(d));
    seen.add(d);
  }
  assert.ok(seen.size > 50, "jittered");
});

test("ulid: 26 Crockford characters, time-ordered, unique, a valid client_msg_id", () => {
  const ids = new Set();
  for (let i = 0; i < 1000; i++) ids.add(ulid());
  assert.equal(ids.size, 1000);
  for (const id of ids) assert.match(id, /^[0-9A-HJKMNP-TV-Z]{26}$/);
  assert.ok(ulid(1_000) < ulid(2_000));
  assert.equal(ulid(0).slice(0, 10), "0000000000");
});

test("retryable and reconnectable follow the protocol's tables", () => {
  assert.equal(retryable(new ProtocolError("unavailable", "x")), true);
  assert.equal(retryable(new ProtocolError("rate_limited", "x")), true);
  assert.equal(retryable(new ProtocolError("not_member", "x")), false);
  assert.equal(retryable(new ProtocolError("text_too_long", "x")), false);
  assert.equal(retryable(new Error("no ack within 5000 ms")), true);
  assert.equal(retryable(new ClosedError()), false);
  assert.equal(retryable(new CloseError(4409, "replaced")), false);
  assert.equal(retryable(new AbortError()), false);
  for (const code of [1000, 1006, 1009, 4000, 4001, 4003, 4004]) assert.equal(reconnectable(code), true, String(code));
  for (const code of [4400, 4401, 4409]) assert.equal(reconnectable(code), false, String(code));
});

test("MemoryCursorStore keeps the last save", async () => {
  const s = new MemoryCursorStore();
  assert.equal(await s.load(), undefined);
  await s.save(7);
  await s.save(9);
  assert.equal(await s.load(), 9);
  assert.equal(await new MemoryCursorStore(3).load(), 3);
});

test("a client needs a url, a token and a device, and start() before calls", async () => {
  assert.throws(() => new NatterClient({ token: "t", deviceId: "d" }), /url or discover/);
  assert.throws(() => new NatterClient({ url: "ws://x/v1/ws", deviceId: "d" }), /token or tokenSource/);
  assert.throws(() => new NatterClient({ url: "ws://x/v1/ws", token: "t" }), /deviceId/);
  const c = new NatterClient({ url: "ws://127.0.0.1:1/v1/ws", token: "t", deviceId: "d", WebSocket: class {} });
  await assert.rejects(c.send("dx", "hi"), /start\(\) first/);
  await c.close();
  await assert.rejects(c.ready, ClosedError);
  assert.equal(c.state, "closed");
});

test("src is browser-safe: no node modules or node globals", async () => {
  const src = path.join(path.dirname(fileURLToPath(import.meta.url)), "../src");
  for (const f of await readdir(src)) {
    const text = await readFile(path.join(src, f), "utf8");
    assert.doesNotMatch(text, /from "node:|require\(|\bprocess\.|\bBuffer\b|__dirname/, f);
  }
});

test("close() ends a connection attempt that hangs, without waiting for the connect timeout", { timeout: 20_000 }, async () => {
  const held = [];
  const server = net.createServer((sock) => held.push(sock)); // accepts, never answers the upgrade
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  try {
    const c = new NatterClient({ url: `ws://127.0.0.1:${server.address().port}/v1/ws`, token: "t", deviceId: "d", connectTimeoutMs: 600_000, WebSocket: WebSocketImpl });
    const started = c.start();
    await waitFor(() => held.length === 1 && c.state === "connecting", "the attempt to hang");
    await c.close();
    assert.equal(c.state, "closed");
    await assert.rejects(started, ClosedError);
  } finally {
    for (const s of held) s.destroy();
    await new Promise((r) => server.close(r));
  }
});

test("MessageView: edits replace the text, a delete or hide is final, a message read back comes as it is now", () => {
  const v = new MessageView();
  const msg = (seq, text, extra = {}) => ({ type: "message", seq, conversation_id: "c", message_id: "m" + seq, sender_id: "u", sender_device: "d", client_msg_id: "k" + seq, text, sent_at: 1, ...extra });
  const rev = (type, seq, target, extra = {}) => ({ type, seq, conversation_id: "c", message_id: "r" + seq, sender_id: "u", sent_at: 2, target: { seq: target, message_id: "m" + target }, ...extra });
  v.apply(msg(1, "helo"));
  v.apply(rev("edit", 2, 1, { text: "hello", edited_at: 2 }));
  assert.deepEqual([v.get(1).text, v.get(1).edited_at, v.get(1).deleted], ["hello", 2, false]);
  v.apply(rev("delete", 3, 1, { deleted: true }));
  v.apply(rev("edit", 4, 1, { text: "back", edited_at: 4 })); // raced the delete: loses
  assert.deepEqual([v.get(1).text, v.get(1).deleted], ["", true]);
  v.apply(msg(5, "mine"));
  v.apply(rev("hide", 6, 5, { deleted: true }));
  assert.equal(v.get(5).deleted, true);
  v.apply(msg(7, undefined, { deleted: true })); // synced after its delete
  assert.deepEqual([v.get(7).text, v.get(7).deleted], ["", true]);
  v.apply(rev("edit", 8, 9, { text: "an older message", edited_at: 8 })); // its message came before the cursor
  assert.equal(v.get(9).text, "an older message");
});

test("asks for frames=lines and handles every frame of a message, in order", { timeout: 20_000 }, async () => {
  const sockets = [];
  class FakeSocket {
    constructor(url) {
      this.url = url;
      sockets.push(this);
    }
    send() {}
    close() {}
  }
  const c = new NatterClient({ url: "ws://127.0.0.1:1/v1/ws", token: "t", deviceId: "d", cursor: 0, WebSocket: FakeSocket });
  try {
    const events = [];
    c.on("event", (e) => events.push(e.seq));
    const started = c.start();
    await waitFor(() => sockets.length === 1 && sockets[0].onopen, "a socket");
    const ws = sockets[0];
    assert.equal(new URL(ws.url).searchParams.get("frames"), "lines");
    ws.onopen();
    const msg = (seq) => JSON.stringify({ type: "message", seq, conversation_id: "dx", message_id: "m" + seq, sender_id: "u", sender_device: "d2", client_msg_id: "k" + seq, text: "hi", sent_at: 1 });
    ws.onmessage({ data: [JSON.stringify({ type: "welcome", user_id: "u", device_id: "d", session_id: "s", heartbeat_ms: 30000, syncing: true }), msg(1), msg(2)].join("\n") });
    ws.onmessage({ data: msg(3) + "\n" + JSON.stringify({ type: "synced", cursor: 3 }) });
    await started;
    await waitFor(() => c.cursor === 3, "the cursor at 3");
    assert.deepEqual(events, [1, 2, 3]);
    assert.equal(c.userId, "u");
  } finally {
    await c.close();
  }
});
