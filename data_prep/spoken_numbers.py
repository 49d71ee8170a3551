"""Numbers, currencies and symbols spelled out as words, for the spoken side of transcripts.

:func:`number_words` reads one number matched by :data:`NUMBER` ("42", "-3,5", "$5", "1990s",
"3rd", "50%") the way the transcript's language says it, with ``num2words`` (or, for Chinese,
the speller here); :data:`SYMBOL_WORDS` and :func:`currency_unit` give the words for "&", "+",
"%" and a lone currency sign. Kept apart from :mod:`data_prep.spoken_form`, which reads and cleans
transcripts and cuts them into written units: this is the per-language spelling it calls on.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from num2words import CONVERTER_CLASSES, num2words

# --------------------------------------------------------------------------- language tables

_AND = {"en": "and", "fr": "et", "de": "und", "es": "y", "it": "e", "pt": "e", "nl": "en"}
_AND |= {"ca": "i", "pl": "i", "ru": "и", "sv": "och", "da": "og", "no": "og", "zh": "和"}
_PLUS = {"en": "plus", "fr": "plus", "de": "plus", "es": "más", "it": "più", "pt": "mais"}
_PLUS |= {"nl": "plus", "zh": "加"}
_PERCENT = {"en": "percent", "fr": "pour cent", "de": "prozent", "es": "por ciento"}
_PERCENT |= {"it": "per cento", "pt": "por cento", "nl": "procent", "ja": "パーセント"}
# A lone "%" (written apart from its number) in Russian: the genitive plural, the form after
# most numbers; "20%" agrees with its number (_percent_words).
_PERCENT |= {"ru": "процентов"}
_PERCENT_FORMS = {"ru": ("процент", "процента", "процентов")}  # 1, 2-4, 5+ (and 11-14)
_PERCENT_FRACTION = {"ru": "процента"}  # after a decimal: "3,5 процента"
_PERCENT_BEFORE = {"zh": "百分之"}  # Chinese says the percent first: 百分之五十
SYMBOL_WORDS = {"&": _AND, "+": _PLUS, "%": _PERCENT}
CURRENCY = {"$": "USD", "€": "EUR", "£": "GBP"}
_YEAR_LANGS = frozenset({"en", "de", "nl"})  # where 1999 is said as a year, not a cardinal
# Languages writing 2,5 for two and a half and 1.000 for a thousand.
_COMMA_DECIMAL = frozenset(
    {"fr", "de", "es", "it", "pt", "nl", "ru", "pl", "cs", "sk", "sl", "hr", "sr", "bg", "uk"}
    | {"ro", "tr", "sv", "da", "no", "nb", "fi", "hu", "el", "id", "vi", "lt", "lv", "et", "ca"}
)
_ORDINAL_SUFFIX = {
    "en": re.compile(r"(st|nd|rd|th)(?![^\W\d_])", re.IGNORECASE),
    "fr": re.compile(r"(ère|ere|er|re|ème|eme|e|nde|nd)(?![^\W\d_])", re.IGNORECASE),
    "es": re.compile(r"\.?er(?![^\W\d_])"),  # 1.er, 3.er: the short forms primer, tercer
}
# Spanish says the decimal comma ("tres coma cinco") and reads the digits after it as a number
# ("dos coma cincuenta"); num2words says "punto" and reads them one by one ("punto cinco cero").
_DECIMAL_WORD = {"es": "coma"}
_ORDINAL_MARK = {"\ue000": "o", "\ue001": "a"}  # º ª, hidden from NFKC (which maps them to o/a)
NUMBER = re.compile(r"(?P<neg>[-−])?(?P<cur>[$€£])?(?P<num>\d+(?:[.,]\d+)*)(?P<cur2>[$€£])?")


# --------------------------------------------------------------------------- numbers


@dataclass(frozen=True)
class Lang:
    """A transcript language as the spellers need it."""

    base: str  # "pt"
    n2w: str | None  # the num2words code ("pt_BR"), None if num2words lacks the language


def parse_language(language: str) -> Lang:
    """ISO 639-1 code, optionally with a region ("en", "pt-BR") → :class:`Lang`."""
    parts = language.strip().replace("-", "_").split("_")
    base = parts[0].lower()
    if not base:
        raise ValueError("language must be an ISO 639-1 code such as 'en'")
    full = f"{base}_{parts[1].upper()}" if len(parts) > 1 else base
    n2w = full if full in CONVERTER_CLASSES else base if base in CONVERTER_CLASSES else None
    return Lang(base, n2w)


def _words(text: str) -> list[str]:
    """num2words output → lowercase words ("forty-two," → ["forty", "two"])."""
    return plain_words(text.replace("-", " "))


def plain_words(text: str) -> list[str]:
    """Text → lowercase words, punctuation dropped except apostrophes inside words."""
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


def _cardinal(value: Decimal, lang: Lang, to: str = "cardinal") -> list[str] | None:
    """Spell a number; None when the language has no speller."""
    if lang.base == "zh":
        return [_zh_number(value)]
    if lang.n2w is None:
        return None
    if lang.base in _DECIMAL_WORD and to == "cardinal" and value != value.to_integral_value():
        whole, _, frac = f"{abs(value):f}".partition(".")
        zeros = len(frac) - len(frac.lstrip("0"))
        return [
            *(_cardinal(Decimal(whole), lang) or [whole]),
            _DECIMAL_WORD[lang.base],
            *((_cardinal(Decimal(0), lang) or ["0"]) * zeros),
            *(_cardinal(Decimal(frac[zeros:]), lang) or [frac]),
        ]
    if value == value.to_integral_value():
        arg: int | float | Decimal = int(value)
    else:
        # Floats, not Decimals: num2words' Italian drops the fraction of a Decimal.
        arg = float(value) if len(value.as_tuple().digits) <= 15 else value
    try:
        return _words(num2words(arg, lang=lang.n2w, to=to))
    except (NotImplementedError, OverflowError, ValueError, TypeError, KeyError):
        return None if to == "cardinal" else _cardinal(value, lang)


def _parse_number(num: str, lang: Lang) -> Decimal | None:
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


def _minus_words(lang: Lang) -> list[str]:
    """The language's word for a negative sign ("minus", "moins"): spell -1 minus 1."""
    if lang.base == "zh":
        return ["负"]
    neg, pos = _cardinal(Decimal(-1), lang), _cardinal(Decimal(1), lang)
    if not neg or not pos:
        return []
    return neg[: len(neg) - len(pos)] if neg[-len(pos) :] == pos else []


