import { ApiError } from "./errors.js";
import type {
  Block,
  ChatEvent,
  Conversation,
  ConversationDetail,
  ConversationSummary,
  Discovery,
  GroupChange,
  HistoryPage,
  HistoryQuery,
  Invitation,
  MessageAck,
  PresenceVisibility,
  Receipts,
  Session,
  User,
} from "./types.js";

export interface ApiOptions {
  /** The HTTP API's base URL, e.g. "http://127.0.0.1:8080" (no trailing /v1). "" means the page's own origin. */
  baseUrl: string;
  /** A fixed access token for authenticated calls; signup, login and useSession set it. */
  token?: string;
  /** fetch to use; defaults to the global one (browsers, node 18+). */
  fetch?: typeof fetch;
  /**
   * Where a session's tokens are kept between runs (and, in browsers, shared by tabs): save gets
   * every new session (login, sign-up, each refresh, which rotates the refresh token); load, if
   * given, is read before each refresh, so that a refresh another holder (a tab) made is taken
   * over instead of repeated with a dead refresh token (which would end the session).
   */
  sessionStore?: { load?(): Session | undefined; save(s: Session): void };
  /**
   * Runs each refresh exclusively among all holders of the session: in browsers,
   * `(f) => navigator.locks.request("natter-refresh", f)`. Default: within this object only.
   */
  refreshLock?: <T>(f: () => Promise<T>) => Promise<T>;
}

/** The part of an access token's life left when it is refreshed. */
const RENEW_FRACTION = 0.25;

/** The HTTP API (docs/api.md): accounts, conversations, groups, history, receipts, discovery. */
export class NatterApi {
  /** The access token sent as `Authorization: Bearer`; signup, login, useSession and refresh set it. */
  token?: string;
  /** The session whose tokens this object keeps fresh (after signup, login or useSession). */
  session?: Session;
  readonly baseUrl: string;
  private readonly fetchFn: typeof fetch;
  private readonly store?: ApiOptions["sessionStore"];
  private readonly lock: <T>(f: () => Promise<T>) => Promise<T>;
  private renewAt = 0; // ms: from then on validToken refreshes
  private refreshing?: Promise<string>;

  constructor(opts: ApiOptions) {
    this.baseUrl = opts.baseUrl.replace(/\/+$/, "");
    this.token = opts.token;
    const f = opts.fetch ?? globalThis.fetch;
    if (!f) throw new Error("natter: no fetch here; pass ApiOptions.fetch");
    this.fetchFn = f.bind(globalThis);
    this.store = opts.sessionStore;
    this.lock = opts.refreshLock ?? ((f) => f());
  }

  /** POST /v1/signup: creates an account, logs it in and keeps its session. */
  async signup(handle: string, password: string, displayName?: string): Promise<Session> {
    const s = await this.request<Session>("POST", "/v1/signup", { handle, password, display_name: displayName }, false);
    this.keep(s);
    return s;
  }

  /** POST /v1/login: keeps the session. */
  async login(handle: string, password: string): Promise<Session> {
    const s = await this.request<Session>("POST", "/v1/login", { handle, password }, false);
    this.keep(s);
    return s;
  }

  /**
   * Takes over a session kept from earlier (sessionStore): authenticated calls use its access
   * token and refresh it when a quarter of its life is left.
   */
  useSession(s: Session): void {
    this.session = s;
    this.token = s.token;
    const expires = Date.parse(s.expires_at);
    this.renewAt = expires - Math.max(0, expires - Date.now()) * RENEW_FRACTION;
  }

  /**
   * An access token good for a while: the session's, refreshed first when a quarter of its life
   * is left (one refresh at a time). Without a session, the fixed token. A session that has ended
   * throws ApiError 401 `session_ended`: log in again. Use it as ClientOptions.tokenSource.
   */
  async validToken(): Promise<string> {
    if (!this.session) {
      if (this.token) return this.token;
      throw new ApiError(401, "unauthorized", "no token: sign up or log in first");
    }
    if (Date.now() < this.renewAt) return this.session.token;
    return this.refresh();
  }

