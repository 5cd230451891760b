package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/ratelimit"
	"github.com/natter-chat/natter/sdk/go/protocol"
)

// HTTP-only error codes. The API also answers with protocol.CodeInvalidJSON, CodeInvalidUTF8,
// CodeNotMember, CodeUnavailable (retry later) and CodeInternal (retry later).
//
// CodeRateLimited (429) and protocol.CodeUnavailable (503) may come with a Retry-After header (whole
// seconds): the client waits that long before trying again.
const (
	CodeInvalidRequest     protocol.Code = "invalid_request"         // a parameter or field is missing or malformed
	CodeInvalidHandle      protocol.Code = "invalid_handle"          // not 3-32 characters of [a-z0-9_] (any case)
	CodeInvalidPassword    protocol.Code = "invalid_password"        // not 8-72 bytes
	CodeInvalidDisplayName protocol.Code = "invalid_display_name"    // not 1-64 visible code points
	CodeHandleTaken        protocol.Code = "handle_taken"            // another account has the handle
	CodeBadCredentials     protocol.Code = "bad_credentials"         // wrong handle or password (never says which)
	CodeUnauthorized                     = protocol.CodeUnauthorized // no, malformed, forged or expired bearer token, or its account is gone
	CodeSessionEnded       protocol.Code = "session_ended"           // a refresh refused: the session was revoked, idle too long, or its refresh token reused or unknown; log in again
	CodeSessionNotFound    protocol.Code = "session_not_found"       // no such session of yours
	CodeUserNotFound       protocol.Code = "user_not_found"          // no such user
	CodeSelfConversation   protocol.Code = "self_conversation"       // a direct conversation with yourself
	CodeMessageNotFound    protocol.Code = "message_not_found"       // no such message that you may see
	CodeNotFound           protocol.Code = "not_found"               // no such route
	CodeMethodNotAllowed   protocol.Code = "method_not_allowed"      // the route exists for other methods
	CodeBodyTooLarge       protocol.Code = "body_too_large"          // over Config.BodyLimit
	CodeOriginNotAllowed   protocol.Code = "origin_not_allowed"      // a CORS preflight from an origin Config.Origins does not allow
	CodeRateLimited        protocol.Code = "rate_limited"            // over a rate limit (Config.Limits); see Retry-After
	CodeNotARequest        protocol.Code = "not_a_request"           // accept or ignore of a conversation that is not a direct request made to you
)

// apiError is an error answer: status, code and a message safe to show the client. A cause, if
// any, is logged (at warn level) and never sent. A retryAfter > 0 goes out as Retry-After.
type apiError struct {
	status     int
	code       protocol.Code
	message    string
	cause      error
	retryAfter time.Duration
}

func (e *apiError) Error() string {
	if e.cause != nil {
		return string(e.code) + ": " + e.message + ": " + e.cause.Error()
	}
	return string(e.code) + ": " + e.message
}

func (e *apiError) Unwrap() error { return e.cause }

func errorf(status int, code protocol.Code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

// errNotMember is the one answer for a conversation the caller may not see, whether it does not
// exist, the caller never was a member, or (where history is not asked) the caller was removed.
var errNotMember = errorf(http.StatusNotFound, protocol.CodeNotMember, "no such conversation")

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    protocol.Code `json:"code"`
	Message string        `json:"message"`
}

// writeError answers with err. This is the one place where request errors are logged.
func (s *Server) writeError(c *fiber.Ctx, err error) {
	var (
		ae *apiError
		fe *fiber.Error
	)
	switch {
	case errors.As(err, &ae):
		if ae.cause != nil {
			s.log.Warn("request failed", requestFields(c, zap.String("code", string(ae.code)), zap.Error(ae.cause))...)
		}
	case errors.As(err, &fe):
		ae = fromFiber(fe)
	case transient(err):
		s.log.Warn("request failed", requestFields(c, zap.String("code", string(protocol.CodeUnavailable)), zap.Error(err))...)
		ae = errorf(http.StatusServiceUnavailable, protocol.CodeUnavailable, "temporarily unavailable, retry")
	default:
		s.log.Error("request failed", requestFields(c, zap.String("code", string(protocol.CodeInternal)), zap.Error(err))...)
		ae = errorf(http.StatusInternalServerError, protocol.CodeInternal, "internal error")
	}
	if ae.status == http.StatusUnauthorized {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="natter"`)
	}
	if ae.retryAfter > 0 {
		c.Set(fiber.HeaderRetryAfter, ratelimit.RetryAfter(ae.retryAfter))
	}
	if err := c.Status(ae.status).JSON(errorBody{errorDetail{ae.code, ae.message}}); err != nil {
		s.log.Error("write error answer", zap.Error(err))
	}
}

// transient reports errors a retry may cure: the request ran out of time or NATS did not answer.
func transient(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrConnectionClosed) ||
		errors.Is(err, nats.ErrConnectionReconnecting)
}

// fromFiber maps fiber's and fasthttp's own errors (routing, limits, malformed HTTP).
func fromFiber(fe *fiber.Error) *apiError {
	switch fe.Code {
	case http.StatusNotFound:
		return errorf(fe.Code, CodeNotFound, "no such route")
	case http.StatusMethodNotAllowed:
		return errorf(fe.Code, CodeMethodNotAllowed, "method not allowed on this route")
	case http.StatusRequestEntityTooLarge:
		return errorf(fe.Code, CodeBodyTooLarge, "request body too large")
	case http.StatusRequestTimeout:
		return errorf(fe.Code, CodeInvalidRequest, "request not received in time")
	}
	if fe.Code >= 500 {
		return errorf(fe.Code, protocol.CodeInternal, "internal error")
	}
	return errorf(fe.Code, CodeInvalidRequest, "%s", http.StatusText(fe.Code))
}

func requestFields(c *fiber.Ctx, extra ...zap.Field) []zap.Field {
	f := []zap.Field{zap.String("method", c.Method()), zap.String("route", c.Route().Path)}
	if uid, ok := c.Locals(userKey{}).(string); ok {
		f = append(f, zap.String("user", uid))
	}
	return append(f, extra...)
}

// decodeBody reads the request body as one JSON object into v. Unknown fields are ignored.
// Bodies that are not UTF-8 get invalid_utf8 (encoding/json would silently replace the bad
// bytes); anything but one well-formed object gets invalid_json.
func decodeBody(c *fiber.Ctx, v any) error {
	body := c.Body()
	if !utf8.Valid(body) {
		return errorf(http.StatusBadRequest, protocol.CodeInvalidUTF8, "body is not valid UTF-8")
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return errorf(http.StatusBadRequest, protocol.CodeInvalidJSON, "body must be one JSON object")
	}
	if err := json.Unmarshal(body, v); err != nil {
		var (
			syn *json.SyntaxError
			typ *json.UnmarshalTypeError
		)
		switch {
		case errors.As(err, &syn):
			return errorf(http.StatusBadRequest, protocol.CodeInvalidJSON, "body is not valid JSON (at byte %d)", syn.Offset)
		case errors.As(err, &typ) && typ.Field != "":
			return errorf(http.StatusBadRequest, protocol.CodeInvalidJSON, "field %q must be a %s", typ.Field, typ.Type.Kind())
		}
		return errorf(http.StatusBadRequest, protocol.CodeInvalidJSON, "body is not valid JSON")
	}
	return nil
}
