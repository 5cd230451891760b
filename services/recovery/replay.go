package recovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natter-chat/natter/pkg/consumer"
)

// Range selects the events of one stream to re-drive. Sequences win over times; zero values are
// open ends (from the stream's first event, up to its last one when the replay starts).
type Range struct {
	FromSeq, ToSeq uint64
	Since, Until   time.Time
}

// Target is what a replay does with each event.
type Target struct {
	// Apply applies the event (a projection into the store). Nil with an empty Subject is a dry
	// run: events are only counted.
	Apply func(ctx context.Context, subject string, seq uint64, data []byte) error
	// Subject, when set, republishes every event there (see Publish).
	Subject string
}

// Headers set on every event a replay republishes: the consumer learns where it came from, and a
// stream that captures the subject drops re-runs within its duplicate window (Nats-Msg-Id).
const (
	HeaderStream  = "Natter-Stream"
	HeaderSeq     = "Natter-Seq"
	HeaderSubject = "Natter-Subject"
	HeaderTime    = "Natter-Time"
)

// Options tune one replay.
type Options struct {
	Range
	// PositionFile, when set, is where the replay keeps the next seq to do: a replay stopped
	// (Ctrl-C, a crash) and started again with the same stream, range end and target resumes
	// there. It is removed when the replay completes.
	PositionFile string
	// Progress, when set, is called after every event with the seq done and the replay's last seq.
	Progress func(done, last uint64)
	// Batch is how many events are fetched at once (default 256).
	Batch int
}

// Result counts what a replay went over.
type Result struct {
	Stream   string         `json:"stream"`
	From     uint64         `json:"from_seq"` // first seq the replay asked for
	To       uint64         `json:"to_seq"`   // last seq it would go to
	Resumed  uint64         `json:"resumed_at,omitempty"`
	Events   int            `json:"events"`
	Last     uint64         `json:"last_seq"` // last seq done, 0 if none
	Kinds    map[string]int `json:"kinds"`    // events by subject kind (last token)
	Rejected int            `json:"rejected"` // events the projection can never apply
}

// position is the content of a position file.
type position struct {
	Stream  string `json:"stream"`
	To      uint64 `json:"to_seq"`
	Target  string `json:"target"`
	Next    uint64 `json:"next_seq"`
	Updated string `json:"updated"`
}

func (t Target) name() string {
	switch {
	case t.Subject != "":
		return "subject:" + t.Subject
	case t.Apply != nil:
		return "store"
	}
	return "count"
}

