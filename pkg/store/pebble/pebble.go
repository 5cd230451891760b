// Package pebble is the embedded store.Store: one machine, one process, on
// github.com/cockroachdb/pebble/v2.
//
// Keys mirror the ScyllaDB tables as ordered byte keys (see codec.go):
//
//	user/<id>                   handle/<handle>
//	conv/<id>
//	mem/<conversation>/<user>   umem/<user>/<conversation>
//	msg/<conversation>/<seq>    mid/<conversation>/<message id>   cmid/<sender>/<client msg id>
//	dev/<user>/<device>         push/<user>/<device>
//	wm/<conversation>/<user>
//
// String components are escaped and terminated so that no id is a prefix of another in a
// scan, and seqs are 8-byte big-endian so that byte order is seq order: a page is one bounded
// range scan. Values are a versioned binary encoding (codec.go); times keep milliseconds.
//
// Records written together (a message with its indexes, a member in both directions, a user with
// its handle, a device with its push token) go in one batch. Pebble has no transactions, so the
// check-then-write paths (handle uniqueness, client-msg-id dedupe, watermark max, device
// LastSeen max) hold a striped mutex keyed by the records they check. That makes the store safe
// for many goroutines of one process; pebble itself locks its directory against other processes.
//
// Users, conversations, members, messages, push tokens and deletions are committed with
// pebble.Sync: when the call returns they survive a crash of the machine. Watermarks and device
// LastSeen updates are frequent, re-derivable and advisory, and are committed without waiting
// for fsync: they survive a crash of the process, not necessarily of the machine.
package pebble

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/store"
)

// ErrClosed is returned by every method called after Close.
var ErrClosed = errors.New("pebble: store closed")

// Options configure Open. The zero value is usable.
type Options struct {
	// Logger receives pebble's own log lines (flushes, compactions, errors). Nil discards them.
	Logger *zap.Logger
	// CacheBytes sizes the block cache; 0 means 128 MB.
	CacheBytes int64
	// FS is the file system; nil is the operating system's. Tests pass a vfs.NewCrashableMem
	// to simulate a machine crash (its CrashClone keeps only what was synced).
	FS vfs.FS
}

func (o Options) cacheBytes() int64 {
	if o.CacheBytes > 0 {
		return o.CacheBytes
	}
	return 128 << 20
}

// Store is the pebble store.Store. Safe for concurrent use; Close is safe to call more than
// once and concurrently with other methods (which then fail with ErrClosed).
type Store struct {
	db *pebble.DB

	mu     sync.RWMutex // read-held by every method, write-held by Close
	closed bool

	stripes [64]sync.Mutex // see lock
	tops    tops           // highest stored seq per conversation, for insertMessage
	members members        // member records read lately, for Member

	ids *idFilter // client-id keys the store holds, for insertMessage
	// stage holds InsertMessageUnsynced's messages until Sync writes them; direct counts the
	// messages other inserts wrote, so that Sync knows whether to check the staged ones again.
	stage    stage
	direct   atomic.Uint64
	stopScan chan struct{} // closed by Close: end the scan that fills ids
	scanned  chan struct{} // closed when that scan has ended
}

var (
	_ store.Store          = (*Store)(nil)
	_ store.GroupCommitter = (*Store)(nil)
	_ store.MemberCache    = (*Store)(nil)
)

// memTableBytes is the most a memtable grows to (Pebble starts each at 256 KB and doubles it).
// At Pebble's default of 4 MB a busy store flushed every second or so, and compacting those
// many small L0 files took 8 % of natter's CPU under a 1:1 flat-out load; at 64 MB flushes and
// compactions took about 1 %, and a minute flat out cost 11 % less CPU per message
// (docs/performance.md, twentieth round). A crash replays at most that much write-ahead log.
const memTableBytes = 64 << 20

// Open opens (creating if needed) the store in dir.
func Open(dir string, opts Options) (*Store, error) {
	// Bloom filters spare most point reads (membership, client-id dedupe) a block read, and a
	// 128 MB cache keeps the hot index and data blocks decoded: in natter bench this took store
	// reads from 19.5% to 7.9% of CPU.
	cache := pebble.NewCache(opts.cacheBytes())
	defer cache.Unref()
	po := &pebble.Options{
		Logger:             pebbleLogger{opts.Logger},
		FormatMajorVersion: pebble.FormatNewest,
		Cache:              cache,
		FS:                 opts.FS,
		MemTableSize:       memTableBytes,
	}
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("pebble: open %s: %w", dir, err)
	}
	s := &Store{db: db, ids: newIDFilter(filterFirstKeys), stopScan: make(chan struct{}), scanned: make(chan struct{})}
	go s.scanIDs(opts.Logger)
	return s, nil
}

// scanIDs adds the client-id keys the store holds to s.ids, then makes it ready. It stops early
// when Close asks; the filter then stays "maybe" for everything.
func (s *Store) scanIDs(log *zap.Logger) {
	defer close(s.scanned)
	if err := s.addStoredIDs(); err != nil {
		if log != nil && !errors.Is(err, errStopped) {
			log.Warn("pebble: scan client ids; every insert reads its client id", zap.Error(err))
		}
		return
	}
	s.ids.ready.Store(true)
}

