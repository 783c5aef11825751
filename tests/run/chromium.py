"""Renders a report page in headless Chromium: a screenshot that must not be blank, and a check that every image
loaded. Tests call `check_report(run_dir)`; without a `chromium` binary they skip with the reason."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

BINARIES = ("chromium", "chromium-browser", "google-chrome")
WINDOW = (1280, 2400)

# Appended to a copy of the page: once everything loaded, write each image's natural width into the DOM, which
# --dump-dom prints. A broken image has naturalWidth 0.
PROBE = """<script>
window.addEventListener("load", () => {
  const out = document.createElement("pre");
  out.id = "image-check";
  out.textContent = [...document.images].map(i => `${i.getAttribute("src")}=${i.naturalWidth}`).join("\\n");
  document.body.appendChild(out);
});
</script>"""


def chromium() -> str:
    for name in BINARIES:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(f"no headless browser ({' / '.join(BINARIES)}) on PATH; on Debian: apt-get install chromium")


def _browse(page: Path, *flags: str) -> str:
    with tempfile.TemporaryDirectory() as profile:  # a fresh profile: no locks shared with other runs
        result = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                                 f"--user-data-dir={profile}", "--virtual-time-budget=5000", *flags,
                                 page.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def image_widths(page: Path) -> dict[str, int]:
    """{src: naturalWidth} of every <img> once the page loaded (the probe runs on a copy beside the page, so
    relative image paths resolve as they do for the page itself)."""
    probe = page.with_name(".probe-" + page.name)
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    try:
        dom = _browse(probe, "--dump-dom")
    finally:
        probe.unlink()
    found = re.search(r'<pre id="image-check">(.*?)</pre>', dom, re.S)
    assert found, "the page's load event never fired (or the probe was not injected)"
    return {src: int(width) for src, width in (line.rsplit("=", 1) for line in found.group(1).split("\n") if line)}


def screenshot(page: Path, out: Path) -> Path:
    _browse(page, f"--screenshot={out}", f"--window-size={WINDOW[0]},{WINDOW[1]}")
    assert out.is_file(), f"chromium wrote no screenshot to {out}"
    return out


def not_blank(png: Path) -> bool:
    """More than one colour in a good share of the picture: text, tables and plots, not a white page."""
    from PIL import Image

    with Image.open(png) as image:
        grey = image.convert("L")
        histogram = grey.histogram()
    background = max(histogram)
    return sum(histogram) - background > 0.05 * sum(histogram)


def check_report(run_dir: Path, screenshot_to: Path | None = None) -> Path:
    """Asserts RUN_DIR/report.html renders: every plot image loaded and the screenshot is not blank."""
    page = Path(run_dir) / "report.html"
    assert page.is_file(), f"{page} was not written"
    widths = image_widths(page)
    assert widths, "the report shows no plot"
    assert all(width > 0 for width in widths.values()), f"images that did not load: {widths}"
    shot = screenshot(page, screenshot_to or Path(run_dir) / "report-screenshot.png")
    assert not_blank(shot), f"{shot} is blank"
    return shot
