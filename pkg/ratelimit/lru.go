package ratelimit

import (
	"container/list"
	"time"
)

// lru maps keys to values for at most max keys, forgetting the least recently seen first, and
// forgetting keys unseen for idle as new ones arrive. Not safe for concurrent use.
type lru[V any] struct {
	max   int
	idle  time.Duration
	order *list.List // of *lruEntry[V], most recently seen first
	byKey map[string]*list.Element
}

type lruEntry[V any] struct {
	key  string
	val  V
	seen time.Time
}

func newLRU[V any](maxKeys int, idle time.Duration) *lru[V] {
	return &lru[V]{max: maxKeys, idle: idle, order: list.New(), byKey: map[string]*list.Element{}}
}

// get returns key's value, made by mk if key is not held, and marks it seen at now.
func (l *lru[V]) get(key string, now time.Time, mk func() V) V {
	if el, ok := l.byKey[key]; ok {
		e := el.Value.(*lruEntry[V])
		e.seen = now
		l.order.MoveToFront(el)
		return e.val
	}
	e := &lruEntry[V]{key: key, val: mk(), seen: now}
	l.byKey[key] = l.order.PushFront(e)
	l.evict(now)
	return e.val
}

// peek returns key's value without marking it seen.
func (l *lru[V]) peek(key string) (V, bool) {
	if el, ok := l.byKey[key]; ok {
		return el.Value.(*lruEntry[V]).val, true
	}
	var zero V
	return zero, false
}

func (l *lru[V]) delete(key string) {
	if el, ok := l.byKey[key]; ok {
		l.order.Remove(el)
		delete(l.byKey, key)
	}
}

func (l *lru[V]) len() int { return len(l.byKey) }

// evict drops the oldest entries while there are too many or the oldest is idle. The oldest
// is at the back, so idle entries go from the back, a few at each insert.
func (l *lru[V]) evict(now time.Time) {
	for back := l.order.Back(); back != nil; back = l.order.Back() {
		e := back.Value.(*lruEntry[V])
		if l.order.Len() <= l.max && now.Sub(e.seen) < l.idle {
			return
		}
		l.order.Remove(back)
		delete(l.byKey, e.key)
	}
}
