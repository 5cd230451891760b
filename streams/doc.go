// Package streams is natter's event contract: the subjects, the JetStream stream, consumer and
// key-value definitions, and the versioned event envelopes that every component and every
// backend team's consumer agree on. It imports almost nothing so that anyone can depend on it.
package streams
