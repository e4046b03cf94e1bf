"""The parallel-corpus layer: packaged sources, the file readers and every kind of bad input."""

from __future__ import annotations

import gzip
import struct
import unicodedata
from pathlib import Path

import pytest

from metaxfer.errors import DataFormatError, DataNotFoundError, UnknownNameError
from metaxfer.text.corpora import (
    PairCleaner,
    ParallelCorpus,
    available_languages,
    load_corpus,
    normalize_text,
    read_moses,
    read_tsv,
    write_tsv,
)
from metaxfer.text.packaged import CORPUS_SOURCES, read_mo
from metaxfer.text.scripts import char_script, language_script, normalize_language, script_fraction

pytest.importorskip("babel")

ISO_DE = Path("/usr/share/locale/de/LC_MESSAGES/iso_3166-1.mo")


# ------------------------------------------------------------------------------------------------ scripts
def test_char_script_reads_unicode_names() -> None:
    assert [char_script(c) for c in "aЖΩאعअაあア中ー가"] == [
        "Latn", "Cyrl", "Grek", "Hebr", "Arab", "Deva", "Geor", "Hira", "Kana", "Hani", "Kana", "Hang"]
    assert char_script("Ａ") == "Latn"  # fullwidth
    assert char_script("1") is None and char_script(" ") is None and char_script("·") is None


def test_language_script_uses_explicit_script_or_cldr_likely_subtags() -> None:
    assert language_script("de") == "Latn"
    assert language_script("sr") == "Cyrl"
    assert language_script("sr_Latn") == "Latn"
    assert language_script("ja") == "Jpan"
    assert language_script("pt-BR") == "Latn"
    assert normalize_language("pt-BR") == "pt_BR"


def test_script_fraction_counts_letters_only_and_composite_scripts() -> None:
    assert script_fraction("Москва 2024", "Cyrl") == 1.0
    assert script_fraction("USB", "Cyrl") == 0.0
    assert script_fraction("42 %", "Cyrl") is None
    assert script_fraction("東京タワー", "Jpan") == 1.0  # Han + Katakana are both Japanese
    assert script_fraction("abcЖ", "Latn") == 0.75


def test_unknown_language_code_error_names_close_codes() -> None:
    with pytest.raises(UnknownNameError, match="unknown language code 'deu_XX'") as info:
        normalize_language("deu_XX")
    assert "CLDR locale identifiers" in str(info.value)
    with pytest.raises(UnknownNameError, match="Did you mean"):
        normalize_language("frr_")


# ------------------------------------------------------------------------------------------- packaged
def test_cldr_corpus_is_real_aligned_text() -> None:
    de = load_corpus("de")
    assert len(de) > 1500
    pairs = dict(zip(de.keys, de.pairs()))
    assert pairs["cldr/territory:DE"] == ("Germany", "Deutschland")
    assert pairs["cldr/month:1"] == ("January", "Januar")
    assert pairs["cldr/language:fr"] == ("French", "Französisch")
    assert len(set(de.keys)) == len(de)
    assert len(set(de.pairs())) == len(de)  # deduplicated
    assert all(s and t for s, t in de.pairs())
    assert de.metadata["origin"] == "cldr" and "Unicode" in de.metadata["license"]


def test_cldr_non_latin_target_keeps_its_script_and_drops_latin_leftovers() -> None:
    ru = load_corpus("ru")
    assert ru.metadata["dropped"].get("target: wrong script", 0) > 0  # untranslated unit symbols such as 'pdl'
    assert all((script_fraction(t, "Cyrl") or 1.0) >= 0.5 for t in ru.targets)
    assert dict(zip(ru.keys, ru.targets))["cldr/territory:FR"] == "Франция"


def test_emoji_corpus_is_aligned_with_keys_by_codepoint() -> None:
    pytest.importorskip("emoji")
    fr = load_corpus("fr", sources=("emoji",))
    de = load_corpus("de", sources=("emoji",))
    assert len(fr) > 3000
    fr_by_key, de_by_key = dict(zip(fr.keys, fr.targets)), dict(zip(de.keys, de.targets))
    assert fr_by_key["emoji/emoji:1F600"] == "visage rieur"
    assert de_by_key["emoji/emoji:1F600"] == "grinsendes gesicht"
    assert dict(zip(fr.keys, fr.sources))["emoji/emoji:1F600"] == "grinning face"
    assert "fr" in available_languages("emoji") and "en" not in available_languages("emoji")


@pytest.mark.debian
@pytest.mark.skipif(not ISO_DE.is_file(), reason="Debian package iso-codes not installed (apt-get install iso-codes)")
def test_iso_codes_corpus_from_gettext_catalogs() -> None:
    de = load_corpus("de", sources=("iso-codes",))
    assert dict(de.pairs())["Germany"] == "Deutschland"
    assert "de" in available_languages("iso-codes")


