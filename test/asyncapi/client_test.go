package asyncapi_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/services/app/apptest"
)

const wait = 10 * time.Second

// client is one device's socket: every frame it sends and receives is checked against the spec,
// and the types it received are counted in seen.
type client struct {
	t    *testing.T
	spec *spec
	name string
	ws   *apptest.WS
	seen map[string]int
}

// dial connects a device (cursor nil: live only) and takes its welcome and synced.
func dial(t *testing.T, sp *spec, s *apptest.System, u apptest.User, device string, cursor *uint64, seen map[string]int) *client {
	t.Helper()
	c := &client{t: t, spec: sp, name: device, ws: apptest.Dial(t, apptest.WSURLFor(s.WSURL, u.Token, device, cursor)), seen: seen}
	if w := c.expect(protocol.TypeWelcome); w.DeviceID != device || w.Syncing != (cursor != nil) {
		t.Fatalf("%s: welcome %s", device, w.Raw)
	}
	c.expect(protocol.TypeSynced)
	return c
}

// send writes a well-formed client frame, checked against the spec first.
func (c *client) send(f protocol.ClientFrame) {
	c.t.Helper()
	b, err := json.Marshal(f)
	if err != nil {
		c.t.Fatal(err)
	}
	c.spec.checkClientFrame(c.t, c.name, b)
	c.ws.SendRaw(b)
}

// sendBad writes a frame the spec must reject, to draw an error from the server.
func (c *client) sendBad(raw string) {
	c.t.Helper()
	if sch, ok := c.spec.client[frameType([]byte(raw))]; ok {
		if v := decode(c.t, []byte(raw)); sch.Validate(v) == nil {
			c.t.Errorf("docs/asyncapi.yaml accepts the bad frame %s", raw)
		}
	}
	c.ws.SendRaw([]byte(raw))
}

// next reads and checks the next frame.
func (c *client) next(timeout time.Duration) (apptest.Frame, bool) {
	c.t.Helper()
	select {
	case f, ok := <-c.ws.Frames:
		if !ok {
			c.t.Fatalf("%s: socket closed", c.name)
		}
		c.seen[c.spec.checkServerFrame(c.t, c.name, f.Raw)]++
		return f, true
	case <-time.After(timeout):
		return apptest.Frame{}, false
	}
}

// expect returns the next frame of type typ; the frames before it are checked too.
func (c *client) expect(typ string) apptest.Frame {
	c.t.Helper()
	deadline := time.Now().Add(wait)
	for {
		f, ok := c.next(time.Until(deadline))
		if !ok {
			c.t.Fatalf("%s: no %s frame within %s", c.name, typ, wait)
		}
		if f.Type == typ {
			return f
		}
	}
}

// expectEach returns the first frame of each of types, in whatever order they arrive: an ack
// and the event it acked travel different paths to the sending device.
func (c *client) expectEach(types ...string) map[string]apptest.Frame {
	c.t.Helper()
	got := make(map[string]apptest.Frame, len(types))
	deadline := time.Now().Add(wait)
	for len(got) < len(types) {
		f, ok := c.next(time.Until(deadline))
		if !ok {
			c.t.Fatalf("%s: got %d of the frames %v within %s", c.name, len(got), types, wait)
		}
		for _, typ := range types {
			if _, dup := got[typ]; f.Type == typ && !dup {
				got[typ] = f
			}
		}
	}
	return got
}

// drain checks every frame that arrives until the socket is quiet for quiet.
func (c *client) drain(quiet time.Duration) {
	c.t.Helper()
	for {
		if _, ok := c.next(quiet); !ok {
			return
		}
	}
}
