// Package store is natter's durable state: users and their login sessions, conversations,
// memberships, messages, devices, push tokens and read/delivered watermarks. One interface, two
// implementations (pebble for one machine, scylla for clusters), a client of either served over
// NATS (remote), and one conformance suite (storetest) that all three pass.
package store

import (
	"context"
	"errors"
	"slices"
	"time"
)

// Errors every implementation returns (wrapped) so callers can branch with errors.Is.
var (
	// ErrNotFound: the record does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a unique value (a handle) is taken by another record.
	ErrConflict = errors.New("conflict")
)

// ConversationKind tells a direct (two-person) conversation from a group.
type ConversationKind string

const (
	Direct ConversationKind = "direct"
	Group  ConversationKind = "group"
)

// MaxGroupMembers is the most members a group may have at once.
const MaxGroupMembers = 100

// User is an account.
type User struct {
	ID           string
	Handle       string // unique, case-folded by the caller before it reaches the store
	DisplayName  string
	PasswordHash []byte
	CreatedAt    time.Time
}

// Conversation is a direct or group conversation. Its messages are separate records.
type Conversation struct {
	ID        string
	Kind      ConversationKind
	Name      string // groups only
	CreatedBy string
	CreatedAt time.Time
	// DeletedSeq is the seq of the event that deleted the group, 0 while it exists. A deleted
	// group keeps its record and its messages; every membership ended at DeletedSeq.
	DeletedSeq uint64
}

// Member is one user's membership of one conversation. The same record answers both directions:
// conversation -> users (Members) and user -> conversations (MembershipsOf).
//
// A user may be a member several times (added, removed, added again): JoinedSeq and LeftSeq are
// the latest interval, Earlier the ones before it. The user sees the events of every interval.
// A user invited but not (yet) a member has InvitedSeq set; one who never was a member has the
// empty interval JoinedSeq = LeftSeq = the seq of the invitation, so they see nothing.
type Member struct {
	ConversationID string
	UserID         string
	Role           string // "owner", "admin" or "member"
	// JoinedSeq is the CHAT seq of the event that added the user (0 for a direct conversation's
	// two users and a group's creators): the member sees messages with seq > JoinedSeq.
	JoinedSeq uint64
	// LeftSeq is the seq of the event that removed the user, 0 while still a member: a former
	// member sees messages with JoinedSeq < seq <= LeftSeq and nothing after.
	LeftSeq  uint64
	JoinedAt time.Time
	// Earlier are the user's earlier intervals in this conversation, oldest first, each closed
	// (LeftSeq set) and non-empty.
	Earlier []Interval
	// InvitedSeq is the seq of a pending invitation (by InvitedBy), 0 when there is none.
	InvitedSeq uint64
	InvitedBy  string
	// ChangedSeq is the seq of the latest membership event applied to this record (0 in records
	// written before it was kept: then the latest interval's ends tell).
	ChangedSeq uint64
}

// Interval is one stretch of membership: the member sees seq with JoinedSeq < seq <= LeftSeq
// (LeftSeq 0: no upper end).
type Interval struct {
	JoinedSeq uint64
	LeftSeq   uint64
}

// Sees reports whether the interval holds seq.
func (i Interval) Sees(seq uint64) bool {
	return seq > i.JoinedSeq && (i.LeftSeq == 0 || seq <= i.LeftSeq)
}

// Empty reports whether the interval holds no seq at all.
func (i Interval) Empty() bool { return i.LeftSeq != 0 && i.LeftSeq <= i.JoinedSeq }

// Active reports whether the membership is current.
func (m Member) Active() bool { return m.LeftSeq == 0 }

// Invited reports whether the user has a pending invitation.
func (m Member) Invited() bool { return m.InvitedSeq != 0 }

// Sees reports whether the member may see the event at seq: whether one of their intervals
// holds it.
func (m Member) Sees(seq uint64) bool {
	if (Interval{m.JoinedSeq, m.LeftSeq}).Sees(seq) {
		return true
	}
	for _, i := range m.Earlier { // no allocation: fanout asks this of every member for every event
		if i.Sees(seq) {
			return true
		}
	}
	return false
}

// Intervals returns every non-empty interval of the membership, oldest first; the last one is
// open (LeftSeq 0) while the membership is current.
func (m Member) Intervals() []Interval {
	out := make([]Interval, 0, len(m.Earlier)+1)
	for _, i := range m.Earlier {
		if !i.Empty() {
			out = append(out, i)
		}
	}
	if cur := (Interval{m.JoinedSeq, m.LeftSeq}); !cur.Empty() {
		out = append(out, cur)
	}
	return out
}

