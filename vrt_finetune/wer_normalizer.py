"""WER normalisation before scoring: Whisper's English normaliser, a basic one for the rest.

WER compares words, so both the reference and the hypothesis are normalised first, the same way,
by the language of the reference:

* English (``en``, ``en-US``, ``eng``, ``english``): transformers' copy of OpenAI Whisper's
  ``EnglishTextNormalizer`` — lower case; bracketed and parenthesised asides dropped; fillers
  (``um``, ``uh``, ``hmm``…) dropped; contractions and titles expanded (``won't`` → ``will not``,
  ``Mr`` → ``mister``); spelled-out numbers, currencies and percentages standardised
  (``twenty-five dollars`` → ``$25``); punctuation and diacritics removed. It is importable
  offline; what it does not ship is Whisper's British → American spelling list
  (``normalizer.json``, beside the weights of every Whisper checkpoint on the hub). Without it,
  ``colour`` and ``color`` stay different words; pass that file as ``spelling_map`` to
  standardise them as Whisper's published numbers do.
* Every other language: Unicode NFKC, casefold, bracketed asides dropped, punctuation and symbols
  (Unicode categories P*, S*) turned into spaces, whitespace collapsed. Combining marks are kept:
  Whisper's ``BasicTextNormalizer`` turns them into spaces too, which splits words of Devanagari,
  Thai and other scripts whose vowel signs are marks.
* Languages written without spaces between words (Chinese, Japanese, Thai, Lao, Khmer, Burmese,
  Cantonese): after the basic normaliser, every character becomes its own unit, so the "WER" of
  these languages is a character error rate over the text without spaces (Whisper's convention).

The output is always a string of space-separated units, ready for ``jiwer``. (Turning
transcripts into the words an aligner hears is another job: :mod:`data_prep.spoken_form`.)
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from functools import cached_property, lru_cache
from pathlib import Path

ENGLISH_CODES = frozenset({"en", "eng", "english"})
"""Language codes (lower case, region stripped) scored with the English normaliser."""

CHARACTER_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "km", "my", "yue", "zho", "jpn", "tha"})
"""Languages written without spaces between words: scored per character."""

_BRACKETED = re.compile(r"[<\[][^>\]]*[>\]]|\([^)]*\)")
_SPACES = re.compile(r"\s+")


def base_language(language: str | None) -> str:
    """``"en-US"``/``"en_us"``/``"EN"`` → ``"en"``; ``None`` or ``""`` → ``""``."""
    return (language or "").strip().replace("_", "-").split("-")[0].lower()


def is_english(language: str | None) -> bool:
    """Whether ``language`` is scored with the English normaliser."""
    return base_language(language) in ENGLISH_CODES


def splits_characters(language: str | None) -> bool:
    """Whether ``language`` is scored per character (no spaces between its words)."""
    return base_language(language) in CHARACTER_LANGUAGES


def basic_normalize(text: str) -> str:
    """Language-neutral normalisation: NFKC, casefold, no punctuation, single spaces.

    Args:
        text: any transcript.

    Returns:
        the words of ``text`` joined by single spaces (no leading/trailing space).
    """
    text = _BRACKETED.sub(" ", unicodedata.normalize("NFKC", text).casefold())
    # P* (punctuation) and S* (symbols) become spaces; letters, digits and marks stay
    text = "".join(" " if unicodedata.category(c)[0] in "PS" else c for c in text)
    return _SPACES.sub(" ", text).strip()


def load_spelling_map(path: str | Path) -> dict[str, str]:
    """Read a Whisper ``normalizer.json`` (British → American spellings, ``{"colour": "color"}``).

    Raises:
        ValueError: the file is not a JSON object of strings.
    """
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise ValueError(f"{path}: expected a JSON object mapping spellings to spellings")
    return data


class TextNormalizer:
    """Normalises transcripts by language; one instance serves a whole evaluation.

    Args:
        spelling_map: British → American spellings for the English normaliser (Whisper's
            ``normalizer.json``); ``None``: spellings are left as they are.
    """

    def __init__(self, spelling_map: Mapping[str, str] | None = None) -> None:
        self.spelling_map = dict(spelling_map or {})
        # latency scoring normalises every word on its own: the same words recur constantly
        self._cached = lru_cache(maxsize=1 << 16)(self._normalize)

    @cached_property
    def _english(self):  # EnglishTextNormalizer; built on first use (its number tables are big)
        from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

        return EnglishTextNormalizer(self.spelling_map)

    def __call__(self, text: str, language: str | None) -> str:
        """Normalise ``text`` of ``language``.

        Args:
            text: a reference or hypothesis transcript (or a single word, or a glossary term).
            language: the reference's language code; ``None``/``""``: the basic normaliser.

        Returns:
            space-separated units: words, or characters for :data:`CHARACTER_LANGUAGES`.
        """
        return self._cached(text, language)

    def _normalize(self, text: str, language: str | None) -> str:
        if is_english(language):
            # NFKC first: the English normaliser decomposes (NFKD) only after its regexes run,
            # so full-width or ligature forms would otherwise slip past them
            out = self._english(unicodedata.normalize("NFKC", text))
            return _SPACES.sub(" ", out).strip()
        out = basic_normalize(text)
        if splits_characters(language):
            return " ".join(c for c in out if not c.isspace())
        return out

    def words(self, text: str, language: str | None) -> list[str]:
        """``__call__`` split into units."""
        return self(text, language).split()


def describe(normalizer: TextNormalizer) -> dict[str, object]:
    """What the normaliser does, for ``metrics.json`` (so numbers can be reproduced)."""
    return {
        "english": "transformers.models.whisper.english_normalizer.EnglishTextNormalizer",
        "english_spelling_map_entries": len(normalizer.spelling_map),
        "other": "NFKC, casefold, brackets/punctuation/symbols removed, whitespace collapsed",
        "per_character": sorted(CHARACTER_LANGUAGES),
    }
