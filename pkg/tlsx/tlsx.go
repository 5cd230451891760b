// Package tlsx loads TLS certificates from files: a server certificate that can be reloaded
// while connections stay open (Reloader), and client configurations from CA and key files.
package tlsx

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"
)

// Reloader holds a server certificate and key loaded from two PEM files. Reload reads them again
// and swaps the certificate atomically: handshakes after it present the new certificate, while
// connections already open keep theirs. Safe for concurrent use.
type Reloader struct {
	certFile, keyFile string
	cert              atomic.Pointer[tls.Certificate]
}

// Load reads certFile and keyFile (PEM; certFile may hold the chain, leaf first).
func Load(certFile, keyFile string) (*Reloader, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("tls: both a certificate file and a key file are required")
	}
	r := &Reloader{certFile: certFile, keyFile: keyFile}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload reads the files again. On an error the previous certificate stays in use.
func (r *Reloader) Reload() error {
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("tls: load %s and %s: %w", r.certFile, r.keyFile, err)
	}
	r.cert.Store(&cert)
	return nil
}

// NotAfter is when the current certificate expires.
func (r *Reloader) NotAfter() time.Time { return r.cert.Load().Leaf.NotAfter }

// Subject names the current certificate, for logs.
func (r *Reloader) Subject() string { return r.cert.Load().Leaf.Subject.String() }

// GetCertificate is the tls.Config hook: the current certificate for every handshake.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cert.Load(), nil
}

// ServerConfig is a server configuration (TLS 1.2 or newer) serving the current certificate.
// Each call returns a new *tls.Config; all of them follow Reload.
func (r *Reloader) ServerConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.GetCertificate}
}

// ClientConfig is a client configuration that trusts the CAs in caFile (empty: the system's)
// and presents the certificate in certFile and keyFile (both empty: none).
func ClientConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pool, err := CertPool(caFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("tls: a client certificate needs both its certificate file and its key file")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("tls: load %s and %s: %w", certFile, keyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// CertPool reads the PEM certificates of caFile into a pool.
func CertPool(caFile string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("tls: read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls: %s holds no PEM certificate", caFile)
	}
	return pool, nil
}
