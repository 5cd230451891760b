package natsx

import (
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/tlsx/tlsxtest"
)

// TestServerTLSWithClientCertificates starts the embedded server with TLS and a client CA:
// a client that trusts the CA and presents a certificate it signed connects and exchanges a
// message; one without a certificate, or one that does not trust the server's CA, is refused.
// The in-process connection of the server's own process needs neither.
func TestServerTLSWithClientCertificates(t *testing.T) {
	ca := tlsxtest.NewCA(t)
	serverCert, serverKey := ca.Issue("nats")
	clientCert, clientKey := ca.Issue("gateway")
	log := zap.NewNop()
	srv, err := StartServer(ServerConfig{Dir: t.TempDir(), Port: -1, TLSCert: serverCert, TLSKey: serverKey, TLSCA: ca.File}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	url := srv.ClientURL()

	connect := func(c ClientConfig) error {
		opts, err := c.Options()
		if err != nil {
			t.Fatal(err)
		}
		nc, err := Connect(url, "tls-test", nil, log, opts...)
		if err != nil {
			return err
		}
		defer nc.Close()
		sub, err := nc.SubscribeSync("tls.test")
		if err != nil {
			t.Fatal(err)
		}
		if err := nc.Publish("tls.test", []byte("hello")); err != nil {
			t.Fatal(err)
		}
		msg, err := sub.NextMsg(5 * time.Second)
		if err != nil || string(msg.Data) != "hello" {
			t.Fatalf("over TLS: %v %v", msg, err)
		}
		if !nc.TLSRequired() {
			t.Fatal("connection is not TLS")
		}
		if _, err := nc.TLSConnectionState(); err != nil {
			t.Fatal(err)
		}
		return nil
	}
	if err := connect(ClientConfig{CAFile: ca.File, CertFile: clientCert, KeyFile: clientKey}); err != nil {
		t.Fatalf("client with a certificate of the CA: %v", err)
	}
	if err := connect(ClientConfig{CAFile: ca.File}); err == nil {
		t.Fatal("a client without a certificate was let in")
	}
	other := tlsxtest.NewCA(t)
	if err := connect(ClientConfig{CAFile: other.File, CertFile: clientCert, KeyFile: clientKey}); err == nil {
		t.Fatal("a client that does not trust the server's CA connected")
	}
	if err := connect(ClientConfig{}); err == nil {
		t.Fatal("a plain connection to a TLS-only server succeeded")
	}
	nc, err := Connect("", "in-process", srv, log)
	if err != nil {
		t.Fatalf("in-process connection: %v", err)
	}
	if addr := nc.ConnectedAddr(); addr != "pipe" {
		t.Errorf("connected to %q: want the in-process pipe", addr)
	}
	nc.Close()
}

func TestClientConfigOptionsErrors(t *testing.T) {
	for name, c := range map[string]ClientConfig{
		"password without user": {Password: "x"},
		"user and creds":        {User: "u", CredsFile: "f"},
		"cert without key":      {CertFile: "c"},
		"missing nkey file":     {NkeyFile: "/nonexistent"},
	} {
		if _, err := c.Options(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
