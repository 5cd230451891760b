package scylla

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/gocql/gocql"
	"github.com/scylladb/gocqlx/v3"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/store"
)

// Store is the ScyllaDB store.Store. Safe for concurrent use by many goroutines and processes;
// Close is safe to call more than once.
type Store struct {
	session    gocqlx.Session
	bucketSize uint64
	serial     gocql.Consistency // of reads that must see every accepted conditional write
	log        *zap.Logger
	closeOnce  sync.Once
}

var (
	_ store.Store   = (*Store)(nil)
	_ store.Reviser = (*Store)(nil)
)

// Open connects to the cluster, applies the embedded migrations the keyspace lacks (the
// keyspace itself is created by Migrate, natter migrate, which sets its replication), and
// checks that the keyspace agrees on cfg.BucketSize (the first Open of a keyspace records it).
// Connecting is bounded by cfg.ConnectTimeout, the rest by ctx. log (nil for none) also
// receives the driver's log.
func Open(ctx context.Context, cfg Config, log *zap.Logger) (*Store, error) {
	if log == nil {
		log = zap.NewNop()
	}
	st, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	session, err := connect(st.cluster(st.Keyspace, log))
	if err != nil {
		return nil, fmt.Errorf("scylla: connect to %v: %w", st.Hosts, err)
	}
	s := &Store{session: session, bucketSize: st.BucketSize, serial: st.serial, log: log}
	if _, err := applyPending(ctx, session, st.Keyspace, log); err != nil {
		s.session.Close()
		return nil, fmt.Errorf("scylla: apply pending migrations to keyspace %s (create it with natter migrate): %w", st.Keyspace, err)
	}
	if err := s.checkBucketSize(ctx); err != nil {
		s.session.Close()
		return nil, err
	}
	log.Info("scylla store open", zap.Strings("hosts", st.Hosts), zap.String("keyspace", st.Keyspace),
		zap.String("local_dc", st.LocalDC), zap.Uint64("bucket_size", st.BucketSize))
	return s, nil
}

// connect creates a session and waits until it is ready. A session that fails to start is
// closed, so none of the driver's goroutines outlive the failure (the driver's blocking
// CreateSession leaves them running).
func connect(c *gocql.ClusterConfig) (gocqlx.Session, error) {
	s, err := c.CreateSessionNonBlocking()
	if err != nil {
		return gocqlx.Session{}, err
	}
	if err := s.WaitUntilReady(); err != nil {
		s.Close()
		return gocqlx.Session{}, err
	}
	return gocqlx.NewSession(s), nil
}

// checkBucketSize records the bucket size in store_meta, or checks it against the recorded one:
// messages written with one size cannot be read with another.
func (s *Store) checkBucketSize(ctx context.Context) error {
	want := strconv.FormatUint(s.bucketSize, 10)
	var got metaRow
	applied, err := s.query(ctx, q.metaClaim).BindStruct(metaRow{Name: "bucket_size", Value: want}).GetCASRelease(&got)
	if err != nil {
		return fmt.Errorf("scylla: record bucket size (is the keyspace migrated? run natter migrate): %w", err)
	}
	if !applied && got.Value != want {
		return fmt.Errorf("scylla: keyspace has bucket size %s, config says %s: bucket size cannot change", got.Value, want)
	}
	return nil
}

// Close closes the session.
func (s *Store) Close() error {
	s.closeOnce.Do(s.session.Close)
	return nil
}

// query starts a statement bound to ctx.
func (s *Store) query(ctx context.Context, st stmt) *gocqlx.Queryx {
	return s.session.ContextQuery(ctx, st.cql, st.names)
}

// notFound maps the driver's not-found to the store's.
func notFound(err error) error {
	if errors.Is(err, gocql.ErrNotFound) {
		return store.ErrNotFound
	}
	return err
}

// anyEmpty reports whether an id is empty. CQL rejects an empty partition key, so lookups of
// empty ids are answered without a query (not found / nothing) and writes are refused.
func anyEmpty(ids ...string) bool {
	for _, id := range ids {
		if id == "" {
			return true
		}
	}
	return false
}

var errEmptyID = errors.New("empty id")

