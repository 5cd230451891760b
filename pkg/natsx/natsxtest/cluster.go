package natsxtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/natsx"
	"github.com/natter-chat/natter/streams"
)

// Cluster is a JetStream cluster of embedded nats-servers on loopback, for tests and benchmarks.
// Every node has its own t.TempDir() storage, a unique server name (<cluster>-<i>), a random
// client port and a cluster port picked up front so that every node names every other node as
// an explicit route (a node that is shut down and restarted finds the others again, and they
// it). Everything is shut down when the test ends.
//
// Cluster is not safe for concurrent use: Shutdown and Restart belong to the test goroutine.
type Cluster struct {
	Name    string
	Servers []*server.Server // index i is node i; nil while node i is shut down

	t    testing.TB
	cfgs []natsx.ServerConfig
}

// StartCluster starts an n-node JetStream cluster and waits until it has a meta leader that
// every node agrees on and every node is current. It fails the test if that takes over 60 s.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	return StartClusterWith(t, n, nil)
}

// StartClusterWith is StartCluster with a hook that may change node i's configuration before it
// starts (SyncAlways, SyncInterval, ...). Name, Dir, Port and the cluster fields are set already;
// changing them breaks the cluster.
func StartClusterWith(t testing.TB, n int, configure func(i int, cfg *natsx.ServerConfig)) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("natsxtest: a cluster needs at least one node, not %d", n)
	}
	c := &Cluster{Name: "natter-test-" + randomSuffix(), t: t, Servers: make([]*server.Server, n)}
	// Cleanups run last-in first-out, and the test's temporary directory is removed by a cleanup
	// registered at its first t.TempDir(). Make that call before registering shutdownAll, so the
	// nodes stop before their storage is removed (the other way round, a node still writing made
	// the removal fail with "directory not empty").
	_ = t.TempDir()
	t.Cleanup(c.shutdownAll)

	// Routes must name each other, so the cluster ports are chosen before any node starts. A port
	// another process takes between the pick and the listen makes that node fail to start: pick
	// again and retry, a few times.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		ports, err := freePorts(n)
		if err != nil {
			t.Fatalf("natsxtest: pick cluster ports: %v", err)
		}
		c.cfgs = make([]natsx.ServerConfig, n)
		routes := make([]string, n)
		for i := range n {
			routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", ports[i])
		}
		for i := range n {
			cfg := natsx.ServerConfig{
				Name:          fmt.Sprintf("%s-%d", c.Name, i),
				Dir:           t.TempDir(),
				Host:          "127.0.0.1",
				Port:          -1,
				ClusterName:   c.Name,
				ClusterHost:   "127.0.0.1",
				ClusterPort:   ports[i],
				ClusterRoutes: others(routes, i),
			}
			if configure != nil {
				configure(i, &cfg)
			}
			c.cfgs[i] = cfg
		}
		if lastErr = c.startAll(); lastErr == nil {
			break
		}
		c.shutdownAll()
	}
	if lastErr != nil {
		t.Fatalf("natsxtest: start cluster: %v", lastErr)
	}
	if err := c.WaitReady(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *Cluster) startAll() error {
	for i := range c.cfgs {
		if err := c.start(i); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) start(i int) error {
	srv, err := natsx.StartServer(c.cfgs[i], zap.NewNop())
	if err != nil {
		return fmt.Errorf("node %d: %w", i, err)
	}
	if a := srv.ClusterAddr(); a == nil || a.Port != c.cfgs[i].ClusterPort {
		srv.Shutdown()
		srv.WaitForShutdown()
		return fmt.Errorf("node %d: cluster port %d is not listening", i, c.cfgs[i].ClusterPort)
	}
	// A restarted node keeps its client port, so URL lists handed out earlier stay valid.
	if c.cfgs[i].Port == -1 {
		if a, ok := srv.Addr().(*net.TCPAddr); ok {
			c.cfgs[i].Port = a.Port
		}
	}
	c.Servers[i] = srv
	return nil
}

func (c *Cluster) shutdownAll() {
	srvs := append([]*server.Server(nil), c.Servers...)
	for i := range c.Servers {
		c.Servers[i] = nil
	}
	for _, s := range srvs {
		if s != nil {
			s.Shutdown()
		}
	}
	for _, s := range srvs {
		if s != nil {
			s.WaitForShutdown()
		}
	}
}

// Shutdown stops node i (as a crash would look to the others: its connections drop) and waits
// until it has stopped. Its storage is kept for Restart.
func (c *Cluster) Shutdown(i int) {
	c.t.Helper()
	srv := c.Servers[i]
	c.Servers[i] = nil
	if srv == nil {
		c.t.Fatalf("natsxtest: node %d is not running", i)
	}
	srv.Shutdown()
	srv.WaitForShutdown()
}

// Restart starts a node that Shutdown stopped, with its storage, name and ports, and waits until
// the cluster is ready again with it.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	if c.Servers[i] != nil {
		c.t.Fatalf("natsxtest: node %d is running", i)
	}
	if err := c.start(i); err != nil {
		c.t.Fatalf("natsxtest: restart: %v", err)
	}
	if err := c.WaitReady(60 * time.Second); err != nil {
		c.t.Fatal(err)
	}
}

