package scylla

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/scylladb/gocqlx/v3"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/store"
)

// migrationFiles are the schema, one file per version, applied in name order. They live in the
// module (go:embed cannot reach deploy/); deploy/scylla/README.md points here.
//
//go:embed migrations/*.cql
var migrationFiles embed.FS

// createSchemaMigrations is the table Migrate records applied versions in.
const createSchemaMigrations = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text,
    applied_at timestamp,
    checksum   text,
    PRIMARY KEY ((version))
)`

// migration is one migration file.
type migration struct {
	version  string // the file name without ".cql", e.g. "0001_init"
	stmts    []string
	checksum string
}

var migrationName = regexp.MustCompile(`^[0-9]{4}_[a-z0-9_]+\.cql$`)

// loadMigrations reads every *.cql file of dir in fsys, in name order.
func loadMigrations(fsys fs.FS, dir string) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, dir) // sorted by name
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var out []migration
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".cql" {
			continue
		}
		if !migrationName.MatchString(e.Name()) {
			return nil, fmt.Errorf("migration %s: want a name like 0001_init.cql", e.Name())
		}
		src, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		stmts, err := splitStatements(string(src))
		if err != nil {
			return nil, fmt.Errorf("migration %s: %w", e.Name(), err)
		}
		if len(stmts) == 0 {
			return nil, fmt.Errorf("migration %s: no statements", e.Name())
		}
		out = append(out, migration{version: strings.TrimSuffix(e.Name(), ".cql"), stmts: stmts, checksum: checksum(stmts)})
	}
	return out, nil
}

// splitStatements splits CQL source into statements. A statement ends with a ';' at the end
// of a line; '--' starts a comment that runs to the end of the line, except inside a
// single-quoted string (in which a doubled quote stands for a quote). Returned statements have
// no trailing ';' and no comments.
func splitStatements(src string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inString := false
	for n, line := range strings.Split(src, "\n") {
		var code strings.Builder
		for i := 0; i < len(line); i++ {
			c := line[i]
			if !inString && c == '-' && i+1 < len(line) && line[i+1] == '-' {
				break
			}
			if c == '\'' {
				inString = !inString // '' inside a string toggles twice: still inside
			}
			code.WriteByte(c)
		}
		text := strings.TrimRight(code.String(), " \t\r")
		if strings.TrimSpace(text) == "" && !inString {
			continue
		}
		cur.WriteString(text)
		cur.WriteByte('\n')
		if !inString && strings.HasSuffix(text, ";") {
			s := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"))
			if s == "" {
				return nil, fmt.Errorf("line %d: empty statement", n+1)
			}
			out = append(out, s)
			cur.Reset()
		}
	}
	if inString {
		return nil, errors.New("unterminated string")
	}
	if rest := strings.TrimSpace(cur.String()); rest != "" {
		return nil, fmt.Errorf("statement without a final ';': %.40q", rest)
	}
	return out, nil
}

// checksum identifies a migration by its statements: comments and blank lines may change
// after it is applied, statements may not.
func checksum(stmts []string) string {
	h := sha256.New()
	for _, s := range stmts {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// createKeyspaceCQL creates the keyspace if missing, NetworkTopologyStrategy with rf replicas in
// every datacenter. Tablets are turned off where the server has them: the store relies on
// lightweight transactions, which ScyllaDB documents as unsupported with tablets (6.x through
// at least 2025.3).
func createKeyspaceCQL(keyspace string, rf int, tablets bool) string {
	s := fmt.Sprintf("CREATE KEYSPACE IF NOT EXISTS %s WITH replication = "+
		"{'class': 'NetworkTopologyStrategy', 'replication_factor': %d}", keyspace, rf)
	if tablets {
		s += " AND tablets = {'enabled': false}"
	}
	return s
}

// hasTabletsCQL finds whether the server knows tablets (ScyllaDB 6.0 and later).
const hasTabletsCQL = `SELECT column_name FROM system_schema.columns WHERE keyspace_name = 'system_schema' ` +
	`AND table_name = 'scylla_keyspaces' AND column_name = 'initial_tablets'`

// alterAdd matches the one non-idempotent statement migrations may use, adding a column; the
// migrator makes it idempotent by skipping it when the column exists.
// The type is a native type or a collection of one (set<text>).
var alterAdd = regexp.MustCompile(`^(?i:ALTER TABLE) (\w+) (?i:ADD) (\w+) \w+(?:<\w+>)?$`)

// addsColumn reports whether stmt is "ALTER TABLE <table> ADD <column> <type>", and which.
func addsColumn(stmt string) (table, column string, ok bool) {
	m := alterAdd.FindStringSubmatch(strings.Join(strings.Fields(stmt), " "))
	if m == nil {
		return "", "", false
	}
	return strings.ToLower(m[1]), strings.ToLower(m[2]), true
}

const hasColumnCQL = `SELECT column_name FROM system_schema.columns WHERE keyspace_name = ? AND table_name = ? AND column_name = ?`

// hasColumn reports whether keyspace.table has column.
func hasColumn(ctx context.Context, session gocqlx.Session, keyspace, table, column string) (bool, error) {
	var names []string
	if err := session.ContextQuery(ctx, hasColumnCQL, nil).Bind(keyspace, table, column).SelectRelease(&names); err != nil {
		return false, fmt.Errorf("read system_schema.columns: %w", err)
	}
	return len(names) > 0, nil
}

type migrationRow struct {
	Version   string `db:"version"`
	AppliedAt int64  `db:"applied_at"`
	Checksum  string `db:"checksum"`
}

// Migrate brings cfg.Keyspace up to date and returns the versions it applied, in order:
// it creates the keyspace if missing (NetworkTopologyStrategy, replicationFactor replicas per
// datacenter; an existing keyspace is left as it is), then the schema_migrations table, then
// applies every embedded migration not yet recorded there, statement by statement, and records
// it with its checksum. Running it again applies nothing. A recorded migration whose checksum
// differs from the embedded file is an error: applied migrations are never edited, a change is
// a new file. Run one migrator at a time; an interrupted run is safe to repeat because every
// statement is idempotent.
func Migrate(ctx context.Context, cfg Config, replicationFactor int, log *zap.Logger) (applied []string, err error) {
	if log == nil {
		log = zap.NewNop()
	}
	st, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	if replicationFactor < 1 {
		return nil, fmt.Errorf("scylla migrate: replication factor %d, want at least 1", replicationFactor)
	}
	if _, err := loadMigrations(migrationFiles, "migrations"); err != nil { // before touching the cluster
		return nil, fmt.Errorf("scylla migrate: %w", err)
	}
	if err := createKeyspace(ctx, st, replicationFactor, log); err != nil {
		return nil, fmt.Errorf("scylla migrate: %w", err)
	}
	session, err := connect(st.cluster(st.Keyspace, log))
	if err != nil {
		return nil, fmt.Errorf("scylla migrate: connect to keyspace %s: %w", st.Keyspace, err)
	}
	defer session.Close()
	if applied, err = applyPending(ctx, session, st.Keyspace, log); err != nil {
		return applied, fmt.Errorf("scylla migrate: %w", err)
	}
	return applied, nil
}

// applyPending applies, in the session's keyspace, every embedded migration that
// schema_migrations does not record yet; Migrate does it after creating the keyspace, Open on
// every start, so a new natter binary brings its schema changes with it. Every statement is
// idempotent and a column added meanwhile by another process counts as added, so several
// processes starting at once may all run it.
func applyPending(ctx context.Context, session gocqlx.Session, keyspace string, log *zap.Logger) (applied []string, err error) {
	migs, err := loadMigrations(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	if allRecorded(ctx, session, migs) {
		return nil, nil // the usual start: no schema statement, no ALTER permission needed
	}
	if err := session.ContextQuery(ctx, createSchemaMigrations, nil).ExecRelease(); err != nil {
		return nil, fmt.Errorf("create schema_migrations: %w", err)
	}
	for _, m := range migs {
		done, err := applyMigration(ctx, session, keyspace, m, log)
		if err != nil {
			return applied, fmt.Errorf("%s: %w", m.version, err)
		}
		if done {
			applied = append(applied, m.version)
		}
	}
	return applied, nil
}

// allRecorded reports whether schema_migrations records every migration with its checksum. Any
// doubt (a read error, a missing table) answers false: applyPending then does the full work and
// reports what is wrong.
func allRecorded(ctx context.Context, session gocqlx.Session, migs []migration) bool {
	for _, m := range migs {
		var rec migrationRow
		err := session.ContextQuery(ctx, q.migrationGet.cql, q.migrationGet.names).Bind(m.version).GetRelease(&rec)
		if err != nil || rec.Checksum != m.checksum {
			return false
		}
	}
	return true
}

func createKeyspace(ctx context.Context, st settings, rf int, log *zap.Logger) error {
	session, err := connect(st.cluster("", log))
	if err != nil {
		return fmt.Errorf("connect to %v: %w", st.Hosts, err)
	}
	defer session.Close()
	var col string
	tablets := true
	if err := session.ContextQuery(ctx, hasTabletsCQL, nil).GetRelease(&col); err != nil {
		if !errors.Is(notFound(err), store.ErrNotFound) {
			return fmt.Errorf("look for tablets support: %w", err)
		}
		tablets = false
	}
	if err := session.ContextQuery(ctx, createKeyspaceCQL(st.Keyspace, rf, tablets), nil).ExecRelease(); err != nil {
		return fmt.Errorf("create keyspace %s: %w", st.Keyspace, err)
	}
	return nil
}

// applyMigration applies m unless schema_migrations records it; done reports that it applied.
func applyMigration(ctx context.Context, session gocqlx.Session, keyspace string, m migration, log *zap.Logger) (done bool, err error) {
	var rec migrationRow
	err = notFound(session.ContextQuery(ctx, q.migrationGet.cql, q.migrationGet.names).Bind(m.version).GetRelease(&rec))
	switch {
	case err == nil && rec.Checksum != m.checksum:
		return false, fmt.Errorf("applied with checksum %s, file now has %s: applied migrations must not change, add a new one",
			rec.Checksum, m.checksum)
	case err == nil:
		return false, nil
	case !errors.Is(err, store.ErrNotFound):
		return false, fmt.Errorf("read schema_migrations: %w", err)
	}
	for i, s := range m.stmts {
		if table, column, ok := addsColumn(s); ok {
			exists, err := hasColumn(ctx, session, keyspace, table, column)
			if err != nil {
				return false, fmt.Errorf("statement %d (%.60q): %w", i+1, s, err)
			}
			if exists {
				continue // added by an interrupted run of this migration
			}
		}
		if err := session.ContextQuery(ctx, s, nil).ExecRelease(); err != nil {
			if table, column, ok := addsColumn(s); ok {
				// Another process applying the same migration at the same time (every Open
				// applies what is missing) may have added it between the check and the ADD.
				if exists, e := hasColumn(ctx, session, keyspace, table, column); e == nil && exists {
					continue
				}
			}
			return false, fmt.Errorf("statement %d (%.60q): %w", i+1, s, err)
		}
	}
	if err := session.AwaitSchemaAgreement(ctx); err != nil {
		return false, fmt.Errorf("await schema agreement: %w", err)
	}
	rec = migrationRow{Version: m.version, AppliedAt: toMS(time.Now()), Checksum: m.checksum}
	if err := session.ContextQuery(ctx, q.migrationPut.cql, q.migrationPut.names).BindStruct(rec).ExecRelease(); err != nil {
		return false, fmt.Errorf("record in schema_migrations: %w", err)
	}
	log.Info("scylla migration applied", zap.String("version", m.version), zap.Int("statements", len(m.stmts)))
	return true, nil
}
