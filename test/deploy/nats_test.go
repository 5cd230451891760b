// Package deploy checks the deployment files under deploy/: that they parse with the software
// that reads them and describe what natter needs.
package deploy

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/natsperm"
	"github.com/natter-chat/natter/pkg/natsx"
	"github.com/natter-chat/natter/pkg/natsx/natsxtest"
	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/streams"
)

// TestNATSClusterConfig parses deploy/nats/nats-{1,2,3}.conf with nats-server's own parser, boots
// the three nodes from them (moved to free loopback ports and temporary storage) and applies
// natter's definitions with three replicas: every stream, bucket and consumer gets its quorum.
func TestNATSClusterConfig(t *testing.T) {
	for _, u := range natsperm.DeployUsers() {
		t.Setenv(natsperm.PasswordVar(u.Name), "pw-"+u.Name)
	}
	var all []*server.Options
	names := map[string]bool{}
	for i := 1; i <= 3; i++ {
		o, err := server.ProcessConfigFile(filepath.Join("..", "..", "deploy", "nats", fmt.Sprintf("nats-%d.conf", i)))
		if err != nil {
			t.Fatal(err)
		}
		if !o.JetStream || o.Cluster.Name != "natter" || len(o.Routes) != 3 || names[o.ServerName] || o.ServerName == "" {
			t.Fatalf("nats-%d.conf: jetstream %v cluster %q routes %d name %q", i, o.JetStream, o.Cluster.Name, len(o.Routes), o.ServerName)
		}
		if len(o.Users) != len(natsperm.DeployUsers()) {
			t.Fatalf("nats-%d.conf: %d users, want the %d of users.conf", i, len(o.Users), len(natsperm.DeployUsers()))
		}
		if o.MaxPayload < protocol.MaxFrameBytes+4096 {
			t.Fatalf("nats-%d.conf: max_payload %d is below a maximal chat event (%d)", i, o.MaxPayload, protocol.MaxFrameBytes)
		}
		names[o.ServerName] = true
		all = append(all, o)
	}
	var routes []*url.URL
	ports := natsxtest.FreePorts(t, 2*len(all))
	for i, o := range all {
		o.Host, o.Port, o.HTTPPort = "127.0.0.1", ports[2*i], 0
		o.Cluster.Host, o.Cluster.Port = "127.0.0.1", ports[2*i+1]
		o.StoreDir, o.NoSigs, o.NoLog = t.TempDir(), true, true
		routes = append(routes, &url.URL{Scheme: "nats-route", Host: fmt.Sprintf("127.0.0.1:%d", o.Cluster.Port)})
	}
	var urls string
	for _, o := range all {
		o.Routes = routes
		srv, err := server.NewServer(o)
		if err != nil {
			t.Fatal(err)
		}
		srv.Start()
		t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
		if !srv.ReadyForConnections(10 * time.Second) {
			t.Fatal("node not ready")
		}
		urls += srv.ClientURL() + ","
	}
	nc, err := natsx.Connect(urls, "deploy-test", nil, zap.NewNop(), nats.UserInfo("admin", "pw-admin"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	opts := streams.DefaultOptions()
	opts.Replicas, opts.FanoutPartitions = 3, 2
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		if err = natsx.Apply(ctx, js, streams.Define(opts)); err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("definitions never applied on the cluster: %v", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	info, err := js.Stream(ctx, streams.ChatStream)
	if err != nil {
		t.Fatal(err)
	}
	si, err := info.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if si.Config.Replicas != 3 || si.Cluster == nil || len(si.Cluster.Replicas) != 2 {
		t.Fatalf("CHAT replicas %d, cluster %+v", si.Config.Replicas, si.Cluster)
	}
	ack, err := js.Publish(ctx, streams.ChatSubject("c1", streams.KindMsg), []byte(`{}`))
	if err != nil || ack.Sequence != 1 {
		t.Fatalf("publish to R3 CHAT: %+v %v", ack, err)
	}
}
