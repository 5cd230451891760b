package remote

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"time"

	"github.com/natter-chat/natter/pkg/store"
)

// The wire format, version 2. Every request and every reply is a version byte (2) followed by
// fields in a fixed order per method: strings and byte slices as uvarint length + bytes,
// unsigned integers as uvarint, signed ones as zigzag varint, booleans as one byte 0 or 1,
// times as the varint of Unix seconds + the uvarint of nanoseconds (decoded in UTC), lists as a
// uvarint count + elements. A request starts with the uvarint milliseconds its caller still
// waits (0: none given). A reply starts with an error code: empty for success, followed by the
// method's results; otherwise followed by the error message and nothing else.
//
// The encoding is lossless (any bytes in any string, nanoseconds, nil vs empty byte slices as
// the served store keeps them), so the client behaves exactly as the served store. Decoders
// reject unknown versions, malformed fields and trailing bytes. A new field means a new version.
//
// Each record is described once, by a function of a coder; the encoder, the decoder and the
// sizer (which measures the encoding without making it) run the same function, so they cannot
// disagree. Version 2 added message revisions (edits, deletes and hides), the earlier intervals,
// invitation and ChangedSeq of a member and the DeletedSeq of a conversation; a version 1
// peer's requests and replies are refused as unknown.
const wireVersion = 2

var errMalformed = errors.New("malformed")

// coder is one direction of the codec: encoder writes the fields, decoder overwrites them with
// what it reads, sizer counts their encoded size.
type coder interface {
	str(*string)
	bytes(*[]byte)
	u64(*uint64)
	i64(*int64)
	flag(*bool)
	time(*time.Time)
	// count codes a list's length; minElem is the fewest bytes one element takes, so that a
	// decoder never allocates for elements the input cannot hold.
	count(n *int, minElem int)
}

// Time bounds: Unix seconds beyond these do not survive time.Unix and Time.Unix unchanged.
const (
	minUnix = -(1 << 62)
	maxUnix = 1 << 62
)

// encoder appends to b.
type encoder struct{ b []byte }

func (e *encoder) str(s *string) {
	e.b = append(binary.AppendUvarint(e.b, uint64(len(*s))), *s...)
}
func (e *encoder) bytes(b *[]byte) {
	e.b = append(binary.AppendUvarint(e.b, uint64(len(*b))), *b...)
}
func (e *encoder) u64(v *uint64) { e.b = binary.AppendUvarint(e.b, *v) }
func (e *encoder) i64(v *int64)  { e.b = binary.AppendVarint(e.b, *v) }
func (e *encoder) flag(v *bool) {
	if *v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}
func (e *encoder) time(t *time.Time) {
	e.b = binary.AppendVarint(e.b, t.Unix())
	e.b = binary.AppendUvarint(e.b, uint64(t.Nanosecond()))
}
func (e *encoder) count(n *int, _ int) { e.b = binary.AppendUvarint(e.b, uint64(*n)) }

// sizer counts the bytes an encoder would append.
type sizer struct{ n int }

func uvarintLen(v uint64) int { return max(1, (bits.Len64(v)+6)/7) }
func varintLen(v int64) int   { return uvarintLen(uint64(v<<1) ^ uint64(v>>63)) }

func (s *sizer) str(v *string)       { s.n += uvarintLen(uint64(len(*v))) + len(*v) }
func (s *sizer) bytes(v *[]byte)     { s.n += uvarintLen(uint64(len(*v))) + len(*v) }
func (s *sizer) u64(v *uint64)       { s.n += uvarintLen(*v) }
func (s *sizer) i64(v *int64)        { s.n += varintLen(*v) }
func (s *sizer) flag(*bool)          { s.n++ }
func (s *sizer) time(t *time.Time)   { s.n += varintLen(t.Unix()) + uvarintLen(uint64(t.Nanosecond())) }
func (s *sizer) count(n *int, _ int) { s.n += uvarintLen(uint64(*n)) }

// decoder reads b. Strings are substrings of one copy of the input (one allocation for all of
// them); byte slices are copies. Nothing returned aliases b. After the first error every
// method is a no-op and leaves zero values.
type decoder struct {
	b   []byte
	s   string // string(b)
	i   int
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%s at byte %d: %w", fmt.Sprintf(format, args...), d.i, errMalformed)
	}
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.i:])
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.i += n
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b[d.i:])
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.i += n
	return v
}

