package scylla

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/gocql/gocql"
	"go.uber.org/zap"
)

// Config says how to reach the cluster and how the store uses it. The zero value of every field
// but Hosts means its default.
type Config struct {
	// Hosts are contact points, "host" or "host:port" (port 9042 when none is given); the driver
	// discovers the rest of the cluster from them.
	Hosts []string
	// Keyspace holds natter's tables; default "natter". Letters, digits and _ , at most 48.
	Keyspace string
	// LocalDC is the datacenter this process runs in. When set, every query goes token-aware to a
	// replica in LocalDC, other datacenters serving only when none is up; when empty, token-aware
	// round robin over every host (one-datacenter clusters).
	LocalDC string
	// Consistency of reads and plain writes; default LOCAL_QUORUM. The store's contract (reads see
	// every write that returned) holds only if reads and writes overlap: a quorum level, or ONE
	// with replication factor 1.
	Consistency string
	// SerialConsistency of the Paxos round of conditional writes: LOCAL_SERIAL (default) or SERIAL.
	SerialConsistency string
	// Timeout of one request; default 6s, above ScyllaDB's own read (5s) and write (2s) timeouts
	// so that the server, not the client, gives up first and retries do not pile up.
	Timeout time.Duration
	// ConnectTimeout bounds dialing and the connection handshake; default 10s.
	ConnectTimeout time.Duration
	// NumRetries of a failed request, with exponential backoff (50ms doubling to 1s); default 3,
	// -1 for none. Every statement the store issues is safe to repeat.
	NumRetries int
	// BucketSize is how many CHAT seqs one message partition spans; default DefaultBucketSize.
	// It is fixed for the life of a keyspace: the first Open records it and later Opens with
	// another size fail.
	BucketSize uint64
	// Username and Password, when set, authenticate with PasswordAuthenticator.
	Username string
	Password string
}

// DefaultKeyspace is the keyspace used when Config.Keyspace is empty.
const DefaultKeyspace = "natter"

var keyspaceName = regexp.MustCompile(`^[A-Za-z0-9_]{1,48}$`)

// settings is a Config with defaults applied and names parsed.
type settings struct {
	Config
	consistency, serial gocql.Consistency
}

// Validate reports whether c, with defaults applied, can be used.
func (c Config) Validate() error {
	_, err := c.resolve()
	return err
}

func (c Config) resolve() (settings, error) {
	if c.Keyspace == "" {
		c.Keyspace = DefaultKeyspace
	}
	if c.Consistency == "" {
		c.Consistency = "LOCAL_QUORUM"
	}
	if c.SerialConsistency == "" {
		c.SerialConsistency = "LOCAL_SERIAL"
	}
	if c.Timeout == 0 {
		c.Timeout = 6 * time.Second
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	switch {
	case c.NumRetries == 0:
		c.NumRetries = 3
	case c.NumRetries < 0:
		c.NumRetries = 0
	}
	if c.BucketSize == 0 {
		c.BucketSize = DefaultBucketSize
	}

	s := settings{Config: c}
	var errs []error
	if len(c.Hosts) == 0 {
		errs = append(errs, errors.New("no hosts"))
	}
	for _, h := range c.Hosts {
		if h == "" {
			errs = append(errs, errors.New("empty host"))
		}
	}
	if !keyspaceName.MatchString(c.Keyspace) {
		errs = append(errs, fmt.Errorf("keyspace %q: want 1 to 48 letters, digits or _", c.Keyspace))
	}
	var err error
	if s.consistency, err = gocql.ParseConsistencyWrapper(c.Consistency); err != nil {
		errs = append(errs, fmt.Errorf("consistency: %w", err))
	} else if s.consistency == gocql.Any || s.consistency.IsSerial() {
		errs = append(errs, fmt.Errorf("consistency %s cannot serve reads and writes", s.consistency))
	}
	if s.serial, err = gocql.ParseConsistencyWrapper(c.SerialConsistency); err != nil {
		errs = append(errs, fmt.Errorf("serial consistency: %w", err))
	} else if !s.serial.IsSerial() {
		errs = append(errs, fmt.Errorf("serial consistency %s: want SERIAL or LOCAL_SERIAL", s.serial))
	}
	if c.Timeout < 0 || c.ConnectTimeout < 0 {
		errs = append(errs, errors.New("negative timeout"))
	}
	if c.BucketSize > maxSeq {
		errs = append(errs, fmt.Errorf("bucket size %d above %d", c.BucketSize, uint64(maxSeq)))
	}
	if (c.Username == "") != (c.Password == "") {
		errs = append(errs, errors.New("username and password go together"))
	}
	if err := errors.Join(errs...); err != nil {
		return s, fmt.Errorf("scylla config: %w", err)
	}
	return s, nil
}

// cluster is the driver configuration for keyspace ("" for none: the migrator's first session).
func (s settings) cluster(keyspace string, log *zap.Logger) *gocql.ClusterConfig {
	c := gocql.NewCluster(s.Hosts...)
	c.Keyspace = keyspace
	c.Consistency = s.consistency
	c.SerialConsistency = s.serial
	c.Timeout = s.Timeout
	c.ConnectTimeout = s.ConnectTimeout
	c.RetryPolicy = &gocql.ExponentialBackoffRetryPolicy{NumRetries: s.NumRetries, Min: 50 * time.Millisecond, Max: time.Second}
	// Every statement is safe to repeat (see InsertMessage), so timeouts may be retried.
	c.DefaultIdempotence = true
	fallback := gocql.RoundRobinHostPolicy()
	if s.LocalDC != "" {
		fallback = gocql.DCAwareRoundRobinPolicy(s.LocalDC)
	}
	c.PoolConfig.HostSelectionPolicy = gocql.TokenAwareHostPolicy(fallback)
	if s.Username != "" {
		c.Authenticator = gocql.PasswordAuthenticator{Username: s.Username, Password: s.Password}
	}
	c.Logger = zap.NewStdLog(log.Named("gocql"))
	return c
}
