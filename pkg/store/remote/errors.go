package remote

import (
	"context"
	"errors"

	"github.com/natter-chat/natter/pkg/store"
)

// Error codes a server answers with. A client turns them back into errors that wrap the
// matching sentinel, so errors.Is works across the bus as it does on the served store.
const (
	CodeNotFound   = "not_found"   // store.ErrNotFound
	CodeConflict   = "conflict"    // store.ErrConflict
	CodeBadPage    = "bad_page"    // store.ErrBadPage
	CodeBusy       = "busy"        // ErrBusy: every worker and queue slot taken; the request did not run
	CodeBadRequest = "bad_request" // the request could not be decoded or names no method
	CodeTooLarge   = "too_large"   // the reply would exceed the NATS max payload
	CodeTimeout    = "timeout"     // context.DeadlineExceeded: the caller's time ran out on the server
	CodeInternal   = "internal"    // any other error of the served store
)

var (
	// ErrBusy: the server turned the request away before running it because its workers and
	// queue were full. The client retries it until its deadline and returns it wrapped only
	// when the deadline passed first.
	ErrBusy = errors.New("store server busy")
	// ErrClosed is returned by every method of a Client after Close.
	ErrClosed = errors.New("remote store: client closed")
)

// Error is an error a server answered with. Errors.Is matches it against store.ErrNotFound,
// store.ErrConflict, store.ErrBadPage, ErrBusy and context.DeadlineExceeded by its Code.
type Error struct {
	Code    string // one of the Code* constants, or a code of a newer server
	Message string // the served store's error text
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code
	}
	return e.Message
}

// Unwrap returns the sentinel error of the code, if it has one.
func (e *Error) Unwrap() error {
	switch e.Code {
	case CodeNotFound:
		return store.ErrNotFound
	case CodeConflict:
		return store.ErrConflict
	case CodeBadPage:
		return store.ErrBadPage
	case CodeBusy:
		return ErrBusy
	case CodeTimeout:
		return context.DeadlineExceeded
	}
	return nil
}

// codeOf is the code a server answers err with.
func codeOf(err error) string {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return CodeNotFound
	case errors.Is(err, store.ErrConflict):
		return CodeConflict
	case errors.Is(err, store.ErrBadPage):
		return CodeBadPage
	case errors.Is(err, context.DeadlineExceeded):
		return CodeTimeout
	}
	return CodeInternal
}

// errNoRevisions answers ReviseMessage when the served store cannot revise messages.
var errNoRevisions = errors.New("the served store does not revise messages")