// span reads a length and returns the bounds of that many bytes.
func (d *decoder) span() (from, to int) {
	n := d.uvarint()
	if d.err != nil {
		return 0, 0
	}
	if n > uint64(len(d.b)-d.i) {
		d.fail("length %d past the end", n)
		return 0, 0
	}
	from, d.i = d.i, d.i+int(n)
	return from, d.i
}

func (d *decoder) str(s *string) {
	from, to := d.span()
	*s = d.s[from:to]
}

// bytes decodes an empty slice as nil.
func (d *decoder) bytes(b *[]byte) {
	*b = nil
	if from, to := d.span(); from != to {
		*b = append([]byte(nil), d.b[from:to]...)
	}
}

func (d *decoder) u64(v *uint64) { *v = d.uvarint() }
func (d *decoder) i64(v *int64)  { *v = d.varint() }

func (d *decoder) flag(v *bool) {
	*v = false
	if d.err != nil {
		return
	}
	if d.i >= len(d.b) || d.b[d.i] > 1 {
		d.fail("bad boolean")
		return
	}
	*v = d.b[d.i] == 1
	d.i++
}

func (d *decoder) time(t *time.Time) {
	*t = time.Time{}
	sec, nsec := d.varint(), d.uvarint()
	if d.err != nil {
		return
	}
	if sec < minUnix || sec > maxUnix || nsec >= 1e9 {
		d.fail("time %d.%d out of range", sec, nsec)
		return
	}
	*t = time.Unix(sec, int64(nsec)).UTC()
}

func (d *decoder) count(n *int, minElem int) {
	v := d.uvarint()
	*n = 0
	if d.err != nil {
		return
	}
	if v > uint64((len(d.b)-d.i)/minElem) {
		d.fail("%d elements cannot fit in %d bytes", v, len(d.b)-d.i)
		return
	}
	*n = int(v)
}

// encode returns the encoding of what fields describes, allocated once at its exact size.
func encode(fields func(coder)) []byte {
	var s sizer
	fields(&s)
	e := encoder{b: make([]byte, 1, 1+s.n)}
	e.b[0] = wireVersion
	fields(&e)
	return e.b
}

// decode fills in what fields describes from b.
func decode(b []byte, fields func(coder)) error {
	if len(b) == 0 || b[0] != wireVersion {
		return fmt.Errorf("unknown version: %w", errMalformed)
	}
	d := decoder{b: b, s: string(b), i: 1}
	fields(&d)
	if d.err == nil && d.i != len(b) {
		d.fail("%d trailing bytes", len(b)-d.i)
	}
	return d.err
}

// Field helpers for types the coder does not know.

func integer(c coder, v *int) {
	x := int64(*v)
	c.i64(&x)
	*v = int(x)
}

func list[T any](c coder, xs *[]T, minElem int, each func(coder, *T)) {
	n := len(*xs)
	c.count(&n, minElem)
	if n != len(*xs) { // decoding
		*xs = make([]T, n)
	}
	for i := range *xs {
		each(c, &(*xs)[i])
	}
}

// Records. The minimum sizes count one byte per string, integer and flag and two per time.

func userFields(c coder, u *store.User) {
	c.str(&u.ID)
	c.str(&u.Handle)
	c.str(&u.DisplayName)
	c.bytes(&u.PasswordHash)
	c.time(&u.CreatedAt)
}

func conversationFields(c coder, v *store.Conversation) {
	c.str(&v.ID)
	kind := string(v.Kind)
	c.str(&kind)
	v.Kind = store.ConversationKind(kind)
	c.str(&v.Name)
	c.str(&v.CreatedBy)
	c.time(&v.CreatedAt)
	c.u64(&v.DeletedSeq)
}

const minMember = 11

func memberFields(c coder, m *store.Member) {
	c.str(&m.ConversationID)
	c.str(&m.UserID)
	c.str(&m.Role)
	c.u64(&m.JoinedSeq)
	c.u64(&m.LeftSeq)
	c.time(&m.JoinedAt)
	list(c, &m.Earlier, 2, func(c coder, i *store.Interval) {
		c.u64(&i.JoinedSeq)
		c.u64(&i.LeftSeq)
	})
	c.u64(&m.InvitedSeq)
	c.str(&m.InvitedBy)
	c.u64(&m.ChangedSeq)
}

const minMessage = 19

func messageFields(c coder, m *store.Message) {
	c.str(&m.ConversationID)
	c.u64(&m.Seq)
	c.str(&m.ID)
	c.str(&m.Kind)
	c.str(&m.SenderID)
	c.str(&m.SenderDevice)
	c.str(&m.ClientMsgID)
	c.str(&m.Text)
	c.bytes(&m.Member)
	c.time(&m.SentAt)
	c.u64(&m.Target)
	c.str(&m.TargetID)
	c.time(&m.EditedAt)
	c.time(&m.DeletedAt)
	strs(c, &m.HiddenFor)
	c.u64(&m.RevisedSeq)
}

