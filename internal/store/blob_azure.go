//go:build agora_azure

package store

// Azure Blob Storage (azblob:// URLs) is built in only with the
// agora_azure tag, for the same reason as agora_gcs (blob_gcs.go).
import _ "gocloud.dev/blob/azureblob"