def test_merged_sources_prefix_keys_and_unknown_source_lists_valid_ones() -> None:
    both = load_corpus("it", sources=("cldr", "emoji"))
    assert {k.split("/")[0] for k in both.keys} == {"cldr", "emoji"}
    with pytest.raises(UnknownNameError, match="Valid corpus source names: cldr, emoji, gettext, iso-codes"):
        load_corpus("it", sources=("cldr", "wikipedia"))


def test_language_missing_from_every_source_says_what_to_install() -> None:
    with pytest.raises(DataNotFoundError, match="no corpus source among \\['emoji'\\] has English-sw pairs"):
        load_corpus("sw", sources=("emoji",))


def test_every_registered_source_lists_languages_and_yields_triples() -> None:
    for name in CORPUS_SOURCES:
        source = CORPUS_SOURCES.get(name)
        langs = source.languages()
        if not langs:  # a Debian catalog source on a machine without it
            continue
        first = next(iter(source.pairs("fr" if "fr" in langs else langs[0])))
        assert len(first) == 3 and all(isinstance(x, str) and x for x in first)


# ---------------------------------------------------------------------------------------------- .mo reader
def _mo_bytes(entries: dict[bytes, bytes], *, big_endian: bool = False) -> bytes:
    """A gettext catalog in the documented binary layout (written here, byte by byte)."""
    e = ">" if big_endian else "<"
    keys = sorted(entries)
    n = len(keys)
    orig_at, trans_at = 28, 28 + 8 * n
    data_at = trans_at + 8 * n
    blob = b""
    otab, ttab = b"", b""
    for k in keys:
        otab += struct.pack(e + "2I", len(k), data_at + len(blob))
        blob += k + b"\0"
    for k in keys:
        v = entries[k]
        ttab += struct.pack(e + "2I", len(v), data_at + len(blob))
        blob += v + b"\0"
    header = struct.pack(e + "7I", 0x950412DE, 0, n, orig_at, trans_at, 0, 0)
    return header + otab + ttab + blob


def test_read_mo_handles_plurals_contexts_charsets_and_both_byte_orders(tmp_path: Path) -> None:
    entries = {
        b"": b"Content-Type: text/plain; charset=ISO-8859-1\n",
        b"File": "Fichier".encode("latin-1"),
        b"menu\x04Open": "Ouvrir".encode("latin-1"),
        b"%d file\x00%d files": "%d fichier\x00%d fichiers".encode("latin-1"),
        b"Untranslated": b"",
        b"Caf\xe9": "Caf\xe9 cr\xe8me".encode("latin-1"),
    }
    for big in (False, True):
        path = tmp_path / f"x{big}.mo"
        path.write_bytes(_mo_bytes(entries, big_endian=big))
        got = read_mo(path)
        assert got == {"File": "Fichier", "Open": "Ouvrir", "%d file": "%d fichier", "Café": "Café crème"}


def test_read_mo_rejects_garbage_and_truncation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mo"
    bad.write_bytes(b"not a catalog at all, no")
    with pytest.raises(DataFormatError, match="bad magic number"):
        read_mo(bad)
    cut = tmp_path / "cut.mo"
    cut.write_bytes(_mo_bytes({b"a": b"b", b"c": b"d"})[:40])
    with pytest.raises(DataFormatError, match="truncated or corrupt"):
        read_mo(cut)


@pytest.mark.debian
@pytest.mark.skipif(not ISO_DE.is_file(), reason="Debian package iso-codes not installed (apt-get install iso-codes)")
def test_read_mo_matches_python_gettext_on_a_real_catalog() -> None:
    import gettext

    ours = read_mo(ISO_DE)
    with ISO_DE.open("rb") as fh:
        theirs = gettext.GNUTranslations(fh)
    for msgid in list(ours)[:200]:
        assert theirs.gettext(msgid) == ours[msgid]


# --------------------------------------------------------------------------------------------- cleaning
def test_normalize_text_nfc_controls_and_spaces() -> None:
    decomposed = "Cafe\u0301"
    assert normalize_text(f"  {decomposed}\t au\x00 lait\n") == "Café au lait"
    assert unicodedata.is_normalized("NFC", normalize_text(decomposed))


def test_pair_cleaner_policies() -> None:
    drop = PairCleaner("en", "ru")
    assert drop.add("Moscow", "Москва", where="x") == ("Moscow", "Москва")
    assert drop.add("Moscow", "Москва", where="x") is None  # duplicate
    assert drop.add("Paris", "Paris", where="x") is None  # Latin text labelled Russian
    assert drop.add("", "Рим", where="x") is None
    assert drop.add("Oslo", "Осло\ufffd", where="x") is None
    assert drop.add("  ", "", where="x") is None
    assert dict(drop.dropped) == {"duplicate": 1, "target: wrong script": 1, "source: empty": 1,
                                  "target: bad encoding": 1, "blank line": 1}
    strict = PairCleaner("en", "ru", on_invalid="error")
    with pytest.raises(DataFormatError, match="file.tsv, line 3: target 'Paris' is not in the Cyrl script expected"):
        strict.add("Paris", "Paris", where="file.tsv, line 3")
    with pytest.raises(ValueError, match="on_invalid must be 'drop' or 'error'"):
        PairCleaner("en", "ru", on_invalid="skip")  # type: ignore[arg-type]


