"""Language codes and writing systems: validate a language code, find the script a language is written in, and find
the scripts a piece of text actually uses.

Language codes are CLDR locale identifiers as :mod:`babel` knows them (``de``, ``pt_BR``, ``sr_Latn``, ``zh_Hant``;
``-`` is accepted for ``_``). Scripts are ISO 15924 codes (``Latn``, ``Cyrl``, ``Jpan``...). The script of a character
is read from its Unicode name (``"CYRILLIC SMALL LETTER A"`` → ``Cyrl``), which needs no extra package and covers the
scripts of every CLDR language with a sizeable corpus.
"""

from __future__ import annotations

import difflib
import functools
import unicodedata

from metaxfer.errors import MissingDependencyError, UnknownNameError

__all__ = [
    "normalize_language",
    "language_script",
    "char_script",
    "script_letters",
    "script_fraction",
    "script_members",
]

#: First word(s) of Unicode character names → ISO 15924 script code. Longer keys are tried first.
_NAME_PREFIX_TO_SCRIPT: dict[str, str] = {
    "LATIN": "Latn", "CYRILLIC": "Cyrl", "GREEK": "Grek", "COPTIC": "Copt", "ARMENIAN": "Armn", "HEBREW": "Hebr",
    "ARABIC": "Arab", "SYRIAC": "Syrc", "THAANA": "Thaa", "NKO": "Nkoo", "SAMARITAN": "Samr", "MANDAIC": "Mand",
    "DEVANAGARI": "Deva", "BENGALI": "Beng", "GURMUKHI": "Guru", "GUJARATI": "Gujr", "ORIYA": "Orya", "TAMIL": "Taml",
    "TELUGU": "Telu", "KANNADA": "Knda", "MALAYALAM": "Mlym", "SINHALA": "Sinh", "THAI": "Thai", "LAO": "Laoo",
    "TIBETAN": "Tibt", "MYANMAR": "Mymr", "GEORGIAN": "Geor", "HANGUL": "Hang", "ETHIOPIC": "Ethi", "CHEROKEE": "Cher",
    "CANADIAN SYLLABICS": "Cans", "OGHAM": "Ogam", "RUNIC": "Runr", "KHMER": "Khmr", "MONGOLIAN": "Mong",
    "HIRAGANA": "Hira", "KATAKANA": "Kana", "KATAKANA-HIRAGANA": "Kana", "BOPOMOFO": "Bopo", "CJK": "Hani",
    "IDEOGRAPHIC": "Hani", "KANGXI": "Hani", "YI": "Yiii", "TIFINAGH": "Tfng", "OL CHIKI": "Olck", "VAI": "Vaii",
    "ADLAM": "Adlm", "JAVANESE": "Java", "BALINESE": "Bali", "SUNDANESE": "Sund", "MEETEI MAYEK": "Mtei",
    "CHAKMA": "Cakm", "SAURASHTRA": "Saur", "BAMUM": "Bamu", "OSAGE": "Osge", "NEW TAI LUE": "Talu", "TAI LE": "Tale",
    "TAI THAM": "Lana", "TAI VIET": "Tavt", "BUGINESE": "Bugi", "LIMBU": "Limb", "LEPCHA": "Lepc", "GLAGOLITIC": "Glag",
    "GOTHIC": "Goth", "HANIFI ROHINGYA": "Rohg", "WANCHO": "Wcho", "SORA SOMPENG": "Sora", "SYLOTI NAGRI": "Sylo",
    "OLD ITALIC": "Ital", "CHAM": "Cham", "KAYAH LI": "Kali", "REJANG": "Rjng", "BATAK": "Batk", "BUHID": "Buhd",
    "TAGALOG": "Tglg", "HANUNOO": "Hano", "TAGBANWA": "Tagb", "KHOJKI": "Khoj", "TIRHUTA": "Tirh", "MIAO": "Plrd",
    "MENDE KIKAKUI": "Mend", "BASSA VAH": "Bass", "PAU CIN HAU": "Pauc", "WARANG CITI": "Wara", "MODI": "Modi",
}

#: Scripts that CLDR names as one code but that are written with several Unicode scripts.
_COMPOSITE_SCRIPTS: dict[str, frozenset[str]] = {
    "Jpan": frozenset({"Hani", "Hira", "Kana"}),
    "Kore": frozenset({"Hang", "Hani"}),
    "Hans": frozenset({"Hani"}),
    "Hant": frozenset({"Hani"}),
    "Hanb": frozenset({"Hani", "Bopo"}),
}


