// Package remote serves a store.Store over NATS request/reply (Serve) and implements
// store.Store as a client of it (Client). It lets natter's components run as separate processes
// on one machine around the embedded store, which only one process can open: that process owns
// the store and serves it; the others Dial.
//
// Contract:
//
//   - One owner. Exactly one process opens the backing store and serves it. Several servers in
//     one queue group are allowed only if they serve the same backing store (each request goes
//     to one of them); for Pebble that means one server.
//   - Consistency is the served store's: each request runs as one call of the served store, and
//     a client's call returns after that call returned, so the contract of package store holds
//     across processes (every write idempotent; reads reflect every write that returned before
//     they began). Requests run concurrently, in no particular order.
//   - Errors round-trip by code: errors.Is(err, store.ErrNotFound), store.ErrConflict and
//     store.ErrBadPage hold on the client as on the served store; other errors come back as an
//     *Error with the served store's text, wrapped as "remote store: <Method>: ...".
//   - Deadlines. A call is bounded by its context's deadline, or ClientConfig.Timeout when it has
//     none. The time left travels with the request, and a server drops a request still queued
//     when its caller has stopped waiting.
//   - Retries. A client retries (with jittered, doubling backoff, within the deadline) only a
//     request that provably did not run: one no server was subscribed to (nats.ErrNoResponders,
//     a store process restarting), and one the server turned away as busy (ErrBusy, its workers
//     and backlog full). It never retries after a timeout or a lost connection: the request may
//     have run, and although every write is idempotent its answer is not (CreateUser answers
//     ErrConflict, InsertMessage inserted=false the second time). The caller decides.
//   - Size. A request or reply is one NATS message, at most the server's max payload (8 MiB for
//     the embedded server, 1 MiB by default elsewhere). A request larger than that fails with
//     nats.ErrMaxPayload. A Messages page that does not fit in one reply is read in parts (see
//     Client.Messages). Any other reply larger than the max payload is answered CodeTooLarge.
//   - Stopping. Server.Stop removes the subscription at once, then answers every request it had
//     already received before it returns.
//
// Subjects are <prefix>.<Method> (default natter.store.v1.CreateUser, ...); the server
// subscribes to <prefix>.> so that a method it does not know is answered CodeBadRequest rather
// than left without a responder. The encoding is a versioned, lossless binary one (wire.go).
package remote
