package mirror

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agora-mirror/agora/internal/direct"
	"github.com/agora-mirror/agora/internal/modtest"
	"github.com/agora-mirror/agora/internal/store"
	"github.com/agora-mirror/agora/internal/upstream"
)

func TestParseList(t *testing.T) {
	long := strings.Repeat("x", 100<<10)
	cases := []struct {
		name, path, data string
		tagged, pseudo   []string
	}{
		{
			name: "empty", path: "example.com/m", data: "",
		},
		{
			name: "sorted by semver, duplicates dropped", path: "example.com/m",
			data:   "v1.10.0\nv1.2.0\nv1.2.0\nv1.9.0-rc.1\n",
			tagged: []string{"v1.2.0", "v1.9.0-rc.1", "v1.10.0"},
		},
		{
			name: "first field of each line, blank lines and spaces", path: "example.com/m",
			data:   "\n  v1.0.0 2024-01-02T03:04:05Z\n\tv1.1.0\t\r\n\n",
			tagged: []string{"v1.0.0", "v1.1.0"},
		},
		{
			name: "junk and invalid versions ignored", path: "example.com/m",
			data:   "<html>\nnot found\nlatest\n1.0.0\nv1\nv1.0\nv1.0.0+meta\nV1.0.0\nv01.0.0\nv1.3.0\n",
			tagged: []string{"v1.3.0"},
		},
		{
			name: "other majors ignored, +incompatible kept", path: "example.com/m",
			data:   "v2.0.0\nv3.1.0\nv2.0.0+incompatible\nv0.1.0\n",
			tagged: []string{"v0.1.0", "v2.0.0+incompatible"},
		},
		{
			name: "major version suffix", path: "example.com/m/v2",
			data:   "v1.0.0\nv2.1.0\nv3.0.0\nv0.1.0\nv2.0.0\n",
			tagged: []string{"v2.0.0", "v2.1.0"},
		},
		{
			name: "gopkg.in", path: "gopkg.in/yaml.v3",
			data:   "v3.0.1\nv2.4.0\n",
			tagged: []string{"v3.0.1"},
		},
		{
			name: "pseudo-versions split off", path: "example.com/m",
			data:   "v0.0.0-20240401000000-123456abcdef\nv1.0.0\nv0.0.0-20240305060708-abcdef123456\nv1.0.1-0.20240501000000-0123456789ab\n",
			tagged: []string{"v1.0.0"},
			pseudo: []string{"v0.0.0-20240305060708-abcdef123456", "v0.0.0-20240401000000-123456abcdef", "v1.0.1-0.20240501000000-0123456789ab"},
		},
		{
			// The go command splits the list on newlines; a long junk
			// line must not hide the versions after it.
			name: "a very long junk line", path: "example.com/m",
			data:   "v1.0.0\n" + long + "\nv1.1.0\n",
			tagged: []string{"v1.0.0", "v1.1.0"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tagged, pseudo := parseList([]byte(tc.data), tc.path)
			if !slices.Equal(tagged, tc.tagged) {
				t.Errorf("tagged = %v, want %v", tagged, tc.tagged)
			}
			if !slices.Equal(pseudo, tc.pseudo) {
				t.Errorf("pseudo = %v, want %v", pseudo, tc.pseudo)
			}
		})
	}
}

func TestLatestTagged(t *testing.T) {
	cases := []struct {
		sorted []string
		want   string
	}{
		{nil, ""},
		{[]string{"v0.1.0"}, "v0.1.0"},
		{[]string{"v1.0.0", "v1.1.0", "v1.10.0"}, "v1.10.0"},
		{[]string{"v1.0.0", "v1.1.0-beta"}, "v1.0.0"},
		{[]string{"v1.0.0-rc.1", "v1.1.0-alpha", "v1.1.0-beta"}, "v1.1.0-beta"},
		{[]string{"v1.0.0", "v2.0.0+incompatible"}, "v1.0.0"},
		{[]string{"v1.0.0-pre", "v2.0.0+incompatible"}, "v1.0.0-pre"},
		{[]string{"v2.0.0+incompatible", "v3.0.0+incompatible"}, "v3.0.0+incompatible"},
		{[]string{"v2.0.0+incompatible", "v3.0.0-rc.1+incompatible"}, "v2.0.0+incompatible"},
		{[]string{"v2.0.0-alpha+incompatible", "v3.0.0-rc.1+incompatible"}, "v3.0.0-rc.1+incompatible"},
	}
	for _, tc := range cases {
		if got := latestTagged(tc.sorted); got != tc.want {
			t.Errorf("latestTagged(%v) = %q, want %q", tc.sorted, got, tc.want)
		}
	}
}

