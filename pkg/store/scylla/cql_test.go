package scylla

import (
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// allStatements lists every statement the store issues, by field name.
func allStatements() map[string]stmt {
	out := map[string]stmt{}
	v := reflect.ValueOf(q)
	for i := range v.NumField() {
		f := v.Field(i)
		var names []string
		for j := range f.FieldByName("names").Len() {
			names = append(names, f.FieldByName("names").Index(j).String())
		}
		out[v.Type().Field(i).Name] = stmt{table: f.FieldByName("table").String(), cql: f.FieldByName("cql").String(), names: names}
	}
	return out
}

func tableMeta(t *testing.T, name string) (part, sort, cols []string) {
	t.Helper()
	for _, tb := range allTables {
		if tb.Name() == name {
			m := tb.Metadata()
			return m.PartKey, m.SortKey, m.Columns
		}
	}
	t.Fatalf("no table %s", name)
	return nil, nil, nil
}

var (
	whereClause  = regexp.MustCompile(` WHERE (.*?)(?: IF .*| ORDER BY .*| LIMIT .*)?$`)
	insertClause = regexp.MustCompile(`^INSERT INTO (\w+) \(([^)]*)\) VALUES`)
)

// TestStatementsOnePartition: every statement names one full partition key (a WHERE with
// key=? for each partition key column, or an INSERT of all of them), UPDATE and DELETE name a
// full primary key, and nothing filters, scans or fans out.
func TestStatementsOnePartition(t *testing.T) {
	stmts := allStatements()
	if len(stmts) < 40 {
		t.Fatalf("found %d statements, expected every field of statements", len(stmts))
	}
	for name, st := range stmts {
		cql := st.cql
		part, sort, cols := tableMeta(t, st.table)
		for _, bad := range []string{"ALLOW FILTERING", " IN ", "TOKEN(", "token(", "SELECT *", "JSON"} {
			if strings.Contains(cql, bad) {
				t.Errorf("%s: %q contains %q", name, cql, bad)
			}
		}
		if n := strings.Count(cql, "?"); n != len(st.names) {
			t.Errorf("%s: %d bind markers, %d names %v", name, n, len(st.names), st.names)
		}
		verb, _, _ := strings.Cut(cql, " ")
		switch verb {
		case "SELECT", "UPDATE", "DELETE":
			if !strings.Contains(cql, " "+st.table+" ") {
				t.Errorf("%s: %q is not on table %s", name, cql, st.table)
			}
			m := whereClause.FindStringSubmatch(cql)
			if m == nil {
				t.Errorf("%s: %q has no WHERE", name, cql)
				continue
			}
			conds := strings.Split(m[1], " AND ")
			key := part
			if verb != "SELECT" {
				key = append(slices.Clone(part), sort...) // one row
			}
			for _, k := range key {
				if !slices.Contains(conds, k+"=?") {
					t.Errorf("%s: %q does not restrict %s with =", name, cql, k)
				}
			}
			for _, c := range conds {
				col := strings.TrimRight(c, "=<>?")
				if !slices.Contains(part, col) && !slices.Contains(sort, col) {
					t.Errorf("%s: %q restricts %s, which is not a key column", name, cql, col)
				}
			}
		case "INSERT":
			m := insertClause.FindStringSubmatch(cql)
			if m == nil || m[1] != st.table {
				t.Errorf("%s: %q is not an INSERT INTO %s", name, cql, st.table)
				continue
			}
			if got := strings.Split(m[2], ","); !slices.Equal(got, cols) {
				t.Errorf("%s: inserts %v, want every column %v", name, got, cols)
			}
		default:
			t.Errorf("%s: unexpected statement %q", name, cql)
		}
	}
}

// TestStatementsText pins the statements whose exact shape matters.
func TestStatementsText(t *testing.T) {
	cases := map[string]string{
		"messagesNewest": "SELECT conversation_id,bucket,seq,message_id,kind,sender_id,sender_device,client_msg_id,body,member,sent_at," +
			"target,target_id,edited_at,deleted_at,hidden_for,revised_seq " +
			"FROM messages WHERE conversation_id=? AND bucket=? LIMIT ?",
		"messagesBefore": "SELECT conversation_id,bucket,seq,message_id,kind,sender_id,sender_device,client_msg_id,body,member,sent_at," +
			"target,target_id,edited_at,deleted_at,hidden_for,revised_seq " +
			"FROM messages WHERE conversation_id=? AND bucket=? AND seq<? LIMIT ?",
		"messagesAfter": "SELECT conversation_id,bucket,seq,message_id,kind,sender_id,sender_device,client_msg_id,body,member,sent_at," +
			"target,target_id,edited_at,deleted_at,hidden_for,revised_seq " +
			"FROM messages WHERE conversation_id=? AND bucket=? AND seq>? ORDER BY seq ASC LIMIT ?",
		"bucketsNewest": "SELECT bucket FROM message_buckets WHERE conversation_id=?",
		"bucketsBefore": "SELECT bucket FROM message_buckets WHERE conversation_id=? AND bucket<=?",
		"bucketsAfter":  "SELECT bucket FROM message_buckets WHERE conversation_id=? AND bucket>=? ORDER BY bucket ASC",
		"messageInsertIfNotExists": "INSERT INTO messages (conversation_id,bucket,seq,message_id,kind,sender_id,sender_device," +
			"client_msg_id,body,member,sent_at,target,target_id,edited_at,deleted_at,hidden_for,revised_seq) " +
			"VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) IF NOT EXISTS",
		"clientClaim":               "INSERT INTO messages_by_client (sender_id,client_msg_id,conversation_id,seq) VALUES (?,?,?,?) IF NOT EXISTS",
		"clientReleaseIf":           "DELETE FROM messages_by_client WHERE sender_id=? AND client_msg_id=? IF conversation_id=? AND seq=?",
		"handleClaim":               "INSERT INTO users_by_handle (handle,user_id) VALUES (?,?) IF NOT EXISTS",
		"userInsertIfNotExists":     "INSERT INTO users (id,handle,display_name,password_hash,created_at) VALUES (?,?,?,?,?) IF NOT EXISTS",
		"userUpdateProfileIfExists": "UPDATE users SET display_name=? WHERE id=? IF EXISTS",
		"deviceUpdateIf": "UPDATE devices SET platform=?,created_at=?,last_seen=? WHERE user_id=? AND device_id=? " +
			"IF platform=? AND created_at=? AND last_seen=?",
		"watermarkDelivered": "UPDATE watermarks USING TIMESTAMP ? SET delivered_seq=? WHERE conversation_id=? AND user_id=?",
		"watermarkRead":      "UPDATE watermarks USING TIMESTAMP ? SET read_seq=? WHERE conversation_id=? AND user_id=?",
		"sessionRotateIf":    "UPDATE sessions SET refresh_hash=?,last_used=? WHERE id=? IF refresh_hash=? AND revoked_at=?",
		"sessionRevokeIf":    "UPDATE sessions SET revoked_at=? WHERE id=? IF revoked_at=?",
		"messageEditFirstIf": "UPDATE messages SET body=?,edited_at=?,revised_seq=? WHERE conversation_id=? AND bucket=? AND seq=? " +
			"IF kind='msg' AND deleted_at=null AND revised_seq=null",
		"messageEditIf": "UPDATE messages SET body=?,edited_at=?,revised_seq=? WHERE conversation_id=? AND bucket=? AND seq=? " +
			"IF kind='msg' AND deleted_at=null AND revised_seq<?",
		"messageDeleteIf": "UPDATE messages SET body=?,deleted_at=? WHERE conversation_id=? AND bucket=? AND seq=? " +
			"IF kind='msg' AND deleted_at=null",
		"messageHideIf": "UPDATE messages SET hidden_for=hidden_for+? WHERE conversation_id=? AND bucket=? AND seq=? IF kind='msg'",
	}
	stmts := allStatements()
	for name, want := range cases {
		if got := stmts[name].cql; got != want {
			t.Errorf("%s:\n got %q\nwant %q", name, got, want)
		}
	}
	if n := stmts["deviceUpdateIf"].names; !slices.Equal(n, []string{"platform", "created_at", "last_seen", "user_id",
		"device_id", "prev_platform", "prev_created_at", "prev_last_seen"}) {
		t.Errorf("deviceUpdateIf names %v", n)
	}
	if n := stmts["messageEditIf"].names; !slices.Equal(n, []string{"body", "edited_at", "revised_seq", "conversation_id",
		"bucket", "seq", "revised_seq"}) {
		t.Errorf("messageEditIf names %v", n) // the new revised_seq is both the value and the bound of the condition
	}
	if n := stmts["watermarkRead"].names; !slices.Equal(n, []string{"ts", "read_seq", "conversation_id", "user_id"}) {
		t.Errorf("watermarkRead names %v", n)
	}
}

// TestStatementsConditional: the writes that decide something are lightweight transactions,
// and nothing else is.
func TestStatementsConditional(t *testing.T) {
	lwt := []string{"userInsertIfNotExists", "userUpdateProfileIfExists", "handleClaim", "handleReleaseIf",
		"messageInsertIfNotExists", "clientClaim", "clientReleaseIf", "deviceInsertIfNotExists", "deviceUpdateIf",
		"deviceDeleteIfExists", "sessionInsertIfNotExists", "sessionRotateIf", "sessionRevokeIf", "metaClaim",
		"messageEditFirstIf", "messageEditIf", "messageDeleteIf", "messageHideIf"}
	for name, st := range allStatements() {
		if got, want := strings.Contains(st.cql, " IF "), slices.Contains(lwt, name); got != want {
			t.Errorf("%s: conditional=%v, want %v: %q", name, got, want, st.cql)
		}
	}
}

// schemaTable is a table as a migration declares it.
type schemaTable struct {
	cols       []string
	part, sort []string
	order      string // CLUSTERING ORDER BY clause, "" if none
}

var (
	createTable = regexp.MustCompile(`(?s)^CREATE TABLE IF NOT EXISTS (\w+) \((.*?)\)(?:\s+WITH CLUSTERING ORDER BY \((.*)\))?$`)
	columnDef   = regexp.MustCompile(`^(\w+)\s+(text|bigint|blob|timestamp|set<text>)$`)
	primaryKey  = regexp.MustCompile(`^PRIMARY KEY \(\(([\w, ]+)\)((?:, \w+)*)\)$`)
)

// parseSchema reads the tables of every migration and of createSchemaMigrations.
func parseSchema(t *testing.T) map[string]schemaTable {
	t.Helper()
	migs, err := loadMigrations(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	stmts := []string{createSchemaMigrations}
	for _, m := range migs {
		stmts = append(stmts, m.stmts...)
	}
	out := map[string]schemaTable{}
	for _, s := range stmts {
		if table, column, ok := addsColumn(s); ok {
			st, found := out[table]
			if !found {
				t.Fatalf("%q adds a column to a table no earlier migration creates", s)
			}
			st.cols = append(st.cols, column)
			out[table] = st
			continue
		}
		m := createTable.FindStringSubmatch(s)
		if m == nil {
			t.Fatalf("not a CREATE TABLE IF NOT EXISTS this test understands: %q", s)
		}
		var st schemaTable
		st.order = m[3]
		for _, line := range strings.Split(m[2], "\n") {
			line = strings.TrimSuffix(strings.TrimSpace(line), ",")
			if line == "" {
				continue
			}
			if c := columnDef.FindStringSubmatch(line); c != nil {
				st.cols = append(st.cols, c[1])
				continue
			}
			k := primaryKey.FindStringSubmatch(line)
			if k == nil {
				t.Fatalf("table %s: cannot read %q", m[1], line)
			}
			st.part = strings.Split(k[1], ", ")
			if k[2] != "" {
				st.sort = strings.Split(strings.TrimPrefix(k[2], ", "), ", ")
			}
		}
		out[m[1]] = st
	}
	return out
}

// TestSchemaMatchesCode: the migrations create exactly the tables the code uses, with the same
// columns and keys, newest-first clustering where pages read newest first, and no column named
// with a reserved word.
func TestSchemaMatchesCode(t *testing.T) {
	schema := parseSchema(t)
	if len(schema) != len(allTables) {
		t.Errorf("migrations create %d tables, the code uses %d", len(schema), len(allTables))
	}
	for _, tb := range allTables {
		m := tb.Metadata()
		st, ok := schema[m.Name]
		if !ok {
			t.Errorf("no migration creates %s", m.Name)
			continue
		}
		if !slices.Equal(st.cols, m.Columns) || !slices.Equal(st.part, m.PartKey) || !slices.Equal(st.sort, m.SortKey) {
			t.Errorf("%s: schema has columns %v key ((%v) %v), code has %v ((%v) %v)",
				m.Name, st.cols, st.part, st.sort, m.Columns, m.PartKey, m.SortKey)
		}
	}
	for table, want := range map[string]string{"messages": "seq DESC", "message_buckets": "bucket DESC"} {
		if got := schema[table].order; got != want {
			t.Errorf("%s: clustering order %q, want %q", table, got, want)
		}
	}
	// ScyllaDB's reserved keywords: a column named by one would need quoting everywhere.
	reserved := strings.Fields(`ADD ALLOW ALTER AND APPLY ASC AUTHORIZE BATCH BEGIN BY COLUMNFAMILY CREATE DELETE DESC
		DESCRIBE DROP ENTRIES EXECUTE FROM FULL GRANT IF IN INDEX INFINITY INSERT INTO KEYSPACE LIMIT MODIFY NAN
		NORECURSIVE NOT NULL OF ON OR ORDER PRIMARY RENAME REPLACE REVOKE SCHEMA SELECT SET TABLE TO TOKEN TRUNCATE
		UNLOGGED UPDATE USE USING VIEW WHERE WITH`)
	for name, st := range schema {
		for _, c := range append([]string{name}, st.cols...) {
			if slices.Contains(reserved, strings.ToUpper(c)) {
				t.Errorf("%s: %s is a reserved word", name, c)
			}
		}
	}
}
