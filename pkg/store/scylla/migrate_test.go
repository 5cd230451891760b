package scylla

import (
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

func TestSplitStatements(t *testing.T) {
	cases := []struct {
		name, src string
		want      []string
	}{
		{"empty", "", nil},
		{"comments only", "-- one\n  -- two\n\n", nil},
		{"one", "CREATE TABLE a (x int PRIMARY KEY);\n", []string{"CREATE TABLE a (x int PRIMARY KEY)"}},
		{"no final newline", "DROP TABLE a;", []string{"DROP TABLE a"}},
		{"multi-line with comments", "-- head\nCREATE TABLE a (\n    x int, -- the key\n    PRIMARY KEY (x)\n);  \n\n-- next\nDROP TABLE b;\n",
			[]string{"CREATE TABLE a (\n    x int,\n    PRIMARY KEY (x)\n)", "DROP TABLE b"}},
		{"semicolon inside a line does not split", "ALTER TABLE a WITH comment = 'x;y' AND gc_grace_seconds = 1;\n",
			[]string{"ALTER TABLE a WITH comment = 'x;y' AND gc_grace_seconds = 1"}},
		{"-- inside a string is not a comment", "ALTER TABLE a WITH comment = 'a -- b';\n",
			[]string{"ALTER TABLE a WITH comment = 'a -- b'"}},
		{"doubled quote", "ALTER TABLE a WITH comment = 'it''s -- fine';\n",
			[]string{"ALTER TABLE a WITH comment = 'it''s -- fine'"}},
		{"string across lines ending in ;", "ALTER TABLE a WITH comment = 'one;\ntwo';\nDROP TABLE b;\n",
			[]string{"ALTER TABLE a WITH comment = 'one;\ntwo'", "DROP TABLE b"}},
		{"crlf", "DROP TABLE a;\r\nDROP TABLE b;\r\n", []string{"DROP TABLE a", "DROP TABLE b"}},
	}
	for _, c := range cases {
		got, err := splitStatements(c.src)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%s: splitStatements = %q, %v; want %q", c.name, got, err, c.want)
		}
	}
	for _, bad := range []string{"DROP TABLE a", "DROP TABLE a;\nDROP TABLE b\n", "ALTER TABLE a WITH comment = 'open;\n", ";\n", "-- x\n  ;\n"} {
		if got, err := splitStatements(bad); err == nil {
			t.Errorf("splitStatements(%q) = %q, want an error", bad, got)
		}
	}
}

func TestChecksum(t *testing.T) {
	a, _ := splitStatements("-- v1\nCREATE TABLE a (x int PRIMARY KEY);\n")
	b, _ := splitStatements("-- reworded comment\n\nCREATE TABLE a (x int PRIMARY KEY); -- trailing\n")
	c, _ := splitStatements("CREATE TABLE a (x bigint PRIMARY KEY);\n")
	d, _ := splitStatements("CREATE TABLE a (x int PRIMARY KEY);\nDROP TABLE b;\n")
	if checksum(a) != checksum(b) {
		t.Error("comment and blank line edits changed the checksum")
	}
	if checksum(a) == checksum(c) || checksum(a) == checksum(d) {
		t.Error("statement edits kept the checksum")
	}
	// Statement boundaries count: "ab" + "c" differs from "a" + "bc".
	if checksum([]string{"ab", "c"}) == checksum([]string{"a", "bc"}) {
		t.Error("checksum ignores statement boundaries")
	}
	if len(checksum(a)) != 64 {
		t.Errorf("checksum %q is not hex sha256", checksum(a))
	}
}

// TestAddsColumn: the migrator recognises exactly "ALTER TABLE t ADD c type", the statement it
// makes idempotent by checking system_schema.columns first.
func TestAddsColumn(t *testing.T) {
	for stmt, want := range map[string][2]string{
		"ALTER TABLE members_by_conversation ADD earlier blob": {"members_by_conversation", "earlier"},
		"alter table T add   C\n bigint":                       {"t", "c"},
		"ALTER TABLE messages ADD hidden_for set<text>":        {"messages", "hidden_for"},
		"ALTER TABLE t ADD c set<text> static":                 {},
		"ALTER TABLE t DROP c":                                 {},
		"ALTER TABLE t ADD c blob, d text":                     {},
		"CREATE TABLE IF NOT EXISTS t (c text)":                {},
	} {
		table, column, ok := addsColumn(stmt)
		if ok != (want != [2]string{}) || table != want[0] || column != want[1] {
			t.Errorf("addsColumn(%q) = %q, %q, %v; want %v", stmt, table, column, ok, want)
		}
	}
}

func TestLoadMigrations(t *testing.T) {
	migs, err := loadMigrations(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	if len(migs) == 0 || migs[0].version != "0001_init" {
		t.Fatalf("embedded migrations start with %+v, want 0001_init", migs)
	}
	for i, m := range migs {
		if i > 0 && migs[i-1].version >= m.version {
			t.Errorf("migrations out of order: %s before %s", migs[i-1].version, m.version)
		}
		for _, s := range m.stmts {
			if _, _, adds := addsColumn(s); !adds && !strings.Contains(s, " IF NOT EXISTS ") {
				t.Errorf("%s: statement is not idempotent: %.60q", m.version, s)
			}
			if strings.Contains(s, "--") || strings.HasSuffix(s, ";") {
				t.Errorf("%s: statement keeps a comment or ';': %.60q", m.version, s)
			}
		}
	}

	fsys := fstest.MapFS{
		"m/0002_more.cql":  {Data: []byte("DROP TABLE b;\n")},
		"m/0001_first.cql": {Data: []byte("CREATE TABLE a (x int PRIMARY KEY);\n")},
		"m/README.md":      {Data: []byte("not a migration")},
	}
	migs, err = loadMigrations(fsys, "m")
	if err != nil {
		t.Fatal(err)
	}
	if len(migs) != 2 || migs[0].version != "0001_first" || migs[1].version != "0002_more" {
		t.Errorf("loaded %+v, want 0001_first then 0002_more", migs)
	}
	for name, data := range map[string]string{
		"m/1_bad_name.cql": "DROP TABLE a;\n",
		"m/0003_Caps.cql":  "DROP TABLE a;\n",
		"m/0003_empty.cql": "-- nothing\n",
		"m/0003_open.cql":  "DROP TABLE a\n",
	} {
		bad := fstest.MapFS{name: {Data: []byte(data)}}
		if _, err := loadMigrations(bad, "m"); err == nil {
			t.Errorf("loadMigrations accepted %s", name)
		}
	}
}

func TestCreateKeyspaceCQL(t *testing.T) {
	if got, want := createKeyspaceCQL("natter", 3, false),
		"CREATE KEYSPACE IF NOT EXISTS natter WITH replication = {'class': 'NetworkTopologyStrategy', 'replication_factor': 3}"; got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if got, want := createKeyspaceCQL("k_1", 1, true),
		"CREATE KEYSPACE IF NOT EXISTS k_1 WITH replication = {'class': 'NetworkTopologyStrategy', 'replication_factor': 1}"+
			" AND tablets = {'enabled': false}"; got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}
