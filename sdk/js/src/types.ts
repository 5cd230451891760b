// Wire types: every WebSocket frame of protocol version 1 (docs/protocol.md, docs/asyncapi.yaml)
// and every HTTP API object (docs/api.md, docs/openapi.yaml). Field names are the wire's.
//
// Seqs are JSON numbers up to 2^64-1 on the wire; this SDK holds them as JavaScript numbers, exact
// up to 2^53-1 (Number.MAX_SAFE_INTEGER), which a stream reaches after 9 * 10^15 events.

/** Error codes the gateway answers a frame with (docs/protocol.md#error-codes). */
export type ErrorCode =
  | "invalid_json"
  | "invalid_utf8"
  | "invalid_frame"
  | "unknown_type"
  | "frame_too_large"
  | "text_empty"
  | "text_too_long"
  | "not_member"
  | "rate_limited"
  | "unauthorized"
  | "unavailable"
  | "internal"
  | "message_not_found"
  | "not_allowed"
  | "edit_expired"
  | "message_deleted";

/** natter's WebSocket close codes: 4000-4099 reconnect, 4400-4499 do not (docs/protocol.md#close-codes). */
export const CloseCodes = {
  shutdown: 4000,
  slowConsumer: 4001,
  heartbeatTimeout: 4002,
  resync: 4003,
  internal: 4004,
  policy: 4400,
  unauthorized: 4401,
  sessionEnded: 4403,
  replaced: 4409,
} as const;

// ---- client -> server ----

export interface SendFrame {
  type: "send";
  id?: string;
  client_msg_id: string;
  conversation_id: string;
  text: string;
  /**
   * true when this client_msg_id may have been sent before (every retry, every id not minted just
   * now): the gateway then also looks it up in the store and the stream, past JetStream's duplicate window.
   */
  resend?: boolean;
}

/** Replaces the text of your message target_seq (docs/protocol.md#edits-and-deletes). */
export interface EditFrame {
  type: "edit";
  id?: string;
  client_msg_id: string;
  conversation_id: string;
  target_seq: number;
  text: string;
  resend?: boolean;
}

/** Deletes message target_seq for everyone (the default) or for you ("me"). */
export interface DeleteFrame {
  type: "delete";
  id?: string;
  client_msg_id: string;
  conversation_id: string;
  target_seq: number;
  for?: "everyone" | "me";
  resend?: boolean;
}

export interface PingFrame {
  type: "ping";
  id?: string;
}

export interface MarkFrame {
  type: "read" | "delivered";
  id?: string;
  conversation_id: string;
  up_to: number;
}

export type TypingState = "start" | "stop";

export interface TypingRequestFrame {
  type: "typing";
  id?: string;
  conversation_id: string;
  state: TypingState;
}

export interface PresenceRequestFrame {
  type: "presence";
  id?: string;
  user_ids: string[];
}

/** A fresh access token of the socket's own session: the socket then lives until its expiry. */
export interface AuthRequestFrame {
  type: "auth";
  id?: string;
  token: string;
}

/** Any frame a client sends. */
export type ClientFrame = SendFrame | EditFrame | DeleteFrame | PingFrame | MarkFrame | TypingRequestFrame | PresenceRequestFrame | AuthRequestFrame;

// ---- server -> client ----

export interface WelcomeFrame {
  type: "welcome";
  protocol: number;
  user_id: string;
  device_id: string;
  session_id: string;
  heartbeat_ms: number;
  syncing: boolean;
  /** Unix ms: the socket closes with 4401 then unless an auth frame renews it. */
  expires_at: number;
  /** How long after sending a message its sender may edit it, in ms; 0: no limit. Absent from older servers. */
  edit_window_ms?: number;
}

/** Answers an auth frame: the socket now lives until expires_at (Unix ms). */
export interface AuthFrame {
  type: "auth";
  ref?: string;
  expires_at: number;
}

