package wire

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// Client asks the search process over NATS. It holds no state but the connection, which the
// caller keeps owning.
type Client struct {
	nc      *nats.Conn
	timeout time.Duration
}

// NewClient returns a client; timeout bounds a call whose context has no deadline (0: 10 s).
func NewClient(nc *nats.Conn, timeout time.Duration) *Client {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return &Client{nc: nc, timeout: timeout}
}

// Search runs a query.
func (c *Client) Search(ctx context.Context, q Query) (Result, error) {
	if err := q.Validate(); err != nil {
		return Result{}, err
	}
	r, err := c.call(ctx, SubjectQuery, q)
	if err != nil {
		return Result{}, err
	}
	if r.Result == nil {
		return Result{}, errors.New("search: reply without a result")
	}
	return *r.Result, nil
}

// Status reports how far the index is.
func (c *Client) Status(ctx context.Context) (Status, error) { return c.status(ctx, SubjectStatus) }

// Rebuild drops the index and has it rebuilt from a replay of CHAT; it returns at once with the
// status of the rebuild's start (the search process keeps answering, from what it has indexed).
func (c *Client) Rebuild(ctx context.Context) (Status, error) { return c.status(ctx, SubjectRebuild) }

func (c *Client) status(ctx context.Context, subject string) (Status, error) {
	r, err := c.call(ctx, subject, struct{}{})
	if err != nil {
		return Status{}, err
	}
	if r.Status == nil {
		return Status{}, errors.New("search: reply without a status")
	}
	return *r.Status, nil
}

func (c *Client) call(ctx context.Context, subject string, req any) (Reply, error) {
	data, err := json.Marshal(req)
	if err != nil {
		return Reply{}, fmt.Errorf("search: encode request: %w", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	msg, err := c.nc.RequestWithContext(ctx, subject, data)
	switch {
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return Reply{}, fmt.Errorf("%s: %w (%w)", subject, ErrUnavailable, err)
	case err != nil:
		return Reply{}, fmt.Errorf("%s: %w", subject, err)
	}
	var r Reply
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		return Reply{}, fmt.Errorf("%s: decode reply: %w", subject, err)
	}
	if r.Error != nil {
		return Reply{}, r.Error
	}
	return r, nil
}
