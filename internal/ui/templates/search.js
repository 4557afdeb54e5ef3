// Live search: results as you type, from /catalog. The page works the
// same without this script (the form submits to the server).
(function () {
  var input = document.getElementById("q");
  var section = document.getElementById("results");
  var list = document.getElementById("results-list");
  if (!input || !section || !list || !window.fetch) return;
  var timer = null, seq = 0;
  function item(path, detail) {
    var li = document.createElement("li");
    var a = document.createElement("a");
    a.href = "/ui/mod/" + path.replace(/[A-Z]/g, function (c) { return "!" + c.toLowerCase(); });
    a.textContent = path;
    var span = document.createElement("span");
    span.className = "meta";
    span.textContent = " " + detail;
    li.appendChild(a);
    li.appendChild(span);
    return li;
  }
  function search() {
    var q = input.value.trim();
    var mine = ++seq;
    if (q === "") { section.hidden = true; return; }
    fetch("/catalog?limit=20&q=" + encodeURIComponent(q), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (page) {
        if (!page || mine !== seq) return;
        list.textContent = "";
        page.Modules.forEach(function (m) {
          var n = m.Versions.length;
          list.appendChild(item(m.Path, n + (n === 1 ? " version" : " versions")));
        });
        if (page.Modules.length === 0) {
          var li = document.createElement("li");
          li.className = "none";
          li.textContent = "No module held matches “" + q + "”.";
          list.appendChild(li);
        }
        section.hidden = false;
        history.replaceState(null, "", "/?q=" + encodeURIComponent(q));
      })
      .catch(function () {});
  }
  input.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(search, 200);
  });
})();
