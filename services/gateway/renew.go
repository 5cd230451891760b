package gateway

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/sdk/go/protocol"
)

// handleAuth renews the socket with a fresh access token: the one check every upgrade passes
// (auth.Authenticator), and the token must be of the socket's own user and login session (a new
// login is a new session: reconnect with it). The socket then lives until the new token's expiry.
// A refused token changes nothing: the socket still closes at the old expiry.
func (s *session) handleAuth(f protocol.ClientFrame) {
	ctx, cancel := context.WithTimeout(s.ctx, authTimeout)
	defer cancel()
	claims, err := s.g.auth.Authenticate(ctx, f.Token)
	switch {
	case errors.Is(err, auth.ErrRefused):
		s.reject(protocol.Errorf(protocol.CodeUnauthorized, "the token was refused (invalid, expired, or its session ended)").WithRef(f.ID))
		return
	case err != nil:
		s.logger().Warn("auth frame: token not checked", zap.Error(err))
		s.reject(protocol.Errorf(protocol.CodeUnavailable, "the token could not be checked; retry").WithRef(f.ID))
		return
	case claims.UserID != s.userID || claims.SessionID != s.login:
		s.reject(protocol.Errorf(protocol.CodeUnauthorized, "the token is of another login session; reconnect with it").WithRef(f.ID))
		return
	}
	s.expiry.Reset(time.Until(claims.Expires))
	s.send(protocol.Auth{Type: protocol.TypeAuth, Ref: f.ID, ExpiresAt: claims.Expires.UnixMilli()})
}
