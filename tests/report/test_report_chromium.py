"""The HTML report renders in a real browser: headless Chromium loads it from disk (no
network), every embedded image decodes (``naturalWidth > 0``), nothing is logged to the console
and the metrics table is in the DOM. Skipped when no Chromium is installed (CI installs the
Debian package: ``.ci/run``)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from recadapt.report.build import write_report

#: injected into a copy of the report (the report itself holds no script): records resource
#: and script errors, then how many images decoded, as attributes of <body> for --dump-dom
PROBE = """<script>
window.addEventListener("error", function (event) {
  var what = event.target && event.target.tagName ? "failed " + event.target.tagName
                                                   : event.message;
  document.body.setAttribute("data-errors",
                             (document.body.getAttribute("data-errors") || "") + what + ";");
}, true);
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var decoded = images.filter(function (i) { return i.complete && i.naturalWidth > 0; });
  document.body.setAttribute("data-images-loaded", decoded.length + "/" + images.length);
});
</script>
"""


@pytest.fixture(scope="module")
def browser() -> str:
    """``$RECADAPT_CHROMIUM``, else the first Chromium/Chrome on PATH, else skip (before any
    run is trained for the test)."""
    names = [os.environ.get("RECADAPT_CHROMIUM", ""), "chromium", "chromium-browser",
             "google-chrome", "google-chrome-stable", "chrome", "headless_shell"]
    for name in names:
        found = name and shutil.which(name)
        if found:
            return found
    pytest.skip("no chromium binary found (apt-get install chromium, or set RECADAPT_CHROMIUM)")


def render(browser: str, html_path: Path, profile: Path) -> tuple[str, str]:
    """(DOM after load, browser log) of ``html_path`` with the probe injected."""
    probed = html_path.with_name("probed-" + html_path.name)
    probed.write_text(html_path.read_text(encoding="utf-8").replace("<head>", "<head>\n" + PROBE,
                                                                    1), encoding="utf-8")
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu",
               f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
               "--virtual-time-budget=5000", "--dump-dom", probed.as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, done.stderr


def body_attributes(dom: str) -> dict[str, str]:
    body = re.search(r"<body([^>]*)>", dom)
    assert body, dom[:500]
    return dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(1)))


def test_report_renders_in_headless_chromium(browser, trained_runs, tmp_path):
    out = write_report(list(trained_runs), tmp_path / "report.html")
    dom, log = render(browser, out, tmp_path / "profile")
    attributes = body_attributes(dom)
    loaded, total = map(int, attributes["data-images-loaded"].split("/"))
    assert total >= 2 and loaded == total
    assert "data-errors" not in attributes, attributes["data-errors"]
    assert ":CONSOLE" not in log, [line for line in log.splitlines() if ":CONSOLE" in line]
    assert '<table id="metrics">' in dom and "NDCG@10" in dom


def test_the_probe_notices_a_broken_image(browser, trained_runs, tmp_path):
    out = write_report(list(trained_runs), tmp_path / "report.html")
    broken = out.read_text(encoding="utf-8").replace("base64,iVBOR", "base64,AAAAA", 1)
    out.write_text(broken, encoding="utf-8")
    dom, _ = render(browser, out, tmp_path / "profile")
    attributes = body_attributes(dom)
    loaded, total = map(int, attributes["data-images-loaded"].split("/"))
    assert loaded == total - 1 and "failed IMG" in attributes.get("data-errors", "")