// strs codes a list of strings.
func strs(c coder, v *[]string) {
	list(c, v, 1, func(c coder, s *string) { c.str(s) })
}

func revisionFields(c coder, r *store.Revision) {
	c.str(&r.Kind)
	c.u64(&r.Seq)
	c.str(&r.Text)
	c.str(&r.UserID)
	c.time(&r.At)
}

func pageFields(c coder, p *store.Page) {
	c.u64(&p.Before)
	c.u64(&p.After)
	c.flag(&p.Oldest)
	integer(c, &p.Limit)
}

const minDevice = 7

func deviceFields(c coder, d *store.Device) {
	c.str(&d.UserID)
	c.str(&d.DeviceID)
	c.str(&d.Platform)
	c.time(&d.CreatedAt)
	c.time(&d.LastSeen)
}

const minPushToken = 6

func pushTokenFields(c coder, t *store.PushToken) {
	c.str(&t.UserID)
	c.str(&t.DeviceID)
	c.str(&t.Platform)
	c.str(&t.Token)
	c.time(&t.UpdatedAt)
}

const minWatermark = 4

func watermarkFields(c coder, w *store.Watermark) {
	c.str(&w.ConversationID)
	c.str(&w.UserID)
	c.u64(&w.Delivered)
	c.u64(&w.Read)
}

const minSession = 9

func sessionFields(c coder, v *store.Session) {
	c.str(&v.ID)
	c.str(&v.UserID)
	c.bytes(&v.RefreshHash)
	c.str(&v.UserAgent)
	c.time(&v.CreatedAt)
	c.time(&v.LastUsed)
	c.time(&v.RevokedAt)
}

// method is one method of store.Store; its name is the last token of its subject.
type method uint8

const (
	mCreateUser method = iota
	mUserByID
	mUserByHandle
	mUpdateProfile
	mPutConversation
	mConversation
	mPutMember
	mMember
	mMembers
	mMembershipsOf
	mInsertMessage
	mMessageByClientID
	mMessageByID
	mMessages
	mPutDevice
	mDevices
	mDeleteDevice
	mPutPushToken
	mDeletePushToken
	mPushTokens
	mAdvanceWatermark
	mWatermark
	mWatermarks
	mDeleteUser
	mCreateSession
	mSession
	mSessions
	mRotateSession
	mRevokeSession
	mReviseMessage
	numMethods
)

var methodNames = [numMethods]string{
	"CreateUser", "UserByID", "UserByHandle", "UpdateProfile",
	"PutConversation", "Conversation",
	"PutMember", "Member", "Members", "MembershipsOf",
	"InsertMessage", "MessageByClientID", "MessageByID", "Messages",
	"PutDevice", "Devices", "DeleteDevice",
	"PutPushToken", "DeletePushToken", "PushTokens",
	"AdvanceWatermark", "Watermark", "Watermarks",
	"DeleteUser",
	"CreateSession", "Session", "Sessions", "RotateSession", "RevokeSession",
	"ReviseMessage",
}

func (m method) String() string {
	if m < numMethods {
		return methodNames[m]
	}
	return fmt.Sprintf("method(%d)", m)
}

var methodsByName = func() map[string]method {
	ms := make(map[string]method, numMethods)
	for m := range numMethods {
		ms[methodNames[m]] = m
	}
	return ms
}()

// request holds the arguments of any method; each method codes the fields its signature has.
type request struct {
	// timeout is how long the caller still waits for the answer; 0 if it did not say.
	timeout time.Duration
	a, b    string // string arguments, in the order of the method's parameters

	user  store.User
	conv  store.Conversation
	mem   store.Member
	msg   store.Message
	page  store.Page
	dev   store.Device
	token store.PushToken
	wm    store.Watermark
	sess  store.Session
	h1    []byte    // RotateSession's old hash
	h2    []byte    // RotateSession's new hash
	at    time.Time // RotateSession's and RevokeSession's time
	seq   uint64    // ReviseMessage's seq
	rev   store.Revision
}

// maxTimeoutMillis keeps a decoded timeout within time.Duration.
const maxTimeoutMillis = math.MaxInt64 / int64(time.Millisecond)

