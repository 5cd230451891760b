package pebble

import (
	"context"
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/natter-chat/natter/pkg/store"
)

// A crash of the machine keeps every message InsertMessage returned from and every unsynced
// insert a later Sync returned from (the persister's group commit relies on this); an unsynced
// insert with no Sync after it is lost, which shows the crash is real.
func TestCrashKeepsWhatWasSynced(t *testing.T) {
	fs := vfs.NewCrashableMem()
	ctx := context.Background()
	st, err := Open("db", Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	msg := func(seq uint64) store.Message {
		return store.Message{ConversationID: "dab", Seq: seq, Kind: "msg", SenderID: "a", ClientMsgID: string(rune('a' + seq)), Text: "hi"}
	}
	if _, _, err := st.InsertMessage(ctx, msg(1)); err != nil {
		t.Fatal(err)
	}
	for seq := uint64(2); seq <= 4; seq++ {
		if _, _, err := st.InsertMessageUnsynced(ctx, msg(seq)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.InsertMessageUnsynced(ctx, msg(5)); err != nil {
		t.Fatal(err)
	}

	crashed := fs.CrashClone(vfs.CrashCloneCfg{}) // the machine dies: exactly what was synced survives
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st, err = Open("db", Options{FS: crashed})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for seq := uint64(1); seq <= 4; seq++ {
		if _, err := st.MessageByClientID(ctx, "a", msg(seq).ClientMsgID); err != nil {
			t.Errorf("synced seq %d after the crash: %v", seq, err)
		}
	}
	if _, err := st.MessageByClientID(ctx, "a", msg(5).ClientMsgID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unsynced seq 5 after the crash: %v, want not found (the crash did not drop unsynced writes)", err)
	}
}