// addStoredIDs adds every client-id key to s.ids; errStopped when Close asked first.
func (s *Store) addStoredIDs() error {
	prefix := []byte(tagCmid)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return err
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		if n++; n%4096 == 0 {
			select {
			case <-s.stopScan:
				_ = it.Close()
				return errStopped
			default:
			}
		}
		s.ids.add(it.Key())
	}
	return it.Close()
}

var errStopped = errors.New("the store is closing")

// Close closes the database. Later calls return nil.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	close(s.stopScan)
	<-s.scanned
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("pebble: close: %w", err)
	}
	return nil
}

// enter starts a method: it fails if ctx is done or the store closed, and otherwise read-holds
// s.mu, which the caller releases with s.mu.RUnlock. Methods never call enter twice.
func (s *Store) enter(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	return nil
}

// lock holds the stripes of keys (in index order, so two callers never deadlock) until the
// returned function is called. Every check-then-write of a key runs under the key's stripe.
func (s *Store) lock(keys ...[]byte) (unlock func()) {
	idx := make([]int, 0, len(keys))
	for _, k := range keys {
		h := fnv.New32a()
		h.Write(k)
		idx = append(idx, int(h.Sum32()%uint32(len(s.stripes))))
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	for _, i := range idx {
		s.stripes[i].Lock()
	}
	return func() {
		for _, i := range idx {
			s.stripes[i].Unlock()
		}
	}
}

// get returns a copy of the value at k, or ok=false if there is none.
func (s *Store) get(k []byte) (v []byte, ok bool, err error) {
	v, closer, err := s.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	v = append([]byte(nil), v...)
	return v, true, closer.Close()
}

// scan decodes the value of every key that starts with prefix, in key order.
func scan[T any](s *Store, prefix []byte, decode func([]byte) (T, error)) ([]T, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, err
	}
	var out []T
	for ok := it.First(); ok; ok = it.Next() {
		v, err := decode(it.Value())
		if err != nil {
			return nil, errors.Join(fmt.Errorf("key %q: %w", it.Key(), err), it.Close())
		}
		out = append(out, v)
	}
	return out, errors.Join(it.Error(), it.Close())
}

// write commits b and closes it.
func (s *Store) write(b *pebble.Batch, opts *pebble.WriteOptions) error {
	defer b.Close()
	return b.Commit(opts)
}

// ---- users

// CreateUser implements store.Store. Creating a user whose id and handle are already stored
// together is a no-op that succeeds: it does not overwrite a later UpdateProfile.
func (s *Store) CreateUser(ctx context.Context, u store.User) error {
	if err := s.enter(ctx); err != nil {
		return fmt.Errorf("pebble: create user: %w", err)
	}
	defer s.mu.RUnlock()
	uk, hk := key(tagUser, u.ID), key(tagHandle, u.Handle)
	defer s.lock(uk, hk)()
	if v, ok, err := s.get(uk); err != nil {
		return fmt.Errorf("pebble: create user %s: %w", u.ID, err)
	} else if ok {
		old, err := decodeUser(v)
		if err != nil {
			return fmt.Errorf("pebble: create user %s: %w", u.ID, err)
		}
		if old.Handle != u.Handle {
			return fmt.Errorf("pebble: create user %s: id taken with another handle: %w", u.ID, store.ErrConflict)
		}
		return nil
	}
	if _, ok, err := s.get(hk); err != nil {
		return fmt.Errorf("pebble: create user %s: %w", u.ID, err)
	} else if ok {
		return fmt.Errorf("pebble: create user %s: handle %q taken: %w", u.ID, u.Handle, store.ErrConflict)
	}
	u.CreatedAt = ms(u.CreatedAt)
	b := s.db.NewBatch()
	_ = b.Set(uk, encodeUser(u), nil)
	_ = b.Set(hk, newEnc().str(u.ID), nil)
	if err := s.write(b, pebble.Sync); err != nil {
		return fmt.Errorf("pebble: create user %s: %w", u.ID, err)
	}
	return nil
}

func (s *Store) UserByID(ctx context.Context, id string) (store.User, error) {
	if err := s.enter(ctx); err != nil {
		return store.User{}, fmt.Errorf("pebble: user %s: %w", id, err)
	}
	defer s.mu.RUnlock()
	u, err := s.userByID(id)
	if err != nil {
		return store.User{}, fmt.Errorf("pebble: user %s: %w", id, err)
	}
	return u, nil
}

func (s *Store) userByID(id string) (store.User, error) {
	v, ok, err := s.get(key(tagUser, id))
	if err != nil {
		return store.User{}, err
	}
	if !ok {
		return store.User{}, store.ErrNotFound
	}
	switch _, gone, err := s.get(key(tagGone, id)); {
	case err != nil:
		return store.User{}, err
	case gone:
		return store.User{}, fmt.Errorf("deleted account: %w", store.ErrNotFound)
	}
	return decodeUser(v)
}

