package main

import (
	"bytes"
	"encoding/json"
	stdlog "log"
	"log/slog"
	"testing"
)

func TestRouteStdLog(t *testing.T) {
	out, flags := stdlog.Writer(), stdlog.Flags()
	defer func() { stdlog.SetOutput(out); stdlog.SetFlags(flags) }()

	var buf bytes.Buffer
	routeStdLog(slog.New(slog.NewJSONHandler(&buf, nil)))
	stdlog.Printf("failed to complete multipart upload for upload ID %v: %v", "u1", "412")
	var rec struct{ Level, Msg string }
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("the standard log's line is not one JSON record: %q: %v", buf.String(), err)
	}
	if rec.Level != "WARN" || rec.Msg != "failed to complete multipart upload for upload ID u1: 412" {
		t.Errorf("record %+v, want level WARN and the line as its message", rec)
	}
}