def test_explicit_script_allows_a_language_cldr_lacks_but_checks_the_code() -> None:
    cleaner = PairCleaner("en", "xqq", tgt_script="Latn")
    assert cleaner.add("water", "wata", where="x") == ("water", "wata")
    with pytest.raises(UnknownNameError, match="not a language code"):
        PairCleaner("en", "Not A Code", tgt_script="Latn")
    with pytest.raises(UnknownNameError, match="unknown language code 'xqq'"):
        PairCleaner("en", "xqq")


# -------------------------------------------------------------------------------------------------- files
def test_tsv_round_trip_with_bom_blank_lines_header_and_gzip(tmp_path: Path) -> None:
    path = tmp_path / "pairs.tsv"
    path.write_bytes("\ufeffsrc\ttgt\nhouse\tHaus\n\n  \ncat\tKatze\textra column\n".encode())
    corpus = read_tsv(path, src_lang="en", tgt_lang="de", header=True)
    assert corpus.pairs() == [("house", "Haus"), ("cat", "Katze")]
    assert corpus.keys == ["pairs.tsv:2", "pairs.tsv:5"]
    assert corpus.metadata["dropped"] == {"blank line": 2}
    out = write_tsv(corpus, tmp_path / "copy" / "out.tsv")
    assert read_tsv(out, src_lang="en", tgt_lang="de").pairs() == corpus.pairs()
    gz = tmp_path / "pairs.tsv.gz"
    gz.write_bytes(gzip.compress("dog\tHund\n".encode()))
    assert read_tsv(gz, src_lang="en", tgt_lang="de").pairs() == [("dog", "Hund")]
    assert read_tsv(path, src_lang="en", tgt_lang="de", header=True, limit=1).pairs() == [("house", "Haus")]


def test_tsv_wrong_encoding_names_line_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "latin1.tsv"
    path.write_bytes("house\tHaus\nstreet\tStra\xdfe\n".encode("latin-1"))
    with pytest.raises(DataFormatError, match=r"latin1.tsv, line 2: bytes b'\\xdf' .* not valid utf-8.*iconv"):
        read_tsv(path, src_lang="en", tgt_lang="de")
    assert read_tsv(path, src_lang="en", tgt_lang="de", encoding="latin-1").targets == ["Haus", "Straße"]


def test_tsv_missing_column_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.tsv"
    path.write_text("house\tHaus\nno tab here\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="bad.tsv, line 2: 1 tab-separated column"):
        read_tsv(path, src_lang="en", tgt_lang="de")
    with pytest.raises(DataNotFoundError, match="does not exist"):
        read_tsv(tmp_path / "nope.tsv", src_lang="en", tgt_lang="de")


def test_tsv_unexpected_script_is_dropped_or_rejected(tmp_path: Path) -> None:
    path = tmp_path / "mixed.tsv"
    path.write_text("house\tHaus\ncat\tкошка\n", encoding="utf-8")
    assert read_tsv(path, src_lang="en", tgt_lang="de").pairs() == [("house", "Haus")]
    with pytest.raises(DataFormatError, match="line 2: target 'кошка' is not in the Latn script"):
        read_tsv(path, src_lang="en", tgt_lang="de", on_invalid="error")


def test_file_with_no_usable_pair_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.tsv"
    path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="no usable pairs"):
        read_tsv(path, src_lang="en", tgt_lang="de")


def test_moses_pair_and_mismatched_line_counts(tmp_path: Path) -> None:
    en, de = tmp_path / "c.en", tmp_path / "c.de"
    en.write_text("house\n\ncat\n", encoding="utf-8")
    de.write_text("Haus\n\nKatze\n", encoding="utf-8")
    corpus = read_moses(en, de, src_lang="en", tgt_lang="de")
    assert corpus.pairs() == [("house", "Haus"), ("cat", "Katze")] and corpus.keys == ["c.en:1", "c.en:3"]
    de.write_text("Haus\n\nKatze\nHund\nMaus\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"mismatched parallel files: .*c.en has 3 lines and .*c.de has 5"):
        read_moses(en, de, src_lang="en", tgt_lang="de")
    with pytest.raises(DataFormatError, match=r"c.de has 5 lines and .*c.en has 3"):
        read_moses(de, en, src_lang="de", tgt_lang="en")


def test_corpus_checks_lengths_and_subsets_keep_metadata() -> None:
    with pytest.raises(DataFormatError, match="give one target and one key per source"):
        ParallelCorpus("en", "de", ["a", "b"], ["x"], ["1", "2"])
    c = ParallelCorpus("en", "de", ["a", "b", "c"], ["x", "y", "z"], ["1", "2", "3"], {"origin": "t"})
    sub = c.subset([2, 0])
    assert sub.pairs() == [("c", "z"), ("a", "x")] and sub.metadata == {"origin": "t"} and sub.name == "en-de"
    assert c.reversed().pairs()[0] == ("x", "a") and c.reversed().name == "de-en"