// DeleteUser implements store.Store: the record keeps its id, handle and creation time, and
// gone/<id> marks it a tombstone; the handle key stays, so the handle stays taken.
func (s *Store) DeleteUser(ctx context.Context, userID string) error {
	if err := s.enter(ctx); err != nil {
		return fmt.Errorf("pebble: delete user %s: %w", userID, err)
	}
	defer s.mu.RUnlock()
	uk := key(tagUser, userID)
	defer s.lock(uk)()
	v, ok, err := s.get(uk)
	if err != nil {
		return fmt.Errorf("pebble: delete user %s: %w", userID, err)
	}
	if !ok {
		return nil
	}
	u, err := decodeUser(v)
	if err != nil {
		return fmt.Errorf("pebble: delete user %s: %w", userID, err)
	}
	tomb := store.User{ID: u.ID, Handle: u.Handle, CreatedAt: u.CreatedAt}
	b := s.db.NewBatch()
	_ = b.Set(uk, encodeUser(tomb), nil)
	_ = b.Set(key(tagGone, userID), nil, nil)
	if err := s.write(b, pebble.Sync); err != nil {
		return fmt.Errorf("pebble: delete user %s: %w", userID, err)
	}
	return nil
}

func (s *Store) UserByHandle(ctx context.Context, handle string) (store.User, error) {
	if err := s.enter(ctx); err != nil {
		return store.User{}, fmt.Errorf("pebble: user by handle %q: %w", handle, err)
	}
	defer s.mu.RUnlock()
	v, ok, err := s.get(key(tagHandle, handle))
	if err == nil && !ok {
		err = store.ErrNotFound
	}
	var id string
	if err == nil {
		d := newDec(v)
		id = d.str()
		err = d.done()
	}
	var u store.User
	if err == nil {
		u, err = s.userByID(id)
	}
	if err != nil {
		return store.User{}, fmt.Errorf("pebble: user by handle %q: %w", handle, err)
	}
	return u, nil
}

func (s *Store) UpdateProfile(ctx context.Context, userID, displayName string) error {
	if err := s.enter(ctx); err != nil {
		return fmt.Errorf("pebble: update profile %s: %w", userID, err)
	}
	defer s.mu.RUnlock()
	uk := key(tagUser, userID)
	defer s.lock(uk)()
	u, err := s.userByID(userID)
	if err == nil {
		u.DisplayName = displayName
		err = s.db.Set(uk, encodeUser(u), pebble.Sync)
	}
	if err != nil {
		return fmt.Errorf("pebble: update profile %s: %w", userID, err)
	}
	return nil
}

// ---- conversations

func (s *Store) PutConversation(ctx context.Context, c store.Conversation) error {
	if err := s.enter(ctx); err != nil {
		return fmt.Errorf("pebble: put conversation %s: %w", c.ID, err)
	}
	defer s.mu.RUnlock()
	c.CreatedAt = ms(c.CreatedAt)
	if err := s.db.Set(key(tagConv, c.ID), encodeConversation(c), pebble.Sync); err != nil {
		return fmt.Errorf("pebble: put conversation %s: %w", c.ID, err)
	}
	return nil
}

func (s *Store) Conversation(ctx context.Context, id string) (store.Conversation, error) {
	if err := s.enter(ctx); err != nil {
		return store.Conversation{}, fmt.Errorf("pebble: conversation %s: %w", id, err)
	}
	defer s.mu.RUnlock()
	v, ok, err := s.get(key(tagConv, id))
	if err == nil && !ok {
		err = store.ErrNotFound
	}
	var c store.Conversation
	if err == nil {
		c, err = decodeConversation(v)
	}
	if err != nil {
		return store.Conversation{}, fmt.Errorf("pebble: conversation %s: %w", id, err)
	}
	return c, nil
}

// ---- members

func (s *Store) PutMember(ctx context.Context, m store.Member) error {
	if err := s.enter(ctx); err != nil {
		return fmt.Errorf("pebble: put member %s/%s: %w", m.ConversationID, m.UserID, err)
	}
	defer s.mu.RUnlock()
	m.JoinedAt = ms(m.JoinedAt)
	v := encodeMember(m)
	b := s.db.NewBatch()
	_ = b.Set(key(tagMem, m.ConversationID, m.UserID), v, nil)
	_ = b.Set(key(tagUmem, m.UserID, m.ConversationID), v, nil)
	err := s.write(b, pebble.Sync)
	s.members.forget(memberKey{m.ConversationID, m.UserID}) // even after a failed write: it may have landed
	if err != nil {
		return fmt.Errorf("pebble: put member %s/%s: %w", m.ConversationID, m.UserID, err)
	}
	return nil
}

func (s *Store) Member(ctx context.Context, conversationID, userID string) (store.Member, error) {
	if err := s.enter(ctx); err != nil {
		return store.Member{}, fmt.Errorf("pebble: member %s/%s: %w", conversationID, userID, err)
	}
	defer s.mu.RUnlock()
	k := memberKey{conversationID, userID}
	m, gen, ok := s.members.get(k)
	if ok {
		return m, nil
	}
	v, ok, err := s.get(key(tagMem, conversationID, userID))
	if err == nil && !ok {
		err = store.ErrNotFound
	}
	if err == nil {
		m, err = decodeMember(v)
	}
	if err != nil {
		return store.Member{}, fmt.Errorf("pebble: member %s/%s: %w", conversationID, userID, err)
	}
	s.members.keep(k, m, gen)
	return m, nil
}

