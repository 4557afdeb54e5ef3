package store_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agora-mirror/agora/internal/store"
)

// TestBlobMem runs the conformance suite on gocloud.dev's in-memory bucket,
// which checks the Blob adapter without a server.
func TestBlobMem(t *testing.T) {
	testStore(t, func(t *testing.T) store.Store {
		return openBlob(t, "mem://")
	})
}

var s3Prefixes atomic.Int64

// TestS3 runs the conformance suite against a real S3-compatible server:
// the bucket URL in AGORA_TEST_S3_URL (scripts/test starts versitygw and
// sets it). Each subtest gets its own key prefix in the bucket.
func TestS3(t *testing.T) {
	base := s3URL(t)
	run := time.Now().UnixNano()
	testStore(t, func(t *testing.T) store.Store {
		return openBlob(t, withPrefix(t, base, fmt.Sprintf("conformance-%d-%d/", run, s3Prefixes.Add(1))))
	})
}

// TestS3SignedURL checks that a pre-signed URL for a stored object can be
// fetched, without credentials, from the S3 server.
func TestS3SignedURL(t *testing.T) {
	base := s3URL(t)
	s := openBlob(t, withPrefix(t, base, fmt.Sprintf("signed-%d/", time.Now().UnixNano())))
	ctx := context.Background()
	if err := s.Put(ctx, "m/@v/v1.0.0.zip", []byte("zip bytes")); err != nil {
		t.Fatal(err)
	}
	u, err := s.SignedURL(ctx, "m/@v/v1.0.0.zip", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	got := httpGet(t, u)
	if got != "zip bytes" {
		t.Fatalf("GET of the signed URL = %q, want %q", got, "zip bytes")
	}
	if _, err := s.SignedURL(ctx, "../x", time.Minute); err == nil {
		t.Error("SignedURL of an invalid key succeeded")
	}
}

func s3URL(t *testing.T) string {
	u := os.Getenv("AGORA_TEST_S3_URL")
	if u == "" {
		t.Skip("AGORA_TEST_S3_URL not set (scripts/test sets it when it can start versitygw)")
	}
	return u
}

func withPrefix(t *testing.T, base, prefix string) string {
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("prefix", strings.TrimPrefix(q.Get("prefix")+prefix, "/"))
	u.RawQuery = q.Encode()
	return u.String()
}

func openBlob(t *testing.T, u string) *store.Blob {
	s, err := store.OpenBlob(context.Background(), u, filepath.Join(t.TempDir(), "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func httpGet(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", u, resp.Status, body)
	}
	return string(body)
}
