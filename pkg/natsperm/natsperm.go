// Package natsperm defines the least NATS permissions of each natter target (natter run
// --target) and renders them as nats-server users. It is the one definition behind
// deploy/nats/users.conf, docs/security.md and the test that runs every target with its user.
//
// Streams, buckets and consumers are created by an administrator (natter init); no target may
// create, change, purge or delete a stream, or create or delete a durable consumer other than
// its own (search drops and makes its consumer again to rebuild its index). What a target
// may do is publish the subjects it writes, use the JetStream API of the streams it reads and
// the consumers it pulls from (by name), and receive replies on its own inbox, _INBOX.<user>.
package natsperm

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/natter-chat/natter/pkg/store/remote"
	"github.com/natter-chat/natter/streams"
)

// Targets, as natter run names them.
const (
	Gateway   = "gateway"
	API       = "api"
	Persister = "persister"
	Fanout    = "fanout"
	Presence  = "presence"
	Push      = "push"
	Store     = "store"
	Search    = "search"
	// NATS (the embedded node) needs no client permissions.
	NATS = "nats"
)

// Targets are the targets that connect to NATS as clients, in the order the docs list them.
var Targets = []string{Gateway, API, Persister, Fanout, Presence, Push, Store, Search}

// Permissions are allow lists of subjects. Responses lets the user answer requests it received
// (the store server's replies) without naming the requesters' inboxes.
type Permissions struct {
	Publish   []string
	Subscribe []string
	Responses bool
}

// add merges o into p, keeping the lists sorted and without duplicates.
func (p *Permissions) add(o Permissions) {
	p.Publish = merge(p.Publish, o.Publish)
	p.Subscribe = merge(p.Subscribe, o.Subscribe)
	p.Responses = p.Responses || o.Responses
}

func merge(a, b []string) []string {
	out := append(slices.Clone(a), b...)
	sort.Strings(out)
	return slices.Compact(out)
}

func pub(subjects ...string) Permissions { return Permissions{Publish: subjects} }
func sub(subjects ...string) Permissions { return Permissions{Subscribe: subjects} }

const api = "$JS.API."

// streamRead: look a stream up and read messages from it by sequence or by subject.
func streamRead(stream string) Permissions {
	return pub(api+"STREAM.INFO."+stream, api+"STREAM.MSG.GET."+stream, api+"DIRECT.GET."+stream, api+"DIRECT.GET."+stream+".>")
}

// consumerInfo: read a durable consumer's state (its ack floor).
func consumerInfo(stream, consumer string) Permissions {
	return pub(api + "CONSUMER.INFO." + stream + "." + consumer)
}

// consumerPull: pull from a durable consumer and acknowledge what it delivers.
func consumerPull(stream, consumer string) Permissions {
	p := consumerInfo(stream, consumer)
	p.add(pub(api+"CONSUMER.MSG.NEXT."+stream+"."+consumer, "$JS.ACK."+stream+"."+consumer+".>"))
	return p
}

// consumerRemake: reset a durable consumer to its ack floor, and delete it and make it again
// (with another ack policy, or from the start for a rebuild): what its only puller does.
func consumerRemake(stream, consumer string) Permissions {
	c := stream + "." + consumer
	return pub(api+"CONSUMER.RESET."+c, api+"CONSUMER.DELETE."+c, api+"CONSUMER.CREATE."+c, api+"CONSUMER.CREATE."+c+".>")
}

// consentRead: follow consent, blocks and privacy settings (pkg/consent: one ordered consumer
// on CONSENT, which the process creates, pulls and deletes, and a get of its last message for its barrier).
// CONSENT holds nothing but STATE's consent subjects, so no right on STATE comes with it: the
// processes that enforce consent never see accounts (password hashes), devices or push tokens.
func consentRead() Permissions {
	s := streams.ConsentStream
	p := streamRead(s)
	p.add(pub(api+"CONSUMER.CREATE."+s+".>", api+"CONSUMER.INFO."+s+".*", api+"CONSUMER.MSG.NEXT."+s+".*",
		api+"CONSUMER.DELETE."+s+".*"))
	return p
}

// kvRead: get keys of a bucket and watch it (an ephemeral ordered consumer on its stream, which
// the watcher creates and deletes, with flow control).
func kvRead(bucket string) Permissions {
	s := "KV_" + bucket
	p := streamRead(s)
	p.add(pub(api+"CONSUMER.CREATE."+s+".>", api+"CONSUMER.DELETE."+s+".>", "$JS.FC."+s+".>"))
	return p
}

// kvWrite: put and delete keys of a bucket (and read it).
func kvWrite(bucket string) Permissions {
	p := kvRead(bucket)
	p.add(pub("$KV." + bucket + ".>"))
	return p
}

// StoreSubjects are the requests to the store server (natter run --store remote).
const StoreSubjects = remote.DefaultPrefix + ".>"