// CachedMember implements store.MemberCache.
func (s *Store) CachedMember(conversationID, userID string) (store.Member, bool) {
	m, _, ok := s.members.get(memberKey{conversationID, userID})
	return m, ok
}

func (s *Store) Members(ctx context.Context, conversationID string) ([]store.Member, error) {
	if err := s.enter(ctx); err != nil {
		return nil, fmt.Errorf("pebble: members of %s: %w", conversationID, err)
	}
	defer s.mu.RUnlock()
	members, err := scan(s, key(tagMem, conversationID), decodeMember)
	if err != nil {
		return nil, fmt.Errorf("pebble: members of %s: %w", conversationID, err)
	}
	return members, nil
}

func (s *Store) MembershipsOf(ctx context.Context, userID string) ([]store.Member, error) {
	if err := s.enter(ctx); err != nil {
		return nil, fmt.Errorf("pebble: memberships of %s: %w", userID, err)
	}
	defer s.mu.RUnlock()
	members, err := scan(s, key(tagUmem, userID), decodeMember)
	if err != nil {
		return nil, fmt.Errorf("pebble: memberships of %s: %w", userID, err)
	}
	return members, nil
}

// ---- messages

// InsertMessage implements store.Store. A message at an existing (conversation, seq) is checked
// first, then the (sender, client msg id) dedupe. Seq 0 is rejected: CHAT seqs start at 1 and
// a Page uses 0 for "no bound".
func (s *Store) InsertMessage(ctx context.Context, m store.Message) (store.Message, bool, error) {
	if err := s.enter(ctx); err != nil {
		return store.Message{}, false, fmt.Errorf("pebble: insert message %s/%d: %w", m.ConversationID, m.Seq, err)
	}
	stored, inserted, err := s.insertMessage(m)
	s.mu.RUnlock()
	if err != nil {
		return store.Message{}, false, fmt.Errorf("pebble: insert message %s/%d: %w", m.ConversationID, m.Seq, err)
	}
	// The batch was committed without waiting for the disk, under the record's stripe; the sync
	// is waited for here, outside it. Concurrent writers' syncs share one WAL fsync (pebble's
	// group commit), and a writer holding a stripe no longer makes the others on that stripe
	// wait for the disk too. What a concurrent call read back (a dedupe hit) is durable when
	// that call returns, since it syncs too.
	if err := s.syncWAL(ctx); err != nil {
		return store.Message{}, false, fmt.Errorf("pebble: insert message %s/%d: %w", m.ConversationID, m.Seq, err)
	}
	return stored, inserted, nil
}

// syncWAL waits until every write before it is in the synced WAL.
func (s *Store) syncWAL(ctx context.Context) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	return s.db.LogData(nil, pebble.Sync)
}

func (s *Store) insertMessage(m store.Message) (store.Message, bool, error) {
	if m.Seq == 0 {
		return store.Message{}, false, errors.New("seq 0")
	}
	slot, cmid := msgKey(m.ConversationID, m.Seq), clientIDKey(m)
	if cmid != nil {
		defer s.lock(slot, cmid)()
	} else {
		defer s.lock(slot)()
	}
	if old, ok, err := s.existing(m, slot, cmid); err != nil || ok {
		return old, false, err
	}
	m = normalise(m)
	b := s.db.NewBatch()
	for _, e := range appendEntries(make([]entry, 0, 3), m, slot, cmid) {
		_ = b.Set(e.key, e.value, nil)
	}
	if err := s.write(b, pebble.NoSync); err != nil { // synced by the caller, outside the stripe
		return store.Message{}, false, err
	}
	s.stored(m, cmid) // still under the stripes (see tops and idFilter)
	s.direct.Add(1)
	return m, true, nil
}

// clientIDKey is the key of m's (sender, client msg id) index entry; nil when m has none.
func clientIDKey(m store.Message) []byte {
	if m.ClientMsgID == "" {
		return nil
	}
	return key(tagCmid, m.SenderID, m.ClientMsgID)
}

// existing is the message already stored at m's slot or under its client id (cmid, nil for
// none), with ok true. The caller holds both keys' stripes or all of them, or (staging) leaves
// it to Sync to check again should another writer store either key meanwhile.
func (s *Store) existing(m store.Message, slot, cmid []byte) (store.Message, bool, error) {
	top, err := s.tops.top(s.db, m.ConversationID)
	if err != nil {
		return store.Message{}, false, err
	}
	if m.Seq <= top { // a redelivery, or an older message inserted late: the slot may be taken
		if v, ok, err := s.get(slot); err != nil || ok {
			if err != nil {
				return store.Message{}, false, err
			}
			old, err := decodeMessage(v)
			return old, err == nil, err
		}
	}
	if cmid != nil && s.ids.mayHold(cmid) {
		if v, ok, err := s.get(cmid); err != nil || ok {
			if err != nil {
				return store.Message{}, false, err
			}
			old, err := s.messageAt(v)
			if err != nil {
				return store.Message{}, false, fmt.Errorf("client msg id %q: %w", m.ClientMsgID, err)
			}
			return old, true, nil
		}
	}
	return store.Message{}, false, nil
}

