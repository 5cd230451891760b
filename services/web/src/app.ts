// The web client: one page, no framework. State lives in App; the DOM is updated in place.
// Everything the server sends reaches the page through textContent, never as HTML.

import {
  ApiError,
  CloseError,
  IndexedDBCursorStore,
  MemoryCursorStore,
  NatterApi,
  NatterClient,
  ProtocolError,
  TypingTracker,
  invitationChange,
  ulid,
  type AckFrame,
  type CursorStore,
  type StateChange,
  type ChatEvent,
  type ConversationSummary,
  type Invitation,
  type Invitee,
  type Member,
  type PresenceEntry,
  type ReceiptFrame,
  type RequestFrame,
  type Session,
  type User,
} from "@natter-chat/sdk";
import { ago, byId, clock, codePoints, el, show } from "./dom";

/** The server's text limit, in code points. */
export const MAX_TEXT = 100_000;
/** Messages longer than this many characters are folded: the rest is shown on request. */
export const FOLD_AT = 1_500;
/** What a deleted message shows instead of its text. */
export const DELETED = "This message was deleted";
/** History page size. */
const PAGE = 50;
/** After this long without a frame the client pings, and reconnects if no answer comes. */
const KEEPALIVE_MS = 15_000;

const SESSION_KEY = "natter.session";
const DEVICE_KEY = "natter.device";

/** What a message of ours shows: sending (no ack yet), sent, delivered or read. */
type Tick = "sending" | "sent" | "delivered" | "read" | "failed";
const tickText: Record<Tick, string> = { sending: "…", sent: "✓", delivered: "✓✓", read: "✓✓", failed: "!" };
const tickLabel: Record<Tick, string> = {
  sending: "sending",
  sent: "sent",
  delivered: "delivered",
  read: "read",
  failed: "not sent",
};

/** The open conversation. */
interface ChatView {
  id: string;
  kind: "direct" | "group";
  members: Member[];
  /** Pending invitations of a group. */
  invitees: Invitee[];
  /** Rendered events by seq; pending sends by client_msg_id until their event arrives. */
  bySeq: Map<number, HTMLLIElement>;
  pending: Map<string, HTMLLIElement>;
  /** Seq to pass as `before` for the next older page; 0: nothing older (once loaded). */
  older: number;
  /** The newest page has been placed: until then live events may arrive, but older is unknown. */
  loaded: boolean;
  loadingOlder: boolean;
  /** Others' marks: in a direct conversation the other member's, in a group everyone's lowest. */
  delivered: number;
  read: number;
  /** The newest seq we reported as read. */
  readSent: number;
}

/** readSession is the session kept in localStorage, if it looks whole. */
function readSession(): Session | undefined {
  try {
    const s = JSON.parse(localStorage.getItem(SESSION_KEY) ?? "null") as Session | null;
    if (s && s.token && s.refresh_token && s.user) return s;
  } catch {
    // a damaged entry: log in again
  }
  return undefined;
}

/**
 * gatewayURL is the WebSocket URL to dial for a URL discovery answered: a gateway listening on
 * every interface (0.0.0.0, [::]) announces that address, which a browser cannot dial, so the
 * page's own host name stands in for it.
 */
export function gatewayURL(announced: string, page: Location): string {
  const u = new URL(announced);
  if (u.hostname === "0.0.0.0" || u.hostname === "[::]" || u.hostname === "") u.hostname = page.hostname;
  return u.toString();
}

/** cursorStore keeps the cursor of this account and device in IndexedDB, or in memory where there is none. */
function cursorStore(userId: string, device: string): CursorStore {
  try {
    return new IndexedDBCursorStore(`${userId}/${device}`);
  } catch {
    return new MemoryCursorStore();
  }
}

/** What the connection line says in each state. */
function stateText(c: StateChange): string {
  switch (c.state) {
    case "idle":
    case "connecting":
      return "Connecting…";
    case "syncing":
      return "Catching up…";
    case "live":
      return "Connected";
    case "disconnected":
      return `Offline: reconnecting${c.retryInMs !== undefined ? ` in ${Math.max(1, Math.round(c.retryInMs / 1000))} s` : ""}`;
    case "closed":
      return "Disconnected";
  }
}

/** The device id of this tab: one per tab, kept across reloads (sessionStorage). */
function deviceId(): string {
  let id = sessionStorage.getItem(DEVICE_KEY);
  if (!id || !/^[A-Za-z0-9_-]{1,64}$/.test(id)) {
    const b = new Uint8Array(8);
    crypto.getRandomValues(b);
    id = "web-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    sessionStorage.setItem(DEVICE_KEY, id);
  }
  return id;
}

/** What a refused send, edit or delete says, by error code; other codes show the server's words (not_allowed says who may). */
const revisionRefusals: Record<string, string> = {
  edit_expired: "The time to edit this message has passed.",
  message_deleted: "That message was deleted already.",
  message_not_found: "That message is not in this conversation.",
  not_member: "You are not a member of this conversation any more.",
};

/** friendly turns an error into a sentence for people. */
function friendly(err: unknown): string {
  if (err instanceof ProtocolError) {
    return revisionRefusals[err.code] ?? err.message.replace(/^natter: [a-z_0-9]+: /, "");
  }
  if (err instanceof ApiError) {
    switch (err.code) {
      case "bad_credentials":
        return "Wrong handle or password.";
      case "handle_taken":
        return "That handle is taken.";
      case "invalid_handle":
        return "A handle is 3-32 letters, digits or underscores.";
      case "invalid_password":
        return "A password is 8-72 bytes.";
      case "user_not_found":
        return "No user has that handle.";
      case "rate_limited":
        return `Too many requests; try again${err.retryAfter ? ` in ${err.retryAfter} s` : " shortly"}.`;
      case "unavailable":
        return "The server is busy; try again.";
    }
    const m = /^natter api: \d+ [a-z_0-9]+: (.*)$/s.exec(err.message);
    return m ? m[1] : err.message;
  }
  return err instanceof Error ? err.message : String(err);
}

export class App {
  // The session is kept in localStorage, shared by this page's tabs: each refresh rotates the
  // refresh token, so tabs refresh one at a time (Web Locks) and take over each other's.
  private readonly api = new NatterApi({
    baseUrl: "",
    sessionStore: { load: () => readSession(), save: (s) => localStorage.setItem(SESSION_KEY, JSON.stringify(s)) },
    refreshLock: navigator.locks
      ? <T>(f: () => Promise<T>) => navigator.locks.request("natter-refresh", f) as Promise<T>
      : undefined,
  });
  private readonly device = deviceId();
  private me?: User;
  private conn?: NatterClient;
  private typing?: TypingTracker;
  private readonly deliveredQueue = new Map<string, number>();
  private deliveredTimer?: number;
  private readonly users = new Map<string, User>();
  private readonly userLookups = new Map<string, Promise<User | undefined>>();
  private readonly convs = new Map<string, ConversationSummary>();
  private readonly presence = new Map<string, PresenceEntry>();
  /** The users this account blocked. */
  private readonly blocked = new Set<string>();
  private view?: ChatView;
  /** How long after sending a message its sender may edit it (ms; 0: no limit), as welcome said. */
  private editWindowMs?: number;
  /** The full text each shown message has (the page may show it folded). */
  private readonly textOf = new WeakMap<HTMLLIElement, string>();
  private refreshTimer?: number;
  /**
   * Count loads of the conversation and invitation lists: a load answered after a later one
   * started is stale, and dropped.
   */
  private listLoads = 0;
  private listLoad: Promise<void> = Promise.resolve();
  private invitationLoads = 0;
  private presenceTimer?: number;

