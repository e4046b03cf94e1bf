"""English → X phrase pairs that ship inside installed packages, behind one registry of corpus sources.

=============  ==========================================================================================  =========
source         what                                                                                        needs
=============  ==========================================================================================  =========
``cldr``       CLDR display names: territories, languages, scripts, currencies, units, months, weekdays    babel
``emoji``      emoji names, aligned over 14 languages (en de es fr it pt ru tr ar fa id ja ko zh)          emoji
``iso-codes``  ISO country, language, currency and script names (gettext catalogs)                        iso-codes
``gettext``    short interface strings of coreutils, GTK 2, GLib, shared-mime-info, xkeyboard-config       (Debian)
=============  ==========================================================================================  =========

Each source yields ``(key, english, translation)`` triples; ``key`` names the concept (``"territory:FR"``,
``"emoji:1F600"``, ``"iso_3166-1:France"``) so that the same concept can be followed across languages.
:func:`metaxfer.text.corpora.load_corpus` turns them into a :class:`~metaxfer.text.corpora.ParallelCorpus`.
"""

from __future__ import annotations

import logging
import os
import re
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from metaxfer.errors import DataFormatError, DataNotFoundError, MissingDependencyError
from metaxfer.registry import Registry

__all__ = ["CorpusSource", "CORPUS_SOURCES", "read_mo", "locale_root", "PhraseTriple"]

log = logging.getLogger(__name__)

#: One phrase pair from a packaged source: (concept key, English text, translation).
PhraseTriple = tuple[str, str, str]


@dataclass(frozen=True)
class CorpusSource:
    """A source of English → X phrase pairs.

    Attributes:
        name: Registry name.
        description: One line for listings.
        license: License of the text.
        requires: What must be installed, as a sentence for error messages.
        languages: ``languages() -> list[str]``: the target languages this installation can provide.
        pairs: ``pairs(lang) -> Iterator[PhraseTriple]`` for one target language (raw text: the corpus layer
            normalises and filters it).
    """

    name: str
    description: str
    license: str
    requires: str
    languages: Callable[[], list[str]]
    pairs: Callable[[str], Iterator[PhraseTriple]]


CORPUS_SOURCES: Registry[CorpusSource] = Registry("corpus source")


def locale_root() -> Path:
    """Where gettext catalogs are read from: ``$METAXFER_LOCALE_DIR`` or ``/usr/share/locale``."""
    return Path(os.environ.get("METAXFER_LOCALE_DIR", "/usr/share/locale"))


# ---------------------------------------------------------------------------------------------------------------- CLDR
def _import_babel():  # noqa: ANN202 - a module
    try:
        import babel
        import babel.localedata
    except ImportError as exc:  # pragma: no cover - installed with the data extra
        raise MissingDependencyError("the 'cldr' corpus needs the 'babel' package: `pip install babel`") from exc
    return babel


def _cldr_languages() -> list[str]:
    babel = _import_babel()
    # Locales without a territory: languages and language+script variants (sr_Latn, zh_Hant); 'root' is not one.
    out = []
    for ident in babel.localedata.locale_identifiers():
        parts = ident.split("_")
        if ident in ("root", "en") or any(p.isupper() or p.isdigit() for p in parts[1:]):
            continue
        out.append(ident)
    return sorted(out)


def _cldr_pairs(lang: str) -> Iterator[PhraseTriple]:
    babel = _import_babel()
    en = babel.Locale.parse("en")
    loc = babel.Locale.parse(lang)
    for kind, prefix in (("territories", "territory"), ("languages", "language"), ("scripts", "script"),
                         ("currencies", "currency")):
        src, tgt = getattr(en, kind), getattr(loc, kind)
        for code, name in src.items():
            other = tgt.get(code)
            if isinstance(name, str) and isinstance(other, str) and other != code:
                yield f"{prefix}:{code}", name, other
    en_units, units = en.unit_display_names, loc.unit_display_names
    for code in en_units:
        if code in units:
            name, other = en_units[code].get("long"), units[code].get("long")
            if isinstance(name, str) and isinstance(other, str):
                yield f"unit:{code}", name, other
    for kind in ("months", "days"):
        src, tgt = getattr(en, kind)["format"]["wide"], getattr(loc, kind)["format"]["wide"]
        for code in src:
            if code in tgt:
                yield f"{kind[:-1]}:{code}", src[code], tgt[code]