// normalise is m as the store keeps it: times in milliseconds, empty lists nil.
func normalise(m store.Message) store.Message {
	m.SentAt, m.EditedAt, m.DeletedAt = ms(m.SentAt), msOrZero(m.EditedAt), msOrZero(m.DeletedAt)
	if len(m.Member) == 0 {
		m.Member = nil
	}
	if len(m.HiddenFor) == 0 {
		m.HiddenFor = nil
	}
	return m
}

// entry is one key and value to write.
type entry struct{ key, value []byte }

// appendEntries appends to dst the keys a new message m writes: its slot and its id and
// client-id index entries.
func appendEntries(dst []entry, m store.Message, slot, cmid []byte) []entry {
	ref := encodeRef(m.ConversationID, m.Seq)
	dst = append(dst, entry{slot, encodeMessage(m)})
	if m.ID != "" {
		dst = append(dst, entry{key(tagMid, m.ConversationID, m.ID), ref})
	}
	if cmid != nil {
		dst = append(dst, entry{cmid, ref})
	}
	return dst
}

// stored records in memory that m is now in the database (the caller holds its stripes): its
// conversation's top seq and its client id.
func (s *Store) stored(m store.Message, cmid []byte) {
	s.tops.raise(m.ConversationID, m.Seq)
	if cmid != nil {
		s.ids.add(cmid)
	}
}

// ReviseMessage implements store.Reviser: a read-modify-write of the message under its stripe,
// synced before it returns.
func (s *Store) ReviseMessage(ctx context.Context, conversationID string, seq uint64, r store.Revision) (store.Message, error) {
	if err := s.enter(ctx); err != nil {
		return store.Message{}, fmt.Errorf("pebble: revise message %s/%d: %w", conversationID, seq, err)
	}
	defer s.mu.RUnlock()
	// The message revised may be staged (InsertMessageUnsynced): what is staged is written first.
	if err := s.writeStaged(); err != nil {
		return store.Message{}, fmt.Errorf("pebble: revise message %s/%d: %w", conversationID, seq, err)
	}
	m, changed, err := s.reviseMessage(conversationID, seq, r)
	if err != nil {
		return store.Message{}, fmt.Errorf("pebble: revise message %s/%d: %w", conversationID, seq, err)
	}
	if changed {
		if err := s.db.LogData(nil, pebble.Sync); err != nil {
			return store.Message{}, fmt.Errorf("pebble: revise message %s/%d: sync: %w", conversationID, seq, err)
		}
	}
	return m, nil
}

func (s *Store) reviseMessage(conversationID string, seq uint64, r store.Revision) (store.Message, bool, error) {
	slot := msgKey(conversationID, seq)
	defer s.lock(slot)()
	v, ok, err := s.get(slot)
	if err != nil {
		return store.Message{}, false, err
	}
	if !ok {
		return store.Message{}, false, store.ErrNotFound
	}
	m, err := decodeMessage(v)
	if err != nil {
		return store.Message{}, false, err
	}
	if m.Kind != "msg" {
		return m, false, nil
	}
	r.At = ms(r.At)
	m, changed := store.Revise(m, r)
	if !changed {
		return m, false, nil
	}
	b := s.db.NewBatch()
	_ = b.Set(slot, encodeMessage(m), nil)
	if err := s.write(b, pebble.NoSync); err != nil {
		return store.Message{}, false, err
	}
	return m, true, nil
}

// messageAt reads the message an index entry (encodeRef) points to.
func (s *Store) messageAt(ref []byte) (store.Message, error) {
	conversationID, seq, err := decodeRef(ref)
	if err != nil {
		return store.Message{}, err
	}
	v, ok, err := s.get(msgKey(conversationID, seq))
	if err != nil {
		return store.Message{}, err
	}
	if !ok {
		return store.Message{}, fmt.Errorf("index points to missing message %s/%d", conversationID, seq)
	}
	return decodeMessage(v)
}

func (s *Store) MessageByClientID(ctx context.Context, senderID, clientMsgID string) (store.Message, error) {
	if err := s.enter(ctx); err != nil {
		return store.Message{}, fmt.Errorf("pebble: message by client id %s/%q: %w", senderID, clientMsgID, err)
	}
	defer s.mu.RUnlock()
	m, err := s.messageByIndex(key(tagCmid, senderID, clientMsgID))
	if err != nil {
		return store.Message{}, fmt.Errorf("pebble: message by client id %s/%q: %w", senderID, clientMsgID, err)
	}
	return m, nil
}