export interface AckFrame {
  type: "ack";
  ref?: string;
  client_msg_id: string;
  conversation_id: string;
  message_id: string;
  seq: number;
  sent_at: number;
  /** true when the send was a retry of a message that already exists. */
  duplicate?: boolean;
}

/** The HTTP API's answer to an edit or delete (PATCH / DELETE /v1/conversations/:id/messages/:seq): the ack of its event. */
export type MessageAck = Omit<AckFrame, "type" | "ref">;

/**
 * A text message of one of the user's conversations (also a history entry), as it is now: once
 * edited it has edited_at, once deleted (for everyone, or by you for yourself) deleted and no text.
 */
export interface MessageEvent {
  type: "message";
  seq: number;
  conversation_id: string;
  message_id: string;
  sender_id: string;
  sender_device: string;
  client_msg_id: string;
  /** Absent once deleted. */
  text?: string;
  sent_at: number;
  edited_at?: number;
  deleted?: true;
}

/** The message an edit, delete or hide changes. */
export interface Target {
  seq: number;
  message_id: string;
}

/**
 * An edit, delete (for everyone) or hide (your delete for yourself) of the message target, with
 * the state it leaves it in. Apply it unless the target is deleted already: a deletion is final
 * (MessageView does this).
 */
export interface RevisionEvent {
  type: "edit" | "delete" | "hide";
  seq: number;
  conversation_id: string;
  message_id: string;
  sender_id: string;
  sender_device?: string;
  client_msg_id?: string;
  text?: string;
  sent_at: number;
  edited_at?: number;
  deleted?: true;
  target: Target;
}

/** Membership actions; a client ignores one it does not know (servers may add more). */
export type MemberAction =
  | "created"
  | "added"
  | "removed"
  | "left"
  | "renamed"
  | "invited"
  | "accepted"
  | "declined"
  | "promoted"
  | "demoted"
  | "owner_changed"
  | "deleted";

export interface MemberChange {
  action: MemberAction;
  user_ids?: string[];
  name?: string;
  /** The new owner: on owner_changed, and on left or removed when the owner leaves. */
  owner?: string;
}

/** A group membership change, ordered with the group's messages (also a history entry). */
export interface MemberEvent {
  type: "member";
  seq: number;
  conversation_id: string;
  message_id: string;
  sender_id: string;
  sent_at: number;
  member: MemberChange;
}

/** A timeline event: what moves the cursor, what history pages hold. */
export type ChatEvent = MessageEvent | MemberEvent | RevisionEvent;

/**
 * invitationChange tells whether e changes userId's invitation to a group: "invited",
 * "declined" (declined or withdrawn), "accepted", or undefined. An invitee's devices get these
 * member events live although the invitee sees nothing else of the group.
 */
export function invitationChange(e: ChatEvent, userId: string): "invited" | "declined" | "accepted" | undefined {
  if (e.type !== "member") return undefined;
  const a = e.member.action;
  if ((a === "invited" || a === "declined" || a === "accepted") && e.member.user_ids?.includes(userId)) return a;
  return undefined;
}

export interface SyncedFrame {
  type: "synced";
  cursor: number;
}

export interface ErrorFrame {
  type: "error";
  code: ErrorCode;
  message: string;
  ref?: string;
}

export interface PongFrame {
  type: "pong";
  ref?: string;
}

export type ReceiptKind = "read" | "delivered";

export interface ReceiptFrame {
  type: "receipt";
  conversation_id: string;
  user_id: string;
  device_id: string;
  kind: ReceiptKind;
  up_to: number;
}

export interface TypingFrame {
  type: "typing";
  conversation_id: string;
  user_id: string;
  state: TypingState;
  expires_in_ms: number;
}

export type RequestState = "open" | "accepted" | "ignored";

/**
 * A direct request made to or by this user, or its answer, live (no seq, not replayed by sync:
 * after a connect, read requests from the conversation list). "open" reaches both users' devices
 * (not a recipient across a block), "accepted" both, "ignored" the recipient's only.
 */
