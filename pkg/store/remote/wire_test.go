package remote

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/store"
)

var (
	t1      = time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.FixedZone("x", 3600))
	sampleM = store.Message{ConversationID: "c\x00\xff", Seq: math.MaxUint64, ID: "01HX", Kind: "msg", SenderID: "u1", SenderDevice: "d", ClientMsgID: "k", Text: "héllo 👋🏽 \xff\xfe", Member: []byte{}, SentAt: t1,
		Target: 7, TargetID: "01HW", EditedAt: t1, DeletedAt: t1.Add(time.Second), HiddenFor: []string{"u1", "\x00"}, RevisedSeq: 9}
	sampleM2 = store.Message{ConversationID: "c", Seq: 1, Kind: "member", Member: []byte(`{"action":"add"}`)}
)

// sampleRequest has every field set, with awkward values.
func sampleRequest() request {
	return request{
		timeout: 1500 * time.Millisecond, a: "a\x00b", b: "\xff",
		user:  store.User{ID: "u1", Handle: "alice", DisplayName: "Alice ✨", PasswordHash: []byte{0, 1, 2}, CreatedAt: t1},
		conv:  store.Conversation{ID: "c1", Kind: store.Group, Name: "g", CreatedBy: "u1", CreatedAt: time.Time{}},
		mem:   store.Member{ConversationID: "c1", UserID: "u1", Role: "owner", JoinedSeq: 1 << 62, LeftSeq: math.MaxUint64, JoinedAt: time.Unix(-1, 1)},
		msg:   sampleM,
		page:  store.Page{Before: 3, After: 4, Oldest: true, Limit: -7},
		dev:   store.Device{UserID: "u1", DeviceID: "d", Platform: "web", CreatedAt: t1, LastSeen: time.Unix(1<<40, 999999999)},
		token: store.PushToken{UserID: "u1", DeviceID: "d", Platform: "fcm", Token: "t", UpdatedAt: t1},
		wm:    store.Watermark{ConversationID: "c1", UserID: "u1", Delivered: math.MaxUint64, Read: 0},
		seq:   math.MaxUint64,
		rev:   store.Revision{Kind: "edit", Seq: 12, Text: "ünïcode", UserID: "u2", At: t1},
	}
}

func sampleResponse() response {
	rq := sampleRequest()
	return response{
		user: rq.user, conv: rq.conv, mem: rq.mem, mems: []store.Member{rq.mem, {}},
		msg: sampleM, inserted: true, msgs: []store.Message{sampleM, sampleM2}, truncated: true,
		devs: []store.Device{rq.dev}, tokens: []store.PushToken{rq.token, rq.token}, wm: rq.wm, wms: []store.Watermark{rq.wm},
	}
}

// utc is what the wire keeps of a time: the instant, in UTC.
func utc(t time.Time) time.Time { return t.UTC() }

