"""Transcripts: read them, clean them, and map each written word to the words actually spoken.

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
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Literal

from num2words import CONVERTER_CLASSES, num2words

from data_prep.errors import ItemError

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

_AND = {"en": "and", "fr": "et", "de": "und", "es": "y", "it": "e", "pt": "e", "nl": "en"}
_AND |= {"ca": "i", "pl": "i", "ru": "и", "sv": "och", "da": "og", "no": "og", "zh": "和"}
_PLUS = {"en": "plus", "fr": "plus", "de": "plus", "es": "más", "it": "più", "pt": "mais"}
_PLUS |= {"nl": "plus", "zh": "加"}
_PERCENT = {"en": "percent", "fr": "pour cent", "de": "prozent", "es": "por ciento"}
_PERCENT |= {"it": "per cento", "pt": "por cento", "nl": "procent", "ja": "パーセント"}
_PERCENT_BEFORE = {"zh": "百分之"}  # Chinese says the percent first: 百分之五十
_SYMBOL_WORDS = {"&": _AND, "+": _PLUS, "%": _PERCENT}
_CURRENCY = {"$": "USD", "€": "EUR", "£": "GBP"}
_YEAR_LANGS = frozenset({"en", "de", "nl"})  # where 1999 is said as a year, not a cardinal
# Languages writing 2,5 for two and a half and 1.000 for a thousand.
_COMMA_DECIMAL = frozenset(
    {"fr", "de", "es", "it", "pt", "nl", "ru", "pl", "cs", "sk", "sl", "hr", "sr", "bg", "uk"}
    | {"ro", "tr", "sv", "da", "no", "nb", "fi", "hu", "el", "id", "vi", "lt", "lv", "et", "ca"}
)
_ORDINAL_SUFFIX = {
    "en": re.compile(r"(st|nd|rd|th)(?![^\W\d_])", re.IGNORECASE),
    "fr": re.compile(r"(ère|ere|er|re|ème|eme|e|nde|nd)(?![^\W\d_])", re.IGNORECASE),
}
_ORDINAL_MARK = {"\ue000": "o", "\ue001": "a"}  # º ª, hidden from NFKC (which maps them to o/a)
_ABBREVIATIONS = {"en": {"dr": "doctor", "mr": "mister", "mrs": "missus", "vs": "versus"}}
_ABBREVIATIONS["en"]["etc"] = "et cetera"

_IN_WORD_DROP = frozenset("\u200c\u200d\u05f3\u05f4\u00b7\u0640")  # ZWNJ ZWJ geresh gershayim · ـ
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "ʼ": "'", "`": "'", "´": "'"})
_NUMBER = re.compile(r"(?P<neg>[-−])?(?P<cur>[$€£])?(?P<num>\d+(?:[.,]\d+)*)(?P<cur2>[$€£])?")


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


# --------------------------------------------------------------------------- numbers


@dataclass(frozen=True)
class _Lang:
    base: str  # "pt"
    n2w: str | None  # the num2words code ("pt_BR"), None if num2words lacks the language


def _parse_language(language: str) -> _Lang:
    parts = language.strip().replace("-", "_").split("_")
    base = parts[0].lower()
    if not base:
        raise ValueError("language must be an ISO 639-1 code such as 'en'")
    full = f"{base}_{parts[1].upper()}" if len(parts) > 1 else base
    n2w = full if full in CONVERTER_CLASSES else base if base in CONVERTER_CLASSES else None
    return _Lang(base, n2w)


def _words(text: str) -> list[str]:
    """num2words output → lowercase words ("forty-two," → ["forty", "two"])."""
    return _plain_words(text.replace("-", " "))


def _plain_words(text: str) -> list[str]:
    out = []
    for w in text.split():
        w = "".join(c for c in w if not unicodedata.category(c).startswith("P") or c == "'")
        if w.strip("'"):
            out.append(w.strip("'").lower())
    return out


_ZH_DIGITS = "零一二三四五六七八九"


def _zh_int(n: int) -> str:
    """Chinese reading of a non-negative integer (num2words has no Chinese)."""
    if n >= 10**16:
        return "".join(_ZH_DIGITS[int(d)] for d in str(n))
    groups = []
    while True:
        groups.append(n % 10_000)
        n //= 10_000
        if not n:
            break
    out, last = "", len(groups)
    for i in reversed(range(len(groups))):
        g = groups[i]
        if g == 0:
            continue
        if out and (g < 1000 or last - i > 1):
            out += "零"  # a gap of zeros inside the number is read once
        s, zero = "", False
        for pos, unit in ((3, "千"), (2, "百"), (1, "十"), (0, "")):
            d = g // 10**pos % 10
            if d == 0:
                zero = zero or bool(s)
                continue
            s += ("零" if zero else "") + _ZH_DIGITS[d] + unit
            zero = False
        out += s + ("", "万", "亿", "万亿")[i]
        last = i
    out = out or "零"
    return out[1:] if out.startswith("一十") else out  # 十二, not 一十二


def _zh_number(value: Decimal) -> str:
    sign, (whole, _, frac) = ("负" if value < 0 else ""), f"{abs(value):f}".partition(".")
    digits = "".join(_ZH_DIGITS[int(d)] for d in frac)
    return sign + _zh_int(int(whole)) + (f"点{digits}" if digits else "")


def _cardinal(value: Decimal, lang: _Lang, to: str = "cardinal") -> list[str] | None:
    """Spell a number; None when the language has no speller."""
    if lang.base == "zh":
        return [_zh_number(value)]
    if lang.n2w is None:
        return None
    if value == value.to_integral_value():
        arg: int | float | Decimal = int(value)
    else:
        # Floats, not Decimals: num2words' Italian drops the fraction of a Decimal.
        arg = float(value) if len(value.as_tuple().digits) <= 15 else value
    try:
        return _words(num2words(arg, lang=lang.n2w, to=to))
    except (NotImplementedError, OverflowError, ValueError, TypeError, KeyError):
        return None if to == "cardinal" else _cardinal(value, lang)


def _parse_number(num: str, lang: _Lang) -> Decimal | None:
    """Digits with grouping and decimal separators → value, by the language's convention."""
    dec, group = (",", ".") if lang.base in _COMMA_DECIMAL else (".", ",")
    whole, _, frac = num.partition(dec)
    if dec in frac or any(s in frac for s in ".,"):
        return None
    parts = whole.split(group)
    if len(parts) > 1 and (len(parts[0]) > 3 or any(len(p) != 3 for p in parts[1:])):
        return None
    try:
        return Decimal("".join(parts) + (f".{frac}" if frac else ""))
    except InvalidOperation:
        return None