// SeenSince returns the first seq above after that the member sees, and whether there is one:
// where a reader that knows everything up to after resumes.
func (m Member) SeenSince(after uint64) (uint64, bool) {
	for _, i := range m.Intervals() {
		if i.LeftSeq != 0 && i.LeftSeq <= after {
			continue
		}
		return max(after, i.JoinedSeq) + 1, true
	}
	return 0, false
}

// Message is one event of a conversation's timeline at its CHAT seq: a text message, a
// membership change, or an edit, delete or hide of an earlier message (Kind mirrors
// streams.Kind*).
type Message struct {
	ConversationID string
	Seq            uint64
	ID             string // ULID
	Kind           string // "msg" or "member"
	SenderID       string
	SenderDevice   string
	ClientMsgID    string // empty for events that are not client sends
	Text           string
	// Member carries a membership change's action, users and name, JSON-encoded by the writer.
	Member []byte
	SentAt time.Time

	// Target is, for an edit, delete or hide entry, the seq of the message it revises. Such an
	// entry keeps no text of its own: the revised message holds the latest text.
	Target uint64
	// TargetID is the message id of the message at Target.
	TargetID string
	// EditedAt is when the text was last replaced by an edit; zero if never edited.
	EditedAt time.Time
	// DeletedAt is when the message was deleted for everyone: its Text is then empty for good.
	DeletedAt time.Time
	// HiddenFor lists, sorted, the users who deleted the message for themselves only.
	HiddenFor []string
	// RevisedSeq is the seq of the newest edit applied to the message (0: none).
	RevisedSeq uint64
}

// Deleted reports whether the message was deleted for everyone.
func (m Message) Deleted() bool { return !m.DeletedAt.IsZero() }

// HiddenTo reports whether userID deleted the message for themselves.
func (m Message) HiddenTo(userID string) bool { return slices.Contains(m.HiddenFor, userID) }

// Revision is one change to a stored message, made by the CHAT event at Seq: an edit (Kind
// "edit": Text replaces the text), a delete for everyone (Kind "delete": the text is gone for
// good) or a delete for one user (Kind "hide": UserID no longer sees it).
type Revision struct {
	Kind   string
	Seq    uint64
	Text   string
	UserID string
	At     time.Time
}

// Revise returns m with r applied, and whether anything changed. The rules make revisions
// commute, so they can be applied in any order and again: a delete is final (a later edit
// changes nothing); of two edits the one with the higher Seq wins; hides accumulate.
func Revise(m Message, r Revision) (Message, bool) {
	switch r.Kind {
	case "edit":
		if m.Deleted() || r.Seq <= m.RevisedSeq {
			return m, false
		}
		m.Text, m.EditedAt, m.RevisedSeq = r.Text, r.At, r.Seq
		return m, true
	case "delete":
		if m.Deleted() {
			return m, false
		}
		m.Text, m.DeletedAt = "", r.At
		return m, true
	case "hide":
		i, found := slices.BinarySearch(m.HiddenFor, r.UserID)
		if found || r.UserID == "" {
			return m, false
		}
		m.HiddenFor = slices.Insert(slices.Clone(m.HiddenFor), i, r.UserID)
		return m, true
	}
	return m, false
}

// Reviser is implemented by stores that can revise stored messages (edits and deletes).
type Reviser interface {
	// ReviseMessage applies r to the message at (conversationID, seq) with Revise, atomically,
	// and returns the result; ErrNotFound if there is no message there. Only text messages are
	// revised: any other entry is returned unchanged.
	ReviseMessage(ctx context.Context, conversationID string, seq uint64, r Revision) (Message, error)
}

// Page selects messages of one conversation. Results are always newest first.
// At most one of Before/After may be non-zero; both zero means the newest messages unless Oldest.
// Seqs are 1..2^63-1 (the CHAT stream starts at 1; Scylla's bigint is signed).
// Around (jump to a message) is built from the two: see Around.
type Page struct {
	Before uint64 // seq < Before
	After  uint64 // seq > After (the Limit oldest of those, returned newest first)
	// Oldest asks for the Limit oldest messages with seq > After even when After is 0 (which
	// otherwise means "no bound": the newest page). Reading a conversation from its start needs it.
	Oldest bool
	Limit  int // 1..MaxPageLimit; 0 means DefaultPageLimit
}

