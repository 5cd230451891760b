// Package scylla is the store.Store and store.Reviser for clusters: ScyllaDB through gocqlx,
// with token-aware, datacenter-aware routing. Open connects to a keyspace that Migrate has
// created and applies the migrations it lacks; the schema is in migrations/*.cql (embedded;
// `natter migrate` creates the keyspace and applies them, see deploy/scylla/README.md).
//
// # Tables
//
// Every table is shaped by the query that reads it and every statement reads or writes exactly
// one partition, named in full (a test checks the statements):
//
//	users                   ((id))                            UserByID
//	users_by_handle         ((handle)) -> user_id             UserByHandle; handle uniqueness (LWT)
//	conversations           ((id))                            Conversation
//	members_by_conversation ((conversation_id), user_id)      Member, Members
//	memberships_by_user     ((user_id), conversation_id)      MembershipsOf
//	messages                ((conversation_id, bucket), seq)  pages, newest first (seq DESC)
//	message_buckets         ((conversation_id), bucket)       which buckets hold messages (DESC)
//	messages_by_id          ((conversation_id, message_id))   MessageByID -> seq
//	messages_by_client      ((sender_id, client_msg_id))      send dedupe (LWT), MessageByClientID
//	devices                 ((user_id), device_id)            Devices
//	push_tokens             ((user_id), device_id)            PushTokens
//	watermarks              ((conversation_id), user_id)      Watermark, Watermarks
//	store_meta              ((name))                          bucket_size, fixed per keyspace
//
// # Message buckets
//
// A message's seq is the CHAT stream sequence, global across all conversations, so one
// conversation's seqs are sparse (7, 19, 20, 1000003, ...). Messages are partitioned by
// (conversation, bucket) with bucket = seq / BucketSize (DefaultBucketSize = 2^20). Because
// seqs are unique, a partition holds at most BucketSize rows whatever the traffic: even a
// conversation that received every message of the stream for a while fills a bucket with at
// most 2^20 rows (~200-300 MB at typical row sizes, a large but ordinary ScyllaDB partition;
// pages read a slice of it through the clustering index, never the whole of it). Time buckets
// cannot give that bound (a hot conversation fills a time bucket without limit) and a dense
// per-conversation counter would cost a Paxos round per message.
//
// The price of a global seq is sparseness: on a busy cluster (50 M daily users is ~25k
// messages/s, so 2^20 seqs pass in ~45 s) a quiet conversation has about one message per
// bucket. message_buckets lists the buckets that hold a conversation's messages, newest first,
// so a page never touches an empty bucket: it reads the bucket index (one partition, fetched
// Limit bucket numbers at a time), then one bucket partition after another in order, each
// asked only for what the page still lacks, and stops as soon as the page is full. A page of a
// busy conversation is one or two partition reads; of a quiet one, up to Limit small reads. A
// larger BucketSize would make quiet conversations cheaper and the worst-case partition bigger
// (2^24 allows 16 M rows); 2^20 keeps the worst case ordinary. The bucket index itself grows by
// at most one 16-byte row per 2^20 seqs of the whole stream.
//
// The bucket size is recorded in store_meta by the first Open of a keyspace; an Open with a
// different size fails, since messages written with one size cannot be found with another.
//
// # Consistency
//
// Reads and plain writes use Config.Consistency (LOCAL_QUORUM): a read sees every write that
// returned before it began. Decisions use lightweight transactions (Paxos, LOCAL_SERIAL): the
// handle claim and user row, the client-send dedupe claim, the message row (so that exactly one
// of concurrent inserts at a seq wins, and revisions: see ReviseMessage), and device rows (LastSeen only moves forward,
// compare-and-set). A table is written either only with LWTs or only without, never mixed.
// Watermarks need no LWT: each mark is written with itself as the write timestamp, so the
// highest mark wins reconciliation (see AdvanceWatermark). Members go to both tables in one
// logged batch.
//
// Lightweight transactions need a vnode keyspace on ScyllaDB versions that have tablets (LWT
// is documented as unsupported with tablets through at least 2025.3): Migrate creates the
// keyspace with tablets disabled where the server knows them.
//
// Every statement is safe to repeat, so the driver retries timeouts (Config.NumRetries, with
// backoff), and consumers may replay any range of the CHAT stream.
package scylla