CORPUS_SOURCES.register(
    "cldr",
    CorpusSource(
        name="cldr",
        description="CLDR display names of territories, languages, scripts, currencies, units, months and weekdays",
        license="Unicode License v3 (CLDR data), BSD-3 (babel)",
        requires="the 'babel' Python package (`pip install babel`)",
        languages=_cldr_languages,
        pairs=_cldr_pairs,
    ),
)


# --------------------------------------------------------------------------------------------------------------- emoji
def _import_emoji():  # noqa: ANN202 - a module
    try:
        import emoji
    except ImportError as exc:  # pragma: no cover - installed with the data extra
        raise MissingDependencyError("the 'emoji' corpus needs the 'emoji' package: `pip install emoji`") from exc
    return emoji


def _emoji_languages() -> list[str]:
    return sorted(lang for lang in _import_emoji().LANGUAGES if lang != "en")


def _emoji_name(text: str) -> str:
    return text.strip(":").replace("_", " ")


def _emoji_pairs(lang: str) -> Iterator[PhraseTriple]:
    emoji = _import_emoji()
    if lang not in emoji.LANGUAGES:
        raise DataNotFoundError(
            f"the emoji package has no names in {lang!r}; it has: {', '.join(sorted(emoji.LANGUAGES))}"
        )
    emoji.config.load_language(lang)
    for char, data in emoji.EMOJI_DATA.items():
        if "en" in data and isinstance(data.get(lang), str):
            yield "emoji:" + "-".join(f"{ord(c):X}" for c in char), _emoji_name(data["en"]), _emoji_name(data[lang])


CORPUS_SOURCES.register(
    "emoji",
    CorpusSource(
        name="emoji",
        description="emoji names in 14 aligned languages (the 'emoji' package)",
        license="BSD (emoji package), Unicode CLDR annotations",
        requires="the 'emoji' Python package (`pip install emoji`)",
        languages=_emoji_languages,
        pairs=_emoji_pairs,
    ),
)


# ------------------------------------------------------------------------------------------------------------ gettext
_MO_MAGIC = {0x950412DE: "<", 0xDE120495: ">"}


