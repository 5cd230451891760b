package app_test

import (
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/natter-chat/natter/services/app/apptest"
)

// The gateway publishes flat out; the consumers' round trips must not queue behind it on one
// shared connection (see ownConnection). Each hot component has a connection of its own.
func TestHotComponentsHaveTheirOwnNATSConnection(t *testing.T) {
	s := apptest.Start(t)
	cz, err := s.Run.NATSServer.Connz(&server.ConnzOptions{})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]int{}
	for _, c := range cz.Conns {
		names[c.Name]++
	}
	for _, want := range []string{"natter:gateway", "natter:fanout", "natter:persister"} {
		if names[want] != 1 {
			t.Errorf("%d connections named %q, want 1 (all: %v)", names[want], want, names)
		}
	}
}
