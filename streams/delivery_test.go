package streams

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

var deliveries = []Delivery{
	{Seq: 12345, Conversation: "dtfnjvkiqiztpyiy4ohsdsqoep", Users: []string{"01JCA", "01JCB"}, Frame: json.RawMessage(`{"type":"message","seq":12345,"text":"hi"}`), Chain: 1 << 63, N: 99},
	{Users: []string{"u"}, Frame: json.RawMessage(`{"type":"typing"}`)},
	{Users: []string{}, Resync: true, ResyncBelow: 7, Chain: 3, N: 1},
	{Users: []string{}, End: true, Seq: 1<<64 - 1, Chain: 3, N: 2},
	{Users: []string{}},
}

// TestDeliveryRoundTrips: both forms decode to what was encoded.
func TestDeliveryRoundTrips(t *testing.T) {
	for _, d := range deliveries {
		got, err := DecodeDelivery(AppendDelivery(nil, d))
		if err != nil || !reflect.DeepEqual(got, d) {
			t.Errorf("binary: %+v, %v; want %+v", got, err, d)
		}
		data, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := DecodeDelivery(data); err != nil || !reflect.DeepEqual(got, d) {
			t.Errorf("JSON: %+v, %v; want %+v", got, err, d)
		}
	}
}

// TestBadDeliveriesAreRefused: every truncation of a delivery before its frame, an unknown
// format or flag, and a user count beyond the data are errors.
func TestBadDeliveriesAreRefused(t *testing.T) {
	whole := AppendDelivery(nil, Delivery{Seq: 300, Conversation: "conv", Users: []string{"alice", "bob"}})
	for i := range len(whole) {
		if _, err := DecodeDelivery(whole[:i]); !errors.Is(err, ErrBadDelivery) {
			t.Errorf("truncated to %d bytes: %v, want ErrBadDelivery", i, err)
		}
	}
	for _, bad := range [][]byte{{0x02, 0}, {deliveryBinary, 4, 0, 0, 0, 0, 0, 0}, {deliveryBinary, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, []byte(`{"users":`)} {
		if _, err := DecodeDelivery(bad); !errors.Is(err, ErrBadDelivery) {
			t.Errorf("%x: %v, want ErrBadDelivery", bad, err)
		}
	}
}

func FuzzDecodeDelivery(f *testing.F) {
	for _, d := range deliveries {
		f.Add(AppendDelivery(nil, d))
		data, _ := json.Marshal(d)
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := DecodeDelivery(data)
		if err != nil {
			if !errors.Is(err, ErrBadDelivery) {
				t.Fatalf("error %v does not wrap ErrBadDelivery", err)
			}
			return
		}
		if d.Users == nil {
			d.Users = []string{} // JSON's null users
		}
		again, err := DecodeDelivery(AppendDelivery(nil, d))
		if err != nil || !reflect.DeepEqual(again, d) {
			t.Fatalf("%+v re-encoded decodes to %+v, %v", d, again, err)
		}
	})
}

// BenchmarkDelivery encodes and decodes one delivery, in its binary form and as JSON, for a
// 1:1 event (2 users) and a group of 100.
func BenchmarkDelivery(b *testing.B) {
	frame := json.RawMessage(`{"type":"message","conversation_id":"dtfnjvkiqiztpyiy4ohsdsqoep","seq":12345,"message_id":"01JCXXXXXXXXXXXXXXXXXXXXXX","sender_id":"01JCXXXXXXXXXXXXXXXXXXXXXX","sender_device":"d1","text":"hello hello hello hello hello hello hello hello hello hello hello hello hello","sent_at":1733370000000}`)
	for _, n := range []int{2, 100} {
		users := make([]string, n)
		for i := range users {
			users[i] = fmt.Sprintf("01JCXXXXXXXXXXXXXXXXXX%04d", i)
		}
		d := Delivery{Seq: 12345, Conversation: "dtfnjvkiqiztpyiy4ohsdsqoep", Users: users, Frame: frame, Chain: 1234567, N: 99}
		b.Run(fmt.Sprintf("binary/users=%d", n), func(b *testing.B) {
			for range b.N {
				if _, err := DecodeDelivery(AppendDelivery(make([]byte, 0, deliverySize(d)), d)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("json/users=%d", n), func(b *testing.B) {
			for range b.N {
				data, err := json.Marshal(d)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := DecodeDelivery(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestCourierCallsLocalGateways: an attached gateway gets its deliveries by calls, any other
// (and a detached one) over NATS: here no connection, so an error that says so.
func TestCourierCallsLocalGateways(t *testing.T) {
	local := NewLocalGateways()
	var got []Delivery
	detach := local.Attach("gw1", func(d Delivery) { got = append(got, d) })
	c := Courier{Local: local}

	overNATS, err := c.Deliver("gw1", deliveries[0])
	if overNATS || err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], deliveries[0]) {
		t.Fatalf("to the attached gateway: overNATS %v, err %v, received %v", overNATS, err, got)
	}
	if overNATS, err := c.Deliver("gw2", deliveries[1]); !overNATS || !errors.Is(err, nats.ErrInvalidConnection) {
		t.Fatalf("to another gateway: overNATS %v, err %v; want a publish on the (missing) connection", overNATS, err)
	}
	detach()
	if overNATS, err := c.Deliver("gw1", deliveries[1]); !overNATS || err == nil || len(got) != 1 {
		t.Fatalf("after detach: overNATS %v, err %v, received %d; want a publish", overNATS, err, len(got))
	}
	if overNATS, err := (Courier{}).Deliver("gw1", deliveries[1]); !overNATS || err == nil {
		t.Fatalf("without local gateways: overNATS %v, err %v; want a publish", overNATS, err)
	}
}

// TestDetachWaitsForACallInProgress: once detach returns, the gateway is not called again, so
// it may stop.
func TestDetachWaitsForACallInProgress(t *testing.T) {
	local := NewLocalGateways()
	entered, release := make(chan struct{}), make(chan struct{})
	detach := local.Attach("gw", func(Delivery) { close(entered); <-release })
	go func() { _, _ = Courier{Local: local}.Deliver("gw", deliveries[1]) }()
	<-entered
	detached := make(chan struct{})
	go func() { detach(); close(detached) }()
	select {
	case <-detached:
		t.Fatal("detach returned while a delivery was in progress")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-detached
}