export interface RequestFrame {
  type: "request";
  conversation_id: string;
  /** Who asked. */
  from: string;
  /** Who is asked. */
  to: string;
  state: RequestState;
  /** Unix ms. */
  at: number;
}

export type PresenceStatus = "online" | "offline" | "unknown";

export interface PresenceEntry {
  user_id: string;
  status: PresenceStatus;
  /** Unix ms; absent when unknown or never recorded. */
  last_seen?: number;
}

export interface PresenceFrame {
  type: "presence";
  /** The question's id; absent on a pushed change. */
  ref?: string;
  users: PresenceEntry[];
}

/** Any frame the server sends. */
export type ServerFrame =
  | WelcomeFrame
  | AckFrame
  | MessageEvent
  | MemberEvent
  | RevisionEvent
  | SyncedFrame
  | ErrorFrame
  | PongFrame
  | ReceiptFrame
  | TypingFrame
  | PresenceFrame
  | RequestFrame
  | AuthFrame;

// ---- HTTP API objects ----

export interface User {
  id: string;
  handle: string;
  display_name: string;
  created_at: string;
}

/** The answer to sign-up, login and POST /v1/token/refresh. */
export interface Session {
  user: User;
  token: string;
  expires_at: string;
  refresh_token: string;
  refresh_expires_at: string;
  session_id: string;
}

export interface Conversation {
  id: string;
  kind: "direct" | "group";
  name: string;
  created_at: string;
  members?: string[];
  /** The seq of the event that deleted the group; absent while it exists. */
  deleted_seq?: number;
  /** Set while a direct conversation waits for its recipient's consent. */
  request?: DirectRequest;
}

/**
 * A direct conversation `from` asked `to` into. Until `to` accepts, `from`'s messages are held
 * from `to`; `ignored` (shown to `to` only) keeps it a request, out of the request list.
 */
export interface DirectRequest {
  from: string;
  to: string;
  ignored?: boolean;
}

/** A user the caller blocked. */
export interface Block {
  user_id: string;
  blocked_at: string;
}

/** Who may see the caller's online status and last seen. */
export type PresenceVisibility = "everyone" | "contacts" | "nobody";

/** An entry of GET /v1/conversations. */
export interface ConversationSummary extends Conversation {
  last_message: ChatEvent | null;
  read_seq: number;
  unread: number;
}

/** A group role: the owner and admins manage the group (docs/api.md, "Roles"). */
export type Role = "owner" | "admin" | "member";

export interface Member {
  user_id: string;
  role: Role;
  joined_seq: number;
}

/** A pending invitation in a group's detail. */
export interface Invitee {
  user_id: string;
  invited_by: string;
  invited_seq: number;
}

export interface ConversationDetail {
  conversation: Conversation;
  members: Member[];
  /** Pending invitations; absent from servers older than invitations. */
  invitations?: Invitee[];
}

/** One of the caller's pending group invitations (GET /v1/invitations). */
export interface Invitation {
  conversation: Conversation;
  invited_by: string;
  invited_seq: number;
}

/** The answer to a group change: the conversation and the seq of its member event. */
export interface GroupChange {
  conversation: Conversation;
  seq: number;
}

export interface HistoryPage {
  /** Newest first. */
  messages: ChatEvent[];
  /** Pass as `before` for the next older page; 0 when there is nothing older. */
  older: number;
  /** Pass as `after` for the next newer page; 0 when there is nothing newer. */
  newer: number;
}

export interface HistoryQuery {
  before?: number;
  after?: number;
  around?: number;
  aroundId?: string;
  /** 1-200, default 50. */
  limit?: number;
}

export interface MemberReceipts {
  user_id: string;
  delivered: number;
  read: number;
}

export interface Receipts {
  members: MemberReceipts[];
  delivered_to_all: number;
  read_by_all: number;
}

export interface GatewayInfo {
  id: string;
  url: string;
  connections: number;
}

export interface Discovery {
  gateway: GatewayInfo;
  gateways: GatewayInfo[];
}