// Run re-drives the range of stream through target, in stream order, with an ordered consumer
// (no durable state on the server). It stops at ctx's end, after saving its position.
func Run(ctx context.Context, js jetstream.JetStream, nc *nats.Conn, stream string, target Target, opts Options) (Result, error) {
	res := Result{Stream: stream, Kinds: map[string]int{}}
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return res, fmt.Errorf("replay %s: %w", stream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return res, fmt.Errorf("replay %s: %w", stream, err)
	}
	first, last := info.State.FirstSeq, info.State.LastSeq
	res.From, res.To = max(opts.FromSeq, first), last
	if opts.ToSeq != 0 {
		res.To = min(opts.ToSeq, last)
	}
	if last == 0 || info.State.Msgs == 0 || res.From > res.To {
		return res, nil // nothing in range
	}
	start := res.From
	var saved position
	if opts.PositionFile != "" {
		if b, err := os.ReadFile(opts.PositionFile); err == nil {
			if json.Unmarshal(b, &saved) == nil && saved.Stream == stream && saved.To == res.To && saved.Target == target.name() &&
				saved.Next > start && saved.Next <= res.To+1 {
				start, res.Resumed = saved.Next, saved.Next
			}
		}
		if start > res.To {
			return res, os.Remove(opts.PositionFile)
		}
	}
	ocfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: start}
	if opts.FromSeq == 0 && !opts.Since.IsZero() && res.Resumed == 0 {
		since := opts.Since
		ocfg = jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &since}
	}
	cons, err := js.OrderedConsumer(ctx, stream, ocfg)
	if err != nil {
		return res, fmt.Errorf("replay %s: consumer: %w", stream, err)
	}
	publishJS := false
	if target.Subject != "" {
		if _, err := js.StreamNameBySubject(ctx, target.Subject); err == nil {
			publishJS = true // a stream captures it: publish with acks
		}
	}
	batch := opts.Batch
	if batch <= 0 {
		batch = 256
	}
	next := start
	save := func() error {
		if opts.PositionFile == "" || target.name() == "count" {
			return nil
		}
		return writePosition(opts.PositionFile, position{Stream: stream, To: res.To, Target: target.name(), Next: next,
			Updated: time.Now().UTC().Format(time.RFC3339)})
	}
	lastSave := time.Now()
	done := false
	for !done {
		if err := ctx.Err(); err != nil {
			return res, errors.Join(fmt.Errorf("replay %s stopped at seq %d: %w", stream, next, err), save())
		}
		msgs, err := cons.FetchNoWait(batch)
		if err != nil {
			return res, errors.Join(fmt.Errorf("replay %s: fetch at seq %d: %w", stream, next, err), save())
		}
		n := 0
		for msg := range msgs.Messages() {
			n++
			if err := ctx.Err(); err != nil {
				return res, errors.Join(fmt.Errorf("replay %s stopped at seq %d: %w", stream, next, err), save())
			}
			meta, err := msg.Metadata()
			if err != nil {
				return res, errors.Join(fmt.Errorf("replay %s: metadata after seq %d: %w", stream, next-1, err), save())
			}
			seq := meta.Sequence.Stream
			if seq > res.To || (!opts.Until.IsZero() && opts.ToSeq == 0 && meta.Timestamp.After(opts.Until)) {
				done = true
				break
			}
			if err := handle(ctx, js, nc, stream, target, msg, seq, meta.Timestamp, publishJS, &res); err != nil {
				return res, errors.Join(fmt.Errorf("replay %s: seq %d: %w", stream, seq, err), save())
			}
			next = seq + 1
			if res.Events == 0 && res.Resumed == 0 {
				res.From = seq
			}
			res.Events++
			res.Last = seq
			if opts.Progress != nil {
				opts.Progress(seq, res.To)
			}
			if time.Since(lastSave) > 500*time.Millisecond {
				if err := save(); err != nil {
					return res, fmt.Errorf("replay %s: save position: %w", stream, err)
				}
				lastSave = time.Now()
			}
			if seq == res.To || meta.NumPending == 0 {
				done = true
				break
			}
		}
		if err := msgs.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
			return res, errors.Join(fmt.Errorf("replay %s: fetch at seq %d: %w", stream, next, err), save())
		}
		if n == 0 {
			done = true // nothing more in the stream at or after next
		}
	}
	if target.Subject != "" && !publishJS {
		if err := nc.FlushTimeout(10 * time.Second); err != nil {
			return res, fmt.Errorf("replay %s: flush: %w", stream, err)
		}
	}
	if opts.PositionFile != "" {
		if err := os.Remove(opts.PositionFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			return res, fmt.Errorf("replay %s: %w", stream, err)
		}
	}
	return res, nil
}

func handle(ctx context.Context, js jetstream.JetStream, nc *nats.Conn, stream string, target Target, msg jetstream.Msg,
	seq uint64, ts time.Time, publishJS bool, res *Result) error {
	subject := msg.Subject()
	res.Kinds[kindOf(subject)]++
	switch {
	case target.Subject != "":
		out := nats.NewMsg(target.Subject)
		out.Data = msg.Data()
		for k, v := range msg.Headers() {
			out.Header[k] = v
		}
		out.Header.Set(HeaderStream, stream)
		out.Header.Set(HeaderSeq, fmt.Sprint(seq))
		out.Header.Set(HeaderSubject, subject)
		out.Header.Set(HeaderTime, ts.UTC().Format(time.RFC3339Nano))
		out.Header.Set(nats.MsgIdHdr, fmt.Sprintf("%s:%d", stream, seq))
		if publishJS {
			if _, err := js.PublishMsg(ctx, out); err != nil {
				return fmt.Errorf("publish to %s: %w", target.Subject, err)
			}
			return nil
		}
		if err := nc.PublishMsg(out); err != nil {
			return fmt.Errorf("publish to %s: %w", target.Subject, err)
		}
	case target.Apply != nil:
		if err := target.Apply(ctx, subject, seq, msg.Data()); err != nil {
			if consumer.IsPermanent(err) {
				res.Rejected++
				return nil
			}
			return err
		}
	}
	return nil
}

// kindOf is what a replay counts an event as: the kind of a CHAT event (chat.<conversation>.<kind>)
// or a STATE event (state.<kind>.<id>), the first token of any other subject.
func kindOf(subject string) string {
	parts := strings.Split(subject, ".")
	switch {
	case parts[0] == "chat" && len(parts) == 3:
		return parts[2]
	case parts[0] == "state" && len(parts) >= 2:
		return parts[1]
	}
	return parts[0]
}

func writePosition(path string, p position) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
