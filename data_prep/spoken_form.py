"""Spoken forms for the aligner: read and clean transcripts, map written words to what is said.

The aligner needs what was *said* ("forty two"), training targets keep what was *written*
("42,"). :func:`normalize_transcript` returns one :class:`NormWord` per written unit holding
both, so word timings found on the spoken forms carry straight back to the written words.

Written units are the whitespace tokens of :func:`clean_transcript`'s output, except that Han
and kana characters (Chinese, Japanese: no spaces between words) become one unit each, whatever
the ``language`` argument says. Neighbouring punctuation sticks to the character ("好，"), and
runs of other characters (Latin words, digits) stay whole. All units cut from one whitespace
token share its ``index``, so ``"".join`` of their ``original`` gives the token back.

Spoken forms: lowercase; numbers spelled out with ``num2words`` in the transcript's language
(cardinals, decimals, ordinals such as "3rd", "1er", "2º", years in en/de/nl, "50%", "$5");
"&", "+" and "%" said in a few languages; punctuation, emoji and other symbols dropped;
apostrophes kept inside words. Languages ``num2words`` lacks keep numbers as digits, except
Chinese, spelled here. Hebrew, Arabic and other scripts pass through letter by letter.

The spelling of numbers, currencies and symbols (Chinese included) lives in
:mod:`data_prep.spoken_numbers`. Scoring a model's output is another job, with its own rules:
:mod:`vrt_finetune.wer_normalizer`.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from data_prep.errors import ItemError
from data_prep.spoken_numbers import (
    CURRENCY,
    NUMBER,
    SYMBOL_WORDS,
    Lang,
    currency_unit,
    number_words,
    parse_language,
    plain_words,
)

TranscriptReason = Literal["missing_file", "unreadable", "not_utf8", "empty"]
"""Stable codes for :class:`TranscriptError`; reports count items per code."""


class TranscriptError(ItemError):
    """A transcript file that cannot be used; ``reason`` is one of :data:`TranscriptReason`."""

    reason: TranscriptReason


@dataclass(frozen=True)
class NormWord:
    """One written unit of a transcript and what the aligner hears for it."""

    original: str
    """The written unit as in the cleaned transcript, e.g. ``"42,"``, ``"Dr."``, ``"好，"``."""
    index: int
    """Position of the whitespace token it comes from in ``clean_transcript(text).split()``."""
    spoken: tuple[str, ...]
    """Normalised spoken words, e.g. ``("forty", "two")``; empty for punctuation or emoji."""


# --------------------------------------------------------------------------- reading, cleaning

# Invisible characters that only break token matching: BOM, zero-width space, soft hyphen, word
# joiner and bidi controls (RTL transcripts copied from the web are full of them). ZWJ/ZWNJ stay:
# they are spelling in Persian and Indic scripts.
_INVISIBLE = dict.fromkeys(
    [0xFEFF, 0x200B, 0x00AD, 0x2060, 0x200E, 0x200F, 0x061C, *range(0x202A, 0x202F)]
)
_INVISIBLE |= dict.fromkeys(range(0x2066, 0x206A))  # bidi isolates


def clean_transcript(text: str) -> str:
    """NFC-normalise, drop control and invisible characters, collapse whitespace to one space.

    Args:
        text: Raw transcript text.

    Returns:
        The cleaned text, stripped; line breaks become spaces.
    """
    text = text.translate(_INVISIBLE)
    # Control characters that are whitespace (\t, \n, \r, ...) separate words; the rest go.
    text = "".join(
        " " if c.isspace() else c
        for c in text
        if c.isspace() or unicodedata.category(c) not in ("Cc", "Cs")
    )
    return " ".join(unicodedata.normalize("NFC", text).split())


def read_transcript(path: str | Path) -> str:
    """Read a UTF-8 transcript file and return it cleaned (see :func:`clean_transcript`).

    Raises:
        TranscriptError: ``missing_file``, ``unreadable``, ``not_utf8`` (with the byte offset
            and an ``iconv`` command to fix it) or ``empty`` (nothing but whitespace).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise TranscriptError("missing_file", path, "no such file: check the corpus path") from None
    except OSError as e:
        raise TranscriptError("unreadable", path, f"cannot read it ({e})") from e
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise TranscriptError(
            "not_utf8",
            path,
            f"the file is UTF-16 (byte-order mark found): convert it with "
            f"`iconv -f UTF-16 -t UTF-8 '{path}' > fixed.txt`",
        )
    try:
        text = raw.decode("utf-8-sig")  # a UTF-8 BOM is harmless: drop it
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise TranscriptError(
            "not_utf8",
            path,
            f"not UTF-8: byte 0x{raw[e.start]:02x} at offset {e.start} "
            f"(line {line}); find the encoding (`file -i '{path}'`, often WINDOWS-1252 or "
            f"LATIN1) and convert it: `iconv -f WINDOWS-1252 -t UTF-8 '{path}' > fixed.txt`",
        ) from None
    text = clean_transcript(text)
    if not text:
        raise TranscriptError("empty", path, "the transcript is empty or whitespace only")
    return text


# --------------------------------------------------------------------------- language tables

_ABBREVIATIONS = {"en": {"dr": "doctor", "mr": "mister", "mrs": "missus", "vs": "versus"}}
_ABBREVIATIONS["en"]["etc"] = "et cetera"
# Units in the plural, the form after every number but exactly 1 ("1 kg" is said "un kilogramo").
_ABBREVIATIONS["es"] = {"kg": "kilogramos", "km": "kilómetros", "cm": "centímetros"}
_ABBREVIATIONS["es"] |= {"dr": "doctor", "dra": "doctora", "sr": "señor", "sra": "señora"}

