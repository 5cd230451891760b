package main

import (
	"flag"

	"github.com/natter-chat/natter/pkg/natsx"
)

// natsClientFlags registers how a command authenticates to an external NATS and secures the
// connection (docs/security.md). The returned function completes c after parsing: with
// --nats-user U and no --nats-inbox-prefix, replies come on _INBOX.U, the inbox the user's
// permissions in deploy/nats allow.
func natsClientFlags(fs *flag.FlagSet, c *natsx.ClientConfig) func() {
	fs.StringVar(&c.CAFile, "nats-ca", "", "connect to NATS over TLS, trusting the CAs in this PEM file")
	fs.StringVar(&c.CertFile, "nats-cert", "", "client certificate (PEM) presented to NATS, with --nats-key")
	fs.StringVar(&c.KeyFile, "nats-key", "", "key file (PEM) of --nats-cert")
	fs.StringVar(&c.User, "nats-user", "", "NATS user name (with --nats-password, best given as NATTER_NATS_PASSWORD)")
	fs.StringVar(&c.Password, "nats-password", "", "NATS password of --nats-user")
	fs.StringVar(&c.CredsFile, "nats-creds", "", "NATS credentials file (user JWT and nkey seed) instead of --nats-user")
	fs.StringVar(&c.NkeyFile, "nats-nkey", "", "NATS nkey seed file instead of --nats-user")
	fs.StringVar(&c.InboxPrefix, "nats-inbox-prefix", "", "subject prefix of this process's NATS replies (default _INBOX.<nats-user> with --nats-user, else _INBOX)")
	return func() {
		if c.InboxPrefix == "" && c.User != "" {
			c.InboxPrefix = natsx.UserInbox(c.User)
		}
	}
}