def _minus_words(lang: _Lang) -> list[str]:
    """The language's word for a negative sign ("minus", "moins"): spell -1 minus 1."""
    if lang.base == "zh":
        return ["负"]
    neg, pos = _cardinal(Decimal(-1), lang), _cardinal(Decimal(1), lang)
    if not neg or not pos:
        return []
    return neg[: len(neg) - len(pos)] if neg[-len(pos) :] == pos else []


def _number_words(m: re.Match[str], after: str, lang: _Lang) -> tuple[list[str], int]:
    """Words for a matched number and how many characters after the match they consumed."""
    num, currency = m["num"], _CURRENCY.get(m["cur"] or m["cur2"] or "")
    value = _parse_number(num, lang)
    if value is None:  # "1.2.3", "10:30" pieces...: read each digit group on its own
        return [w for part in re.split(r"[.,]", num) for w in _number_words_plain(part, lang)], 0
    sign = _minus_words(lang) if m["neg"] and value else []
    # Leading zeros ("007") and very long digit strings (IDs) are read digit by digit.
    if num.isdecimal() and ((len(num) > 1 and num[0] == "0") or len(num) > 15):
        return sign + [w for d in num for w in _number_words_plain(d, lang)], 0
    if after.startswith("%") and not currency:
        words = _cardinal(value, lang) or [num]
        if lang.base in _PERCENT_BEFORE:
            return [*sign, _PERCENT_BEFORE[lang.base], *words], 1
        return sign + words + _plain_words(_PERCENT.get(lang.base, "")), 1
    if currency:
        return sign + _currency_words(value, currency, lang, num), 0
    suffix = _ORDINAL_SUFFIX.get(lang.base)
    ordinal = suffix.match(after) if suffix else None
    mark = after[:1] if after[:1] in _ORDINAL_MARK else ""
    if (ordinal or mark) and num.isdecimal() and not m["neg"]:
        words = _cardinal(value, lang, to="ordinal") or [num]
        if _ORDINAL_MARK.get(mark) == "a":  # feminine: primero → primera
            words = [w[:-1] + "a" if w.endswith("o") else w for w in words]
        return words, len(ordinal[0]) if ordinal else 1
    decade = after[:1] == "s" and not after[1:2].isalpha()
    if lang.base == "en" and decade and num.isdecimal() and num.endswith("0"):
        words = _cardinal(value, lang, to="year" if len(num) == 4 else "cardinal") or [num]
        last = words[-1]
        words[-1] = last[:-1] + "ies" if last.endswith("y") else last + "s"  # 1990s, 80s
        return words, 1
    if lang.base in _YEAR_LANGS and len(num) == 4 and not m["neg"] and 1100 <= value < 2100:
        return _cardinal(value, lang, to="year") or [num], 0
    return sign + (_cardinal(value, lang) or [num]), 0