def _babel():  # noqa: ANN202 - a module
    try:
        import babel  # noqa: F401
        import babel.core
        import babel.localedata
    except ImportError as exc:  # pragma: no cover - babel is installed with the data extra
        raise MissingDependencyError(
            "language codes are checked against CLDR through the 'babel' package; install it with "
            "`pip install babel` (or `pip install metaxfer[data]`)"
        ) from exc
    return babel


@functools.cache
def _known_identifiers() -> tuple[str, ...]:
    return tuple(sorted(_babel().localedata.locale_identifiers()))


@functools.cache
def normalize_language(code: str) -> str:
    """Check a language code against CLDR and return it in canonical form.

    Args:
        code: A CLDR locale identifier such as ``"de"``, ``"pt-BR"``, ``"sr_Latn"``.

    Returns:
        The canonical identifier (``"pt_BR"``).

    Raises:
        UnknownNameError: CLDR does not know the code; the message lists the closest known codes.
    """
    babel = _babel()
    text = str(code).strip().replace("-", "_")
    try:
        locale = babel.core.Locale.parse(text)
    except (babel.core.UnknownLocaleError, ValueError, TypeError) as exc:
        close = difflib.get_close_matches(text, _known_identifiers(), n=5, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownNameError(
            f"unknown language code {code!r} ({exc}).{hint} Language codes are CLDR locale identifiers such as 'de', "
            f"'pt_BR' or 'sr_Latn' (babel.localedata.locale_identifiers() lists all {len(_known_identifiers())}); "
            f"for a language CLDR does not know, give its script explicitly (script='Latn')"
        ) from None
    return str(locale)


@functools.cache
def language_script(code: str) -> str:
    """The script a language is usually written in (ISO 15924), from the code itself or CLDR's likely subtags.

    Args:
        code: A language code (validated with :func:`normalize_language`).

    Returns:
        A script code such as ``"Latn"``, ``"Cyrl"`` (``"sr"``), ``"Latn"`` (``"sr_Latn"``), ``"Jpan"`` (``"ja"``).

    Raises:
        UnknownNameError: The code is unknown, or CLDR has no likely script for it.
    """
    babel = _babel()
    canonical = normalize_language(code)
    locale = babel.core.Locale.parse(canonical)
    if locale.script:
        return str(locale.script)
    likely = babel.core.get_global("likely_subtags")
    for key in (canonical, f"{locale.language}_{locale.territory}" if locale.territory else None, locale.language):
        if key and key in likely:
            parts = babel.core.parse_locale(likely[key])
            if parts[2]:
                return str(parts[2])
    raise UnknownNameError(
        f"CLDR has no likely script for language {code!r}; give the script explicitly (script='Latn', 'Cyrl', ...)"
    )


@functools.lru_cache(maxsize=65536)
def char_script(char: str) -> str | None:
    """The ISO 15924 script of one character, read from its Unicode name.

    Args:
        char: One character.

    Returns:
        The script code, or ``None`` for characters of no particular script (digits, punctuation, symbols, spaces)
        and for scripts outside the table.
    """
    words = unicodedata.name(char, "").split(" ")
    if words[0] in ("FULLWIDTH", "HALFWIDTH"):
        words = words[1:]
    for n in (3, 2, 1):
        script = _NAME_PREFIX_TO_SCRIPT.get(" ".join(words[:n])) if len(words) >= n else None
        if script is not None:
            return script
    return None


def script_members(script: str) -> frozenset[str]:
    """The Unicode scripts that make up a CLDR script code (``"Jpan"`` → Han, Hiragana, Katakana)."""
    return _COMPOSITE_SCRIPTS.get(script, frozenset({script}))


def script_letters(text: str) -> dict[str | None, int]:
    """Count the letters of ``text`` by script (``None`` for letters whose script is not in the table).

    Only characters of Unicode category L* (letters) are counted: digits, punctuation, marks and spaces are not.
    """
    counts: dict[str | None, int] = {}
    for ch in text:
        if unicodedata.category(ch).startswith("L"):
            s = char_script(ch)
            counts[s] = counts.get(s, 0) + 1
    return counts


def script_fraction(text: str, script: str) -> float | None:
    """The fraction of the letters of ``text`` written in ``script`` (composite codes such as ``Jpan`` count all their
    members).

    Returns:
        A number in [0, 1], or ``None`` when the text has no letters (digits or symbols only), which fits any script.
    """
    counts = script_letters(text)
    total = sum(counts.values())
    if total == 0:
        return None
    members = script_members(script)
    return sum(n for s, n in counts.items() if s in members) / total
