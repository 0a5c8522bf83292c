"""``corpus report``: the HTML report of the sample build, checked as text and rendered in
a real headless browser (Debian's chromium)."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from pipelines.cli import run
from tests.sample_corpus import sample_corpus

SECTIONS = ("summary", "counts", "sites", "verdicts", "rejected", "accounting", "lengths", "shards", "licences",
            "inputs")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic")
# Added to a copy of the report only: the page itself has no script. It writes what the
# browser made of the images into the page title, which --dump-dom prints.
IMAGE_PROBE = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const decoded = images.filter(i => i.complete && i.naturalWidth > 200 && i.naturalHeight > 100);
  document.title = `images ${images.length} decoded ${decoded.length} width ${document.body.scrollWidth}`;
});
</script>"""


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("report") / "report.html"
    assert run(["report", str(sample_corpus()), "--to", str(target)]) == 0
    return target


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("chromium not found: install Debian's chromium (.ci/run does) to render the report")


def _browser(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    command = [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_the_report_is_one_self_contained_file(report):
    html = report.read_text("utf-8")
    assert not re.search(r"""src\s*=\s*["'](?!data:)""", html), "an external asset"
    # Links to the licences' terms are the only external addresses: nothing is loaded from them.
    assert not re.search(r"""<(?!a )\w+[^>]*\shref\s*=\s*["'](?!#)""", html), "an external asset"
    assert "<script" not in html
    images = re.findall(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+" alt="[^"]+"', html)
    assert len(images) >= 6
    for section in SECTIONS:
        assert f'id="{section}"' in html


def test_the_report_shows_counts_verdicts_rejects_and_inputs(report):
    html = report.read_text("utf-8")
    assert "expected (sample)" in html and "25,316,456" in html  # sample and documented counts
    assert "small_stackexchanges" in html and "coffee.stackexchange.com" in html
    assert '<span class="verdict" style="background:#2e7d32">match</span>' in html
    assert "681,164 more than the stated total" in html  # the card's known discrepancy
    assert "body_too_long" in html  # a reject reason of the StackExchange sample
    assert "stackexchange/coffee.stackexchange.com.7z" in html  # an input file


def test_the_browser_renders_every_chart(report, tmp_path):
    probe = tmp_path / "probe.html"
    probe.write_text(report.read_text("utf-8").replace("</body>", IMAGE_PROBE + "</body>"), "utf-8")
    result = _browser(tmp_path, "--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    title = re.search(r"<title>images (\d+) decoded (\d+) width (\d+)</title>", result.stdout)
    assert title, result.stdout[:2000]
    images, decoded, width = map(int, title.groups())
    assert images >= 6 and decoded == images
    assert width <= 1300  # nothing forces the page wider than the window
    for section in SECTIONS:
        assert f'id="{section}"' in result.stdout


def test_a_screenshot_of_the_report_is_not_blank(report, tmp_path):
    shot = tmp_path / "report.png"
    result = _browser(tmp_path, "--window-size=1280,2400", f"--screenshot={shot}", report.as_uri())
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 2400)
    colours = image.resize((320, 600)).getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 50  # text, tables and charts, not an empty page


def test_report_of_a_folder_without_a_build_is_one_readable_line(tmp_path, capsys):
    assert run(["report", str(tmp_path)]) == 2
    assert "not the output of a complete build" in capsys.readouterr().err
