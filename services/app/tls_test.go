package app_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/natter-chat/natter/pkg/tlsx/tlsxtest"
	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/services/app"
	"github.com/natter-chat/natter/services/app/apptest"
)

// TestTLSServesHTTPSAndWSSAndReloads runs natter with a certificate from a test CA: the API
// answers over HTTPS, discovery hands out a wss:// URL, and two users chat over it. Then the
// certificate is renewed and reloaded (what SIGHUP does): a new socket sees the new certificate,
// while the socket opened before keeps chatting.
func TestTLSServesHTTPSAndWSSAndReloads(t *testing.T) {
	ca := tlsxtest.NewCA(t)
	certFile, keyFile := ca.Issue("natter")
	s := apptest.Start(t, func(c *app.Config) { c.TLSCert, c.TLSKey, c.MetricsAddr = certFile, keyFile, "127.0.0.1:0" })
	transport := &http.Transport{TLSClientConfig: ca.ClientConfig()}
	defer transport.CloseIdleConnections()
	s.HTTP = &http.Client{Transport: transport}
	if !strings.HasPrefix(s.APIURL, "https://") || !strings.HasPrefix(s.WSURL, "wss://") {
		t.Fatalf("API %s, WebSocket %s: want https:// and wss://", s.APIURL, s.WSURL)
	}
	// Plain HTTP to the TLS port gets no API answer.
	if resp, err := http.Get("http" + strings.TrimPrefix(s.APIURL, "https") + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("the API answered plain HTTP on its TLS port")
		}
	}
	alice, bob := s.SignUp("alice"), s.SignUp("bob")
	conv := s.Direct(alice, bob)
	var disc struct {
		Gateway struct {
			URL string `json:"url"`
		} `json:"gateway"`
	}
	s.Do("GET", "/v1/discovery", "", nil, http.StatusOK, &disc)
	if disc.Gateway.URL != s.WSURL || !strings.HasPrefix(disc.Gateway.URL, "wss://") {
		t.Fatalf("discovery hands out %q, want the wss:// URL %s", disc.Gateway.URL, s.WSURL)
	}

	dial := func(u apptest.User, device string) (*apptest.WS, []byte) {
		t.Helper()
		tr := &http.Transport{TLSClientConfig: ca.ClientConfig()}
		t.Cleanup(tr.CloseIdleConnections)
		ws := apptest.DialWith(t, apptest.WSURLFor(disc.Gateway.URL, u.Token, device, nil),
			&websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}})
		ws.NextOf(protocol.TypeSynced, wait)
		state := ws.Response.TLS
		if state == nil {
			t.Fatal("socket is not TLS")
		}
		return ws, state.PeerCertificates[0].SerialNumber.Bytes()
	}
	a, first := dial(alice, "phone")
	b, _ := dial(bob, "laptop")
	if f := sendText(a, conv, "m1", "over wss"); f.Type != protocol.TypeAck {
		t.Fatalf("send: %+v", f)
	}
	if m := b.NextOf(protocol.TypeMessage, wait); m.Text != "over wss" {
		t.Fatalf("bob got %+v", m)
	}

	ca.Validity = 90 * 24 * time.Hour
	ca.Issue("natter") // renewed in place, for longer
	if err := s.Run.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	tablet, second := dial(bob, "tablet")
	if bytes.Equal(first, second) {
		t.Fatal("a socket opened after the reload got the old certificate")
	}
	// The expiry gauge follows the reload.
	status, metrics := apptest.Request(t, "GET", "http://"+s.Run.Metrics.String()+"/metrics", "", nil)
	want := fmt.Sprintf("natter_tls_certificate_expiry_timestamp_seconds %g", float64(tablet.Response.TLS.PeerCertificates[0].NotAfter.Unix()))
	if status != http.StatusOK || !strings.Contains(string(metrics), want) {
		t.Fatalf("metrics lack %q:\n%s", want, metrics)
	}
	// The sockets opened before the reload stay open.
	if f := sendText(a, conv, "m2", "still here"); f.Type != protocol.TypeAck {
		t.Fatalf("send after the reload: %+v", f)
	}
	if m := b.NextOf(protocol.TypeMessage, wait); m.Text != "still here" {
		t.Fatalf("bob got %+v after the reload", m)
	}
}
