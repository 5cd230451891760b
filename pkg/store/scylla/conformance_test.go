package scylla

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scylladb/gocqlx/v3"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/store/storetest"
)

// scyllaCluster returns the config of the cluster named by NATTER_SCYLLA_HOSTS (comma-separated
// hosts) with a fresh random keyspace, and an admin session that drops the keyspace when t ends.
// Without NATTER_SCYLLA_HOSTS it skips t.
func scyllaCluster(t *testing.T) (Config, gocqlx.Session) {
	t.Helper()
	hosts := os.Getenv("NATTER_SCYLLA_HOSTS")
	if hosts == "" {
		t.Skip("NATTER_SCYLLA_HOSTS not set: ScyllaDB conformance suite skipped")
	}
	cfg := Config{Hosts: strings.Split(hosts, ","), Timeout: 15 * time.Second}
	st, err := cfg.resolve()
	if err != nil {
		t.Fatal(err)
	}
	admin, err := connect(st.cluster("", zap.NewNop()))
	if err != nil {
		t.Fatalf("connect to %s: %v", hosts, err)
	}
	t.Cleanup(admin.Close)
	return cfg, admin
}

// freshKeyspace migrates a new random keyspace and drops it when t ends.
func freshKeyspace(t *testing.T, cfg Config, admin gocqlx.Session) Config {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	cfg.Keyspace = "natter_test_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := admin.ContextQuery(ctx, "DROP KEYSPACE IF EXISTS "+cfg.Keyspace, nil).ExecRelease(); err != nil {
			t.Errorf("drop keyspace %s: %v", cfg.Keyspace, err)
		}
	})
	applied, err := Migrate(t.Context(), cfg, 1, zap.NewNop())
	if err != nil {
		t.Fatalf("migrate %s: %v", cfg.Keyspace, err)
	}
	if len(applied) == 0 {
		t.Fatalf("migrate %s applied nothing", cfg.Keyspace)
	}
	return cfg
}

// TestConformance runs the store conformance suite against ScyllaDB, each subtest in a fresh
// keyspace.
func TestConformance(t *testing.T) {
	cfg, admin := scyllaCluster(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		kcfg := freshKeyspace(t, cfg, admin)
		s, err := Open(t.Context(), kcfg, zap.NewNop())
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestMigrate: a second run applies nothing, an edited applied migration is refused (by Migrate
// and by Open), Open applies a migration the keyspace lacks, and the bucket size is fixed by the
// first Open.
func TestMigrate(t *testing.T) {
	cfg, admin := scyllaCluster(t)
	cfg = freshKeyspace(t, cfg, admin)
	ctx := t.Context()

	applied, err := Migrate(ctx, cfg, 1, zap.NewNop())
	if err != nil || len(applied) != 0 {
		t.Fatalf("second Migrate = %v, %v; want nothing applied", applied, err)
	}

	migs, err := loadMigrations(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	tampered := "UPDATE " + cfg.Keyspace + ".schema_migrations SET checksum = 'edited' WHERE version = '" + migs[0].version + "'"
	if err := admin.ContextQuery(ctx, tampered, nil).ExecRelease(); err != nil {
		t.Fatal(err)
	}
	if _, err := Migrate(ctx, cfg, 1, zap.NewNop()); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("Migrate over an edited migration: %v, want a checksum error", err)
	}
	if s, err := Open(ctx, cfg, zap.NewNop()); err == nil || !strings.Contains(err.Error(), "checksum") {
		if err == nil {
			s.Close()
		}
		t.Errorf("Open over an edited migration: %v, want a checksum error", err)
	}
	exec := func(cql string) {
		t.Helper()
		if err := admin.ContextQuery(ctx, cql, nil).ExecRelease(); err != nil {
			t.Fatalf("%s: %v", cql, err)
		}
	}
	exec(fmt.Sprintf("UPDATE %s.schema_migrations SET checksum = '%s' WHERE version = '%s'", cfg.Keyspace, migs[0].checksum, migs[0].version))

	// Open applies what the keyspace lacks: here the last migration, undone by hand.
	last := migs[len(migs)-1]
	for _, st := range last.stmts {
		table, column, ok := addsColumn(st)
		if !ok {
			t.Fatalf("%s: %q is not an ADD this test can undo", last.version, st)
		}
		exec(fmt.Sprintf("ALTER TABLE %s.%s DROP %s", cfg.Keyspace, table, column))
	}
	exec(fmt.Sprintf("DELETE FROM %s.schema_migrations WHERE version = '%s'", cfg.Keyspace, last.version))

	s, err := Open(ctx, cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, st := range last.stmts {
		table, column, _ := addsColumn(st)
		if ok, err := hasColumn(ctx, admin, cfg.Keyspace, table, column); err != nil || !ok {
			t.Errorf("after Open: column %s.%s exists=%v, %v; want it added again", table, column, ok, err)
		}
	}
	if applied, err := Migrate(ctx, cfg, 1, zap.NewNop()); err != nil || len(applied) != 0 {
		t.Errorf("Migrate after Open = %v, %v; want nothing left to apply", applied, err)
	}
	other := cfg
	other.BucketSize = 1 << 16
	if s, err := Open(ctx, other, zap.NewNop()); err == nil {
		s.Close()
		t.Error("Open with another bucket size succeeded")
	}
}

// TestSmallBuckets runs the paging tests with buckets of 1,000 seqs, so that pages cross many
// buckets and the bucket index skips huge empty ranges.
func TestSmallBuckets(t *testing.T) {
	cfg, admin := scyllaCluster(t)
	cfg.BucketSize = 1000
	storetest.Run(t, func(t *testing.T) store.Store {
		if !slices.Contains([]string{"Pages", "Messages"}, strings.Split(t.Name(), "/")[1]) {
			t.Skip("paging tests only")
		}
		s, err := Open(t.Context(), freshKeyspace(t, cfg, admin), zap.NewNop())
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
