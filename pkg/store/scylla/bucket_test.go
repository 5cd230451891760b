package scylla

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/natter-chat/natter/pkg/store"
)

func TestBucketOf(t *testing.T) {
	cases := []struct {
		seq, size uint64
		want      int64
	}{
		{1, DefaultBucketSize, 0},
		{1<<20 - 1, DefaultBucketSize, 0},
		{1 << 20, DefaultBucketSize, 1},
		{1<<20 + 1, DefaultBucketSize, 1},
		{1<<21 - 1, DefaultBucketSize, 1},
		{1 << 21, DefaultBucketSize, 2},
		{1000003, DefaultBucketSize, 0},
		{1 << 52, DefaultBucketSize, 1 << 32},
		{math.MaxInt64, DefaultBucketSize, math.MaxInt64 >> 20},
		{9, 10, 0}, {10, 10, 1}, {19, 10, 1}, {20, 10, 2},
		{5, 1, 5},
	}
	for _, c := range cases {
		if got := bucketOf(c.seq, c.size); got != c.want {
			t.Errorf("bucketOf(%d, %d) = %d, want %d", c.seq, c.size, got, c.want)
		}
	}
}

func TestPlanPage(t *testing.T) {
	const size = 10
	cases := []struct {
		page  store.Page
		want  plan
		empty bool
	}{
		{store.Page{Limit: 5}, plan{limit: 5}, false},
		{store.Page{Before: 1, Limit: 5}, plan{limit: 5}, true},
		{store.Page{Before: 2, Limit: 5}, plan{bounded: true, first: 0, seqOp: "<", seqBound: 2, limit: 5}, false},
		// Before 20 wants seqs <= 19: the walk starts in bucket 1, not in the empty part of 2.
		{store.Page{Before: 20, Limit: 5}, plan{bounded: true, first: 1, seqOp: "<", seqBound: 20, limit: 5}, false},
		{store.Page{Before: 21, Limit: 5}, plan{bounded: true, first: 2, seqOp: "<", seqBound: 21, limit: 5}, false},
		// Every storable seq is below these: the newest page.
		{store.Page{Before: math.MaxInt64 + 1, Limit: 5}, plan{limit: 5}, false},
		{store.Page{Before: math.MaxUint64, Limit: 5}, plan{limit: 5}, false},
		{store.Page{Before: math.MaxInt64, Limit: 5}, plan{bounded: true, first: (math.MaxInt64 - 1) / size, seqOp: "<", seqBound: math.MaxInt64, limit: 5}, false},
		// After 9 wants seqs >= 10: the walk starts in bucket 1.
		{store.Page{After: 9, Limit: 5}, plan{asc: true, bounded: true, first: 1, seqOp: ">", seqBound: 9, limit: 5}, false},
		{store.Page{After: 8, Limit: 5}, plan{asc: true, bounded: true, first: 0, seqOp: ">", seqBound: 8, limit: 5}, false},
		{store.Page{After: math.MaxInt64 - 1, Limit: 5}, plan{asc: true, bounded: true, first: math.MaxInt64 / size, seqOp: ">", seqBound: math.MaxInt64 - 1, limit: 5}, false},
		{store.Page{After: math.MaxInt64, Limit: 5}, plan{limit: 5}, true},
		{store.Page{After: math.MaxUint64, Limit: 5}, plan{limit: 5}, true},
	}
	for _, c := range cases {
		got, empty := planPage(c.page, size)
		if empty != c.empty || (!empty && got != c.want) {
			t.Errorf("planPage(%+v) = %+v, empty=%v; want %+v, empty=%v", c.page, got, empty, c.want, c.empty)
		}
	}
}

// fakeSource is a conversation in memory, bucketed like the store, that records every query.
type fakeSource struct {
	size    uint64
	seqs    []uint64       // ascending
	extra   []int64        // buckets indexed but empty (a crash between index and message)
	visited []int64        // buckets read by rows, in order
	asked   map[int64]int  // limit asked of each bucket
	queries map[string]int // "buckets" or "rows" -> count
}

