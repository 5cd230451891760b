package push

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"firebase.google.com/go/v4/errorutils"
	"firebase.google.com/go/v4/messaging"
	fcm "github.com/appleboy/go-fcm"
	"go.uber.org/zap"
)

// Sender delivers one notification to one device.
//
// Contract: Send makes at most one delivery attempt (retries are the caller's: every retry of
// push is a JetStream redelivery, counted and bounded by Config.MaxAttempts); it returns nil when
// the message was accepted, otherwise a *SendError. Safe for concurrent use.
type Sender interface {
	Send(ctx context.Context, m *messaging.Message) error
	// Provider names the sender in the ledger and logs: "fcm" or "log".
	Provider() string
}

// ErrorKind says what a failed send means for the token and the request.
type ErrorKind int

const (
	// Transient: 429, 5xx, a timeout or a network error; retry later (after RetryAfter if set).
	Transient ErrorKind = iota
	// Unregistered: the token is no longer valid (the app was uninstalled, the token rotated).
	Unregistered
	// InvalidToken: the token is malformed or belongs to another project.
	InvalidToken
	// Rejected: FCM refused this message for good (bad argument, APNs credentials).
	Rejected
)

// SendError is a failed send.
type SendError struct {
	Kind       ErrorKind
	Status     int           // HTTP status, 0 if there was no answer
	Code       string        // FCM error code (UNREGISTERED, QUOTA_EXCEEDED, ...), if any
	RetryAfter time.Duration // from the Retry-After header, 0 if none
	Err        error
}

func (e *SendError) Error() string {
	var b strings.Builder
	b.WriteString("fcm")
	if e.Status != 0 {
		fmt.Fprintf(&b, ": %d", e.Status)
	}
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

func (e *SendError) Unwrap() error { return e.Err }

// fcmSender sends through go-fcm (the FCM HTTP v1 API).
type fcmSender struct {
	client  *fcm.Client
	timeout time.Duration
}

// newFCMSender builds the go-fcm client. The Firebase SDK under go-fcm retries 503s and network
// errors by itself, sleeping inside the call (for as long as a Retry-After asks, up to two
// minutes); its own retry cannot be turned off. Our transport (oneAttempt) records every answer
// and, after one the SDK would retry, cancels the send's context: the SDK gives up at once, and
// push retries through a JetStream redelivery instead, honoring the Retry-After it recorded.
func newFCMSender(ctx context.Context, cfg Config) (*fcmSender, error) {
	base := cfg.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	opts := []fcm.Option{
		fcm.WithProjectID(cfg.ProjectID),
		fcm.WithHTTPClient(&http.Client{Transport: oneAttempt{base}}),
	}
	switch {
	case cfg.TokenSource != nil:
		opts = append(opts, fcm.WithTokenSource(cfg.TokenSource))
	default:
		opts = append(opts, fcm.WithCredentialsFile(cfg.CredentialsFile))
	}
	if cfg.Endpoint != "" {
		opts = append(opts, fcm.WithEndpoint(cfg.Endpoint))
	}
	c, err := fcm.NewClient(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("push: fcm client: %w", err)
	}
	return &fcmSender{client: c, timeout: cfg.SendTimeout}, nil
}

func (s *fcmSender) Provider() string { return "fcm" }

func (s *fcmSender) Send(ctx context.Context, m *messaging.Message) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	rec := &attempt{cancel: cancel}
	resp, err := s.client.Send(context.WithValue(ctx, attemptKey{}, rec), m)
	if err != nil { // the SDK refused the message before sending it
		return &SendError{Kind: Rejected, Err: err}
	}
	if len(resp.Responses) != 1 {
		return &SendError{Kind: Transient, Err: fmt.Errorf("%d responses for one message", len(resp.Responses))}
	}
	if r := resp.Responses[0]; !r.Success {
		return classify(r.Error, rec)
	}
	return nil
}

// classify maps a failed send to what it means.
func classify(err error, rec *attempt) *SendError {
	status, header, cut, netErr := rec.result()
	if cut { // an answer the SDK would have retried: 503 or no answer at all
		se := &SendError{Kind: Transient, Status: status, RetryAfter: retryAfter(header), Err: netErr}
		if status != 0 {
			se.Code = "UNAVAILABLE"
		}
		return se
	}
	se := &SendError{Kind: Transient, Status: status, Code: fcmCode(err), Err: err}
	if resp := errorutils.HTTPResponse(err); resp != nil {
		se.Status = resp.StatusCode
		se.RetryAfter = retryAfter(resp.Header)
	}
	switch {
	case messaging.IsUnregistered(err):
		se.Kind = Unregistered
	case messaging.IsSenderIDMismatch(err):
		se.Kind = InvalidToken
	case messaging.IsInvalidArgument(err):
		// INVALID_ARGUMENT is FCM's answer to a malformed token, and to a malformed message; only
		// the message text tells them apart. Our messages are built and size-checked here.
		se.Kind = Rejected
		if strings.Contains(strings.ToLower(err.Error()), "token") {
			se.Kind = InvalidToken
		}
	case messaging.IsThirdPartyAuthError(err):
		se.Kind = Rejected
	case se.Status == http.StatusTooManyRequests || se.Status >= 500 || se.Status == 0:
		se.Kind = Transient
	case se.Status == http.StatusUnauthorized || se.Status == http.StatusForbidden:
		// Our credentials: fixing them (or their propagation) within the retries still delivers.
		se.Kind = Transient
	case se.Status >= 400:
		se.Kind = Rejected
	}
	return se
}