def _number_words_plain(digits: str, lang: _Lang) -> list[str]:
    if not digits:
        return []
    return _cardinal(Decimal(int(digits)), lang) or [digits]


def _currency_words(value: Decimal, code: str, lang: _Lang, num: str) -> list[str]:
    amount = _cardinal(value, lang) or [num]
    if lang.n2w is None:
        return amount
    if value != value.to_integral_value():
        try:  # "five dollars, ninety-nine cents"
            return _words(num2words(value, lang=lang.n2w, to="currency", currency=code))
        except (NotImplementedError, KeyError, TypeError, ValueError):
            return amount
    # num2words would say "five dollars, zero cents" for whole amounts: add the unit alone.
    return amount + _currency_unit(code, int(value), lang)


def _currency_unit(code: str, count: int, lang: _Lang) -> list[str]:
    """Name of a currency agreeing with ``count`` ("dollar", "dollars"); [] if unknown."""
    if lang.n2w is None:
        return []
    converter = CONVERTER_CLASSES[lang.n2w]
    try:
        return _plain_words(converter.pluralize(count, converter.CURRENCY_FORMS[code][0]))
    except (AttributeError, KeyError, TypeError, ValueError, IndexError, NotImplementedError):
        return []


# --------------------------------------------------------------------------- spoken forms


def _lower(word: str, lang: _Lang) -> str:
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


def _spoken(unit: str, lang: _Lang) -> tuple[str, ...]:
    """Spoken words of one written unit."""
    s = unit.translate({0xBA: "\ue000", 0xAA: "\ue001"})
    s = unicodedata.normalize("NFKC", s).translate(_APOSTROPHES)
    out: list[str] = []
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        prev_alnum = i > 0 and s[i - 1].isalnum()
        m = _NUMBER.match(s, i)
        if m and (not m["neg"] or not prev_alnum):
            words, used = _number_words(m, s[m.end() :], lang)
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
        if c in _SYMBOL_WORDS:
            out += _plain_words(_SYMBOL_WORDS[c].get(lang.base, ""))
        elif c in _CURRENCY:  # "5 €" written with a space: say the unit, in the plural
            out += _currency_unit(_CURRENCY[c], 2, lang)
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
    lang = _parse_language(language)
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
