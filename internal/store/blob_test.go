package store_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agora-mirror/agora/internal/modtest"
	"github.com/agora-mirror/agora/internal/store"
	"gocloud.dev/blob"
)

// TestBlobMem runs the conformance suite on gocloud.dev's in-memory bucket,
// which checks the Blob adapter without a server.
func TestBlobMem(t *testing.T) {
	testStore(t, func(t *testing.T) store.Store {
		return openBlob(t, "mem://")
	})
}

// TestS3 runs the conformance suite against a real S3-compatible server
// (scripts/test starts versitygw); each subtest gets its own key prefix.
func TestS3(t *testing.T) {
	testStore(t, func(t *testing.T) store.Store { return openBlob(t, modtest.S3Bucket(t)) })
}

// TestS3SignedURL checks that a pre-signed URL for a stored object can be
// fetched, without credentials, from the S3 server.
func TestS3SignedURL(t *testing.T) {
	s := openBlob(t, modtest.S3Bucket(t))
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

// TestBlobExists: Exists tells held from missing keys, and refuses
// invalid ones, as Open does.
func TestBlobExists(t *testing.T) {
	s := openBlob(t, "mem://")
	ctx := context.Background()
	if err := s.Put(ctx, "m/@v/v1.0.0.zip", []byte("zip")); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Exists(ctx, "m/@v/v1.0.0.zip"); !ok || err != nil {
		t.Errorf("Exists of a held key = %v, %v", ok, err)
	}
	if ok, err := s.Exists(ctx, "m/@v/v2.0.0.zip"); ok || err != nil {
		t.Errorf("Exists of a missing key = %v, %v", ok, err)
	}
	if _, err := s.Exists(ctx, "../x"); !errors.Is(err, store.ErrInvalidKey) {
		t.Errorf("Exists of an invalid key: %v", err)
	}
}

func TestOpenBlobNamesTheBuildTagOfAMissingDriver(t *testing.T) {
	for scheme, tag := range map[string]string{"gs": "agora_gcs", "azblob": "agora_azure"} {
		if blob.DefaultURLMux().ValidBucketScheme(scheme) {
			continue // built with the tag
		}
		_, err := store.OpenBlob(t.Context(), scheme+"://bucket", t.TempDir())
		if err == nil || !strings.Contains(err.Error(), "-tags "+tag) {
			t.Errorf("OpenBlob(%s://bucket) = %v, want an error naming -tags %s", scheme, err, tag)
		}
	}
	if _, err := store.OpenBlob(t.Context(), "ftp://bucket", t.TempDir()); err == nil {
		t.Error("OpenBlob(ftp://bucket) succeeded")
	}
}