  /**
   * POST /v1/token/refresh: new tokens for the session; the refresh token rotates (the old one is
   * dead), and sessionStore.save gets the new session. Concurrent calls share one refresh.
   */
  refresh(): Promise<string> {
    this.refreshing ??= this.lock(async () => {
      const stored = this.store?.load?.();
      if (stored && this.session && stored.session_id === this.session.session_id && stored.refresh_token !== this.session.refresh_token) {
        this.useSession(stored); // another holder refreshed: its tokens are the live ones
        if (Date.now() < this.renewAt) return stored.token;
      }
      const refreshToken = this.session?.refresh_token;
      if (!refreshToken) throw new ApiError(401, "session_ended", "no refresh token: log in");
      const s = await this.request<Session>("POST", "/v1/token/refresh", { refresh_token: refreshToken }, false);
      this.keep(s);
      return s.token;
    }).finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private keep(s: Session): void {
    this.useSession(s);
    this.store?.save(s);
  }

  /** POST /v1/logout: forgets the device and its push token, and ends the session: its tokens are refused from then on. */
  async logout(deviceId: string): Promise<void> {
    await this.request("POST", "/v1/logout", { device_id: deviceId });
    this.session = this.token = undefined;
  }

  /** GET /v1/discovery: the least loaded live gateway, and all of them. */
  discovery(): Promise<Discovery> {
    return this.request("GET", "/v1/discovery", undefined, false);
  }

  /** The WebSocket URL of the gateway discovery names (for ClientOptions.discover). */
  async gatewayUrl(): Promise<string> {
    return (await this.discovery()).gateway.url;
  }

  async me(): Promise<User> {
    return (await this.request<{ user: User }>("GET", "/v1/me")).user;
  }

  async updateMe(change: { displayName?: string }): Promise<User> {
    return (await this.request<{ user: User }>("PATCH", "/v1/me", { display_name: change.displayName })).user;
  }

  /** GET /v1/users?handle=: a user by handle (ASCII case ignored). */
  async userByHandle(handle: string): Promise<User> {
    return (await this.request<{ user: User }>("GET", `/v1/users?handle=${encodeURIComponent(handle)}`)).user;
  }

  async user(id: string): Promise<User> {
    return (await this.request<{ user: User }>("GET", `/v1/users/${encodeURIComponent(id)}`)).user;
  }

  /** POST /v1/conversations/direct: opens (or finds) the direct conversation with a user. */
  async openDirect(userId: string): Promise<Conversation> {
    return (await this.request<{ conversation: Conversation }>("POST", "/v1/conversations/direct", { user_id: userId })).conversation;
  }

  /** GET /v1/conversations: current conversations with last message, read_seq and unread. */
  async conversations(): Promise<ConversationSummary[]> {
    return (await this.request<{ conversations: ConversationSummary[] }>("GET", "/v1/conversations")).conversations;
  }

  /** GET /v1/conversations/:id: the conversation and its members with roles. */
  conversation(id: string): Promise<ConversationDetail> {
    return this.request("GET", `/v1/conversations/${encodeURIComponent(id)}`);
  }

  /** GET /v1/conversations/:id/messages: one page, newest first. */
  history(conversationId: string, q: HistoryQuery = {}): Promise<HistoryPage> {
    const p = new URLSearchParams();
    if (q.before !== undefined) p.set("before", String(q.before));
    if (q.after !== undefined) p.set("after", String(q.after));
    if (q.around !== undefined) p.set("around", String(q.around));
    if (q.aroundId !== undefined) p.set("around_id", q.aroundId);
    if (q.limit !== undefined) p.set("limit", String(q.limit));
    const qs = p.toString();
    return this.request("GET", `/v1/conversations/${encodeURIComponent(conversationId)}/messages${qs ? "?" + qs : ""}`);
  }

  /**
   * PATCH /v1/conversations/:id/messages/:seq: replaces the text of your message at seq (within
   * the server's edit window). clientMsgId makes a retry one edit: pass the same id again.
   */
  editMessage(conversationId: string, seq: number, text: string, clientMsgId: string): Promise<MessageAck> {
    return this.request("PATCH", `${this.conv(conversationId)}/messages/${seq}`, { client_msg_id: clientMsgId, text });
  }

  /**
   * DELETE /v1/conversations/:id/messages/:seq: deletes the message for everyone (its sender, or
   * an admin of its group) or, with forMe, for the caller only. Idempotent by clientMsgId.
   */
  deleteMessage(conversationId: string, seq: number, clientMsgId: string, opts: { forMe?: boolean } = {}): Promise<MessageAck> {
    const p = new URLSearchParams({ client_msg_id: clientMsgId });
    if (opts.forMe) p.set("for", "me");
    return this.request("DELETE", `${this.conv(conversationId)}/messages/${seq}?${p}`);
  }

  /**
   * Pages of a conversation from the newest (or from just below `before`) back to the first,
   * `limit` events each, newest first within a page. Stop iterating to stop fetching.
   */
  async *olderPages(conversationId: string, opts: { before?: number; limit?: number } = {}): AsyncGenerator<ChatEvent[]> {
    let before = opts.before;
    for (;;) {
      const page = await this.history(conversationId, { before, limit: opts.limit });
      if (page.messages.length > 0) yield page.messages;
      if (page.older === 0) return;
      before = page.older;
    }
  }

  /** POST /v1/groups: creates a group owned by the caller, who is its only member; memberIds are invited. */
  createGroup(name: string, memberIds: string[] = []): Promise<GroupChange> {
    return this.request("POST", "/v1/groups", { name, member_ids: memberIds });
  }

  /** The owner or an admin renames the group. */
  renameGroup(id: string, name: string): Promise<GroupChange> {
    return this.request("PATCH", this.conv(id), { name });
  }

  /** The owner or an admin invites users; each joins by accepting. */
  inviteMembers(id: string, userIds: string[]): Promise<GroupChange> {
    return this.request("POST", `${this.conv(id)}/members`, { user_ids: userIds });
  }

  /** @deprecated Adding is inviting now: the same call as inviteMembers. */
  addMembers(id: string, userIds: string[]): Promise<GroupChange> {
    return this.inviteMembers(id, userIds);
  }

  /** The owner removes anyone, an admin plain members; on an invitee it withdraws the invitation; naming yourself leaves. */
  removeMember(id: string, userId: string): Promise<GroupChange> {
    return this.request("DELETE", `${this.conv(id)}/members/${encodeURIComponent(userId)}`);
  }

  /** Leaves; when the owner leaves, the longest-standing admin (else member) becomes the owner. */
  leaveGroup(id: string): Promise<GroupChange> {
    return this.request("POST", `${this.conv(id)}/leave`);
  }

  /** "admin" promotes a member (owner or admin), "member" demotes an admin (owner). */
  setRole(id: string, userId: string, role: "admin" | "member"): Promise<GroupChange> {
    return this.request("PUT", `${this.conv(id)}/members/${encodeURIComponent(userId)}/role`, { role });
  }

  /** The owner hands the group to another member and becomes an admin. */
  transferOwnership(id: string, userId: string): Promise<GroupChange> {
    return this.request("POST", `${this.conv(id)}/owner`, { user_id: userId });
  }

  /** The owner deletes the group: every member is told, nobody can send any more, the history stays readable. */
  deleteGroup(id: string): Promise<GroupChange> {
    return this.request("DELETE", this.conv(id));
  }

  /** GET /v1/invitations: the caller's pending group invitations, newest first. */
  async invitations(): Promise<Invitation[]> {
    return (await this.request<{ invitations: Invitation[] }>("GET", "/v1/invitations")).invitations;
  }

  /** Accepts an invitation: the caller joins and sees the group from here on. */
  acceptInvitation(id: string): Promise<GroupChange> {
    return this.request("POST", `${this.conv(id)}/accept`);
  }

  /** Declines an invitation. */
  async declineInvitation(id: string): Promise<number> {
    return (await this.request<{ seq: number }>("POST", `${this.conv(id)}/decline`)).seq;
  }

  private conv(id: string): string {
    return `/v1/conversations/${encodeURIComponent(id)}`;
  }

  /** GET /v1/conversations/:id/receipts: every member's delivered and read watermarks. */
  receipts(id: string): Promise<Receipts> {
    return this.request("GET", `/v1/conversations/${encodeURIComponent(id)}/receipts`);
  }

  /** PUT /v1/conversations/:id/mute. */
  async mute(id: string, muted: boolean): Promise<void> {
    await this.request("PUT", `/v1/conversations/${encodeURIComponent(id)}/mute`, { muted });
  }

  /** POST /v1/conversations/:id/accept: accept a direct conversation you were asked into. */
  async acceptRequest(id: string): Promise<Conversation> {
    return (await this.request<{ conversation: Conversation }>("POST", `/v1/conversations/${encodeURIComponent(id)}/accept`)).conversation;
  }

  /** POST /v1/conversations/:id/ignore: it stays a request; the requester is not told. */
  async ignoreRequest(id: string): Promise<void> {
    await this.request("POST", `/v1/conversations/${encodeURIComponent(id)}/ignore`);
  }

  /** PUT /v1/blocks/:user: nothing of theirs reaches you, no presence either way. */
  async block(userId: string): Promise<void> {
    await this.request("PUT", `/v1/blocks/${encodeURIComponent(userId)}`);
  }

  /** DELETE /v1/blocks/:user. */
  async unblock(userId: string): Promise<void> {
    await this.request("DELETE", `/v1/blocks/${encodeURIComponent(userId)}`);
  }

  /** GET /v1/blocks: the users you blocked, oldest block first. */
  async blocks(): Promise<Block[]> {
    return (await this.request<{ blocks: Block[] }>("GET", "/v1/blocks")).blocks;
  }

  /** GET /v1/me/privacy: who may see your presence. */
  async presenceVisibility(): Promise<PresenceVisibility> {
    return (await this.request<{ presence: PresenceVisibility }>("GET", "/v1/me/privacy")).presence;
  }

  /** PUT /v1/me/privacy. */
  async setPresenceVisibility(presence: PresenceVisibility): Promise<void> {
    await this.request("PUT", "/v1/me/privacy", { presence });
  }

  /** One call: JSON in, JSON out; an error answer throws ApiError. */
  async request<T>(method: string, path: string, body?: unknown, auth = true): Promise<T> {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (auth) headers["Authorization"] = `Bearer ${await this.validToken()}`;
    const res = await this.fetchFn(this.baseUrl + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) {
      let code = "http_" + res.status;
      let message = text.slice(0, 200);
      try {
        const e = JSON.parse(text) as { error?: { code?: string; message?: string } };
        if (e.error?.code) code = e.error.code;
        if (e.error?.message) message = e.error.message;
      } catch {
        // not JSON: keep the status and the start of the body
      }
      const ra = res.headers.get("Retry-After");
      throw new ApiError(res.status, code, message, ra === null ? undefined : Number(ra));
    }
    return (text ? JSON.parse(text) : undefined) as T;
  }
}