func (s *Store) MessageByID(ctx context.Context, conversationID, messageID string) (store.Message, error) {
	if err := s.enter(ctx); err != nil {
		return store.Message{}, fmt.Errorf("pebble: message %s/%s: %w", conversationID, messageID, err)
	}
	defer s.mu.RUnlock()
	m, err := s.messageByIndex(key(tagMid, conversationID, messageID))
	if err != nil {
		return store.Message{}, fmt.Errorf("pebble: message %s/%s: %w", conversationID, messageID, err)
	}
	return m, nil
}

func (s *Store) messageByIndex(k []byte) (store.Message, error) {
	ref, ok, err := s.get(k)
	if err != nil {
		return store.Message{}, err
	}
	if !ok {
		return store.Message{}, store.ErrNotFound
	}
	return s.messageAt(ref)
}

// Messages implements store.Store: one range scan of msg/<conversation>/, backwards from the
// upper bound, or (for After) forwards from the lower bound and then reversed.
func (s *Store) Messages(ctx context.Context, conversationID string, p store.Page) ([]store.Message, error) {
	return s.AppendMessages(ctx, nil, conversationID, p)
}

var _ store.PageAppender = (*Store)(nil)

// AppendMessages implements store.PageAppender.
func (s *Store) AppendMessages(ctx context.Context, dst []store.Message, conversationID string, p store.Page) ([]store.Message, error) {
	p, err := p.Normalize()
	if err != nil {
		return dst, fmt.Errorf("pebble: messages of %s: %w", conversationID, err)
	}
	if err := s.enter(ctx); err != nil {
		return dst, fmt.Errorf("pebble: messages of %s: %w", conversationID, err)
	}
	defer s.mu.RUnlock()
	out, err := s.page(dst, conversationID, p)
	if err != nil {
		return dst, fmt.Errorf("pebble: messages of %s: %w", conversationID, err)
	}
	return out, nil
}

// page appends the page p of conversationID to dst, newest first.
func (s *Store) page(dst []store.Message, conversationID string, p store.Page) ([]store.Message, error) {
	prefix := key(tagMsg, conversationID)
	lo, hi := prefix, prefixEnd(prefix)
	switch {
	case p.Before != 0:
		hi = msgKey(conversationID, p.Before)
	case p.After == math.MaxUint64:
		return dst, nil
	case p.Forward():
		lo = msgKey(conversationID, p.After+1)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return dst, err
	}
	// Room for a full page at once (at most MaxPageLimit, 200 messages of about 270 bytes):
	// growing to it allocated twice that for every full page.
	out := slices.Grow(dst, p.Limit)
	start := len(dst)
	first, next := it.Last, it.Prev
	if p.Forward() {
		first, next = it.First, it.Next
	}
	for ok := first(); ok && len(out)-start < p.Limit; ok = next() {
		m, err := decodeMessage(it.Value())
		if err != nil {
			return dst, errors.Join(fmt.Errorf("key %q: %w", it.Key(), err), it.Close())
		}
		out = append(out, m)
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return dst, err
	}
	if p.Forward() {
		slices.Reverse(out[start:])
	}
	return out, nil
}

// ---- devices and push tokens

// PutDevice implements store.Store: Platform is replaced, LastSeen and CreatedAt keep the
// later and the earlier of the stored and the given value.
func (s *Store) PutDevice(ctx context.Context, d store.Device) error {
	if err := s.enter(ctx); err != nil {
		return fmt.Errorf("pebble: put device %s/%s: %w", d.UserID, d.DeviceID, err)
	}
	defer s.mu.RUnlock()
	dk := key(tagDev, d.UserID, d.DeviceID)
	defer s.lock(dk)()
	d.CreatedAt, d.LastSeen = ms(d.CreatedAt), ms(d.LastSeen)
	v, ok, err := s.get(dk)
	if err == nil && ok {
		var old store.Device
		if old, err = decodeDevice(v); err == nil {
			if old.LastSeen.After(d.LastSeen) {
				d.LastSeen = old.LastSeen
			}
			if !old.CreatedAt.IsZero() && (d.CreatedAt.IsZero() || old.CreatedAt.Before(d.CreatedAt)) {
				d.CreatedAt = old.CreatedAt
			}
		}
	}
	if err == nil {
		err = s.db.Set(dk, encodeDevice(d), pebble.NoSync)
	}
	if err != nil {
		return fmt.Errorf("pebble: put device %s/%s: %w", d.UserID, d.DeviceID, err)
	}
	return nil
}

func (s *Store) Devices(ctx context.Context, userID string) ([]store.Device, error) {
	if err := s.enter(ctx); err != nil {
		return nil, fmt.Errorf("pebble: devices of %s: %w", userID, err)
	}
	defer s.mu.RUnlock()
	ds, err := scan(s, key(tagDev, userID), decodeDevice)
	if err != nil {
		return nil, fmt.Errorf("pebble: devices of %s: %w", userID, err)
	}
	return ds, nil
}

