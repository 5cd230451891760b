package bench

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// A Part of natter's process is named by the frames that mark its stacks: a sample belongs to the
// first part (in this order) with a frame whose function name contains one of its markers, so a
// persister write inside Pebble is the persister's and fanout's own call into nats.go is fanout's.
type Part struct {
	Name    string
	Markers []string
}

// NatterParts are the parts natter's CPU profiles are sorted into (performance.md's budgets).
var NatterParts = []Part{
	{"search (Bleve)", []string{"blevesearch", "services/search"}},
	{"persister with Pebble", []string{"services/persister", "cockroachdb/pebble"}},
	{"gateway read loops", []string{"gateway.(*session).readLoop", "gateway.(*session).handle"}},
	{"gateway writers", []string{"gateway.(*session).writer", "gateway.(*corkConn)"}},
	{"fanout", []string{"services/fanout"}},
	{"presence", []string{"services/presence"}},
	{"nats-server storing in JetStream", []string{"server.(*fileStore)", "server.(*msgBlock)", "server.(*stream).processJetStreamMsg", "server.(*stream).processInboundJetStreamMsg"}},
	{"nats-server consumers", []string{"server.(*consumer)"}},
	{"nats-server client connections", []string{"nats-server/v2/server.(*client)"}},
	{"nats-server, other", []string{"nats-server/v2"}},
	{"consumer kit", []string{"natter/pkg/consumer"}},
	{"nats.go", []string{"nats-io/nats.go", "nats-io/nats%2ego"}},
	{"collector", []string{"runtime.gcBgMarkWorker", "runtime.bgsweep", "runtime.bgscavenge", "runtime.gcAssistAlloc", "runtime.markroot"}},
	{"scheduler", []string{"runtime.schedule", "runtime.findRunnable", "runtime.mcall", "runtime.park_m"}},
}

// PartShare is one part's CPU in a profile.
type PartShare struct {
	Name string
	CPU  time.Duration
}

// SortProfile sorts the CPU of a pprof CPU profile (gzipped or not) into parts; what no part
// claims is "other". Every sample counts, whatever labels its goroutine carried (nats-server
// labels its streams' and consumers' goroutines). Parts are in descending CPU order.
func SortProfile(data []byte, parts []Part) ([]PartShare, time.Duration, error) {
	p, err := decodeProfile(data)
	if err != nil {
		return nil, 0, err
	}
	cpu := make([]time.Duration, len(parts)+1) // the last is "other"
	var total time.Duration
	for _, s := range p.samples {
		total += s.cpu
		cpu[p.partOf(s.locations, parts)] += s.cpu
	}
	out := make([]PartShare, 0, len(cpu))
	for i, d := range cpu {
		name := "other"
		if i < len(parts) {
			name = parts[i].Name
		}
		if d != 0 {
			out = append(out, PartShare{Name: name, CPU: d})
		}
	}
	slices.SortStableFunc(out, func(a, b PartShare) int { return cmp.Compare(b.CPU, a.CPU) })
	return out, total, nil
}

// FormatParts writes shares as a table, each with its share of total.
func FormatParts(w io.Writer, shares []PartShare, total time.Duration) {
	fmt.Fprintln(w, "| part | share | CPU (s) |")
	fmt.Fprintln(w, "|---|---|---|")
	for _, s := range shares {
		fmt.Fprintf(w, "| %s | %.1f %% | %.2f |\n", s.Name, 100*float64(s.CPU)/float64(total), s.CPU.Seconds())
	}
	fmt.Fprintf(w, "| total | 100 %% | %.2f |\n", total.Seconds())
}

// profile is what SortProfile needs of profile.proto: each sample's stack and CPU, and the
// function names of each location (several where calls were inlined).
type profile struct {
	samples   []sample
	locations map[uint64][]string // location id → function names, innermost first
}

type sample struct {
	locations []uint64 // innermost first
	cpu       time.Duration
}

// partOf is the index of the first part with a marker in the stack; len(parts) for none.
func (p *profile) partOf(stack []uint64, parts []Part) int {
	for i, part := range parts {
		for _, id := range stack {
			for _, fn := range p.locations[id] {
				for _, m := range part.Markers {
					if strings.Contains(fn, m) {
						return i
					}
				}
			}
		}
	}
	return len(parts)
}

var errNotCPUProfile = errors.New("not a CPU profile (no cpu/nanoseconds sample type)")

