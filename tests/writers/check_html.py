#!/usr/bin/env python3
"""Loads leakscope HTML reports in headless Chromium (Debian's `chromium`, no network, no
Playwright) and checks them from inside the page.

  check_html.py golden PAGE OUTDIR   the fixed report: no console message, no error; the widest
                                     leaf frame is the largest site; a click zooms; hovering
                                     names function, file:line, blocks, bytes; the partition
                                     table; screenshots OUTDIR/golden.png, golden-zoomed.png
  check_html.py load PAGE N OUTDIR   any report (empty, 100k sites): loads without a console
                                     message or error, N sites in the data, a screenshot
  check_html.py monitor PAGE OUTDIR  checks.hpp's monitor report: the header names the kind and
                                     RSS; growing rows first, marked; the freed table, largest first
  check_html.py sampled PAGE OUTDIR  checks.hpp's sampled heap report: estimates marked with ~, the
                                     sample rate and error stated, samples behind each estimate

An instrumented copy of the page is made: a probe script first in <head> records errors
(window.onerror, console.*, failed resources); a check script last in <body> acts on the page
and writes a JSON verdict into <pre id="verdict">, which --dump-dom prints. Chromium's own log
(--enable-logging=stderr) must hold no CONSOLE line either.
"""
import json
import os
import re
import subprocess
import sys

PROBE = """<script>
window.__problems = [];
window.addEventListener("error", function (e) {
  window.__problems.push("error: " + (e.message || (e.target && (e.target.src || e.target.href)) || "resource"));
}, true);
for (const level of ["error", "warn", "log", "info", "debug"]) {
  const original = console[level];
  console[level] = function () { window.__problems.push("console." + level + ": " + [...arguments].join(" ")); original.apply(console, arguments); };
}
</script>"""

CHECK_GOLDEN = r"""<script>
(function () {
  const v = { problems: window.__problems };
  try {
    const frames = () => [...document.querySelectorAll("#flame .frame")];
    const width = (e) => parseFloat(e.style.width);
    const rootWidth = width(frames().find((e) => e.dataset.name === "all"));
    const leaves = frames().filter((e) => e.leakNode && e.leakNode.list.length === 0);
    leaves.sort((a, b) => width(b) - width(a));
    v.widest_leaf = leaves[0].dataset.name;
    v.widest_leaf_share = Math.round(100 * width(leaves[0]) / rootWidth);
    v.frames = frames().length;
    const target = frames().find((e) => e.dataset.name.startsWith("Cache::fill"));
    v.before_click_share = Math.round(100 * width(target) / rootWidth);
    const tip = document.getElementById("tip");
    target.dispatchEvent(new MouseEvent("mousemove", { bubbles: true, clientX: 10, clientY: 10 }));
    v.tooltip = tip.textContent;
    v.tooltip_shown = tip.style.display === "block";
    target.dispatchEvent(new MouseEvent("click", { bubbles: true }));
    const zoomed = frames().find((e) => e.dataset.name.startsWith("Cache::fill"));
    v.after_click_share = Math.round(100 * width(zoomed) / rootWidth);
    v.zoom_label = document.getElementById("zoomed").textContent;
    v.visible_after_click = frames().map((e) => e.dataset.name);
    v.table = [...document.querySelectorAll("#partition tbody tr")].map((tr) => [...tr.children].map((td) => td.textContent));
    v.title = document.title;
    v.summary = document.getElementById("summary").textContent;
  } catch (e) {
    v.exception = String(e && e.stack || e);
  }
  const pre = document.createElement("pre");
  pre.id = "verdict";
  pre.textContent = JSON.stringify(v);
  document.body.appendChild(pre);
})();
</script>"""

CHECK_LOAD = r"""<script>
(function () {
  const v = { problems: window.__problems };
  try {
    const data = JSON.parse(document.getElementById("leakscope-data").textContent);
    v.sites = data.sites.length;
    v.frames = document.querySelectorAll("#flame .frame").length;
    v.rows = document.querySelectorAll("#partition tbody tr").length;
  } catch (e) {
    v.exception = String(e && e.stack || e);
  }
  const pre = document.createElement("pre");
  pre.id = "verdict";
  pre.textContent = JSON.stringify(v);
  document.body.appendChild(pre);
})();
</script>"""

