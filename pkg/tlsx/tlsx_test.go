package tlsx_test

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/natter-chat/natter/pkg/tlsx"
	"github.com/natter-chat/natter/pkg/tlsx/tlsxtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestReloadSwapsTheCertificateForNewConnectionsOnly serves HTTPS from a Reloader, renews the
// certificate files and reloads: a new connection gets the new certificate, while a connection
// opened before the reload stays open and keeps working.
func TestReloadSwapsTheCertificateForNewConnectionsOnly(t *testing.T) {
	ca := tlsxtest.NewCA(t)
	certFile, keyFile := ca.Issue("server")
	r, err := tlsx.Load(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })}
	go func() { _ = srv.Serve(tls.NewListener(ln, r.ServerConfig())) }()
	defer srv.Close()
	url := "https://" + ln.Addr().String() + "/"

	before := &http.Client{Transport: &http.Transport{TLSClientConfig: ca.ClientConfig()}}
	defer before.CloseIdleConnections()
	first := serialOf(t, before, url)

	ca.Issue("server") // renewed in place, as certbot would
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	after := &http.Client{Transport: &http.Transport{TLSClientConfig: ca.ClientConfig()}}
	defer after.CloseIdleConnections()
	second := serialOf(t, after, url)
	if bytes.Equal(first, second) {
		t.Fatal("a connection after the reload got the old certificate")
	}
	// The connection of before was kept alive across the reload: it still has the old one.
	if again := serialOf(t, before, url); !bytes.Equal(again, first) {
		t.Fatal("the connection opened before the reload was replaced")
	}

	// A broken file keeps the certificate in use.
	if err := os.WriteFile(certFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(); err == nil {
		t.Fatal("reloading a broken certificate file succeeded")
	}
	fresh := &http.Client{Transport: &http.Transport{TLSClientConfig: ca.ClientConfig()}}
	defer fresh.CloseIdleConnections()
	if got := serialOf(t, fresh, url); !bytes.Equal(got, second) {
		t.Fatal("a failed reload changed the certificate")
	}
}

func serialOf(t *testing.T, c *http.Client, url string) []byte {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); string(b) != "ok" {
		t.Fatalf("body %q", b)
	}
	return resp.TLS.PeerCertificates[0].SerialNumber.Bytes()
}

func TestLoadAndClientConfigErrors(t *testing.T) {
	ca := tlsxtest.NewCA(t)
	certFile, keyFile := ca.Issue("client")
	if _, err := tlsx.Load(certFile, ""); err == nil {
		t.Error("Load without a key file succeeded")
	}
	if _, err := tlsx.Load(keyFile, certFile); err == nil {
		t.Error("Load with the files swapped succeeded")
	}
	if _, err := tlsx.ClientConfig(certFile+".missing", "", ""); err == nil {
		t.Error("ClientConfig with a missing CA file succeeded")
	}
	if _, err := tlsx.ClientConfig(keyFile, "", ""); err == nil {
		t.Error("ClientConfig with a CA file holding no certificate succeeded")
	}
	if _, err := tlsx.ClientConfig(ca.File, certFile, ""); err == nil {
		t.Error("ClientConfig with a certificate but no key succeeded")
	}
	cfg, err := tlsx.ClientConfig(ca.File, certFile, keyFile)
	if err != nil || cfg.RootCAs == nil || len(cfg.Certificates) != 1 {
		t.Fatalf("ClientConfig: %+v %v", cfg, err)
	}
}
