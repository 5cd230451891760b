// The WebSocket client: one connected device. It reconnects with full-jitter backoff, syncs from
// its cursor on every (re)connect so no event is missed or repeated, and retries sends with one
// client_msg_id so each send makes exactly one message. Same contract as the Go SDK (sdk/go/client).
//
// The cursor is the seq of the last timeline event (message or member) handed to the application.
// natter delivers one device's events in one global seq order, catch-up and live alike, so an
// event at or below the cursor is a repeat and is dropped: listeners never see an event twice or
// out of order. The cursor moves, and is saved to the CursorStore, only after every "event",
// "message" and "member" listener has returned (their promises awaited).

import { backoff } from "./backoff.js";
import { AbortError, ApiError, ClosedError, CloseError, ProtocolError, reconnectable, retryable } from "./errors.js";
import { ulid } from "./ids.js";
import type { CursorStore } from "./storage.js";
import type {
  AckFrame,
  ChatEvent,
  ClientFrame,
  MemberEvent,
  MessageEvent,
  RevisionEvent,
  PresenceEntry,
  PresenceFrame,
  RequestFrame,
  ReceiptFrame,
  ServerFrame,
  SyncedFrame,
  TypingFrame,
  TypingState,
  WelcomeFrame,
} from "./types.js";

/** The part of the WebSocket API the client uses; the browser's and node's global WebSocket fit. */
export interface WebSocketLike {
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/** A WebSocket constructor, e.g. globalThis.WebSocket or the `ws` package's. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface ClientOptions {
  /** The gateway's WebSocket URL (ws://host:port/v1/ws). Or set discover. */
  url?: string;
  /** Asked for the URL before every connection attempt instead (e.g. `() => api.gatewayUrl()`). */
  discover?: () => Promise<string>;
  /** The access token (sent as ?token=, as browsers must). Or set tokenSource. */
  token?: string;
  /**
   * Asked for the token before every connection attempt, and again when four fifths of the
   * socket's token life have passed, to renew the open socket with an auth frame (so it stays
   * open as long as the session: `() => api.validToken()`). A 4401 close reconnects with a fresh
   * token; a tokenSource that throws an ApiError 401 (the session ended) ends the client.
   */
  tokenSource?: () => Promise<string>;
  /** This installation's id, 1-64 of [A-Za-z0-9_-]; keep it stable across restarts. */
  deviceId: string;
  /** Free text of at most 32 bytes stored with the device ("web", "ios", ...). */
  platform?: string;
  /** Where to resume when the store has no cursor. Neither: start at the head (nothing replayed). */
  cursor?: number;
  /** Keeps the cursor across restarts; loaded once by start(), saved after every event and synced. */
  storage?: CursorStore;
  /** Reconnect and send-retry delay bounds, full jitter doubling per failure. Default 100 ms / 10 s. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** How long one send (or presence, ping) attempt waits for its answer. Default 5 s. */
  attemptTimeoutMs?: number;
  /** How long a connection attempt may take to open. Default 10 s. */
  connectTimeoutMs?: number;
  /**
   * After this long without a frame the client sends a ping, and drops the connection (then
   * reconnects) if nothing arrives within attemptTimeoutMs: a browser cannot see WebSocket-level
   * pings, so this is how it notices a dead network. Default 30 s; 0 turns it off.
   */
  keepaliveMs?: number;
  /** The WebSocket constructor; defaults to globalThis.WebSocket. */
  WebSocket?: WebSocketConstructor;
  /** Called when a listener throws; default console.error. The cursor still moves past the event. */
  onListenerError?: (err: unknown, event: keyof ClientEventMap) => void;
}

/**
 * idle: not started. connecting: opening a socket. syncing: open, catching up from the cursor.
 * live: caught up; new events arrive as they happen. disconnected: waiting retryInMs to reconnect.
 * closed: ended by close() or by a close code that forbids reconnecting (see error).
 */
export type ConnectionState = "idle" | "connecting" | "syncing" | "live" | "disconnected" | "closed";

