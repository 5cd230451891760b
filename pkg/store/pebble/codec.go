package pebble

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/natter-chat/natter/pkg/store"
)

// Keys. Every key is a table tag ("msg/", "user/", ...) followed by components. A string
// component is escaped (0x00 -> 0x00 0xFF) and terminated by 0x00 0x01, so it can hold any bytes,
// no component is a prefix of another ("c1" never matches a scan of "c10"), and byte order of
// keys is the order of the components. A seq is the last component, 8 bytes big-endian.
const (
	tagUser   = "user/"   // user/<id>                  -> user
	tagHandle = "handle/" // handle/<handle>            -> user id
	tagGone   = "gone/"   // gone/<id>                  -> empty: the user is a deleted account's tombstone
	tagConv   = "conv/"   // conv/<id>                  -> conversation
	tagMem    = "mem/"    // mem/<conversation>/<user>  -> member
	tagUmem   = "umem/"   // umem/<user>/<conversation> -> member (same value)
	tagMsg    = "msg/"    // msg/<conversation>/<seq>   -> message
	tagMid    = "mid/"    // mid/<conversation>/<id>    -> seq
	tagCmid   = "cmid/"   // cmid/<sender>/<client id>  -> conversation, seq
	tagDev    = "dev/"    // dev/<user>/<device>        -> device
	tagPush   = "push/"   // push/<user>/<device>       -> push token
	tagWm     = "wm/"     // wm/<conversation>/<user>   -> watermark
	tagSess   = "sess/"   // sess/<id>                  -> session
	tagUsess  = "usess/"  // usess/<user>/<id>          -> session (same value)
)

// key returns tag followed by the escaped, terminated parts.
func key(tag string, parts ...string) []byte {
	n := len(tag)
	for _, p := range parts {
		n += len(p) + 2
	}
	k := make([]byte, 0, n+8)
	k = append(k, tag...)
	for _, p := range parts {
		for i := 0; i < len(p); i++ {
			if p[i] == 0 {
				k = append(k, 0, 0xFF)
			} else {
				k = append(k, p[i])
			}
		}
		k = append(k, 0, 1)
	}
	return k
}

// msgKey is msg/<conversation>/<seq>.
func msgKey(conversationID string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(key(tagMsg, conversationID), seq)
}

// prefixEnd is the smallest key greater than every key that starts with prefix. Every prefix
// passed here ends with a component terminator (0x00 0x01), so incrementing its last byte is enough.
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	end[len(end)-1]++
	return end
}

// Values. Every value is a version byte (1) followed by its fields in a fixed order: strings
// and byte slices as uvarint length + bytes, integers as uvarint, times as the varint of Unix
// milliseconds (decoded in UTC; sub-millisecond precision is dropped, as in ScyllaDB).
// Values are self-contained: they repeat the ids that are also in their key. A new field means
// a new version; decoders reject versions they do not know and trailing bytes.
// Version 2 (members and conversations only) appends fields to version 1's, which is still read.
const (
	valueV1 = 1
	valueV2 = 2
)

var errCorrupt = errors.New("corrupt value")

type enc []byte

func newEnc() enc                  { return enc{valueV1} }
func (e enc) str(s string) enc     { return append(binary.AppendUvarint(e, uint64(len(s))), s...) }
func (e enc) raw(b []byte) enc     { return append(binary.AppendUvarint(e, uint64(len(b))), b...) }
func (e enc) u64(v uint64) enc     { return binary.AppendUvarint(e, v) }
func (e enc) time(t time.Time) enc { return binary.AppendVarint(e, t.UnixMilli()) }

// optTime writes the zero time as 0, so that it decodes (optTime) as the zero time again.
func (e enc) optTime(t time.Time) enc {
	if t.IsZero() {
		return binary.AppendVarint(e, 0)
	}
	return e.time(t)
}

// dec reads a value. Strings are substrings of one copy of the whole value (one allocation
// per value, not per field); nothing returned aliases the caller's buffer.
type dec struct {
	b   []byte
	s   string // string(b)
	i   int    // read position in both
	err error
}

func newDec(b []byte) *dec { return newDecUpTo(b, valueV1) }

// newDecUpTo reads a value of any version from 1 to newest; version() tells which.
func newDecUpTo(b []byte, newest byte) *dec {
	if len(b) == 0 || b[0] < valueV1 || b[0] > newest {
		return &dec{err: fmt.Errorf("unknown version: %w", errCorrupt)}
	}
	return &dec{b: b, s: string(b), i: 1}
}

// version is the value's version byte (0 after a bad one).
func (d *dec) version() byte {
	if len(d.b) == 0 {
		return 0
	}
	return d.b[0]
}

