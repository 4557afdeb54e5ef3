//go:build agora_gcs

package store

// Google Cloud Storage (gs:// URLs) is built in only with the agora_gcs
// tag: its client and gRPC stack double the binary and, touched at start,
// triple the resident memory of every Agora that does not use it.
import _ "gocloud.dev/blob/gcsblob"