export interface StateChange {
  state: ConnectionState;
  /** disconnected: the delay before the next attempt. */
  retryInMs?: number;
  /** disconnected, closed: why the last connection ended (close code and reason, or an error). */
  reason?: string;
}

/** What the client emits; subscribe with on(). */
export interface ClientEventMap {
  /** Every timeline event (message or member) once, in seq order. Awaited before the cursor moves. */
  event: ChatEvent;
  /** Timeline messages only (after the "event" listeners). Awaited too. */
  message: MessageEvent;
  /** Group membership changes only. Awaited too. */
  member: MemberEvent;
  /** Edits, deletes and hides of messages only (fold them with MessageView). Awaited too. */
  revision: RevisionEvent;
  /** A delivered/read watermark of a user (yours from any device, or the other member's in a direct conversation). */
  receipt: ReceiptFrame;
  /** Someone started or stopped typing; show a start for expires_in_ms unless refreshed. */
  typing: TypingFrame;
  /** Presence: pushed changes (no ref) and answers to presence() (with ref). */
  presence: PresenceFrame;
  /** A direct request made to or by this user, or answered: live only (see RequestFrame). */
  request: RequestFrame;
  /** The first frame of every connection. */
  welcome: WelcomeFrame;
  /** Catch-up over; cursor is the stream head. */
  synced: SyncedFrame;
  state: StateChange;
  /** An error nothing waits for: an error frame for a mark or typing frame, a frame without ref, a failed cursor save. */
  error: Error;
}

export type Listener<T> = (value: T) => void | Promise<void>;

export interface SendOptions {
  /**
   * The idempotency key; default a new ULID. Sending again with the same id makes no second
   * message, however much later: a send with a given id is always marked a resend, which costs
   * the gateway a store lookup.
   */
  clientMsgId?: string;
  /** Stops the retries (the message may or may not exist: send again with the same id to know). */
  signal?: AbortSignal;
}

interface Waiter<T> {
  resolve(v: T): void;
  reject(e: unknown): void;
}

/** A connection that dropped before answering; retryable. */
class DisconnectedError extends Error {
  constructor(why: string) {
    super(`natter: connection lost: ${why}`);
    this.name = "DisconnectedError";
  }
}

interface Session {
  ws: WebSocketLike;
  synced: boolean;
  lastFrameAt: number;
  /** The socket's expiry (Unix ms) as welcome or the last auth answer told it, and its renewal. */
  expiresAt: number;
  renewTimer?: ReturnType<typeof setTimeout>;
  end(code: number, reason: string): void;
}

const idPattern = /^[A-Za-z0-9_-]{1,64}$/;
const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Refuses here the sends the gateway would answer without a ref (so no attempt could learn why it
 * failed, and the retries would never end): a malformed id, a lone surrogate, an oversize frame.
 */
function checkSend(clientMsgId: string, text: string, frame: string): void {
  if (!idPattern.test(clientMsgId)) throw new ProtocolError("invalid_frame", "client_msg_id must be 1-64 characters of [A-Za-z0-9_-]");
  if (loneSurrogate.test(text)) throw new ProtocolError("invalid_utf8", "text holds a lone surrogate, which is not UTF-8");
  if (frame.length > maxFrameBytes / 3 && new TextEncoder().encode(frame).length > maxFrameBytes) {
    throw new ProtocolError("frame_too_large", `the frame is over ${maxFrameBytes} bytes`);
  }
}

/** The largest frame the gateway reads (docs/protocol.md#limits). */
const maxFrameBytes = 1_300_000;

const timelineListeners = new Set<keyof ClientEventMap>(["event", "message", "member", "revision"]);

/** One connected device. Create it, subscribe with on(), then start(). */
export class NatterClient {
  private readonly opts: Required<Pick<ClientOptions, "minBackoffMs" | "maxBackoffMs" | "attemptTimeoutMs" | "connectTimeoutMs" | "keepaliveMs">> & ClientOptions;
  private readonly WS: WebSocketConstructor;
  private readonly listeners = new Map<keyof ClientEventMap, Set<Listener<never>>>();

