package scylla

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gocql/gocql"
	"github.com/scylladb/gocqlx/v3"

	"github.com/natter-chat/natter/pkg/store"
)

// unmapped returns the names that gocqlx cannot find in row's db tags (or in extra).
func unmapped(row any, names, extra []string) []string {
	var missing []string
	// The callback returns no error, so neither does TraversalsByNameFunc.
	_ = gocqlx.DefaultMapper.TraversalsByNameFunc(reflect.TypeOf(row), names, func(i int, t []int) error {
		if len(t) == 0 && !slices.Contains(extra, names[i]) {
			missing = append(missing, names[i])
		}
		return nil
	})
	return missing
}

// TestBindings: every statement bound from a row struct finds each of its names in the struct,
// and every SELECT's columns land in a field of the struct it is scanned into (gocqlx drops
// unmapped columns silently).
func TestBindings(t *testing.T) {
	binds := []struct {
		name  string
		st    stmt
		row   any
		extra []string
	}{
		{"userInsertIfNotExists", q.userInsertIfNotExists, userRow{}, nil},
		{"handleClaim", q.handleClaim, handleRow{}, nil},
		{"handleReleaseIf", q.handleReleaseIf, handleRow{}, nil},
		{"conversationPut", q.conversationPut, conversationRow{}, nil},
		{"memberPut", q.memberPut, memberRow{}, nil},
		{"membershipPut", q.membershipPut, memberRow{}, nil},
		{"messageInsertIfNotExists", q.messageInsertIfNotExists, messageRow{}, nil},
		{"bucketPut", q.bucketPut, messageRow{}, nil},
		{"messageIDPut", q.messageIDPut, messageRow{}, nil},
		{"clientClaim", q.clientClaim, clientRow{}, nil},
		{"clientReleaseIf", q.clientReleaseIf, clientRow{}, nil},
		{"deviceInsertIfNotExists", q.deviceInsertIfNotExists, deviceRow{}, nil},
		{"deviceUpdateIf", q.deviceUpdateIf, deviceRow{}, []string{"prev_platform", "prev_created_at", "prev_last_seen"}},
		{"pushTokenPut", q.pushTokenPut, pushTokenRow{}, nil},
		{"sessionInsertIfNotExists", q.sessionInsertIfNotExists, sessionRow{}, nil},
		{"sessionRotateIf", q.sessionRotateIf, sessionRow{}, []string{"old_hash", "active"}},
		{"sessionByUserPut", q.sessionByUserPut, sessionByUserRow{}, nil},
		{"metaClaim", q.metaClaim, metaRow{}, nil},
		{"migrationPut", q.migrationPut, migrationRow{}, nil},
	}
	for _, b := range binds {
		if m := unmapped(b.row, b.st.names, b.extra); len(m) > 0 {
			t.Errorf("%s: %T has no field for %v", b.name, b.row, m)
		}
	}

	scans := map[string]any{
		"userGet": userRow{}, "handleGet": handleRow{}, "conversationGet": conversationRow{},
		"memberGet": memberRow{}, "membersList": memberRow{}, "membershipsList": memberRow{},
		"messageGet": messageRow{}, "messagesNewest": messageRow{}, "messagesBefore": messageRow{},
		"messagesAfter": messageRow{}, "clientGet": clientRow{}, "devicesList": deviceRow{},
		"pushTokensList": pushTokenRow{}, "watermarkGet": watermarkRow{}, "watermarksList": watermarkRow{},
		"migrationGet": migrationRow{}, "sessionGet": sessionRow{},
	}
	for name, st := range allStatements() {
		if !strings.HasPrefix(st.cql, "SELECT ") {
			continue
		}
		cols, _, _ := strings.Cut(strings.TrimPrefix(st.cql, "SELECT "), " FROM ")
		row, ok := scans[name]
		if !ok {
			if strings.Contains(cols, ",") {
				t.Errorf("%s selects %s but is scanned into no struct", name, cols)
			}
			continue // one column, scanned into a variable
		}
		if m := unmapped(row, strings.Split(cols, ","), nil); len(m) > 0 {
			t.Errorf("%s: %T has no field for columns %v", name, row, m)
		}
	}
}