// decodeProfile reads the fields of profile.proto that SortProfile uses.
func decodeProfile(data []byte) (*profile, error) {
	if len(data) > 2 && data[0] == 0x1f && data[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("profile: %w", err)
		}
		if data, err = io.ReadAll(zr); err != nil {
			return nil, fmt.Errorf("profile: %w", err)
		}
	}
	var (
		strs      []string
		types     [][2]uint64 // sample types: type, unit (string indexes)
		rawSample [][]byte
		funcs     = map[uint64]uint64{}   // function id → name (string index)
		locLines  = map[uint64][]uint64{} // location id → function ids
	)
	err := fields(data, func(num protowire.Number, v []byte, _ uint64) error {
		switch num {
		case 1: // sample_type
			var t [2]uint64
			err := fields(v, func(n protowire.Number, _ []byte, x uint64) error {
				if n == 1 || n == 2 {
					t[n-1] = x
				}
				return nil
			})
			types = append(types, t)
			return err
		case 2: // sample
			rawSample = append(rawSample, v)
		case 4: // location
			var id uint64
			var fns []uint64
			err := fields(v, func(n protowire.Number, b []byte, x uint64) error {
				switch n {
				case 1:
					id = x
				case 4: // line
					return fields(b, func(n protowire.Number, _ []byte, x uint64) error {
						if n == 1 {
							fns = append(fns, x)
						}
						return nil
					})
				}
				return nil
			})
			locLines[id] = fns
			return err
		case 5: // function
			var id, name uint64
			err := fields(v, func(n protowire.Number, _ []byte, x uint64) error {
				switch n {
				case 1:
					id = x
				case 2:
					name = x
				}
				return nil
			})
			funcs[id] = name
			return err
		case 6: // string_table
			strs = append(strs, string(v))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	str := func(i uint64) string {
		if i < uint64(len(strs)) {
			return strs[i]
		}
		return ""
	}
	cpuAt := -1
	for i, t := range types {
		if str(t[0]) == "cpu" && str(t[1]) == "nanoseconds" {
			cpuAt = i
		}
	}
	if cpuAt < 0 {
		return nil, errNotCPUProfile
	}
	p := &profile{locations: make(map[uint64][]string, len(locLines))}
	for id, fns := range locLines {
		names := make([]string, len(fns))
		for i, f := range fns {
			names[i] = str(funcs[f])
		}
		p.locations[id] = names
	}
	for _, raw := range rawSample {
		var s sample
		var values []uint64
		err := fields(raw, func(n protowire.Number, b []byte, x uint64) error {
			switch n {
			case 1:
				if b == nil {
					s.locations = append(s.locations, x)
					return nil
				}
				return packed(b, func(x uint64) { s.locations = append(s.locations, x) })
			case 2:
				if b == nil {
					values = append(values, x)
					return nil
				}
				return packed(b, func(x uint64) { values = append(values, x) })
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if cpuAt < len(values) {
			s.cpu = time.Duration(values[cpuAt])
		}
		p.samples = append(p.samples, s)
	}
	return p, nil
}

// fields calls fn for each field of a protobuf message: b is a length-delimited field's bytes
// (nil for a varint, whose value is x); fixed-width fields are skipped.
func fields(data []byte, fn func(num protowire.Number, b []byte, x uint64) error) error {
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return fmt.Errorf("profile: %w", protowire.ParseError(n))
		}
		data = data[n:]
		var err error
		switch typ {
		case protowire.VarintType:
			x, m := protowire.ConsumeVarint(data)
			if m < 0 {
				return fmt.Errorf("profile: %w", protowire.ParseError(m))
			}
			data, err = data[m:], fn(num, nil, x)
		case protowire.BytesType:
			b, m := protowire.ConsumeBytes(data)
			if m < 0 {
				return fmt.Errorf("profile: %w", protowire.ParseError(m))
			}
			if b == nil {
				b = []byte{}
			}
			data, err = data[m:], fn(num, b, 0)
		default:
			m := protowire.ConsumeFieldValue(num, typ, data)
			if m < 0 {
				return fmt.Errorf("profile: %w", protowire.ParseError(m))
			}
			data = data[m:]
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// packed calls fn for each varint of a packed repeated field.
func packed(b []byte, fn func(uint64)) error {
	for len(b) > 0 {
		x, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return fmt.Errorf("profile: %w", protowire.ParseError(n))
		}
		fn(x)
		b = b[n:]
	}
	return nil
}