func TestWireRoundTrip(t *testing.T) {
	for m := range numMethods {
		want := sampleRequest()
		data := encodeRequest(m, &want)
		got, err := decodeRequest(m, data)
		if err != nil {
			t.Fatalf("%s request: %v", m, err)
		}
		// Every field a method codes comes back; the others stay zero.
		var s sizer
		want.fields(&s, m)
		if len(data) != 1+s.n {
			t.Errorf("%s request: %d bytes, sizer says %d", m, len(data), 1+s.n)
		}
		if got.timeout != want.timeout {
			t.Errorf("%s timeout %v, want %v", m, got.timeout, want.timeout)
		}
		if !bytes.Equal(encodeRequest(m, &got), data) {
			t.Errorf("%s request does not re-encode to the same bytes", m)
		}

		wantR := sampleResponse()
		data = encodeResponse(m, &wantR)
		gotR, err := decodeResponse(m, data)
		if err != nil {
			t.Fatalf("%s response: %v", m, err)
		}
		if !bytes.Equal(encodeResponse(m, &gotR), data) {
			t.Errorf("%s response does not re-encode to the same bytes", m)
		}
	}

	// Values, field by field, for the methods that carry them.
	rq := sampleRequest()
	r, _ := decodeRequest(mInsertMessage, encodeRequest(mInsertMessage, &rq))
	want := sampleM
	want.SentAt, want.Member = utc(want.SentAt), nil // empty bytes come back nil
	want.EditedAt, want.DeletedAt = utc(want.EditedAt), utc(want.DeletedAt)
	if !reflect.DeepEqual(r.msg, want) {
		t.Errorf("message:\n got %#v\nwant %#v", r.msg, want)
	}
	r, _ = decodeRequest(mCreateUser, encodeRequest(mCreateUser, &rq))
	if wantU := (store.User{ID: "u1", Handle: "alice", DisplayName: "Alice ✨", PasswordHash: []byte{0, 1, 2}, CreatedAt: utc(t1)}); !reflect.DeepEqual(r.user, wantU) {
		t.Errorf("user %#v, want %#v", r.user, wantU)
	}
	r, _ = decodeRequest(mPutConversation, encodeRequest(mPutConversation, &rq))
	if r.conv != rq.conv || r.conv.CreatedAt != (time.Time{}) {
		t.Errorf("conversation %#v, want %#v (the zero time stays zero)", r.conv, rq.conv)
	}
	r, _ = decodeRequest(mMessages, encodeRequest(mMessages, &rq))
	if r.a != rq.a || r.page != rq.page {
		t.Errorf("messages request %q %+v, want %q %+v", r.a, r.page, rq.a, rq.page)
	}
	r, _ = decodeRequest(mMember, encodeRequest(mMember, &rq))
	if r.a != rq.a || r.b != rq.b {
		t.Errorf("ids %q %q, want %q %q", r.a, r.b, rq.a, rq.b)
	}
	r, _ = decodeRequest(mPutDevice, encodeRequest(mPutDevice, &rq))
	if wantD := (store.Device{UserID: "u1", DeviceID: "d", Platform: "web", CreatedAt: utc(t1), LastSeen: rq.dev.LastSeen.UTC()}); r.dev != wantD {
		t.Errorf("device %#v, want %#v", r.dev, wantD)
	}
	rs := sampleResponse()
	gr, _ := decodeResponse(mMessages, encodeResponse(mMessages, &rs))
	if !gr.truncated || len(gr.msgs) != 2 || gr.msgs[1].Seq != 1 || string(gr.msgs[1].Member) != `{"action":"add"}` || gr.msgs[0].Text != sampleM.Text {
		t.Errorf("messages response %+v", gr)
	}
	gr, _ = decodeResponse(mInsertMessage, encodeResponse(mInsertMessage, &rs))
	if !gr.inserted || gr.msg.Seq != math.MaxUint64 {
		t.Errorf("insert response %+v", gr)
	}
	gr, err := decodeResponse(mMembers, errorReply(CodeNotFound, "user u1: not found"))
	if err != nil || gr.code != CodeNotFound || gr.message != "user u1: not found" || gr.mems != nil {
		t.Errorf("error response %+v, %v", gr, err)
	}
}

func TestWireRejects(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":          nil,
		"version 1":      {1, 0, 0},
		"version 3":      {3, 0, 0},
		"truncated":      encodeRequest(mUserByID, &request{a: "abc"})[:4],
		"trailing":       append(encodeRequest(mUserByID, &request{a: "abc"}), 0),
		"bad uvarint":    {wireVersion, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"nanos too big":  {wireVersion, 0, 1, 'u', 1, 'h', 0, 0, 0, 0x80, 0x94, 0xeb, 0xdc, 0x03}, // CreateUser, 1e9 ns
		"seconds beyond": append([]byte{wireVersion, 0, 0, 0, 0, 0}, append(binaryVarint(maxUnix+1), 0)...),
	} {
		m := mUserByID
		if strings.HasPrefix(name, "nanos") || strings.HasPrefix(name, "seconds") {
			m = mCreateUser
		}
		if _, err := decodeRequest(m, b); !errors.Is(err, errMalformed) {
			t.Errorf("%s: %v, want malformed", name, err)
		}
	}
	// A list count larger than the bytes left could hold is refused before allocating.
	b := []byte{wireVersion, 0, 0xff, 0xff, 0xff, 0xff, 0x0f} // Members: ok, 2^32-1 members
	if _, err := decodeResponse(mMembers, b); !errors.Is(err, errMalformed) {
		t.Errorf("huge count: %v", err)
	}
}