// DeleteDevice implements store.Store; deleting a device that does not exist succeeds.
func (s *Store) DeleteDevice(ctx context.Context, userID, deviceID string) error {
	if err := s.enter(ctx); err != nil {
		return fmt.Errorf("pebble: delete device %s/%s: %w", userID, deviceID, err)
	}
	defer s.mu.RUnlock()
	dk := key(tagDev, userID, deviceID)
	defer s.lock(dk)()
	b := s.db.NewBatch()
	_ = b.Delete(dk, nil)
	_ = b.Delete(key(tagPush, userID, deviceID), nil)
	if err := s.write(b, pebble.Sync); err != nil {
		return fmt.Errorf("pebble: delete device %s/%s: %w", userID, deviceID, err)
	}
	return nil
}

func (s *Store) PutPushToken(ctx context.Context, t store.PushToken) error {
	if err := s.enter(ctx); err != nil {
		return fmt.Errorf("pebble: put push token %s/%s: %w", t.UserID, t.DeviceID, err)
	}
	defer s.mu.RUnlock()
	t.UpdatedAt = ms(t.UpdatedAt)
	if err := s.db.Set(key(tagPush, t.UserID, t.DeviceID), encodePushToken(t), pebble.Sync); err != nil {
		return fmt.Errorf("pebble: put push token %s/%s: %w", t.UserID, t.DeviceID, err)
	}
	return nil
}

// DeletePushToken implements store.Store; deleting a token that does not exist succeeds.
func (s *Store) DeletePushToken(ctx context.Context, userID, deviceID string) error {
	if err := s.enter(ctx); err != nil {
		return fmt.Errorf("pebble: delete push token %s/%s: %w", userID, deviceID, err)
	}
	defer s.mu.RUnlock()
	if err := s.db.Delete(key(tagPush, userID, deviceID), pebble.Sync); err != nil {
		return fmt.Errorf("pebble: delete push token %s/%s: %w", userID, deviceID, err)
	}
	return nil
}

func (s *Store) PushTokens(ctx context.Context, userID string) ([]store.PushToken, error) {
	if err := s.enter(ctx); err != nil {
		return nil, fmt.Errorf("pebble: push tokens of %s: %w", userID, err)
	}
	defer s.mu.RUnlock()
	ts, err := scan(s, key(tagPush, userID), decodePushToken)
	if err != nil {
		return nil, fmt.Errorf("pebble: push tokens of %s: %w", userID, err)
	}
	return ts, nil
}

// ---- sessions

// CreateSession implements store.Store.
func (s *Store) CreateSession(ctx context.Context, v store.Session) error {
	if err := s.enter(ctx); err != nil {
		return fmt.Errorf("pebble: create session %s: %w", v.ID, err)
	}
	defer s.mu.RUnlock()
	sk := key(tagSess, v.ID)
	defer s.lock(sk)()
	old, err := s.session(sk)
	switch {
	case err == nil && old.UserID != v.UserID:
		return fmt.Errorf("pebble: create session %s: id taken by another user: %w", v.ID, store.ErrConflict)
	case err == nil:
		return nil
	case !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("pebble: create session %s: %w", v.ID, err)
	}
	v.CreatedAt, v.LastUsed, v.RevokedAt = ms(v.CreatedAt), ms(v.LastUsed), msOrZero(v.RevokedAt)
	if err := s.putSession(v); err != nil {
		return fmt.Errorf("pebble: create session %s: %w", v.ID, err)
	}
	return nil
}

// session reads the session at sk (a sess/ key).
func (s *Store) session(sk []byte) (store.Session, error) {
	v, ok, err := s.get(sk)
	if err != nil {
		return store.Session{}, err
	}
	if !ok {
		return store.Session{}, store.ErrNotFound
	}
	return decodeSession(v)
}

// putSession writes both copies of v; the caller holds the stripe of its sess/ key.
//
// A revocation waits for the disk (pebble.Sync): a revoked session must stay revoked through a
// power loss. A new session and a rotation do not (they survive a crash of the process, not of
// the machine), so that logins and refreshes cost no fsync: losing one to a power loss costs
// its user a login.
func (s *Store) putSession(v store.Session) error {
	enc := encodeSession(v)
	b := s.db.NewBatch()
	_ = b.Set(key(tagSess, v.ID), enc, nil)
	_ = b.Set(key(tagUsess, v.UserID, v.ID), enc, nil)
	opts := pebble.NoSync
	if v.Revoked() {
		opts = pebble.Sync
	}
	return s.write(b, opts)
}

func (s *Store) Session(ctx context.Context, id string) (store.Session, error) {
	if err := s.enter(ctx); err != nil {
		return store.Session{}, fmt.Errorf("pebble: session %s: %w", id, err)
	}
	defer s.mu.RUnlock()
	v, err := s.session(key(tagSess, id))
	if err != nil {
		return store.Session{}, fmt.Errorf("pebble: session %s: %w", id, err)
	}
	return v, nil
}

func (s *Store) Sessions(ctx context.Context, userID string) ([]store.Session, error) {
	if err := s.enter(ctx); err != nil {
		return nil, fmt.Errorf("pebble: sessions of %s: %w", userID, err)
	}
	defer s.mu.RUnlock()
	vs, err := scan(s, key(tagUsess, userID), decodeSession)
	if err != nil {
		return nil, fmt.Errorf("pebble: sessions of %s: %w", userID, err)
	}
	return vs, nil
}

