package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"syscall"
	"testing"

	"github.com/agora-mirror/agora/internal/mirror"
	"github.com/agora-mirror/agora/internal/store"
	"github.com/agora-mirror/agora/internal/sumdb"
	"github.com/agora-mirror/agora/internal/upstream"
)

func TestStatusMapsErrorKinds(t *testing.T) {
	cases := []struct {
		err  error
		want int
	}{
		{&upstream.NotFoundError{Path: "m/@v/list"}, http.StatusNotFound},
		{upstream.ErrOff, http.StatusNotFound},
		{&upstream.Error{Source: "u", Path: "p", Status: 404}, http.StatusNotFound},
		{&upstream.Error{Source: "u", Path: "p", Status: 503}, http.StatusBadGateway},
		{&upstream.Error{Source: "u", Path: "p", Err: syscall.ECONNREFUSED}, http.StatusBadGateway},
		{fmt.Errorf("fill: %w", upstream.ErrTimeout), http.StatusGatewayTimeout},
		{context.DeadlineExceeded, http.StatusGatewayTimeout},
		{&sumdb.ChecksumError{Module: "m", Version: "v1.0.0", File: "zip"}, http.StatusBadGateway},
		{fmt.Errorf("x: %w", sumdb.ErrNotFound), http.StatusBadGateway},
		{fmt.Errorf("x: %w", sumdb.ErrSecurity), http.StatusBadGateway},
		{&mirror.BadContentError{Module: "m"}, http.StatusBadGateway},
		{&mirror.ChangedError{Module: "m"}, http.StatusBadGateway},
		{fmt.Errorf("fill: %w", mirror.ErrSourceFailed), http.StatusBadGateway},
		{&mirror.DeniedError{Module: "m", Rule: "deny"}, http.StatusForbidden},
		{fmt.Errorf("writing: %w", syscall.ENOSPC), http.StatusInsufficientStorage},
		{fmt.Errorf("%w: %q", store.ErrInvalidKey, "../x"), http.StatusBadRequest},
		{errors.New("something else"), http.StatusInternalServerError},
	}
	for _, c := range cases {
		if got := status(c.err); got != c.want {
			t.Errorf("status(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}