// SearchSubjects are the requests to the search process: natter.search.v1.<method>
// (services/search/wire; test/deploy holds the two together).
const SearchSubjects = "natter.search.v1.>"

// BackupSubject is where natter backup asks the process holding the store for a checkpoint
// (services/recovery.BackupSubject; test/deploy holds the two together).
const BackupSubject = "natter.admin.backup"

// storeClient: ask the store server.
func storeClient() Permissions { return pub(StoreSubjects) }

// fanoutConsumers are the durable consumers of every fanout partition.
func fanoutConsumers(o streams.Options) []string {
	var names []string
	for p := range o.FanoutPartitions {
		names = append(names, streams.FanoutConsumerName(p, o.FanoutPartitions))
	}
	return names
}

// timelineRead: what sync and history read of CHAT (pkg/timeline): the stream, and the
// persister's ack floor (what the store holds).
func timelineRead() Permissions {
	p := streamRead(streams.ChatStream)
	p.add(consumerInfo(streams.ChatStream, streams.PersisterConsumer))
	return p
}

// ForTarget is the permissions of one target with the deployment's options (the fanout
// partitions name consumers), without its inbox (see ForUser).
func ForTarget(target string, o streams.Options) (Permissions, error) {
	var p Permissions
	switch target {
	case Gateway:
		// Messages, their edits and deletes, and receipts, never membership: that is the API's.
		for _, kind := range []string{streams.KindMsg, streams.KindEdit, streams.KindDelete, streams.KindHide, streams.KindRead, streams.KindDelivered} {
			p.add(pub(streams.ChatSubject("*", kind)))
		}
		p.add(pub("presence.>", streams.TypingAll, streams.DeviceSubject("*", "*")))
		p.add(sub(streams.AccountDeletedAll)) // closes the sockets of deleted accounts
		p.add(sub(streams.SessionRevokedAll)) // and of ended sessions
		p.add(timelineRead())
		for _, c := range fanoutConsumers(o) {
			p.add(consumerInfo(streams.ChatStream, c))
		}
		p.add(kvWrite(streams.RoutesBucket))
		p.add(kvWrite(streams.GatewaysBucket))
		p.add(kvRead(streams.PresenceBucket))
		p.add(sub(streams.DeliverSubject("*")))
		p.add(consentRead())
		p.add(storeClient())
	case API:
		p.add(pub(streams.ChatSubject("*", streams.KindMember), streams.ChatSubject("*", streams.KindEdit),
			streams.ChatSubject("*", streams.KindDelete), streams.ChatSubject("*", streams.KindHide),
			streams.AccountSubject("*"), streams.DirectSubject("*"),
			streams.DeviceSubject("*", "*"), streams.PushTokenSubject("*", "*"), streams.BlockSubject("*", "*"),
			streams.PrivacySubject("*")))
		p.add(consentRead())
		p.add(streamRead(streams.StateStream))
		p.add(timelineRead())
		p.add(kvRead(streams.GatewaysBucket))
		p.add(kvRead(streams.PresenceBucket))
		p.add(kvWrite(streams.PushSettingsBucket))
		p.add(pub(SearchSubjects, streams.SessionRevokedAll, streams.AccountDeletedAll))
		p.add(storeClient())
	case Persister:
		p.add(consumerPull(streams.ChatStream, streams.PersisterConsumer))
		// The persister of an embedded store makes its consumer ack all and resets it to its
		// ack floor at start; one of a shared store makes it ack each event again.
		p.add(consumerRemake(streams.ChatStream, streams.PersisterConsumer))
		// the projector runs with the persister: STATE and CHAT membership into the store
		p.add(consumerPull(streams.StateStream, streams.ProjectorConsumer))
		p.add(consumerPull(streams.ChatStream, streams.ProjectorConsumer))
		p.add(storeClient())
	case Fanout:
		for _, c := range fanoutConsumers(o) {
			p.add(consumerPull(streams.ChatStream, c))
			// a partition taken from a gone owner is reset to its ack floor, then unpinned
			p.add(pub(api+"CONSUMER.RESET."+streams.ChatStream+"."+c, api+"CONSUMER.UNPIN."+streams.ChatStream+"."+c))
		}
		p.add(pub(api + "STREAM.INFO." + streams.ChatStream))
		p.add(kvWrite(streams.FanoutsBucket))
		p.add(kvRead(streams.RoutesBucket))
		p.add(kvRead(streams.PresenceBucket))
		p.add(pub(streams.DeliverSubject("*"), streams.PushAll, "$KV."+streams.PushLedgerBucket+".>"))
		p.add(sub(streams.TypingAll))
		p.add(consentRead())
		p.add(storeClient())
	case Presence:
		p.add(consumerPull(streams.PresenceStream, streams.PresenceConsumer))
		p.add(kvWrite(streams.PresenceBucket))
		p.add(kvRead(streams.GatewaysBucket))
		p.add(kvRead(streams.RoutesBucket))
		p.add(pub(streams.DeliverSubject("*")))
		p.add(consentRead())
		p.add(storeClient())
	case Push:
		p.add(consumerPull(streams.PushStream, streams.PushConsumer))
		p.add(kvRead(streams.PushSettingsBucket))
		p.add(kvWrite(streams.PushLedgerBucket))
		p.add(timelineRead())                                         // the badge: unread counts
		p.add(pub("push_dead.>", streams.PushTokenSubject("*", "*"))) // tokens FCM no longer accepts
		p.add(consentRead())                                          // the badge leaves out held and blocked messages
		p.add(storeClient())
	case Store:
		p.add(sub(StoreSubjects))
		p.Responses = true
		// The process that holds the embedded store checks it against CHAT and STATE at start
		// (replaying a gap with an ordered consumer), records how far it holds them, and makes
		// backups (services/recovery). A --repair that purges a stream needs the administrator.
		for _, stream := range []string{streams.ChatStream, streams.StateStream} {
			p.add(streamRead(stream))
			p.add(pub(api+"CONSUMER.LIST."+stream, api+"CONSUMER.CREATE."+stream+".>", api+"CONSUMER.DELETE."+stream+".>", "$JS.FC."+stream+".>"))
		}
		p.add(sub(BackupSubject))
	case Search:
		// Its own consumer only: pulled, reset to its ack floor at start, and dropped and made
		// again by a rebuild.
		p.add(consumerPull(streams.ChatStream, streams.SearchConsumer))
		p.add(consumerRemake(streams.ChatStream, streams.SearchConsumer))
		p.add(sub(SearchSubjects))
		p.Responses = true
	case NATS:
	default:
		return Permissions{}, fmt.Errorf("natsperm: unknown target %q", target)
	}
	return p, nil
}

