import type { ErrorCode } from "./types.js";

/** An `error` frame the gateway answered a request with; `code` says what went wrong. */
export class ProtocolError extends Error {
  readonly code: ErrorCode;
  readonly ref?: string;
  constructor(code: ErrorCode, message: string, ref?: string) {
    super(`natter: ${code}: ${message}`);
    this.name = "ProtocolError";
    this.code = code;
    this.ref = ref;
  }
}

/** An HTTP API error answer (`{"error":{"code","message"}}`). */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  /** Seconds from a Retry-After header (429, some 503s), if any. */
  readonly retryAfter?: number;
  constructor(status: number, code: string, message: string, retryAfter?: number) {
    super(`natter api: ${status} ${code}: ${message}`);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

/** The client was closed (by close(), or by the server with a code that forbids reconnecting). */
export class ClosedError extends Error {
  constructor(message = "natter: client closed") {
    super(message);
    this.name = "ClosedError";
  }
}

/** The server closed the socket with a code that says not to reconnect (4400-4499). */
export class CloseError extends ClosedError {
  readonly code: number;
  readonly reason: string;
  constructor(code: number, reason: string) {
    super(`natter: closed by server with ${code}: ${reason}`);
    this.name = "CloseError";
    this.code = code;
    this.reason = reason;
  }
}

/** A request's AbortSignal fired. */
export class AbortError extends Error {
  constructor(message = "natter: aborted") {
    super(message);
    this.name = "AbortError";
  }
}

/**
 * Whether a send that failed with err may be retried with the same client_msg_id: server errors
 * `unavailable`, `internal` and `rate_limited`, and transport failures (timeouts, lost
 * connections); not other protocol errors, a closed client or an abort.
 */
export function retryable(err: unknown): boolean {
  if (err instanceof ProtocolError) {
    return err.code === "unavailable" || err.code === "internal" || err.code === "rate_limited";
  }
  return !(err instanceof ClosedError) && !(err instanceof AbortError);
}

/** Whether a close code tells the client to reconnect: everything but 4400-4499. */
export function reconnectable(code: number): boolean {
  return code < 4400 || code > 4499;
}
