package gateway

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Batches written corked and frames written through at the same time, as the session writer and
// catch-up do, reach the client whole, each exactly once, and in each writer's order.
func TestCorkedBatchesAndDirectWritesKeepEveryFrameInOrder(t *testing.T) {
	const batches, perBatch, direct = 200, 25, 2000
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &corkingWriter{ResponseWriter: w}
		conn, err := websocket.Accept(cw, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
		if err != nil {
			t.Error(err)
			return
		}
		ctx := context.Background()
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { // the session writer
			defer wg.Done()
			for b := range batches {
				cw.conn.cork()
				for i := range perBatch {
					if err := conn.Write(ctx, websocket.MessageText, fmt.Appendf(nil, "A %d %s", b*perBatch+i, strings.Repeat("a", b))); err != nil {
						t.Error(err)
						return
					}
				}
				if err := cw.conn.uncork(5 * time.Second); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		go func() { // catch-up, writing through
			defer wg.Done()
			for j := range direct {
				if err := conn.Write(ctx, websocket.MessageText, fmt.Appendf(nil, "B %d", j)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		wg.Wait()
		_ = conn.Close(websocket.StatusNormalClosure, "")
	}))
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	next := map[string]int{"A": 0, "B": 0}
	for next["A"] < batches*perBatch || next["B"] < direct {
		_, data, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("after A %d, B %d: %v", next["A"], next["B"], err)
		}
		var who string
		var n int
		if _, err := fmt.Sscanf(string(data), "%s %d", &who, &n); err != nil || n != next[who] {
			t.Fatalf("got %.40q, want %s %d", data, who, next[who])
		}
		next[who]++
	}
}
