package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// entry is one proxy of a chain and the rule for moving past it.
type entry struct {
	proxy *Proxy
	// anyError: the entry was followed by "|", so any error moves on to
	// the next entry; otherwise only "not found" does.
	anyError bool
}

// Chain is an ordered list of upstream proxies with GOPROXY's rules.
type Chain struct {
	entries []entry
	// Direct reports that the list held a "direct" entry (which ends
	// the list for the go command). The chain itself does not fetch
	// from version control.
	Direct bool
}

// ParseChain parses a GOPROXY-style list. "off" ends the list; a chain
// with no proxies never fetches and answers every Fetch with ErrOff.
func ParseChain(list string, opts Options) (*Chain, error) {
	o := opts.withDefaults()
	c := &Chain{}
	for list != "" {
		var item string
		anyError := false
		i := strings.IndexAny(list, ",|")
		if i < 0 {
			item, list = list, ""
		} else {
			item, anyError, list = list[:i], list[i] == '|', list[i+1:]
		}
		item = strings.TrimSpace(item)
		switch item {
		case "":
			continue
		case "off":
			return c, nil
		case "direct":
			// "direct" ends the list, as for the go command.
			c.Direct = true
			return c, nil
		case "noproxy":
			return nil, fmt.Errorf("upstream list: %q is not allowed in an upstream list", item)
		}
		p, err := newProxy(item, &o)
		if err != nil {
			return nil, err
		}
		c.entries = append(c.entries, entry{proxy: p, anyError: anyError})
	}
	return c, nil
}

// DirectAfterAnyError reports whether the "direct" entry follows a "|":
// then version control is tried after any error of the proxies, not only
// after "not found".
func (c *Chain) DirectAfterAnyError() bool {
	n := len(c.entries)
	return c.Direct && n > 0 && c.entries[n-1].anyError
}

// Proxies returns the chain's proxies in order.
func (c *Chain) Proxies() []*Proxy {
	ps := make([]*Proxy, len(c.entries))
	for i, e := range c.entries {
		ps[i] = e.proxy
	}
	return ps
}

// Off reports whether the chain has no proxy to ask.
func (c *Chain) Off() bool { return len(c.entries) == 0 }

// String returns the chain in GOPROXY syntax, passwords redacted.
func (c *Chain) String() string {
	var b strings.Builder
	for i, e := range c.entries {
		if i > 0 {
			if c.entries[i-1].anyError {
				b.WriteByte('|')
			} else {
				b.WriteByte(',')
			}
		}
		b.WriteString(e.proxy.name)
	}
	if c.Direct {
		if b.Len() > 0 {
			if c.DirectAfterAnyError() {
				b.WriteByte('|')
			} else {
				b.WriteByte(',')
			}
		}
		b.WriteString("direct")
	}
	if b.Len() == 0 {
		return "off"
	}
	return b.String()
}

// Fetch asks the chain's proxies in turn for rel, as Proxy.Fetch does, and
// returns the proxy whose body was accepted by sink. When every proxy
// answered "not found" the error is a *NotFoundError naming each answer.
// Otherwise the error ranks as the go command ranks them: a failure that is
// not "not found" beats "not found".
func (c *Chain) Fetch(ctx context.Context, rel string, limit int64, sink func(io.Reader) error) (*Proxy, error) {
	if len(c.entries) == 0 {
		return nil, ErrOff
	}
	nf := &NotFoundError{Path: rel}
	var firstErr error
	for _, e := range c.entries {
		err := e.proxy.Fetch(ctx, rel, limit, sink)
		if err == nil {
			return e.proxy, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		if errors.Is(err, ErrNotFound) {
			nf.Answers = append(nf.Answers, answer(e.proxy, err))
			continue
		}
		if firstErr == nil {
			firstErr = err
		}
		if !e.anyError {
			return nil, err
		}
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return nil, nf
}

func answer(p *Proxy, err error) string {
	var ue *Error
	if errors.As(err, &ue) && ue.Status != 0 {
		s := fmt.Sprintf("%s: %d", p.name, ue.Status)
		if ue.Body != "" {
			s += " " + ue.Body
		}
		return s
	}
	return fmt.Sprintf("%s: %v", p.name, err)
}

// BufferSink returns a sink for Fetch that collects the body in buf,
// starting afresh on each call (each retry).
func BufferSink(buf *bytes.Buffer) func(io.Reader) error {
	return func(r io.Reader) error {
		buf.Reset()
		_, err := buf.ReadFrom(r)
		return err
	}
}

// FetchBytes is Fetch for small files: it returns the body whole.
func (c *Chain) FetchBytes(ctx context.Context, rel string, limit int64) ([]byte, *Proxy, error) {
	var buf bytes.Buffer
	p, err := c.Fetch(ctx, rel, limit, BufferSink(&buf))
	if err != nil {
		return nil, nil, err
	}
	return buf.Bytes(), p, nil
}

// FetchBytes is Fetch for small files: it returns the body whole.
func (p *Proxy) FetchBytes(ctx context.Context, rel string, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	if err := p.Fetch(ctx, rel, limit, BufferSink(&buf)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
