package pebble

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/store"
)

// AppendMessages leaves what dst held and appends exactly what Messages answers, for pages of
// every kind; reusing its result for the next page changes nothing already read.
func TestAppendMessagesIsMessagesAfterDst(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	for seq := uint64(1); seq <= 30; seq++ {
		m := store.Message{ConversationID: "c1", Seq: seq * 3, ID: fmt.Sprint("m", seq), Kind: "msg", SenderID: "u1",
			ClientMsgID: fmt.Sprint("k", seq), Text: fmt.Sprint("text ", seq), SentAt: time.UnixMilli(int64(seq))}
		if _, _, err := s.InsertMessage(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	prefix := []store.Message{{ConversationID: "x", Seq: 1}, {ConversationID: "x", Seq: 2}}
	for _, p := range []store.Page{
		{}, {Limit: 7}, {Before: 40, Limit: 5}, {After: 10, Oldest: true, Limit: 6}, {After: 10, Limit: 4},
		{After: 89, Oldest: true}, {After: 90, Oldest: true}, {Before: 1}, {Limit: store.MaxPageLimit},
	} {
		want, err := s.Messages(ctx, "c1", p)
		if err != nil {
			t.Fatal(err)
		}
		dst := append(make([]store.Message, 0, 3), prefix...) // too small: it must grow
		got, err := s.AppendMessages(ctx, dst, "c1", p)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got[:len(prefix)], prefix) || !reflect.DeepEqual(append([]store.Message{}, got[len(prefix):]...), append([]store.Message{}, want...)) {
			t.Errorf("page %+v: AppendMessages gave %d after the prefix, Messages %d, or the prefix changed", p, len(got)-len(prefix), len(want))
		}
	}
	// Reading page after page into one slice, as timeline.Range does.
	var buf, all []store.Message
	for after := uint64(0); ; {
		page, err := s.AppendMessages(ctx, buf[:0], "c1", store.Page{After: after, Oldest: true, Limit: 7})
		if err != nil {
			t.Fatal(err)
		}
		buf = page
		if len(page) == 0 {
			break
		}
		for i := len(page) - 1; i >= 0; i-- {
			all = append(all, page[i])
		}
		after = page[0].Seq
	}
	if len(all) != 30 || all[0].Seq != 3 || all[29].Seq != 90 || all[29].Text != "text 30" {
		t.Fatalf("paged through %d messages, first %+v", len(all), all[0])
	}
}
