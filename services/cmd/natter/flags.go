package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/natter-chat/natter/streams"
)

// envFlags makes every flag of fs default to NATTER_<NAME> from the environment (dashes become
// underscores), applied before the command line so that flags win.
func envFlags(fs *flag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		name := "NATTER_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok && err == nil {
			if serr := f.Value.Set(v); serr != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, serr)
			}
		}
	})
	return err
}

// retentionFlags registers how long each stream keeps its events. 0 keeps them forever.
func retentionFlags(fs *flag.FlagSet, o *streams.Options) {
	fs.DurationVar(&o.ChatMaxAge, "chat-max-age", o.ChatMaxAge, "how long CHAT keeps events (0: forever); with backups it must exceed the backup interval, see docs/operations.md")
	fs.Int64Var(&o.ChatMaxBytes, "chat-max-bytes", o.ChatMaxBytes, "most bytes CHAT keeps, oldest events dropped first (-1: unlimited)")
	fs.DurationVar(&o.StateMaxAge, "state-max-age", o.StateMaxAge, "how long STATE keeps account, conversation, device and push-token events (0: forever, the default; a rebuild from the streams alone needs all of them)")
	fs.DurationVar(&o.PresenceMaxAge, "presence-max-age", o.PresenceMaxAge, "how long PRESENCE keeps connect/disconnect events (0: forever)")
	fs.DurationVar(&o.PushDeadMaxAge, "push-dead-max-age", o.PushDeadMaxAge, "how long PUSH_DEAD keeps push requests that failed every attempt (0: forever)")
}
