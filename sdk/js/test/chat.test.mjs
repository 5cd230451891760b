// The SDK against a real natter: accounts, chatting, exactly-once sends, receipts, typing,
// presence, history, and sync across dropped connections, restarts and new client instances.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";

import { ApiError, CloseError, MemoryCursorStore, NatterApi, NatterClient, ProtocolError, TypingTracker, invitationChange, retryable } from "../dist/index.js";
import { FileCursorStore } from "./file-store.mjs";
import { Natter, WebSocketImpl, record, startProxy, waitFor } from "./harness.mjs";

let natter;
const clients = [];

before(async () => {
  natter = await Natter.start();
});

after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await natter?.destroy();
});

/** A started client of user u on device; options override the defaults. */
async function connect(u, device, options = {}) {
  const c = new NatterClient({ url: natter.wsUrl, token: u.token, deviceId: device, minBackoffMs: 50, maxBackoffMs: 400, WebSocket: WebSocketImpl, ...options });
  clients.push(c);
  const rec = record(c);
  await c.start();
  return { c, rec };
}

/** Alice and Bob with a direct conversation. */
async function pair() {
  const alice = await natter.user("alice");
  const bob = await natter.user("bob");
  const conv = await alice.api.openDirect(bob.user.id);
  await bob.api.acceptRequest(conv.id);
  return { alice, bob, conv: conv.id };
}

const texts = (events) => events.filter((e) => e.type === "message").map((e) => e.text);

function assertIncreasing(events) {
  for (let i = 1; i < events.length; i++) assert.ok(events[i].seq > events[i - 1].seq, `seq ${events[i].seq} after ${events[i - 1].seq}`);
}

describe("consent", () => {
  test("a request holds alice's message until bob accepts; block, unblock, presence visibility", async () => {
    const alice = await natter.user("alice");
    const bob = await natter.user("bob");
    const conv = await alice.api.openDirect(bob.user.id);
    assert.deepEqual(conv.request, { from: alice.user.id, to: bob.user.id });
    const { c: a } = await connect(alice, "a");
    const ack = await a.send(conv.id, "may I?");
    const inHistory = async () => (await bob.api.history(conv.id)).messages.some((m) => m.message_id === ack.message_id);
    await bob.api.ignoreRequest(conv.id);
    const listed = (await bob.api.conversations()).find((c) => c.id === conv.id);
    assert.equal(listed.request.ignored, true);
    assert.equal(listed.unread, 0);
    assert.equal(await inHistory(), false);
    const accepted = await bob.api.acceptRequest(conv.id);
    assert.equal(accepted.request, undefined);
    assert.equal(await inHistory(), true);
    await bob.api.block(alice.user.id);
    assert.deepEqual((await bob.api.blocks()).map((b) => b.user_id), [alice.user.id]);
    assert.equal(await inHistory(), false);
    await bob.api.unblock(alice.user.id);
    assert.deepEqual(await bob.api.blocks(), []);
    await bob.api.setPresenceVisibility("contacts");
    assert.equal(await bob.api.presenceVisibility(), "contacts");
  });
});

describe("requests", () => {
  test("a request and its answers reach every device of both users live; an ignore only the recipient's", async () => {
    const alice = await natter.user("alice");
    const bob = await natter.user("bob");
    const devices = { a: await connect(alice, "a"), b1: await connect(bob, "b1"), b2: await connect(bob, "b2") };
    const seen = { a: [], b1: [], b2: [] };
    for (const [name, d] of Object.entries(devices)) d.c.on("request", (r) => void seen[name].push(r));
    const conv = await alice.api.openDirect(bob.user.id);
    const states = (name) => seen[name].map((r) => `${r.state}:${r.conversation_id === conv.id && r.from === alice.user.id && r.to === bob.user.id}`);
    await waitFor(() => seen.a.length === 1 && seen.b1.length === 1 && seen.b2.length === 1, "the request on every device");
    await bob.api.ignoreRequest(conv.id);
    await waitFor(() => seen.b1.length === 2 && seen.b2.length === 2, "the ignore on bob's devices");
    await bob.api.acceptRequest(conv.id);
    await waitFor(() => seen.a.length === 2 && seen.b1.length === 3 && seen.b2.length === 3, "the accept on every device");
    assert.deepEqual(states("a"), ["open:true", "accepted:true"]); // never told of the ignore
    assert.deepEqual(states("b1"), ["open:true", "ignored:true", "accepted:true"]);
    assert.deepEqual(states("b2"), states("b1"));
  });
});

