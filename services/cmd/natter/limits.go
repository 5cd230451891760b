package main

import (
	"flag"

	"github.com/natter-chat/natter/pkg/clientaddr"
	"github.com/natter-chat/natter/services/api"
	"github.com/natter-chat/natter/services/gateway"
)

// limitFlags registers the rate-limit and password-hashing flags of natter run: the API's, and
// the gateway's per-address upgrade limits (see docs/security.md). The returned function applies
// --rate-limits=false, --limit-max-keys and --trusted-proxies to both after parsing.
func limitFlags(fs *flag.FlagSet, c *api.Config, gw *gateway.Config) func() error {
	l := &c.Limits
	fs.Var(&l.SignupAddr, "limit-signup-addr", "sign-ups per client address, as N/period (a burst of N, refilled at N per period) or off")
	fs.Var(&l.LoginAddr, "limit-login-addr", "logins per client address, as N/period or off")
	fs.Var(&l.Handle, "limit-handle", "sign-ups and logins naming one handle, from all addresses together, as N/period or off")
	fs.Var(&l.RefreshAddr, "limit-refresh-addr", "token refreshes (POST /v1/token/refresh) per client address, as N/period or off")
	fs.Var(&l.WriteAddr, "limit-write-addr", "authenticated writes (POST, PUT, PATCH, DELETE) per client address, as N/period or off")
	fs.Var(&l.WriteAccount, "limit-write-account", "authenticated writes per account, as N/period or off")
	fs.IntVar(&l.LoginFailures, "login-max-failures", l.LoginFailures, "failed logins of one handle within --login-failure-window before further attempts are refused (429) until the window ends; -1: no such limit")
	fs.DurationVar(&l.FailureWindow, "login-failure-window", l.FailureWindow, "window of --login-max-failures, counted from the first failure; a successful login clears it")
	fs.IntVar(&l.MaxKeys, "limit-max-keys", l.MaxKeys, "addresses, handles or accounts each limit remembers; past it the least recently seen is forgotten")
	fs.IntVar(&c.PasswordCost, "password-cost", c.PasswordCost, "bcrypt cost of new password hashes, 4-31 (0: bcrypt's default, 10); each step doubles the work. Below 10 only for tests")
	fs.IntVar(&c.HashConcurrency, "hash-concurrency", c.HashConcurrency, "bcrypt computations (sign-ups, logins) running at once")
	fs.DurationVar(&c.HashWait, "hash-wait", c.HashWait, "a sign-up or login waits this long for a bcrypt slot, then gets 503 with Retry-After")
	fs.Var(&gw.UpgradesPerAddr, "limit-upgrade-addr", "WebSocket upgrades per client address, at each gateway, as N/period or off")
	fs.IntVar(&gw.SocketsPerAddr, "limit-sockets-addr", gw.SocketsPerAddr, "WebSockets one client address may hold open at once, at each gateway (0: no bound)")
	enabled := fs.Bool("rate-limits", true, "false lifts every --limit-* and --login-max-failures limit, the gateway's included (benchmarks, tests); --hash-concurrency still holds")
	proxies := fs.String("trusted-proxies", "", "comma-separated CIDRs of reverse proxies whose X-Forwarded-For names the client address (default: none, the TCP peer is the client)")
	return func() error {
		if !*enabled {
			keys := l.MaxKeys
			*l = api.NoLimits()
			l.MaxKeys = keys
			gw.LiftAddrLimits()
		}
		gw.AddrLimitKeys = l.MaxKeys
		p, err := clientaddr.ParseCIDRs(*proxies)
		if err != nil {
			return err
		}
		c.TrustedProxies, gw.TrustedProxies = p, p
		return nil
	}
}