func (d *dec) u64() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.i:])
	if n <= 0 {
		d.err = fmt.Errorf("bad uvarint at %d: %w", d.i, errCorrupt)
		return 0
	}
	d.i += n
	return v
}

// span reads a length and returns the bounds of that many bytes.
func (d *dec) span() (from, to int) {
	n := d.u64()
	if d.err != nil {
		return 0, 0
	}
	if n > uint64(len(d.b)-d.i) {
		d.err = fmt.Errorf("length %d past end: %w", n, errCorrupt)
		return 0, 0
	}
	from, d.i = d.i, d.i+int(n)
	return from, d.i
}

func (d *dec) str() string {
	from, to := d.span()
	return d.s[from:to]
}

// bytes decodes an empty slice as nil.
func (d *dec) bytes() []byte {
	from, to := d.span()
	if from == to {
		return nil
	}
	return append([]byte(nil), d.b[from:to]...)
}

func (d *dec) time() time.Time {
	if d.err != nil {
		return time.Time{}
	}
	v, n := binary.Varint(d.b[d.i:])
	if n <= 0 {
		d.err = fmt.Errorf("bad varint at %d: %w", d.i, errCorrupt)
		return time.Time{}
	}
	d.i += n
	return time.UnixMilli(v).UTC()
}

// optTime reads what enc.optTime wrote.
func (d *dec) optTime() time.Time {
	t := d.time()
	if t.UnixMilli() == 0 {
		return time.Time{}
	}
	return t
}

// done reports the first decoding error, or trailing bytes.
func (d *dec) done() error {
	if d.err == nil && d.i != len(d.b) {
		d.err = fmt.Errorf("%d trailing bytes: %w", len(d.b)-d.i, errCorrupt)
	}
	return d.err
}

// ms drops what a stored time cannot keep: sub-millisecond precision and the location.
func ms(t time.Time) time.Time { return time.UnixMilli(t.UnixMilli()).UTC() }

// msOrZero is ms, keeping the zero time zero.
func msOrZero(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return ms(t)
}

func encodeUser(u store.User) []byte {
	return newEnc().str(u.ID).str(u.Handle).str(u.DisplayName).raw(u.PasswordHash).time(u.CreatedAt)
}

func decodeUser(b []byte) (store.User, error) {
	d := newDec(b)
	u := store.User{ID: d.str(), Handle: d.str(), DisplayName: d.str(), PasswordHash: d.bytes(), CreatedAt: d.time()}
	return u, d.done()
}

// Conversations: version 2 adds DeletedSeq.
func encodeConversation(c store.Conversation) []byte {
	e := enc{valueV2}
	return e.str(c.ID).str(string(c.Kind)).str(c.Name).str(c.CreatedBy).time(c.CreatedAt).u64(c.DeletedSeq)
}

func decodeConversation(b []byte) (store.Conversation, error) {
	d := newDecUpTo(b, valueV2)
	c := store.Conversation{ID: d.str(), Kind: store.ConversationKind(d.str()), Name: d.str(), CreatedBy: d.str(), CreatedAt: d.time()}
	if d.version() == valueV2 {
		c.DeletedSeq = d.u64()
	}
	return c, d.done()
}

// maxEarlier bounds the earlier intervals a member value may claim, so a corrupt count cannot
// make the decoder allocate without limit (each interval takes at least two bytes anyway).
const maxEarlier = 1 << 20

// Members: version 2 adds the earlier intervals (a count, then JoinedSeq and LeftSeq of each),
// InvitedSeq, InvitedBy and ChangedSeq.
func encodeMember(m store.Member) []byte {
	e := enc{valueV2}
	e = e.str(m.ConversationID).str(m.UserID).str(m.Role).u64(m.JoinedSeq).u64(m.LeftSeq).time(m.JoinedAt)
	e = e.u64(uint64(len(m.Earlier)))
	for _, i := range m.Earlier {
		e = e.u64(i.JoinedSeq).u64(i.LeftSeq)
	}
	return e.u64(m.InvitedSeq).str(m.InvitedBy).u64(m.ChangedSeq)
}

func decodeMember(b []byte) (store.Member, error) {
	d := newDecUpTo(b, valueV2)
	m := store.Member{ConversationID: d.str(), UserID: d.str(), Role: d.str(), JoinedSeq: d.u64(), LeftSeq: d.u64(), JoinedAt: d.time()}
	if d.version() == valueV2 {
		n := d.u64()
		if n > maxEarlier || n > uint64(len(d.b)) {
			d.err = fmt.Errorf("%d earlier intervals: %w", n, errCorrupt)
			n = 0
		}
		if n > 0 {
			m.Earlier = make([]store.Interval, n)
			for i := range m.Earlier {
				m.Earlier[i] = store.Interval{JoinedSeq: d.u64(), LeftSeq: d.u64()}
			}
		}
		m.InvitedSeq, m.InvitedBy, m.ChangedSeq = d.u64(), d.str(), d.u64()
	}
	return m, d.done()
}

