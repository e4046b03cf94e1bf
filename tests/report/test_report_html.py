"""report.html: self-contained (every picture embedded, no outside reference), escaped, and tolerant of missing
optional pieces."""

from __future__ import annotations

import base64
import dataclasses
import io
import logging
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image
from report_fixtures import make_run, write_png

from metaxfer.errors import DataFormatError
from metaxfer.report import Comparison, ComparisonError, ImageRef, render_report, write_report


class _Page(HTMLParser):
    """The parts of a page the tests look at: every tag's attributes, the results table, the text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.rows: list[list[str]] = []
        self.text: list[str] = []
        self._in_results = False
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "table" and a.get("id") == "results":
            self._in_results = True
        elif self._in_results and tag == "tr":
            self.rows.append([])
        elif self._in_results and tag == "td":
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_results = False
        elif tag == "td" and self._cell is not None:
            self.rows[-1].append(" ".join(" ".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def attrs(self, tag: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag]

    def body_rows(self) -> list[list[str]]:
        return [r for r in self.rows if r]


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    make_run(run)
    return run


def test_report_has_every_part(run_dir: Path) -> None:
    out = write_report(run_dir)
    assert out == run_dir / "report.html"
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]
    html = out.read_text(encoding="utf-8")
    page = _Page(html)
    text = " ".join(" ".join(page.text).split())
    assert "<title>Digits → glyphs: every transfer path</title>" in html
    assert "metagan (meta-gan) is the best of 6 paths with 74.1 ± 1.8% accuracy" in text
    assert "is within the 95% confidence intervals" in text
    rows = page.body_rows()
    assert [r[1].split()[0] for r in rows] == ["metagan", "protonet", "dagan+protonet", "maml", "finetune",
                                              "scratch"]
    assert rows[0] == ["1", "metagan the metagan path", "meta-gan", "74.1 ± 1.8", "600", "260.0", "7.5", "45"]
    assert rows[-1][:4] == ["6", "scratch the scratch path", "baseline", "41.2 ± 2.1"]
    for section in ("summary", "results", "accuracy-bars", "curves", "pictures", "setting", "versions", "config"):
        assert f'id="{section}"' in html, section
    for caption in ("Three target episodes.", "Samples of metagan for the five target classes.",
                    "The last sample grid the engine saved while training dagan+protonet."):
        assert caption in text
    assert "Samples at step 200" in text
    assert "Episode fingerprint 3f2a9c1e" in text and "Episode seed 0" in text
    assert "metaxfer run digits-to-glyphs --quick" in text
    assert "torch 2.13.0" in text
    assert re.search(r"<pre><code>recipe: digits-to-glyphs\nepisodes:\n  ways: 5\n  shots: 1\n  count: 600\n", html)
    assert 'id="missing"' not in html


def test_every_picture_is_embedded_and_nothing_is_fetched(run_dir: Path) -> None:
    page = _Page(write_report(run_dir).read_text(encoding="utf-8"))
    images = page.attrs("img")
    # bar chart, learning curves, 1 overall figure, 2 pictures for each of the two GAN paths
    assert len(images) == 7
    embedded = []
    for a in images:
        src = a["src"] or ""
        assert src.startswith("data:image/png;base64,"), src[:40]
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        with Image.open(io.BytesIO(data)) as img:
            assert img.format == "PNG"
            assert (img.width, img.height) == (int(a["width"]), int(a["height"]))
        embedded.append(data)
        assert a["alt"]
    for rel in ("figures/episodes.png", "paths/metagan/generated.png", "paths/metagan/samples/step-00000200.png",
                "paths/dagan-protonet/generated.png"):
        assert (run_dir / rel).read_bytes() in embedded, rel
    for tag, a in page.tags:
        for key in ("src", "href", "srcset", "action", "data", "poster", "background"):
            value = a.get(key)
            if value is not None:
                assert value.startswith("data:"), f"<{tag} {key}={value[:60]!r}> is not embedded"
    assert not page.attrs("script") and not page.attrs("iframe") and not page.attrs("object")
    assert [a.get("rel") for a in page.attrs("link")] == ["icon"]
    csp = [a["content"] for a in page.attrs("meta") if a.get("http-equiv") == "Content-Security-Policy"]
    assert csp == ["default-src 'none'; img-src data:; style-src 'unsafe-inline'"]
    style = "".join(t for t in page.text if "{" in t)
    assert "url(" not in style and "@import" not in style


def test_hostile_strings_are_escaped(tmp_path: Path) -> None:
    run = tmp_path / "run"
    comparison = make_run(run)
    evil = "<script>alert('x')</script>"
    paths = list(comparison.paths)
    paths[0] = dataclasses.replace(paths[0], name=evil, description='"><img src=x onerror=alert(1)>')
    paths[4] = dataclasses.replace(paths[4], images=[ImageRef(title="</figcaption><script>1</script>",
                                                              path=paths[4].images[0].path, caption="a & b < c")])
    hostile = dataclasses.replace(
        comparison, title="</title><script>alert(2)</script>", command="metaxfer run '</pre><script>3</script>'",
        paths=paths, config={"note": "</code></pre><script>4</script>", "url": "http://example.org/x"},
        versions={"<b>": "<i>"},
    )
    html = render_report(hostile, run_dir=run)
    page = _Page(html)
    assert "<script" not in html.lower()
    assert not page.attrs("script")
    assert [a["src"][:5] for a in page.attrs("img")] == ["data:"] * len(page.attrs("img"))
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert "&lt;/title&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in html
    assert "a &amp; b &lt; c" in html
    text = "".join(page.text)
    assert evil in text and "</code></pre><script>4</script>" in text and "http://example.org/x" in text
    assert page.body_rows()[-1][1].startswith(evil)  # scratch's row, now named evil, is last


def test_missing_optional_pieces_are_left_out(tmp_path: Path) -> None:
    run = tmp_path / "run"
    comparison = make_run(run)
    bare = dataclasses.replace(
        comparison, images=[], config={}, versions={}, description="",
        paths=[dataclasses.replace(p, run=None, images=[], metrics={}) for p in comparison.paths[:2]],
    )
    page = _Page(write_report(run, comparison=bare).read_text(encoding="utf-8"))
    ids = {a.get("id") for _, a in page.tags}
    assert {"summary", "results", "accuracy-bars", "setting"} <= ids
    assert not ids & {"curves", "pictures", "config", "versions", "missing"}
    assert len(page.attrs("img")) == 1  # only the bar chart
    assert len(page.body_rows()) == 2
    assert [len(r) for r in page.body_rows()] == [7, 7]  # no extra-metric column


def test_unreadable_pictures_are_named_not_fatal(run_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    (run_dir / "figures" / "episodes.png").unlink()
    (run_dir / "paths" / "metagan" / "generated.png").write_bytes(b"not a picture")
    Image.new("RGB", (16, 16), (200, 30, 30)).save(run_dir / "paths" / "metagan" / "grid.bmp", format="BMP")
    comparison = Comparison.load(run_dir)
    metagan = next(p for p in comparison.paths if p.name == "metagan")
    metagan.images.append(ImageRef(title="bmp", path="paths/metagan/grid.bmp"))
    (run_dir / "link.png").symlink_to(run_dir.parent / "elsewhere.png")
    write_png(run_dir.parent / "elsewhere.png")
    comparison.images.append(ImageRef(title="link", path="link.png"))
    with caplog.at_level(logging.WARNING):
        html = write_report(run_dir, comparison=comparison).read_text(encoding="utf-8")
    page = _Page(html)
    assert len(page.attrs("img")) == 5  # bars, curves, dagan+protonet's picture, two engine sample grids
    left_out = html[html.index('id="missing"'):]
    assert "figures/episodes.png (No such file or directory)" in left_out
    assert "paths/metagan/generated.png (not a readable picture" in left_out
    assert "paths/metagan/grid.bmp (BMP pictures are not embedded; save it as PNG)" in left_out
    assert "link.png (it points outside the run folder)" in left_out
    assert "episodes.png" in caplog.text


def test_errors_name_the_problem(tmp_path: Path, run_dir: Path) -> None:
    with pytest.raises(DataFormatError, match="has no comparison.json"):
        write_report(tmp_path / "empty")
    text = (run_dir / "comparison.json").read_text(encoding="utf-8").replace('"family": "gan"', '"family": "GAN"')
    (run_dir / "comparison.json").write_text(text, encoding="utf-8")
    with pytest.raises(ComparisonError, match=r"paths\[4\]\.family must be one of"):
        write_report(run_dir)
    assert not (run_dir / "report.html").exists()
