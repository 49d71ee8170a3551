"""Tests of data_prep.spoken_form: reading, cleaning, and written → spoken normalisation."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_prep.spoken_form import (
    NormWord,
    TranscriptError,
    clean_transcript,
    normalize_transcript,
    read_transcript,
    spoken_words,
)


def spoken(text: str, language: str = "en") -> list[tuple[str, tuple[str, ...]]]:
    return [(w.original, w.spoken) for w in normalize_transcript(text, language)]


def said(text: str, language: str = "en") -> list[str]:
    return spoken_words(normalize_transcript(text, language))


# --------------------------------------------------------------------------- reading, cleaning


def test_clean_transcript() -> None:
    # Decomposed é → NFC; tabs, newlines, NBSP collapse; NUL, BOM, zero-width space, RLM go.
    raw = "\ufeff  Cafe\u0301\t\tau\nlait\u00a0\x00ok\u200b \u200fend  "
    assert clean_transcript(raw) == "Café au lait ok end"
    assert clean_transcript(" \n\t ") == ""
    # ZWNJ is spelling in Persian: kept.
    assert clean_transcript("می\u200cخواهم") == "می\u200cخواهم"


def test_read_transcript(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes("\ufeffHello\r\nworld  \n".encode())
    assert read_transcript(tmp_path / "a.txt") == "Hello world"


def test_read_transcript_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("Ça coûte 5 €".encode("cp1252"))
    with pytest.raises(TranscriptError) as info:
        read_transcript(path)
    err = info.value
    assert err.reason == "not_utf8"
    assert str(path) in str(err) and "iconv" in err.message and "offset 0" in err.message
    (tmp_path / "utf16.txt").write_bytes("hello".encode("utf-16"))
    with pytest.raises(TranscriptError, match="UTF-16") as info:
        read_transcript(tmp_path / "utf16.txt")
    assert info.value.reason == "not_utf8"


@pytest.mark.parametrize("content", [b"", b"   \n\t\r\n ", "\ufeff\u200b\n".encode()])
def test_read_transcript_empty(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "e.txt").write_bytes(content)
    with pytest.raises(TranscriptError) as info:
        read_transcript(tmp_path / "e.txt")
    assert info.value.reason == "empty"


def test_read_transcript_missing(tmp_path: Path) -> None:
    with pytest.raises(TranscriptError) as info:
        read_transcript(tmp_path / "nope.txt")
    assert info.value.reason == "missing_file"


# --------------------------------------------------------------------------- written units


def test_units_keep_original_and_index() -> None:
    words = normalize_transcript("  Hello,   world!\n— Dr. Who  ", "en")
    assert words == [
        NormWord("Hello,", 0, ("hello",)),
        NormWord("world!", 1, ("world",)),
        NormWord("—", 2, ()),
        NormWord("Dr.", 3, ("doctor",)),
        NormWord("Who", 4, ("who",)),
    ]
    assert normalize_transcript("   ", "en") == []


def test_punctuation_only_tokens_say_nothing() -> None:
    assert spoken("... — !? « » - (", "fr") == [
        ("...", ()), ("—", ()), ("!?", ()), ("«", ()), ("»", ()), ("-", ()), ("(", ()),
    ]  # fmt: skip


def test_apostrophes_and_hyphens() -> None:
    assert said("Don’t say 'no' rock'n'roll well-known dogs'") == [
        "don't", "say", "no", "rock'n'roll", "well", "known", "dogs",
    ]  # fmt: skip
    assert said("L'homme aujourd'hui", "fr") == ["l'homme", "aujourd'hui"]


def test_emoji_dropped_from_spoken_kept_in_original() -> None:
    words = normalize_transcript("great 👍🏽 job😀 ❤️ 1️⃣", "en")
    assert [w.original for w in words] == ["great", "👍🏽", "job😀", "❤️", "1️⃣"]
    assert [w.spoken for w in words] == [("great",), (), ("job",), (), ("one",)]


# --------------------------------------------------------------------------- numbers


def test_cardinals_and_decimals() -> None:
    assert spoken("42, 2.5 0.05 1,000,000 -5 007") == [
        ("42,", ("forty", "two")),
        ("2.5", ("two", "point", "five")),
        ("0.05", ("zero", "point", "zero", "five")),
        ("1,000,000", ("one", "million")),
        ("-5", ("minus", "five")),
        ("007", ("zero", "zero", "seven")),
    ]
    # Decimal comma and thousands dot follow the language.
    assert said("2,5 1.000", "de") == ["zwei", "komma", "fünf", "eintausend"]
    assert said("2,5", "fr") == ["deux", "virgule", "cinq"]
    assert said("2,5", "it") == ["due", "virgola", "cinque"]


def test_ordinals() -> None:
    assert said("1st 2nd 3rd 21st 4th") == ["first", "second", "third", "twenty", "first", "fourth"]
    assert said("1er 3e 2nde", "fr") == ["premier", "troisième", "deuxième"]
    assert said("1º 2ª", "es") == ["primero", "segunda"]
    # Spanish writes a dot before the mark; "1.er"/"3.er" are the short forms.
    assert said("el 2.º piso, la 1.ª vez, el 1.er día, 3.er", "es") == [
        "el", "segundo", "piso", "la", "primera", "vez", "el", "primer", "día", "tercer",
    ]  # fmt: skip


def test_spanish_decimals_units_and_abbreviations() -> None:
    # "coma" as Spain says it (num2words says "punto"), the decimals read as a number.
    assert said("3,5 kg 12,25 3,05 2,50 €", "es") == [
        "tres", "coma", "cinco", "kilogramos", "doce", "coma", "veinticinco",
        "tres", "coma", "cero", "cinco", "dos", "coma", "cincuenta", "euros",
    ]  # fmt: skip
    assert said("2.500 euros, 15%, 7:30", "es") == [
        "dos", "mil", "quinientos", "euros", "quince", "por", "ciento", "siete", "treinta",
    ]  # fmt: skip
    assert said("Sr. López y la Dra. Ruiz", "es") == [
        "señor", "lópez", "y", "la", "doctora", "ruiz",
    ]  # fmt: skip


def test_russian_percent_agrees_with_its_number() -> None:
    assert said("1% 3% 5% 11% 21% 22% 3,5%", "ru") == [
        "один", "процент", "три", "процента", "пять", "процентов", "одиннадцать", "процентов",
        "двадцать", "один", "процент", "двадцать", "два", "процента",
        "три", "целых", "пять", "десятых", "процента",
    ]  # fmt: skip
    assert said("50 %", "ru") == ["пятьдесят", "процентов"]


def test_years_percent_currency() -> None:
    assert said("in 1999 and 2023") == [
        "in", "nineteen", "ninety", "nine", "and", "twenty", "twenty", "three",
    ]  # fmt: skip
    assert said("1990s 80s") == ["nineteen", "nineties", "eighties"]
    assert said("1999", "fr") == ["mille", "neuf", "cent", "quatre", "vingt", "dix", "neuf"]
    assert said("50%") == ["fifty", "percent"]
    assert said("50 %", "fr") == ["cinquante", "pour", "cent"]
    assert said("$5 $1 $5.99 5€") == [
        "five", "dollars", "one", "dollar", "five", "dollars", "ninety", "nine", "cents",
        "five", "euro",
    ]  # fmt: skip
    assert said("5 €", "fr") == ["cinq", "euros"]


def test_mixed_letters_and_digits() -> None:
    assert spoken("COVID-19 mp3 3D") == [
        ("COVID-19", ("covid", "nineteen")),
        ("mp3", ("mp", "three")),
        ("3D", ("three", "d")),
    ]


def test_symbols_by_language() -> None:
    assert said("A&B + C") == ["a", "and", "b", "plus", "c"]
    assert said("Tom & Jerry", "fr") == ["tom", "et", "jerry"]
    assert said("Tom & Jerry", "de") == ["tom", "und", "jerry"]
    assert said("Tom & Jerry", "es") == ["tom", "y", "jerry"]
    assert said("a # b * c = d") == ["a", "b", "c", "d"]


def test_language_without_speller_keeps_digits() -> None:
    # Swahili has no num2words speller: digits stay as written rather than as English words.
    assert said("watu 42 & 50%", "sw") == ["watu", "42", "50"]


def test_language_codes() -> None:
    assert said("2,5", "pt-BR") == ["dois", "vírgula", "cinco"]
    assert said("42", "EN_us") == ["forty", "two"]
    with pytest.raises(ValueError):
        normalize_transcript("hi", "")


# --------------------------------------------------------------------------- scripts


def test_chinese_splits_into_characters() -> None:
    words = normalize_transcript("我有42个苹果，50%的GPU训练「很好」。 再见", "zh")
    assert [(w.original, w.index, w.spoken) for w in words] == [
        ("我", 0, ("我",)),
        ("有", 0, ("有",)),
        ("42", 0, ("四", "十", "二")),
        ("个", 0, ("个",)),
        ("苹", 0, ("苹",)),
        ("果，", 0, ("果",)),
        ("50%", 0, ("百", "分", "之", "五", "十")),
        ("的", 0, ("的",)),
        ("GPU", 0, ("gpu",)),
        ("训", 0, ("训",)),
        ("练", 0, ("练",)),
        ("「很", 0, ("很",)),
        ("好」。", 0, ("好",)),
        ("再", 1, ("再",)),
        ("见", 1, ("见",)),
    ]
    # Units of one whitespace token concatenate back to it.
    rebuilt: dict[int, str] = {}
    for w in words:
        rebuilt[w.index] = rebuilt.get(w.index, "") + w.original
    assert list(rebuilt.values()) == ["我有42个苹果，50%的GPU训练「很好」。", "再见"]


ZH_READINGS = {10: "十", 15: "十五", 105: "一百零五", 110: "一百一十", 2023: "二千零二十三"}
ZH_READINGS |= {10001: "一万零一", 20000: "二万", 100000001: "一亿零一"}
ZH_READINGS |= {100010000: "一亿零一万"}


@pytest.mark.parametrize(("n", "reading"), ZH_READINGS.items())
def test_chinese_numbers(n: int, reading: str) -> None:
    assert "".join(said(str(n), "zh")) == reading


def test_japanese_kana_and_numbers() -> None:
    words = normalize_transcript("ラーメンを3杯食べた。", "ja")
    assert [w.original for w in words] == ["ラー", "メ", "ン", "を", "3", "杯", "食", "べ", "た。"]
    assert words[4].spoken == ("三",)


def test_cjk_characters_split_whatever_the_language() -> None:
    assert [w.original for w in normalize_transcript("visit 東京 now", "en")] == [
        "visit", "東", "京", "now",
    ]  # fmt: skip


def test_right_to_left_scripts_pass_through() -> None:
    assert spoken("שלום, עולם! צה״ל", "he") == [
        ("שלום,", ("שלום",)),
        ("עולם!", ("עולם",)),
        ("צה״ל", ("צהל",)),
    ]
    # Bidi marks from web copies are cleaned; Arabic-Indic digits are spelled.
    words = normalize_transcript("\u200fمرحبا بالعالم ٤٢", "ar")
    assert [w.original for w in words] == ["مرحبا", "بالعالم", "٤٢"]
    assert words[0].spoken == ("مرحبا",) and len(words[2].spoken) >= 2
    # Combining vowel signs stay inside the word.
    assert said("नमस्ते दुनिया", "hi") == ["नमस्ते", "दुनिया"]


def test_lowercasing_is_language_aware() -> None:
    assert said("İSTANBUL IRMAK", "tr") == ["istanbul", "ırmak"]
    assert said("ΟΔΟΣ Straße", "el") == ["οδος", "straße"]