describe("accounts", () => {
  test("sign up, log in, wrong password, me", async () => {
    const alice = await natter.user("alice");
    const api = natter.api();
    const s = await api.login(alice.handle.toUpperCase(), alice.password);
    assert.equal(s.user.id, alice.user.id);
    assert.equal(api.token, s.token);
    assert.equal((await api.me()).handle, alice.handle);
    await assert.rejects(natter.api().login(alice.handle, "wrong password"), (e) => e instanceof ApiError && e.status === 401 && e.code === "bad_credentials");
    await assert.rejects(natter.api().signup(alice.handle, alice.password), (e) => e instanceof ApiError && e.code === "handle_taken");
    assert.equal((await api.updateMe({ displayName: "Alice L" })).display_name, "Alice L");
    assert.equal((await alice.api.userByHandle(alice.handle)).id, alice.user.id);
  });
});

describe("chat", () => {
  test("two users chat: each side sees both messages once, in seq order", async () => {
    const { alice, bob, conv } = await pair();
    const a = await connect(alice, "laptop");
    const b = await connect(bob, "phone");
    assert.equal(a.c.state, "live");
    assert.equal(a.c.userId, alice.user.id);
    const hi = await a.c.send(conv, "hi bob");
    await waitFor(() => b.rec.events.length === 1, "bob to get hi");
    const reply = await b.c.send(conv, "hi alice ✓");
    await waitFor(() => b.rec.events.length === 2 && a.rec.events.length === 2, "both messages on both sides");
    for (const r of [a.rec, b.rec]) {
      assert.deepEqual(texts(r.events), ["hi bob", "hi alice ✓"]);
      assert.deepEqual(r.events.map((e) => e.message_id), [hi.message_id, reply.message_id]);
      assertIncreasing(r.events);
    }
    const bobsCopy = b.rec.events[0];
    assert.equal(bobsCopy.sender_id, alice.user.id);
    assert.equal(bobsCopy.sender_device, "laptop");
    assert.equal(bobsCopy.client_msg_id, hi.client_msg_id);
    assert.equal(b.c.cursor, reply.seq);
    // The conversation list shows the last message and Bob's unread count.
    const [summary] = await bob.api.conversations();
    assert.equal(summary.id, conv);
    assert.equal(summary.last_message.message_id, reply.message_id);
    assert.equal(summary.unread, 1);
  });

  test("a send retried with the same client_msg_id makes one message", async () => {
    const { alice, bob, conv } = await pair();
    const a = await connect(alice, "laptop");
    const b = await connect(bob, "phone");
    const first = await a.c.send(conv, "once", { clientMsgId: "retry-1" });
    const again = await a.c.send(conv, "once (retry)", { clientMsgId: "retry-1" });
    assert.equal(first.duplicate, undefined);
    assert.equal(again.duplicate, true);
    assert.equal(again.message_id, first.message_id);
    assert.equal(again.seq, first.seq);
    // Two concurrent attempts under one id: still one message.
    const [x, y] = await Promise.all([a.c.send(conv, "twin", { clientMsgId: "retry-2" }), a.c.send(conv, "twin", { clientMsgId: "retry-2" })]);
    assert.equal(x.message_id, y.message_id);
    await a.c.send(conv, "marker");
    await waitFor(() => texts(b.rec.events).includes("marker"), "the marker");
    assert.deepEqual(texts(b.rec.events), ["once", "twin", "marker"]);
    assert.equal((await bob.api.history(conv)).messages.length, 3);
  });

  test("a refused send fails at once with a coded, non-retryable error", async () => {
    const { alice } = await pair();
    const a = await connect(alice, "laptop");
    const err = await a.c.send("dnotmyconversation", "hi").catch((e) => e);
    assert.ok(err instanceof ProtocolError, String(err));
    assert.equal(err.code, "not_member");
    assert.equal(retryable(err), false);
    const long = await a.c.send("dnotmyconversation", "x".repeat(100_001)).catch((e) => e);
    assert.equal(long.code, "text_too_long");
    // What the gateway would refuse without naming the send is refused before it is sent.
    assert.equal((await a.c.send("dx", "hi", { clientMsgId: "not ok!" }).catch((e) => e)).code, "invalid_frame");
    assert.equal((await a.c.send("dx", "half \ud83d").catch((e) => e)).code, "invalid_utf8");
    assert.equal((await a.c.send("dx", "\u0001".repeat(250_000)).catch((e) => e)).code, "frame_too_large");
  });

  test("receipts: delivered and read reach the sender; the API has the watermarks", async () => {
    const { alice, bob, conv } = await pair();
    const a = await connect(alice, "laptop");
    const b = await connect(bob, "phone");
    const ack = await a.c.send(conv, "did you read this?");
    await waitFor(() => b.rec.events.length === 1, "bob to get it");
    await b.c.markDelivered(conv, ack.seq);
    await waitFor(() => a.rec.receipts.some((r) => r.kind === "delivered"), "the delivered receipt");
    await b.c.markRead(conv, ack.seq);
    const read = await waitFor(() => a.rec.receipts.find((r) => r.kind === "read"), "the read receipt");
    assert.deepEqual(read, { type: "receipt", conversation_id: conv, user_id: bob.user.id, device_id: "phone", kind: "read", up_to: ack.seq });
    // Bob's own device hears of its mark too.
    await waitFor(() => b.rec.receipts.some((r) => r.kind === "read"), "bob's own read receipt");
    await waitFor(async () => (await alice.api.receipts(conv)).read_by_all === ack.seq, "read_by_all to reach the message");
    // A mark that fails comes back as an error event.
    await b.c.markRead("dnotmyconversation", 5);
    const err = await waitFor(() => b.rec.errors[0], "the mark's error");
    assert.equal(err.code, "not_member");
  });

  test("typing: start and stop reach the other member; TypingTracker keeps who is typing", async () => {
    const { alice, bob, conv } = await pair();
    const a = await connect(alice, "laptop");
    const b = await connect(bob, "phone");
    const changes = [];
    const tracker = new TypingTracker(b.c, { onChange: (id, users) => changes.push([id, users]) });
    const mine = new TypingTracker(a.c);
    try {
      mine.keystroke(conv);
      mine.keystroke(conv); // within repeatMs: not sent again
      await waitFor(() => tracker.typingIn(conv).length === 1, "bob to see alice typing");
      assert.deepEqual(b.rec.typing[0], { type: "typing", conversation_id: conv, user_id: alice.user.id, state: "start", expires_in_ms: 6000 });
      mine.stopped(conv);
      await waitFor(() => tracker.typingIn(conv).length === 0, "the stop");
      assert.deepEqual(b.rec.typing.map((f) => f.state), ["start", "stop"]);
      assert.deepEqual(changes, [[conv, [alice.user.id]], [conv, []]]);
      assert.equal(a.rec.typing.length, 0, "the typing user's own devices get nothing");
    } finally {
      tracker.dispose();
      mine.dispose();
    }
  });

  test("presence: ask, and get pushed changes of a direct contact", async () => {
    const { alice, bob } = await pair();
    const stranger = await natter.user("carol");
    const a = await connect(alice, "laptop");
    const b = await connect(bob, "phone");
    // Presence applies bob's connect shortly after his socket opens (its own consumer): ask
    // until it has.
    const users = await waitFor(async () => {
      const u = await a.c.presence([bob.user.id, stranger.user.id]);
      return u[0].status === "online" && u;
    }, "bob online");
    assert.equal(users[0].user_id, bob.user.id);
    assert.equal(users[0].status, "online");
    assert.ok(users[0].last_seen > 0);
    assert.deepEqual(users[1], { user_id: stranger.user.id, status: "unknown" });
    await b.c.close();
    const off = await waitFor(() => a.rec.presence.find((f) => !f.ref && f.users[0].status === "offline"), "bob going offline");
    assert.equal(off.users[0].user_id, bob.user.id);
    await connect(bob, "phone");
    await waitFor(() => a.rec.presence.some((f) => !f.ref && f.users[0].status === "online"), "bob coming back");
    await a.c.ping();
  });

  test("edits and deletes, over the socket and the HTTP API: both sides get the revisions, history shows the result, refusals are coded", async () => {
    const { alice, bob, conv } = await pair();
    const a = await connect(alice, "laptop");
    const b = await connect(bob, "phone");
    const revisions = [];
    b.c.on("revision", (r) => revisions.push(r));
    const one = await a.c.send(conv, "see you at 5");
    const two = await a.c.send(conv, "wrong chat");
    const three = await a.c.send(conv, "hide me");
    await a.c.edit(conv, one.seq, "see you at 6");
    const again = await alice.api.editMessage(conv, one.seq, "see you at 7", "http-edit-1");
    assert.equal(again.conversation_id, conv);
    assert.equal((await alice.api.editMessage(conv, one.seq, "see you at 7", "http-edit-1")).duplicate, true);
    await alice.api.deleteMessage(conv, two.seq, "http-delete-1");
    await b.c.delete(conv, three.seq, { forMe: true });
    await waitFor(() => revisions.length === 4, "bob to get two edits, a delete and his hide");
    assert.deepEqual(revisions.map((r) => [r.type, r.target.seq]), [["edit", one.seq], ["edit", one.seq], ["delete", two.seq], ["hide", three.seq]]);
    const byText = (page) => page.messages.filter((e) => e.type === "message").map((e) => [e.seq, e.text ?? "", e.deleted === true]).reverse();
    assert.deepEqual(byText(await bob.api.history(conv)), [[one.seq, "see you at 7", false], [two.seq, "", true], [three.seq, "", true]]);
    assert.deepEqual(byText(await alice.api.history(conv)), [[one.seq, "see you at 7", false], [two.seq, "", true], [three.seq, "hide me", false]]);
    // Bob may not edit Alice's message nor delete it for everyone; nobody edits a deleted one.
    await assert.rejects(b.c.edit(conv, one.seq, "mine now"), (e) => e instanceof ProtocolError && e.code === "not_allowed");
    await assert.rejects(bob.api.deleteMessage(conv, one.seq, "http-delete-2"), (e) => e instanceof ApiError && e.status === 403 && e.code === "not_allowed");
    await assert.rejects(alice.api.editMessage(conv, two.seq, "back", "http-edit-2"), (e) => e instanceof ApiError && e.status === 409 && e.code === "message_deleted");
  });

  test("history pages back to the first message", async () => {
    const { alice, bob, conv } = await pair();
    const a = await connect(alice, "laptop");
    const acks = [];
    for (let i = 0; i < 7; i++) acks.push(await a.c.send(conv, `m${i}`));
    const pages = [];
    for await (const page of bob.api.olderPages(conv, { limit: 3 })) pages.push(page.map((e) => e.seq));
    assert.deepEqual(pages, [
      [acks[6].seq, acks[5].seq, acks[4].seq],
      [acks[3].seq, acks[2].seq, acks[1].seq],
      [acks[0].seq],
    ]);
    const around = await bob.api.history(conv, { around: acks[3].seq, limit: 3 });
    assert.deepEqual(around.messages.map((e) => e.text), ["m4", "m3", "m2"]);
    const newer = await bob.api.history(conv, { after: acks[4].seq });
    assert.deepEqual(newer.messages.map((e) => e.text), ["m6", "m5"]);
    await assert.rejects(bob.api.history(conv, { limit: 201 }), (e) => e instanceof ApiError && e.code === "invalid_request");
  });

  test("groups: create, invite, accept, promote, rename, leave arrive as member events", async () => {
    const alice = await natter.user("alice");
    const bob = await natter.user("bob");
    const carol = await natter.user("carol");
    const b = await connect(bob, "phone");
    const g = await alice.api.createGroup("Trip", [bob.user.id]);
    const id = g.conversation.id;
    const invites = await bob.api.invitations();
    assert.deepEqual(invites.map((i) => [i.conversation.id, i.invited_by]), [[id, alice.user.id]]);
    await bob.api.acceptInvitation(id);
    await alice.api.inviteMembers(id, [carol.user.id]);
    await carol.api.acceptInvitation(id);
    await assert.rejects(bob.api.renameGroup(id, "Mine"), (e) => e instanceof ApiError && e.code === "forbidden");
    await alice.api.setRole(id, bob.user.id, "admin");
    await bob.api.renameGroup(id, "Long trip");
    await alice.api.leaveGroup(id);
    // Bob joined at his acceptance: what he sees starts there, but for his invitation, which
    // reached his connected device live.
    await waitFor(() => b.rec.events.length === 7, "seven member events");
    assert.deepEqual(b.rec.events.map((e) => e.member.action), ["invited", "accepted", "invited", "accepted", "promoted", "renamed", "left"]);
    assert.equal(invitationChange(b.rec.events[0], bob.user.id), "invited");
    assert.equal(invitationChange(b.rec.events[2], bob.user.id), undefined); // carol's
    assert.equal(b.rec.events[6].member.owner, bob.user.id);
    const detail = await bob.api.conversation(id);
    assert.equal(detail.conversation.name, "Long trip");
    assert.deepEqual(detail.members.map((m) => m.role).sort(), ["member", "owner"]);
    assert.deepEqual(detail.invitations, []);
    await bob.api.deleteGroup(id);
    await waitFor(() => b.rec.events.length === 8, "the deletion");
    assert.equal(b.rec.events[7].member.action, "deleted");
  });
});