func TestSortVersions(t *testing.T) {
	got := sortVersions([]string{"v1.10.0", "v1.2.0", "v1.2.0-rc.1", "v1.2.0", "v0.9.0", "v2.0.0+incompatible"})
	want := []string{"v0.9.0", "v1.2.0-rc.1", "v1.2.0", "v1.10.0", "v2.0.0+incompatible"}
	if !slices.Equal(got, want) {
		t.Errorf("sortVersions = %v, want %v", got, want)
	}
}

func TestLRU(t *testing.T) {
	// Items of 10 bytes (key "k<n>" plus 8 bytes of data), each costing
	// entryOverhead more, in room for eight.
	item := func(i int) (string, []byte) {
		return "k" + string(rune('0'+i)), []byte(strings.Repeat(string(rune('a'+i)), 8))
	}
	has := func(c *lru, i int) bool {
		k, want := item(i)
		got, ok := c.get(k)
		if ok && string(got) != string(want) {
			t.Errorf("get(%s) = %q, want %q", k, got, want)
		}
		return ok
	}

	c := newLRU(8 * (10 + entryOverhead))
	for i := range 8 {
		k, v := item(i)
		c.add(k, v, "", "")
	}
	for i := range 8 {
		if !has(c, i) {
			t.Errorf("item %d evicted while the cache was not over its bound", i)
		}
	}
	// Touch 0 so that 1 is now the least recently used.
	has(c, 0)
	k8, v8 := item(8)
	c.add(k8, v8, "", "")
	if has(c, 1) {
		t.Errorf("least recently used item 1 still cached after the bound was passed")
	}
	for _, i := range []int{0, 2, 3, 4, 5, 6, 7, 8} {
		if !has(c, i) {
			t.Errorf("item %d evicted, want only item 1 evicted", i)
		}
	}
	if c.size > c.max {
		t.Errorf("size %d over max %d", c.size, c.max)
	}

	// An item larger than an eighth of the cache is not kept.
	c.add("big", make([]byte, 20+c.max/8), "", "")
	if _, ok := c.get("big"); ok {
		t.Errorf("an item over max/8 was cached")
	}
	// Adding a key again keeps the first data.
	k, first := item(8)
	c.add(k, []byte("zzzzzzzz"), "", "")
	if got, _ := c.get(k); string(got) != string(first) {
		t.Errorf("re-adding %s replaced its data: %q", k, got)
	}

	off := newLRU(-1)
	off.add("k", []byte("v"), "", "")
	if _, ok := off.get("k"); ok {
		t.Errorf("a disabled cache returned an item")
	}
}

// A caller who arrives after the last waiter has left a fill must not be
// handed that fill's cancellation: the fill was given up for callers that
// are gone, not for the new one.
func TestFlightNewCallerAfterCancel(t *testing.T) {
	g := &flights{timeout: time.Minute}
	sawCancel, finish := make(chan struct{}), make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	errA := make(chan error, 1)
	go func() {
		errA <- g.do(ctx, "k", func(fctx context.Context) error {
			<-fctx.Done()
			close(sawCancel)
			<-finish // e.g. still hashing a large zip when cancelled
			return fctx.Err()
		})
	}()
	for g.inFlight() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-errA; !errors.Is(err, context.Canceled) {
		t.Fatalf("leaving caller got %v", err)
	}
	<-sawCancel

	errB := make(chan error, 1)
	ranB := make(chan struct{}, 1)
	go func() {
		errB <- g.do(context.Background(), "k", func(context.Context) error {
			ranB <- struct{}{}
			return nil
		})
	}()
	// Let B either join the dying flight or start its own; then let the
	// dying flight end.
	for i := 0; ; i++ {
		g.mu.Lock()
		f := g.m["k"]
		joined := f != nil && f.waiters == 1
		g.mu.Unlock()
		select {
		case <-ranB:
			joined = true
			ranB <- struct{}{}
		default:
		}
		if joined {
			break
		}
		if i > 5000 {
			t.Fatal("second caller never reached the flight")
		}
		time.Sleep(time.Millisecond)
	}
	close(finish)
	if err := <-errB; err != nil {
		t.Errorf("a caller arriving after the fill was abandoned got %v; want a fill of its own (nil)", err)
	}
}

