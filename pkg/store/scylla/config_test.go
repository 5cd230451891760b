package scylla

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gocql/gocql"
	"go.uber.org/zap"
)

func TestConfigDefaults(t *testing.T) {
	st, err := Config{Hosts: []string{"h1", "h2:9043"}}.resolve()
	if err != nil {
		t.Fatal(err)
	}
	if st.Keyspace != "natter" || st.consistency != gocql.LocalQuorum || st.serial != gocql.LocalSerial ||
		st.Timeout != 6*time.Second || st.ConnectTimeout != 10*time.Second || st.NumRetries != 3 ||
		st.BucketSize != DefaultBucketSize {
		t.Errorf("defaults: %+v", st)
	}
	c := st.cluster(st.Keyspace, zap.NewNop())
	if c.Keyspace != "natter" || c.Consistency != gocql.LocalQuorum || c.SerialConsistency != gocql.LocalSerial ||
		c.Timeout != 6*time.Second || c.ConnectTimeout != 10*time.Second || !c.DefaultIdempotence || c.Authenticator != nil {
		t.Errorf("cluster config: %+v", c)
	}
	if rp, ok := c.RetryPolicy.(*gocql.ExponentialBackoffRetryPolicy); !ok || rp.NumRetries != 3 {
		t.Errorf("retry policy %#v", c.RetryPolicy)
	}
	if c.PoolConfig.HostSelectionPolicy == nil {
		t.Error("no host selection policy")
	}

	st, err = Config{Hosts: []string{"h"}, Consistency: "quorum", SerialConsistency: "SERIAL", NumRetries: -1,
		LocalDC: "dc1", Username: "u", Password: "p", BucketSize: 1000}.resolve()
	if err != nil {
		t.Fatal(err)
	}
	c = st.cluster("", zap.NewNop())
	if c.Consistency != gocql.Quorum || c.SerialConsistency != gocql.Serial || c.Keyspace != "" || st.BucketSize != 1000 {
		t.Errorf("cluster config: %+v", c)
	}
	if rp := c.RetryPolicy.(*gocql.ExponentialBackoffRetryPolicy); rp.NumRetries != 0 {
		t.Errorf("NumRetries -1 gave %d retries", rp.NumRetries)
	}
	if a, ok := c.Authenticator.(gocql.PasswordAuthenticator); !ok || a.Username != "u" || a.Password != "p" {
		t.Errorf("authenticator %#v", c.Authenticator)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Hosts: []string{"127.0.0.1"}}
	if err := ok.Validate(); err != nil {
		t.Errorf("Validate(%+v) = %v", ok, err)
	}
	for name, c := range map[string]Config{
		"no hosts":          {},
		"empty host":        {Hosts: []string{""}},
		"keyspace injected": {Hosts: []string{"h"}, Keyspace: "natter; DROP KEYSPACE x"},
		"keyspace too long": {Hosts: []string{"h"}, Keyspace: strings.Repeat("k", 49)},
		"bad consistency":   {Hosts: []string{"h"}, Consistency: "MOST"},
		"any":               {Hosts: []string{"h"}, Consistency: "ANY"},
		"serial as regular": {Hosts: []string{"h"}, Consistency: "LOCAL_SERIAL"},
		"regular as serial": {Hosts: []string{"h"}, SerialConsistency: "QUORUM"},
		"negative timeout":  {Hosts: []string{"h"}, Timeout: -time.Second},
		"huge bucket":       {Hosts: []string{"h"}, BucketSize: 1 << 63},
		"user, no password": {Hosts: []string{"h"}, Username: "u"},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate(%+v) = nil, want an error", name, c)
		}
	}
}

// TestOpenUnreachable: Open and Migrate fail cleanly, without leaking the driver's goroutines
// (TestMain checks), when no host answers.
func TestOpenUnreachable(t *testing.T) {
	cfg := Config{Hosts: []string{"127.0.0.1:1"}, ConnectTimeout: time.Second, Timeout: time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, cfg, nil)
	if err == nil {
		s.Close()
		t.Fatal("Open of an unreachable cluster succeeded")
	}
	if !strings.Contains(err.Error(), "scylla: connect to [127.0.0.1:1]") {
		t.Errorf("Open error %q does not say what failed", err)
	}
	if _, err := Migrate(ctx, cfg, 1, nil); err == nil {
		t.Fatal("Migrate of an unreachable cluster succeeded")
	}
	if _, err := Open(ctx, Config{}, nil); err == nil || !strings.Contains(err.Error(), "no hosts") {
		t.Errorf("Open without hosts: %v", err)
	}
	if _, err := Migrate(ctx, Config{Hosts: []string{"h"}}, 0, nil); err == nil || errors.Is(err, context.Canceled) {
		t.Errorf("Migrate with replication factor 0: %v", err)
	}
}