// messageV2 is the version of a message value with revision fields (Target, TargetID, EditedAt,
// DeletedAt, HiddenFor, RevisedSeq) after the version 1 fields. A message without any is still
// written as version 1.
const messageV2 = 2

func encodeMessage(m store.Message) []byte {
	e := newEnc()
	revised := m.Target != 0 || m.TargetID != "" || !m.EditedAt.IsZero() || !m.DeletedAt.IsZero() || len(m.HiddenFor) > 0 || m.RevisedSeq != 0
	if revised {
		e[0] = messageV2
	}
	e = e.str(m.ConversationID).u64(m.Seq).str(m.ID).str(m.Kind).str(m.SenderID).
		str(m.SenderDevice).str(m.ClientMsgID).str(m.Text).raw(m.Member).time(m.SentAt)
	if !revised {
		return e
	}
	e = e.u64(m.Target).str(m.TargetID).optTime(m.EditedAt).optTime(m.DeletedAt).u64(uint64(len(m.HiddenFor)))
	for _, u := range m.HiddenFor {
		e = e.str(u)
	}
	return e.u64(m.RevisedSeq)
}

func decodeMessage(b []byte) (store.Message, error) {
	v2 := len(b) > 0 && b[0] == messageV2
	if v2 {
		b = append([]byte{valueV1}, b[1:]...)
	}
	d := newDec(b)
	m := store.Message{ConversationID: d.str(), Seq: d.u64(), ID: d.str(), Kind: d.str(), SenderID: d.str(),
		SenderDevice: d.str(), ClientMsgID: d.str(), Text: d.str(), Member: d.bytes(), SentAt: d.time()}
	if v2 {
		m.Target, m.TargetID, m.EditedAt, m.DeletedAt = d.u64(), d.str(), d.optTime(), d.optTime()
		n := d.u64()
		if n > uint64(len(b)) { // each user takes at least one byte
			return store.Message{}, fmt.Errorf("%d hidden users: %w", n, errCorrupt)
		}
		for i := uint64(0); i < n && d.err == nil; i++ {
			m.HiddenFor = append(m.HiddenFor, d.str())
		}
		m.RevisedSeq = d.u64()
	}
	return m, d.done()
}

// encodeRef is the value of the cmid/ and mid/ indexes: where a message lives.
func encodeRef(conversationID string, seq uint64) []byte {
	return newEnc().str(conversationID).u64(seq)
}

func decodeRef(b []byte) (conversationID string, seq uint64, err error) {
	d := newDec(b)
	conversationID, seq = d.str(), d.u64()
	return conversationID, seq, d.done()
}

func encodeDevice(v store.Device) []byte {
	return newEnc().str(v.UserID).str(v.DeviceID).str(v.Platform).time(v.CreatedAt).time(v.LastSeen)
}

func decodeDevice(b []byte) (store.Device, error) {
	d := newDec(b)
	v := store.Device{UserID: d.str(), DeviceID: d.str(), Platform: d.str(), CreatedAt: d.time(), LastSeen: d.time()}
	return v, d.done()
}

func encodePushToken(t store.PushToken) []byte {
	return newEnc().str(t.UserID).str(t.DeviceID).str(t.Platform).str(t.Token).time(t.UpdatedAt)
}

func decodePushToken(b []byte) (store.PushToken, error) {
	d := newDec(b)
	t := store.PushToken{UserID: d.str(), DeviceID: d.str(), Platform: d.str(), Token: d.str(), UpdatedAt: d.time()}
	return t, d.done()
}

func encodeWatermark(w store.Watermark) []byte {
	return newEnc().str(w.ConversationID).str(w.UserID).u64(w.Delivered).u64(w.Read)
}

func decodeWatermark(b []byte) (store.Watermark, error) {
	d := newDec(b)
	w := store.Watermark{ConversationID: d.str(), UserID: d.str(), Delivered: d.u64(), Read: d.u64()}
	return w, d.done()
}

func encodeSession(v store.Session) []byte {
	return newEnc().str(v.ID).str(v.UserID).raw(v.RefreshHash).str(v.UserAgent).
		time(v.CreatedAt).time(v.LastUsed).time(v.RevokedAt)
}

func decodeSession(b []byte) (store.Session, error) {
	d := newDec(b)
	v := store.Session{ID: d.str(), UserID: d.str(), RefreshHash: d.bytes(), UserAgent: d.str(),
		CreatedAt: d.time(), LastUsed: d.time(), RevokedAt: d.time()}
	return v, d.done()
}