def read_mo(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read a compiled gettext catalog (``.mo``) into ``{msgid: msgstr}``.

    Plural entries keep their singular forms; context prefixes (``msgctxt``) are dropped; untranslated entries and the
    header are left out. The charset comes from the header (UTF-8 when the header is missing or names an unknown
    charset); entries that do not decode in it are skipped.

    Args:
        path: The ``.mo`` file.

    Returns:
        The translations.

    Raises:
        DataFormatError: The file is not a gettext catalog or is truncated.
    """
    data = Path(path).read_bytes()
    if len(data) < 20:
        raise DataFormatError(f"{path} is not a gettext .mo catalog: only {len(data)} bytes")
    endian = _MO_MAGIC.get(struct.unpack("<I", data[:4])[0])
    if endian is None:
        raise DataFormatError(f"{path} is not a gettext .mo catalog (bad magic number {data[:4].hex()})")
    _revision, count, orig_at, trans_at = struct.unpack(endian + "4I", data[4:20])
    raw: list[tuple[bytes, bytes]] = []
    try:
        for i in range(count):
            olen, ooff = struct.unpack(endian + "2I", data[orig_at + 8 * i: orig_at + 8 * i + 8])
            tlen, toff = struct.unpack(endian + "2I", data[trans_at + 8 * i: trans_at + 8 * i + 8])
            if ooff + olen > len(data) or toff + tlen > len(data):
                raise struct.error("string table points past the end of the file")
            raw.append((data[ooff: ooff + olen], data[toff: toff + tlen]))
    except struct.error as exc:
        raise DataFormatError(f"{path} is a truncated or corrupt gettext catalog: {exc}") from None
    charset = "utf-8"
    for msgid, msgstr in raw:
        if msgid == b"":
            match = re.search(rb"charset=([A-Za-z0-9_.:-]+)", msgstr)
            if match:
                name = match.group(1).decode("ascii").lower()
                try:
                    "".encode(name)
                    charset = name if name != "charset" else "utf-8"
                except LookupError:
                    log.warning("%s names an unknown charset %r; reading it as UTF-8", path, name)
    out: dict[str, str] = {}
    for msgid, msgstr in raw:
        if msgid == b"" or msgstr == b"":
            continue
        msgid = msgid.split(b"\x04", 1)[-1].split(b"\x00", 1)[0]
        msgstr = msgstr.split(b"\x00", 1)[0]
        try:
            key, value = msgid.decode(charset), msgstr.decode(charset)
        except UnicodeDecodeError:
            continue
        if value:
            out.setdefault(key, value)
    return out


def _locale_dirs(domains: tuple[str, ...]) -> dict[str, Path]:
    """Locale folders holding at least one of ``domains``, keyed by language code (``sr@latin`` → ``sr_Latn``)."""
    root = locale_root()
    if not root.is_dir():
        return {}
    out: dict[str, Path] = {}
    for folder in sorted(root.iterdir()):
        name = folder.name
        if "@" in name:
            base, variant = name.split("@", 1)
            script = {"latin": "Latn", "Latn": "Latn", "cyrillic": "Cyrl"}.get(variant)
            if script is None:
                continue
            name = f"{base}_{script}"
        if name.startswith("en") or not re.fullmatch(r"[a-z]{2,3}(_[A-Za-z0-9]+)*", name):
            continue
        if any((folder / "LC_MESSAGES" / f"{d}.mo").is_file() for d in domains):
            out[name] = folder
    return out


def _catalog_pairs(lang: str, domains: tuple[str, ...], *,
                   clean: Callable[[str], str | None]) -> Iterator[PhraseTriple]:
    folders = _locale_dirs(domains)
    if lang not in folders:
        raise DataNotFoundError(
            f"no gettext catalogs {', '.join(domains)} for language {lang!r} under {locale_root()}; "
            f"languages found: {', '.join(folders) or 'none'} (Debian: `apt-get install iso-codes`)"
        )
    for domain in domains:
        path = folders[lang] / "LC_MESSAGES" / f"{domain}.mo"
        if not path.is_file():
            continue
        try:
            catalog = read_mo(path)
        except DataFormatError as exc:
            log.warning("skipping a bad gettext catalog: %s", exc)
            continue
        for msgid, msgstr in catalog.items():
            src, tgt = clean(msgid), clean(msgstr)
            if src and tgt:
                yield f"{domain}:{src}", src, tgt


_ISO_DOMAINS = ("iso_3166-1", "iso_639-2", "iso_4217", "iso_15924")
_UI_DOMAINS = ("coreutils", "gtk20", "glib20", "shared-mime-info", "xkeyboard-config")
_FORMAT_RE = re.compile(r"%|\{|\}|<|>|\$|\\|\n|\t|https?:")


def _clean_name(text: str) -> str | None:
    return text.strip() or None


def _clean_ui(text: str) -> str | None:
    """Keep short interface strings (4+ letters) without format directives or markup; drop mnemonic underscores."""
    if _FORMAT_RE.search(text) or len(text) > 60 or sum(ch.isalpha() for ch in text) < 4:
        return None
    text = re.sub(r"_(?=\w)", "", text).replace("…", "...").strip()
    return text or None


CORPUS_SOURCES.register(
    "iso-codes",
    CorpusSource(
        name="iso-codes",
        description="ISO 3166/639/4217/15924 names in ~160 languages (gettext catalogs of the iso-codes package)",
        license="LGPL-2.1+",
        requires="the Debian package iso-codes (`apt-get install iso-codes`)",
        languages=lambda: sorted(_locale_dirs(_ISO_DOMAINS)),
        pairs=lambda lang: _catalog_pairs(lang, _ISO_DOMAINS, clean=_clean_name),
    ),
)

CORPUS_SOURCES.register(
    "gettext",
    CorpusSource(
        name="gettext",
        description="short interface strings from the gettext catalogs of coreutils, GTK 2, GLib, shared-mime-info, "
        "xkeyboard-config",
        license="GPL / LGPL (per package)",
        requires="the Debian packages whose catalogs are read (coreutils, libgtk2.0-common, libglib2.0-data, "
        "shared-mime-info, xkb-data)",
        languages=lambda: sorted(_locale_dirs(_UI_DOMAINS)),
        pairs=lambda lang: _catalog_pairs(lang, _UI_DOMAINS, clean=_clean_ui),
    ),
)