  private _cursor = 0;
  private hasCursor = false;
  private _state: ConnectionState = "idle";
  private _connects = 0;
  private _error?: Error;
  private _userId?: string;
  private started = false;
  private closed = false;

  private session?: Session; // set while a socket is open
  private attempt?: Session; // the connection being opened or open, for close() to end
  private connectWaiters: Waiter<Session>[] = [];
  private readonly sends = new Map<string, Waiter<AckFrame>[]>(); // client_msg_id -> waiting attempts
  private readonly requests = new Map<string, Waiter<ServerFrame>>(); // frame id -> waiting request
  private nextRequest = 0;
  private timeline: Promise<void> = Promise.resolve(); // serializes timeline frames
  private readonly sleepers = new Set<() => void>();
  private runDone?: Promise<void>;

  private readyWaiter!: Waiter<void>;
  /** Resolves after the first `synced`: from then on every new event reaches the listeners. Rejects if the client ends first. */
  readonly ready: Promise<void>;

  constructor(options: ClientOptions) {
    if (!options.url && !options.discover) throw new Error("natter: ClientOptions.url or discover is required");
    if (!options.token && !options.tokenSource) throw new Error("natter: ClientOptions.token or tokenSource is required");
    if (!options.deviceId) throw new Error("natter: ClientOptions.deviceId is required");
    const min = options.minBackoffMs && options.minBackoffMs > 0 ? options.minBackoffMs : 100;
    const max = options.maxBackoffMs && options.maxBackoffMs >= min ? options.maxBackoffMs : Math.max(min, 10_000);
    this.opts = {
      ...options,
      minBackoffMs: min,
      maxBackoffMs: max,
      attemptTimeoutMs: options.attemptTimeoutMs && options.attemptTimeoutMs > 0 ? options.attemptTimeoutMs : 5_000,
      connectTimeoutMs: options.connectTimeoutMs && options.connectTimeoutMs > 0 ? options.connectTimeoutMs : 10_000,
      keepaliveMs: options.keepaliveMs ?? 30_000,
    };
    const WS = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS) throw new Error("natter: no WebSocket here; pass ClientOptions.WebSocket (node 20: run with --experimental-websocket, or use the ws package)");
    this.WS = WS;
    this.ready = new Promise<void>((resolve, reject) => (this.readyWaiter = { resolve, reject }));
    this.ready.catch(() => {}); // a caller that never awaits ready gets no unhandled rejection
  }

  /** The seq of the last event handed to the listeners (or of the last synced). 0 before any. */
  get cursor(): number {
    return this._cursor;
  }
  get state(): ConnectionState {
    return this._state;
  }
  /** How many connections opened so far. */
  get connects(): number {
    return this._connects;
  }
  /** Why the client ended: a CloseError for a code that forbids reconnecting; undefined while it runs or after close(). */
  get error(): Error | undefined {
    return this._error;
  }
  /** The authenticated user, from the first welcome. */
  get userId(): string | undefined {
    return this._userId;
  }

  /** Subscribes to an event; returns the unsubscribe function. Subscribe before start() not to miss any. */
  on<K extends keyof ClientEventMap>(type: K, listener: Listener<ClientEventMap[K]>): () => void {
    let set = this.listeners.get(type);
    if (!set) this.listeners.set(type, (set = new Set()));
    set.add(listener as Listener<never>);
    return () => set!.delete(listener as Listener<never>);
  }

  /** Loads the cursor from the store, starts connecting in the background, and returns `ready`. */
  async start(): Promise<void> {
    if (this.started) return this.ready;
    this.started = true;
    try {
      const stored = this.opts.storage ? await this.opts.storage.load() : undefined;
      const initial = stored ?? this.opts.cursor;
      if (initial !== undefined) {
        this._cursor = initial;
        this.hasCursor = true;
      }
    } catch (e) {
      this.end(e instanceof Error ? e : new Error(String(e)));
      throw e;
    }
    if (!this.closed) this.runDone = this.run();
    return this.ready;
  }

  /** Disconnects and stops: pending calls reject with ClosedError. Resolves when the client has stopped. */
  async close(): Promise<void> {
    if (!this.closed) this.end(undefined);
    await this.runDone;
    await this.timeline;
  }

  /**
   * Sends text and resolves with its ack (duplicate: true when the id already made a message),
   * retrying with the same client_msg_id across timeouts, reconnects and retryable errors until
   * it is acked, fails for good (a ProtocolError such as not_member), the signal aborts or the
   * client closes.
   */
  async send(conversationId: string, text: string, options: SendOptions = {}): Promise<AckFrame> {
    this.mustBeStarted();
    const clientMsgId = options.clientMsgId ?? ulid();
    // Every attempt after the first is a resend, and so is the first when the caller chose the id
    // (it may have been sent before, even long ago): the gateway then checks the store too.
    const frame = (resend: boolean) =>
      JSON.stringify({ type: "send", client_msg_id: clientMsgId, conversation_id: conversationId, text, ...(resend ? { resend } : {}) } satisfies ClientFrame);
    return this.retrySend(clientMsgId, text, frame(options.clientMsgId !== undefined), frame(true), options.signal);
  }

  /**
   * Replaces the text of your message at targetSeq (within the server's edit window) and resolves
   * with the edit's ack, retrying like send. Every member's devices get a "revision" event.
   */
  async edit(conversationId: string, targetSeq: number, text: string, options: SendOptions = {}): Promise<AckFrame> {
    this.mustBeStarted();
    const clientMsgId = options.clientMsgId ?? ulid();
    const frame = JSON.stringify({ type: "edit", client_msg_id: clientMsgId, conversation_id: conversationId, target_seq: targetSeq, text, resend: true } satisfies ClientFrame);
    return this.retrySend(clientMsgId, text, frame, frame, options.signal);
  }

  /**
   * Deletes the message at targetSeq for everyone (its sender, or an admin of its group) or, with
   * forMe, for this user only, and resolves with the delete's ack, retrying like send.
   */
  async delete(conversationId: string, targetSeq: number, options: SendOptions & { forMe?: boolean } = {}): Promise<AckFrame> {
    this.mustBeStarted();
    const clientMsgId = options.clientMsgId ?? ulid();
    const frame = JSON.stringify({
      type: "delete", client_msg_id: clientMsgId, conversation_id: conversationId, target_seq: targetSeq,
      ...(options.forMe ? { for: "me" as const } : {}), resend: true,
    } satisfies ClientFrame);
    return this.retrySend(clientMsgId, "", frame, frame, options.signal);
  }

  /** Sends first, then retry, until acked or failed for good (see send). */
  private async retrySend(clientMsgId: string, text: string, first: string, retry: string, signal?: AbortSignal): Promise<AckFrame> {
    checkSend(clientMsgId, text, retry);
    const options = { signal };
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.sendAttempt(clientMsgId, attempt === 0 ? first : retry, options.signal);
      } catch (e) {
        if (!retryable(e)) throw e;
      }
      await this.sleep(backoff(attempt, this.opts.minBackoffMs, this.opts.maxBackoffMs), options.signal);
    }
  }

  /** Tells the conversation's members this user has read every event up to upTo. Best effort: no answer on success; a failure comes as an "error" event. */
  markRead(conversationId: string, upTo: number, signal?: AbortSignal): Promise<void> {
    return this.fire({ type: "read", conversation_id: conversationId, up_to: upTo }, signal);
  }

  /** Tells that every event of the conversation up to upTo reached this device. */
  markDelivered(conversationId: string, upTo: number, signal?: AbortSignal): Promise<void> {
    return this.fire({ type: "delivered", conversation_id: conversationId, up_to: upTo }, signal);
  }

  /** Sends a typing indicator: "start" when the user starts (and about every 3 s while typing), "stop" when done. */
  typing(conversationId: string, state: TypingState, signal?: AbortSignal): Promise<void> {
    return this.fire({ type: "typing", conversation_id: conversationId, state }, signal);
  }

  /** Asks for up to 100 users' presence; one entry per id, in the order asked. */
  async presence(userIds: string[], signal?: AbortSignal): Promise<PresenceEntry[]> {
    const answer = (await this.request({ type: "presence", user_ids: userIds }, signal)) as PresenceFrame;
    return answer.users;
  }

  /** An application-level round trip to the gateway. */
  async ping(signal?: AbortSignal): Promise<void> {
    await this.request({ type: "ping" }, signal);
  }

  // ---- connection loop ----

  private async run(): Promise<void> {
    for (let attempt = 0; !this.closed; attempt++) {
      this.setState({ state: "connecting" });
      let code = 0;
      let reason = "";
      let synced = false;
      try {
        const url = await this.endpoint();
        if (this.closed) break;
        ({ code, reason, synced } = await this.connect(url));
      } catch (e) {
        if (e instanceof ApiError && e.status === 401) {
          this.end(e); // the tokenSource says the session ended: log in again
          break;
        }
        reason = e instanceof Error ? e.message : String(e);
      }
      if (this.closed) break;
      const refreshable = code === 4401 && this.opts.tokenSource !== undefined;
      if (code !== 0 && !reconnectable(code) && !refreshable) {
        this.end(new CloseError(code, reason));
        break;
      }
      if (synced) attempt = 0; // the connection worked: come back soon, still jittered
      const delay = backoff(attempt, this.opts.minBackoffMs, this.opts.maxBackoffMs);
      this.setState({ state: "disconnected", retryInMs: delay, reason: code ? `${code} ${reason}` : reason });
      try {
        await this.sleep(delay);
      } catch {
        break; // closed
      }
    }
  }

  private async endpoint(): Promise<string> {
    const base = this.opts.discover ? await this.opts.discover() : this.opts.url!;
    const token = this.opts.tokenSource ? await this.opts.tokenSource() : this.opts.token!;
    const u = new URL(base);
    u.searchParams.set("token", token);
    u.searchParams.set("device", this.opts.deviceId);
    if (this.opts.platform) u.searchParams.set("platform", this.opts.platform);
    u.searchParams.set("frames", "lines"); // several frames to a message, one per line (onmessage splits)
    if (this.hasCursor) u.searchParams.set("cursor", String(this._cursor));
    return u.toString();
  }

  /** One connection: resolves when it ends, with the close code (1006 for a lost or timed-out one). */
  private connect(url: string): Promise<{ code: number; reason: string; synced: boolean }> {
    return new Promise((resolve) => {
      const ws = new this.WS(url);
      let finished = false;
      let keepalive: ReturnType<typeof setInterval> | undefined;
      const session: Session = {
        ws,
        synced: false,
        lastFrameAt: Date.now(),
        expiresAt: 0,
        end: (code, reason) => {
          if (finished) return;
          finished = true;
          clearTimeout(openTimer);
          clearInterval(keepalive);
          clearTimeout(session.renewTimer);
          const ignore = () => {}; // not null: node's ws package throws an error event nobody listens to
          ws.onopen = ws.onmessage = ws.onerror = ws.onclose = ignore;
          try {
            ws.close(1000, "client closing");
          } catch {
            // already closing
          }
          if (this.attempt === session) this.attempt = undefined;
          if (this.session === session) {
            this.session = undefined;
            const err = this.closed ? new ClosedError() : new DisconnectedError(`${code} ${reason}`);
            for (const ws of this.sends.values()) for (const w of ws) w.reject(err);
            this.sends.clear();
            for (const w of this.requests.values()) w.reject(err);
            this.requests.clear();
          }
          resolve({ code, reason, synced: session.synced });
        },
      };
      this.attempt = session;
      const openTimer = setTimeout(() => session.end(1006, "connect timeout"), this.opts.connectTimeoutMs);
      ws.onopen = () => {
        clearTimeout(openTimer);
        if (this.closed) return session.end(1000, "client closing");
        this.session = session;
        this._connects++;
        session.lastFrameAt = Date.now();
        this.setState({ state: "syncing" });
        for (const w of this.connectWaiters.splice(0)) w.resolve(session);
        if (this.opts.keepaliveMs > 0) keepalive = setInterval(() => this.keepalive(session), this.opts.keepaliveMs);
      };
      ws.onmessage = (ev) => {
        session.lastFrameAt = Date.now();
        // frames=lines: a message holds one or more frames, one per line, in order.
        if (typeof ev.data === "string") for (const frame of ev.data.split("\n")) this.onFrame(frame, session);
      };
      ws.onerror = () => {
        // Browsers follow an error with a close event; node 20's WebSocket may not, so an attempt
        // that never opened ends here, and an open one soon after unless its close comes first.
        if (this.session !== session) session.end(1006, "connection failed");
        else setTimeout(() => session.end(1006, "connection error"), 1000);
      };
      ws.onclose = (ev) => session.end(ev.code, ev.reason);
    });
  }

  /**
   * Renews the socket when four fifths of its token's remaining life have passed (validToken
   * refreshes in the last quarter). A token that did not move the expiry is tried again halfway
   * to it while over 2 s are left; if renewing fails, the server closes with 4401 at the expiry
   * and run reconnects with a fresh token.
   */
  private scheduleRenewal(session: Session, expiresAt: number | undefined): void {
    if (!this.opts.tokenSource || !expiresAt) return;
    const left = expiresAt - Date.now();
    let delay: number;
    if (expiresAt > session.expiresAt) {
      session.expiresAt = expiresAt;
      delay = (left * 4) / 5;
    } else if (left > 2000) {
      delay = left / 2;
    } else {
      return;
    }
    clearTimeout(session.renewTimer);
    session.renewTimer = setTimeout(() => void this.renew(session), Math.min(Math.max(0, delay), 2 ** 31 - 1)); // setTimeout's limit: 24.8 days
  }

  private async renew(session: Session): Promise<void> {
    if (this.session !== session) return;
    try {
      const token = await this.opts.tokenSource!();
      await this.request({ type: "auth", token });
    } catch (e) {
      this.emit("error", new Error(`natter: renewing the socket's token failed: ${e instanceof Error ? e.message : String(e)}`));
    }
  }

  private keepalive(session: Session): void {
    const idle = Date.now() - session.lastFrameAt;
    if (idle < this.opts.keepaliveMs) return;
    const before = session.lastFrameAt;
    this.ping().catch(() => {});
    setTimeout(() => {
      if (session.lastFrameAt === before) session.end(1006, `no frame for ${idle + this.opts.attemptTimeoutMs} ms, not even a pong`);
    }, this.opts.attemptTimeoutMs);
  }

  // ---- frames in ----

  private onFrame(data: string, session: Session): void {
    let f: ServerFrame;
    try {
      f = JSON.parse(data) as ServerFrame;
    } catch (e) {
      this.emit("error", new Error(`natter: bad frame from server: ${(e as Error).message}`));
      return;
    }
    switch (f.type) {
      case "ack": {
        const ws = this.sends.get(f.client_msg_id);
        this.sends.delete(f.client_msg_id);
        for (const w of ws ?? []) w.resolve(f);
        return;
      }
      case "error": {
        const err = new ProtocolError(f.code, f.message, f.ref);
        const sends = f.ref !== undefined ? this.sends.get(f.ref) : undefined;
        const req = f.ref !== undefined ? this.requests.get(f.ref) : undefined;
        if (sends) {
          this.sends.delete(f.ref!);
          for (const w of sends) w.reject(err);
        } else if (req) {
          this.requests.delete(f.ref!);
          req.reject(err);
        } else {
          this.emit("error", err);
        }
        return;
      }
      case "pong":
        if (f.ref !== undefined) this.takeRequest(f.ref)?.resolve(f);
        return;
      case "presence":
        if (f.ref !== undefined) this.takeRequest(f.ref)?.resolve(f);
        this.emit("presence", f);
        return;
      case "receipt":
        this.emit("receipt", f);
        return;
      case "request":
        this.emit("request", f);
        return;
      case "typing":
        this.emit("typing", f);
        return;
      case "welcome":
        this._userId = f.user_id;
        this.scheduleRenewal(session, f.expires_at);
        this.emit("welcome", f);
        return;
      case "auth":
        if (f.ref !== undefined) this.takeRequest(f.ref)?.resolve(f);
        this.scheduleRenewal(session, f.expires_at);
        return;
      case "message":
      case "member":
      case "edit":
      case "delete":
      case "hide":
      case "synced":
        this.timeline = this.timeline
          .then(() => this.onTimeline(f as ChatEvent | SyncedFrame, session))
          .catch((e) => this.emit("error", e instanceof Error ? e : new Error(String(e)))); // the chain must go on
        return;
    }
  }

  /** Timeline frames, one at a time in arrival order: listeners first, then the cursor moves and is saved. */
  private async onTimeline(f: ChatEvent | SyncedFrame, session: Session): Promise<void> {
    if (this.closed) return; // not handed over: the cursor stays before it
    if (f.type === "synced") {
      await this.advance(f.cursor); // the server's head is authoritative
      session.synced = true;
      if (this.session === session) this.setState({ state: "live" });
      this.emit("synced", f);
      this.readyWaiter.resolve();
      return;
    }
    if (this.hasCursor && f.seq <= this._cursor) return; // a repeat
    await this.emitAwait("event", f);
    if (f.type === "message") await this.emitAwait("message", f);
    else if (f.type === "member") await this.emitAwait("member", f);
    else await this.emitAwait("revision", f);
    // Only now: a cursor past an event the application never got would skip it for good.
    await this.advance(f.seq);
  }

  private async advance(cursor: number): Promise<void> {
    this._cursor = cursor;
    this.hasCursor = true;
    if (!this.opts.storage) return;
    try {
      await this.opts.storage.save(cursor);
    } catch (e) {
      this.emit("error", new Error(`natter: save cursor ${cursor}: ${e instanceof Error ? e.message : String(e)}`));
    }
  }

  // ---- frames out ----

  private async sendAttempt(clientMsgId: string, frame: string, signal?: AbortSignal): Promise<AckFrame> {
    const session = await this.waitConnected(signal);
    return new Promise<AckFrame>((resolve, reject) => {
      const waiters = this.sends.get(clientMsgId) ?? [];
      this.sends.set(clientMsgId, waiters);
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        const list = this.sends.get(clientMsgId);
        const i = list?.indexOf(waiter) ?? -1;
        if (i >= 0) list!.splice(i, 1);
        if (list && list.length === 0) this.sends.delete(clientMsgId);
      };
      const waiter: Waiter<AckFrame> = {
        resolve: (a) => (done(), resolve(a)),
        reject: (e) => (done(), reject(e)),
      };
      const onAbort = () => waiter.reject(new AbortError());
      const timer = setTimeout(() => waiter.reject(new Error(`natter: send ${clientMsgId}: no ack within ${this.opts.attemptTimeoutMs} ms`)), this.opts.attemptTimeoutMs);
      signal?.addEventListener("abort", onAbort);
      waiters.push(waiter);
      if (this.session !== session) return waiter.reject(new DisconnectedError("closed before the write"));
      try {
        session.ws.send(frame);
      } catch (e) {
        waiter.reject(new DisconnectedError(`write: ${e instanceof Error ? e.message : String(e)}`));
      }
    });
  }

  /** A frame with an answer (pong, presence) or an error, matched by id. */
  private async request(frame: ClientFrame, signal?: AbortSignal): Promise<ServerFrame> {
    this.mustBeStarted();
    const session = await this.waitConnected(signal);
    const id = `q${++this.nextRequest}`;
    return new Promise<ServerFrame>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        if (this.requests.get(id) === waiter) this.requests.delete(id);
      };
      const waiter: Waiter<ServerFrame> = {
        resolve: (f) => (done(), resolve(f)),
        reject: (e) => (done(), reject(e)),
      };
      const onAbort = () => waiter.reject(new AbortError());
      const timer = setTimeout(() => waiter.reject(new Error(`natter: ${frame.type}: no answer within ${this.opts.attemptTimeoutMs} ms`)), this.opts.attemptTimeoutMs);
      signal?.addEventListener("abort", onAbort);
      this.requests.set(id, waiter);
      if (this.session !== session) return waiter.reject(new DisconnectedError("closed before the write"));
      try {
        session.ws.send(JSON.stringify({ ...frame, id }));
      } catch (e) {
        waiter.reject(new DisconnectedError(`write: ${e instanceof Error ? e.message : String(e)}`));
      }
    });
  }

  /** A frame without an answer on success; its error, if any, comes as an "error" event. */
  private async fire(frame: ClientFrame, signal?: AbortSignal): Promise<void> {
    this.mustBeStarted();
    const session = await this.waitConnected(signal);
    session.ws.send(JSON.stringify({ ...frame, id: `m${++this.nextRequest}` }));
  }

  private mustBeStarted(): void {
    if (!this.started && !this.closed) throw new Error("natter: call start() first");
  }

  private takeRequest(id: string): Waiter<ServerFrame> | undefined {
    const w = this.requests.get(id);
    this.requests.delete(id);
    return w;
  }

  private waitConnected(signal?: AbortSignal): Promise<Session> {
    if (this.closed) return Promise.reject(this._error ?? new ClosedError());
    if (signal?.aborted) return Promise.reject(new AbortError());
    if (this.session) return Promise.resolve(this.session);
    return new Promise<Session>((resolve, reject) => {
      const onAbort = () => {
        const i = this.connectWaiters.indexOf(waiter);
        if (i >= 0) this.connectWaiters.splice(i, 1);
        reject(new AbortError());
      };
      const waiter: Waiter<Session> = {
        resolve: (s) => (signal?.removeEventListener("abort", onAbort), resolve(s)),
        reject: (e) => (signal?.removeEventListener("abort", onAbort), reject(e)),
      };
      signal?.addEventListener("abort", onAbort);
      this.connectWaiters.push(waiter);
    });
  }

  /** Waits ms; rejects with ClosedError when the client closes, AbortError when the signal fires. */
  private sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (this.closed) return Promise.reject(this._error ?? new ClosedError());
    if (signal?.aborted) return Promise.reject(new AbortError());
    return new Promise<void>((resolve, reject) => {
      const finish = (err?: Error) => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        this.sleepers.delete(wake);
        if (err) reject(err);
        else resolve();
      };
      const wake = () => finish(this._error ?? new ClosedError()); // close() calls it
      const timer = setTimeout(() => finish(), ms);
      const onAbort = () => finish(new AbortError());
      signal?.addEventListener("abort", onAbort);
      this.sleepers.add(wake);
    });
  }

  // ---- state and events ----

  private end(err: Error | undefined): void {
    if (this.closed) return;
    this.closed = true;
    this._error = err;
    const why = err ?? new ClosedError();
    this.attempt?.end(1000, "client closing");
    for (const w of this.connectWaiters.splice(0)) w.reject(why);
    for (const wake of [...this.sleepers]) wake();
    this.readyWaiter.reject(why);
    this.setState({ state: "closed", reason: err?.message });
  }

  private setState(change: StateChange): void {
    if (this._state === "closed") return;
    this._state = change.state;
    this.emit("state", change);
  }

  private emit<K extends keyof ClientEventMap>(type: K, value: ClientEventMap[K]): void {
    for (const l of this.listeners.get(type) ?? []) {
      try {
        const r = (l as Listener<ClientEventMap[K]>)(value);
        if (r && typeof (r as Promise<void>).catch === "function") (r as Promise<void>).catch((e) => this.listenerError(e, type));
      } catch (e) {
        this.listenerError(e, type);
      }
    }
  }

  private async emitAwait<K extends keyof ClientEventMap>(type: K, value: ClientEventMap[K]): Promise<void> {
    if (!timelineListeners.has(type)) return this.emit(type, value);
    for (const l of [...(this.listeners.get(type) ?? [])]) {
      try {
        await (l as Listener<ClientEventMap[K]>)(value);
      } catch (e) {
        this.listenerError(e, type);
      }
    }
  }

  private listenerError(err: unknown, type: keyof ClientEventMap): void {
    if (this.opts.onListenerError) this.opts.onListenerError(err, type);
    else console.error(`natter: a "${type}" listener threw:`, err);
  }
}
