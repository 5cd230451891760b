import type { NatterClient } from "./client.js";
import type { TypingFrame } from "./types.js";

export interface TypingTrackerOptions {
  /** Called when the set of users typing in a conversation changes. */
  onChange?: (conversationId: string, userIds: string[]) => void;
  /** A start is repeated at most this often while the user keeps typing. Default 3000 ms (docs/protocol.md). */
  repeatMs?: number;
  /** A stop is sent after this long without a keystroke. Default 5000 ms. */
  idleMs?: number;
}

/**
 * Typing indicators both ways, as docs/protocol.md#typing-indicators asks: keystroke() sends
 * "start" at most every repeatMs and "stop" after idleMs without one (or at once with stopped());
 * incoming indicators are kept per conversation and lapse after their expires_in_ms.
 */
export class TypingTracker {
  private readonly typing = new Map<string, Map<string, ReturnType<typeof setTimeout>>>(); // conversation -> user -> expiry
  private readonly outgoing = new Map<string, { lastStart: number; idle: ReturnType<typeof setTimeout> }>();
  private readonly off: () => void;
  private readonly repeatMs: number;
  private readonly idleMs: number;

  constructor(
    private readonly client: NatterClient,
    private readonly opts: TypingTrackerOptions = {},
  ) {
    this.repeatMs = opts.repeatMs ?? 3000;
    this.idleMs = opts.idleMs ?? 5000;
    this.off = client.on("typing", (f) => this.received(f));
  }

  /** The users typing in a conversation now. */
  typingIn(conversationId: string): string[] {
    return [...(this.typing.get(conversationId)?.keys() ?? [])];
  }

  /** The local user typed in a conversation. */
  keystroke(conversationId: string): void {
    const now = Date.now();
    const out = this.outgoing.get(conversationId);
    if (out) clearTimeout(out.idle);
    const idle = setTimeout(() => this.stopped(conversationId), this.idleMs);
    if (!out || now - out.lastStart >= this.repeatMs) {
      this.outgoing.set(conversationId, { lastStart: now, idle });
      this.client.typing(conversationId, "start").catch(() => {}); // best effort
    } else {
      out.idle = idle;
    }
  }

  /** The local user stopped typing (sent the message, cleared the box, left): sends "stop" if a start went out. */
  stopped(conversationId: string): void {
    const out = this.outgoing.get(conversationId);
    if (!out) return;
    clearTimeout(out.idle);
    this.outgoing.delete(conversationId);
    this.client.typing(conversationId, "stop").catch(() => {});
  }

  /** Stops listening and clears every timer. */
  dispose(): void {
    this.off();
    for (const users of this.typing.values()) for (const t of users.values()) clearTimeout(t);
    this.typing.clear();
    for (const out of this.outgoing.values()) clearTimeout(out.idle);
    this.outgoing.clear();
  }

  private received(f: TypingFrame): void {
    let users = this.typing.get(f.conversation_id);
    const had = users?.has(f.user_id) ?? false;
    if (users?.has(f.user_id)) clearTimeout(users.get(f.user_id));
    if (f.state === "start") {
      if (!users) this.typing.set(f.conversation_id, (users = new Map()));
      users.set(
        f.user_id,
        setTimeout(() => this.lapse(f.conversation_id, f.user_id), f.expires_in_ms > 0 ? f.expires_in_ms : 6000),
      );
      if (!had) this.changed(f.conversation_id);
    } else if (had) {
      this.lapse(f.conversation_id, f.user_id);
    }
  }

  private lapse(conversationId: string, userId: string): void {
    const users = this.typing.get(conversationId);
    if (!users?.delete(userId)) return;
    if (users.size === 0) this.typing.delete(conversationId);
    this.changed(conversationId);
  }

  private changed(conversationId: string): void {
    this.opts.onChange?.(conversationId, this.typingIn(conversationId));
  }
}