def number_words(m: re.Match[str], after: str, lang: Lang) -> tuple[list[str], int]:
    """Words for a matched number and how many characters after the match they consumed."""
    num, currency = m["num"], CURRENCY.get(m["cur"] or m["cur2"] or "")
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
        return sign + words + _percent_words(value, lang), 1
    if currency:
        return sign + _currency_words(value, currency, lang, num), 0
    suffix = _ORDINAL_SUFFIX.get(lang.base)
    ordinal = suffix.match(after) if suffix else None
    # "2º", or "2.º" as Spanish and Portuguese write it.
    dotted = after[:1] == "." and after[1:2] in _ORDINAL_MARK
    mark = after[1:2] if dotted else after[:1] if after[:1] in _ORDINAL_MARK else ""
    if (ordinal or mark) and num.isdecimal() and not m["neg"]:
        words = _cardinal(value, lang, to="ordinal") or [num]
        if _ORDINAL_MARK.get(mark) == "a":  # feminine: primero → primera
            words = [w[:-1] + "a" if w.endswith("o") else w for w in words]
        if ordinal and lang.base == "es" and words[-1] in ("primero", "tercero"):
            words[-1] = words[-1][:-1]  # 1.er piso: "primer"
        return words, len(ordinal[0]) if ordinal else 1 + dotted
    decade = after[:1] == "s" and not after[1:2].isalpha()
    if lang.base == "en" and decade and num.isdecimal() and num.endswith("0"):
        words = _cardinal(value, lang, to="year" if len(num) == 4 else "cardinal") or [num]
        last = words[-1]
        words[-1] = last[:-1] + "ies" if last.endswith("y") else last + "s"  # 1990s, 80s
        return words, 1
    if lang.base in _YEAR_LANGS and len(num) == 4 and not m["neg"] and 1100 <= value < 2100:
        return _cardinal(value, lang, to="year") or [num], 0
    return sign + (_cardinal(value, lang) or [num]), 0


def _percent_words(value: Decimal, lang: Lang) -> list[str]:
    """The word for "%" after ``value``, agreeing with it where the language needs it."""
    forms = _PERCENT_FORMS.get(lang.base)
    if forms is None or lang.n2w is None:
        return plain_words(_PERCENT.get(lang.base, ""))
    if value != value.to_integral_value():
        return [_PERCENT_FRACTION[lang.base]]
    return plain_words(CONVERTER_CLASSES[lang.n2w].pluralize(int(value), forms))


def _number_words_plain(digits: str, lang: Lang) -> list[str]:
    if not digits:
        return []
    return _cardinal(Decimal(int(digits)), lang) or [digits]


def _currency_words(value: Decimal, code: str, lang: Lang, num: str) -> list[str]:
    amount = _cardinal(value, lang) or [num]
    if lang.n2w is None:
        return amount
    if value != value.to_integral_value():
        try:  # "five dollars, ninety-nine cents"
            return _words(num2words(value, lang=lang.n2w, to="currency", currency=code))
        except (NotImplementedError, KeyError, TypeError, ValueError):
            return amount
    # num2words would say "five dollars, zero cents" for whole amounts: add the unit alone.
    return amount + currency_unit(code, int(value), lang)


def currency_unit(code: str, count: int, lang: Lang) -> list[str]:
    """Name of a currency agreeing with ``count`` ("dollar", "dollars"); [] if unknown."""
    if lang.n2w is None:
        return []
    converter = CONVERTER_CLASSES[lang.n2w]
    try:
        return plain_words(converter.pluralize(count, converter.CURRENCY_FORMS[code][0]))
    except (AttributeError, KeyError, TypeError, ValueError, IndexError, NotImplementedError):
        return []