# What a whole-heap page shows: header, summary, both tables (with each row's class and the
# title of its bytes cell), and the tooltip of the widest leaf frame.
CHECK_WHOLE_HEAP = r"""<script>
(function () {
  const v = { problems: window.__problems };
  try {
    const rows = (sel) => [...document.querySelectorAll(sel + " tbody tr")];
    v.heading = document.getElementById("title").textContent;
    v.title = document.title;
    v.summary = document.getElementById("summary").textContent;
    v.table = rows("#partition").map((tr) => [...tr.children].map((td) => td.textContent));
    v.row_classes = rows("#partition").map((tr) => tr.className);
    v.bytes_titles = rows("#partition").map((tr) => tr.children[3].title);
    v.freed_shown = !document.getElementById("freed").hidden;
    v.freed_title = document.getElementById("freed-title").textContent;
    v.freed = rows("#released").map((tr) => [...tr.children].map((td) => td.textContent));
    const frames = [...document.querySelectorAll("#flame .frame")];
    const leaves = frames.filter((e) => e.leakNode && e.leakNode.list.length === 0);
    leaves.sort((a, b) => parseFloat(b.style.width) - parseFloat(a.style.width));
    leaves[0].dispatchEvent(new MouseEvent("mousemove", { bubbles: true, clientX: 10, clientY: 10 }));
    v.tooltip = document.getElementById("tip").textContent;
  } catch (e) {
    v.exception = String(e && e.stack || e);
  }
  const pre = document.createElement("pre");
  pre.id = "verdict";
  pre.textContent = JSON.stringify(v);
  document.body.appendChild(pre);
})();
</script>"""

CHROMIUM = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-extensions", "--disable-background-networking", "--window-size=1200,700",
            "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000"]

failures = []


def check(condition, what):
    print(("ok   " if condition else "FAIL ") + what)
    if not condition:
        failures.append(what)


def instrument(page, check_script, out_path, extra=""):
    with open(page, "rb") as f:
        html = f.read().decode("utf-8")   # the page must be valid UTF-8
    check(html.count("<head>") == 1 and html.count("</body>") == 1, "one <head> and one </body> in " + page)
    html = html.replace("<head>", "<head>" + PROBE, 1)
    html = html.replace("</body>", check_script + extra + "</body>", 1)
    with open(out_path, "w", encoding="utf-8") as f:
        f.write(html)