_IN_WORD_DROP = frozenset("\u200c\u200d\u05f3\u05f4\u00b7\u0640")  # ZWNJ ZWJ geresh gershayim · ـ
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "ʼ": "'", "`": "'", "´": "'"})


def _is_cjk(c: str) -> bool:
    """Han ideographs and kana: scripts written without spaces between words."""
    o = ord(c)
    return (
        0x4E00 <= o <= 0x9FFF
        or 0x3400 <= o <= 0x4DBF
        or 0x20000 <= o <= 0x3FFFF
        or 0xF900 <= o <= 0xFAFF
        or 0x3040 <= o <= 0x30FF
        or 0x31F0 <= o <= 0x31FF
        or 0xFF66 <= o <= 0xFF9F
        or o in (0x3005, 0x3006)  # 々 〆
    ) and unicodedata.category(c).startswith("L")


def _cjk_starts_unit(c: str) -> bool:
    # The prolonged sound mark ー lengthens the kana before it: it is not a syllable of its own.
    return _is_cjk(c) and c not in "ーｰ"


# --------------------------------------------------------------------------- spoken forms


def _lower(word: str, lang: Lang) -> str:
    if lang.base in ("tr", "az"):  # dotted and dotless i
        word = word.replace("I", "ı").replace("İ", "i")
    return word.lower()


def _split_cjk(word: str) -> list[str]:
    """Spoken CJK strings (e.g. num2words' "四十二") → one spoken unit per character."""
    if not any(_is_cjk(c) for c in word):
        return [word]
    out: list[str] = []
    for c in word:
        if out and not _cjk_starts_unit(c) and not (_is_cjk(out[-1][-1]) and not _is_cjk(c)):
            out[-1] += c
        else:
            out.append(c)
    return out


def _spoken(unit: str, lang: Lang) -> tuple[str, ...]:
    """Spoken words of one written unit."""
    s = unit.translate({0xBA: "\ue000", 0xAA: "\ue001"})
    s = unicodedata.normalize("NFKC", s).translate(_APOSTROPHES)
    out: list[str] = []
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        prev_alnum = i > 0 and s[i - 1].isalnum()
        m = NUMBER.match(s, i)
        if m and (not m["neg"] or not prev_alnum):
            words, used = number_words(m, s[m.end() :], lang)
            out += words
            i = m.end() + used
            continue
        cat = unicodedata.category(c)
        if cat[0] in "LN":
            j, word = i, []
            while j < n:
                cj, cat_j = s[j], unicodedata.category(s[j])
                if cj.isdecimal():
                    break  # digits inside words ("mp3", "COVID-19") are spoken as numbers
                if cat_j[0] in "LM" and not 0xFE00 <= ord(cj) <= 0xFE0F:
                    word.append(cj)
                elif cj in _IN_WORD_DROP and j + 1 < n and s[j + 1].isalpha():
                    pass
                elif cj == "'" and j + 1 < n and s[j + 1].isalpha():
                    word.append(cj)  # don't, l'homme
                else:
                    break
                j += 1
            if j == i:  # a non-decimal number character such as "½"
                j += 1
            text = _lower("".join(word), lang)
            abbreviation = _ABBREVIATIONS.get(lang.base, {}).get(text)
            out += abbreviation.split() if abbreviation else [text]
            i = j
            continue
        if c in SYMBOL_WORDS:
            out += plain_words(SYMBOL_WORDS[c].get(lang.base, ""))
        elif c in CURRENCY:  # "5 €" written with a space: say the unit, in the plural
            out += currency_unit(CURRENCY[c], 2, lang)
        i += 1  # punctuation, emoji, variation selectors, other symbols: not spoken
    return tuple(p for w in out for p in _split_cjk(w) if p)


_OPENING = frozenset("「『（(“‘《〈【[{\"'¿¡«")


def _units(token: str) -> list[str]:
    """Split a whitespace token into written units: each Han/kana character is its own unit."""
    if not any(_is_cjk(c) for c in token):
        return [token]
    units: list[str] = []
    pending = ""  # opening punctuation waiting for the character it belongs to
    cur_is_cjk = False
    for c in token:
        if _cjk_starts_unit(c):
            units.append(pending + c)
            pending, cur_is_cjk = "", True
        elif _is_cjk(c) and units:  # ー lengthens the syllable before it
            units[-1] += c
        elif unicodedata.category(c)[0] in "LN" and (cur_is_cjk or not units):
            units.append(pending + c)  # a Latin word or number between characters
            pending, cur_is_cjk = "", False
        elif c in _OPENING or not units:
            pending += c
        else:
            units[-1] += c  # closing punctuation, or the rest of a Latin word
    if pending:
        if units:
            units[-1] += pending
        else:
            units.append(pending)
    return units


def normalize_transcript(text: str, language: str) -> list[NormWord]:
    """Split a transcript into written units with their spoken forms.

    Args:
        text: Transcript text (cleaned here with :func:`clean_transcript`).
        language: ISO 639-1 code, optionally with a region ("en", "pt-BR"); picks the number
            speller and the words for "&", "+", "%".

    Returns:
        One :class:`NormWord` per written unit, in order (empty list for empty text).
    """
    lang = parse_language(language)
    words = []
    for index, token in enumerate(clean_transcript(text).split(" ")):
        if not token:
            continue
        for unit in _units(token):
            words.append(NormWord(original=unit, index=index, spoken=_spoken(unit, lang)))
    return words


def spoken_words(words: list[NormWord]) -> list[str]:
    """The flat word sequence the aligner sees."""
    return [w for nw in words for w in nw.spoken]