describe("sync", () => {
  test("a dropped connection: the client reconnects and gets what it missed, once, in order", async () => {
    const { alice, bob, conv } = await pair();
    const proxy = await startProxy(natter.wsAddr);
    try {
      const a = await connect(alice, "laptop");
      const b = await connect(bob, "phone", { url: proxy.url });
      for (let i = 0; i < 3; i++) await a.c.send(conv, `before ${i}`);
      await waitFor(() => b.rec.events.length === 3, "the first three");
      await proxy.refuse(true); // the socket drops under the client; natter keeps running
      await waitFor(() => b.c.state === "disconnected" || b.c.state === "connecting", "bob to notice");
      for (let i = 0; i < 3; i++) await a.c.send(conv, `while away ${i}`);
      await proxy.refuse(false);
      await waitFor(() => b.rec.events.length >= 6 && b.c.state === "live", "the missed three");
      for (let i = 0; i < 2; i++) await a.c.send(conv, `after ${i}`);
      await waitFor(() => b.rec.events.length >= 8, "the live two");
      assert.deepEqual(texts(b.rec.events), ["before 0", "before 1", "before 2", "while away 0", "while away 1", "while away 2", "after 0", "after 1"]);
      assertIncreasing(b.rec.events);
      assert.ok(b.c.connects >= 2, `connects ${b.c.connects}`);
      assert.ok(b.rec.states.includes("disconnected"));
    } finally {
      await proxy.close();
    }
  });

  test("a slow listener and a dropped connection: what the server replays is not handed over twice", async () => {
    const { alice, bob, conv } = await pair();
    const proxy = await startProxy(natter.wsAddr);
    try {
      const a = await connect(alice, "laptop");
      const b = await connect(bob, "phone", { url: proxy.url });
      // Each event takes the application 100 ms, so events queue up behind the listener and the
      // cursor lags what the socket brought: the reconnect's catch-up sends them again.
      b.c.on("event", () => new Promise((r) => setTimeout(r, 100)));
      for (let i = 0; i < 5; i++) await a.c.send(conv, `m${i}`);
      await waitFor(() => b.rec.events.length >= 1, "the first event");
      const connects = b.c.connects;
      proxy.cut();
      await waitFor(() => b.c.connects > connects && b.c.state === "live", "the reconnect");
      await a.c.send(conv, "m5");
      await waitFor(() => b.rec.events.some((e) => e.text === "m5"), "the live one");
      assert.deepEqual(texts(b.rec.events), ["m0", "m1", "m2", "m3", "m4", "m5"]);
      assertIncreasing(b.rec.events);
    } finally {
      await proxy.close();
    }
  });

  test("a send made while disconnected is delivered once after the reconnect", async () => {
    const { alice, bob, conv } = await pair();
    const proxy = await startProxy(natter.wsAddr);
    try {
      const a = await connect(alice, "laptop", { url: proxy.url, attemptTimeoutMs: 500 });
      const b = await connect(bob, "phone");
      await proxy.refuse(true);
      await waitFor(() => a.c.state !== "live", "alice to notice");
      const pending = a.c.send(conv, "sent offline", { clientMsgId: "offline-1" });
      await new Promise((r) => setTimeout(r, 300)); // some backoff rounds while nothing connects
      await proxy.refuse(false);
      const ack = await pending;
      await a.c.send(conv, "marker");
      await waitFor(() => texts(b.rec.events).includes("marker"), "the marker");
      assert.deepEqual(texts(b.rec.events), ["sent offline", "marker"]);
      assert.equal(b.rec.events[0].message_id, ack.message_id);
    } finally {
      await proxy.close();
    }
  });

  test("a lost ack: the send is retried under its client_msg_id and makes one message", async () => {
    const { alice, bob, conv } = await pair();
    const proxy = await startProxy(natter.wsAddr);
    try {
      const a = await connect(alice, "laptop", { url: proxy.url, attemptTimeoutMs: 300 });
      const b = await connect(bob, "phone");
      proxy.mute(true); // alice's frames reach natter; nothing comes back, not even the ack
      const pending = a.c.send(conv, "ack lost", { clientMsgId: "lost-ack-1" });
      await waitFor(() => b.rec.events.length === 1, "the message to exist");
      await new Promise((r) => setTimeout(r, 700)); // attempts time out and are retried, still unanswered
      proxy.cut(); // the dead connection goes; the client reconnects and retries once more
      proxy.mute(false);
      const ack = await pending;
      assert.equal(ack.duplicate, true, "the ack of a retry");
      assert.equal(ack.message_id, b.rec.events[0].message_id);
      await a.c.send(conv, "marker");
      await waitFor(() => texts(b.rec.events).includes("marker"), "the marker");
      assert.deepEqual(texts(b.rec.events), ["ack lost", "marker"]);
    } finally {
      await proxy.close();
    }
  });

  test("a connection that goes silent is noticed by the keepalive ping, dropped and replaced", async () => {
    const { alice, bob, conv } = await pair();
    const proxy = await startProxy(natter.wsAddr);
    try {
      const a = await connect(alice, "laptop");
      const b = await connect(bob, "phone", { url: proxy.url, keepaliveMs: 300, attemptTimeoutMs: 300, connectTimeoutMs: 1000 });
      proxy.mute(true); // no close, no error: the socket just stops bringing anything
      await waitFor(() => b.c.state !== "live", "the keepalive to give up on the silent socket");
      await a.c.send(conv, "while silent");
      proxy.mute(false);
      await waitFor(() => b.rec.events.length === 1, "the message, after a reconnect");
      assert.deepEqual(texts(b.rec.events), ["while silent"]);
      assert.ok(b.c.connects >= 2);
    } finally {
      await proxy.close();
    }
  });

  test("the cursor persists: a new client instance resumes after what the old one handed over", async () => {
    const { alice, bob, conv } = await pair();
    const dir = await mkdtemp(path.join(tmpdir(), "natter-cursor-"));
    try {
      const store = new FileCursorStore(path.join(dir, "bob-phone.cursor"));
      assert.equal(await store.load(), undefined);
      const a = await connect(alice, "laptop");
      const b1 = await connect(bob, "phone", { storage: store });
      await a.c.send(conv, "one");
      const two = await a.c.send(conv, "two");
      await waitFor(() => b1.rec.events.length === 2, "the first two");
      await waitFor(async () => (await store.load()) === two.seq, "the cursor saved at the second");
      await b1.c.close();
      await a.c.send(conv, "three");
      await a.c.send(conv, "four");
      const b2 = await connect(bob, "phone", { storage: new FileCursorStore(path.join(dir, "bob-phone.cursor")) });
      await waitFor(() => b2.rec.events.length === 2, "the two it missed");
      await a.c.send(conv, "five");
      await waitFor(() => b2.rec.events.length === 3, "the live one");
      assert.deepEqual(texts(b2.rec.events), ["three", "four", "five"]);
      // A memory store shared by two instances works the same way.
      const mem = new MemoryCursorStore();
      const m1 = await connect(bob, "tablet", { storage: mem });
      await a.c.send(conv, "six");
      await waitFor(() => m1.rec.events.length === 1, "six");
      await m1.c.close();
      await a.c.send(conv, "seven");
      const m2 = await connect(bob, "tablet", { storage: mem });
      await waitFor(() => m2.rec.events.length === 1, "seven");
      assert.deepEqual(texts(m2.rec.events), ["seven"]);
      await Promise.all([a.c.close(), b2.c.close(), m2.c.close()]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("a newer connection of the same device ends the older client with 4409", async () => {
    const alice = await natter.user("alice");
    const first = await connect(alice, "phone");
    await connect(alice, "phone");
    await waitFor(() => first.c.state === "closed", "the first client to stop");
    assert.ok(first.c.error instanceof CloseError);
    assert.equal(first.c.error.code, 4409);
    await assert.rejects(first.c.send("dwhatever", "x"), (e) => e instanceof CloseError);
  });
});

describe("restart", () => {
  test("natter restarts on the same data: the client rediscovers, resyncs, and loses nothing", async () => {
    const own = await Natter.start();
    try {
      const alice = await own.user("alice");
      const bob = await own.user("bob");
      const conv = (await alice.api.openDirect(bob.user.id)).id;
      await bob.api.acceptRequest(conv);
      // discover asks the HTTP API of whichever process runs now, as a real client would.
      const discover = () => own.api().gatewayUrl();
      const b = new NatterClient({ discover, token: bob.token, deviceId: "phone", minBackoffMs: 50, maxBackoffMs: 400, WebSocket: WebSocketImpl });
      const rec = record(b);
      await b.start();
      const a1 = new NatterClient({ discover, token: alice.token, deviceId: "laptop", WebSocket: WebSocketImpl });
      await a1.start();
      await a1.send(conv, "before restart");
      await waitFor(() => rec.events.length === 1, "the first");
      await a1.close();
      await own.stop();
      await own.start(); // new ports, same data
      const a2 = new NatterClient({ discover, token: alice.token, deviceId: "laptop", WebSocket: WebSocketImpl });
      await a2.start();
      await a2.send(conv, "after restart");
      await waitFor(() => rec.events.length === 2, "the second");
      await a2.close();
      assert.deepEqual(texts(rec.events), ["before restart", "after restart"]);
      assert.ok(b.connects >= 2);
      await b.close();
    } finally {
      await own.destroy();
    }
  });
});

describe("tokens", () => {
  test("an expired token (4401): with a tokenSource the client logs in again and resumes; without one it stops", async () => {
    const own = await Natter.start(["--token-ttl", "2s"]);
    const started = [];
    try {
      const alice = await own.user("alice");
      const bob = await own.user("bob");
      const conv = (await alice.api.openDirect(bob.user.id)).id;
      await bob.api.acceptRequest(conv);
      let logins = 0;
      const loginAs = (u) => async () => (logins++, (await own.api().login(u.handle, u.password)).token);
      const opts = { url: own.wsUrl, minBackoffMs: 50, maxBackoffMs: 400, WebSocket: WebSocketImpl };
      const a = new NatterClient({ ...opts, tokenSource: loginAs(alice), deviceId: "laptop" });
      const b = new NatterClient({ ...opts, tokenSource: loginAs(bob), deviceId: "phone" });
      const plain = new NatterClient({ ...opts, token: (await own.api().login(bob.handle, bob.password)).token, deviceId: "tablet" });
      started.push(a, b, plain);
      const rec = record(b);
      await Promise.all([a.start(), b.start(), plain.start()]);
      await a.send(conv, "before expiry");
      await waitFor(() => plain.state === "closed", "the client without a tokenSource to stop");
      assert.ok(plain.error instanceof CloseError && plain.error.code === 4401, String(plain.error));
      await waitFor(() => b.connects >= 2 && b.state === "live" && a.connects >= 2 && a.state === "live", "both to reconnect with new tokens");
      await a.send(conv, "after expiry");
      await waitFor(() => rec.events.length === 2, "the second message");
      assert.deepEqual(texts(rec.events), ["before expiry", "after expiry"]);
      assert.ok(logins >= 4, `logins ${logins}`);
    } finally {
      await Promise.all(started.map((c) => c.close()));
      await own.destroy();
    }
  });
});

describe("sessions", () => {
  test("a session's refreshed tokens renew the open socket: one connection outlives several tokens", async () => {
    const ttl = 6; // the renewal has a fifth of it to finish: 1.2 s on a busy machine
    const own = await Natter.start(["--access-ttl", `${ttl}s`]);
    let a;
    try {
      const alice = await own.user("alice");
      const bob = await own.user("bob");
      const conv = (await alice.api.openDirect(bob.user.id)).id;
      const saved = [];
      const api = new NatterApi({ baseUrl: own.apiUrl, sessionStore: { save: (s) => saved.push(s) } });
      const first = await api.login(alice.handle, alice.password);
      a = new NatterClient({ url: own.wsUrl, tokenSource: () => api.validToken(), deviceId: "laptop", WebSocket: WebSocketImpl });
      await a.start();
      await new Promise((r) => setTimeout(r, (2 * ttl + 1) * 1000)); // past two token lifetimes
      await a.send(conv, "still the first connection");
      assert.equal(a.connects, 1, "the socket was renewed, not reconnected");
      assert.ok(saved.length >= 3, `sessions saved: ${saved.length} (login and at least two refreshes)`);
      assert.notEqual(saved.at(-1).refresh_token, first.refresh_token, "the refresh token rotated");
      assert.equal(saved.at(-1).session_id, first.session_id);
      assert.equal((await api.me()).id, alice.user.id, "API calls use the refreshed token");
    } finally {
      await a?.close();
      await own.destroy();
    }
  });

  test("two holders of one session (browser tabs) take over each other's refresh instead of reusing a dead refresh token", async () => {
    const own = await Natter.start(["--access-ttl", "2s"]);
    try {
      const alice = await own.user("alice");
      let shared; // the tabs' common storage
      const store = { load: () => shared, save: (s) => (shared = s) };
      const tab1 = new NatterApi({ baseUrl: own.apiUrl, sessionStore: store });
      await tab1.login(alice.handle, alice.password);
      const tab2 = new NatterApi({ baseUrl: own.apiUrl, sessionStore: store });
      tab2.useSession(shared);
      for (let i = 0; i < 3; i++) {
        await tab1.refresh(); // rotates the refresh token tab2 holds
        await tab2.refresh(); // must take tab1's over, not send the dead one (which would end the session)
      }
      assert.equal((await tab1.me()).id, alice.user.id);
      assert.equal((await tab2.me()).id, alice.user.id);
      // Without the shared store, the second holder's refresh reuses a dead token: the session ends.
      const lone = new NatterApi({ baseUrl: own.apiUrl });
      lone.useSession(shared);
      await tab1.refresh();
      await assert.rejects(lone.refresh(), (e) => e.status === 401 && e.code === "session_ended");
      await assert.rejects(tab1.me(), (e) => e.status === 401);
    } finally {
      await own.destroy();
    }
  });
});

describe("dedupe window", () => {
  test("a send with a given client_msg_id is one message even after JetStream's duplicate window", async () => {
    const window = 500;
    const own = await Natter.start(["--dedupe-window", `${window}ms`]);
    let a;
    try {
      const alice = await own.user("alice");
      const bob = await own.user("bob");
      const conv = (await alice.api.openDirect(bob.user.id)).id;
      await bob.api.acceptRequest(conv);
      a = new NatterClient({ url: own.wsUrl, token: alice.token, deviceId: "laptop", WebSocket: WebSocketImpl });
      await a.start();
      const first = await a.send(conv, "outbox entry", { clientMsgId: "outbox-1" });
      await new Promise((r) => setTimeout(r, 3 * window)); // JetStream forgets the id; the store keeps it
      const again = await a.send(conv, "outbox entry", { clientMsgId: "outbox-1" });
      assert.equal(again.duplicate, true);
      assert.equal(again.message_id, first.message_id);
      assert.equal((await bob.api.history(conv)).messages.length, 1);
    } finally {
      await a?.close();
      await own.destroy();
    }
  });
});