// TestRevisionWrites: each revision kind picks the conditional statement of its rule, and its
// values with the key bind every name of that statement (BindMap fails on a missing name only
// when the statement runs, which needs a server).
func TestRevisionWrites(t *testing.T) {
	key := []string{"conversation_id", "bucket", "seq"}
	cases := []struct {
		cur  store.Message
		r    store.Revision
		want string
	}{
		{store.Message{Kind: "msg"}, store.Revision{Kind: "edit", Seq: 9, Text: "x"}, "messageEditFirstIf"},
		{store.Message{Kind: "msg", RevisedSeq: 7}, store.Revision{Kind: "edit", Seq: 9, Text: "x"}, "messageEditIf"},
		{store.Message{Kind: "msg"}, store.Revision{Kind: "delete", Seq: 9}, "messageDeleteIf"},
		{store.Message{Kind: "msg"}, store.Revision{Kind: "hide", Seq: 9, UserID: "u"}, "messageHideIf"},
	}
	stmts := allStatements()
	for _, c := range cases {
		st, args, err := revisionWrite(c.cur, c.r)
		if err != nil {
			t.Fatalf("%s: %v", c.r.Kind, err)
		}
		if st.cql != stmts[c.want].cql {
			t.Errorf("%s over %+v: %q, want %s", c.r.Kind, c.cur, st.cql, c.want)
		}
		for _, n := range st.names {
			if _, ok := args[n]; !ok && !slices.Contains(key, n) {
				t.Errorf("%s: no value for %q", c.want, n)
			}
		}
	}
	if _, _, err := revisionWrite(store.Message{Kind: "msg"}, store.Revision{Kind: "pin"}); err == nil {
		t.Error("an unknown kind has a statement")
	}
}

// TestMessageRow: a message's revision state and an entry's target survive the row, and the
// zero values are written as unset, not as values: "not edited" and "not deleted" must be null
// cells for the conditions of the revision statements.
func TestMessageRow(t *testing.T) {
	at := time.UnixMilli(1_700_000_000_123).UTC()
	m := store.Message{ConversationID: "c", Seq: 5, ID: "m5", Kind: "msg", SenderID: "u", Text: "hi", SentAt: at,
		EditedAt: at.Add(time.Second), DeletedAt: at.Add(2 * time.Second), HiddenFor: []string{"a", "b"}, RevisedSeq: 8}
	if got := messageRowOf(m, 1<<20).message(); !reflect.DeepEqual(got, m) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, m)
	}
	entry := store.Message{ConversationID: "c", Seq: 9, ID: "m9", Kind: "edit", SenderID: "u", SentAt: at, Target: 5, TargetID: "m5"}
	if got := messageRowOf(entry, 1<<20).message(); !reflect.DeepEqual(got, entry) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, entry)
	}
	plain := messageRowOf(store.Message{ConversationID: "c", Seq: 1, Kind: "msg", SentAt: at}, 1<<20)
	for name, v := range map[string]any{"edited_at": plain.EditedAt, "deleted_at": plain.DeletedAt,
		"revised_seq": plain.RevisedSeq, "target": plain.Target, "hidden_for": plain.HiddenFor, "member": plain.Member} {
		if unsetEmpty(name, v) != gocql.UnsetValue {
			t.Errorf("%s of an unrevised message is bound as %v, want unset", name, v)
		}
	}
}

// TestRevisionColumnsThroughTheDriver: the Go types of the new columns go through the driver's
// own encoding as their CQL types: a *int64 as a timestamp or bigint (nil as null, and null
// read back as nil), a []string as a set<text>.
func TestRevisionColumnsThroughTheDriver(t *testing.T) {
	const proto = 4
	for _, typ := range []gocql.Type{gocql.TypeTimestamp, gocql.TypeBigInt} {
		info := gocql.NewNativeType(proto, typ)
		v := int64(1_700_000_000_123)
		data, err := gocql.Marshal(info, &v)
		if err != nil {
			t.Fatalf("%v: marshal: %v", typ, err)
		}
		var back *int64
		if err := gocql.Unmarshal(info, data, &back); err != nil || back == nil || *back != v {
			t.Errorf("%v: %d read back as %v, %v", typ, v, back, err)
		}
		if data, err := gocql.Marshal(info, (*int64)(nil)); err != nil || data != nil {
			t.Errorf("%v: nil marshals as %v, %v; want null", typ, data, err)
		}
		back = &v
		if err := gocql.Unmarshal(info, nil, &back); err != nil || back != nil {
			t.Errorf("%v: null read back as %v, %v; want nil", typ, back, err)
		}
	}
	set := gocql.NewCollectionType(gocql.NewNativeType(proto, gocql.TypeSet), nil, gocql.NewNativeType(proto, gocql.TypeText))
	data, err := gocql.Marshal(set, []string{"u-bob", "u-carol"})
	if err != nil {
		t.Fatal(err)
	}
	var users []string
	if err := gocql.Unmarshal(set, data, &users); err != nil || !slices.Equal(users, []string{"u-bob", "u-carol"}) {
		t.Errorf("set<text> read back as %q, %v", users, err)
	}
}
