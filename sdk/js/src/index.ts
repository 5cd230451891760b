// natter's TypeScript SDK: NatterApi for the HTTP API, NatterClient for the WebSocket (one
// connected device), cursor stores, and the types of every frame and API object. Browser-safe:
// compiled with the DOM library and no node types, so nothing here can use a node module.
export { NatterApi } from "./api.js";
export type { ApiOptions } from "./api.js";
export { NatterClient } from "./client.js";
export type {
  ClientEventMap,
  ClientOptions,
  ConnectionState,
  Listener,
  SendOptions,
  StateChange,
  WebSocketConstructor,
  WebSocketLike,
} from "./client.js";
export { AbortError, ApiError, ClosedError, CloseError, ProtocolError, reconnectable, retryable } from "./errors.js";
export { IndexedDBCursorStore, MemoryCursorStore } from "./storage.js";
export type { CursorStore } from "./storage.js";
export { backoff } from "./backoff.js";
export { ulid } from "./ids.js";
export { TypingTracker } from "./typing.js";
export { MessageView } from "./messages.js";
export type { ShownMessage } from "./messages.js";
export type { TypingTrackerOptions } from "./typing.js";
export * from "./types.js";
