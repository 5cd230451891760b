package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/natsx"
	"github.com/natter-chat/natter/services/push"
)

const pushUsage = `Usage:
  natter push why --user U --message M [--nats-url nats://127.0.0.1:4222]
      explain, from the push ledger, why user U did (or did not) get a push for message M
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