func (r *request) fields(c coder, m method) {
	ms := uint64(0)
	if r.timeout > 0 {
		ms = uint64(max(1, r.timeout.Milliseconds())) // a deadline under 1 ms is still one
	}
	c.u64(&ms)
	r.timeout = time.Duration(min(ms, uint64(maxTimeoutMillis))) * time.Millisecond
	switch m {
	case mCreateUser:
		userFields(c, &r.user)
	case mPutConversation:
		conversationFields(c, &r.conv)
	case mPutMember:
		memberFields(c, &r.mem)
	case mInsertMessage:
		messageFields(c, &r.msg)
	case mPutDevice:
		deviceFields(c, &r.dev)
	case mPutPushToken:
		pushTokenFields(c, &r.token)
	case mAdvanceWatermark:
		watermarkFields(c, &r.wm)
	case mMessages:
		c.str(&r.a)
		pageFields(c, &r.page)
	case mCreateSession:
		sessionFields(c, &r.sess)
	case mRotateSession:
		c.str(&r.a)
		c.bytes(&r.h1)
		c.bytes(&r.h2)
		c.time(&r.at)
	case mRevokeSession:
		c.str(&r.a)
		c.time(&r.at)
	case mReviseMessage:
		c.str(&r.a)
		c.u64(&r.seq)
		revisionFields(c, &r.rev)
	case mUserByID, mUserByHandle, mDeleteUser, mConversation, mMembers, mMembershipsOf, mDevices, mPushTokens, mWatermarks,
		mSession, mSessions:
		c.str(&r.a)
	case mUpdateProfile, mMember, mMessageByClientID, mMessageByID, mDeleteDevice, mDeletePushToken, mWatermark:
		c.str(&r.a)
		c.str(&r.b)
	}
}

func encodeRequest(m method, r *request) []byte {
	return encode(func(c coder) { r.fields(c, m) })
}

func decodeRequest(m method, b []byte) (request, error) {
	if m >= numMethods {
		return request{}, fmt.Errorf("unknown method %d: %w", m, errMalformed)
	}
	var r request
	err := decode(b, func(c coder) { r.fields(c, m) })
	return r, err
}

// response holds the results of any method, or an error.
type response struct {
	code    string // "" for success; otherwise one of the Code* constants and message
	message string

	user      store.User
	conv      store.Conversation
	mem       store.Member
	mems      []store.Member
	msg       store.Message
	inserted  bool
	msgs      []store.Message
	truncated bool // Messages: the page was cut to fit a reply; ask for the rest
	devs      []store.Device
	tokens    []store.PushToken
	wm        store.Watermark
	wms       []store.Watermark
	sess      store.Session
	sessions  []store.Session
}

func (r *response) fields(c coder, m method) {
	c.str(&r.code)
	if r.code != "" {
		c.str(&r.message)
		return
	}
	switch m {
	case mUserByID, mUserByHandle:
		userFields(c, &r.user)
	case mConversation:
		conversationFields(c, &r.conv)
	case mMember:
		memberFields(c, &r.mem)
	case mMembers, mMembershipsOf:
		list(c, &r.mems, minMember, memberFields)
	case mInsertMessage:
		messageFields(c, &r.msg)
		c.flag(&r.inserted)
	case mMessageByClientID, mMessageByID, mReviseMessage:
		messageFields(c, &r.msg)
	case mMessages:
		c.flag(&r.truncated)
		list(c, &r.msgs, minMessage, messageFields)
	case mDevices:
		list(c, &r.devs, minDevice, deviceFields)
	case mPushTokens:
		list(c, &r.tokens, minPushToken, pushTokenFields)
	case mAdvanceWatermark, mWatermark:
		watermarkFields(c, &r.wm)
	case mWatermarks:
		list(c, &r.wms, minWatermark, watermarkFields)
	case mSession, mRotateSession, mRevokeSession:
		sessionFields(c, &r.sess)
	case mSessions:
		list(c, &r.sessions, minSession, sessionFields)
	}
}

func encodeResponse(m method, r *response) []byte {
	return encode(func(c coder) { r.fields(c, m) })
}

// errorReply encodes an error answer; it is the same for every method.
func errorReply(code, message string) []byte {
	return encodeResponse(0, &response{code: code, message: message})
}

func decodeResponse(m method, b []byte) (response, error) {
	if m >= numMethods {
		return response{}, fmt.Errorf("unknown method %d: %w", m, errMalformed)
	}
	var r response
	err := decode(b, func(c coder) { r.fields(c, m) })
	return r, err
}

// replyOverhead bounds the bytes of a Messages reply besides its messages: version, empty
// code, truncated flag, count.
const replyOverhead = 1 + 1 + 1 + binary.MaxVarintLen64