// RotateSession implements store.Store.
func (s *Store) RotateSession(ctx context.Context, id string, oldHash, newHash []byte, usedAt time.Time) (store.Session, error) {
	if err := s.enter(ctx); err != nil {
		return store.Session{}, fmt.Errorf("pebble: rotate session %s: %w", id, err)
	}
	defer s.mu.RUnlock()
	sk := key(tagSess, id)
	defer s.lock(sk)()
	v, err := s.session(sk)
	switch {
	case err != nil:
		return store.Session{}, fmt.Errorf("pebble: rotate session %s: %w", id, err)
	case v.Revoked():
		return store.Session{}, fmt.Errorf("pebble: rotate session %s: revoked: %w", id, store.ErrConflict)
	case !bytes.Equal(v.RefreshHash, oldHash):
		return store.Session{}, fmt.Errorf("pebble: rotate session %s: not the current refresh token: %w", id, store.ErrConflict)
	}
	v.RefreshHash = append([]byte(nil), newHash...)
	if u := ms(usedAt); u.After(v.LastUsed) {
		v.LastUsed = u
	}
	if err := s.putSession(v); err != nil {
		return store.Session{}, fmt.Errorf("pebble: rotate session %s: %w", id, err)
	}
	return v, nil
}

// RevokeSession implements store.Store.
func (s *Store) RevokeSession(ctx context.Context, id string, revokedAt time.Time) (store.Session, error) {
	if err := s.enter(ctx); err != nil {
		return store.Session{}, fmt.Errorf("pebble: revoke session %s: %w", id, err)
	}
	defer s.mu.RUnlock()
	sk := key(tagSess, id)
	defer s.lock(sk)()
	v, err := s.session(sk)
	if err != nil {
		return store.Session{}, fmt.Errorf("pebble: revoke session %s: %w", id, err)
	}
	if v.Revoked() {
		return v, nil
	}
	v.RevokedAt = ms(revokedAt)
	if err := s.putSession(v); err != nil {
		return store.Session{}, fmt.Errorf("pebble: revoke session %s: %w", id, err)
	}
	return v, nil
}

// ---- watermarks

func (s *Store) AdvanceWatermark(ctx context.Context, w store.Watermark) (store.Watermark, error) {
	if err := s.enter(ctx); err != nil {
		return store.Watermark{}, fmt.Errorf("pebble: advance watermark %s/%s: %w", w.ConversationID, w.UserID, err)
	}
	defer s.mu.RUnlock()
	wk := key(tagWm, w.ConversationID, w.UserID)
	defer s.lock(wk)()
	old, err := s.watermark(wk, w.ConversationID, w.UserID)
	if err == nil {
		w.Delivered, w.Read = max(w.Delivered, old.Delivered), max(w.Read, old.Read)
		if w != old {
			err = s.db.Set(wk, encodeWatermark(w), pebble.NoSync)
		}
	}
	if err != nil {
		return store.Watermark{}, fmt.Errorf("pebble: advance watermark %s/%s: %w", w.ConversationID, w.UserID, err)
	}
	return w, nil
}

// Watermark implements store.Store; an unknown pair has zero marks and its ids filled in.
func (s *Store) Watermark(ctx context.Context, conversationID, userID string) (store.Watermark, error) {
	if err := s.enter(ctx); err != nil {
		return store.Watermark{}, fmt.Errorf("pebble: watermark %s/%s: %w", conversationID, userID, err)
	}
	defer s.mu.RUnlock()
	w, err := s.watermark(key(tagWm, conversationID, userID), conversationID, userID)
	if err != nil {
		return store.Watermark{}, fmt.Errorf("pebble: watermark %s/%s: %w", conversationID, userID, err)
	}
	return w, nil
}

func (s *Store) watermark(k []byte, conversationID, userID string) (store.Watermark, error) {
	v, ok, err := s.get(k)
	if err != nil {
		return store.Watermark{}, err
	}
	if !ok {
		return store.Watermark{ConversationID: conversationID, UserID: userID}, nil
	}
	return decodeWatermark(v)
}

func (s *Store) Watermarks(ctx context.Context, conversationID string) ([]store.Watermark, error) {
	if err := s.enter(ctx); err != nil {
		return nil, fmt.Errorf("pebble: watermarks of %s: %w", conversationID, err)
	}
	defer s.mu.RUnlock()
	ws, err := scan(s, key(tagWm, conversationID), decodeWatermark)
	if err != nil {
		return nil, fmt.Errorf("pebble: watermarks of %s: %w", conversationID, err)
	}
	return ws, nil
}

// pebbleLogger sends pebble's log lines to zap; a nil logger discards them. Fatalf does not
// return, as pebble requires.
type pebbleLogger struct{ l *zap.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	if p.l != nil {
		p.l.Sugar().Infof(format, args...)
	}
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	if p.l != nil {
		p.l.Sugar().Errorf(format, args...)
	}
}

func (p pebbleLogger) Fatalf(format string, args ...any) {
	if p.l != nil {
		p.l.Sugar().Errorf(format, args...)
	}
	panic(fmt.Sprintf("pebble: "+format, args...))
}
