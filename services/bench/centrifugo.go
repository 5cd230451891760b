package bench

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Centrifugo's client protocol (v2) in its JSON form, as far as `natter bench peers` needs it:
// commands are JSON objects with an id and one request ({"id":1,"connect":{...}}), replies carry
// the same id and a result or an error, and pushes ({"push":{"channel":...,"pub":{...}}}) have
// no id. The server may put several replies and pushes into one WebSocket frame, one JSON object
// per line. An empty object, {}, is the server's ping, and the client answers it with {}.
//
// Only what the bench sends and reads is here: connect with a token, subscribe (with recovery),
// publish. It is written against centrifugal/protocol's JSON encoding (field names and order
// from client.proto), not by importing it: natter's modules stay free of Centrifugo's.

// cfKind is what one line of a Centrifugo frame is.
type cfKind uint8

const (
	cfOther     cfKind = iota // a reply or push the fast path does not know: decode it
	cfPing                    // {}: answer with {}
	cfPublished               // {"id":N,"publish":{}}: a publish is accepted
	cfError                   // {"id":N,"error":{...}}
	cfPub                     // {"push":{"channel":...,"pub":{...}}}: a publication
	cfBad                     // not JSON this client can read
)

// cfLine is one line of a frame, read as far as the hot path needs.
type cfLine struct {
	Kind cfKind
	ID   uint32 // replies; 0 for pushes and pings
	// MsgID is the bench's client_msg_id inside a publication's data (cfPub), or nil.
	MsgID []byte
	Raw   []byte // the line itself
}

var (
	cfPushPub   = []byte(`{"push":{"channel":"`)
	cfIDPrefix  = []byte(`{"id":`)
	cfPublishOK = []byte(`"publish":{}}`)
	cfErrorKey  = []byte(`"error":{`)
	cfPingFrame = []byte(`{}`)
)

// cfLines calls fn for every non-empty line of a frame, in order.
func cfLines(frame []byte, fn func(line []byte)) {
	for len(frame) > 0 {
		line := frame
		if i := bytes.IndexByte(frame, '\n'); i >= 0 {
			line, frame = frame[:i], frame[i+1:]
		} else {
			frame = nil
		}
		line = bytes.TrimSpace(line)
		if len(line) > 0 {
			fn(line)
		}
	}
}

// parseCFLine classifies one line without decoding it, except for what is unusual.
func parseCFLine(line []byte) cfLine {
	l := cfLine{Raw: line}
	switch {
	case bytes.Equal(line, cfPingFrame):
		l.Kind = cfPing
	case bytes.HasPrefix(line, cfPushPub):
		// {"push":{"channel":"c","pub":{"data":{...},"info":{...},"offset":N}}}; the data is the
		// JSON the publisher sent, so the bench's client_msg_id is found as written.
		if bytes.Contains(line, []byte(`","pub":{`)) {
			l.Kind = cfPub
			l.MsgID = field(line, keyClientMsg)
		}
	case bytes.HasPrefix(line, cfIDPrefix):
		rest := line[len(cfIDPrefix):]
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		id, err := strconv.ParseUint(string(rest[:i]), 10, 32)
		if err != nil || i == len(rest) || rest[i] != ',' {
			l.Kind = cfBad
			return l
		}
		l.ID = uint32(id)
		switch rest = rest[i+1:]; {
		case bytes.Equal(rest, cfPublishOK):
			l.Kind = cfPublished
		case bytes.HasPrefix(rest, cfErrorKey):
			l.Kind = cfError
		}
	case len(line) == 0 || line[0] != '{':
		l.Kind = cfBad
	}
	return l
}

// cfReply is a reply or push decoded in full (connect and subscribe replies, disconnects,
// errors): the rare frames.
type cfReply struct {
	ID    uint32 `json:"id"`
	Error *struct {
		Code      uint32 `json:"code"`
		Message   string `json:"message"`
		Temporary bool   `json:"temporary"`
	} `json:"error"`
	Connect *struct {
		Client string `json:"client"`
		Ping   uint32 `json:"ping"`
		Pong   bool   `json:"pong"`
	} `json:"connect"`
	Subscribe *cfSubscribed `json:"subscribe"`
	Push      *struct {
		Channel    string `json:"channel"`
		Disconnect *struct {
			Code   uint32 `json:"code"`
			Reason string `json:"reason"`
		} `json:"disconnect"`
	} `json:"push"`
}

// cfSubscribed is a subscribe result: the stream position, and on a recovering subscribe the
// missed publications.
type cfSubscribed struct {
	Recoverable   bool   `json:"recoverable"`
	Epoch         string `json:"epoch"`
	Offset        uint64 `json:"offset"`
	Positioned    bool   `json:"positioned"`
	Recovered     bool   `json:"recovered"`
	WasRecovering bool   `json:"was_recovering"`
	Publications  []struct {
		Offset uint64 `json:"offset"`
	} `json:"publications"`
}

func decodeCFReply(line []byte) (cfReply, error) {
	var r cfReply
	err := json.Unmarshal(line, &r)
	return r, err
}

// appendCFConnect is a connect command with a connection token.
func appendCFConnect(b []byte, id uint32, token, name string) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendUint(b, uint64(id), 10)
	b = append(b, `,"connect":{"token":`...)
	b = strconv.AppendQuote(b, token)
	b = append(b, `,"name":`...)
	b = strconv.AppendQuote(b, name)
	return append(b, `}}`...)
}

// appendCFSubscribe is a subscribe command; with recovering it asks for what was published after
// offset in epoch.
func appendCFSubscribe(b []byte, id uint32, channel string, recovering bool, epoch string, offset uint64) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendUint(b, uint64(id), 10)
	b = append(b, `,"subscribe":{"channel":`...)
	b = strconv.AppendQuote(b, channel)
	if recovering {
		b = append(b, `,"recover":true,"epoch":`...)
		b = strconv.AppendQuote(b, epoch)
		b = append(b, `,"offset":`...)
		b = strconv.AppendUint(b, offset, 10)
	}
	return append(b, `}}`...)
}

// cfPublish builds publish commands into one channel: the data is {"text":...,
// "client_msg_id":...}, the same text and id a natter send frame carries.
type cfPublish struct {
	pre, mid, post []byte // {"id": <id> ,"publish":{..."client_msg_id":" <msg id> "}}}
}

func newCFPublish(channel, text string) cfPublish {
	p := cfPublish{pre: []byte(`{"id":`)}
	p.mid = append(p.mid, `,"publish":{"channel":`...)
	p.mid = strconv.AppendQuote(p.mid, channel)
	p.mid = append(p.mid, `,"data":{"text":`...)
	p.mid = strconv.AppendQuote(p.mid, text)
	p.mid = append(p.mid, `,"client_msg_id":"`...)
	p.post = []byte(`"}}}`)
	return p
}

func (p cfPublish) append(b []byte, id uint32, msg msgID) []byte {
	b = append(b, p.pre...)
	b = strconv.AppendUint(b, uint64(id), 10)
	b = append(b, p.mid...)
	b = appendMsgID(b, msg)
	return append(b, p.post...)
}

// cfToken is a Centrifugo connection token: HS256 over sub (the user) and exp, signed with
// the hmac_secret_key of the server's configuration.
func cfToken(secret []byte, user string, ttl time.Duration) (string, error) {
	now := time.Now()
	return jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject:   user,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}).SignedString(secret)
}
