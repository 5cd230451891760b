package scylla

import (
	"strings"

	"github.com/scylladb/gocqlx/v3/qb"
	"github.com/scylladb/gocqlx/v3/table"
)

// Tables, as the code sees them. migrations/0001_init.cql creates them; a test checks that both
// agree on columns and keys.
var (
	usersTable = table.New(table.Metadata{
		Name:    "users",
		Columns: []string{"id", "handle", "display_name", "password_hash", "created_at"},
		PartKey: []string{"id"},
	})
	deletedUsersTable = table.New(table.Metadata{
		Name:    "deleted_users",
		Columns: []string{"id", "deleted_at"},
		PartKey: []string{"id"},
	})
	usersByHandleTable = table.New(table.Metadata{
		Name:    "users_by_handle",
		Columns: []string{"handle", "user_id"},
		PartKey: []string{"handle"},
	})
	conversationsTable = table.New(table.Metadata{
		Name:    "conversations",
		Columns: []string{"id", "kind", "name", "created_by", "created_at", "deleted_seq"},
		PartKey: []string{"id"},
	})
	membersByConversationTable = table.New(table.Metadata{
		Name: "members_by_conversation",
		Columns: []string{"conversation_id", "user_id", "role", "joined_seq", "left_seq", "joined_at",
			"earlier", "invited_seq", "invited_by", "changed_seq"},
		PartKey: []string{"conversation_id"},
		SortKey: []string{"user_id"},
	})
	membershipsByUserTable = table.New(table.Metadata{
		Name: "memberships_by_user",
		Columns: []string{"user_id", "conversation_id", "role", "joined_seq", "left_seq", "joined_at",
			"earlier", "invited_seq", "invited_by", "changed_seq"},
		PartKey: []string{"user_id"},
		SortKey: []string{"conversation_id"},
	})
	messagesTable = table.New(table.Metadata{
		Name: "messages",
		Columns: []string{"conversation_id", "bucket", "seq", "message_id", "kind", "sender_id",
			"sender_device", "client_msg_id", "body", "member", "sent_at",
			"target", "target_id", "edited_at", "deleted_at", "hidden_for", "revised_seq"},
		PartKey: []string{"conversation_id", "bucket"},
		SortKey: []string{"seq"},
	})
	messageBucketsTable = table.New(table.Metadata{
		Name:    "message_buckets",
		Columns: []string{"conversation_id", "bucket"},
		PartKey: []string{"conversation_id"},
		SortKey: []string{"bucket"},
	})
	messagesByIDTable = table.New(table.Metadata{
		Name:    "messages_by_id",
		Columns: []string{"conversation_id", "message_id", "seq"},
		PartKey: []string{"conversation_id", "message_id"},
	})
	messagesByClientTable = table.New(table.Metadata{
		Name:    "messages_by_client",
		Columns: []string{"sender_id", "client_msg_id", "conversation_id", "seq"},
		PartKey: []string{"sender_id", "client_msg_id"},
	})
	devicesTable = table.New(table.Metadata{
		Name:    "devices",
		Columns: []string{"user_id", "device_id", "platform", "created_at", "last_seen"},
		PartKey: []string{"user_id"},
		SortKey: []string{"device_id"},
	})
	pushTokensTable = table.New(table.Metadata{
		Name:    "push_tokens",
		Columns: []string{"user_id", "device_id", "platform", "push_token", "updated_at"},
		PartKey: []string{"user_id"},
		SortKey: []string{"device_id"},
	})
	watermarksTable = table.New(table.Metadata{
		Name:    "watermarks",
		Columns: []string{"conversation_id", "user_id", "delivered_seq", "read_seq"},
		PartKey: []string{"conversation_id"},
		SortKey: []string{"user_id"},
	})
	sessionsTable = table.New(table.Metadata{
		Name:    "sessions",
		Columns: []string{"id", "user_id", "refresh_hash", "user_agent", "created_at", "last_used", "revoked_at"},
		PartKey: []string{"id"},
	})
	sessionsByUserTable = table.New(table.Metadata{
		Name:    "sessions_by_user",
		Columns: []string{"user_id", "id"},
		PartKey: []string{"user_id"},
		SortKey: []string{"id"},
	})
	storeMetaTable = table.New(table.Metadata{
		Name:    "store_meta",
		Columns: []string{"name", "value"},
		PartKey: []string{"name"},
	})
	// schemaMigrationsTable is created by Migrate itself, before any migration file runs.
	schemaMigrationsTable = table.New(table.Metadata{
		Name:    "schema_migrations",
		Columns: []string{"version", "applied_at", "checksum"},
		PartKey: []string{"version"},
	})
)

// allTables lists every table, for tests.
var allTables = []*table.Table{
	usersTable, deletedUsersTable, usersByHandleTable, conversationsTable, membersByConversationTable,
	membershipsByUserTable, messagesTable, messageBucketsTable, messagesByIDTable,
	messagesByClientTable, devicesTable, pushTokensTable, watermarksTable, sessionsTable,
	sessionsByUserTable, storeMetaTable,
	schemaMigrationsTable,
}

