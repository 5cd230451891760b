package api

import (
	"errors"
	"fmt"
	"time"

	"github.com/natter-chat/natter/pkg/ratelimit"
)

// Rate is a token bucket (see ratelimit.Rate); the zero Rate of a Limits field is its default.
type Rate = ratelimit.Rate

// Off is the Rate that limits nothing.
var Off = ratelimit.Off

// Limits are the API's per-client limits; see docs/security.md. Zero fields take the Default*
// values below; Off (or LoginFailures < 0) lifts one limit.
type Limits struct {
	// SignupAddr limits sign-ups per client address.
	SignupAddr Rate
	// LoginAddr limits logins per client address.
	LoginAddr Rate
	// Handle limits sign-ups and logins naming one handle, from all addresses together.
	Handle Rate
	// RefreshAddr limits token refreshes per client address.
	RefreshAddr Rate
	// WriteAddr limits authenticated writes (POST, PUT, PATCH, DELETE) per client address;
	// WriteAccount per account.
	WriteAddr    Rate
	WriteAccount Rate
	// LoginFailures logins of one handle may fail within FailureWindow (counted from the
	// first); further ones are refused without a password check until the window ends. A
	// successful login clears the count. < 0: no such limit.
	LoginFailures int
	FailureWindow time.Duration
	// MaxKeys bounds the addresses, handles or accounts each limit tracks; past it the least
	// recently seen is forgotten (its limit starts afresh).
	MaxKeys int
}

// Defaults of Limits.
var (
	DefaultSignupAddr    = Rate{N: 30, Per: time.Hour}
	DefaultLoginAddr     = Rate{N: 60, Per: time.Minute}
	DefaultHandle        = Rate{N: 20, Per: time.Minute}
	DefaultRefreshAddr   = Rate{N: 120, Per: time.Minute}
	DefaultWriteAddr     = Rate{N: 1200, Per: time.Minute}
	DefaultWriteAccount  = Rate{N: 300, Per: time.Minute}
	DefaultLoginFailures = 5
	DefaultFailureWindow = 5 * time.Minute
	DefaultMaxKeys       = ratelimit.DefaultMaxKeys
)

// NoLimits lifts every rate and failure limit, for tests and benchmarks that sign up and write
// faster than any client should.
func NoLimits() Limits {
	return Limits{
		SignupAddr: Off, LoginAddr: Off, Handle: Off, RefreshAddr: Off, WriteAddr: Off, WriteAccount: Off,
		LoginFailures: -1,
	}
}

// DefaultLimits are the limits of the zero Limits, spelled out.
func DefaultLimits() Limits { return Limits{}.withDefaults() }

func (l Limits) validate() error {
	for name, r := range map[string]Rate{
		"signup-addr": l.SignupAddr, "login-addr": l.LoginAddr, "handle": l.Handle, "refresh-addr": l.RefreshAddr,
		"write-addr": l.WriteAddr, "write-account": l.WriteAccount,
	} {
		if err := r.Validate("api: " + name); err != nil {
			return err
		}
	}
	if l.FailureWindow < 0 {
		return fmt.Errorf("api: login failure window %s is negative", l.FailureWindow)
	}
	if l.MaxKeys < 0 {
		return errors.New("api: max limiter keys is negative")
	}
	return nil
}

func (l Limits) withDefaults() Limits {
	for _, f := range []struct {
		r   *Rate
		def Rate
	}{
		{&l.SignupAddr, DefaultSignupAddr}, {&l.LoginAddr, DefaultLoginAddr}, {&l.Handle, DefaultHandle},
		{&l.RefreshAddr, DefaultRefreshAddr},
		{&l.WriteAddr, DefaultWriteAddr}, {&l.WriteAccount, DefaultWriteAccount},
	} {
		if *f.r == (Rate{}) {
			*f.r = f.def
		}
	}
	if l.LoginFailures == 0 {
		l.LoginFailures = DefaultLoginFailures
	}
	if l.FailureWindow == 0 {
		l.FailureWindow = DefaultFailureWindow
	}
	if l.MaxKeys == 0 {
		l.MaxKeys = DefaultMaxKeys
	}
	return l
}