// Times are stored as CQL timestamps (milliseconds) and bound as Unix milliseconds, so that the
// zero time round-trips and conditions compare exact values. Reads return UTC.
func toMS(t time.Time) int64    { return t.UnixMilli() }
func fromMS(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// unsetEmpty binds an empty blob, an empty set and a nil *int64 as "unset" instead of null, so
// write-once rows (users, messages, sessions) carry no tombstone cell for them. They read back
// as nil either way.
func unsetEmpty(_ string, v any) any {
	switch v := v.(type) {
	case []byte:
		if len(v) == 0 {
			return gocql.UnsetValue
		}
	case []string:
		if len(v) == 0 {
			return gocql.UnsetValue
		}
	case *int64:
		if v == nil {
			return gocql.UnsetValue
		}
	}
	return v
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// ---- users

type userRow struct {
	ID           string `db:"id"`
	Handle       string `db:"handle"`
	DisplayName  string `db:"display_name"`
	PasswordHash []byte `db:"password_hash"`
	CreatedAt    int64  `db:"created_at"`
}

func (r userRow) user() store.User {
	return store.User{ID: r.ID, Handle: r.Handle, DisplayName: r.DisplayName,
		PasswordHash: nilIfEmpty(r.PasswordHash), CreatedAt: fromMS(r.CreatedAt)}
}

type handleRow struct {
	Handle string `db:"handle"`
	UserID string `db:"user_id"`
}

// CreateUser implements store.Store. The handle is claimed first (users_by_handle, IF NOT
// EXISTS), then the user row is created (IF NOT EXISTS). If the id turns out to belong to a user
// with another handle, the claim is given back. A claim left behind by a crash at that point
// names a user whose row has another handle; it is recognised as stale and taken over.
// Creating the same id and handle again succeeds and changes nothing.
func (s *Store) CreateUser(ctx context.Context, u store.User) error {
	if anyEmpty(u.ID, u.Handle) {
		return fmt.Errorf("scylla: create user %q: %w", u.ID, errEmptyID)
	}
	if err := s.claimHandle(ctx, u); err != nil {
		return fmt.Errorf("scylla: create user %s: %w", u.ID, err)
	}
	row := userRow{ID: u.ID, Handle: u.Handle, DisplayName: u.DisplayName, PasswordHash: u.PasswordHash, CreatedAt: toMS(u.CreatedAt)}
	var prev userRow
	applied, err := s.query(ctx, q.userInsertIfNotExists).WithBindTransformer(unsetEmpty).BindStruct(row).GetCASRelease(&prev)
	if err != nil {
		return fmt.Errorf("scylla: create user %s: %w", u.ID, err)
	}
	if !applied && prev.Handle != u.Handle {
		if err := s.releaseHandle(ctx, u.Handle, u.ID); err != nil {
			s.log.Warn("give back handle claim", zap.String("handle", u.Handle), zap.Error(err))
		}
		return fmt.Errorf("scylla: create user %s: id taken with another handle: %w", u.ID, store.ErrConflict)
	}
	return nil
}

// claimHandle makes users_by_handle[u.Handle] name u.ID, or fails with ErrConflict.
func (s *Store) claimHandle(ctx context.Context, u store.User) error {
	for attempt := 0; ; attempt++ {
		var prev handleRow
		applied, err := s.query(ctx, q.handleClaim).BindStruct(handleRow{Handle: u.Handle, UserID: u.ID}).GetCASRelease(&prev)
		if err != nil {
			return fmt.Errorf("claim handle: %w", err)
		}
		if applied || prev.UserID == u.ID {
			return nil
		}
		// Another id holds the handle. Its claim is stale if that user exists with another
		// handle (user rows are never rewritten, so it can never get this one); if the user does
		// not exist yet, its creation may be under way and the claim stands.
		owner, err := s.userRow(ctx, prev.UserID)
		if attempt > 0 || errors.Is(err, store.ErrNotFound) || (err == nil && owner.Handle == u.Handle) {
			return fmt.Errorf("handle %q taken: %w", u.Handle, store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("check handle owner: %w", err)
		}
		if err := s.releaseHandle(ctx, u.Handle, prev.UserID); err != nil {
			return err
		}
	}
}

func (s *Store) releaseHandle(ctx context.Context, handle, userID string) error {
	if _, err := s.query(ctx, q.handleReleaseIf).BindStruct(handleRow{Handle: handle, UserID: userID}).ExecCASRelease(); err != nil {
		return fmt.Errorf("release handle %q: %w", handle, err)
	}
	return nil
}

func (s *Store) userRow(ctx context.Context, id string) (userRow, error) {
	var r userRow
	if anyEmpty(id) {
		return r, store.ErrNotFound
	}
	if err := notFound(s.query(ctx, q.userGet).Bind(id).GetRelease(&r)); err != nil {
		return r, err
	}
	var tomb struct {
		ID string `db:"id"`
	}
	switch err := notFound(s.query(ctx, q.deletedGet).Bind(id).GetRelease(&tomb)); {
	case err == nil:
		return userRow{}, fmt.Errorf("deleted account: %w", store.ErrNotFound)
	case !errors.Is(err, store.ErrNotFound):
		return userRow{}, err
	}
	return r, nil
}

// DeleteUser implements store.Store: a deleted_users row makes the user a tombstone, then its
// display name and password hash are cleared; its users_by_handle claim stays.
func (s *Store) DeleteUser(ctx context.Context, userID string) error {
	if anyEmpty(userID) {
		return nil
	}
	var r userRow
	switch err := notFound(s.query(ctx, q.userGet).Bind(userID).GetRelease(&r)); {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("scylla: delete user %s: %w", userID, err)
	}
	if err := s.query(ctx, q.deletedPut).Bind(userID, toMS(time.Now())).ExecRelease(); err != nil {
		return fmt.Errorf("scylla: delete user %s: %w", userID, err)
	}
	if err := s.query(ctx, q.userClear).Bind("", []byte(nil), userID).ExecRelease(); err != nil {
		return fmt.Errorf("scylla: delete user %s: %w", userID, err)
	}
	return nil
}

// UserByID implements store.Store.
func (s *Store) UserByID(ctx context.Context, id string) (store.User, error) {
	r, err := s.userRow(ctx, id)
	if err != nil {
		return store.User{}, fmt.Errorf("scylla: user %s: %w", id, err)
	}
	return r.user(), nil
}

// UserByHandle implements store.Store: the handle's claim, then the user it names. A claim whose
// user does not (or not yet) carry the handle is not found.
func (s *Store) UserByHandle(ctx context.Context, handle string) (store.User, error) {
	var h handleRow
	var err error
	if anyEmpty(handle) {
		err = store.ErrNotFound
	} else {
		err = notFound(s.query(ctx, q.handleGet).Bind(handle).GetRelease(&h))
	}
	var r userRow
	if err == nil {
		r, err = s.userRow(ctx, h.UserID)
	}
	if err == nil && r.Handle != handle {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.User{}, fmt.Errorf("scylla: user by handle %q: %w", handle, err)
	}
	return r.user(), nil
}

// UpdateProfile implements store.Store; ErrNotFound if the user does not exist.
func (s *Store) UpdateProfile(ctx context.Context, userID, displayName string) error {
	if anyEmpty(userID) {
		return fmt.Errorf("scylla: update profile: %w", store.ErrNotFound)
	}
	if _, err := s.userRow(ctx, userID); err != nil { // a tombstone's profile stays empty
		return fmt.Errorf("scylla: update profile %s: %w", userID, err)
	}
	applied, err := s.query(ctx, q.userUpdateProfileIfExists).Bind(displayName, userID).ExecCASRelease()
	if err == nil && !applied {
		err = store.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("scylla: update profile %s: %w", userID, err)
	}
	return nil
}

// ---- conversations and members

type conversationRow struct {
	ID        string `db:"id"`
	Kind      string `db:"kind"`
	Name      string `db:"name"`
	CreatedBy string `db:"created_by"`
	CreatedAt int64  `db:"created_at"`
	// DeletedSeq is null (0) in rows written before groups could be deleted.
	DeletedSeq int64 `db:"deleted_seq"`
}

// PutConversation implements store.Store.
func (s *Store) PutConversation(ctx context.Context, c store.Conversation) error {
	if anyEmpty(c.ID) {
		return fmt.Errorf("scylla: put conversation: %w", errEmptyID)
	}
	if c.DeletedSeq > maxSeq {
		return fmt.Errorf("scylla: put conversation %s: seq above %d", c.ID, uint64(maxSeq))
	}
	row := conversationRow{ID: c.ID, Kind: string(c.Kind), Name: c.Name, CreatedBy: c.CreatedBy, CreatedAt: toMS(c.CreatedAt),
		DeletedSeq: int64(c.DeletedSeq)}
	if err := s.query(ctx, q.conversationPut).BindStruct(row).ExecRelease(); err != nil {
		return fmt.Errorf("scylla: put conversation %s: %w", c.ID, err)
	}
	return nil
}

// Conversation implements store.Store.
func (s *Store) Conversation(ctx context.Context, id string) (store.Conversation, error) {
	var r conversationRow
	err := store.ErrNotFound
	if !anyEmpty(id) {
		err = notFound(s.query(ctx, q.conversationGet).Bind(id).GetRelease(&r))
	}
	if err != nil {
		return store.Conversation{}, fmt.Errorf("scylla: conversation %s: %w", id, err)
	}
	return store.Conversation{ID: r.ID, Kind: store.ConversationKind(r.Kind), Name: r.Name,
		CreatedBy: r.CreatedBy, CreatedAt: fromMS(r.CreatedAt), DeletedSeq: uint64(r.DeletedSeq)}, nil
}

type memberRow struct {
	ConversationID string `db:"conversation_id"`
	UserID         string `db:"user_id"`
	Role           string `db:"role"`
	JoinedSeq      int64  `db:"joined_seq"`
	LeftSeq        int64  `db:"left_seq"`
	JoinedAt       int64  `db:"joined_at"`
	// The columns of migration 0004, null (zero) in rows written before it.
	Earlier    []byte `db:"earlier"`
	InvitedSeq int64  `db:"invited_seq"`
	InvitedBy  string `db:"invited_by"`
	ChangedSeq int64  `db:"changed_seq"`
}

func (r memberRow) member() store.Member {
	return store.Member{ConversationID: r.ConversationID, UserID: r.UserID, Role: r.Role,
		JoinedSeq: uint64(r.JoinedSeq), LeftSeq: uint64(r.LeftSeq), JoinedAt: fromMS(r.JoinedAt),
		Earlier: decodeIntervals(r.Earlier), InvitedSeq: uint64(r.InvitedSeq), InvitedBy: r.InvitedBy, ChangedSeq: uint64(r.ChangedSeq)}
}

// encodeIntervals packs intervals as big-endian 8-byte (JoinedSeq, LeftSeq) pairs; nil for none.
func encodeIntervals(is []store.Interval) []byte {
	if len(is) == 0 {
		return nil
	}
	b := make([]byte, 0, 16*len(is))
	for _, i := range is {
		b = binary.BigEndian.AppendUint64(b, i.JoinedSeq)
		b = binary.BigEndian.AppendUint64(b, i.LeftSeq)
	}
	return b
}

// decodeIntervals reverses encodeIntervals; a trailing partial pair is ignored.
func decodeIntervals(b []byte) []store.Interval {
	var out []store.Interval
	for ; len(b) >= 16; b = b[16:] {
		out = append(out, store.Interval{JoinedSeq: binary.BigEndian.Uint64(b), LeftSeq: binary.BigEndian.Uint64(b[8:])})
	}
	return out
}

func members(rows []memberRow) []store.Member {
	out := make([]store.Member, len(rows))
	for i, r := range rows {
		out[i] = r.member()
	}
	return out
}

// PutMember implements store.Store: both directions in one logged batch, so they are written
// together or (after a crash) completed by the batch log.
func (s *Store) PutMember(ctx context.Context, m store.Member) error {
	if anyEmpty(m.ConversationID, m.UserID) {
		return fmt.Errorf("scylla: put member: %w", errEmptyID)
	}
	if m.JoinedSeq > maxSeq || m.LeftSeq > maxSeq || m.InvitedSeq > maxSeq || m.ChangedSeq > maxSeq {
		return fmt.Errorf("scylla: put member %s/%s: seq above %d", m.ConversationID, m.UserID, uint64(maxSeq))
	}
	row := memberRow{ConversationID: m.ConversationID, UserID: m.UserID, Role: m.Role,
		JoinedSeq: int64(m.JoinedSeq), LeftSeq: int64(m.LeftSeq), JoinedAt: toMS(m.JoinedAt),
		Earlier: encodeIntervals(m.Earlier), InvitedSeq: int64(m.InvitedSeq), InvitedBy: m.InvitedBy, ChangedSeq: int64(m.ChangedSeq)}
	b := s.session.ContextBatch(ctx, gocql.LoggedBatch)
	err := b.BindStruct(s.session.Query(q.memberPut.cql, q.memberPut.names), row)
	if err == nil {
		err = b.BindStruct(s.session.Query(q.membershipPut.cql, q.membershipPut.names), row)
	}
	if err == nil {
		err = s.session.ExecuteBatch(b)
	}
	if err != nil {
		return fmt.Errorf("scylla: put member %s/%s: %w", m.ConversationID, m.UserID, err)
	}
	return nil
}

// Member implements store.Store.
func (s *Store) Member(ctx context.Context, conversationID, userID string) (store.Member, error) {
	var r memberRow
	err := store.ErrNotFound
	if !anyEmpty(conversationID, userID) {
		err = notFound(s.query(ctx, q.memberGet).Bind(conversationID, userID).GetRelease(&r))
	}
	if err != nil {
		return store.Member{}, fmt.Errorf("scylla: member %s/%s: %w", conversationID, userID, err)
	}
	return r.member(), nil
}

// Members implements store.Store: one partition, clustered by user id.
func (s *Store) Members(ctx context.Context, conversationID string) ([]store.Member, error) {
	var rows []memberRow
	if !anyEmpty(conversationID) {
		if err := s.query(ctx, q.membersList).Bind(conversationID).SelectRelease(&rows); err != nil {
			return nil, fmt.Errorf("scylla: members of %s: %w", conversationID, err)
		}
	}
	return members(rows), nil
}

// MembershipsOf implements store.Store: one partition, clustered by conversation id.
func (s *Store) MembershipsOf(ctx context.Context, userID string) ([]store.Member, error) {
	var rows []memberRow
	if !anyEmpty(userID) {
		if err := s.query(ctx, q.membershipsList).Bind(userID).SelectRelease(&rows); err != nil {
			return nil, fmt.Errorf("scylla: memberships of %s: %w", userID, err)
		}
	}
	return members(rows), nil
}

// ---- devices and push tokens

type deviceRow struct {
	UserID    string `db:"user_id"`
	DeviceID  string `db:"device_id"`
	Platform  string `db:"platform"`
	CreatedAt int64  `db:"created_at"`
	LastSeen  int64  `db:"last_seen"`
}

// zeroMS is the zero time.Time in Unix milliseconds.
var zeroMS = toMS(time.Time{})

// mergeDevice is what PutDevice stores over old: Platform replaced, the later LastSeen and the
// earlier non-zero CreatedAt.
func mergeDevice(old, d deviceRow) deviceRow {
	d.LastSeen = max(d.LastSeen, old.LastSeen)
	if old.CreatedAt != zeroMS && (d.CreatedAt == zeroMS || old.CreatedAt < d.CreatedAt) {
		d.CreatedAt = old.CreatedAt
	}
	return d
}

// PutDevice implements store.Store: insert if new, else compare-and-set the merged row against
// the row just read, again while other writers win the race. Every device write is conditional
// (Paxos), so device writes are linearizable with each other and with DeleteDevice.
func (s *Store) PutDevice(ctx context.Context, d store.Device) error {
	if anyEmpty(d.UserID, d.DeviceID) {
		return fmt.Errorf("scylla: put device: %w", errEmptyID)
	}
	row := deviceRow{UserID: d.UserID, DeviceID: d.DeviceID, Platform: d.Platform,
		CreatedAt: toMS(d.CreatedAt), LastSeen: toMS(d.LastSeen)}
	const attempts = 16
	for range attempts {
		// The insert doubles as a linearizable read: when it does not apply it returns the row.
		var cur deviceRow
		applied, err := s.query(ctx, q.deviceInsertIfNotExists).BindStruct(row).GetCASRelease(&cur)
		if err != nil {
			return fmt.Errorf("scylla: put device %s/%s: %w", d.UserID, d.DeviceID, err)
		}
		next := mergeDevice(cur, row)
		if applied || next == cur {
			return nil
		}
		applied, err = s.query(ctx, q.deviceUpdateIf).BindStructMap(next, map[string]any{
			"prev_platform": cur.Platform, "prev_created_at": cur.CreatedAt, "prev_last_seen": cur.LastSeen,
		}).ExecCASRelease()
		if err != nil {
			return fmt.Errorf("scylla: put device %s/%s: %w", d.UserID, d.DeviceID, err)
		}
		if applied {
			return nil
		}
	}
	return fmt.Errorf("scylla: put device %s/%s: still contended after %d attempts", d.UserID, d.DeviceID, attempts)
}

// Devices implements store.Store.
func (s *Store) Devices(ctx context.Context, userID string) ([]store.Device, error) {
	var rows []deviceRow
	if !anyEmpty(userID) {
		if err := s.query(ctx, q.devicesList).Bind(userID).SelectRelease(&rows); err != nil {
			return nil, fmt.Errorf("scylla: devices of %s: %w", userID, err)
		}
	}
	out := make([]store.Device, len(rows))
	for i, r := range rows {
		out[i] = store.Device{UserID: r.UserID, DeviceID: r.DeviceID, Platform: r.Platform,
			CreatedAt: fromMS(r.CreatedAt), LastSeen: fromMS(r.LastSeen)}
	}
	return out, nil
}

// DeleteDevice implements store.Store; deleting a device that does not exist succeeds. The
// device row goes first (conditionally, like every device write), then its push token.
func (s *Store) DeleteDevice(ctx context.Context, userID, deviceID string) error {
	if anyEmpty(userID, deviceID) {
		return nil
	}
	_, err := s.query(ctx, q.deviceDeleteIfExists).Bind(userID, deviceID).ExecCASRelease()
	if err == nil {
		err = s.query(ctx, q.pushTokenDelete).Bind(userID, deviceID).ExecRelease()
	}
	if err != nil {
		return fmt.Errorf("scylla: delete device %s/%s: %w", userID, deviceID, err)
	}
	return nil
}

type pushTokenRow struct {
	UserID    string `db:"user_id"`
	DeviceID  string `db:"device_id"`
	Platform  string `db:"platform"`
	Token     string `db:"push_token"`
	UpdatedAt int64  `db:"updated_at"`
}

// PutPushToken implements store.Store.
func (s *Store) PutPushToken(ctx context.Context, t store.PushToken) error {
	if anyEmpty(t.UserID, t.DeviceID) {
		return fmt.Errorf("scylla: put push token: %w", errEmptyID)
	}
	row := pushTokenRow{UserID: t.UserID, DeviceID: t.DeviceID, Platform: t.Platform, Token: t.Token, UpdatedAt: toMS(t.UpdatedAt)}
	if err := s.query(ctx, q.pushTokenPut).BindStruct(row).ExecRelease(); err != nil {
		return fmt.Errorf("scylla: put push token %s/%s: %w", t.UserID, t.DeviceID, err)
	}
	return nil
}

// DeletePushToken implements store.Store; deleting a token that does not exist succeeds.
func (s *Store) DeletePushToken(ctx context.Context, userID, deviceID string) error {
	if anyEmpty(userID, deviceID) {
		return nil
	}
	if err := s.query(ctx, q.pushTokenDelete).Bind(userID, deviceID).ExecRelease(); err != nil {
		return fmt.Errorf("scylla: delete push token %s/%s: %w", userID, deviceID, err)
	}
	return nil
}

// PushTokens implements store.Store.
func (s *Store) PushTokens(ctx context.Context, userID string) ([]store.PushToken, error) {
	var rows []pushTokenRow
	if !anyEmpty(userID) {
		if err := s.query(ctx, q.pushTokensList).Bind(userID).SelectRelease(&rows); err != nil {
			return nil, fmt.Errorf("scylla: push tokens of %s: %w", userID, err)
		}
	}
	out := make([]store.PushToken, len(rows))
	for i, r := range rows {
		out[i] = store.PushToken{UserID: r.UserID, DeviceID: r.DeviceID, Platform: r.Platform, Token: r.Token, UpdatedAt: fromMS(r.UpdatedAt)}
	}
	return out, nil
}

// ---- watermarks

type watermarkRow struct {
	ConversationID string `db:"conversation_id"`
	UserID         string `db:"user_id"`
	Delivered      int64  `db:"delivered_seq"`
	Read           int64  `db:"read_seq"`
}

func (r watermarkRow) watermark() store.Watermark {
	return store.Watermark{ConversationID: r.ConversationID, UserID: r.UserID,
		Delivered: uint64(r.Delivered), Read: uint64(r.Read)}
}

// AdvanceWatermark implements store.Store without read-modify-write or Paxos: each mark is
// written with the mark itself as the cell's write timestamp (markTimestamp), and ScyllaDB keeps
// the cell with the highest timestamp, so the stored mark is the max of every mark ever written,
// whatever the order or concurrency of the writers. The result is read back (a quorum read sees
// this write, so it is at least the request).
//
// This holds only while nothing else writes or deletes watermark cells with wall-clock
// timestamps: a wall-clock tombstone would shadow every mark below it forever.
func (s *Store) AdvanceWatermark(ctx context.Context, w store.Watermark) (store.Watermark, error) {
	if anyEmpty(w.ConversationID, w.UserID) {
		return store.Watermark{}, fmt.Errorf("scylla: advance watermark: %w", errEmptyID)
	}
	if w.Delivered > maxSeq || w.Read > maxSeq {
		return store.Watermark{}, fmt.Errorf("scylla: advance watermark %s/%s: mark above %d", w.ConversationID, w.UserID, uint64(maxSeq))
	}
	b := s.session.ContextBatch(ctx, gocql.UnloggedBatch) // one partition: applied atomically
	for _, m := range []struct {
		st   stmt
		name string
		v    uint64
	}{{q.watermarkDelivered, "delivered_seq", w.Delivered}, {q.watermarkRead, "read_seq", w.Read}} {
		if m.v == 0 {
			continue
		}
		args := map[string]any{"ts": markTimestamp(m.v), m.name: int64(m.v), "conversation_id": w.ConversationID, "user_id": w.UserID}
		if err := b.BindMap(s.session.Query(m.st.cql, m.st.names), args); err != nil {
			return store.Watermark{}, fmt.Errorf("scylla: advance watermark %s/%s: %w", w.ConversationID, w.UserID, err)
		}
	}
	if b.Size() > 0 {
		if err := s.session.ExecuteBatch(b); err != nil {
			return store.Watermark{}, fmt.Errorf("scylla: advance watermark %s/%s: %w", w.ConversationID, w.UserID, err)
		}
	}
	got, err := s.Watermark(ctx, w.ConversationID, w.UserID)
	if err != nil {
		return store.Watermark{}, fmt.Errorf("scylla: advance watermark: %w", err)
	}
	return got, nil
}

// markCap keeps write timestamps in the past (2^50 µs is in 2005): ScyllaDB rejects USING
// TIMESTAMP more than three days ahead (restrict_future_timestamp).
const markCap = 1 << 50

// markTimestamp is the write timestamp of a mark: the mark itself, or markCap for marks above it.
// Cells with equal timestamps are reconciled by value, and for positive bigints the larger value
// wins, so the max survives above the cap too.
func markTimestamp(mark uint64) int64 { return int64(min(mark, markCap)) }

// Watermark implements store.Store; an unknown pair has zero marks and its ids filled in.
func (s *Store) Watermark(ctx context.Context, conversationID, userID string) (store.Watermark, error) {
	r := watermarkRow{ConversationID: conversationID, UserID: userID}
	if anyEmpty(conversationID, userID) {
		return r.watermark(), nil
	}
	if err := notFound(s.query(ctx, q.watermarkGet).Bind(conversationID, userID).GetRelease(&r)); err != nil && !errors.Is(err, store.ErrNotFound) {
		return store.Watermark{}, fmt.Errorf("scylla: watermark %s/%s: %w", conversationID, userID, err)
	}
	return r.watermark(), nil
}

// Watermarks implements store.Store: the marks of every member that has any, by user id.
func (s *Store) Watermarks(ctx context.Context, conversationID string) ([]store.Watermark, error) {
	var rows []watermarkRow
	if !anyEmpty(conversationID) {
		if err := s.query(ctx, q.watermarksList).Bind(conversationID).SelectRelease(&rows); err != nil {
			return nil, fmt.Errorf("scylla: watermarks of %s: %w", conversationID, err)
		}
	}
	out := make([]store.Watermark, len(rows))
	for i, r := range rows {
		out[i] = r.watermark()
	}
	return out, nil
}

// ---- bookkeeping

type metaRow struct {
	Name  string `db:"name"`
	Value string `db:"value"`
}

// ---- sessions

type sessionRow struct {
	ID          string `db:"id"`
	UserID      string `db:"user_id"`
	RefreshHash []byte `db:"refresh_hash"`
	UserAgent   string `db:"user_agent"`
	CreatedAt   int64  `db:"created_at"`
	LastUsed    int64  `db:"last_used"`
	RevokedAt   int64  `db:"revoked_at"`
}

func (r sessionRow) session() store.Session {
	v := store.Session{ID: r.ID, UserID: r.UserID, RefreshHash: nilIfEmpty(r.RefreshHash), UserAgent: r.UserAgent,
		CreatedAt: fromMS(r.CreatedAt), LastUsed: fromMS(r.LastUsed)}
	if r.RevokedAt != zeroMS {
		v.RevokedAt = fromMS(r.RevokedAt)
	}
	return v
}

type sessionByUserRow struct {
	UserID string `db:"user_id"`
	ID     string `db:"id"`
}

// CreateSession implements store.Store: the session row is claimed (IF NOT EXISTS), then
// indexed under its user; a repeated create of the same session writes the index again.
func (s *Store) CreateSession(ctx context.Context, v store.Session) error {
	if anyEmpty(v.ID, v.UserID) {
		return fmt.Errorf("scylla: create session %q: %w", v.ID, errEmptyID)
	}
	row := sessionRow{ID: v.ID, UserID: v.UserID, RefreshHash: v.RefreshHash, UserAgent: v.UserAgent,
		CreatedAt: toMS(v.CreatedAt), LastUsed: toMS(v.LastUsed), RevokedAt: toMS(v.RevokedAt)}
	var prev sessionRow
	applied, err := s.query(ctx, q.sessionInsertIfNotExists).WithBindTransformer(unsetEmpty).BindStruct(row).GetCASRelease(&prev)
	if err != nil {
		return fmt.Errorf("scylla: create session %s: %w", v.ID, err)
	}
	if !applied && prev.UserID != v.UserID {
		return fmt.Errorf("scylla: create session %s: id taken by another user: %w", v.ID, store.ErrConflict)
	}
	if err := s.query(ctx, q.sessionByUserPut).BindStruct(sessionByUserRow{UserID: v.UserID, ID: v.ID}).ExecRelease(); err != nil {
		return fmt.Errorf("scylla: create session %s: index: %w", v.ID, err)
	}
	return nil
}

func (s *Store) sessionRow(ctx context.Context, id string) (sessionRow, error) {
	var r sessionRow
	if anyEmpty(id) {
		return r, store.ErrNotFound
	}
	err := s.query(ctx, q.sessionGet).Bind(id).GetRelease(&r)
	return r, notFound(err)
}

// Session implements store.Store.
func (s *Store) Session(ctx context.Context, id string) (store.Session, error) {
	r, err := s.sessionRow(ctx, id)
	if err != nil {
		return store.Session{}, fmt.Errorf("scylla: session %s: %w", id, err)
	}
	return r.session(), nil
}

// Sessions implements store.Store: the user's index, then each session row. An index entry
// whose row is missing (never the case once CreateSession returned) is skipped.
func (s *Store) Sessions(ctx context.Context, userID string) ([]store.Session, error) {
	var ids []string
	if !anyEmpty(userID) {
		if err := s.query(ctx, q.sessionsByUserList).Bind(userID).SelectRelease(&ids); err != nil {
			return nil, fmt.Errorf("scylla: sessions of %s: %w", userID, err)
		}
	}
	out := make([]store.Session, 0, len(ids))
	for _, id := range ids {
		r, err := s.sessionRow(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			continue
		case err != nil:
			return nil, fmt.Errorf("scylla: sessions of %s: %w", userID, err)
		case r.UserID == userID:
			out = append(out, r.session())
		}
	}
	return out, nil
}

// RotateSession implements store.Store with one compare-and-set on the hash and the active
// mark; LastUsed is raised from the row read just before.
func (s *Store) RotateSession(ctx context.Context, id string, oldHash, newHash []byte, usedAt time.Time) (store.Session, error) {
	cur, err := s.sessionRow(ctx, id)
	if err != nil {
		return store.Session{}, fmt.Errorf("scylla: rotate session %s: %w", id, err)
	}
	next := cur
	next.RefreshHash, next.LastUsed = newHash, max(cur.LastUsed, toMS(usedAt))
	applied, err := s.query(ctx, q.sessionRotateIf).BindStructMap(next, map[string]any{
		"old_hash": oldHash, "active": zeroMS,
	}).ExecCASRelease()
	if err != nil {
		return store.Session{}, fmt.Errorf("scylla: rotate session %s: %w", id, err)
	}
	if !applied {
		return store.Session{}, fmt.Errorf("scylla: rotate session %s: revoked or not the current refresh token: %w", id, store.ErrConflict)
	}
	return next.session(), nil
}

// RevokeSession implements store.Store: a compare-and-set from active to revokedAt; a session
// revoked already is read back with its first revocation time.
func (s *Store) RevokeSession(ctx context.Context, id string, revokedAt time.Time) (store.Session, error) {
	if anyEmpty(id) {
		return store.Session{}, fmt.Errorf("scylla: revoke session: %w", store.ErrNotFound)
	}
	if _, err := s.query(ctx, q.sessionRevokeIf).BindMap(map[string]any{
		"revoked_at": toMS(revokedAt), "id": id, "active": zeroMS,
	}).ExecCASRelease(); err != nil {
		return store.Session{}, fmt.Errorf("scylla: revoke session %s: %w", id, err)
	}
	r, err := s.sessionRow(ctx, id)
	if err != nil {
		return store.Session{}, fmt.Errorf("scylla: revoke session %s: %w", id, err)
	}
	return r.session(), nil
}
