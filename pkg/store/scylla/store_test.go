package scylla

import (
	"math"
	"testing"
	"time"
)

func TestMarkTimestamp(t *testing.T) {
	prev := int64(-1)
	for _, mark := range []uint64{1, 2, 1 << 32, 1<<40 + 7, markCap - 1, markCap, markCap + 1, 1 << 60, math.MaxInt64} {
		ts := markTimestamp(mark)
		if ts < prev {
			t.Errorf("markTimestamp(%d) = %d, below the timestamp of a smaller mark", mark, ts)
		}
		if mark <= markCap && ts != int64(mark) {
			t.Errorf("markTimestamp(%d) = %d, want the mark itself", mark, ts)
		}
		if ts > markCap {
			t.Errorf("markTimestamp(%d) = %d, above the cap", mark, ts)
		}
		prev = ts
	}
	// The cap is in the past, so ScyllaDB's future-timestamp guard never rejects a mark.
	if capAt := time.UnixMicro(markCap); !capAt.Before(time.Now()) {
		t.Errorf("markCap is %s, not in the past", capAt)
	}
}

func TestMergeDevice(t *testing.T) {
	at := func(ms int64) int64 { return 1_700_000_000_000 + ms }
	old := deviceRow{UserID: "u", DeviceID: "d", Platform: "ios", CreatedAt: at(10), LastSeen: at(50)}
	cases := []struct {
		name string
		put  deviceRow
		want deviceRow
	}{
		{"older sighting", deviceRow{UserID: "u", DeviceID: "d", Platform: "ios", CreatedAt: at(10), LastSeen: at(20)}, old},
		{"newer sighting", deviceRow{UserID: "u", DeviceID: "d", Platform: "ios", CreatedAt: at(10), LastSeen: at(90)},
			deviceRow{UserID: "u", DeviceID: "d", Platform: "ios", CreatedAt: at(10), LastSeen: at(90)}},
		{"platform replaced, marks kept", deviceRow{UserID: "u", DeviceID: "d", Platform: "web", CreatedAt: at(30), LastSeen: at(5)},
			deviceRow{UserID: "u", DeviceID: "d", Platform: "web", CreatedAt: at(10), LastSeen: at(50)}},
		{"earlier creation", deviceRow{UserID: "u", DeviceID: "d", Platform: "ios", CreatedAt: at(1), LastSeen: at(50)},
			deviceRow{UserID: "u", DeviceID: "d", Platform: "ios", CreatedAt: at(1), LastSeen: at(50)}},
		{"zero creation", deviceRow{UserID: "u", DeviceID: "d", Platform: "ios", CreatedAt: zeroMS, LastSeen: at(50)}, old},
	}
	for _, c := range cases {
		if got := mergeDevice(old, c.put); got != c.want {
			t.Errorf("%s: mergeDevice = %+v, want %+v", c.name, got, c.want)
		}
	}
	unset := deviceRow{UserID: "u", DeviceID: "d", Platform: "ios", CreatedAt: zeroMS, LastSeen: at(50)}
	if got := mergeDevice(unset, old); got != old {
		t.Errorf("merge over a zero creation time = %+v, want %+v", got, old)
	}
}

func TestTimes(t *testing.T) {
	for _, tm := range []time.Time{{}, time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.FixedZone("x", 3600)), time.UnixMilli(-1)} {
		got := fromMS(toMS(tm))
		if !got.Equal(tm.Truncate(time.Millisecond)) || got.Location() != time.UTC {
			t.Errorf("round trip of %v = %v", tm, got)
		}
	}
	if !fromMS(toMS(time.Time{})).IsZero() {
		t.Error("the zero time does not round-trip")
	}
}
