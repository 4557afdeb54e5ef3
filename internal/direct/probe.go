package direct

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/mod/module"
)

// probeTimeout bounds one probe of a repository over HTTP.
const probeTimeout = 30 * time.Second

// maxMetaBody bounds how much of a go-get page is read.
const maxMetaBody = 1 << 20

// prober finds out over HTTP whether a module's repository exists and
// accepts the Fetcher's credentials, for classifying failures of the go
// command. It uses the proxy settings and netrc credentials of the go
// processes' environment.
type prober struct {
	env      map[string]string
	insecure string
	creds    *netrc
	client   *http.Client
	// rewrite, if set, returns the URL git fetches for a repository URL
	// (the Fetcher's git configuration may send a host's repositories
	// over ssh), and false if it cannot tell: only what git reaches over
	// HTTP is probed over HTTP.
	rewrite func(ctx context.Context, url string) (string, bool)
}

func newProber(env map[string]string, insecure string, creds *netrc) *prober {
	p := &prober{env: env, insecure: insecure, creds: creds}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = p.proxy
	p.client = &http.Client{Transport: tr}
	return p
}

// repoKind probes the repository holding module path: its go-import meta
// tag (or a well-known form of path), then its info/refs. It returns
// NotFound for 404 or 410, Auth for 401 or 403, Network when the host
// cannot be reached, and Failed otherwise (including a repository that
// answers normally, or cannot be probed over HTTP).
func (p *prober) repoKind(ctx context.Context, path string) Kind {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	repo, kind, ok := p.repoURL(ctx, path)
	if !ok {
		return kind
	}
	if p.rewrite != nil {
		if repo, ok = p.rewrite(ctx, repo); !ok {
			return Failed
		}
	}
	if !p.mayFetch(path, repo) {
		// The go command refuses such a repository; credentials are not
		// sent to it in clear text either.
		return Failed
	}
	return p.infoRefsKind(ctx, repo)
}

// repoURL returns the URL of the git repository holding path. When it
// cannot, ok is false and kind says why.
func (p *prober) repoURL(ctx context.Context, path string) (repo string, kind Kind, ok bool) {
	elems := strings.Split(path, "/")
	switch {
	case elems[0] == "github.com":
		if len(elems) < 3 {
			return "", NotFound, false
		}
		return "https://" + strings.Join(elems[:3], "/"), 0, true
	}
	for i, e := range elems {
		if i > 0 && strings.HasSuffix(e, ".git") {
			// The go command's "<repo>.git/<dir>" form needs no meta tag.
			root := strings.Join(elems[:i+1], "/")
			return p.schemeFor(ctx, path, root)
		}
	}

	schemes := []string{"https"}
	if p.isInsecure(path) {
		schemes = append(schemes, "http")
	}
	kind = Network
	for _, scheme := range schemes {
		// Like the go command, send credentials for go-get pages over
		// https only.
		resp, err := p.get(ctx, scheme+"://"+path+"?go-get=1", scheme == "https")
		if err != nil {
			kind = errKind(ctx)
			continue
		}
		imports, _ := parseMetaGoImports(io.LimitReader(resp.Body, maxMetaBody))
		resp.Body.Close()
		for _, mi := range imports {
			if path != mi.Prefix && !strings.HasPrefix(path, mi.Prefix+"/") {
				continue
			}
			if mi.VCS != "git" {
				return "", Failed, false
			}
			return mi.RepoRoot, 0, true
		}
		return "", statusKind(resp.StatusCode), false
	}
	return "", kind, false
}

// schemeFor returns the URL of a repository named by its path root: https,
// or http for an Insecure host that cannot be reached over https.
func (p *prober) schemeFor(ctx context.Context, path, root string) (string, Kind, bool) {
	if !p.isInsecure(path) {
		return "https://" + root, 0, true
	}
	resp, err := p.get(ctx, "https://"+root+"/info/refs?service=git-upload-pack", true)
	if err != nil {
		if ctx.Err() != nil {
			return "", Failed, false
		}
		return "http://" + root, 0, true
	}
	resp.Body.Close()
	return "https://" + root, 0, true
}

// infoRefsKind asks a git repository for its references, the first
// request of every git fetch over HTTP, and classifies the answer.
func (p *prober) infoRefsKind(ctx context.Context, repo string) Kind {
	u, err := url.Parse(repo)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return Failed // ssh, git:// or malformed: nothing to probe over HTTP
	}
	u.User = nil
	u.Path = strings.TrimSuffix(u.Path, "/") + "/info/refs"
	u.RawPath = ""
	u.RawQuery = "service=git-upload-pack"
	resp, err := p.get(ctx, u.String(), true)
	if err != nil {
		return errKind(ctx)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return Failed // the repository answers: something else went wrong
	}
	return statusKind(resp.StatusCode)
}

// get sends a GET, with the netrc credentials for the URL's host if
// creds is set (git sends them over http and https alike).
func (p *prober) get(ctx context.Context, rawURL string, creds bool) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "agora-direct-probe")
	if login, password, ok := p.creds.lookup(req.URL.Hostname()); ok && creds {
		req.SetBasicAuth(login, password)
	}
	return p.client.Do(req)
}