def run_chromium(args, url):
    proc = subprocess.run(CHROMIUM + args + [url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=180)
    log = proc.stderr.decode("utf-8", "replace")
    console = [line for line in log.splitlines() if ":CONSOLE" in line]
    return proc.returncode, proc.stdout.decode("utf-8", "replace"), console


def verdict_of(page):
    rc, dom, console = run_chromium(["--dump-dom"], "file://" + os.path.abspath(page))
    check(rc == 0, "chromium exits 0 on " + page)
    check(console == [], "no console message from " + page + (": " + "; ".join(console) if console else ""))
    m = re.search(r'<pre id="verdict">(.*?)</pre>', dom, re.S)
    check(m is not None, "the check script ran in " + page)
    if not m:
        return {}
    text = m.group(1).replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&amp;", "&")
    v = json.loads(text)
    check("exception" not in v, "no exception in the check script: " + v.get("exception", ""))
    check(v.get("problems") == [], "no error or console call in the page: " + repr(v.get("problems")))
    return v


def screenshot(page, png):
    if os.path.exists(png):
        os.unlink(png)
    rc, _, console = run_chromium(["--screenshot=" + png], "file://" + os.path.abspath(page))
    check(rc == 0 and os.path.getsize(png) > 1000 if os.path.exists(png) else False, "screenshot " + png)


def golden(page, outdir):
    probe = os.path.join(outdir, "golden-probe.html")
    instrument(page, CHECK_GOLDEN, probe)
    v = verdict_of(probe)
    if not v:
        return
    print(json.dumps(v, indent=1, ensure_ascii=False))
    check(v["widest_leaf"] == "render_page(Request const&)", "the widest leaf frame is the largest site (render_page)")
    check(v["widest_leaf_share"] == 60, "its width is its share of the bytes (120 of 200: 60%)")
    check(v["before_click_share"] == 32, "Cache::fill spans 32% before the click (64 of 200 bytes)")
    check(v["after_click_share"] == 100, "a click on Cache::fill zooms it to the full width")
    check(v["zoom_label"] == "zoomed on Cache::fill(std::map<int, std::string>&)", "the page says what it zoomed on")
    check("render_page(Request const&)" not in v["visible_after_click"], "a sibling's frames leave the zoomed view")
    check(v["tooltip_shown"], "hovering shows the tooltip")
    check(v["tooltip"] == "Cache::fill(std::map<int, std::string>&)\n/src/cache.cpp:9\n1 block, 64 bytes (32%)",
          "the tooltip names function, file:line, blocks, bytes")
    check(len(v["table"]) == 3, "the partition table has a row per site")
    check(v["table"][0] == ["1", "3", "50", "120", "60", "60", "std::string",
                            "render_page(Request const&) (/src/render.cpp:17)"], "the table's first row")
    check(v["table"][2][5] == "100", "the cumulative column ends at 100%")
    check(v["title"] == "leakscope: GET /page", "the page title names the scope")
    screenshot(page, os.path.join(outdir, "golden.png"))
    zoom_script = """<script>(function(){const t=[...document.querySelectorAll("#flame .frame")]
      .find((e)=>e.dataset.name.startsWith("Cache::fill"));t.dispatchEvent(new MouseEvent("click",{bubbles:true}));})();</script>"""
    zoomed = os.path.join(outdir, "golden-zoomed.html")
    instrument(page, "", zoomed, zoom_script)
    screenshot(zoomed, os.path.join(outdir, "golden-zoomed.png"))


def load(page, sites, outdir):
    stem = os.path.splitext(os.path.basename(page))[0]
    probe = os.path.join(outdir, stem + "-probe.html")
    instrument(page, CHECK_LOAD, probe)
    v = verdict_of(probe)
    if not v:
        return
    print(json.dumps(v))
    check(v["sites"] == sites, "%s: %d sites in the page's data" % (stem, sites))
    check(v["rows"] == min(sites, 1000), "%s: the table shows %d rows" % (stem, min(sites, 1000)))
    check(v["frames"] >= 1, "%s: the flame graph is drawn" % stem)
    screenshot(page, os.path.join(outdir, stem + ".png"))


def whole_heap(page, outdir):
    stem = os.path.splitext(os.path.basename(page))[0]
    probe = os.path.join(outdir, stem + "-probe.html")
    instrument(page, CHECK_WHOLE_HEAP, probe)
    v = verdict_of(probe)
    if not v:
        return None
    print(json.dumps(v, indent=1, ensure_ascii=False))
    screenshot(page, os.path.join(outdir, stem + ".png"))
    return v


def monitor(page, outdir):
    v = whole_heap(page, outdir)
    if not v:
        return
    check(v["heading"] == "Monitor, interval 12 since baseline, RSS 88.2 MiB", "monitor: the header names kind, interval, RSS")
    check(v["title"] == "leakscope: Monitor, interval 12 since baseline", "monitor: the page title")
    check(v["summary"].startswith("+ born since baseline, still live: 1206 blocks, 3014424 bytes (2.9 MiB); "
                                  "\u2212 freed since baseline: 363 blocks, 1276184 bytes (1.2 MiB)"),
          "monitor: the summary gives both sides")
    check("2 sites growing (marked, listed first): live bytes rose in each of the last 3 intervals" in v["summary"],
          "monitor: the summary counts the growing sites")
    check(v["row_classes"] == ["growing", "growing", "", ""], "monitor: the two growing rows first, marked")
    check(v["table"][0][7].startswith("\u25b2 growingCache::fill(") and v["table"][0][3] == "614400",
          "monitor: the first row is the growing Cache::fill, with its badge")
    check(v["table"][2][0] == "3" and v["table"][2][7].startswith("render_page("), "monitor: the largest steady site third")
    check(v["table"][2][5] == "100", "monitor: the cumulative column follows the order shown")
    check(v["freed_shown"] and v["freed_title"] == "Freed since baseline: 363 blocks, 1276184 bytes (1.2 MiB)",
          "monitor: the freed table is shown, titled with the minus side")
    check(len(v["freed"]) == 7 and [r[3] for r in v["freed"]] == ["1048576", "153600", "72000", "1280", "640", "64", "24"],
          "monitor: all seven freed sites, largest first")
    check(v["freed"][0][6] == "Log::rotate() (/home/builder/src/server/third_party/logging/implementation/rotating/log.cpp:88)",
          "monitor: a freed site names its function and file:line")
    check(v["freed"][6][6] == "(no stack)", "monitor: a freed site without a stack says so")


def sampled(page, outdir):
    v = whole_heap(page, outdir)
    if not v:
        return
    check(v["heading"] == "Live heap, RSS 45.6 MiB", "sampled: the header names kind and RSS")
    check(v["summary"] == "~10801 blocks, ~6 MiB \u00b13.1% live; ~ estimated from samples, 1 per 512 KiB allocated; "
                         "\u00b13.1% is 1 sigma of the bytes", "sampled: estimates, sample rate and error in the summary")
    check(v["table"][0][:4] == ["1", "~9000", "83", "~4718592"], "sampled: the table marks estimates")
    check(v["bytes_titles"] == ["estimated from 9 samples", "estimated from 2 samples", "estimated from 1 sample"],
          "sampled: each estimate says how many samples are behind it")
    check(v["tooltip"] == "Tree::insert(int)\n/src/tree.cpp:31\n~9000 blocks, ~4718592 bytes (75%)",
          "sampled: the tooltip marks estimates")
    check(not v["freed_shown"], "sampled: no freed table for a heap report")


if __name__ == "__main__":
    if sys.argv[1] == "golden":
        golden(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "monitor":
        monitor(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "sampled":
        sampled(sys.argv[2], sys.argv[3])
    else:
        load(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    if failures:
        print("%d check(s) failed" % len(failures))
        sys.exit(1)