func (f *fakeSource) bucketList(pl plan) []int64 {
	var bs []int64
	for _, s := range f.seqs {
		bs = append(bs, bucketOf(s, f.size))
	}
	bs = append(bs, f.extra...)
	slices.Sort(bs)
	bs = slices.Compact(bs)
	var out []int64
	for _, b := range bs {
		if !pl.bounded || (pl.asc && b >= pl.first) || (!pl.asc && b <= pl.first) {
			out = append(out, b)
		}
	}
	if !pl.asc {
		slices.Reverse(out)
	}
	return out
}

type sliceIter struct{ bs []int64 }

func (i *sliceIter) next() (int64, bool) {
	if len(i.bs) == 0 {
		return 0, false
	}
	b := i.bs[0]
	i.bs = i.bs[1:]
	return b, true
}

func (i *sliceIter) close() error { return nil }

func (f *fakeSource) buckets(_ context.Context, _ string, pl plan) bucketIter {
	f.queries["buckets"]++
	return &sliceIter{bs: f.bucketList(pl)}
}

// inBucket lists the seqs of bucket that pass pl's bound, ascending.
func (f *fakeSource) inBucket(bucket int64, pl plan) []uint64 {
	var out []uint64
	for _, s := range f.seqs {
		if bucketOf(s, f.size) == bucket &&
			(pl.seqOp != "<" || int64(s) < pl.seqBound) && (pl.seqOp != ">" || int64(s) > pl.seqBound) {
			out = append(out, s)
		}
	}
	return out
}

func (f *fakeSource) rows(_ context.Context, conv string, bucket int64, pl plan, limit int) ([]store.Message, error) {
	f.queries["rows"]++
	f.visited = append(f.visited, bucket)
	f.asked[bucket] = limit
	var out []store.Message
	for _, s := range f.inBucket(bucket, pl) {
		out = append(out, store.Message{ConversationID: conv, Seq: s})
	}
	if !pl.asc {
		slices.Reverse(out)
	}
	return out[:min(limit, len(out))], nil
}

func newFake(size uint64, seqs ...uint64) *fakeSource {
	slices.Sort(seqs)
	return &fakeSource{size: size, seqs: seqs, asked: map[int64]int{}, queries: map[string]int{}}
}

// modelPage is the contract of Messages over the full list of seqs.
func modelPage(seqs []uint64, p store.Page) []uint64 {
	var sel []uint64
	for _, s := range seqs {
		if (p.Before == 0 || s < p.Before) && s > p.After {
			sel = append(sel, s)
		}
	}
	if p.After != 0 {
		sel = sel[:min(len(sel), p.Limit)]
	} else {
		sel = sel[max(0, len(sel)-p.Limit):]
	}
	slices.Reverse(sel)
	return sel
}

func runPage(t *testing.T, f *fakeSource, p store.Page) []uint64 {
	t.Helper()
	p, err := p.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	pl, empty := planPage(p, f.size)
	if empty {
		return nil
	}
	ms, err := walk(context.Background(), f, "c1", pl)
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for _, m := range ms {
		got = append(got, m.Seq)
	}
	return got
}

