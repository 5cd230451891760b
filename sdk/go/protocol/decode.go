package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// Decode parses and validates one client frame. On failure the returned error frame says why and,
// when the frame got far enough to name one, carries its ref.
func Decode(raw []byte) (ClientFrame, *Error) {
	if len(raw) > MaxFrameBytes {
		return ClientFrame{}, Errorf(CodeFrameTooLarge, "frame has %d bytes, the limit is %d", len(raw), MaxFrameBytes)
	}
	if !utf8.Valid(raw) || hasLoneSurrogate(raw) {
		return ClientFrame{}, Errorf(CodeInvalidUTF8, "frame is not valid UTF-8")
	}
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return ClientFrame{}, Errorf(CodeInvalidJSON, "frame must be one JSON object")
	}
	// The common shape is read without reflection. Anything else goes to Unmarshal, which checks
	// the whole input is one JSON value before it fills f, so a syntax error means "not one JSON
	// object". A field of the wrong type does not stop it: it fills every other field and reports
	// the first bad one, so the frame's ref is known even then.
	f, ok := decodeFrameFast(trimmed)
	if !ok {
		if err := json.Unmarshal(trimmed, &f); err != nil {
			var typeErr *json.UnmarshalTypeError
			if !errors.As(err, &typeErr) {
				return ClientFrame{}, Errorf(CodeInvalidJSON, "frame is not valid JSON: %v", err)
			}
			return ClientFrame{}, Errorf(CodeInvalidFrame, "%s", wrongTypeMessage(typeErr.Field)).WithRef(refOf(f))
		}
	}
	if len(f.ID) > MaxIDBytes {
		return ClientFrame{}, Errorf(CodeInvalidFrame, "id longer than %d bytes", MaxIDBytes)
	}
	ref := refOf(f)
	switch f.Type {
	case TypePing:
		return f, nil
	case TypeSend:
		if e := validateSend(f); e != nil {
			return ClientFrame{}, e.WithRef(ref)
		}
		return f, nil
	case TypeEdit, TypeDelete:
		if e := validateRevision(f); e != nil {
			return ClientFrame{}, e.WithRef(ref)
		}
		return f, nil
	case TypeRead, TypeDelivered:
		if !ValidID(f.ConversationID) {
			return ClientFrame{}, Errorf(CodeInvalidFrame, "conversation_id must be 1-%d characters of [A-Za-z0-9_-]", MaxIDBytes).WithRef(ref)
		}
		if f.UpTo == 0 {
			return ClientFrame{}, Errorf(CodeInvalidFrame, "up_to must be the seq of an event").WithRef(ref)
		}
		return f, nil
	case TypeTyping:
		if !ValidID(f.ConversationID) {
			return ClientFrame{}, Errorf(CodeInvalidFrame, "conversation_id must be 1-%d characters of [A-Za-z0-9_-]", MaxIDBytes).WithRef(ref)
		}
		if f.State != TypingStart && f.State != TypingStop {
			return ClientFrame{}, Errorf(CodeInvalidFrame, "state must be %q or %q", TypingStart, TypingStop).WithRef(ref)
		}
		return f, nil
	case TypePresence:
		if len(f.UserIDs) == 0 || len(f.UserIDs) > MaxPresenceQuery {
			return ClientFrame{}, Errorf(CodeInvalidFrame, "user_ids must name 1-%d users", MaxPresenceQuery).WithRef(ref)
		}
		for _, u := range f.UserIDs {
			if !ValidID(u) {
				return ClientFrame{}, Errorf(CodeInvalidFrame, "user_ids must be ids of [A-Za-z0-9_-]").WithRef(ref)
			}
		}
		return f, nil
	case TypeAuth:
		if f.Token == "" || len(f.Token) > MaxTokenBytes {
			return ClientFrame{}, Errorf(CodeInvalidFrame, "token must be an access token of 1-%d bytes", MaxTokenBytes).WithRef(ref)
		}
		return f, nil
	case "":
		return ClientFrame{}, Errorf(CodeInvalidFrame, "frame has no type").WithRef(ref)
	default:
		return ClientFrame{}, Errorf(CodeUnknownType, "unknown frame type %q", truncate(f.Type, 32)).WithRef(ref)
	}
}

// refOf names a frame in the answer to it: its id, else (for a send) its client_msg_id if that
// is valid; empty when neither can be echoed.
func refOf(f ClientFrame) string {
	switch {
	case f.ID != "":
		if len(f.ID) > MaxIDBytes {
			return ""
		}
		return f.ID
	case (f.Type == TypeSend || f.Type == TypeEdit || f.Type == TypeDelete) && ValidID(f.ClientMsgID):
		return f.ClientMsgID
	}
	return ""
}

