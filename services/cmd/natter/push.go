package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/consumer"
	"github.com/natter-chat/natter/pkg/natsx"
	"github.com/natter-chat/natter/services/push"
	"github.com/natter-chat/natter/services/recovery"
	"github.com/natter-chat/natter/streams"
)

const pushUsage = `Usage:
  natter push why --user U --message M [--nats-url nats://127.0.0.1:4222]
      explain, from the push ledger, why user U did (or did not) get a push for message M
  natter push redrive [--user U] [--from-seq N --to-seq N | --since T --until T] [--apply]
      send the push requests kept in PUSH_DEAD to the push service again (a dry run without --apply)
`

// pushWhyUsage heads natter push why -h, above the flags.
const pushWhyUsage = `Usage: natter push why --user U --message M [flags]

Explains, from the push ledger, why user U did (or did not) get a push for message M.

Flags:
`

// pushFlags registers the push component's flags of natter run.
func pushFlags(fs *flag.FlagSet, c *push.Config) {
	fs.StringVar(&c.CredentialsFile, "fcm-credentials", c.CredentialsFile, "Firebase service-account JSON file for FCM; empty: pushes are logged, not sent")
	fs.StringVar(&c.ProjectID, "fcm-project", c.ProjectID, "Firebase project id (default: the project_id of --fcm-credentials)")
	fs.IntVar(&c.MaxAttempts, "push-max-attempts", c.MaxAttempts, "attempts of a push that keeps failing (429, 5xx, network) before it goes to the PUSH_DEAD stream")
	fs.IntVar(&c.Workers, "push-workers", c.Workers, "pushes sent in parallel")
}

// pushCmd runs the push operator commands.
func pushCmd(args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, pushUsage)
		return errors.New("push: a subcommand is required")
	}
	switch args[0] {
	case "why":
		return pushWhy(args[1:], os.Stdout)
	case "redrive":
		return pushRedrive(args[1:], os.Stdout)
	case "help", "-h", "--help":
		fmt.Print(pushUsage)
		return nil
	}
	fmt.Fprint(os.Stderr, pushUsage)
	return fmt.Errorf("push: unknown subcommand %q", args[0])
}

// pushWhy prints the push ledger of one user and message with an explanation.
func pushWhy(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("push why", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), pushWhyUsage)
		fs.PrintDefaults()
	}
	user := fs.String("user", "", "user id (required)")
	message := fs.String("message", "", "message id (required)")
	natsURL := fs.String("nats-url", "nats://127.0.0.1:4222", "NATS of the natter deployment (the default is the embedded server of natter run)")
	timeout := fs.Duration("timeout", 10*time.Second, "give up after this long")
	var client natsx.ClientConfig
	completeNATS := natsClientFlags(fs, &client)
	if err := envFlags(fs); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *user == "" || *message == "" {
		return errors.New("push why: --user and --message are required")
	}
	completeNATS()
	natsOpts, err := client.Options()
	if err != nil {
		return fmt.Errorf("push why: %w", err)
	}
	nc, err := natsx.Connect(*natsURL, "natter push why", nil, zap.NewNop(), natsOpts...)
	if err != nil {
		return fmt.Errorf("push why: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("push why: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	ledger, err := push.OpenLedger(ctx, js)
	if err != nil {
		return fmt.Errorf("push why: %w", err)
	}
	entries, err := ledger.Entries(ctx, *user, *message)
	if err != nil {
		return fmt.Errorf("push why: %w", err)
	}
	_, err = fmt.Fprint(out, push.Explain(*user, *message, entries))
	return err
}

const pushRedriveUsage = `Usage: natter push redrive [flags]

Sends the push requests kept in PUSH_DEAD (those that failed every attempt, e.g. while FCM was
down) to the push service again, in order, each published once to push.<user> and then removed
from PUSH_DEAD; a request that fails again goes back to PUSH_DEAD. Without --apply it only
counts them. Resumable: run it again after Ctrl-C.

Flags:
`

// pushRedrive republishes dead push requests onto PUSH.
func pushRedrive(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("push redrive", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), pushRedriveUsage); fs.PrintDefaults() }
	user := fs.String("user", "", "only this user's requests")
	var r recovery.Range
	fs.Uint64Var(&r.FromSeq, "from-seq", 0, "first PUSH_DEAD seq (default: the first)")
	fs.Uint64Var(&r.ToSeq, "to-seq", 0, "last PUSH_DEAD seq (default: the last)")
	since := fs.String("since", "", "requests dead-lettered at or after this time (RFC 3339)")
	until := fs.String("until", "", "requests dead-lettered at or before this time (RFC 3339)")
	apply := fs.Bool("apply", false, "send them (without it: count only)")
	natsURL := fs.String("nats-url", defaultNATSURL, "NATS of the natter deployment (the default is the embedded server of natter run)")
	if err := envFlags(fs); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if r.Since, r.Until, err = parseRange(*since, *until); err != nil {
		return err
	}
	ctx, cancel := signalContext(0)
	defer cancel()
	b, err := openBus(*natsURL, "", "natter push redrive")
	if err != nil {
		return fmt.Errorf("push redrive: %w", err)
	}
	defer b.close()
	dead, err := b.js.Stream(ctx, streams.PushDeadStream)
	if err != nil {
		return fmt.Errorf("push redrive: %w", err)
	}
	sent, skipped := 0, 0
	// Without --apply the target only decodes and counts.
	target := recovery.Target{Apply: func(ctx context.Context, _ string, seq uint64, data []byte) error {
		var dl streams.PushDeadLetter
		if err := json.Unmarshal(data, &dl); err != nil {
			return consumer.Permanent(fmt.Errorf("dead letter at %d: %w", seq, err))
		}
		if *user != "" && dl.Request.UserID != *user {
			skipped++
			return nil
		}
		sent++
		if !*apply {
			return nil
		}
		body, err := dl.Request.Encode()
		if err != nil {
			return consumer.Permanent(fmt.Errorf("dead letter at %d: %w", seq, err))
		}
		// A redrive id of its own: a second redrive of the same dead letter inside the
		// duplicate window (the letter not deleted yet) publishes nothing new.
		if _, err := b.js.Publish(ctx, streams.PushSubject(dl.Request.UserID), body,
			jetstream.WithMsgID(fmt.Sprintf("redrive:%s:%d", streams.PushDeadStream, seq))); err != nil {
			return fmt.Errorf("republish dead letter %d: %w", seq, err)
		}
		if err := dead.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("remove dead letter %d: %w", seq, err)
		}
		return nil
	}}
	opts := recovery.Options{Range: r}
	if *apply {
		opts.PositionFile = filepath.Join(os.TempDir(), "natter-push-redrive.json")
	}
	res, err := recovery.Run(ctx, b.js, b.nc, streams.PushDeadStream, target, opts)
	if err != nil {
		return fmt.Errorf("push redrive: %w", err)
	}
	verb := "would send (dry run; --apply sends)"
	if *apply {
		verb = "sent"
	}
	fmt.Fprintf(out, "push redrive: %d dead push requests in range, %s %d, %d of other users, %d unreadable\n",
		res.Events, verb, sent, skipped, res.Rejected)
	return nil
}
