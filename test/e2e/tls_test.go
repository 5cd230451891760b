package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/natter-chat/natter/pkg/tlsx/tlsxtest"
	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/services/app/apptest"
)

// TestSIGHUPReloadsTheTLSCertificate runs the binary with --tls-cert and --tls-key, renews the
// certificate files and sends SIGHUP, as an operator's renewal hook would: new connections to
// the API and the gateway get the new certificate, and a socket opened before stays open.
func TestSIGHUPReloadsTheTLSCertificate(t *testing.T) {
	ca := tlsxtest.NewCA(t)
	certFile, keyFile := ca.Issue("natter")
	p := StartNatter(t, t.TempDir(), "--tls-cert", certFile, "--tls-key", keyFile)
	if !strings.HasPrefix(p.Addrs.API, "https://") || !strings.HasPrefix(p.Addrs.WebSocket, "wss://") {
		t.Fatalf("addresses %+v: want https:// and wss://", p.Addrs)
	}
	transport := &http.Transport{TLSClientConfig: ca.ClientConfig()}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport}
	status, raw := apptest.RequestWith(t, client, "POST", p.Addrs.API+"/v1/signup", "", map[string]string{"handle": "alice", "password": "pw-alice-long"})
	var signup struct {
		Token string `json:"token"`
	}
	if status != http.StatusCreated || json.Unmarshal(raw, &signup) != nil {
		t.Fatalf("sign-up over HTTPS: %d %s", status, raw)
	}
	ws := apptest.DialWith(t, apptest.WSURLFor(p.Addrs.WebSocket, signup.Token, "phone", nil),
		&websocket.DialOptions{HTTPClient: client})
	ws.NextOf(protocol.TypeSynced, wait)

	serial := func(rawURL string) []byte {
		t.Helper()
		u, err := url.Parse(rawURL)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := tls.Dial("tcp", u.Host, ca.ClientConfig())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Bytes()
	}
	oldAPI, oldWS := serial(p.Addrs.API), serial(p.Addrs.WebSocket)

	ca.Issue("natter")
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(wait)
	for bytes.Equal(serial(p.Addrs.API), oldAPI) || bytes.Equal(serial(p.Addrs.WebSocket), oldWS) {
		if time.Now().After(deadline) {
			t.Fatalf("still the old certificate %s after SIGHUP\n%s", wait, p.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(p.Output(), "tls certificate reloaded") {
		t.Fatalf("no reload in the log:\n%s", p.Output())
	}
	// The socket opened before the reload still answers.
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := ws.Conn.Ping(ctx); err != nil {
		t.Fatalf("socket opened before SIGHUP: %v", err)
	}
	p.Interrupt()
}
