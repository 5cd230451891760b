package streams

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzDecodePushRequest: a push request from the PUSH stream either decodes to a valid request
// that encodes stably, or is an error with the zero request.
func FuzzDecodePushRequest(f *testing.F) {
	ok, err := NewPushRequest("u1", 7, ChatEvent{V: Version, Kind: KindMsg, ConversationID: "c1", MessageID: "m1", SenderID: "u2", Text: "hi"}).Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ok)
	f.Add([]byte(`{"v":1,"user_id":"u","conversation_id":"c","message_id":"m","seq":0}`))
	f.Add([]byte(`{"v":1,"user_id":"a.b","conversation_id":"c","message_id":"m","seq":1}`))
	f.Add([]byte(`{"v":2}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodePushRequest(data)
		if err != nil {
			if !reflect.DeepEqual(r, PushRequest{}) {
				t.Fatalf("error %v with a non-zero request %+v", err, r)
			}
			return
		}
		if !ValidToken(r.UserID) || !ValidToken(r.ConversationID) || !ValidToken(r.MessageID) || r.Seq == 0 {
			t.Fatalf("accepted an invalid request %+v", r)
		}
		out, err := r.Encode()
		if err != nil {
			t.Fatal(err)
		}
		again, err := DecodePushRequest(out)
		if err != nil {
			t.Fatalf("re-decode %s: %v", out, err)
		}
		out2, err := again.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, out2) {
			t.Fatalf("encoding not stable:\n%s\n%s", out, out2)
		}
	})
}
