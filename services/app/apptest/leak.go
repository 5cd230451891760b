package apptest

import "go.uber.org/goleak"

// IgnoreLibraryGoroutines are the goleak options for goroutines that libraries natter uses keep
// after a clean stop: fasthttp's process-wide date updater, and its worker-pool cleaner, which
// notices a stopped server only on its next 10-second tick and then exits.
func IgnoreLibraryGoroutines() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
	}
}
