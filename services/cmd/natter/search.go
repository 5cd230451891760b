package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/natsx"
	"github.com/natter-chat/natter/services/search/wire"
)

const searchUsage = `Usage:
  natter search status  [--nats-url nats://127.0.0.1:4222]
      how far the search index is behind CHAT
  natter search rebuild [--nats-url nats://127.0.0.1:4222]
      drop the search index and rebuild it from CHAT, showing progress; search keeps
      answering (from what is indexed so far) while it runs
`

// searchCmd runs the search operator commands. They talk to the running search process
// (natter run with target search) over NATS.
func searchCmd(args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, searchUsage)
		return errors.New("search: a subcommand is required")
	}
	switch args[0] {
	case "status", "rebuild":
		return searchRun(args[0], args[1:], os.Stdout)
	case "help", "-h", "--help":
		fmt.Print(searchUsage)
		return nil
	}
	fmt.Fprint(os.Stderr, searchUsage)
	return fmt.Errorf("search: unknown subcommand %q", args[0])
}

func searchRun(sub string, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("search "+sub, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), searchUsage+"\nFlags:\n")
		fs.PrintDefaults()
	}
	natsURL := fs.String("nats-url", "nats://127.0.0.1:4222", "NATS of the natter deployment (the default is the embedded server of natter run)")
	timeout := fs.Duration("timeout", time.Minute, "give up on one request to the search process after this long")
	if err := envFlags(fs); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	nc, err := natsx.Connect(*natsURL, "natter search "+sub, nil, zap.NewNop())
	if err != nil {
		return fmt.Errorf("search %s: %w", sub, err)
	}
	defer nc.Close()
	c := wire.NewClient(nc, *timeout)
	ctx := context.Background()
	if sub == "status" {
		st, err := c.Status(ctx)
		if err != nil {
			return fmt.Errorf("search status: %w", err)
		}
		printSearchStatus(out, st)
		return nil
	}
	st, err := c.Rebuild(ctx)
	if err != nil {
		return fmt.Errorf("search rebuild: %w", err)
	}
	fmt.Fprintf(out, "search index dropped; replaying CHAT seqs %d..%d\n", st.RebuildFrom, st.RebuildTo)
	if err := followRebuild(ctx, c, st, out, 500*time.Millisecond); err != nil {
		return fmt.Errorf("search rebuild: %w", err)
	}
	return nil
}

// followRebuild draws a progress bar of the replay until the index has caught up with the seq
// CHAT was at when the rebuild started.
func followRebuild(ctx context.Context, c *wire.Client, st wire.Status, out io.Writer, every time.Duration) error {
	from, to := st.RebuildFrom, st.RebuildTo
	if to == 0 || to < from {
		printSearchStatus(out, st)
		return nil
	}
	bar := progressbar.NewOptions64(int64(to-from+1),
		progressbar.OptionSetWriter(out),
		progressbar.OptionSetDescription("indexing CHAT"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("events"),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(out) }),
	)
	for {
		done := int64(0)
		if st.IndexedSeq >= from {
			done = int64(min(st.IndexedSeq, to) - from + 1)
		}
		_ = bar.Set64(done)
		if st.IndexedSeq >= to {
			_ = bar.Finish()
			printSearchStatus(out, st)
			return nil
		}
		time.Sleep(every)
		var err error
		if st, err = c.Status(ctx); err != nil {
			return err
		}
	}
}

func printSearchStatus(out io.Writer, st wire.Status) {
	fmt.Fprintf(out, "indexed up to seq %d of %d (%d events pending), %d messages in the index\n",
		st.IndexedSeq, st.HeadSeq, st.Pending, st.Documents)
}
