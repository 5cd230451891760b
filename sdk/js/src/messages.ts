import type { ChatEvent } from "./types.js";

/** What a device shows of one message: its latest text, or a tombstone. */
export interface ShownMessage {
  seq: number;
  conversation_id: string;
  sender_id?: string;
  /** Empty once deleted. */
  text: string;
  sent_at?: number;
  edited_at?: number;
  deleted: boolean;
}

/**
 * A device's view of the messages it received, by seq: fold every timeline event into it, in
 * arrival order (live and synced alike), and it ends where the server's history does. A message
 * is added as it is now (edited or deleted already if it was); an edit replaces its target's text;
 * a delete or hide makes its target a tombstone. A deletion is final. (The Go SDK's
 * client.Messages is the same fold.)
 */
export class MessageView {
  private readonly messages = new Map<number, ShownMessage>();

  /** Folds one event in; returns the message it added or changed, if any. */
  apply(ev: ChatEvent): ShownMessage | undefined {
    if (ev.type === "message") {
      const old = this.messages.get(ev.seq);
      if (old?.deleted) return undefined;
      const m: ShownMessage = {
        seq: ev.seq, conversation_id: ev.conversation_id, sender_id: ev.sender_id, text: ev.text ?? "",
        sent_at: ev.sent_at, edited_at: ev.edited_at, deleted: ev.deleted === true,
      };
      this.messages.set(ev.seq, m);
      return m;
    }
    if (ev.type === "member") return undefined;
    const old = this.messages.get(ev.target.seq) ?? { seq: ev.target.seq, conversation_id: ev.conversation_id, text: "", deleted: false };
    if (old.deleted) return undefined;
    const m: ShownMessage = ev.deleted
      ? { ...old, text: "", deleted: true }
      : { ...old, text: ev.text ?? "", edited_at: ev.edited_at };
    this.messages.set(m.seq, m);
    return m;
  }

  /** The message at seq, if the view has it. */
  get(seq: number): ShownMessage | undefined {
    return this.messages.get(seq);
  }
}