  start(): void {
    byId<HTMLFormElement>("login-form").addEventListener("submit", (e) => void this.onLogin(e as SubmitEvent));
    byId("logout").addEventListener("click", () => this.logout());
    byId<HTMLFormElement>("direct-form").addEventListener("submit", (e) => void this.onOpenDirect(e));
    byId<HTMLFormElement>("group-form").addEventListener("submit", (e) => void this.onCreateGroup(e));
    byId<HTMLFormElement>("add-member-form").addEventListener("submit", (e) => void this.onAddMember(e));
    byId("leave-group").addEventListener("click", () => void this.onLeave());
    byId("delete-group").addEventListener("click", () => void this.onDeleteGroup());
    byId("accept-request").addEventListener("click", () => void this.onAnswer(true));
    byId("ignore-request").addEventListener("click", () => void this.onAnswer(false));
    byId("block-user").addEventListener("click", () => void this.onBlock());
    byId<HTMLFormElement>("composer").addEventListener("submit", (e) => {
      e.preventDefault();
      void this.onSend();
    });
    const text = byId<HTMLTextAreaElement>("composer-text");
    text.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        void this.onSend();
      }
    });
    text.addEventListener("input", () => this.onTyping());
    byId("history").addEventListener("scroll", () => this.onScroll(), { passive: true });
    document.addEventListener("visibilitychange", () => this.markRead());
    // A page the browser keeps for back and forward (its back/forward cache) stays alive while
    // another page shows, and so would its socket: the server would show us online meanwhile.
    // Leaving the page closes the socket; coming back to it reloads the page, which connects
    // again from the saved cursor.
    window.addEventListener("pagehide", (e) => {
      if (e.persisted) void this.conn?.close();
    });
    window.addEventListener("pageshow", (e) => {
      if (e.persisted) location.reload();
    });
    window.addEventListener("focus", () => this.markRead());
    // "last seen 3 min ago" ages on screen. Requests and invitations arrive live (request
    // frames, member events naming us) and are reloaded on every (re)connect; the reload every
    // five minutes is only a fallback.
    this.presenceTimer = window.setInterval(() => this.renderPresence(), 30_000);
    window.setInterval(() => {
      void this.refreshInvitations();
      this.scheduleRefresh();
    }, 300_000);
    window.addEventListener("focus", () => void this.refreshInvitations());

    const saved = this.loadSession();
    if (saved) void this.enter(saved);
    else this.showLogin("");
  }

  // ---- session ----

  private loadSession(): Session | undefined {
    const s = readSession();
    if (s && Date.parse(s.refresh_expires_at) > Date.now() + 60_000) return s;
    localStorage.removeItem(SESSION_KEY);
    return undefined;
  }

  private showLogin(message: string): void {
    show(byId("login-view"), true);
    show(byId("chat-view"), false);
    show(byId("whoami"), false);
    show(byId("logout"), false);
    byId("login-error").textContent = message;
    this.setConnection("offline", "Not connected");
    byId<HTMLInputElement>("login-handle").focus();
  }

  private async onLogin(e: SubmitEvent): Promise<void> {
    e.preventDefault();
    const form = e.target as HTMLFormElement;
    const action = (e.submitter as HTMLButtonElement | null)?.value === "signup" ? "signup" : "login";
    const handle = byId<HTMLInputElement>("login-handle").value.trim();
    const password = byId<HTMLInputElement>("login-password").value;
    const err = byId("login-error");
    err.textContent = "";
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => (b.disabled = true));
    try {
      const s = action === "signup" ? await this.api.signup(handle, password) : await this.api.login(handle, password);
      byId<HTMLInputElement>("login-password").value = "";
      await this.enter(s);
    } catch (x) {
      err.textContent = friendly(x);
    } finally {
      buttons.forEach((b) => (b.disabled = false));
    }
  }

  private async enter(s: Session): Promise<void> {
    this.api.useSession(s);
    this.me = s.user;
    this.users.set(s.user.id, s.user);
    show(byId("login-view"), false);
    show(byId("chat-view"), true);
    const who = byId("whoami");
    who.textContent = `Signed in as ${s.user.display_name} (@${s.user.handle})`;
    show(who, true);
    show(byId("logout"), true);
    const conn = new NatterClient({
      discover: async () => gatewayURL(await this.api.gatewayUrl(), location),
      tokenSource: () => this.api.validToken(), // refreshed tokens renew the open socket too
      deviceId: this.device,
      platform: "web",
      storage: cursorStore(s.user.id, this.device),
      keepaliveMs: KEEPALIVE_MS,
    });
    this.conn = conn;
    conn.on("state", (c) => this.onState(conn, c));
    conn.on("welcome", (w) => {
      this.editWindowMs = w.edit_window_ms;
      this.renderAllActions();
    });
    conn.on("event", (ev) => this.onEvent(ev));
    conn.on("synced", () => void this.refreshConversations());
    conn.on("receipt", (r) => this.onReceipt(r));
    conn.on("presence", (p) => this.onPresence(p.users));
    conn.on("request", (r) => void this.onRequest(r));
    conn.on("error", (e) => console.warn("natter:", e.message));
    this.typing = new TypingTracker(conn, { onChange: (conv) => this.renderTyping(conv) });
    conn.start().catch(() => undefined); // the state listener shows why it ended
    await this.refreshBlocks();
    await this.refreshConversations();
    byId<HTMLInputElement>("direct-handle").focus();
  }

  private expire(): void {
    this.stop();
    localStorage.removeItem(SESSION_KEY);
    this.showLogin("Your session has ended; log in again.");
  }

  private logout(): void {
    const api = this.api;
    void api.logout(this.device).catch(() => undefined); // the device is forgotten; the token just expires
    this.stop();
    localStorage.removeItem(SESSION_KEY);
    this.showLogin("");
  }

  private stop(): void {
    this.typing?.dispose();
    this.typing = undefined;
    void this.conn?.close();
    this.conn = undefined;
    window.clearTimeout(this.deliveredTimer);
    this.deliveredQueue.clear();
    this.api.session = this.api.token = undefined;
    this.me = undefined;
    this.view = undefined;
    this.convs.clear();
    byId("conversations").replaceChildren();
    this.closeChat();
  }

  /** api runs an API call; a 401 ends the session. */
  private async call<T>(f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (e) {
      if (e instanceof ApiError && e.status === 401 && this.me) this.expire();
      throw e;
    }
  }

  private onState(conn: NatterClient, c: StateChange): void {
    if (this.conn !== conn) return; // an old connection, closing
    if (c.state === "closed" && conn.error instanceof ApiError && conn.error.status === 401) {
      this.expire(); // the session ended: its refresh was refused
      return;
    }
    if (c.state === "closed" && conn.error instanceof CloseError) {
      if (conn.error.code === 4401 || conn.error.code === 4403) {
        this.expire();
        return;
      }
      if (conn.error.code === 4409) {
        this.setConnection("closed", "Disconnected: this tab's device connected elsewhere; reload to use it here");
        return;
      }
    }
    this.setConnection(c.state, stateText(c));
    if (c.state === "disconnected" || c.state === "closed") {
      // Presence is only known while connected; it is asked again after the next sync.
      this.presence.clear();
      this.renderPresence();
    }
  }

  private setConnection(state: string, text: string): void {
    const c = byId("connection");
    c.dataset.state = state;
    c.textContent = text;
  }

  // ---- users and presence ----

  private name(id: string): string {
    const u = this.users.get(id);
    if (u) return u.display_name || u.handle;
    void this.lookup(id);
    return "…";
  }

  private lookup(id: string): Promise<User | undefined> {
    let p = this.userLookups.get(id);
    if (!p) {
      p = this.call(() => this.api.user(id)).then(
        (u) => {
          this.users.set(u.id, u);
          this.renderNames();
          return u;
        },
        () => undefined,
      );
      this.userLookups.set(id, p);
    }
    return p;
  }

  /** renderNames redraws what shows user names once a lookup comes back. */
  private renderNames(): void {
    if (this.nameRender) return;
    this.nameRender = requestAnimationFrame(() => {
      this.nameRender = 0;
      this.renderConversations();
      if (this.view) {
        this.renderChatHead();
        for (const li of this.view.bySeq.values()) {
          const who = li.querySelector<HTMLElement>(".who[data-user]");
          if (who) who.textContent = this.name(who.dataset.user!);
        }
      }
    });
  }
  private nameRender = 0;

  private other(c: { kind: string; members?: string[] }): string | undefined {
    if (c.kind !== "direct" || !c.members) return undefined;
    return c.members.find((m) => m !== this.me?.id);
  }

  private onPresence(users: PresenceEntry[]): void {
    for (const u of users) this.presence.set(u.user_id, u);
    this.renderPresence();
  }

  private presenceText(id: string): string {
    const p = this.presence.get(id);
    if (!p || p.status === "unknown") return "";
    if (p.status === "online") return "online";
    return p.last_seen ? `last seen ${ago(p.last_seen)}` : "offline";
  }

  private renderPresence(): void {
    for (const dot of document.querySelectorAll<HTMLElement>(".dot[data-user]")) {
      const p = this.presence.get(dot.dataset.user!);
      dot.dataset.status = p?.status ?? "unknown";
      dot.title = this.presenceText(dot.dataset.user!) || "presence unknown";
    }
    if (this.view) this.renderChatHead();
  }

  private askPresence(): void {
    const ids = new Set<string>();
    for (const c of this.convs.values()) {
      const o = this.other(c);
      if (o) ids.add(o);
    }
    if (ids.size === 0 || !this.conn) return;
    const list = [...ids];
    for (let i = 0; i < list.length; i += 100) {
      this.conn.presence(list.slice(i, i + 100)).then(
        (users) => this.onPresence(users),
        () => undefined, // asked again after the next sync
      );
    }
  }

  // ---- conversation list ----

  /** refreshInvitations shows the pending group invitations, each with Accept and Decline. */
  private async refreshInvitations(): Promise<void> {
    if (!this.me) return;
    const load = ++this.invitationLoads;
    let list: Invitation[];
    try {
      list = await this.call(() => this.api.invitations());
    } catch {
      return; // shown again at the next refresh
    }
    if (load !== this.invitationLoads) return; // a later load started: its answer is the newer one
    show(byId("invitations"), list.length > 0);
    byId("invitation-list").replaceChildren(
      ...list.map((inv) => {
        const id = inv.conversation.id;
        const accept = el("button", { type: "button", "aria-label": `Accept ${inv.conversation.name}` }, "Accept");
        const decline = el("button", { type: "button", class: "link", "aria-label": `Decline ${inv.conversation.name}` }, "Decline");
        accept.addEventListener("click", () => void this.onInvitation(id, true));
        decline.addEventListener("click", () => void this.onInvitation(id, false));
        return el(
          "li",
          { "data-conv": id },
          el("span", { class: "conv-name" }, inv.conversation.name || "Group"),
          el("span", { class: "muted" }, ` invited by ${this.name(inv.invited_by)}`),
          accept,
          decline,
        );
      }),
    );
  }

  private async onInvitation(id: string, accept: boolean): Promise<void> {
    const err = byId("sidebar-error");
    err.textContent = "";
    const from = this.view?.id; // the chat open when Accept was clicked
    try {
      if (accept) await this.call(() => this.api.acceptInvitation(id));
      else await this.call(() => this.api.declineInvitation(id));
      await this.refreshConversations();
      // Open the group, unless it is open already or another chat was opened meanwhile.
      if (accept && this.view?.id === from && from !== id) await this.open(id);
    } catch (x) {
      err.textContent = friendly(x);
      await this.refreshInvitations();
    }
  }

  /**
   * refreshConversations loads the list and resolves once the latest load has been shown, even
   * when another load overtook this one: a caller can then open what it just created.
   */
  private refreshConversations(): Promise<void> {
    if (!this.me) return Promise.resolve();
    void this.refreshInvitations();
    const load = this.loadConversations(++this.listLoads);
    this.listLoad = load;
    return load;
  }

  private async loadConversations(load: number): Promise<void> {
    let list: ConversationSummary[];
    try {
      list = await this.call(() => this.api.conversations());
    } catch (e) {
      if (load !== this.listLoads) return this.listLoad;
      byId("sidebar-error").textContent = "Could not load conversations: " + friendly(e);
      return;
    }
    // Two loads may answer out of order (a request frame's load overtaking the one a reconnect
    // started): only the latest load's list is shown, and an older one waits for it.
    if (load !== this.listLoads) return this.listLoad;
    byId("sidebar-error").textContent = "";
    this.convs.clear();
    for (const c of list) this.convs.set(c.id, c);
    if (this.view && !this.convs.has(this.view.id)) this.closeChat(); // removed, or left on another device
    this.renderConversations();
    this.askPresence();
  }

  /** scheduleRefresh reloads the list soon, once for a burst of changes. */
  private scheduleRefresh(): void {
    if (this.refreshTimer !== undefined) return;
    this.refreshTimer = window.setTimeout(() => {
      this.refreshTimer = undefined;
      void this.refreshConversations();
    }, 300);
  }

  private title(c: ConversationSummary): string {
    if (c.kind === "group") return c.name || "Group";
    const o = this.other(c);
    return o ? this.name(o) : "Just you";
  }

  /** incoming reports whether c is a request made to this account, not yet accepted. */
  private incoming(c: { request?: { to: string } }): boolean {
    return c.request !== undefined && c.request.to === this.me?.id;
  }

  private async refreshBlocks(): Promise<void> {
    try {
      const blocks = await this.call(() => this.api.blocks());
      this.blocked.clear();
      for (const b of blocks) this.blocked.add(b.user_id);
    } catch {
      // shown as not blocked until the next try
    }
  }

  private preview(ev: ChatEvent | null): string {
    if (!ev) return "No messages yet";
    if (ev.type === "message") {
      if (ev.deleted) return DELETED;
      const who = ev.sender_id === this.me?.id ? "You: " : "";
      return who + (ev.text ?? "").slice(0, 120).replace(/\s+/g, " ");
    }
    if (ev.type === "member") return this.memberText(ev);
    if (ev.deleted) return DELETED;
    return (ev.sender_id === this.me?.id ? "You edited: " : "Edited: ") + (ev.text ?? "").slice(0, 120).replace(/\s+/g, " ");
  }

  /**
   * renderConversations updates the list in place: each conversation keeps its button (so focus
   * and a pending click survive updates), only its contents change, and items move only when the
   * order changes.
   */
  private renderConversations(): void {
    const ul = byId("conversations");
    const items = [...this.convs.values()].sort(
      (a, b) => (b.last_message?.seq ?? 0) - (a.last_message?.seq ?? 0) || b.created_at.localeCompare(a.created_at),
    );
    const old = new Map<string, HTMLLIElement>();
    for (const li of ul.children as HTMLCollectionOf<HTMLLIElement>) old.set(li.dataset.conv!, li);
    items.forEach((c, i) => {
      let li = old.get(c.id);
      old.delete(c.id);
      if (!li) {
        const button = el("button", { type: "button", "data-conv": c.id });
        button.addEventListener("click", () => void this.open(c.id));
        li = el("li", { "data-conv": c.id }, button);
      }
      const button = li.firstElementChild as HTMLButtonElement;
      const o = this.other(c);
      const unread =
        c.unread > 0
          ? el("span", { class: "unread", "aria-label": `${c.unread} unread` }, c.unread >= 999 ? "999+" : String(c.unread))
          : el("span");
      button.setAttribute("aria-current", this.view?.id === c.id ? "true" : "false");
      const label = this.incoming(c) ? (c.request?.ignored ? " · ignored request" : " · wants to chat") : "";
      button.replaceChildren(
        el("span", { class: "conv-name" }, o ? el("span", { class: "dot", "data-user": o, "aria-hidden": "true" }) : null, this.title(c) + label),
        unread,
        el("span", { class: "conv-last" }, this.incoming(c) ? "Accept to read their messages" : this.preview(c.last_message)),
      );
      if (ul.children[i] !== li) ul.insertBefore(li, ul.children[i] ?? null);
    });
    for (const li of old.values()) li.remove();
    this.renderPresence();
  }

  private async onOpenDirect(e: Event): Promise<void> {
    e.preventDefault();
    const input = byId<HTMLInputElement>("direct-handle");
    const err = byId("sidebar-error");
    err.textContent = "";
    try {
      const u = await this.call(() => this.api.userByHandle(input.value.trim()));
      this.users.set(u.id, u);
      const c = await this.call(() => this.api.openDirect(u.id));
      input.value = "";
      await this.refreshConversations();
      await this.open(c.id);
    } catch (x) {
      err.textContent = friendly(x);
    }
  }

  private async onCreateGroup(e: Event): Promise<void> {
    e.preventDefault();
    const name = byId<HTMLInputElement>("group-name");
    const members = byId<HTMLInputElement>("group-members");
    const err = byId("sidebar-error");
    err.textContent = "";
    try {
      const ids = await this.resolveHandles(members.value);
      const g = await this.call(() => this.api.createGroup(name.value.trim(), ids));
      name.value = "";
      members.value = "";
      byId<HTMLDetailsElement>("group-create").open = false;
      await this.refreshConversations();
      await this.open(g.conversation.id);
    } catch (x) {
      err.textContent = friendly(x);
    }
  }

  private async resolveHandles(list: string): Promise<string[]> {
    const handles = list.split(/[\s,]+/).map((h) => h.replace(/^@/, "")).filter(Boolean);
    const ids: string[] = [];
    for (const h of handles) {
      try {
        const u = await this.call(() => this.api.userByHandle(h));
        this.users.set(u.id, u);
        ids.push(u.id);
      } catch (x) {
        throw new Error(`@${h}: ${friendly(x)}`);
      }
    }
    return ids;
  }

  // ---- the open conversation ----

  private closeChat(): void {
    this.view = undefined;
    show(byId("chat-main"), false);
    show(byId("chat-empty"), true);
    byId("messages").replaceChildren();
  }

  private async open(id: string): Promise<void> {
    const c = this.convs.get(id);
    if (!c || !this.me) return;
    if (this.view) this.typing?.stopped(this.view.id);
    // Loading the open group again (after an accept, a block, a request answered) keeps a
    // "click again to confirm" of its leave button; another conversation does not.
    if (this.view?.id !== id) this.resetLeave();
    const view: ChatView = {
      id,
      kind: c.kind,
      members: [],
      invitees: [],
      bySeq: new Map(),
      pending: new Map(),
      older: 0,
      loaded: false,
      loadingOlder: false,
      delivered: 0,
      read: 0,
      readSent: c.read_seq,
    };
    this.view = view;
    show(byId("chat-empty"), false);
    show(byId("chat-main"), true);
    byId("messages").replaceChildren();
    this.renderTyping(id);
    byId("chat-error").textContent = "";
    byId("history-status").textContent = "Loading…";
    this.renderConversations();
    this.renderChatHead();
    try {
      const [detail, page, receipts] = await Promise.all([
        this.call(() => this.api.conversation(id)),
        this.call(() => this.api.history(id, { limit: PAGE })),
        this.call(() => this.api.receipts(id)),
      ]);
      if (this.view !== view) return;
      view.members = detail.members;
      view.invitees = detail.invitations ?? [];
      view.delivered = receipts.delivered_to_all;
      view.read = receipts.read_by_all;
      view.older = page.older;
      view.loaded = true;
      this.renderChatHead();
      const hist = byId("history");
      for (const ev of page.messages.slice().reverse()) this.place(ev);
      hist.scrollTop = hist.scrollHeight;
      this.updateHistoryStatus();
      this.renderTicks();
      this.markRead();
      void this.fillViewport();
    } catch (x) {
      if (this.view === view) byId("history-status").textContent = "Could not load this conversation: " + friendly(x);
    }
    byId<HTMLTextAreaElement>("composer-text").focus();
  }

  private renderChatHead(): void {
    const v = this.view;
    if (!v) return;
    const c = this.convs.get(v.id);
    if (!c) return;
    byId("chat-title").textContent = this.title(c);
    const o = this.other(c);
    const pres = byId("chat-presence");
    if (o) {
      pres.textContent = this.presenceText(o);
    } else {
      const n = v.members.length || c.members?.length || 0;
      pres.textContent = n ? `${n} members` : "";
    }
    const bar = byId("request-bar");
    show(bar, c.request !== undefined);
    if (c.request) {
      const asked = this.incoming(c);
      byId("request-text").textContent = asked
        ? `${this.name(c.request.from)} wants to chat. Their messages show once you accept.`
        : `Waiting for ${this.name(c.request.to)} to accept.`;
      show(byId("accept-request"), asked);
      show(byId("ignore-request"), asked && !c.request.ignored);
    }
    const block = byId<HTMLButtonElement>("block-user");
    show(block, o !== undefined);
    if (o) block.textContent = this.blocked.has(o) ? `Unblock ${this.name(o)}` : `Block ${this.name(o)}`;
    const members = byId<HTMLDetailsElement>("members");
    show(members, c.kind === "group");
    if (c.kind !== "group") return;
    // What each role may do (the server decides; this only hides what it would refuse):
    // the owner and admins invite, rename and remove plain members; the owner also removes and
    // demotes admins, hands the group over and deletes it.
    const mine = v.members.find((m) => m.user_id === this.me?.id);
    const owner = mine?.role === "owner";
    const admin = owner || mine?.role === "admin";
    show(byId("add-member-form"), admin);
    show(byId("delete-group"), owner);
    const button = (label: string, aria: string, onClick: () => void): HTMLButtonElement => {
      const b = el("button", { type: "button", class: "link", "aria-label": aria }, label);
      b.addEventListener("click", onClick);
      return b;
    };
    byId("member-list").replaceChildren(
      ...v.members.map((m) => {
        const who = this.name(m.user_id);
        const label = who + (m.user_id === this.me?.id ? " (you)" : "") + (m.role !== "member" ? ` · ${m.role}` : "");
        const self = m.user_id === this.me?.id;
        const actions: HTMLButtonElement[] = [];
        if (!self && (owner || (admin && m.role === "member"))) {
          actions.push(button("Remove", `Remove ${who}`, () => void this.change(() => this.api.removeMember(v.id, m.user_id))));
        }
        if (!self && admin && m.role === "member") {
          actions.push(button("Make admin", `Make ${who} admin`, () => void this.change(() => this.api.setRole(v.id, m.user_id, "admin"))));
        }
        if (!self && owner && m.role === "admin") {
          actions.push(button("Remove admin", `Remove admin ${who}`, () => void this.change(() => this.api.setRole(v.id, m.user_id, "member"))));
        }
        if (!self && owner) {
          actions.push(button("Make owner", `Make ${who} owner`, () => void this.change(() => this.api.transferOwnership(v.id, m.user_id))));
        }
        return el("li", {}, el("span", { class: "member-role", "data-role": m.role }, label), ...actions);
      }),
    );
    byId("invitee-list").replaceChildren(
      ...v.invitees.map((i) => {
        const who = this.name(i.user_id);
        const withdraw = admin ? button("Withdraw", `Withdraw ${who}`, () => void this.change(() => this.api.removeMember(v.id, i.user_id))) : null;
        return el("li", { class: "muted" }, el("span", {}, `${who} · invited`), withdraw);
      }),
    );
  }

  /** change runs a group change and reloads the members, or shows why it was refused. */
  private async change(f: () => Promise<unknown>): Promise<void> {
    try {
      await this.call(f);
      await this.reloadMembers();
    } catch (x) {
      byId("chat-error").textContent = friendly(x);
    }
  }

  /** onDeleteGroup asks for a second click, then deletes the open group (owner only). */
  private async onDeleteGroup(): Promise<void> {
    const v = this.view;
    const b = byId<HTMLButtonElement>("delete-group");
    if (!v) return;
    if (b.dataset.confirm !== v.id) {
      b.dataset.confirm = v.id;
      b.textContent = "Delete for everyone: click again to confirm";
      window.setTimeout(() => {
        delete b.dataset.confirm;
        b.textContent = "Delete group";
      }, 5_000);
      return;
    }
    delete b.dataset.confirm;
    b.textContent = "Delete group";
    try {
      await this.call(() => this.api.deleteGroup(v.id));
      this.closeChat();
      await this.refreshConversations();
    } catch (x) {
      byId("chat-error").textContent = friendly(x);
    }
  }

  /**
   * onRequest follows a direct request made or answered, here or on another device: the list
   * and the open chat's request bar change at once, and an accept shows the messages it held.
   */
  private async onRequest(r: RequestFrame): Promise<void> {
    const open = this.view?.id === r.conversation_id;
    await this.refreshConversations();
    // The frame can come before the API has written the conversation to the store (it records
    // the event on the stream first): load the list again, a few times, until it is there.
    for (let wait = 100; r.state === "open" && !this.convs.has(r.conversation_id) && wait <= 1600; wait *= 2) {
      await new Promise((done) => window.setTimeout(done, wait));
      await this.refreshConversations();
    }
    if (!open || this.view?.id !== r.conversation_id) return;
    this.renderChatHead();
    if (r.state === "accepted" && r.to === this.me?.id) await this.open(r.conversation_id);
  }

  /** onAnswer accepts (or ignores) the open request; an accepted one shows its history. */
  private async onAnswer(accept: boolean): Promise<void> {
    const v = this.view;
    if (!v) return;
    try {
      if (accept) await this.call(() => this.api.acceptRequest(v.id));
      else await this.call(() => this.api.ignoreRequest(v.id));
      await this.refreshConversations();
      if (accept && this.view === v) await this.open(v.id); // the held messages are history now
    } catch (x) {
      byId("chat-error").textContent = friendly(x);
    }
  }

  /** onBlock blocks or unblocks the other user of the open direct conversation. */
  private async onBlock(): Promise<void> {
    const v = this.view;
    const c = v && this.convs.get(v.id);
    const o = c && this.other(c);
    if (!v || !o) return;
    try {
      if (this.blocked.has(o)) await this.call(() => this.api.unblock(o));
      else await this.call(() => this.api.block(o));
      await this.refreshBlocks();
      await this.refreshConversations();
      if (this.view === v) await this.open(v.id); // history shows (or hides) their messages
    } catch (x) {
      byId("chat-error").textContent = friendly(x);
    }
  }

  private async reloadMembers(): Promise<void> {
    const v = this.view;
    if (!v) return;
    try {
      const d = await this.call(() => this.api.conversation(v.id));
      if (this.view === v) {
        v.members = d.members;
        v.invitees = d.invitations ?? [];
        this.renderChatHead();
        this.renderAllActions(); // a new role may moderate, or no longer
      }
    } catch {
      // no longer a member: the conversation list refresh closes the view
    }
  }

  private async onAddMember(e: Event): Promise<void> {
    e.preventDefault();
    const v = this.view;
    if (!v) return;
    const input = byId<HTMLInputElement>("add-member-handle");
    const err = byId("chat-error");
    err.textContent = "";
    try {
      const ids = await this.resolveHandles(input.value);
      if (ids.length) await this.call(() => this.api.inviteMembers(v.id, ids));
      input.value = "";
      await this.reloadMembers();
    } catch (x) {
      err.textContent = friendly(x);
    }
  }

  /** onLeave asks for a second click (no modal dialog), then leaves the open group. */
  private async onLeave(): Promise<void> {
    const v = this.view;
    const button = byId<HTMLButtonElement>("leave-group");
    if (!v) return;
    if (button.dataset.confirm !== v.id) {
      button.dataset.confirm = v.id;
      button.textContent = "Leave: click again to confirm";
      window.setTimeout(() => this.resetLeave(), 5_000);
      return;
    }
    this.resetLeave();
    try {
      await this.call(() => this.api.leaveGroup(v.id));
      this.closeChat();
      await this.refreshConversations();
    } catch (x) {
      byId("chat-error").textContent = friendly(x);
    }
  }

  private resetLeave(): void {
    const button = byId<HTMLButtonElement>("leave-group");
    delete button.dataset.confirm;
    button.textContent = "Leave group";
  }

  // ---- history ----

  private onScroll(): void {
    const h = byId("history");
    if (h.scrollTop < 300) void this.loadOlder();
    if (h.scrollHeight - h.scrollTop - h.clientHeight < 40) this.markRead();
  }

  /** fillViewport loads older pages until the history can scroll (or has no more). */
  private async fillViewport(): Promise<void> {
    const h = byId("history");
    while (this.view && this.view.older && h.scrollHeight <= h.clientHeight + 300) {
      if (!(await this.loadOlder())) return;
    }
  }

  /** loadOlder prepends the next older page, keeping what is on screen in place. */
  private async loadOlder(): Promise<boolean> {
    const v = this.view;
    if (!v || v.loadingOlder || !v.older) return false;
    v.loadingOlder = true;
    byId("history-status").textContent = "Loading older messages…";
    try {
      const page = await this.call(() => this.api.history(v.id, { before: v.older, limit: PAGE }));
      if (this.view !== v) return false;
      const h = byId("history");
      const fromBottom = h.scrollHeight - h.scrollTop;
      for (const ev of page.messages) this.place(ev); // newest first: each goes above the last
      v.older = page.older;
      h.scrollTop = h.scrollHeight - fromBottom;
      this.renderTicks();
      return true;
    } catch (x) {
      byId("history-status").textContent = "Could not load older messages: " + friendly(x);
      return false;
    } finally {
      v.loadingOlder = false;
      if (this.view === v) this.updateHistoryStatus();
    }
  }

  private updateHistoryStatus(): void {
    const v = this.view;
    if (!v || !v.loaded) return; // "Loading…" stays until the newest page is in
    byId("history-status").textContent = v.older ? "" : v.bySeq.size ? "Beginning of the conversation" : "No messages yet: say hello";
  }

  // ---- events ----

  private onEvent(ev: ChatEvent): void {
    const c = this.convs.get(ev.conversation_id);
    if (!c) {
      this.scheduleRefresh(); // a new conversation, or a group we were added to
    } else if (!c.last_message || c.last_message.seq < ev.seq) {
      c.last_message = ev;
      const seen = this.view?.id === c.id && this.readable();
      if (ev.type === "message" && ev.sender_id !== this.me?.id && ev.seq > c.read_seq && !seen) c.unread++;
      this.renderConversations();
    }
    if (ev.type === "member") {
      this.scheduleRefresh();
      if (this.view?.id === ev.conversation_id) void this.reloadMembers();
    }
    const invite = this.me && invitationChange(ev, this.me.id);
    if (invite === "invited" || invite === "declined") return; // of a group we are not in: the list shows it
    if (ev.sender_id !== this.me?.id) this.delivered(ev.conversation_id, ev.seq);
    const v = this.view;
    if (!v || v.id !== ev.conversation_id) return;
    const h = byId("history");
    const atBottom = h.scrollHeight - h.scrollTop - h.clientHeight < 80;
    this.place(ev);
    this.updateHistoryStatus();
    this.renderTicks();
    if (atBottom || ev.sender_id === this.me?.id) h.scrollTop = h.scrollHeight;
    this.markRead();
  }

  /** place puts an event in seq order, once: a repeat is dropped, and our own replaces its pending copy. */
  private place(ev: ChatEvent): void {
    const v = this.view;
    if (!v || v.bySeq.has(ev.seq)) return;
    if (ev.type === "edit" || ev.type === "delete" || ev.type === "hide") {
      this.revise(ev);
      return;
    }
    const li = this.renderEvent(ev);
    if (ev.type === "message") {
      const pending = v.pending.get(ev.client_msg_id);
      if (pending && ev.sender_id === this.me?.id) {
        v.pending.delete(ev.client_msg_id);
        pending.remove();
      }
    }
    v.bySeq.set(ev.seq, li);
    const ol = byId("messages");
    const seqOf = (e: Element | null) => Number((e as HTMLElement | null)?.dataset.seq ?? NaN);
    // Usually the newest (append: the last item is an older event) or the oldest (prepend: a
    // page of history); otherwise find the first later event, or the first pending send.
    const last = seqOf(ol.lastElementChild);
    if (!ol.lastElementChild || last < ev.seq) {
      ol.append(li);
      return;
    }
    if (seqOf(ol.firstElementChild) > ev.seq) {
      ol.prepend(li);
      return;
    }
    let after: HTMLLIElement | null = null;
    for (const other of ol.children as HTMLCollectionOf<HTMLLIElement>) {
      const s = Number(other.dataset.seq);
      if (s && s > ev.seq) {
        after = other;
        break;
      }
      if (!s) {
        after = other; // pending sends stay at the bottom
        break;
      }
    }
    ol.insertBefore(li, after);
  }

  /**
   * revise applies an edit, delete or hide to its message if it is shown: the new text with an
   * "edited" mark, or the tombstone. A deleted message stays deleted.
   */
  private revise(ev: Extract<ChatEvent, { type: "edit" | "delete" | "hide" }>): void {
    const li = this.view?.bySeq.get(ev.target.seq);
    if (!li || li.classList.contains("deleted")) return;
    const body = li.querySelector<HTMLElement>("p.text");
    if (!body) return;
    li.querySelector("button.fold")?.remove();
    if (ev.deleted) {
      this.tombstone(li, body);
      return;
    }
    this.fill(li, body, ev.text ?? "");
    this.markEdited(li);
  }

  private tombstone(li: HTMLLIElement, body: HTMLElement): void {
    li.classList.add("deleted");
    body.hidden = false;
    body.textContent = DELETED;
    this.textOf.delete(li);
    li.querySelector(".edited")?.remove();
    li.querySelector("form.edit")?.remove();
    li.querySelector(".actions")?.remove();
  }

  private markEdited(li: HTMLLIElement): void {
    if (li.querySelector(".edited")) return;
    li.querySelector(".meta")?.prepend(el("span", { class: "edited" }, "edited "));
  }

  private memberText(ev: Extract<ChatEvent, { type: "member" }>): string {
    const who = ev.sender_id === this.me?.id ? "You" : this.name(ev.sender_id);
    const list = (ids: string[]) => ids.map((id) => (id === this.me?.id ? "you" : this.name(id))).join(", ");
    const names = list(ev.member.user_ids ?? []);
    switch (ev.member.action) {
      case "created": {
        const others = list((ev.member.user_ids ?? []).filter((id) => id !== ev.sender_id));
        return `${who} created the group “${ev.member.name ?? ""}”` + (others ? ` with ${others}` : "");
      }
      case "added":
        return `${who} added ${names}`;
      case "left":
      case "removed": {
        const owner = ev.member.owner ? `; ${list([ev.member.owner])} ${ev.member.owner === this.me?.id ? "are" : "is"} the owner now` : "";
        return (ev.member.action === "left" ? `${names || who} left` : `${who} removed ${names}`) + owner;
      }
      case "renamed":
        return `${who} renamed the group to “${ev.member.name ?? ""}”`;
      case "invited":
        return `${who} invited ${names}`;
      case "accepted":
        return `${names || who} joined`;
      case "declined":
        return ev.member.user_ids?.includes(ev.sender_id) ? `${names} declined the invitation` : `${who} withdrew the invitation of ${names}`;
      case "promoted":
        return `${who} made ${names} admin`;
      case "demoted":
        return `${who} removed ${names} as admin`;
      case "owner_changed":
        return `${who} made ${list([ev.member.owner ?? ""])} the owner`;
      case "deleted":
        return `${who} deleted the group`;
    }
    return `${who} changed the group`;
  }

  private renderEvent(ev: ChatEvent): HTMLLIElement {
    if (ev.type === "member") {
      return el("li", { class: "msg event", "data-seq": ev.seq }, this.memberText(ev));
    }
    const mine = ev.sender_id === this.me?.id;
    if (ev.type !== "message") { // revisions are applied to their message, never shown (place)
      return el("li", { class: "msg event", "data-seq": ev.seq });
    }
    const li = this.messageItem(ev.deleted ? "" : (ev.text ?? ""), mine, ev.sender_id, ev.sent_at, ev.seq, mine ? "sent" : undefined);
    const body = li.querySelector<HTMLElement>("p.text");
    if (ev.deleted && body) this.tombstone(li, body);
    else if (ev.edited_at) this.markEdited(li);
    return li;
  }

  private messageItem(text: string, mine: boolean, sender: string, sentAt: number, seq?: number, tick?: Tick): HTMLLIElement {
    const who =
      !mine && this.view?.kind === "group" ? el("span", { class: "who", "data-user": sender }, this.name(sender)) : null;
    const body = el("p", { class: "text" });
    const li = el(
      "li",
      { class: mine ? "msg mine" : "msg", "data-seq": seq, "data-sender": sender, "data-sent-at": sentAt },
      who,
      body,
      el(
        "div",
        { class: "meta" },
        el("time", { datetime: new Date(sentAt).toISOString() }, clock(sentAt)),
        tick ? " " : null,
        tick ? el("span", { class: "tick" }) : null,
      ),
    );
    this.fill(li, body, text);
    if (tick) setTick(li, tick);
    if (seq !== undefined) this.renderActions(li);
    return li;
  }

  /** fill shows text, folded after FOLD_AT characters with a button that shows the rest. */
  private fill(li: HTMLLIElement, body: HTMLElement, text: string): void {
    this.textOf.set(li, text);
    if (text.length <= FOLD_AT) {
      body.textContent = text;
      return;
    }
    const total = codePoints(text);
    const toggle = el("button", { type: "button", class: "link fold", "aria-expanded": "false" });
    const render = (open: boolean) => {
      body.textContent = open ? text : text.slice(0, FOLD_AT) + "…";
      toggle.setAttribute("aria-expanded", String(open));
      toggle.textContent = open ? "Show less" : `Show all ${total.toLocaleString("en")} characters`;
    };
    toggle.addEventListener("click", () => render(toggle.getAttribute("aria-expanded") !== "true"));
    render(false);
    li.insertBefore(toggle, body.nextSibling);
  }

  // ---- receipts ----

  /** delivered reports events as received, one mark per conversation for a burst (a catch-up). */
  private delivered(conv: string, seq: number): void {
    this.deliveredQueue.set(conv, Math.max(seq, this.deliveredQueue.get(conv) ?? 0));
    if (this.deliveredTimer !== undefined) return;
    this.deliveredTimer = window.setTimeout(() => {
      this.deliveredTimer = undefined;
      for (const [c, s] of this.deliveredQueue) this.conn?.markDelivered(c, s).catch(() => undefined);
      this.deliveredQueue.clear();
    }, 200);
  }

  private onReceipt(r: ReceiptFrame): void {
    const c = this.convs.get(r.conversation_id);
    if (r.user_id === this.me?.id) {
      // One of our devices read this far: the badge follows on every device.
      if (r.kind === "read" && c && r.up_to > c.read_seq) {
        c.read_seq = r.up_to;
        if (!c.last_message || c.last_message.seq <= r.up_to) c.unread = 0;
        else this.scheduleRefresh();
        this.renderConversations();
      }
      return;
    }
    const v = this.view;
    if (!v || v.id !== r.conversation_id || v.kind !== "direct") return;
    if (r.kind === "read") v.read = Math.max(v.read, r.up_to);
    v.delivered = Math.max(v.delivered, r.up_to); // a read is a delivery too
    this.renderTicks();
  }

  /** renderTicks sets every own message's tick from the others' marks. */
  private renderTicks(): void {
    const v = this.view;
    if (!v) return;
    for (const [seq, li] of v.bySeq) {
      if (!li.classList.contains("mine")) continue;
      setTick(li, seq <= v.read ? "read" : seq <= v.delivered ? "delivered" : "sent");
    }
  }

  /** readable reports whether the open conversation's newest messages are on screen. */
  private readable(): boolean {
    if (document.visibilityState !== "visible") return false;
    const h = byId("history");
    return h.scrollHeight - h.scrollTop - h.clientHeight < 80;
  }

  /** markRead reports the open conversation read up to its newest event, when it is on screen. */
  private markRead(): void {
    const v = this.view;
    if (!v || !this.conn || !this.readable()) return;
    let newest = 0;
    for (const seq of v.bySeq.keys()) newest = Math.max(newest, seq);
    if (newest <= v.readSent) return;
    v.readSent = newest;
    this.conn.markRead(v.id, newest).catch(() => undefined); // a lost mark is covered by the next
    const c = this.convs.get(v.id);
    if (c) {
      c.read_seq = Math.max(c.read_seq, newest);
      c.unread = 0;
      this.renderConversations();
    }
  }

  // ---- typing ----

  private onTyping(): void {
    const v = this.view;
    if (!v || !this.typing) return;
    if (byId<HTMLTextAreaElement>("composer-text").value === "") this.typing.stopped(v.id);
    else this.typing.keystroke(v.id);
  }

  private renderTyping(conv: string): void {
    const v = this.view;
    if (!v || v.id !== conv || !this.typing) return;
    const names = this.typing.typingIn(conv).filter((id) => id !== this.me?.id).map((id) => this.name(id));
    byId("typing").textContent =
      names.length === 0 ? "" : names.length === 1 ? `${names[0]} is typing…` : `${names.join(", ")} are typing…`;
  }

  // ---- sending ----

  private async onSend(): Promise<void> {
    const v = this.view;
    const box = byId<HTMLTextAreaElement>("composer-text");
    const text = box.value.trim();
    const err = byId("chat-error");
    if (!v || !this.conn || !this.me || text === "") return;
    const n = codePoints(text);
    if (n > MAX_TEXT) {
      err.textContent = `This message has ${n.toLocaleString("en")} characters; the limit is ${MAX_TEXT.toLocaleString("en")}.`;
      return;
    }
    err.textContent = "";
    box.value = "";
    this.typing?.stopped(v.id);
    const clientMsgId = ulid();
    const ack = this.conn.send(v.id, text, { clientMsgId });
    const li = this.messageItem(text, true, this.me.id, Date.now(), undefined, "sending");
    li.dataset.clientMsgId = clientMsgId;
    v.pending.set(clientMsgId, li);
    byId("messages").append(li);
    const h = byId("history");
    h.scrollTop = h.scrollHeight;
    let a: AckFrame;
    try {
      a = await ack;
    } catch (x) {
      setTick(li, "failed");
      if (this.view === v) err.textContent = "Not sent: " + friendly(x);
      return;
    }
    // The message event usually arrives right after the ack and replaces this copy; until then
    // the copy carries the seq so that ticks apply to it.
    if (v.pending.get(clientMsgId) === li && !v.bySeq.has(a.seq)) {
      li.dataset.seq = String(a.seq);
      li.dataset.sentAt = String(a.sent_at); // the server's clock, which the edit window counts from
      v.pending.delete(clientMsgId);
      v.bySeq.set(a.seq, li);
      setTick(li, "sent");
      this.renderActions(li);
      this.renderTicks();
    }
  }

  // ---- edits and deletes ----

  /** moderates reports whether this user may delete others' messages of the open chat: a group admin. */
  private moderates(): boolean {
    const v = this.view;
    if (!v || v.kind !== "group") return false;
    const role = v.members.find((m) => m.user_id === this.me?.id)?.role;
    return role === "owner" || role === "admin";
  }

  /** editableFor is how many ms the sender may still edit a message sent at sentAt; Infinity without a limit. */
  private editableFor(sentAt: number): number {
    const w = this.editWindowMs;
    if (!w) return Infinity; // no limit, or not told yet (the server decides either way)
    return sentAt + w - Date.now() + 1; // the server refuses only once more than the window passed
  }

  private renderAllActions(): void {
    for (const li of this.view?.bySeq.values() ?? []) this.renderActions(li);
  }

  /**
   * renderActions draws the buttons of a shown message: Edit (the sender, within the edit
   * window: the button goes when it passes), Delete for everyone (the sender, a group admin) and
   * Delete for me (anyone). The server decides; this only offers what it would accept.
   */
  private renderActions(li: HTMLLIElement): void {
    const v = this.view;
    li.querySelector(".actions")?.remove();
    const seq = Number(li.dataset.seq);
    if (!v || !this.me || !seq || li.classList.contains("deleted") || li.classList.contains("event") || !li.dataset.sender) return;
    const mine = li.dataset.sender === this.me.id;
    const left = this.editableFor(Number(li.dataset.sentAt));
    li.dataset.editable = String(mine && left > 0);
    const button = (action: string, label: string, aria: string, onClick: (b: HTMLButtonElement) => void): HTMLButtonElement => {
      const b = el("button", { type: "button", class: "link", "data-action": action, "aria-label": aria }, label);
      b.addEventListener("click", () => onClick(b));
      return b;
    };
    const buttons: HTMLButtonElement[] = [];
    if (mine && left > 0 && !li.querySelector("form.edit")) {
      buttons.push(button("edit", "Edit", "Edit message", () => this.startEdit(li)));
      if (left !== Infinity) {
        window.setTimeout(() => {
          if (li.isConnected) this.renderActions(li);
        }, Math.min(left, 2 ** 31 - 1));
      }
    }
    if (mine || this.moderates()) {
      buttons.push(button("delete", "Delete", "Delete message for everyone", (b) => {
        if (b.dataset.confirm !== "yes") {
          b.dataset.confirm = "yes";
          b.textContent = "Delete for everyone?";
          return;
        }
        void this.onDeleteMessage(li, false);
      }));
    }
    buttons.push(button("hide", "Delete for me", "Delete message for me", () => void this.onDeleteMessage(li, true)));
    li.querySelector(".meta")?.prepend(el("span", { class: "actions" }, ...buttons));
  }

  /** startEdit replaces the message's text with an editor holding it: Enter or Save sends, Escape or Cancel closes. */
  private startEdit(li: HTMLLIElement): void {
    const body = li.querySelector<HTMLElement>("p.text");
    if (!body || li.querySelector("form.edit")) return;
    const box = el("textarea", { class: "edit-text", "aria-label": "Edited text", rows: 2 });
    box.value = this.textOf.get(li) ?? body.textContent ?? "";
    const form = el(
      "form",
      { class: "edit" },
      box,
      el("button", { type: "submit" }, "Save"),
      el("button", { type: "button", class: "link", "data-action": "cancel" }, "Cancel"),
    );
    const close = () => {
      form.remove();
      body.hidden = false;
      this.renderActions(li);
    };
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      void this.onSaveEdit(li, box.value, close);
    });
    form.querySelector("[data-action=cancel]")!.addEventListener("click", close);
    box.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        form.requestSubmit();
      } else if (e.key === "Escape") {
        close();
      }
    });
    body.hidden = true;
    li.querySelector("button.fold")?.remove();
    li.insertBefore(form, body.nextSibling);
    li.querySelector("[data-action=edit]")?.remove();
    box.focus();
  }

  /** onSaveEdit sends an edit; the edit event (to every device) shows the new text. */
  private async onSaveEdit(li: HTMLLIElement, value: string, close: () => void): Promise<void> {
    const v = this.view;
    const err = byId("chat-error");
    const text = value.trim();
    if (!v || !this.conn) return;
    if (text === (this.textOf.get(li) ?? "")) {
      close();
      return;
    }
    if (text === "") {
      err.textContent = "An edit cannot be empty: delete the message instead.";
      return;
    }
    const n = codePoints(text);
    if (n > MAX_TEXT) {
      err.textContent = `This text has ${n.toLocaleString("en")} characters; the limit is ${MAX_TEXT.toLocaleString("en")}.`;
      return;
    }
    err.textContent = "";
    try {
      await this.conn.edit(v.id, Number(li.dataset.seq), text);
      close();
    } catch (x) {
      if (this.view === v) err.textContent = "Not edited: " + friendly(x);
    }
  }

  /** onDeleteMessage deletes a message for everyone, or for this user only (forMe). */
  private async onDeleteMessage(li: HTMLLIElement, forMe: boolean): Promise<void> {
    const v = this.view;
    const err = byId("chat-error");
    if (!v || !this.conn) return;
    err.textContent = "";
    try {
      await this.conn.delete(v.id, Number(li.dataset.seq), { forMe });
    } catch (x) {
      if (this.view === v) err.textContent = "Not deleted: " + friendly(x);
      this.renderActions(li); // drop a pending confirmation
    }
  }
}

function setTick(li: HTMLElement, tick: Tick): void {
  const t = li.querySelector<HTMLElement>(".tick");
  if (!t || t.dataset.tick === tick) return;
  t.dataset.tick = tick;
  li.dataset.tick = tick;
  t.textContent = tickText[tick];
  t.setAttribute("aria-label", tickLabel[tick]);
  t.title = tickLabel[tick];
}