// fcmCode is the FCM error code of err (UNREGISTERED, QUOTA_EXCEEDED, ...), or "".
func fcmCode(err error) string {
	for _, c := range []struct {
		is   func(error) bool
		code string
	}{
		{messaging.IsUnregistered, "UNREGISTERED"},
		{messaging.IsSenderIDMismatch, "SENDER_ID_MISMATCH"},
		{messaging.IsQuotaExceeded, "QUOTA_EXCEEDED"},
		{messaging.IsUnavailable, "UNAVAILABLE"},
		{messaging.IsInternal, "INTERNAL"},
		{messaging.IsThirdPartyAuthError, "THIRD_PARTY_AUTH_ERROR"},
		{messaging.IsInvalidArgument, "INVALID_ARGUMENT"},
	} {
		if c.is(err) {
			return c.code
		}
	}
	return ""
}

// maxRetryAfter caps a Retry-After header: a larger one (or one that overflows a Duration) is
// a broken or hostile answer, not a reason to hold a push for longer.
const maxRetryAfter = 24 * time.Hour

// retryAfter parses a Retry-After header: seconds or an HTTP date, at most maxRetryAfter.
func retryAfter(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil && secs > 0 {
		if secs > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return min(d, maxRetryAfter)
		}
	}
	return 0
}

type attemptKey struct{}

// attempt records the answer of one send's HTTP exchange.
type attempt struct {
	cancel context.CancelFunc

	mu     sync.Mutex
	status int
	header http.Header
	err    error
	cut    bool // the context was cancelled to stop the SDK's own retry
}

func (a *attempt) result() (int, http.Header, bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.status, a.header, a.cut, a.err
}

// oneAttempt is the transport under go-fcm's OAuth transport. It records each answer in the
// request's attempt and, for answers the SDK would retry (503, network errors), cancels the
// send so that the SDK returns instead of retrying.
type oneAttempt struct{ base http.RoundTripper }

func (t oneAttempt) RoundTrip(req *http.Request) (*http.Response, error) {
	rec, _ := req.Context().Value(attemptKey{}).(*attempt)
	resp, err := t.base.RoundTrip(req)
	if rec == nil {
		return resp, err
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if err != nil {
		rec.err, rec.cut = err, true
		rec.cancel()
		return nil, err
	}
	rec.status, rec.header = resp.StatusCode, resp.Header
	if resp.StatusCode == http.StatusServiceUnavailable {
		// Read the body now: the SDK reads it after we cancel, and must not fail on that.
		body, rerr := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
		if rerr != nil {
			rec.err = rerr
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		rec.cut = true
		rec.cancel()
	}
	return resp, nil
}

// logSender is the provider with no credentials: it logs what it would send.
type logSender struct{ log *zap.Logger }

func (s logSender) Provider() string { return "log" }

func (s logSender) Send(_ context.Context, m *messaging.Message) error {
	fields := []zap.Field{zap.String("token", redact(m.Token))}
	if m.Notification != nil {
		preview := m.Notification.Body
		if utf8.RuneCountInString(preview) > 80 {
			preview, _ = cutRunes(preview, 80)
			preview += "…"
		}
		fields = append(fields, zap.String("title", m.Notification.Title), zap.String("body", preview),
			zap.Int("body_runes", utf8.RuneCountInString(m.Notification.Body)))
	}
	if m.Android != nil {
		fields = append(fields, zap.String("collapse_key", m.Android.CollapseKey))
	}
	if m.APNS != nil && m.APNS.Payload != nil && m.APNS.Payload.Aps != nil && m.APNS.Payload.Aps.Badge != nil {
		fields = append(fields, zap.Int("badge", *m.APNS.Payload.Aps.Badge))
	}
	fields = append(fields, zap.Any("data", m.Data))
	s.log.Info("push not sent (no FCM credentials configured); it would be", fields...)
	return nil
}

// redact keeps the end of a token: enough to tell tokens apart in logs, not enough to use one.
func redact(token string) string {
	if len(token) <= 8 {
		return "…"
	}
	return "…" + token[len(token)-8:]
}
