package api

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/ratelimit"
	"github.com/natter-chat/natter/sdk/go/protocol"
)

// Reasons a request is refused before its work, the "reason" label of
// natter_api_rejected_total.
const (
	reasonSignupAddr    = "signup_addr"
	reasonLoginAddr     = "login_addr"
	reasonHandle        = "handle"
	reasonRefreshAddr   = "refresh_addr"
	reasonLoginFailures = "login_failures"
	reasonWriteAddr     = "write_addr"
	reasonWriteAccount  = "write_account"
	reasonHashBusy      = "hash_busy"
)

// rateLimits are the server's limiters, built from Config.Limits; a nil one limits nothing.
type rateLimits struct {
	signupAddr, loginAddr, handle, refreshAddr, writeAddr, writeAccount *ratelimit.Keyed
	failures                                                            *ratelimit.Failures
}

func newRateLimits(l Limits) rateLimits {
	return rateLimits{
		signupAddr:   ratelimit.NewKeyed(l.SignupAddr, l.MaxKeys),
		loginAddr:    ratelimit.NewKeyed(l.LoginAddr, l.MaxKeys),
		handle:       ratelimit.NewKeyed(l.Handle, l.MaxKeys),
		refreshAddr:  ratelimit.NewKeyed(l.RefreshAddr, l.MaxKeys),
		writeAddr:    ratelimit.NewKeyed(l.WriteAddr, l.MaxKeys),
		writeAccount: ratelimit.NewKeyed(l.WriteAccount, l.MaxKeys),
		failures:     ratelimit.NewFailures(l.LoginFailures, l.FailureWindow, l.MaxKeys),
	}
}

// limit takes a token of key's bucket in l, or returns a 429 answer naming reason.
func (s *Server) limit(l *ratelimit.Keyed, reason, key string) error {
	if d := l.Wait(key, s.now()); d > 0 {
		return s.tooMany(reason, key, d)
	}
	return nil
}

// tooMany is the 429 answer: retry after d.
func (s *Server) tooMany(reason, key string, d time.Duration) error {
	s.reject(reason)
	s.log.Debug("rate limited", zap.String("reason", reason), zap.String("key", key), zap.Duration("retry_after", d))
	return &apiError{
		status: http.StatusTooManyRequests, code: CodeRateLimited,
		message: "too many requests, retry later", retryAfter: d,
	}
}

// hashError answers a failed Hasher call: no slot came free in time is 503 with Retry-After;
// anything else (the request's own deadline) is wrapped for writeError.
func (s *Server) hashError(err error, what string) error {
	if errors.Is(err, auth.ErrBusy) {
		s.reject(reasonHashBusy)
		return &apiError{
			status: http.StatusServiceUnavailable, code: protocol.CodeUnavailable,
			message: "too many sign-ups and logins at once, retry", retryAfter: time.Second,
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}

func (s *Server) reject(reason string) {
	if s.metrics != nil {
		s.metrics.rejected.WithLabelValues(reason).Inc()
	}
}

// limitWrite applies the per-address write limit to writes (any method but GET, HEAD and
// OPTIONS), before their token is checked.
func (s *Server) limitWrite(c *fiber.Ctx) error {
	if !isWrite(c) {
		return nil
	}
	addr := s.clientAddr(c)
	return s.limit(s.limits.writeAddr, reasonWriteAddr, addr)
}

func isWrite(c *fiber.Ctx) bool {
	switch c.Method() {
	case fiber.MethodGet, fiber.MethodHead, fiber.MethodOptions:
		return false
	}
	return true
}