// errKind is the kind of a failed request: Network, unless the context
// ended it.
func errKind(ctx context.Context) Kind {
	if ctx.Err() != nil {
		return Failed
	}
	return Network
}

// statusKind maps a status that did not lead to a repository.
func statusKind(code int) Kind {
	switch code {
	case http.StatusNotFound, http.StatusGone:
		return NotFound
	case http.StatusUnauthorized, http.StatusForbidden:
		return Auth
	}
	return Failed
}

// isInsecure reports whether path matches the Insecure patterns.
func (p *prober) isInsecure(path string) bool {
	return p.insecure != "" && module.MatchPrefixPatterns(p.insecure, path)
}

// mayFetch reports whether the go command fetches module path's
// repository at repo under the Fetcher's settings: over https or ssh
// always, over anything else (http://, git://) only for a module in
// Options.Insecure.
func (p *prober) mayFetch(path, repo string) bool {
	u, err := url.Parse(repo)
	if err != nil {
		return false
	}
	switch u.Scheme {
	case "https", "ssh", "git+ssh":
		return true
	}
	return p.isInsecure(path)
}

// proxy chooses the proxy for a request the way the go command and
// net/http do, but from the go processes' environment rather than
// Agora's process: HTTPS_PROXY or HTTP_PROXY (either case) by scheme,
// except for loopback hosts and hosts matched by NO_PROXY.
func (p *prober) proxy(req *http.Request) (*url.URL, error) {
	var v string
	switch req.URL.Scheme {
	case "https":
		v = firstSet(p.env["HTTPS_PROXY"], p.env["https_proxy"])
	case "http":
		v = firstSet(p.env["HTTP_PROXY"], p.env["http_proxy"])
	}
	if v == "" || !p.useProxy(req.URL) {
		return nil, nil
	}
	u, err := url.Parse(v)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "socks5" && u.Scheme != "socks5h") {
		if u2, err2 := url.Parse("http://" + v); err2 == nil && u2.Host != "" {
			return u2, nil
		}
		return nil, errors.New("invalid proxy address in the environment")
	}
	return u, nil
}

// useProxy reports whether a request for u goes through a proxy.
func (p *prober) useProxy(u *url.URL) bool {
	host := strings.ToLower(u.Hostname())
	if host == "localhost" {
		return false
	}
	ip := net.ParseIP(host)
	if ip != nil && ip.IsLoopback() {
		return false
	}
	port := u.Port()
	for _, e := range strings.Split(firstSet(p.env["NO_PROXY"], p.env["no_proxy"]), ",") {
		e = strings.ToLower(strings.TrimSpace(e))
		switch {
		case e == "":
			continue
		case e == "*":
			return false
		}
		if _, cidr, err := net.ParseCIDR(e); err == nil {
			if ip != nil && cidr.Contains(ip) {
				return false
			}
			continue
		}
		if h, pt, err := net.SplitHostPort(e); err == nil {
			if pt != port {
				continue
			}
			e = h
		}
		if eip := net.ParseIP(e); eip != nil {
			if ip != nil && eip.Equal(ip) {
				return false
			}
			continue
		}
		if strings.HasPrefix(e, "*.") {
			e = e[1:]
		}
		if strings.HasPrefix(e, ".") {
			if strings.HasSuffix(host, e) {
				return false
			}
			continue
		}
		if host == e || strings.HasSuffix(host, "."+e) {
			return false
		}
	}
	return true
}

func firstSet(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// metaImport is one go-import meta tag.
type metaImport struct {
	Prefix, VCS, RepoRoot string
}

// parseMetaGoImports returns the go-import meta tags in the head of an
// HTML page, the way the go command finds them (cmd/go/internal/vcs).
func parseMetaGoImports(r io.Reader) ([]metaImport, error) {
	d := xml.NewDecoder(r)
	d.CharsetReader = func(charset string, input io.Reader) (io.Reader, error) {
		switch strings.ToLower(charset) {
		case "utf-8", "ascii":
			return input, nil
		}
		return nil, fmt.Errorf("can't decode XML document using charset %q", charset)
	}
	d.Strict = false
	var imports []metaImport
	for {
		t, err := d.RawToken()
		if err != nil {
			if err == io.EOF || len(imports) > 0 {
				return imports, nil
			}
			return nil, err
		}
		if e, ok := t.(xml.StartElement); ok && strings.EqualFold(e.Name.Local, "body") {
			return imports, nil
		}
		if e, ok := t.(xml.EndElement); ok && strings.EqualFold(e.Name.Local, "head") {
			return imports, nil
		}
		e, ok := t.(xml.StartElement)
		if !ok || !strings.EqualFold(e.Name.Local, "meta") || attrValue(e.Attr, "name") != "go-import" {
			continue
		}
		if f := strings.Fields(attrValue(e.Attr, "content")); len(f) == 3 || len(f) == 4 {
			imports = append(imports, metaImport{Prefix: f[0], VCS: f[1], RepoRoot: f[2]})
		}
	}
}

func attrValue(attrs []xml.Attr, name string) string {
	for _, a := range attrs {
		if strings.EqualFold(a.Name.Local, name) {
			return a.Value
		}
	}
	return ""
}
