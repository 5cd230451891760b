// Package streams is natter's event contract: the subjects, the JetStream stream, consumer and
// key-value definitions, and the versioned event envelopes that every component and every
// backend team's consumer agree on. Its dependencies are nats.go (the jetstream package, for
// the stream, consumer and bucket configurations) and the client protocol (sdk/go/protocol,
// standard library only: the ids' shape, and the bodies events share with client frames), so
// that a consumer can use it without natter's server code.
package streams
