package natsxtest

import "go.uber.org/goleak"

// IgnoreServerGoroutines are the goleak options for goroutines nats-server keeps after a clean
// shutdown: a stream that sources another (CONSENT, from STATE) waits up to 30 s for the answer
// to its sourcing consumer's creation, and a server shut down meanwhile never answers; the
// goroutine then ends on its timer.
func IgnoreServerGoroutines() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*stream).trySetupSourceConsumer.func3"),
	}
}