func binaryVarint(v int64) []byte {
	e := encoder{}
	e.i64(&v)
	return e.b
}

func TestFit(t *testing.T) {
	var msgs []store.Message // newest first
	for seq := uint64(10); seq > 0; seq-- {
		msgs = append(msgs, store.Message{Seq: seq, Text: strings.Repeat("x", 100)})
	}
	var s sizer
	messageFields(&s, &msgs[0])
	size := s.n
	for _, tc := range []struct {
		forward bool
		budget  int
		want    []uint64
		trunc   bool
	}{
		{false, 10 * size, []uint64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}, false},
		{false, 3*size + size/2, []uint64{10, 9, 8}, true},
		{true, 3*size + size/2, []uint64{3, 2, 1}, true},
		{false, 1, []uint64{10}, true}, // one goes alone
		{true, 1, []uint64{1}, true},
	} {
		got, trunc := fit(msgs, tc.forward, tc.budget)
		if trunc != tc.trunc || !reflect.DeepEqual(seqsOf(got), tc.want) {
			t.Errorf("fit(forward=%v, %d): %v, %v; want %v, %v", tc.forward, tc.budget, seqsOf(got), trunc, tc.want, tc.trunc)
		}
	}
	if got, trunc := fit(nil, false, 1); got != nil || trunc {
		t.Errorf("fit(nil): %v, %v", got, trunc)
	}
}

func FuzzDecodeRequest(f *testing.F) {
	rq := sampleRequest()
	for m := range numMethods {
		f.Add(uint8(m), encodeRequest(m, &rq))
	}
	f.Add(uint8(mMessages), []byte{wireVersion, 0, 1, 'c', 0, 0, 2, 0})
	f.Fuzz(func(t *testing.T, mb uint8, b []byte) {
		m := method(mb % uint8(numMethods))
		r, err := decodeRequest(m, b)
		if err != nil {
			if !errors.Is(err, errMalformed) {
				t.Fatalf("error %v does not wrap errMalformed", err)
			}
			return
		}
		// Whatever is accepted re-encodes to bytes that decode to the same request.
		b2 := encodeRequest(m, &r)
		r2, err := decodeRequest(m, b2)
		if err != nil {
			t.Fatalf("%s: re-encoded %+v does not decode: %v", m, r, err)
		}
		if !reflect.DeepEqual(r, r2) {
			t.Fatalf("%s: %+v re-decodes as %+v", m, r, r2)
		}
		if b3 := encodeRequest(m, &r2); !bytes.Equal(b2, b3) {
			t.Fatalf("%s: encoding not stable", m)
		}
	})
}

func FuzzDecodeResponse(f *testing.F) {
	rs := sampleResponse()
	for m := range numMethods {
		f.Add(uint8(m), encodeResponse(m, &rs))
	}
	f.Add(uint8(mMembers), errorReply(CodeBusy, "busy"))
	f.Fuzz(func(t *testing.T, mb uint8, b []byte) {
		m := method(mb % uint8(numMethods))
		r, err := decodeResponse(m, b)
		if err != nil {
			if !errors.Is(err, errMalformed) {
				t.Fatalf("error %v does not wrap errMalformed", err)
			}
			return
		}
		b2 := encodeResponse(m, &r)
		r2, err := decodeResponse(m, b2)
		if err != nil {
			t.Fatalf("%s: re-encoded %+v does not decode: %v", m, r, err)
		}
		if !reflect.DeepEqual(r, r2) {
			t.Fatalf("%s: %+v re-decodes as %+v", m, r, r2)
		}
		var s sizer
		r2.fields(&s, m)
		if len(b2) != 1+s.n {
			t.Fatalf("%s: %d bytes, sizer says %d", m, len(b2), 1+s.n)
		}
	})
}