func TestFlightTimeout(t *testing.T) {
	g := &flights{timeout: 10 * time.Millisecond}
	err := g.do(context.Background(), "k", func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a fill over the fill timeout = %v, want DeadlineExceeded", err)
	}
	if g.inFlight() != 0 {
		t.Errorf("flight not removed after it ended")
	}
}

// TestUsageFullAsksForAnEarlyFlush: noting uses of many versions asks for
// a flush before the periodic one, so the set stays bounded.
func TestUsageFullAsksForAnEarlyFlush(t *testing.T) {
	m := New(Options{Store: store.NewMemory(t.TempDir()), Catalog: modtest.Meta(t)})
	for i := range maxUsed - 1 {
		m.used("example.com/m", "v1.0."+strconv.Itoa(i))
	}
	select {
	case <-m.UsageFull():
		t.Fatalf("asked to flush at %d uses", maxUsed-1)
	default:
	}
	m.used("example.com/m", "v2.0.0")
	m.used("example.com/m", "v2.0.1") // asked once, however many more
	select {
	case <-m.UsageFull():
	default:
		t.Fatalf("not asked to flush at %d uses", maxUsed)
	}
	select {
	case <-m.UsageFull():
		t.Fatal("asked twice")
	default:
	}
}

// A go.mod that came from version control (a ",direct" fallback) queues
// nothing ahead, and neither does a route whose proxies are off.
func TestRequirementsAheadOnlyFromProxies(t *testing.T) {
	m := New(Options{Store: store.NewMemory(t.TempDir()), Catalog: modtest.Meta(t), FillAhead: AheadMod})
	defer m.Close(context.Background())
	on, err := upstream.ParseChain("http://127.0.0.1:1", upstream.Options{})
	if err != nil {
		t.Fatal(err)
	}
	off, err := upstream.ParseChain("direct", upstream.Options{})
	if err != nil {
		t.Fatal(err)
	}
	gomod := []byte("module example.com/a\n\nrequire example.com/b v1.0.0\n")
	queued := func() int {
		m.ahead.mu.Lock()
		defer m.ahead.mu.Unlock()
		n := len(m.ahead.seen)
		clear(m.ahead.seen)
		return n
	}
	proxy := Route{Source: FallbackSource{Primary: ChainSource{on}, Fallback: &fakeSource{}}}
	m.requirementsAhead(proxy, directOrigin, gomod)
	if n := queued(); n != 0 {
		t.Errorf("a go.mod from version control queued %d versions", n)
	}
	m.requirementsAhead(Route{Source: FallbackSource{Primary: ChainSource{off}, Fallback: &fakeSource{}}}, "http://127.0.0.1:1", gomod)
	if n := queued(); n != 0 {
		t.Errorf("a route whose upstream list is only direct queued %d versions", n)
	}
	m.requirementsAhead(proxy, "http://127.0.0.1:1", gomod)
	if n := queued(); n != 1 {
		t.Errorf("a go.mod from a proxy queued %d versions, want 1", n)
	}
}

func TestClassifyDirectErrors(t *testing.T) {
	for _, c := range []struct {
		kind                           direct.Kind
		notFound, timeout, sourceFails bool
	}{
		{kind: direct.NotFound, notFound: true},
		{kind: direct.Timeout, timeout: true},
		{kind: direct.Auth, sourceFails: true},
		{kind: direct.Network, sourceFails: true},
		{kind: direct.Failed, sourceFails: true},
	} {
		in := &direct.Error{Op: "download", Module: "git.example/m", Version: "v1.0.0", Kind: c.kind, Detail: "git said so"}
		err := classify("git.example/m@v1.0.0", fmt.Errorf("fill: %w", in))
		if errors.Is(err, ErrNotFound) != c.notFound || errors.Is(err, upstream.ErrTimeout) != c.timeout || errors.Is(err, ErrSourceFailed) != c.sourceFails {
			t.Errorf("%v: classify = %v: not found %v, timeout %v, source failed %v; want %v, %v, %v", c.kind, err,
				errors.Is(err, ErrNotFound), errors.Is(err, upstream.ErrTimeout), errors.Is(err, ErrSourceFailed), c.notFound, c.timeout, c.sourceFails)
		}
		if !strings.Contains(err.Error(), "git said so") {
			t.Errorf("%v: classify lost the detail: %v", c.kind, err)
		}
	}
	if err := classify("git.example/m", errors.New("open x: permission denied")); errors.Is(err, ErrSourceFailed) {
		t.Errorf("an error that is not the fetcher's matches ErrSourceFailed: %v", err)
	}
}