// Running returns the indexes of the running nodes.
func (c *Cluster) Running() []int {
	var idx []int
	for i, s := range c.Servers {
		if s != nil {
			idx = append(idx, i)
		}
	}
	return idx
}

// ClientURL is node i's client URL (also while it is shut down: a restart keeps the port).
func (c *Cluster) ClientURL(i int) string {
	return fmt.Sprintf("nats://127.0.0.1:%d", c.cfgs[i].Port)
}

// URLs is every node's client URL, comma-separated, as nats.Connect takes them.
func (c *Cluster) URLs() string {
	urls := make([]string, len(c.cfgs))
	for i := range c.cfgs {
		urls[i] = c.ClientURL(i)
	}
	return strings.Join(urls, ",")
}

// Connect opens a connection (natsx.Connect: reconnects forever) to node i first, with the other
// nodes to fail over to, closed when the test ends. i < 0 lets the client pick among all nodes.
func (c *Cluster) Connect(i int, extra ...nats.Option) *nats.Conn {
	c.t.Helper()
	url := c.URLs()
	if i >= 0 {
		urls := []string{c.ClientURL(i)}
		for j := range c.cfgs {
			if j != i {
				urls = append(urls, c.ClientURL(j))
			}
		}
		url = strings.Join(urls, ",")
		extra = append([]nats.Option{nats.DontRandomize()}, extra...)
	}
	nc, err := natsx.Connect(url, "natsxtest", nil, zap.NewNop(), extra...)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(nc.Close)
	return nc
}

// Define connects to any node and applies natter's streams, buckets and consumers with opts (at
// opts.Replicas), failing the test if that does not succeed within 60 s.
func (c *Cluster) Define(opts streams.Options) jetstream.JetStream {
	c.t.Helper()
	js, err := jetstream.New(c.Connect(-1))
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := natsx.Apply(ctx, js, streams.Define(opts)); err != nil {
		c.t.Fatalf("natsxtest: define at R%d: %v", opts.Replicas, err)
	}
	return js
}

// MetaLeader returns the index of the node that is JetStream meta leader, or -1.
func (c *Cluster) MetaLeader() int {
	for i, s := range c.Servers {
		if s != nil && s.JetStreamIsLeader() {
			return i
		}
	}
	return -1
}

// StreamLeader returns the index of the node leading stream (in the global account), or -1.
func (c *Cluster) StreamLeader(stream string) int {
	for i, s := range c.Servers {
		if s != nil && s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return i
		}
	}
	return -1
}

// WaitStreamLeader waits until stream has a leader and returns its index.
func (c *Cluster) WaitStreamLeader(stream string, timeout time.Duration) int {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if i := c.StreamLeader(stream); i >= 0 {
			return i
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("natsxtest: stream %s has no leader after %s", stream, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitReady waits until exactly one running node is meta leader, it counts every configured
// node as a peer, every running node names it as leader and every running node is current.
func (c *Cluster) WaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var why error
	for {
		if why = c.ready(); why == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("natsxtest: cluster %s not ready after %s: %w", c.Name, timeout, why)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func (c *Cluster) ready() error {
	leader := -1
	for i, s := range c.Servers {
		if s == nil || !s.JetStreamIsLeader() {
			continue
		}
		if leader >= 0 {
			return fmt.Errorf("nodes %d and %d both claim to lead", leader, i)
		}
		leader = i
	}
	if leader < 0 {
		return errors.New("no meta leader")
	}
	name := c.cfgs[leader].Name
	if peers := c.Servers[leader].JetStreamClusterPeers(); len(peers) < len(c.cfgs) {
		return fmt.Errorf("meta leader %s knows %d of %d peers", name, len(peers), len(c.cfgs))
	}
	for i, s := range c.Servers {
		if s == nil {
			continue
		}
		if !s.JetStreamIsCurrent() {
			return fmt.Errorf("node %d is not current", i)
		}
		info, err := s.Jsz(&server.JSzOptions{})
		if err != nil {
			return fmt.Errorf("node %d: jsz: %w", i, err)
		}
		if info.Meta == nil || info.Meta.Leader != name {
			return fmt.Errorf("node %d does not see %s as meta leader", i, name)
		}
	}
	return nil
}

// FreePorts returns n distinct loopback TCP ports that were free a moment ago (all held open
// together while picked, so no two are the same), for servers that must name each other's
// addresses before they start.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports, err := freePorts(n)
	if err != nil {
		t.Fatal(err)
	}
	return ports
}

func freePorts(n int) ([]int, error) {
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func others(all []string, i int) []string {
	out := make([]string, 0, len(all)-1)
	for j, r := range all {
		if j != i {
			out = append(out, r)
		}
	}
	return out
}

func randomSuffix() string { return fmt.Sprintf("%08x", rand.Uint32()) }
