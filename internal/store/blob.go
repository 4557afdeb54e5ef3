package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/memblob" // mem:// URLs
	_ "gocloud.dev/blob/s3blob"  // s3:// URLs (AWS S3 and every S3-compatible server)
	"gocloud.dev/gcerrors"
)

// optionalDrivers are the bucket URL schemes built in only with a build
// tag (blob_gcs.go, blob_azure.go), and their tags.
var optionalDrivers = map[string]string{"gs": "agora_gcs", "azblob": "agora_azure"}

// Blob is a Store on an object storage bucket (S3 or any S3-compatible
// server; Google Cloud Storage and Azure Blob Storage in binaries built
// with the agora_gcs and agora_azure tags), through gocloud.dev's portable
// blob API. Immutable objects are written with a conditional
// write (If-None-Match: * on S3), so of two replicas writing the same key
// one wins and the other gets ErrExist; an upload that fails or is
// cancelled never becomes visible, since the object stores make an object
// visible only when its upload completes.
type Blob struct {
	b   *blob.Bucket
	tmp string
}

// OpenBlob opens the bucket at url (for example
// "s3://bucket?endpoint=http://127.0.0.1:7070&region=us-east-1&use_path_style=true"),
// with credentials from the environment as each cloud's SDK reads them
// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE and so on).
// tmp is a local directory for files on their way in; it is created, and
// emptied of what a previous process left.
func OpenBlob(ctx context.Context, url, tmp string) (*Blob, error) {
	if scheme, _, ok := strings.Cut(url, "://"); ok && !blob.DefaultURLMux().ValidBucketScheme(scheme) {
		if tag, optional := optionalDrivers[scheme]; optional {
			return nil, fmt.Errorf("store: %s:// storage is not built into this binary; build Agora with -tags %s", scheme, tag)
		}
		return nil, fmt.Errorf("store: unknown storage URL scheme %q (s3:// or mem://)", scheme)
	}
	b, err := blob.OpenBucket(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("store: opening bucket: %w", err)
	}
	if err := os.RemoveAll(tmp); err != nil {
		b.Close()
		return nil, fmt.Errorf("store: cleaning temporary files: %w", err)
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		b.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	return &Blob{b: b, tmp: tmp}, nil
}

// Close releases the bucket.
func (s *Blob) Close() error { return s.b.Close() }

// TempDir implements Store.
func (s *Blob) TempDir() string { return s.tmp }

// blobErr maps the portable error codes to the store's sentinels.
func blobErr(key string, err error) error {
	switch gcerrors.Code(err) {
	case gcerrors.NotFound:
		return fmt.Errorf("store: %s: %w", key, ErrNotExist)
	case gcerrors.FailedPrecondition:
		return fmt.Errorf("store: %s: %w", key, ErrExist)
	}
	return fmt.Errorf("store: %s: %w", key, err)
}

type blobObject struct{ *blob.Reader }

func (o blobObject) Size() int64        { return o.Reader.Size() }
func (o blobObject) ModTime() time.Time { return o.Reader.ModTime() }

// Open implements Store. The object is read in ranges as it is sought, so
// a Range request reads only the bytes it asks for.
func (s *Blob) Open(ctx context.Context, key string) (Object, error) {
	if err := CheckKey(key); err != nil {
		return nil, fmt.Errorf("%w: %q", err, key)
	}
	r, err := s.b.NewReader(ctx, key, nil)
	if err != nil {
		return nil, blobErr(key, err)
	}
	return blobObject{r}, nil
}

// Get implements Store.
func (s *Blob) Get(ctx context.Context, key string) ([]byte, error) {
	if err := CheckKey(key); err != nil {
		return nil, fmt.Errorf("%w: %q", err, key)
	}
	data, err := s.b.ReadAll(ctx, key)
	if err != nil {
		return nil, blobErr(key, err)
	}
	return data, nil
}

func (s *Blob) upload(ctx context.Context, key string, r io.Reader) error {
	if err := CheckKey(key); err != nil {
		return fmt.Errorf("%w: %q", err, key)
	}
	opts := &blob.WriterOptions{ContentType: "application/octet-stream", IfNotExist: true}
	if err := s.b.Upload(ctx, key, r, opts); err != nil {
		return blobErr(key, err)
	}
	return nil
}

// Put implements Store.
func (s *Blob) Put(ctx context.Context, key string, data []byte) error {
	return s.upload(ctx, key, bytes.NewReader(data))
}

// PutFile implements Store.
func (s *Blob) PutFile(ctx context.Context, key, name string) error {
	defer os.Remove(name)
	if err := CheckKey(key); err != nil {
		return fmt.Errorf("%w: %q", err, key)
	}
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer f.Close()
	return s.upload(ctx, key, f)
}

// List implements Store.
func (s *Blob) List(ctx context.Context, dir string) ([]string, error) {
	if err := CheckKey(dir); err != nil {
		return nil, fmt.Errorf("%w: %q", err, dir)
	}
	prefix := dir + "/"
	it := s.b.List(&blob.ListOptions{Prefix: prefix, Delimiter: "/"})
	var names []string
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, blobErr(dir, err)
		}
		if name := strings.TrimSuffix(strings.TrimPrefix(obj.Key, prefix), "/"); name != "" {
			names = append(names, name)
		}
	}
	// Keys come in byte order, in which "x-1" sorts before the
	// directory "x/"; the names must sort as names.
	slices.Sort(names)
	return slices.Compact(names), nil
}

// Delete implements Store.
func (s *Blob) Delete(ctx context.Context, key string) error {
	if err := CheckKey(key); err != nil {
		return fmt.Errorf("%w: %q", err, key)
	}
	if err := s.b.Delete(ctx, key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return blobErr(key, err)
	}
	return nil
}

// Exists reports whether key holds an object, with a metadata request
// (HEAD on S3), not a read.
func (s *Blob) Exists(ctx context.Context, key string) (bool, error) {
	if err := CheckKey(key); err != nil {
		return false, fmt.Errorf("%w: %q", err, key)
	}
	ok, err := s.b.Exists(ctx, key)
	if err != nil {
		return false, blobErr(key, err)
	}
	return ok, nil
}

// SignedURL returns a URL from which the object at key can be read
// directly from the object store, without credentials, until expiry.
func (s *Blob) SignedURL(ctx context.Context, key string, expiry time.Duration) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", fmt.Errorf("%w: %q", err, key)
	}
	u, err := s.b.SignedURL(ctx, key, &blob.SignedURLOptions{Expiry: expiry, Method: "GET"})
	if err != nil {
		return "", blobErr(key, err)
	}
	return u, nil
}