// wrongTypeMessages says, for each field of ClientFrame, what a value of it must be; the
// decoder's own wording names Go types, which mean nothing to a client.
var wrongTypeMessages = map[string]string{
	"type":            "type must be a string",
	"id":              "id must be a string",
	"client_msg_id":   "client_msg_id must be a string",
	"conversation_id": "conversation_id must be a string",
	"text":            "text must be a string",
	"resend":          "resend must be true or false",
	"up_to":           "up_to must be a whole number from 1 to 18446744073709551615 (the seq of an event), written without a fraction or exponent",
	"state":           "state must be a string",
	"user_ids":        "user_ids must be an array of strings",
	"token":           "token must be a string",
	"target_seq":      "target_seq must be a whole number from 1 to 18446744073709551615 (the seq of a message), written without a fraction or exponent",
	"for":             "for must be a string",
}

// wrongTypeMessage explains a value of the wrong type in field (a path as
// json.UnmarshalTypeError names it).
func wrongTypeMessage(field string) string {
	if m, ok := wrongTypeMessages[field]; ok {
		return m
	}
	return "a field has a value of the wrong type"
}

func validateSend(f ClientFrame) *Error {
	if !ValidID(f.ClientMsgID) {
		return Errorf(CodeInvalidFrame, "client_msg_id must be 1-%d characters of [A-Za-z0-9_-]", MaxIDBytes)
	}
	if !ValidID(f.ConversationID) {
		return Errorf(CodeInvalidFrame, "conversation_id must be 1-%d characters of [A-Za-z0-9_-]", MaxIDBytes)
	}
	return ValidateText(f.Text)
}

// validateRevision checks an edit or delete: the ids of a send, a target, and an edit's text or
// a delete's "for".
func validateRevision(f ClientFrame) *Error {
	if !ValidID(f.ClientMsgID) {
		return Errorf(CodeInvalidFrame, "client_msg_id must be 1-%d characters of [A-Za-z0-9_-]", MaxIDBytes)
	}
	if !ValidID(f.ConversationID) {
		return Errorf(CodeInvalidFrame, "conversation_id must be 1-%d characters of [A-Za-z0-9_-]", MaxIDBytes)
	}
	if f.TargetSeq == 0 {
		return Errorf(CodeInvalidFrame, "target_seq must be the seq of a message")
	}
	if f.Type == TypeEdit {
		if f.For != "" {
			return Errorf(CodeInvalidFrame, "for applies to delete only")
		}
		return ValidateText(f.Text)
	}
	if f.Text != "" {
		return Errorf(CodeInvalidFrame, "a delete has no text")
	}
	if f.For != "" && f.For != DeleteForEveryone && f.For != DeleteForMe {
		return Errorf(CodeInvalidFrame, "for must be %q or %q", DeleteForEveryone, DeleteForMe)
	}
	return nil
}

// ValidateText checks a message text: non-empty, valid UTF-8, at most MaxTextRunes code points.
func ValidateText(text string) *Error {
	if text == "" {
		return Errorf(CodeTextEmpty, "text is empty")
	}
	if !utf8.ValidString(text) {
		return Errorf(CodeInvalidUTF8, "text is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(text); n > MaxTextRunes {
		return Errorf(CodeTextTooLong, "text has %d characters, the limit is %d", n, MaxTextRunes)
	}
	return nil
}

// hasLoneSurrogate reports whether a JSON text contains a \uD800-\uDFFF escape that is not part
// of a high-low pair: encoding/json would silently turn it into U+FFFD.
func hasLoneSurrogate(raw []byte) bool {
	for i := 0; i+5 < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		if raw[i+1] != 'u' {
			i++ // skip the escaped character, so `\\u` is not read as an escape
			continue
		}
		r, ok := hex4(raw[i+2 : i+6])
		if !ok {
			continue
		}
		switch {
		case r >= 0xD800 && r <= 0xDBFF:
			if i+12 > len(raw) || raw[i+6] != '\\' || raw[i+7] != 'u' {
				return true
			}
			lo, ok := hex4(raw[i+8 : i+12])
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				return true
			}
			i += 11
		case r >= 0xDC00 && r <= 0xDFFF:
			return true
		default:
			i += 5
		}
	}
	return false
}

func hex4(b []byte) (rune, bool) {
	var r rune
	for _, c := range b {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c-'a') + 10
		case c >= 'A' && c <= 'F':
			r |= rune(c-'A') + 10
		default:
			return 0, false
		}
	}
	return r, true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
