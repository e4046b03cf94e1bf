"""report.html in a real browser: Debian's headless Chromium driven by selenium through Debian's chromedriver.

The report loads from a file:// address with no console error, shows the results table with a row per path in
rank order, every picture has decoded (naturalWidth > 0), and no script from a hostile path name runs. A full-page
screenshot is saved in the test's tmp_path, and copied to ``$METAXFER_TEST_ARTIFACTS`` when that is set.

Run it alone with ``.venv/bin/pytest tests/report/test_report_browser.py -v``; it needs ``apt-get install chromium
chromium-driver`` (scripts/debian-packages.txt) and ``pip install selenium``.
"""

from __future__ import annotations

import base64
import dataclasses
import importlib.util
import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from report_fixtures import make_run

from metaxfer.report import write_report

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

_SELENIUM = importlib.util.find_spec("selenium") is not None

_MISSING = [
    why for ok, why in [
        (Path(CHROMIUM).is_file(), "Debian's chromium is not installed (apt-get install chromium)"),
        (Path(CHROMEDRIVER).is_file(), "Debian's chromedriver is not installed (apt-get install chromium-driver)"),
        (_SELENIUM, "selenium is not installed (pip install selenium)"),
    ] if not ok
]

pytestmark = [
    pytest.mark.debian,
    pytest.mark.skipif(bool(_MISSING), reason="; ".join(_MISSING) or "ready"),
    pytest.mark.timeout(120),
]

HOSTILE = "<script>document.title='pwned'</script>"

# every picture decoded, or the first that has not, once the page has finished loading
_IMAGES_JS = """
return Array.from(document.images).map(i => ({complete: i.complete, width: i.naturalWidth, height: i.naturalHeight,
                                              alt: i.alt, scheme: i.currentSrc.split(':')[0]}));
"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1200,900", "--no-first-run", "--disable-extensions", "--disable-background-networking",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _load(driver: Any, page: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Open ``page``, wait for it and its pictures; return (console entries, picture states)."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get_log("browser")  # drop what an earlier page left
    driver.get(page.resolve().as_uri())
    WebDriverWait(driver, 20).until(lambda d: d.execute_script(
        "return document.readyState === 'complete' && Array.from(document.images).every(i => i.complete)"))
    return driver.get_log("browser"), driver.execute_script(_IMAGES_JS)


def _screenshot(driver: Any, out: Path) -> Path:
    """A full-page PNG (beyond the window) of the current page."""
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    out.write_bytes(base64.b64decode(shot["data"]))
    artifacts = os.environ.get("METAXFER_TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy2(out, Path(artifacts) / out.name)
    return out


def test_report_loads_cleanly_in_chromium(browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    run = tmp_path / "run"
    comparison = make_run(run)
    paths = list(comparison.paths)
    paths[0] = dataclasses.replace(paths[0], name=HOSTILE)  # scratch, the last row
    comparison = dataclasses.replace(comparison, paths=paths)
    comparison.save(run)
    report = write_report(run)

    console, images = _load(browser, report)

    errors = [e for e in console if e["level"] == "SEVERE"]
    assert not errors, f"console errors: {errors}"
    assert browser.title == "Digits → glyphs: every transfer path"  # the hostile name's script never ran

    table = browser.find_element(By.ID, "results")
    assert table.is_displayed()
    rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert [r.get_attribute("data-path") for r in rows] == ["metagan", "protonet", "dagan+protonet", "maml",
                                                           "finetune", HOSTILE]
    first = [c.text for c in rows[0].find_elements(By.TAG_NAME, "td")]
    assert first[:5] == ["1", "metagan\nthe metagan path", "meta-gan", "74.1 ± 1.8", "600"]
    assert rows[-1].find_element(By.TAG_NAME, "strong").text == HOSTILE

    assert len(images) == 7
    bad = [i for i in images if not (i["complete"] and i["width"] > 0 and i["height"] > 0)]
    assert not bad, f"pictures that did not load: {bad}"
    assert {i["scheme"] for i in images} == {"data"}
    bars = browser.find_element(By.CSS_SELECTOR, "#accuracy-bars img")
    assert bars.is_displayed() and bars.size["width"] > 300

    shot = _screenshot(browser, tmp_path / "report-screenshot.png")
    with Image.open(io.BytesIO(shot.read_bytes())) as img:
        width, height = img.size
        colours = img.convert("RGB").resize((60, 200)).getcolors(maxcolors=12000)
    assert width >= 1000 and height > 2500, (width, height)  # the whole page, not the first screen
    assert colours is not None and len(colours) > 20  # the page was painted, not a blank screen


def test_the_checks_catch_a_broken_page(browser: Any, tmp_path: Path) -> None:
    """The same checks fail on a page with a console error and a picture that cannot load."""
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"><title>x</title><link rel="icon" href="data:,">'
                    '</head><body><img src="missing.png" alt="gone">'
                    "<script>console.error('deliberate failure')</script></body></html>", encoding="utf-8")
    console, images = _load(browser, page)
    messages = " ".join(e["message"] for e in console if e["level"] == "SEVERE")
    assert "deliberate failure" in messages
    assert "missing.png" in messages
    assert images == [{"complete": True, "width": 0, "height": 0, "alt": "gone", "scheme": "file"}]