// TestWalkVisits checks which buckets a page reads: only indexed ones, in order, starting at the
// page's bound, and no more once the page is full.
func TestWalkVisits(t *testing.T) {
	seqs := []uint64{3, 7, 12, 25, 26, 27, 41, 1000003}
	cases := []struct {
		page    store.Page
		want    []uint64
		visited []int64
		asked   []int // limit asked of each visited bucket
	}{
		{store.Page{Limit: 2}, []uint64{1000003, 41}, []int64{100000, 4}, []int{2, 1}},
		{store.Page{Limit: 4}, []uint64{1000003, 41, 27, 26}, []int64{100000, 4, 2}, []int{4, 3, 2}},
		{store.Page{Before: 27, Limit: 2}, []uint64{26, 25}, []int64{2}, []int{2}},
		{store.Page{Before: 27, Limit: 3}, []uint64{26, 25, 12}, []int64{2, 1}, []int{3, 1}},
		{store.Page{Before: 21, Limit: 3}, []uint64{12, 7, 3}, []int64{2, 1, 0}, []int{3, 3, 2}},
		{store.Page{Before: 20, Limit: 3}, []uint64{12, 7, 3}, []int64{1, 0}, []int{3, 2}},
		// The bound's own bucket is read even if nothing in it is below the bound.
		{store.Page{Before: 1000003, Limit: 1}, []uint64{41}, []int64{100000, 4}, []int{1, 1}},
		{store.Page{After: 7, Limit: 3}, []uint64{26, 25, 12}, []int64{0, 1, 2}, []int{3, 3, 2}},
		{store.Page{After: 9, Limit: 3}, []uint64{26, 25, 12}, []int64{1, 2}, []int{3, 2}},
		{store.Page{After: 41, Limit: 50}, []uint64{1000003}, []int64{4, 100000}, []int{50, 50}},
		{store.Page{After: 1000003, Limit: 50}, nil, []int64{100000}, []int{50}},
		{store.Page{Before: 1}, nil, nil, nil},
		{store.Page{After: math.MaxUint64}, nil, nil, nil},
	}
	for _, c := range cases {
		f := newFake(10, seqs...)
		got := runPage(t, f, c.page)
		if !slices.Equal(got, c.want) {
			t.Errorf("page %+v = %v, want %v", c.page, got, c.want)
		}
		if !slices.Equal(f.visited, c.visited) {
			t.Errorf("page %+v visited buckets %v, want %v", c.page, f.visited, c.visited)
		}
		for i, b := range c.visited {
			if i < len(c.asked) && f.asked[b] != c.asked[i] {
				t.Errorf("page %+v asked bucket %d for %d rows, want %d", c.page, b, f.asked[b], c.asked[i])
			}
		}
		if len(c.visited) > 0 && f.queries["buckets"] != 1 {
			t.Errorf("page %+v read the bucket index %d times, want once", c.page, f.queries["buckets"])
		}
	}
}

// TestWalkEmptyIndexedBucket: a bucket indexed by an insert that crashed before its message
// costs one read and changes nothing.
func TestWalkEmptyIndexedBucket(t *testing.T) {
	f := newFake(10, 3, 41)
	f.extra = []int64{2, 7}
	if got := runPage(t, f, store.Page{Limit: 2}); !slices.Equal(got, []uint64{41, 3}) {
		t.Errorf("page = %v, want [41 3]", got)
	}
	if want := []int64{7, 4, 2, 0}; !slices.Equal(f.visited, want) {
		t.Errorf("visited %v, want %v", f.visited, want)
	}
}

// TestWalkModel compares random pages of random sparse conversations with the contract, and
// checks that a walk reads exactly the buckets it needs.
func TestWalkModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, size := range []uint64{1, 7, 1 << 10, DefaultBucketSize} {
		for range 30 {
			var seqs []uint64
			seq := uint64(rng.IntN(5) + 1)
			for range rng.IntN(300) {
				seqs = append(seqs, seq)
				switch rng.IntN(4) {
				case 0:
					seq += 1
				case 1:
					seq += uint64(rng.IntN(int(size) + 1))
				default:
					seq += uint64(rng.Int64N(1 << 36))
				}
			}
			for range 30 {
				p := store.Page{Limit: 1 + rng.IntN(store.MaxPageLimit)}
				if len(seqs) > 0 {
					b := seqs[rng.IntN(len(seqs))] + uint64(rng.IntN(3)) - 1
					switch rng.IntN(3) {
					case 0:
						p.Before = max(b, 1)
					case 1:
						p.After = b
					}
				}
				f := newFake(size, slices.Clone(seqs)...)
				got := runPage(t, f, p)
				want := modelPage(seqs, p)
				if !slices.Equal(got, want) {
					t.Fatalf("size %d, page %+v: got %v, want %v", size, p, got, want)
				}
				// The walk reads the indexed buckets in order and stops at the first one that
				// fills the page.
				// Only the first bucket (the one holding the bound) can hold nothing in range.
				var need []int64
				if pl, empty := planPage(p, size); !empty {
					n := 0
					for _, b := range f.bucketList(pl) {
						if n >= p.Limit {
							break
						}
						need = append(need, b)
						n += len(f.inBucket(b, pl))
					}
					for i, b := range f.visited {
						if i > 0 && len(f.inBucket(b, pl)) == 0 {
							t.Fatalf("size %d, page %+v: read bucket %d, which has nothing in range", size, p, b)
						}
					}
				}
				if !slices.Equal(f.visited, need) {
					t.Fatalf("size %d, page %+v: visited %v, want %v", size, p, f.visited, need)
				}
			}
		}
	}
}
