package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// a11yCheck runs in the page and returns a list of accessibility problems:
// form controls without a label, images without a name, a missing lang,
// text whose contrast with its background is under WCAG AA (4.5:1, 3:1 for
// large text), and a page wider than the window.
const a11yCheck = `(() => {
  const problems = [];
  if (!document.documentElement.lang) problems.push("no lang on <html>");
  for (const el of document.querySelectorAll("input, select, textarea")) {
    if (el.type === "hidden") continue;
    if (!(el.labels && el.labels.length) && !el.getAttribute("aria-label") && !el.getAttribute("aria-labelledby"))
      problems.push("control without a label: " + (el.id || el.name));
  }
  for (const el of document.querySelectorAll("img, svg[role=img]")) {
    if (!el.getAttribute("alt") && !el.getAttribute("aria-label") && !el.getAttribute("aria-labelledby"))
      problems.push("image without a text alternative");
  }
  const rgb = s => (s.match(/[\d.]+/g) || []).map(Number);
  const lum = c => { const [r, g, b] = c.slice(0, 3).map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const background = el => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length >= 3 && (c.length < 4 || c[3] > 0)) return c;
    }
    return [255, 255, 255];
  };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const seen = new Set();
  while (walker.nextNode()) {
    const el = walker.currentNode.parentElement;
    if (!el || seen.has(el) || !walker.currentNode.textContent.trim()) continue;
    seen.add(el);
    const st = getComputedStyle(el);
    if (st.visibility === "hidden" || st.display === "none" || el.closest("[hidden]") || el.closest("svg")) continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0 || r.right < 0) continue;
    const fg = rgb(st.color), bg = background(el);
    const l1 = lum(fg), l2 = lum(bg);
    const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    const size = parseFloat(st.fontSize), bold = parseInt(st.fontWeight) >= 700;
    const need = (size >= 24 || (bold && size >= 18.66)) ? 3 : 4.5;
    if (ratio < need) problems.push("contrast " + ratio.toFixed(2) + " < " + need + ": " + walker.currentNode.textContent.trim().slice(0, 40));
  }
  if (document.documentElement.scrollWidth > window.innerWidth + 1)
    problems.push("page wider than the window: " + document.documentElement.scrollWidth + " > " + window.innerWidth);
  return problems;
})()`

// TestBrowser drives the web UI in headless Chromium: search for a module
// with the keyboard, open its page, see its versions and hashes, open a
// version's go.mod; screenshots at desktop and narrow widths are kept as
// test artifacts (go test -artifacts), and every page passes basic
// accessibility checks.
func TestBrowser(t *testing.T) {
	browser := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			browser = p
			break
		}
	}
	if browser == "" {
		t.Skip("no Chromium on this machine (Debian package chromium)")
	}
	f := newFixture(t)
	a := startAgora(t, "", nil, f.agoraArgs("")...)
	mustGo(t, "", f.goEnv(t, a), "mod", "download", "example.com/hello@v1.0.0", "example.com/hello@v1.1.0", "github.com/Upper/Case@v1.0.0")
	hello := f.mod(t, "example.com/hello@v1.1.0")

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelTimeout()

	artifacts := t.ArtifactDir()
	shot := func(name string) chromedp.Action {
		return chromedp.ActionFunc(func(ctx context.Context) error {
			var buf []byte
			// Quality 100 makes a PNG.
			if err := chromedp.FullScreenshot(&buf, 100).Do(ctx); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(artifacts, name+".png"), buf, 0o644)
		})
	}
	check := func(page string) chromedp.Action {
		return chromedp.ActionFunc(func(ctx context.Context) error {
			var problems []string
			if err := chromedp.Evaluate(a11yCheck, &problems).Do(ctx); err != nil {
				return err
			}
			for _, p := range problems {
				t.Errorf("%s: %s", page, p)
			}
			return nil
		})
	}
	run := func(what string, actions ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}

	// The search field is reachable with the keyboard: Tab from the top
	// of the page until it has the focus.
	run("open the home page", chromedp.Navigate(a.URL+"/"), chromedp.WaitVisible("#q", chromedp.ByID), check("home"))
	focused := ""
	for i := 0; i < 10 && focused != "q"; i++ {
		run("tab", chromedp.KeyEvent(kb.Tab), chromedp.Evaluate(`document.activeElement.id`, &focused))
	}
	if focused != "q" {
		t.Fatalf("the search field is not reachable with Tab")
	}
	run("search", chromedp.KeyEvent("hello"), chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(`#results-list a[href="/ui/mod/example.com/hello"]`, chromedp.ByQuery),
		check("search results"), shot("search-desktop"))

	var table string
	run("open the module page", chromedp.Click(`#results-list a[href="/ui/mod/example.com/hello"]`, chromedp.ByQuery),
		chromedp.WaitVisible("table.versions", chromedp.ByQuery),
		chromedp.Text("table.versions", &table, chromedp.ByQuery),
		check("module page"), shot("module-desktop"))
	for _, want := range []string{"v1.1.0", "v1.0.0", hello.ZipHash, hello.ModHash, "checksum database"} {
		if !strings.Contains(table, want) {
			t.Errorf("the module page's table lacks %q:\n%s", want, table)
		}
	}

	var gomod, fileList string
	run("open a version", chromedp.Click(`a[href="/ui/mod/example.com/hello/@v/v1.1.0"]`, chromedp.ByQuery),
		chromedp.WaitVisible("pre.gomod", chromedp.ByQuery),
		chromedp.Text("pre.gomod", &gomod, chromedp.ByQuery),
		chromedp.Text("table.files", &fileList, chromedp.ByQuery),
		check("version page"), shot("version-desktop"))
	if !strings.Contains(gomod, "module example.com/hello") || !strings.Contains(fileList, "hello.go") {
		t.Errorf("version page: go.mod %q, files %q", gomod, fileList)
	}

	run("status page", chromedp.Navigate(a.URL+"/ui/status"), chromedp.WaitVisible("svg.chart", chromedp.ByQuery),
		check("status page"), shot("status-desktop"))

	// Narrow: a phone's width.
	run("narrow", chromedp.EmulateViewport(390, 844),
		chromedp.Navigate(a.URL+"/ui/mod/example.com/hello"), chromedp.WaitVisible("table.versions", chromedp.ByQuery),
		check("module page, narrow"), shot("module-narrow"),
		chromedp.Navigate(a.URL+"/ui/mod/example.com/hello/@v/v1.1.0"), chromedp.WaitVisible("pre.gomod", chromedp.ByQuery),
		check("version page, narrow"), shot("version-narrow"),
		chromedp.Navigate(a.URL+"/?q=case"), chromedp.WaitVisible("#results-list", chromedp.ByQuery),
		check("search, narrow"), shot("search-narrow"))
	t.Logf("screenshots in %s", artifacts)
}
