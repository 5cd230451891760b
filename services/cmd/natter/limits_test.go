package main

import (
	"flag"
	"net/netip"
	"testing"
	"time"

	"github.com/natter-chat/natter/services/api"
	"github.com/natter-chat/natter/services/app"
	"github.com/natter-chat/natter/services/gateway"
)

func parseLimits(t *testing.T, args ...string) (api.Config, error) {
	t.Helper()
	cfg, _, err := parseBothLimits(t, args...)
	return cfg, err
}

// parseBothLimits parses the limit flags into the API's and the gateway's default configs.
func parseBothLimits(t *testing.T, args ...string) (api.Config, gateway.Config, error) {
	t.Helper()
	def := app.DefaultConfig()
	cfg, gw := def.API, def.Gateway
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	apply := limitFlags(fs, &cfg, &gw)
	if err := fs.Parse(args); err != nil {
		return cfg, gw, err
	}
	return cfg, gw, apply()
}

func TestGatewayLimitFlags(t *testing.T) {
	_, gw, err := parseBothLimits(t)
	if err != nil {
		t.Fatal(err)
	}
	if gw.UpgradesPerAddr != gateway.DefaultUpgradesPerAddr || gw.SocketsPerAddr != gateway.DefaultSocketsPerAddr ||
		gw.AddrLimitKeys != api.DefaultMaxKeys || len(gw.TrustedProxies) != 0 {
		t.Fatalf("no flags: %+v %d %d %v", gw.UpgradesPerAddr, gw.SocketsPerAddr, gw.AddrLimitKeys, gw.TrustedProxies)
	}
	_, gw, err = parseBothLimits(t, "--limit-upgrade-addr", "10/1s", "--limit-sockets-addr", "5", "--limit-max-keys", "9",
		"--trusted-proxies", "10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	if gw.UpgradesPerAddr != (api.Rate{N: 10, Per: time.Second}) || gw.SocketsPerAddr != 5 || gw.AddrLimitKeys != 9 ||
		len(gw.TrustedProxies) != 1 || gw.TrustedProxies[0] != netip.MustParsePrefix("10.0.0.0/8") {
		t.Fatalf("flags: %+v %d %d %v", gw.UpgradesPerAddr, gw.SocketsPerAddr, gw.AddrLimitKeys, gw.TrustedProxies)
	}
	_, gw, err = parseBothLimits(t, "--rate-limits=false")
	if err != nil {
		t.Fatal(err)
	}
	if !gw.UpgradesPerAddr.IsOff() || gw.SocketsPerAddr != 0 {
		t.Fatalf("--rate-limits=false: %+v %d", gw.UpgradesPerAddr, gw.SocketsPerAddr)
	}
}

func TestLimitFlags(t *testing.T) {
	cfg, err := parseLimits(t)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Limits != api.DefaultLimits() || cfg.HashWait != api.DefaultHashWait || cfg.HashConcurrency < 1 {
		t.Fatalf("no flags: %+v", cfg)
	}
	cfg, err = parseLimits(t, "--limit-signup-addr", "5/1m", "--limit-write-account", "off", "--login-max-failures", "3",
		"--login-failure-window", "1m", "--hash-concurrency", "3", "--trusted-proxies", "10.0.0.0/8, ::1/128")
	if err != nil {
		t.Fatal(err)
	}
	want := api.DefaultLimits()
	want.SignupAddr, want.WriteAccount = api.Rate{N: 5, Per: time.Minute}, api.Off
	want.LoginFailures, want.FailureWindow = 3, time.Minute
	if cfg.Limits != want || cfg.HashConcurrency != 3 || len(cfg.TrustedProxies) != 2 ||
		cfg.TrustedProxies[1] != netip.MustParsePrefix("::1/128") {
		t.Fatalf("flags: %+v", cfg)
	}
	cfg, err = parseLimits(t, "--rate-limits=false", "--limit-max-keys", "7")
	if err != nil {
		t.Fatal(err)
	}
	want = api.NoLimits()
	want.MaxKeys = 7
	if cfg.Limits != want {
		t.Fatalf("--rate-limits=false: %+v", cfg.Limits)
	}
	if _, err := parseLimits(t, "--limit-login-addr", "fast"); err == nil {
		t.Fatal("--limit-login-addr fast accepted")
	}
	if _, err := parseLimits(t, "--trusted-proxies", "10.0.0.0/99"); err == nil {
		t.Fatal("a bad --trusted-proxies accepted")
	}
}