// ForUser is the permissions of a user that runs targets (a process with --target a,b has the
// union), with its inbox _INBOX.<user>.
func ForUser(user string, targets []string, o streams.Options) (Permissions, error) {
	var p Permissions
	for _, t := range targets {
		tp, err := ForTarget(t, o)
		if err != nil {
			return Permissions{}, err
		}
		p.add(tp)
	}
	p.add(sub(inbox(user) + ".>"))
	return p, nil
}

func inbox(user string) string { return "_INBOX." + user }

// User is one NATS user of a deployment: Targets nil is the administrator, who may do
// anything (natter init, operators' tools).
type User struct {
	Name    string
	Targets []string
}

// DeployUsers are the users deploy/nats ships: an administrator, one user per target and one
// for a process that runs every target.
func DeployUsers() []User {
	users := []User{{Name: "admin"}}
	for _, t := range Targets {
		users = append(users, User{Name: t, Targets: []string{t}})
	}
	return append(users, User{Name: "natter", Targets: slices.Clone(Targets)})
}

// PasswordVar is the environment variable nats-server reads a user's password from.
func PasswordVar(user string) string { return "NATTER_NATS_" + strings.ToUpper(user) + "_PASSWORD" }

// Config renders users as a nats-server authorization block. Passwords are references to
// environment variables (PasswordVar), which nats-server resolves when it reads the file:
// plain text or bcrypt hashes ($2a$...) both work.
func Config(users []User, o streams.Options) (string, error) {
	var b strings.Builder
	b.WriteString("# Generated by natter nats-users from pkg/natsperm; do not edit by hand.\n")
	fmt.Fprintf(&b, "# Fanout partitions: %d (every process runs with --fanout-partitions %d).\n", o.FanoutPartitions, o.FanoutPartitions)
	b.WriteString("# Passwords come from the environment of nats-server: ")
	b.WriteString(PasswordVar("<user>") + ".\n")
	b.WriteString("authorization {\n  users: [\n")
	for _, u := range users {
		fmt.Fprintf(&b, "    {\n      user: %s\n      password: $%s\n", u.Name, PasswordVar(u.Name))
		if u.Targets == nil {
			b.WriteString("      # administrator: natter init, operators' tools\n    }\n")
			continue
		}
		p, err := ForUser(u.Name, u.Targets, o)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "      # targets: %s\n      permissions: {\n", strings.Join(u.Targets, ","))
		fmt.Fprintf(&b, "        publish: { allow: %s }\n", list(p.Publish))
		fmt.Fprintf(&b, "        subscribe: { allow: %s }\n", list(p.Subscribe))
		if p.Responses {
			b.WriteString("        allow_responses: true\n")
		}
		b.WriteString("      }\n    }\n")
	}
	b.WriteString("  ]\n}\n")
	return b.String(), nil
}

func list(subjects []string) string {
	quoted := make([]string, len(subjects))
	for i, s := range subjects {
		quoted[i] = fmt.Sprintf("%q", s)
	}
	return "[\n          " + strings.Join(quoted, "\n          ") + "\n        ]"
}
