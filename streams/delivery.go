package streams

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"
)

// Deliveries travel on gw.<gateway>.deliver in a binary form: every event a gateway delivers
// is one, and as JSON each cost three passes over the frame it carries (fanout's marshal
// validating it, the gateway's validation and its copy) and an allocation per user
// (BenchmarkDelivery). The layout, all integers unsigned varints:
//
//	0x01                     the format (a JSON delivery, which gateways still read, starts with '{')
//	flags                    one byte: 1 resync, 2 end
//	seq resync_below chain n
//	len conv                 the conversation id
//	count (len user)...      the users
//	frame                    the rest: the client frame, as it goes to the socket
const deliveryBinary = 0x01

const (
	flagResync = 1 << iota
	flagEnd
)

// ErrBadDelivery is wrapped by DecodeDelivery's errors.
var ErrBadDelivery = errors.New("bad delivery")

// AppendDelivery appends d's binary form to b.
func AppendDelivery(b []byte, d Delivery) []byte {
	var flags byte
	if d.Resync {
		flags |= flagResync
	}
	if d.End {
		flags |= flagEnd
	}
	b = append(b, deliveryBinary, flags)
	b = binary.AppendUvarint(b, d.Seq)
	b = binary.AppendUvarint(b, d.ResyncBelow)
	b = binary.AppendUvarint(b, d.Chain)
	b = binary.AppendUvarint(b, d.N)
	b = appendString(b, d.Conversation)
	b = binary.AppendUvarint(b, uint64(len(d.Users)))
	for _, u := range d.Users {
		b = appendString(b, u)
	}
	return append(b, d.Frame...)
}

// deliverySize is an upper bound of d's binary size.
func deliverySize(d Delivery) int {
	n := 2 + 4*binary.MaxVarintLen64 + binary.MaxVarintLen64 + len(d.Conversation) + binary.MaxVarintLen64 + len(d.Frame)
	for _, u := range d.Users {
		n += binary.MaxVarintLen64 + len(u)
	}
	return n
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// DecodeDelivery reads a delivery in either form. Its Frame shares data's memory.
func DecodeDelivery(data []byte) (Delivery, error) {
	var d Delivery
	if len(data) > 0 && data[0] == '{' {
		if err := json.Unmarshal(data, &d); err != nil {
			return Delivery{}, fmt.Errorf("%w: %w", ErrBadDelivery, err)
		}
		return d, nil
	}
	r := deliveryReader{data: data}
	if r.byte() != deliveryBinary {
		return Delivery{}, fmt.Errorf("%w: unknown format", ErrBadDelivery)
	}
	flags := r.byte()
	if flags&^(flagResync|flagEnd) != 0 {
		return Delivery{}, fmt.Errorf("%w: unknown flags %#x", ErrBadDelivery, flags)
	}
	d.Resync, d.End = flags&flagResync != 0, flags&flagEnd != 0
	d.Seq, d.ResyncBelow, d.Chain, d.N = r.uvarint(), r.uvarint(), r.uvarint(), r.uvarint()
	d.Conversation = r.string()
	n := r.uvarint()
	if n > uint64(len(r.data)) { // each user takes at least its length byte
		return Delivery{}, fmt.Errorf("%w: %d users in %d bytes", ErrBadDelivery, n, len(r.data))
	}
	d.Users = r.strings(int(n))
	if r.err != nil {
		return Delivery{}, fmt.Errorf("%w: %w", ErrBadDelivery, r.err)
	}
	if len(r.data) > 0 {
		d.Frame = r.data
	}
	return d, nil
}

// deliveryReader reads DecodeDelivery's fields; the first failure sticks.
type deliveryReader struct {
	data []byte
	err  error
}

func (r *deliveryReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("truncated at %s", what)
	}
	r.data = nil
}

func (r *deliveryReader) byte() byte {
	if len(r.data) == 0 {
		r.fail("a byte")
		return 0
	}
	c := r.data[0]
	r.data = r.data[1:]
	return c
}

func (r *deliveryReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.data)
	if n <= 0 {
		r.fail("a number")
		return 0
	}
	r.data = r.data[n:]
	return v
}

// strings reads n strings into one allocation.
func (r *deliveryReader) strings(n int) []string {
	out := make([]string, n)
	ends := make([][2]int, n) // each string's bounds in the region
	region := r.data
	for i := range n {
		l := r.uvarint()
		if r.err != nil || l > uint64(len(r.data)) {
			r.fail("a string")
			return nil
		}
		at := len(region) - len(r.data)
		ends[i] = [2]int{at, at + int(l)}
		r.data = r.data[l:]
	}
	all := string(region[:len(region)-len(r.data)])
	for i, e := range ends {
		out[i] = all[e[0]:e[1]]
	}
	return out
}

func (r *deliveryReader) string() string {
	n := r.uvarint()
	if n > uint64(len(r.data)) {
		r.fail("a string")
		return ""
	}
	s := string(r.data[:n])
	r.data = r.data[n:]
	return s
}

// PublishDelivery sends d to gateway gw over core NATS, on DeliverSubject(gw).
func PublishDelivery(nc *nats.Conn, gw string, d Delivery) error {
	if err := nc.Publish(DeliverSubject(gw), AppendDelivery(make([]byte, 0, deliverySize(d)), d)); err != nil {
		return fmt.Errorf("deliver to gateway %s: %w", gw, err)
	}
	return nil
}

// Courier hands deliveries to gateways: every delivery natter makes goes through one. A gateway
// attached to Local (one running in this process) gets each by a direct call; any other over
// core NATS (PublishDelivery).
type Courier struct {
	NC    *nats.Conn
	Local *LocalGateways // nil: every gateway over NATS
}

// Deliver sends d to gateway gw and reports whether it went over NATS: a publish that may still
// sit in the connection's buffer (nats.Conn.Flush hands it to the server). A local gateway may
// keep d's slices (the frame, until its sockets wrote it): they must not change afterwards.
func (c Courier) Deliver(gw string, d Delivery) (overNATS bool, err error) {
	if c.Local.deliver(gw, d) {
		return false, nil
	}
	return true, PublishDelivery(c.NC, gw, d)
}

// LocalGateways are the gateways of this process that take their deliveries by direct calls
// rather than over NATS. With fanout in the same process (natter run), that saves each delivery
// a publish, the server's routing of it, the gateway's read of it, and fanout a round trip to
// the server per chunk (docs/performance.md, "Sixteenth round").
type LocalGateways struct {
	mu      sync.RWMutex
	receive map[string]func(Delivery)
}

// NewLocalGateways returns an empty set.
func NewLocalGateways() *LocalGateways {
	return &LocalGateways{receive: map[string]func(Delivery){}}
}

// Attach makes gateway id take its deliveries by calls to receive, until detach is called;
// detach returns once no call is in progress. receive runs on its callers' goroutines, several
// at once, and must not block.
func (l *LocalGateways) Attach(id string, receive func(Delivery)) (detach func()) {
	l.mu.Lock()
	l.receive[id] = receive
	l.mu.Unlock()
	return func() {
		l.mu.Lock()
		delete(l.receive, id)
		l.mu.Unlock()
	}
}

// deliver calls gw's receive, if gw is attached (and l is not nil), and reports whether it did.
func (l *LocalGateways) deliver(gw string, d Delivery) bool {
	if l == nil {
		return false
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	receive, ok := l.receive[gw]
	if ok {
		receive(d)
	}
	return ok
}