// Forward reports whether the page takes the oldest messages above After (After set, or Oldest).
func (p Page) Forward() bool { return p.After != 0 || p.Oldest }

const (
	DefaultPageLimit = 50
	MaxPageLimit     = 200
)

// Device is one installation of a client app for a user.
type Device struct {
	UserID    string
	DeviceID  string
	Platform  string // "web", "ios", "android", ... free text
	CreatedAt time.Time
	LastSeen  time.Time
}

// PushToken is the push registration of one device.
type PushToken struct {
	UserID    string
	DeviceID  string
	Platform  string // "fcm" (android, web) or "apns" via FCM
	Token     string
	UpdatedAt time.Time
}

// Session is one login of one account. Its refresh token is stored only as a hash; rotating
// the token replaces the hash, revoking the session ends it for good.
type Session struct {
	ID          string // ULID
	UserID      string
	RefreshHash []byte // SHA-256 of the current refresh token
	UserAgent   string // what the client said it is at login, shown in the session list
	CreatedAt   time.Time
	LastUsed    time.Time // the login or the latest refresh
	RevokedAt   time.Time // zero while the session is active
}

// Revoked reports whether the session has ended.
func (s Session) Revoked() bool { return !s.RevokedAt.IsZero() }

// Watermark is how far one member has received (Delivered) and read (Read) one conversation,
// as CHAT seqs. Watermarks only ever move forward.
type Watermark struct {
	ConversationID string
	UserID         string
	Delivered      uint64
	Read           uint64
}

// Store is natter's durable state.
//
// Contract for every implementation:
//   - Safe for concurrent use by many goroutines and many processes sharing one backing store.
//   - Every write is idempotent: writing the same record again, in any order with other writes,
//     leaves the same state. Consumers rely on this to replay any range of the CHAT stream.
//   - Reads reflect every write that returned before the read began.
//   - Errors wrap ErrNotFound / ErrConflict where they apply; other errors are transient.
type Store interface {
	// CreateUser stores a new user; ErrConflict if the handle or id is taken by another user.
	// Creating the identical user again (same id and handle) succeeds.
	CreateUser(ctx context.Context, u User) error
	UserByID(ctx context.Context, id string) (User, error)
	UserByHandle(ctx context.Context, handle string) (User, error)
	// UpdateProfile replaces the display name; ErrNotFound for a missing or deleted user.
	UpdateProfile(ctx context.Context, userID, displayName string) error
	// DeleteUser turns the account into a tombstone: from then on UserByID, UserByHandle and
	// UpdateProfile answer ErrNotFound, its display name and password hash are gone, and its
	// handle stays taken (CreateUser of another id with it: ErrConflict). CreateUser of the same
	// id and handle again succeeds and changes nothing, so replaying an account's events never
	// brings it back. Deleting a missing or deleted user succeeds and changes nothing.
	DeleteUser(ctx context.Context, userID string) error

	// PutConversation creates or replaces a conversation record.
	PutConversation(ctx context.Context, c Conversation) error
	Conversation(ctx context.Context, id string) (Conversation, error)

	// PutMember creates or replaces a membership (both directions at once).
	PutMember(ctx context.Context, m Member) error
	// Member returns one membership, current or former; ErrNotFound if the user never was one.
	Member(ctx context.Context, conversationID, userID string) (Member, error)
	// Members lists a conversation's memberships, current and former, ordered by user id.
	Members(ctx context.Context, conversationID string) ([]Member, error)
	// MembershipsOf lists a user's memberships, current and former, ordered by conversation id.
	MembershipsOf(ctx context.Context, userID string) ([]Member, error)

	// InsertMessage stores m at (m.ConversationID, m.Seq) unless the same sender already has a
	// message with the same non-empty ClientMsgID: then nothing is written and the earlier message
	// is returned with inserted=false. Inserting at an existing (conversation, seq) returns the
	// stored message with inserted=false. Exactly one of concurrent duplicates is inserted.
	InsertMessage(ctx context.Context, m Message) (stored Message, inserted bool, err error)
	// MessageByClientID finds a sender's message by its client message id.
	MessageByClientID(ctx context.Context, senderID, clientMsgID string) (Message, error)
	// MessageByID finds a message of a conversation by its ULID.
	MessageByID(ctx context.Context, conversationID, messageID string) (Message, error)
	// Messages returns a page of a conversation, newest first.
	Messages(ctx context.Context, conversationID string, p Page) ([]Message, error)

	// PutDevice creates or updates a device (LastSeen only moves forward).
	PutDevice(ctx context.Context, d Device) error
	Devices(ctx context.Context, userID string) ([]Device, error)
	// DeleteDevice removes a device and its push token.
	DeleteDevice(ctx context.Context, userID, deviceID string) error

	// PutPushToken registers or replaces a device's push token.
	PutPushToken(ctx context.Context, t PushToken) error
	DeletePushToken(ctx context.Context, userID, deviceID string) error
	PushTokens(ctx context.Context, userID string) ([]PushToken, error)

	// CreateSession stores a new session; ErrConflict if its id is taken by another user's
	// session. Creating the same session again (same id and user) succeeds and changes nothing.
	CreateSession(ctx context.Context, s Session) error
	// Session returns one session, revoked or not.
	Session(ctx context.Context, id string) (Session, error)
	// Sessions lists a user's sessions, revoked ones included, ordered by id.
	Sessions(ctx context.Context, userID string) ([]Session, error)
	// RotateSession replaces the refresh hash of an active session whose current hash is
	// oldHash with newHash and raises LastUsed to at least usedAt, atomically: of two rotations
	// from the same oldHash exactly one succeeds. It returns the updated session; ErrConflict
	// if the session is revoked or its hash is not oldHash, ErrNotFound if there is no session.
	RotateSession(ctx context.Context, id string, oldHash, newHash []byte, usedAt time.Time) (Session, error)
	// RevokeSession ends a session at revokedAt (a session revoked already keeps its time) and
	// returns it; ErrNotFound if there is no session.
	RevokeSession(ctx context.Context, id string, revokedAt time.Time) (Session, error)

	// AdvanceWatermark raises the delivered and read marks of (conversation, user) to at least
	// the given values (0 leaves a mark alone) and returns the result; marks never move back.
	AdvanceWatermark(ctx context.Context, w Watermark) (Watermark, error)
	// Watermark returns the marks of (conversation, user); zero marks if none were recorded.
	Watermark(ctx context.Context, conversationID, userID string) (Watermark, error)
	// Watermarks lists every member's marks for a conversation.
	Watermarks(ctx context.Context, conversationID string) ([]Watermark, error)

	// Close releases the store.
	Close() error
}

