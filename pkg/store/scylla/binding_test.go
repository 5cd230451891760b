package scylla

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/scylladb/gocqlx/v3"
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