// stmt is one CQL statement with the names of its bind markers, built once and executed many
// times: gocql prepares each distinct statement once per connection and caches it.
type stmt struct {
	table string
	cql   string
	names []string
}

// builder is any qb builder.
type builder interface{ ToCql() (string, []string) }

// cols is every column of t, so no statement says SELECT *.
func cols(t *table.Table) []string { return t.Metadata().Columns }

func mk(t *table.Table, b builder) stmt {
	cql, names := b.ToCql()
	return stmt{table: t.Name(), cql: strings.TrimSpace(cql), names: names}
}

// statements is every statement the store issues. Each reads or writes exactly one partition,
// named in full by its WHERE clause (or VALUES); none uses ALLOW FILTERING. A test checks both.
type statements struct {
	// users
	userGet, userInsertIfNotExists, userUpdateProfileIfExists stmt
	userClear, deletedGet, deletedPut                         stmt
	handleGet, handleClaim, handleReleaseIf                   stmt
	// conversations and members
	conversationGet, conversationPut  stmt
	memberGet, membersList, memberPut stmt
	membershipsList, membershipPut    stmt
	// messages
	messageGet, messageInsertIfNotExists          stmt
	messageEditFirstIf, messageEditIf             stmt
	messageDeleteIf, messageHideIf                stmt
	messagesNewest, messagesBefore, messagesAfter stmt
	bucketsNewest, bucketsBefore, bucketsAfter    stmt
	bucketPut                                     stmt
	messageIDGet, messageIDPut                    stmt
	clientClaim, clientGet, clientReleaseIf       stmt
	// devices and push tokens
	devicesList, deviceInsertIfNotExists, deviceUpdateIf, deviceDeleteIfExists stmt
	pushTokensList, pushTokenPut, pushTokenDelete                              stmt
	// watermarks
	watermarkGet, watermarksList, watermarkDelivered, watermarkRead stmt
	// sessions
	sessionGet, sessionInsertIfNotExists, sessionRotateIf, sessionRevokeIf stmt
	sessionsByUserList, sessionByUserPut                                   stmt
	// bookkeeping
	metaClaim, migrationGet, migrationPut stmt
}

