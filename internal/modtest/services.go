package modtest

import (
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
)

// The servers scripts/test starts for the storage, metadata and cluster
// tests are named by these variables; tests that need one skip without it.
const (
	S3Env       = "AGORA_TEST_S3_URL"       // an S3 bucket URL (versitygw); credentials in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY
	PostgresEnv = "AGORA_TEST_POSTGRES_URL" // a PostgreSQL URL whose user may create databases
)

var serial atomic.Int64

// unique returns a name no other call in this or another test run returns.
func unique(prefix string) string {
	return fmt.Sprintf("%s%d_%d", prefix, time.Now().UnixNano(), serial.Add(1))
}

// S3Bucket returns the test S3 bucket's URL with a key prefix of its own,
// so that the test starts with an empty store; it skips the test when no
// S3 server is set up.
func S3Bucket(t testing.TB) string {
	t.Helper()
	base := os.Getenv(S3Env)
	if base == "" {
		t.Skip(S3Env + " not set (scripts/test sets it when it can start versitygw)")
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", S3Env, err)
	}
	q := u.Query()
	q.Set("prefix", q.Get("prefix")+unique("test")+"/")
	u.RawQuery = q.Encode()
	return u.String()
}

// S3Credentials returns the environment entries that carry the test S3
// server's credentials, for child processes.
func S3Credentials() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + os.Getenv("AWS_ACCESS_KEY_ID"),
		"AWS_SECRET_ACCESS_KEY=" + os.Getenv("AWS_SECRET_ACCESS_KEY"),
	}
}

// PostgresDB creates an empty database on the test PostgreSQL server,
// dropped when the test ends, and returns its URL; it skips the test when
// no server is set up.
func PostgresDB(t testing.TB) string {
	t.Helper()
	base := os.Getenv(PostgresEnv)
	if base == "" {
		t.Skip(PostgresEnv + " not set (scripts/test sets it when it can start PostgreSQL)")
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	name := unique("agora_test_")
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("creating a test database: %v", err)
	}
	t.Cleanup(func() {
		if admin, err := sql.Open("pgx", base); err == nil {
			admin.Exec("DROP DATABASE " + name + " WITH (FORCE)")
			admin.Close()
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}