// GroupCommitter is implemented by stores that can write a chunk of messages as one.
// InsertMessageUnsynced checks a message as InsertMessage does (a repeat of a stored or
// already taken slot or client id is answered with the message kept) but may hold it back: no
// reader is promised to see it, nor is it promised to survive a crash, until Sync returns,
// which writes everything taken before it and waits for the disk once. A consumer that inserts
// a chunk unsynced and syncs before acking keeps InsertMessage's durability at one disk wait per
// chunk; a reader that trusts the store only up to that consumer's ack floor never misses what
// is held back.
type GroupCommitter interface {
	InsertMessageUnsynced(ctx context.Context, m Message) (stored Message, inserted bool, err error)
	Sync(ctx context.Context) error
}

// MemberCache is implemented by stores that keep member records in memory. CachedMember returns
// what Member would return for a record held there, and ok false otherwise (then ask Member):
// an answer that cannot wait, so the caller sets up no timeout for it.
type MemberCache interface {
	CachedMember(conversationID, userID string) (m Member, ok bool)
}

// PageAppender is implemented by stores that can append a page of Messages to a slice the caller
// owns: a reader of many pages in a row (a catch-up) reuses one slice instead of allocating one
// per page. AppendMessages(ctx, dst, c, p) returns dst followed by exactly what Messages(ctx, c,
// p) returns, or dst as it was with an error.
type PageAppender interface {
	AppendMessages(ctx context.Context, dst []Message, conversationID string, p Page) ([]Message, error)
}

// Positions is implemented by stores that record how far each stream has been projected into
// them. Position(stream) = p promises that every event of the stream at or below seq p has been
// applied to the store; ok is false when nothing was ever recorded. Recording is a max: a lower
// seq than the stored one changes nothing. Start-up checks, backups and replays use it to know
// which part of a stream the store still needs (see docs/operations.md, "Backup and recovery").
type Positions interface {
	Position(ctx context.Context, stream string) (seq uint64, ok bool, err error)
	RecordPosition(ctx context.Context, stream string, seq uint64) error
	// Empty reports whether the store holds no record at all (positions aside).
	Empty(ctx context.Context) (bool, error)
}

// Checkpointer is implemented by stores that can copy a consistent image of themselves while
// they serve: every write that returned before Checkpoint began is in the image.
type Checkpointer interface {
	Checkpoint(ctx context.Context, dir string) error
}
