"""Scores of one decoding run: WER, CER, glossary recall and emission latency (pure functions).

Definitions (all over texts normalised by ``vrt_finetune.wer_normalizer``, by the reference's
language):

* **WER / CER** are micro-averages: the edit operations of every utterance (``jiwer``'s
  alignment) summed, divided by the summed reference length. An utterance whose normalised
  reference is empty adds its hypothesis words as insertions. The paper's tables are
  macro-averages over test sets; ours weight every word equally. CER counts spaces as characters
  except for languages scored per character, whose units are joined without spaces.
* **Glossary recall**: for each utterance and each term, ``n_ref`` = occurrences of the
  normalised term (as a run of whole units, non-overlapping) in the normalised reference and
  ``n_hyp`` likewise in the hypothesis; recall = ``Σ min(n_ref, n_hyp) / Σ n_ref``. A term the
  model writes elsewhere in the same utterance counts as found; one written more often than said
  counts only as often as said. Exact spelling is required after normalisation.
* **Emission latency** of a reference word with a known end time (aligned, not interpolated:
  ``flagged`` words are skipped) that the hypothesis got right: the normalised word sequences are
  aligned with ``jiwer`` (minimum edit distance); for each unit of a matched pair, latency =
  ``emitted_at`` of the hypothesis word − ``end`` of the reference word, in seconds of speech.
  ``emitted_at`` is when the group's ``[W]`` was written; its subword tokens follow one per 80 ms
  frame, so a long word is complete a few frames later. Resolution is one 80 ms frame.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import jiwer
import numpy as np

from vrt_finetune.wer_normalizer import TextNormalizer, splits_characters

UNKNOWN_LANGUAGE = "unknown"
"""Key of the per-language breakdown for utterances without a language."""


class WordLike(Protocol):
    """A decoded word with the speech time at which it was written (``DecodedWord``)."""

    word: str
    emitted_at: float


class DecodedLike(Protocol):
    """A decoded utterance (``vrt_finetune.decode.Decoded``)."""

    text: str
    words: Sequence[WordLike]


@dataclass(frozen=True)
class RefWord:
    """A reference word and, when known, its end in seconds from the start of the utterance."""

    word: str
    end: float | None = None
    flagged: bool = False
    """The time was interpolated, not aligned: not used for latency."""


@dataclass(frozen=True)
class Reference:
    """What an utterance should be transcribed as."""

    text: str
    language: str | None = None
    words: tuple[RefWord, ...] = ()
    """Timed words (from the shard); empty when unknown (no latency then)."""


@dataclass(frozen=True)
class ErrorCounts:
    """Summed edit operations of an alignment."""

    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    hits: int = 0

    @property
    def ref_len(self) -> int:
        """Units in the references."""
        return self.hits + self.substitutions + self.deletions

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float | None:
        """Errors per reference unit; ``None`` without reference units."""
        return self.errors / self.ref_len if self.ref_len else None

    def __add__(self, other: ErrorCounts) -> ErrorCounts:
        return ErrorCounts(
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
            self.hits + other.hits,
        )

    def to_json(self) -> dict[str, int | float | None]:
        return {
            "rate": self.rate,
            "ref_len": self.ref_len,
            "substitutions": self.substitutions,
            "deletions": self.deletions,
            "insertions": self.insertions,
        }


def error_counts(
    refs: Sequence[str], hyps: Sequence[str], *, characters: bool = False
) -> ErrorCounts:
    """Word (or character) edit operations of normalised ``hyps`` against ``refs``, summed.

    Args:
        refs: normalised references (words separated by single spaces).
        hyps: normalised hypotheses, one per reference.
        characters: count characters (``jiwer.process_characters``) instead of words.
    """
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    if not refs:
        return ErrorCounts()
    process = jiwer.process_characters if characters else jiwer.process_words
    out = process(list(refs), list(hyps))
    return ErrorCounts(out.substitutions, out.deletions, out.insertions, out.hits)


def count_occurrences(units: Sequence[str], term: Sequence[str]) -> int:
    """Non-overlapping occurrences of the unit run ``term`` in ``units`` (left to right)."""
    n, i, k = 0, 0, len(term)
    if k == 0:
        return 0
    while i + k <= len(units):
        if list(units[i : i + k]) == list(term):
            n, i = n + 1, i + k
        else:
            i += 1
    return n


@dataclass
class GlossaryRecall:
    """Glossary terms found in the hypotheses, as defined in the module docstring."""

    occurrences: int = 0
    hits: int = 0
    per_term: dict[str, list[int]] = field(default_factory=dict)
    """term → ``[occurrences, hits]``."""

    @property
    def recall(self) -> float | None:
        return self.hits / self.occurrences if self.occurrences else None

    def to_json(self) -> dict:
        return {
            "recall": self.recall,
            "occurrences": self.occurrences,
            "hits": self.hits,
            "per_term": {t: {"occurrences": o, "hits": h} for t, (o, h) in self.per_term.items()},
        }


def glossary_recall(
    refs: Sequence[str],
    hyps: Sequence[str],
    terms: Sequence[str],
    normalizer: TextNormalizer,
    languages: Sequence[str | None] | None = None,
) -> GlossaryRecall:
    """Share of glossary-term occurrences in the references that the hypotheses contain.

    Args:
        refs: raw reference transcripts.
        hyps: raw hypotheses, one per reference.
        terms: glossary terms as written (normalised here, per utterance language).
        normalizer: the text normaliser of the evaluation.
        languages: language of each reference (``None``: all unknown).
    """
    languages = languages or [None] * len(refs)
    result = GlossaryRecall(per_term={t: [0, 0] for t in terms})
    # terms normalised once per language, not once per utterance
    by_lang = {lang: [normalizer.words(t, lang) for t in terms] for lang in set(languages)}
    for ref, hyp, lang in zip(refs, hyps, languages, strict=True):
        ref_units, hyp_units = normalizer.words(ref, lang), normalizer.words(hyp, lang)
        for term, term_units in zip(terms, by_lang[lang], strict=True):
            n_ref = count_occurrences(ref_units, term_units)
            if n_ref:
                hits = min(n_ref, count_occurrences(hyp_units, term_units))
                result.occurrences += n_ref
                result.hits += hits
                result.per_term[term][0] += n_ref
                result.per_term[term][1] += hits
    return result


def word_latencies(
    reference: Sequence[RefWord],
    hypothesis: Sequence[WordLike],
    normalize: Callable[[str], str],
) -> list[float]:
    """Emission latency (s) of each correctly transcribed, aligned reference word's unit.

    Each word is normalised on its own (``normalize``), and its units inherit its time, so the
    sequences stay dated even where the normaliser splits a word (``don't`` → ``do not``).

    Args:
        reference: the utterance's words with end times.
        hypothesis: decoded words with ``emitted_at``.
        normalize: the utterance's normaliser, ``text → space-separated units``.

    Returns:
        ``emitted_at - end`` for every matched unit whose reference word has a known time.
    """
    ref = [(u, None if w.flagged else w.end) for w in reference for u in normalize(w.word).split()]
    hyp = [(u, w.emitted_at) for w in hypothesis for u in normalize(w.word).split()]
    if not ref or not hyp:
        return []
    out = jiwer.process_words(" ".join(u for u, _ in ref), " ".join(u for u, _ in hyp))
    latencies: list[float] = []
    for chunk in out.alignments[0]:
        if chunk.type != "equal":
            continue
        for k in range(chunk.ref_end_idx - chunk.ref_start_idx):
            end = ref[chunk.ref_start_idx + k][1]
            if end is not None:
                latencies.append(hyp[chunk.hyp_start_idx + k][1] - end)
    return latencies


def latency_summary(values: Sequence[float]) -> dict[str, float | int | None]:
    """``n``, ``mean``, ``median`` and ``p90`` (linear interpolation) of latencies in seconds."""
    if not values:
        return {"n": 0, "mean": None, "median": None, "p90": None}
    return {
        "n": len(values),
        "mean": statistics.fmean(values),
        "median": statistics.median(values),
        "p90": float(np.percentile(values, 90)),
    }


def _char_text(normalised: str, language: str | None) -> str:
    return normalised.replace(" ", "") if splits_characters(language) else normalised


def score(
    references: Sequence[Reference],
    decoded: Sequence[DecodedLike],
    normalizer: TextNormalizer,
    glossary: Sequence[str] = (),
) -> dict:
    """Every metric of one (model, data set, delay) run, JSON-ready.

    Args:
        references: one per utterance.
        decoded: the model's output for each utterance, in the same order.
        normalizer: the evaluation's text normaliser.
        glossary: domain terms (empty: no glossary recall).

    Returns:
        ``{"n_utterances", "wer", "cer", "words", "chars", "by_language", "glossary",
        "latency"}``; ``wer``/``cer`` are fractions (``None`` without reference units),
        ``words``/``chars`` the summed edit operations, ``by_language`` maps each language to
        ``{"n_utterances", "wer", "cer", "ref_words"}``, ``glossary`` is ``None`` without terms,
        ``latency`` in seconds (see :func:`latency_summary`).
    """
    if len(references) != len(decoded):
        raise ValueError(f"{len(references)} references but {len(decoded)} decodings")
    langs = [r.language or UNKNOWN_LANGUAGE for r in references]
    ref_n = [normalizer(r.text, r.language) for r in references]
    hyp_n = [normalizer(d.text, r.language) for r, d in zip(references, decoded, strict=True)]

    by_language: dict[str, dict] = {}
    total_w, total_c = ErrorCounts(), ErrorCounts()
    for lang in sorted(set(langs)):
        idx = [i for i, x in enumerate(langs) if x == lang]
        code = references[idx[0]].language
        w = error_counts([ref_n[i] for i in idx], [hyp_n[i] for i in idx])
        c = error_counts(
            [_char_text(ref_n[i], code) for i in idx],
            [_char_text(hyp_n[i], code) for i in idx],
            characters=True,
        )
        total_w, total_c = total_w + w, total_c + c
        by_language[lang] = {
            "n_utterances": len(idx),
            "wer": w.rate,
            "cer": c.rate,
            "ref_words": w.ref_len,
        }

    latencies: list[float] = []
    for ref, dec in zip(references, decoded, strict=True):
        latencies += word_latencies(
            ref.words, dec.words, lambda text, lang=ref.language: normalizer(text, lang)
        )
    gloss = (
        glossary_recall(
            [r.text for r in references],
            [d.text for d in decoded],
            glossary,
            normalizer,
            [r.language for r in references],
        ).to_json()
        if glossary
        else None
    )
    return {
        "n_utterances": len(references),
        "wer": total_w.rate,
        "cer": total_c.rate,
        "words": total_w.to_json(),
        "chars": total_c.to_json(),
        "by_language": by_language,
        "glossary": gloss,
        "latency": latency_summary(latencies),
    }
