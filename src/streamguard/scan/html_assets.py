"""The HTML report's inline style and its one script (allowed by its sha256 in the page's CSP: change the text and
the hash follows, computed in ``html.py``)."""

CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1100px;padding:0 1em;color:#222}
h1{font-size:1.4em;margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
.lead{font-size:1.15em} nav a{margin-right:1em}
table{border-collapse:collapse;margin:.6em 0} th,td{padding:3px 10px;text-align:left;border-bottom:1px solid #eee}
table.sum th{font-weight:normal;color:#555} table.files td:nth-child(n+2){text-align:right}
tr.hot td:first-child{border-left:3px solid #c33}
svg.hist rect.hot{fill:#d9534f} svg.hist rect.cold{fill:#9aa8b8} svg.hist .cut{stroke:#222;stroke-dasharray:4 3}
svg.hist .lbl{font-size:11px;fill:#444}
.filter{position:sticky;top:0;background:#fff;padding:.5em 0;border-bottom:1px solid #ddd;z-index:1}
.filter select{max-width:30em} #shown{color:#555;margin-left:1em}
.fn{border:1px solid #ccc;border-radius:6px;margin:1em 0;padding:.1em .8em} .fn h3{font-size:1em}
.fn.vulnerable{border-left:4px solid #c33} .vulnerable .verdict{color:#b00} .clean .verdict{color:#070}
pre{background:#f7f7f7;padding:.5em;overflow-x:auto;font-size:12px;line-height:1.35;margin:.4em 0}
.ln{color:#999;display:inline-block;width:4.5em;user-select:none} .ev{background:#ffd6d6;display:block}
.ev .sc{float:right;color:#900} .gap{color:#999} .note{color:#666;font-size:.9em}
details summary{cursor:pointer;color:#245;margin:.3em 0}
"""

# Filters the findings by score and file; the state also reads from the URL's fragment (#min=0.8&file=a.c), which
# the per-file table's links set. Marks the body data-filters="ready" once it ran (the browser test checks it).
SCRIPT = """(function () {
  var min = document.getElementById('min'), file = document.getElementById('file');
  var out = document.getElementById('minv'), shown = document.getElementById('shown');
  var fns = document.querySelectorAll('section.fn');
  function apply() {
    var m = parseFloat(min.value) || 0, f = file.value, n = 0;
    fns.forEach(function (s) {
      var ok = parseFloat(s.getAttribute('data-score')) >= m && (!f || s.getAttribute('data-file') === f);
      s.hidden = !ok;
      if (ok) { n += 1; }
    });
    out.textContent = m.toFixed(2);
    shown.textContent = n + ' of ' + fns.length + ' shown';
  }
  function fromHash() {
    var h = new URLSearchParams(location.hash.slice(1));
    if (h.has('min')) { min.value = h.get('min'); }
    if (h.has('file')) {
      file.value = h.get('file');
      document.getElementById('findings').scrollIntoView();
    }
    apply();
  }
  min.addEventListener('input', apply);
  file.addEventListener('change', apply);
  window.addEventListener('hashchange', fromHash);
  fromHash();
  document.body.setAttribute('data-filters', 'ready');
})();
"""
