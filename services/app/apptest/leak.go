package apptest

import (
	"go.uber.org/goleak"

	"github.com/natter-chat/natter/pkg/natsx/natsxtest"
)

// IgnoreLibraryGoroutines are the goleak options for goroutines that libraries natter uses keep
// after a clean stop: fasthttp's process-wide date updater, and its worker-pool cleaner, which
// notices a stopped server only on its next 10-second tick and then exits; and Bleve's analysis
// workers, started when the search target's index package loads; and nats-server's
// (natsxtest.IgnoreServerGoroutines).
func IgnoreLibraryGoroutines() []goleak.Option {
	return append(natsxtest.IgnoreServerGoroutines(),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		// Bleve (the search target's index) starts its analysis workers when its package loads.
		goleak.IgnoreTopFunction("github.com/blevesearch/bleve_index_api.AnalysisWorker"),
	)
}
