"""Write one marked section of ``docs/results.md`` (shared by the scripts in ``benchmarks/``).

Each script owns the text between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``; nothing outside it changes. The
file is re-read right before the write and replaced atomically, so scripts running side by side keep each other's
sections.
"""

from __future__ import annotations

import os
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results.md"


def markers(name: str) -> tuple[str, str]:
    """The start and end markers of section ``name``."""
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def write_section(name: str, body: str, *, path: Path = RESULTS, heading: str | None = None, title: str | None = None,
                  strip: bool = True) -> Path:
    """Replace section ``name`` of ``path`` with ``body`` (appended at the end, under ``heading``, when absent).

    Args:
        name: Section name, e.g. ``"gan-results"``.
        body: Markdown between the markers.
        path: The results file.
        heading: A ``## heading`` line put above a section that is new to the file.
        title: What a new file starts with (``# Results`` when not given); when given, it is also put at the top of an
            existing file that does not start with a ``# `` title.
        strip: Strip blank lines and spaces around ``body``; ``False`` writes it as it is (a leading or trailing
            newline of ``body`` then leaves a blank line next to its marker).

    Returns:
        The file written.
    """
    start, end = markers(name)
    block = f"{start}\n{body.strip() if strip else body}\n{end}"
    if path.exists():
        text = path.read_text(encoding="utf-8")
        if title is not None and not text.startswith("# "):
            text = f"{title}\n\n{text}"
    else:
        text = f"{title or '# Results'}\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        lead = f"## {heading}\n\n" if heading else ""
        text = text.rstrip("\n") + f"\n\n{lead}{block}\n"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