func buildStatements() statements {
	var s statements

	s.userGet = mk(usersTable, usersTable.GetBuilder(cols(usersTable)...))
	s.userInsertIfNotExists = mk(usersTable, usersTable.InsertBuilder().Unique())
	s.userUpdateProfileIfExists = mk(usersTable, usersTable.UpdateBuilder("display_name").Existing())
	s.userClear = mk(usersTable, usersTable.UpdateBuilder("display_name", "password_hash"))
	s.deletedGet = mk(deletedUsersTable, deletedUsersTable.GetBuilder("id"))
	s.deletedPut = mk(deletedUsersTable, deletedUsersTable.InsertBuilder())
	s.handleGet = mk(usersByHandleTable, usersByHandleTable.GetBuilder(cols(usersByHandleTable)...))
	s.handleClaim = mk(usersByHandleTable, usersByHandleTable.InsertBuilder().Unique())
	s.handleReleaseIf = mk(usersByHandleTable, usersByHandleTable.DeleteBuilder().If(qb.Eq("user_id")))

	s.conversationGet = mk(conversationsTable, conversationsTable.GetBuilder(cols(conversationsTable)...))
	s.conversationPut = mk(conversationsTable, conversationsTable.InsertBuilder())
	s.memberGet = mk(membersByConversationTable, membersByConversationTable.GetBuilder(cols(membersByConversationTable)...))
	s.membersList = mk(membersByConversationTable, membersByConversationTable.SelectBuilder(cols(membersByConversationTable)...))
	s.memberPut = mk(membersByConversationTable, membersByConversationTable.InsertBuilder())
	s.membershipsList = mk(membershipsByUserTable, membershipsByUserTable.SelectBuilder(cols(membershipsByUserTable)...))
	s.membershipPut = mk(membershipsByUserTable, membershipsByUserTable.InsertBuilder())

	s.messageGet = mk(messagesTable, messagesTable.GetBuilder(cols(messagesTable)...))
	s.messageInsertIfNotExists = mk(messagesTable, messagesTable.InsertBuilder().Unique())
	// Revisions (ReviseMessage). Each is conditional on the row being a text message, which
	// also keeps an UPDATE from creating a row that was never inserted, and encodes its rule of
	// store.Revise, so that applying it late, again or concurrently leaves what Revise would:
	// an edit applies only while the message is not deleted and to a lower revised_seq (null
	// before the first edit: "col = null" holds for a null cell), a delete only once, and a
	// hide adds its user to a set.
	isText := qb.EqLit("kind", "'msg'")
	notDeleted := qb.EqLit("deleted_at", "null")
	s.messageEditFirstIf = mk(messagesTable, messagesTable.UpdateBuilder("body", "edited_at", "revised_seq").
		If(isText, notDeleted, qb.EqLit("revised_seq", "null")))
	s.messageEditIf = mk(messagesTable, messagesTable.UpdateBuilder("body", "edited_at", "revised_seq").
		If(isText, notDeleted, qb.LtNamed("revised_seq", "revised_seq")))
	s.messageDeleteIf = mk(messagesTable, messagesTable.UpdateBuilder("body", "deleted_at").If(isText, notDeleted))
	s.messageHideIf = mk(messagesTable, messagesTable.UpdateBuilder().Add("hidden_for").If(isText))
	s.messagesNewest = mk(messagesTable, messagesTable.SelectBuilder(cols(messagesTable)...).LimitNamed("limit"))
	s.messagesBefore = mk(messagesTable, messagesTable.SelectBuilder(cols(messagesTable)...).Where(qb.Lt("seq")).LimitNamed("limit"))
	s.messagesAfter = mk(messagesTable, messagesTable.SelectBuilder(cols(messagesTable)...).Where(qb.Gt("seq")).
		OrderBy("seq", qb.ASC).LimitNamed("limit"))
	s.bucketsNewest = mk(messageBucketsTable, messageBucketsTable.SelectBuilder("bucket"))
	s.bucketsBefore = mk(messageBucketsTable, messageBucketsTable.SelectBuilder("bucket").Where(qb.LtOrEq("bucket")))
	s.bucketsAfter = mk(messageBucketsTable, messageBucketsTable.SelectBuilder("bucket").Where(qb.GtOrEq("bucket")).
		OrderBy("bucket", qb.ASC))
	s.bucketPut = mk(messageBucketsTable, messageBucketsTable.InsertBuilder())
	s.messageIDGet = mk(messagesByIDTable, messagesByIDTable.GetBuilder("seq"))
	s.messageIDPut = mk(messagesByIDTable, messagesByIDTable.InsertBuilder())
	s.clientClaim = mk(messagesByClientTable, messagesByClientTable.InsertBuilder().Unique())
	s.clientGet = mk(messagesByClientTable, messagesByClientTable.GetBuilder(cols(messagesByClientTable)...))
	s.clientReleaseIf = mk(messagesByClientTable, messagesByClientTable.DeleteBuilder().
		If(qb.Eq("conversation_id"), qb.Eq("seq")))

	s.devicesList = mk(devicesTable, devicesTable.SelectBuilder(cols(devicesTable)...))
	s.deviceInsertIfNotExists = mk(devicesTable, devicesTable.InsertBuilder().Unique())
	s.deviceUpdateIf = mk(devicesTable, devicesTable.UpdateBuilder("platform", "created_at", "last_seen").
		If(qb.EqNamed("platform", "prev_platform"), qb.EqNamed("created_at", "prev_created_at"),
			qb.EqNamed("last_seen", "prev_last_seen")))
	s.deviceDeleteIfExists = mk(devicesTable, devicesTable.DeleteBuilder().Existing())
	s.pushTokensList = mk(pushTokensTable, pushTokensTable.SelectBuilder(cols(pushTokensTable)...))
	s.pushTokenPut = mk(pushTokensTable, pushTokensTable.InsertBuilder())
	s.pushTokenDelete = mk(pushTokensTable, pushTokensTable.DeleteBuilder())

	s.watermarkGet = mk(watermarksTable, watermarksTable.GetBuilder(cols(watermarksTable)...))
	s.watermarksList = mk(watermarksTable, watermarksTable.SelectBuilder(cols(watermarksTable)...))
	// A mark's cell is written with the mark itself as its write timestamp, so the cell holding
	// the highest mark wins every reconciliation: the stored mark is the max of all writes.
	s.watermarkDelivered = mk(watermarksTable, watermarksTable.UpdateBuilder("delivered_seq").TimestampNamed("ts"))
	s.watermarkRead = mk(watermarksTable, watermarksTable.UpdateBuilder("read_seq").TimestampNamed("ts"))

	s.sessionGet = mk(sessionsTable, sessionsTable.GetBuilder(cols(sessionsTable)...))
	s.sessionInsertIfNotExists = mk(sessionsTable, sessionsTable.InsertBuilder().Unique())
	s.sessionRotateIf = mk(sessionsTable, sessionsTable.UpdateBuilder("refresh_hash", "last_used").
		If(qb.EqNamed("refresh_hash", "old_hash"), qb.EqNamed("revoked_at", "active")))
	s.sessionRevokeIf = mk(sessionsTable, sessionsTable.UpdateBuilder("revoked_at").If(qb.EqNamed("revoked_at", "active")))
	s.sessionsByUserList = mk(sessionsByUserTable, sessionsByUserTable.SelectBuilder("id"))
	s.sessionByUserPut = mk(sessionsByUserTable, sessionsByUserTable.InsertBuilder())

	s.metaClaim = mk(storeMetaTable, storeMetaTable.InsertBuilder().Unique())
	s.migrationGet = mk(schemaMigrationsTable, schemaMigrationsTable.GetBuilder(cols(schemaMigrationsTable)...))
	s.migrationPut = mk(schemaMigrationsTable, schemaMigrationsTable.InsertBuilder())
	return s
}

// q is every statement, built once.
var q = buildStatements()
